//! `INTENT_SINK=kube` on the real broker, against the Kubernetes API test server
//! (tests/common/kubeapi.rs) through kube's real `Client`, configured by `KUBECONFIG` as
//! in production: the object and its metadata, idempotence (a duplicate and a redelivery
//! leave the resourceVersion as it was), a field-manager conflict, faults that heal and
//! faults that do not, a namespace that does not exist, and an API server that is down.
//!
//! `KUBECONFIG` is one variable for the whole process, read when a worker starts: the
//! tests of this file take turns ([`one_at_a_time`]), each with its own server.

mod common;

use common::kubeapi::{Fault, KubeApi, Options, Recorded, API_VERSION, KIND};
use common::recorder::{metric, recorder};
use common::{produce, producer, until, Outcomes, TestTopics, Worker};
use nephoran_kafka_consumer::apply::{IntentSink, KubeOptions, SinkSpec};
use nephoran_kafka_consumer::config::Config;
use nephoran_kafka_consumer::intent::intent_name;
use nephoran_kafka_consumer::outcome::ErrorCode;
use serde_json::{json, Value};
use tokio::sync::{Mutex, MutexGuard};

const MANAGER: &str = "nephoran-kafka-consumer";

/// Held for a whole test: `KUBECONFIG` names that test's server.
async fn one_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::const_new(());
    TURN.lock().await
}

/// A test's API server (with `namespaces`), topics and a worker configuration with
/// `INTENT_SINK=kube` and `KUBECONFIG` pointing at the server.
struct Cluster {
    api: KubeApi,
    topics: TestTopics,
    config: Config,
    _dir: tempfile::TempDir,
}

