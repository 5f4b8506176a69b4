//! The lifecycle comes back: NetworkIntents on the Kubernetes API test server (made as
//! the kube sink makes them, with the source annotations) whose status a test changes as
//! the operator would; the watcher publishes `deployed` and `failed` on the real broker,
//! once each, not again after a restart, once with two replicas owning different
//! partitions, and after a `410 Gone`.

mod common;

use std::time::Duration;

use common::kubeapi::KubeApi;
use common::{Outcomes, TestTopics, PATIENCE};
use nephoran_kafka_consumer::avro::outcome::OutcomeEncoding;
use nephoran_kafka_consumer::lease::{Held, Lease};
use nephoran_kafka_consumer::lifecycle::{self, transition, Handle, Ownership, Reporter, Settings};
use nephoran_kafka_consumer::outcome::{generation_event_id, ErrorCode, Stage};
use serde_json::{json, Value};

const NS: &str = "ran";

/// A watcher running in-process against `api`, publishing to the test's outcomes topic.
struct Watcher(Handle);

impl Watcher {
    async fn start(api: &KubeApi, topics: &TestTopics, ownership: Ownership) -> Self {
        Self::start_writing(api, topics, ownership, OutcomeEncoding::Json).await
    }

    /// A watcher whose events are written as `encoding` says (the worker's format).
    async fn start_writing(
        api: &KubeApi,
        topics: &TestTopics,
        ownership: Ownership,
        encoding: OutcomeEncoding,
    ) -> Self {
        let kubeconfig =
            kube::config::Kubeconfig::from_yaml(&api.kubeconfig()).expect("test kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("kube config from the test kubeconfig");
        let client = kube::Client::try_from(config).expect("kube client");
        let properties = [("bootstrap.servers".to_string(), common::brokers())].into();
        let reporter = Reporter::new(&properties, &topics.outcomes)
            .expect("reporter")
            .with_outcome_encoding(encoding);
        let settings = Settings {
            recheck: Duration::from_millis(500),
        };
        Self(Handle::spawn(client, reporter, ownership, settings))
    }

    async fn stop(self) {
        self.0.stop().await.expect("watcher ends cleanly");
    }
}

/// The object the kube sink applies for `key`, from `topic`/`partition`/`offset`.
fn create(api: &KubeApi, key: &str, topic: &str, partition: i32, offset: i64) -> String {
    apply_as_sink(api, key, topic, partition, offset, "deploy amf")
}

/// [`create`] with the intent text `text`: another text is another spec (a new generation).
fn apply_as_sink(
    api: &KubeApi,
    key: &str,
    topic: &str,
    partition: i32,
    offset: i64,
    text: &str,
) -> String {
    let name = nephoran_kafka_consumer::intent::intent_name(key);
    let object = json!({
        "apiVersion": "nephoran.com/v1alpha1",
        "kind": "NetworkIntent",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {
                "app.kubernetes.io/managed-by": "nephoran-kafka-consumer", // lifecycle::SELECTOR
                lifecycle::SOURCE_TOPIC_LABEL: topic,
            },
            "annotations": {
                "nephoran.com/idempotency-key": key,
                lifecycle::SOURCE_PARTITION_ANNOTATION: partition.to_string(),
                lifecycle::SOURCE_OFFSET_ANNOTATION: offset.to_string(),
            },
        },
        "spec": {
            "intent": text,
            "intentType": "deployment",
            "priority": "medium",
            "targetNamespace": NS,
            "targetComponents": ["amf"],
        },
    });
    api.apply("nephoran-kafka-consumer", &object, false)
        .expect("apply as the sink");
    name
}

/// Waits until the watcher has recorded `value` on the object (it does so after the
/// broker acknowledged the event). The test server offers nothing to await, so it polls.
async fn until_recorded(api: &KubeApi, name: &str, value: &str) {
    until_recorded_at(api, name, value, 1).await;
}

