//! The whole loop, as an OSS/BSS pipeline sees it: `submit "TEXT" --wait --for deployed`
//! (the binary) produces a request; a worker with `INTENT_SINK=kube` applies the
//! NetworkIntent to the Kubernetes API test server through kube's real client; the
//! operator (played by the test) sets its status; the worker's lifecycle watcher publishes
//! `deployed` or `failed`; and `submit` exits 0 on `deployed`, 1 with the reason when the
//! operator failed to deploy it.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::kubeapi::{KubeApi, Options};
use common::{brokers, TestTopics, Worker, PATIENCE};
use nephoran_kafka_consumer::apply::SinkSpec;
use nephoran_kafka_consumer::intent::intent_name;

/// Plays the operator: once the intent of `key` exists in `namespace` (the test server
/// cannot be awaited from outside: it is looked at every 50 ms), marks it deployed, or
/// failed with `failure`.
async fn operate(api: &KubeApi, namespace: &str, key: &str, failure: Option<&str>) {
    let name = intent_name(key);
    let appeared = tokio::time::timeout(PATIENCE, async {
        while api.get(namespace, &name).is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(appeared.is_ok(), "the intent of {key} was never applied");
    let written = match failure {
        None => api.deployed(namespace, &name, "all replicas ready"),
        Some(why) => api.failed(namespace, &name, why),
    };
    written.expect("the operator's status write");
}

/// `submit TEXT --key KEY --wait --for deployed` against the test's topics.
async fn submit_for_deployed(topics: &TestTopics, key: &str, text: &str) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_nephoran-kafka-consumer"))
        .env("KAFKA_BROKERS", brokers())
        .env("RUST_LOG", "warn")
        .arg("submit")
        .arg(text)
        .args(["--key", key, "--wait", "--for", "deployed"])
        .args(["--timeout", &format!("{}s", PATIENCE.as_secs())])
        .args(["--service-requests-topic", &topics.service_requests])
        .args(["--network-events-topic", &topics.network_events])
        .args(["--outcomes-topic", &topics.outcomes])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run submit")
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_wait_for_deployed_follows_a_request_through_the_cluster_and_back() {
    let api = KubeApi::start_with(Options {
        namespaces: vec!["default".into(), "core5g".into()],
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig).unwrap();
    // The only test of this binary: the process's one KUBECONFIG is this server's.
    std::env::set_var("KUBECONFIG", &kubeconfig);
    let topics = TestTopics::create("closed-loop", 1).await;
    let mut config = topics.config(dir.path());
    config.intent_sink = SinkSpec::Kube;
    let worker = Worker::start(config);
    worker.until_assigned().await;

    let ((), output) = tokio::join!(
        operate(&api, "core5g", "loop-1", None),
        submit_for_deployed(
            &topics,
            "loop-1",
            "Deploy AMF with 2 replicas in namespace core5g"
        ),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let stages: Vec<&str> = stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        stages,
        ["received", "translated", "applied", "deployed"],
        "{stdout}"
    );
    let object = api.get("core5g", &intent_name("loop-1")).expect("applied");
    assert_eq!(object["spec"]["scaling"]["replicas"], 2);

    // The operator could not deploy the next one: `failed`, exit 1 with its reason.
    let ((), output) = tokio::join!(
        operate(&api, "core5g", "loop-2", Some("image pull back-off")),
        submit_for_deployed(&topics, "loop-2", "Deploy SMF in namespace core5g"),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("deploy_failed") && stderr.contains("image pull back-off"),
        "{stderr}"
    );
    worker.stop().await;
}
