//! The policy against the real broker: requests outside it, sent as a producer would,
//! are rejected with the code that names why, each with a dead letter and no intent;
//! a good request after them on the same partition is applied.

mod common;

use std::time::Duration;

use common::recorder::{metric, recorder};
use common::{header, produce, producer, Outcomes, TestTopics, TopicReader, Worker};
use nephoran_kafka_consumer::outcome::{ErrorCode, Stage};
use rdkafka::Message;
use serde_json::{json, Value};

/// A hostile request: its key, payload, the code it must be rejected with, and a piece
/// of the message that says why.
struct Case {
    key: &'static str,
    payload: Value,
    code: ErrorCode,
    says: &'static str,
}

fn request(key: &str, text: &str) -> Value {
    json!({"idempotency_key": key, "intent": text, "requester": "oss-bss"})
}

fn with(mut value: Value, field: &str, content: Value) -> Value {
    value[field] = content;
    value
}

fn cases() -> Vec<Case> {
    use ErrorCode::{InvalidIntent, PolicyDenied};
    let text = "Deploy AMF with 3 replicas in namespace core5g";
    vec![
        Case {
            key: "parameters-1",
            payload: with(
                request("parameters-1", text),
                "parameters",
                json!({"privileged": true, "hostNetwork": true, "image": "evil.example/amf:latest",
                       "replicas": 5000, "namespace": "kube-system"}),
            ),
            code: PolicyDenied,
            says: "is not an allowed parameter",
        },
        Case {
            key: "parameters-2",
            payload: with(
                request("parameters-2", text),
                "parameters",
                json!({"sst": 300}),
            ),
            code: PolicyDenied,
            says: "spec.parameters.sst: 300 is denied by policy (must be within 1..=255)",
        },
        Case {
            key: "kube-system-1",
            payload: with(
                request("kube-system-1", "Deploy AMF with 3 replicas"),
                "target_namespace",
                json!("kube-system"),
            ),
            code: PolicyDenied,
            says: r#"spec.targetNamespace: "kube-system" is denied by policy (denied namespace pattern "kube-*")"#,
        },
        Case {
            key: "default-1",
            payload: with(
                request("default-1", "Deploy AMF with 3 replicas"),
                "target_namespace",
                json!("default"),
            ),
            code: PolicyDenied,
            says: r#"denied namespace pattern "default""#,
        },
        Case {
            key: "own-namespace-1",
            payload: request(
                "own-namespace-1",
                "Deploy AMF with 3 replicas in namespace nephoran-system",
            ),
            code: PolicyDenied,
            says: "the service's own namespace",
        },
        Case {
            key: "kelvin-1",
            payload: with(
                request("kelvin-1", "Deploy AMF with 3 replicas"),
                "target_namespace",
                json!("\u{212A}ube-system"),
            ),
            code: InvalidIntent,
            says: "never normalised",
        },
        Case {
            key: "zero-1",
            payload: request("zero-1", "Scale AMF to 0 replicas in namespace core5g"),
            code: PolicyDenied,
            says: "spec.scaling.replicas: 0 is denied by policy",
        },
        Case {
            key: "many-1",
            payload: request(
                "many-1",
                "Deploy AMF with 5000 replicas in namespace core5g",
            ),
            code: PolicyDenied,
            says: "above the maximum of 100",
        },
        Case {
            key: "cpu-1",
            payload: request(
                "cpu-1",
                "Deploy AMF with 2 replicas and cpu 100000 in namespace core5g",
            ),
            code: PolicyDenied,
            says: r#"spec.resources.cpu: "100000" is denied by policy"#,
        },
        Case {
            key: "memory-1",
            payload: request(
                "memory-1",
                "Deploy AMF with 2 replicas and memory 999999Ti in namespace core5g",
            ),
            code: PolicyDenied,
            says: r#"spec.resources.memory: "999999Ti" is denied by policy"#,
        },
        Case {
            key: "bidi-1",
            payload: request(
                "bidi-1",
                "Deploy AMF with 3 replicas in namespace core5g\u{202E}metsys-ebuk",
            ),
            code: InvalidIntent,
            says: "invisible formatting",
        },
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_outside_policy_are_rejected_and_a_good_one_after_them_is_applied() {
    recorder();
    let denials_before = metric("policy_denials_total", &[]);
    let topics = TestTopics::create("policy", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    let cases = cases();
    for case in &cases {
        produce(
            &producer,
            &topics.service_requests,
            Some(case.key),
            case.payload.to_string().as_bytes(),
            &[],
        )
        .await;
    }
    let good = with(
        request("good-1", "Deploy AMF with 3 replicas in namespace core5g"),
        "parameters",
        json!({"slice_id": "embb-01", "sst": 1, "slice_type": "embb"}),
    );
    produce(
        &producer,
        &topics.service_requests,
        Some("good-1"),
        good.to_string().as_bytes(),
        &[],
    )
    .await;

    let mut config = topics.config(dir.path());
    config.policy.pod_namespace = Some("nephoran-system".into());
    let worker = Worker::start(config);
    let mut outcomes = Outcomes::new(&topics);
    outcomes
        .until_terminal(cases.iter().map(|c| c.key).chain(["good-1"]))
        .await;

    for case in &cases {
        assert_eq!(
            outcomes.stages(case.key),
            ["received", "rejected", "dead_lettered"],
            "{}",
            case.key
        );
        let rejection = outcomes.terminal(case.key)[0];
        let error = rejection.error.as_ref().expect("a rejection says why");
        assert_eq!(error.code, case.code, "{}: {}", case.key, error.message);
        assert!(
            error.message.contains(case.says),
            "{}: {}",
            case.key,
            error.message
        );
    }
    assert_eq!(outcomes.terminal("good-1")[0].stage, Stage::Applied);

    // Every refusal has its dead letter, with the code in a header.
    let dlq = TopicReader::new(&topics.dlq, 1);
    let mut letters = Vec::new();
    while letters.len() < cases.len() {
        let letter = dlq
            .next(common::PATIENCE)
            .await
            .expect("a dead letter for every refusal");
        letters.push(letter);
    }
    for case in &cases {
        let letter = letters
            .iter()
            .find(|m| header(m, "nephoran.idempotency.key").as_deref() == Some(case.key))
            .unwrap_or_else(|| panic!("no dead letter for {}", case.key));
        assert_eq!(
            header(letter, "nephoran.error.code").as_deref(),
            Some(case.code.as_str()),
            "{}",
            case.key
        );
        assert_eq!(
            letter.payload(),
            Some(case.payload.to_string().as_bytes()),
            "the dead letter is the original"
        );
    }
    assert!(
        dlq.next(Duration::from_millis(500)).await.is_none(),
        "no dead letter for the good request"
    );

    worker.stop().await;
    assert_eq!(
        common::intent_files(dir.path()),
        1,
        "only the good request became an intent"
    );
    let policy_denied = cases
        .iter()
        .filter(|c| c.code == ErrorCode::PolicyDenied)
        .count();
    assert!(
        metric("policy_denials_total", &[]) - denials_before >= policy_denied as f64,
        "every denial is counted"
    );
    assert!(metric("policy_denials_total", &[("rule", "parameters")]) >= 2.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_configured_policy_is_the_one_in_force() {
    let topics = TestTopics::create("policy-settings", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let policy_file = dir.path().join("policy.yaml");
    std::fs::write(
        &policy_file,
        "allowed_namespaces: [core5g]\nmin_replicas: 0\nmax_replicas: 5\nparameters: {}\n",
    )
    .unwrap();
    let producer = producer();
    let sent = [
        (
            "zero-ok",
            request("zero-ok", "Scale AMF to 0 replicas in namespace core5g"),
        ),
        (
            "six",
            request("six", "Scale AMF to 6 replicas in namespace core5g"),
        ),
        (
            "elsewhere",
            request("elsewhere", "Deploy AMF with 2 replicas in namespace ran1"),
        ),
        (
            "any-parameter",
            with(
                request(
                    "any-parameter",
                    "Deploy AMF with 2 replicas in namespace core5g",
                ),
                "parameters",
                json!({"sst": 1}),
            ),
        ),
    ];
    for (key, payload) in &sent {
        produce(
            &producer,
            &topics.service_requests,
            Some(key),
            payload.to_string().as_bytes(),
            &[],
        )
        .await;
    }
    let mut config = topics.config(&dir.path().join("intents"));
    config.policy.policy_file = Some(policy_file);
    let worker = Worker::start(config);
    let mut outcomes = Outcomes::new(&topics);
    outcomes.until_terminal(sent.iter().map(|(k, _)| *k)).await;
    worker.stop().await;

    assert_eq!(outcomes.terminal("zero-ok")[0].stage, Stage::Applied);
    for (key, says) in [
        ("six", "above the maximum of 5"),
        ("elsewhere", r#"not in the allowed namespaces "core5g""#),
        ("any-parameter", "allowed: none"),
    ] {
        let error = outcomes.terminal(key)[0].error.clone().expect(key);
        assert_eq!(error.code, ErrorCode::PolicyDenied, "{key}");
        assert!(error.message.contains(says), "{key}: {}", error.message);
    }
}