async fn cluster(name: &str, namespaces: &[&str]) -> Cluster {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info,rdkafka=warn")
        .try_init();
    recorder();
    let api = KubeApi::start_with(Options {
        namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig).unwrap();
    std::env::set_var("KUBECONFIG", &kubeconfig);
    let topics = TestTopics::create(name, 1).await;
    let mut config = topics.config(dir.path());
    config.intent_sink = SinkSpec::Kube;
    Cluster {
        api,
        topics,
        config,
        _dir: dir,
    }
}

fn request(key: &str, text: &str) -> Vec<u8> {
    json!({"idempotency_key": key, "intent": text})
        .to_string()
        .into_bytes()
}

async fn send(cluster: &Cluster, key: &str, text: &str) {
    let topic = &cluster.topics.service_requests;
    produce(&producer(), topic, Some(key), &request(key, text), &[]).await;
}

/// The apply requests for `name` the server received.
fn applies_of(api: &KubeApi, name: &str) -> Vec<Recorded> {
    api.requests()
        .into_iter()
        .filter(|r| r.is_apply() && r.path.ends_with(&format!("/{name}")))
        .collect()
}

fn resource_version(object: &Value) -> String {
    object["metadata"]["resourceVersion"]
        .as_str()
        .expect("a resourceVersion")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_creates_the_intent_and_a_duplicate_or_a_redelivery_changes_nothing() {
    let _turn = one_at_a_time().await;
    let cluster = cluster("kubeapply", &["default", "edge-a"]).await;
    let key = "kube-apply-1";
    let name = intent_name(key);
    let worker = Worker::start(cluster.config.clone());
    worker.until_assigned().await;
    send(&cluster, key, "Scale UPF to 3 replicas in namespace edge-a").await;
    let mut outcomes = Outcomes::new(&cluster.topics);
    outcomes.until_terminal([key]).await;
    assert_eq!(outcomes.stages(key), ["received", "translated", "applied"]);
    let applied = outcomes.terminal(key)[0].clone();

    let object = cluster.api.get("edge-a", &name).expect("the intent exists");
    assert_eq!(object["apiVersion"], API_VERSION);
    assert_eq!(object["kind"], KIND);
    let labels = &object["metadata"]["labels"];
    assert_eq!(
        labels["nephoran.com/source-topic"],
        cluster.topics.service_requests.as_str()
    );
    assert_eq!(labels["app.kubernetes.io/managed-by"], MANAGER);
    let annotations = &object["metadata"]["annotations"];
    assert_eq!(annotations["nephoran.com/idempotency-key"], key);
    let fingerprint = annotations["nephoran.com/payload-fingerprint"]
        .as_str()
        .unwrap_or_default();
    assert!(
        !fingerprint.is_empty() && fingerprint.bytes().all(|b| b.is_ascii_hexdigit()),
        "{annotations}"
    );
    assert_eq!(annotations["nephoran.com/source-partition"], "0");
    assert_eq!(
        annotations["nephoran.com/source-offset"],
        applied.source.offset.to_string().as_str()
    );
    assert_eq!(object["spec"]["targetNamespace"], "edge-a", "{object}");
    let managers: Vec<&str> = object["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert_eq!(managers, [MANAGER]);
    let first = resource_version(&object);
    for apply in applies_of(&cluster.api, &name) {
        assert_eq!(apply.query("fieldManager"), Some(MANAGER));
        assert_ne!(apply.query("force"), Some("true"), "no force by default");
    }

    // The same message again: a duplicate, nothing applied.
    send(&cluster, key, "Scale UPF to 3 replicas in namespace edge-a").await;
    outcomes.until(|o| o.terminal(key).len() == 2).await;
    assert_eq!(outcomes.terminal(key)[1].stage.as_str(), "duplicate");
    worker.stop().await;

    // Every message delivered again, to a worker of another group (which remembers
    // nothing): applying again changes nothing.
    let mut again = cluster.config.clone();
    again.group = format!("{}-again", again.group);
    let applies_before = applies_of(&cluster.api, &name).len();
    let worker = Worker::start(again);
    outcomes.until(|o| o.terminal(key).len() == 4).await;
    worker.stop().await;
    assert!(
        applies_of(&cluster.api, &name).len() > applies_before,
        "the redelivered message was applied again"
    );
    for stage in ["failed", "rejected", "dead_lettered"] {
        assert_eq!(outcomes.count(stage), 0, "{stage}");
    }
    let object = cluster.api.get("edge-a", &name).expect("the intent exists");
    assert_eq!(
        resource_version(&object),
        first,
        "applying again changed it"
    );
}

/// What another field manager applies: the same object (the same key, so the claim check
/// lets it through), with its own `spec.intent`.
fn owned_by_someone_else(key: &str, namespace: &str) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": intent_name(key),
            "namespace": namespace,
            "annotations": {"nephoran.com/idempotency-key": key},
        },
        "spec": {"intent": "set by hand"},
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_field_of_another_manager_fails_the_message_naming_it_unless_forced() {
    let _turn = one_at_a_time().await;
    let cluster = cluster("kubeconflict", &["default", "edge-b"]).await;
    let (refused, forced) = ("kube-conflict-1", "kube-conflict-2");
    for key in [refused, forced] {
        cluster
            .api
            .apply("kubectl-edit", &owned_by_someone_else(key, "edge-b"), false)
            .expect("the other manager's apply");
    }
    let worker = Worker::start(cluster.config.clone());
    worker.until_assigned().await;
    send(
        &cluster,
        refused,
        "Scale UPF to 3 replicas in namespace edge-b",
    )
    .await;
    let mut outcomes = Outcomes::new(&cluster.topics);
    outcomes.until_terminal([refused]).await;
    worker.stop().await;
    let failed = outcomes.terminal(refused)[0].clone();
    assert_eq!(failed.stage.as_str(), "failed");
    let error = failed.error.expect("an error");
    assert_eq!(error.code, ErrorCode::ApplyFailed);
    assert!(error.message.contains("kubectl-edit"), "{}", error.message);
    assert!(
        error.message.contains("KUBE_FORCE_APPLY"),
        "{}",
        error.message
    );
    let object = cluster.api.get("edge-b", &intent_name(refused)).unwrap();
    assert_eq!(object["spec"]["intent"], "set by hand", "not overwritten");

    // With KUBE_FORCE_APPLY=true the fields are taken over.
    let mut config = cluster.config.clone();
    config.kube.kube_force_apply = true;
    let worker = Worker::start(config);
    worker.until_assigned().await;
    send(
        &cluster,
        forced,
        "Scale UPF to 4 replicas in namespace edge-b",
    )
    .await;
    outcomes.until_terminal([forced]).await;
    worker.stop().await;
    assert_eq!(outcomes.terminal(forced)[0].stage.as_str(), "applied");
    let object = cluster.api.get("edge-b", &intent_name(forced)).unwrap();
    assert_ne!(object["spec"]["intent"], "set by hand", "{object}");
    let applies = applies_of(&cluster.api, &intent_name(forced));
    assert!(applies.iter().all(|a| a.query("force") == Some("true")));
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_that_heal_are_waited_out_and_a_refusal_fails_with_the_servers_words() {
    let _turn = one_at_a_time().await;
    let cluster = cluster("kubefaults", &["default", "edge-c", "edge-d"]).await;
    let in_namespace = |namespace: &'static str| {
        move |r: &Recorded| r.is_apply() && r.path.contains(&format!("/namespaces/{namespace}/"))
    };
    // edge-c: 429 with Retry-After, then two 500s, then it answers.
    cluster.api.fail_next_where(
        1,
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
        in_namespace("edge-c"),
    );
    cluster
        .api
        .fail_next_where(2, Fault::InternalError, in_namespace("edge-c"));
    // edge-d: RBAC says no.
    cluster
        .api
        .fail_next_where(1, Fault::Forbidden, in_namespace("edge-d"));
    let worker = Worker::start(cluster.config.clone());
    worker.until_assigned().await;
    let (heals, refused) = ("kube-faults-heal", "kube-faults-forbidden");
    send(
        &cluster,
        heals,
        "Scale UPF to 3 replicas in namespace edge-c",
    )
    .await;
    send(
        &cluster,
        refused,
        "Scale UPF to 3 replicas in namespace edge-d",
    )
    .await;
    let mut outcomes = Outcomes::new(&cluster.topics);
    outcomes.until_terminal([heals, refused]).await;
    worker.stop().await;

    assert_eq!(
        outcomes.stages(heals),
        ["received", "translated", "applied"]
    );
    assert!(cluster.api.get("edge-c", &intent_name(heals)).is_some());
    assert!(
        applies_of(&cluster.api, &intent_name(heals)).len() >= 4,
        "the 429 and both 500s were answered before the apply that succeeded"
    );

    let failed = outcomes.terminal(refused)[0].clone();
    assert_eq!(failed.stage.as_str(), "failed");
    let error = failed.error.expect("an error");
    assert_eq!(error.code, ErrorCode::ApplyFailed);
    assert!(
        error.message.contains("403 Forbidden") && error.message.contains("is forbidden: User"),
        "{}",
        error.message
    );
    assert_eq!(
        applies_of(&cluster.api, &intent_name(refused)).len(),
        1,
        "a refusal is not retried"
    );
    assert!(cluster.api.get("edge-d", &intent_name(refused)).is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_namespace_is_namespace_not_found_unless_created() {
    let _turn = one_at_a_time().await;
    let cluster = cluster("kubens", &["default"]).await;
    let (missing, created) = ("kube-ns-missing", "kube-ns-created");
    let worker = Worker::start(cluster.config.clone());
    worker.until_assigned().await;
    send(
        &cluster,
        missing,
        "Scale UPF to 3 replicas in namespace edge-x",
    )
    .await;
    let mut outcomes = Outcomes::new(&cluster.topics);
    outcomes.until_terminal([missing]).await;
    worker.stop().await;
    let failed = outcomes.terminal(missing)[0].clone();
    assert_eq!(failed.stage.as_str(), "failed");
    let error = failed.error.expect("an error");
    assert_eq!(error.code, ErrorCode::NamespaceNotFound);
    assert!(error.message.contains("\"edge-x\""), "{}", error.message);
    assert!(!cluster.api.namespace_exists("edge-x"));

    let mut config = cluster.config.clone();
    config.kube.create_namespaces = true;
    let worker = Worker::start(config);
    worker.until_assigned().await;
    send(
        &cluster,
        created,
        "Scale UPF to 3 replicas in namespace edge-y",
    )
    .await;
    outcomes.until_terminal([created]).await;
    worker.stop().await;
    assert_eq!(outcomes.terminal(created)[0].stage.as_str(), "applied");
    assert!(cluster.api.namespace_exists("edge-y"));
    assert!(cluster.api.get("edge-y", &intent_name(created)).is_some());
    assert!(metric("kube_namespaces_created_total", &[]) >= 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_server_that_is_down_pauses_the_partition_and_all_is_applied_when_back() {
    let _turn = one_at_a_time().await;
    let cluster = cluster("kubedown", &["default", "edge-e"]).await;
    let worker = Worker::start(cluster.config.clone());
    worker.until_assigned().await;
    cluster.api.down();
    let keys: Vec<String> = (0..4).map(|i| format!("kube-down-{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        let text = format!("Scale UPF to {} replicas in namespace edge-e", i + 1);
        send(&cluster, key, &text).await;
    }
    until("the worker is not ready", || !worker.health.is_ready()).await;
    let why = worker.health.not_ready().unwrap_or_default();
    assert!(why.contains("intent sink is down"), "{why}");
    let topic = cluster.topics.service_requests.as_str();
    let paused = [("topic", topic), ("reason", "sink_down")];
    until("the partition is paused", || {
        metric("partition_pauses_total", &paused) >= 1.0
    })
    .await;
    let group = cluster.topics.group.as_str();
    let [(committed, _)] = common::committed_and_end(group, topic, 1)[..] else {
        panic!("one partition");
    };
    assert!(
        committed <= 0,
        "committed {committed} while nothing was applied"
    );

    cluster.api.up();
    let mut outcomes = Outcomes::new(&cluster.topics);
    outcomes
        .until_terminal(keys.iter().map(String::as_str))
        .await;
    until("the worker is ready again", || worker.health.is_ready()).await;
    // Everything applied, and committed to the end.
    common::committed_offset(group, topic, 0, |o| o == keys.len() as i64).await;
    worker.stop().await;
    for key in &keys {
        assert_eq!(outcomes.stages(key), ["received", "translated", "applied"]);
        assert!(cluster.api.get("edge-e", &intent_name(key)).is_some());
    }
    for stage in ["failed", "rejected", "dead_lettered"] {
        assert_eq!(outcomes.count(stage), 0, "{stage}");
    }
}

#[tokio::test]
async fn without_a_usable_configuration_the_kube_sink_does_not_start() {
    let _turn = one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("KUBECONFIG", dir.path().join("missing"));
    let err = IntentSink::start(SinkSpec::Kube, KubeOptions::default())
        .await
        .expect_err("no configuration");
    let err = err.to_string();
    assert!(
        err.contains("INTENT_SINK=kube") && err.contains("KUBECONFIG"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_of_another_request_is_never_overwritten() {
    let _turn = one_at_a_time().await;
    let cluster = cluster("kubeclaim", &["default", "edge-f"]).await;
    let (taken, claimed) = ("kube-claim-taken", "kube-claim-claimed");
    // Under `taken`'s name: the object of another key.
    let mut other_key = owned_by_someone_else(taken, "edge-f");
    other_key["metadata"]["annotations"]["nephoran.com/idempotency-key"] = json!("someone-else");
    // Under `claimed`'s name: the same key, claimed by another payload.
    let mut other_payload = owned_by_someone_else(claimed, "edge-f");
    other_payload["metadata"]["annotations"]["nephoran.com/payload-fingerprint"] =
        json!("0123456789abcdef");
    for object in [&other_key, &other_payload] {
        cluster.api.apply(MANAGER, object, false).expect("apply");
    }
    let worker = Worker::start(cluster.config.clone());
    worker.until_assigned().await;
    send(
        &cluster,
        taken,
        "Scale UPF to 3 replicas in namespace edge-f",
    )
    .await;
    send(
        &cluster,
        claimed,
        "Scale UPF to 3 replicas in namespace edge-f",
    )
    .await;
    let mut outcomes = Outcomes::new(&cluster.topics);
    outcomes.until_terminal([taken, claimed]).await;
    worker.stop().await;

    let failed = outcomes.terminal(taken)[0].clone();
    assert_eq!(failed.stage.as_str(), "failed");
    let error = failed.error.expect("an error");
    assert_eq!(error.code, ErrorCode::ApplyFailed);
    assert!(
        error.message.starts_with("conflict:") && error.message.contains("someone-else"),
        "{}",
        error.message
    );
    let rejected = outcomes.terminal(claimed)[0].clone();
    assert_eq!(rejected.stage.as_str(), "rejected");
    assert_eq!(
        rejected.error.expect("an error").code,
        ErrorCode::IdempotencyKeyConflict
    );
    for (key, object) in [(taken, &other_key), (claimed, &other_payload)] {
        assert!(
            applies_of(&cluster.api, &intent_name(key)).is_empty(),
            "{key}: applied over another request's object"
        );
        let now = cluster.api.get("edge-f", &intent_name(key)).unwrap();
        assert_eq!(
            now["metadata"]["annotations"],
            object["metadata"]["annotations"]
        );
    }
}