async fn until_recorded_at(api: &KubeApi, name: &str, value: &str, generation: i64) {
    let recorded = async {
        loop {
            let object = api.get(NS, name).unwrap_or(Value::Null);
            if object["metadata"]["annotations"][transition::REPORTED_ANNOTATION] == value {
                return object;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let object = tokio::time::timeout(PATIENCE, recorded)
        .await
        .unwrap_or_else(|_| panic!("{name} not recorded as {value} within {PATIENCE:?}"));
    assert_eq!(
        object["metadata"]["generation"], generation,
        "the record does not bump the generation"
    );
}

fn count(outcomes: &Outcomes, key: &str, stage: &str) -> usize {
    outcomes.stages(key).iter().filter(|s| **s == stage).count()
}

async fn until_stage(outcomes: &mut Outcomes, key: &str, stage: &'static str) {
    let key = key.to_string();
    outcomes.until(|o| o.stages(&key).contains(&stage)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployed_and_failed_once_each_and_not_again_after_a_restart() {
    let topics = TestTopics::create("lifecycle-once", 1).await;
    let api = KubeApi::start().await;
    api.create_namespace(NS);
    let deployed = create(&api, "order-deployed", &topics.service_requests, 0, 7);
    let failed = create(&api, "order-failed", &topics.service_requests, 0, 8);
    let mut outcomes = Outcomes::new(&topics);

    let watcher = Watcher::start(&api, &topics, Ownership::All).await;
    api.wait_for_watches(1).await;
    api.deployed(NS, &deployed, "all components ready")
        .expect("status");
    api.failed(NS, &failed, "quota exceeded\u{1b}[31m in ran")
        .expect("status");
    until_stage(&mut outcomes, "order-deployed", "deployed").await;
    until_stage(&mut outcomes, "order-failed", "failed").await;
    until_recorded(&api, &deployed, "deployed@1").await;
    until_recorded(&api, &failed, "failed@1").await;

    let event = &outcomes.by_key["order-deployed"][0];
    assert_eq!(
        event.event_id,
        generation_event_id("order-deployed", Stage::Deployed, 1)
    );
    assert_eq!(event.source.topic, topics.service_requests);
    assert_eq!((event.source.partition, event.source.offset), (0, 7));
    let intent = event.intent.as_ref().expect("intent ref");
    assert_eq!(
        (intent.namespace.as_str(), intent.name.as_str()),
        (NS, deployed.as_str())
    );
    assert!(event.error.is_none());
    let event = &outcomes.by_key["order-failed"][0];
    let error = event
        .error
        .as_ref()
        .expect("failed carries the status message");
    assert_eq!(error.code, ErrorCode::DeployFailed);
    assert_eq!(error.message, "quota exceeded\\u{1b}[31m in ran");
    assert_eq!((event.source.partition, event.source.offset), (0, 8));

    // A restart lists both again, with their records: nothing is published again. A
    // later intent deployed after the restart marks how far the new watcher got (one
    // outcomes partition: publication order).
    watcher.stop().await;
    let watcher = Watcher::start(&api, &topics, Ownership::All).await;
    api.wait_for_watches(1).await;
    let later = create(&api, "order-later", &topics.service_requests, 0, 9);
    api.deployed(NS, &later, "ready").expect("status");
    until_stage(&mut outcomes, "order-later", "deployed").await;
    watcher.stop().await;

    assert_eq!(count(&outcomes, "order-deployed", "deployed"), 1);
    assert_eq!(count(&outcomes, "order-failed", "failed"), 1);
    assert_eq!(count(&outcomes, "order-deployed", "failed"), 0);
    assert_eq!(outcomes.in_order.len(), 3, "{:?}", outcomes.in_order);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_writes_its_events_in_the_workers_format() {
    use rdkafka::Message;
    let topics = TestTopics::create("lifecycle-avro", 1).await;
    let api = KubeApi::start().await;
    api.create_namespace(NS);
    let name = create(&api, "order-avro", &topics.service_requests, 0, 3);
    let watcher =
        Watcher::start_writing(&api, &topics, Ownership::All, OutcomeEncoding::SingleObject).await;
    api.wait_for_watches(1).await;
    api.deployed(NS, &name, "ready").expect("status");
    let records = common::TopicReader::new(&topics.outcomes, 1);
    let record = records.next(PATIENCE).await.expect("the deployed event");
    watcher.stop().await;
    assert_eq!(
        common::header(&record, "content-type").as_deref(),
        Some("application/avro")
    );
    let payload = record.payload().expect("a value");
    assert_eq!(&payload[..2], &[0xC3, 0x01], "single-object Avro");
    let mut outcomes = Outcomes::new(&topics);
    until_stage(&mut outcomes, "order-avro", "deployed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_report_each_transition_once() {
    let topics = TestTopics::create("lifecycle-replicas", 1).await;
    let api = KubeApi::start().await;
    api.create_namespace(NS);
    let source = &topics.service_requests;
    let on_p0 = create(&api, "on-p0", source, 0, 1);
    let on_p1 = create(&api, "on-p1", source, 1, 1);
    let mut outcomes = Outcomes::new(&topics);

    let owning = |partition: i32| {
        let held = Held::default();
        held.insert((source.clone(), partition), Lease::new(1));
        Ownership::Partitions(held)
    };
    let first = Watcher::start(&api, &topics, owning(0)).await;
    let second = Watcher::start(&api, &topics, owning(1)).await;
    api.wait_for_watches(2).await;
    api.deployed(NS, &on_p0, "ready").expect("status");
    api.failed(NS, &on_p1, "image pull failed").expect("status");
    until_stage(&mut outcomes, "on-p0", "deployed").await;
    until_stage(&mut outcomes, "on-p1", "failed").await;
    until_recorded(&api, &on_p0, "deployed@1").await;
    until_recorded(&api, &on_p1, "failed@1").await;

    // Later intents on both partitions: each replica has looked at the first ones (and
    // rechecked those it does not own) by the time its later one comes out.
    let later0 = create(&api, "later-p0", source, 0, 2);
    let later1 = create(&api, "later-p1", source, 1, 2);
    api.deployed(NS, &later0, "ready").expect("status");
    api.deployed(NS, &later1, "ready").expect("status");
    until_stage(&mut outcomes, "later-p0", "deployed").await;
    until_stage(&mut outcomes, "later-p1", "deployed").await;
    outcomes.drain(Duration::from_secs(2)).await;
    first.stop().await;
    second.stop().await;

    assert_eq!(count(&outcomes, "on-p0", "deployed"), 1);
    assert_eq!(count(&outcomes, "on-p1", "failed"), 1);
    assert_eq!(outcomes.in_order.len(), 4, "{:?}", outcomes.in_order);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_survives_410_gone() {
    let topics = TestTopics::create("lifecycle-gone", 1).await;
    let api = KubeApi::start().await;
    api.create_namespace(NS);
    let before = create(&api, "before-gone", &topics.service_requests, 0, 1);
    let mut outcomes = Outcomes::new(&topics);

    let watcher = Watcher::start(&api, &topics, Ownership::All).await;
    api.wait_for_watches(1).await;
    api.deployed(NS, &before, "ready").expect("status");
    until_stage(&mut outcomes, "before-gone", "deployed").await;
    until_recorded(&api, &before, "deployed@1").await;

    // The history is gone and the watch ends with 410: the watcher lists again.
    let lists = |api: &KubeApi| {
        api.requests()
            .iter()
            .filter(|r| r.method == "GET" && !r.is_watch() && r.path.ends_with("/networkintents"))
            .count()
    };
    let lists_before = lists(&api);
    api.expire_watches();
    let after = create(&api, "after-gone", &topics.service_requests, 0, 2);
    api.deployed(NS, &after, "ready").expect("status");
    until_stage(&mut outcomes, "after-gone", "deployed").await;
    watcher.stop().await;

    assert!(
        lists(&api) > lists_before,
        "the watcher listed again after 410"
    );
    assert_eq!(count(&outcomes, "before-gone", "deployed"), 1);
    assert_eq!(outcomes.in_order.len(), 2, "{:?}", outcomes.in_order);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_that_moves_brings_its_pending_transitions() {
    let topics = TestTopics::create("lifecycle-moves", 1).await;
    let api = KubeApi::start().await;
    api.create_namespace(NS);
    let source = &topics.service_requests;
    let pending = create(&api, "moves", source, 0, 1);
    let mut outcomes = Outcomes::new(&topics);

    // The replica holds partition 1 only: the deployed intent of partition 0 waits,
    // unreported. The watcher takes events in order, so once the later intent of
    // partition 1 is reported, the first one has been seen and passed over.
    let held = Held::default();
    held.insert((source.clone(), 1), Lease::new(1));
    let watcher = Watcher::start(&api, &topics, Ownership::Partitions(held.clone())).await;
    api.wait_for_watches(1).await;
    api.deployed(NS, &pending, "ready").expect("status");
    let marker = create(&api, "marker", source, 1, 1);
    api.deployed(NS, &marker, "ready").expect("status");
    until_stage(&mut outcomes, "marker", "deployed").await;
    assert_eq!(
        count(&outcomes, "moves", "deployed"),
        0,
        "not held: not reported"
    );
    // Partition 0 is assigned to it: the recheck reports what was pending, once.
    held.insert((source.clone(), 0), Lease::new(1));
    until_stage(&mut outcomes, "moves", "deployed").await;
    until_recorded(&api, &pending, "deployed@1").await;
    watcher.stop().await;
    outcomes.drain(Duration::from_secs(1)).await;
    assert_eq!(count(&outcomes, "moves", "deployed"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_generation_is_deployed_again_with_an_id_of_its_own() {
    let topics = TestTopics::create("lifecycle-generations", 1).await;
    let api = KubeApi::start().await;
    api.create_namespace(NS);
    let source = &topics.service_requests;
    let name = create(&api, "regen", source, 0, 1);
    let mut outcomes = Outcomes::new(&topics);
    let watcher = Watcher::start(&api, &topics, Ownership::All).await;
    api.wait_for_watches(1).await;
    api.deployed(NS, &name, "ready").expect("status");
    until_recorded(&api, &name, "deployed@1").await;

    // The sink applies a changed spec (its own field manager; the record is not its
    // field, so the apply keeps it): generation 2, whose old status says nothing yet.
    apply_as_sink(&api, "regen", source, 0, 5, "deploy amf and smf");
    let object = api.get(NS, &name).expect("object");
    assert_eq!(object["metadata"]["generation"], 2);
    assert_eq!(
        object["metadata"]["annotations"][transition::REPORTED_ANNOTATION],
        "deployed@1"
    );
    api.deployed(NS, &name, "ready again").expect("status");
    until_recorded_at(&api, &name, "deployed@2", 2).await;
    watcher.stop().await;
    outcomes.drain(Duration::from_secs(1)).await;

    let ids: Vec<&str> = outcomes.by_key["regen"]
        .iter()
        .map(|e| e.event_id.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            generation_event_id("regen", Stage::Deployed, 1),
            generation_event_id("regen", Stage::Deployed, 2),
        ]
    );
    assert_eq!(outcomes.by_key["regen"][1].source.offset, 5);
}
