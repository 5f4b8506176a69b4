//! CloudEvents as input, against the real broker: a structured-mode CloudEvent yields
//! the same NetworkIntent as the same request in plain JSON; a binary-mode one is keyed
//! by `ce_source`/`ce_id`; a broken envelope, a wrong spec version or an unreadable
//! content type is `rejected` with its code.

mod common;

use common::{produce, producer, read_intent, Outcomes, TestTopics, Worker};
use nephoran_kafka_consumer::decode::KeySource;
use nephoran_kafka_consumer::outcome::{ErrorCode, Stage};

const REQUEST: &str = "Deploy AMF with 3 replicas in namespace core5g";

fn request(key: &str) -> serde_json::Value {
    serde_json::json!({
        "idempotency_key": key,
        "intent": REQUEST,
        "priority": "high",
        "parameters": {"slice_id": "embb-01", "sst": 1},
    })
}

/// A structured-mode CloudEvent (the JSON event format) around `data`.
fn structured(source: &str, id: &str, data: serde_json::Value) -> String {
    serde_json::json!({
        "specversion": "1.0",
        "id": id,
        "source": source,
        "type": "com.example.oss.order.created",
        "datacontenttype": "application/json",
        "time": "2026-11-29T10:00:00Z",
        "data": data,
    })
    .to_string()
}

const STRUCTURED: (&str, &str) = (
    "content-type",
    "application/cloudevents+json; charset=UTF-8",
);

#[tokio::test(flavor = "multi_thread")]
async fn cloudevents_in_either_mode_are_read_as_their_request() {
    let topics = TestTopics::create("cein", 2).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    let requests = &topics.service_requests;

    // The same request: plain JSON, a structured CloudEvent, a binary-mode CloudEvent.
    let plain = request("plain-1").to_string();
    produce(&producer, requests, Some("plain-1"), plain.as_bytes(), &[]).await;
    let event = structured("/oss/orders", "ord-1", request("inner-1"));
    produce(
        &producer,
        requests,
        Some("/oss/orders/ord-1"),
        event.as_bytes(),
        &[STRUCTURED],
    )
    .await;
    let binary = request("inner-2").to_string();
    produce(
        &producer,
        requests,
        Some("/oss/orders/ord-2"),
        binary.as_bytes(),
        &[
            ("ce_specversion", "1.0"),
            ("ce_id", "ord-2"),
            ("ce_source", "/oss/orders"),
            ("ce_type", "com.example.oss.order.created"),
            ("content-type", "application/json"),
        ],
    )
    .await;

    // Broken: an envelope without data, one of another spec version (both keyed by
    // their header), binary mode of another version, a type this service does not read.
    let mut no_data: serde_json::Value =
        serde_json::from_str(&structured("/oss/orders", "ord-3", request("x"))).unwrap();
    no_data.as_object_mut().map(|o| o.remove("data"));
    produce(
        &producer,
        requests,
        Some("bad-no-data"),
        no_data.to_string().as_bytes(),
        &[STRUCTURED, ("idempotency-key", "bad-no-data")],
    )
    .await;
    let old = structured("/oss/orders", "ord-4", request("x")).replace("\"1.0\"", "\"0.3\"");
    produce(
        &producer,
        requests,
        Some("bad-version"),
        old.as_bytes(),
        &[STRUCTURED, ("idempotency-key", "bad-version")],
    )
    .await;
    produce(
        &producer,
        requests,
        Some("bad-binary"),
        binary.as_bytes(),
        &[
            ("ce_specversion", "0.3"),
            ("ce_id", "ord-5"),
            ("ce_source", "/oss/orders"),
            ("ce_type", "t"),
        ],
    )
    .await;
    produce(
        &producer,
        requests,
        Some("bad-type"),
        plain.as_bytes(),
        &[
            ("content-type", "text/plain"),
            ("idempotency-key", "bad-type"),
        ],
    )
    .await;

    let worker = Worker::start(topics.config(dir.path()));
    let mut outcomes = Outcomes::new(&topics);
    outcomes
        .until_terminal([
            "plain-1",
            "/oss/orders/ord-1",
            "/oss/orders/ord-2",
            "bad-no-data",
            "bad-version",
        ])
        .await;
    // The last two claim no key: their outcomes carry a correlation id.
    outcomes.until_terminal_messages(7).await;
    worker.stop().await;

    // Each keyed as its mode says; all three applied.
    for (key, source) in [
        ("plain-1", KeySource::Payload),
        ("/oss/orders/ord-1", KeySource::Cloudevents),
        ("/oss/orders/ord-2", KeySource::Cloudevents),
    ] {
        let terminal = outcomes.terminal(key);
        assert_eq!(terminal.len(), 1, "{key}: {terminal:?}");
        assert_eq!(terminal[0].stage, Stage::Applied, "{key}: {terminal:?}");
        assert_eq!(terminal[0].idempotency_key, key);
        assert_eq!(terminal[0].key_source, source, "{key}");
    }
    // The same request yields the same NetworkIntent spec, whatever its envelope.
    let spec = |key: &str| {
        let applied = outcomes.terminal(key)[0];
        let intent = applied.intent.as_ref().expect("applied names its intent");
        let written = read_intent(dir.path(), &intent.namespace, &intent.name);
        assert_eq!(
            written.name(),
            nephoran_kafka_consumer::intent::intent_name(key)
        );
        serde_json::to_value(&written.spec).expect("spec as JSON")
    };
    let plain_spec = spec("plain-1");
    assert_eq!(plain_spec["intent"], REQUEST);
    assert_eq!(spec("/oss/orders/ord-1"), plain_spec);
    assert_eq!(spec("/oss/orders/ord-2"), plain_spec);

    // The broken ones are rejected, each with its code and the attribute named.
    let rejection = |key: &str| {
        let terminal = outcomes.terminal(key);
        assert_eq!(terminal.len(), 1, "{key}: {terminal:?}");
        assert_eq!(terminal[0].stage, Stage::Rejected, "{key}");
        terminal[0].error.clone().expect("a rejection says why")
    };
    let failure = rejection("bad-no-data");
    assert_eq!(failure.code, ErrorCode::InvalidSchema);
    assert!(failure.message.contains("\"data\""), "{}", failure.message);
    let failure = rejection("bad-version");
    assert_eq!(failure.code, ErrorCode::InvalidSchema);
    assert!(
        failure.message.contains("specversion"),
        "{}",
        failure.message
    );
    let unclaimed: Vec<_> = outcomes
        .in_order
        .iter()
        .filter(|e| e.stage == Stage::Rejected && e.key_source == KeySource::Derived)
        .map(|e| e.error.clone().expect("a rejection says why"))
        .collect();
    assert_eq!(unclaimed.len(), 2, "{unclaimed:?}");
    assert!(unclaimed
        .iter()
        .any(|f| f.code == ErrorCode::InvalidSchema && f.message.contains("ce_specversion")));
    assert!(unclaimed
        .iter()
        .any(|f| f.code == ErrorCode::InvalidRecord && f.message.contains("text/plain")));
}
