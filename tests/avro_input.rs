//! Avro input on the real broker: the same request as JSON, Confluent-framed Avro (its
//! writer schema in the registry test server), single-object Avro and a structured
//! CloudEvent becomes the same NetworkIntent; evolved writer schemas are read; unknown ids, unknown fingerprints and
//! truncated bodies are `rejected` with their codes; and a registry that is down makes
//! the partition wait (not ready, nothing rejected), then everything is applied.

mod common;

use std::time::{Duration, Instant};

use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use common::recorder::{metric, recorder};
use common::registry::Registry as TestRegistry;
use common::{committed_and_end, produce, producer, until, Outcomes, TestTopics, Worker, PATIENCE};
use nephoran_kafka_consumer::avro::schemas::{self, Known};
use nephoran_kafka_consumer::config::Config;
use nephoran_kafka_consumer::intent::NetworkIntent;
use nephoran_kafka_consumer::outcome::OutcomeEvent;

const SERVICE_REQUEST: &str = include_str!("../schemas/service-request.avsc");
const NETWORK_EVENT: &str = include_str!("../schemas/network-event.avsc");

/// A writer of service requests with a field the reader does not know.
const WITH_EXTRA_FIELD: &str = r#"{"type":"record","name":"ServiceRequest","namespace":"com.oss.orders",
  "fields":[
    {"name":"idempotency_key","type":["null","string"],"default":null},
    {"name":"intent","type":"string"},
    {"name":"ticket","type":"string"},
    {"name":"priority","type":["null","string"],"default":null}]}"#;

/// A writer of service requests without most optional fields.
const WITHOUT_OPTIONAL_FIELDS: &str = r#"{"type":"record","name":"ServiceRequest",
  "fields":[
    {"name":"idempotency_key","type":["null","string"],"default":null},
    {"name":"intent","type":"string"}]}"#;

fn service_request(key: &str) -> serde_json::Value {
    serde_json::json!({
        "idempotency_key": key,
        "intent": "Deploy AMF with 3 replicas in namespace core5g",
        "priority": "high",
        "parameters": {"slice_type": "eMBB", "sst": 1}
    })
}

fn kpi_event(id: &str) -> serde_json::Value {
    serde_json::json!({
        "event_id": id, "event_type": "kpi_threshold_crossed", "source": "smf-1",
        "nf_type": "smf", "namespace": "core5g", "severity": "major",
        "metric": "cpu_utilization", "value": 92.0, "threshold": 80.0,
        "timestamp": "2026-11-26T10:00:00Z"
    })
}

/// `json` as an Avro value: objects as maps, which resolving makes records.
fn avro_value(json: serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Boolean(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Long(i),
            None => Value::Double(n.as_f64().expect("a number")),
        },
        serde_json::Value::String(s) => Value::String(s),
        serde_json::Value::Array(items) => {
            Value::Array(items.into_iter().map(avro_value).collect())
        }
        serde_json::Value::Object(o) => {
            Value::Map(o.into_iter().map(|(k, v)| (k, avro_value(v))).collect())
        }
    }
}

/// The Avro datum of `json` written with `schema`.
fn datum(schema: &Schema, json: serde_json::Value) -> Vec<u8> {
    let value = avro_value(json)
        .resolve(schema)
        .expect("the value fits the writer schema");
    GenericDatumWriter::builder(schema)
        .build()
        .and_then(|writer| writer.write_value_to_vec(value))
        .expect("written")
}

fn confluent(id: u32, schema_text: &str, json: serde_json::Value) -> Vec<u8> {
    let schema = Schema::parse_str(schema_text).expect("schema");
    let mut payload = vec![0];
    payload.extend_from_slice(&id.to_be_bytes());
    payload.extend(datum(&schema, json));
    payload
}

fn single_object(known: &Known, json: serde_json::Value) -> Vec<u8> {
    let mut payload = vec![0xC3, 0x01];
    payload.extend_from_slice(&known.fingerprint);
    payload.extend(datum(&known.schema, json));
    payload
}

/// A record to produce: topic, record key (also the idempotency key), value, headers.
type Record<'a> = (&'a str, &'a str, Vec<u8>, Vec<(&'a str, &'a str)>);

fn config(topics: &TestTopics, dir: &std::path::Path, registry: &TestRegistry) -> Config {
    let mut config = topics.config(dir);
    config.registry.schema_registry_url = Some(registry.url());
    config
}

/// The intent an `applied` outcome names, as the `dir:` sink wrote it.
fn applied_intent(dir: &std::path::Path, outcomes: &Outcomes, key: &str) -> NetworkIntent {
    let terminal: Vec<&OutcomeEvent> = outcomes.terminal(key);
    let event = terminal
        .first()
        .unwrap_or_else(|| panic!("{key} has a terminal outcome"));
    assert_eq!(event.stage.as_str(), "applied", "{key}: {event:?}");
    let intent = event.intent.as_ref().expect("applied names its intent");
    let path = dir
        .join(&intent.namespace)
        .join(format!("{}.yaml", intent.name));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} should exist: {e}", path.display()));
    serde_yaml::from_str(&text).expect("intent YAML")
}

fn rejection(outcomes: &Outcomes, key: &str) -> (String, String) {
    let terminal = outcomes.terminal(key);
    let event = terminal.first().expect("a terminal outcome");
    assert_eq!(event.stage.as_str(), "rejected", "{key}: {event:?}");
    let error = event.error.as_ref().expect("a rejection has its error");
    (error.code.as_str().to_string(), error.message.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_format_of_a_request_becomes_the_same_intent_and_bad_avro_gets_its_code() {
    let registry = TestRegistry::start().await;
    let request_id = registry.register("orders-value", SERVICE_REQUEST);
    let event_id = registry.register("events-value", NETWORK_EVENT);
    let extra_id = registry.register("oss-orders-value", WITH_EXTRA_FIELD);
    let minimal_id = registry.register("minimal-orders-value", WITHOUT_OPTIONAL_FIELDS);
    let topics = TestTopics::create("avroin", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    let requests = &topics.service_requests;
    let events = &topics.network_events;
    let avro_body = |key: &str| single_object(&schemas::SERVICE_REQUEST, service_request(key));
    let messages: Vec<Record> = vec![
        (
            requests,
            "json-1",
            service_request("json-1").to_string().into_bytes(),
            vec![],
        ),
        (
            requests,
            "conf-1",
            confluent(request_id, SERVICE_REQUEST, service_request("conf-1")),
            vec![],
        ),
        (requests, "so-1", avro_body("so-1"), vec![]),
        (
            requests,
            // A structured CloudEvent is keyed by its source and id.
            "/oss/orders/ce-1",
            serde_json::json!({
                "specversion": "1.0", "id": "ce-1", "source": "/oss/orders",
                "type": "com.example.order", "data": service_request("ce-data"),
            })
            .to_string()
            .into_bytes(),
            vec![("content-type", "application/cloudevents+json")],
        ),
        (
            events,
            "ev-json",
            kpi_event("ev-json").to_string().into_bytes(),
            vec![],
        ),
        (
            events,
            "ev-conf",
            confluent(event_id, NETWORK_EVENT, kpi_event("ev-conf")),
            vec![],
        ),
        (
            events,
            "ev-so",
            single_object(&schemas::NETWORK_EVENT, kpi_event("ev-so")),
            vec![],
        ),
        (
            requests,
            "extra-1",
            confluent(
                extra_id,
                WITH_EXTRA_FIELD,
                serde_json::json!({"idempotency_key": "extra-1", "ticket": "CHG-7",
                    "intent": "Deploy AMF with 3 replicas in namespace core5g"}),
            ),
            vec![],
        ),
        (
            requests,
            "minimal-1",
            confluent(
                minimal_id,
                WITHOUT_OPTIONAL_FIELDS,
                serde_json::json!({"idempotency_key": "minimal-1",
                    "intent": "Deploy AMF with 3 replicas in namespace core5g"}),
            ),
            vec![],
        ),
        (
            requests,
            "bad-id",
            confluent(request_id + 1000, SERVICE_REQUEST, service_request("x")),
            vec![("idempotency-key", "bad-id")],
        ),
        (
            requests,
            "bad-fingerprint",
            {
                let mut payload = avro_body("y");
                payload[2..10].copy_from_slice(&[0xAB; 8]);
                payload
            },
            vec![("idempotency-key", "bad-fingerprint")],
        ),
        (
            requests,
            "truncated",
            {
                let payload = avro_body("z");
                payload[..payload.len() - 3].to_vec()
            },
            vec![("idempotency-key", "truncated")],
        ),
    ];
    for (topic, key, payload, headers) in &messages {
        produce(&producer, topic, Some(key), payload, headers).await;
    }

    let worker = Worker::start(config(&topics, dir.path(), &registry));
    let mut outcomes = Outcomes::new(&topics);
    outcomes
        .until_terminal(messages.iter().map(|(_, key, _, _)| *key))
        .await;

    // The same request in four formats: the same spec (the name follows the key).
    let from_json = applied_intent(dir.path(), &outcomes, "json-1");
    for key in ["conf-1", "so-1", "/oss/orders/ce-1"] {
        assert_eq!(
            applied_intent(dir.path(), &outcomes, key).spec,
            from_json.spec,
            "{key}"
        );
    }
    // An event's intent text names its event id: compared with the id set aside.
    let event_spec = |key: &str| {
        let mut spec = applied_intent(dir.path(), &outcomes, key).spec;
        spec.intent = spec.intent.replace(key, "ID");
        spec
    };
    let event_json = event_spec("ev-json");
    assert!(
        event_json.intent.contains("(event ID from smf-1)"),
        "{}",
        event_json.intent
    );
    for key in ["ev-conf", "ev-so"] {
        assert_eq!(event_spec(key), event_json, "{key}");
    }
    // Keyed by the datum's own key field, as the JSON is.
    for key in ["conf-1", "so-1", "ev-conf", "ev-so"] {
        assert_eq!(
            outcomes.stages(key),
            ["received", "translated", "applied"],
            "{key}"
        );
    }
    // Evolved writers are read: the extra field dropped, the missing ones defaulted.
    for key in ["extra-1", "minimal-1"] {
        let intent = applied_intent(dir.path(), &outcomes, key);
        assert_eq!(intent.spec.intent, from_json.spec.intent, "{key}");
    }

    let (code, message) = rejection(&outcomes, "bad-id");
    assert_eq!(code, "unknown_schema_id");
    assert!(
        message.contains(&format!("id {}", request_id + 1000)),
        "{message}"
    );
    let (code, message) = rejection(&outcomes, "bad-fingerprint");
    assert_eq!(code, "unknown_schema_fingerprint");
    assert!(message.contains("abababababababab"), "{message}");
    let (code, message) = rejection(&outcomes, "truncated");
    assert_eq!(code, "invalid_avro");
    assert!(message.starts_with("truncated:"), "{message}");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_that_is_down_makes_the_partition_wait_then_everything_is_applied() {
    recorder();
    const OUTAGE: Duration = Duration::from_secs(20);
    let registry = TestRegistry::start().await;
    let id = registry.register("orders-value", SERVICE_REQUEST);
    let topics = TestTopics::create("avroin-down", 1).await;
    let topic = topics.service_requests.clone();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&topics, dir.path(), &registry);
    config.readiness_grace = Duration::from_secs(2);
    let worker = Worker::start(config);
    worker.until_assigned().await;

    registry.down();
    let down_at = Instant::now();
    let producer = producer();
    let mut keys = Vec::new();
    for n in 0..4 {
        let key = format!("wait-{n}");
        let payload = confluent(id, SERVICE_REQUEST, service_request(&key));
        produce(&producer, &topic, Some(&key), &payload, &[]).await;
        keys.push(key);
    }
    // A JSON record behind them waits too: its partition's order is kept.
    let behind = "json-behind".to_string();
    let payload = service_request(&behind).to_string().into_bytes();
    produce(&producer, &topic, Some(&behind), &payload, &[]).await;
    keys.push(behind.clone());

    until("readiness falls for the registry", || {
        worker
            .health
            .not_ready()
            .is_some_and(|why| why.contains("schema registry"))
    })
    .await;
    let paused = [("topic", topic.as_str()), ("reason", "schema_registry")];
    until("the partition is paused", || {
        metric("partition_pauses_total", &paused) >= 1.0
    })
    .await;
    assert!(
        metric(
            "schema_registry_requests_total",
            &[("result", "unavailable")]
        ) >= 1.0
    );
    // Nothing of the waiting records is published, and nothing is committed.
    let mut outcomes = Outcomes::new(&topics);
    outcomes.drain(Duration::from_secs(3)).await;
    assert!(
        outcomes.in_order.is_empty(),
        "published while waiting: {:?}",
        outcomes.in_order
    );
    let (committed, _) = committed_and_end(&topics.group, &topic, 1)[0];
    assert!(committed <= 0, "committed to {committed} while waiting");

    // The outage lasts its 20 s (the scenario, not a wait for a result).
    tokio::time::sleep(OUTAGE.saturating_sub(down_at.elapsed())).await;
    assert!(
        !worker.health.is_ready(),
        "still not ready at the end of the outage"
    );
    registry.up();

    outcomes
        .until_terminal(keys.iter().map(String::as_str))
        .await;
    for key in &keys {
        assert_eq!(
            outcomes.stages(key),
            ["received", "translated", "applied"],
            "{key}"
        );
    }
    assert_eq!(outcomes.count("rejected"), 0);
    // In offset order: the JSON record behind the Avro ones is received last.
    let received: Vec<&str> = outcomes
        .in_order
        .iter()
        .filter(|e| e.stage.as_str() == "received")
        .map(|e| e.idempotency_key.as_str())
        .collect();
    assert_eq!(
        received,
        keys.iter().map(String::as_str).collect::<Vec<_>>()
    );
    until("ready again", || worker.health.is_ready()).await;
    until("committed to the end", || {
        let (committed, end) = committed_and_end(&topics.group, &topic, 1)[0];
        committed == end
    })
    .await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shutdown_does_not_wait_for_the_registry_and_the_next_worker_reads_the_record_again() {
    recorder();
    let registry = TestRegistry::start().await;
    let id = registry.register("orders-value", SERVICE_REQUEST);
    let topics = TestTopics::create("avroin-stop", 1).await;
    let topic = topics.service_requests.clone();
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(config(&topics, dir.path(), &registry));
    worker.until_assigned().await;
    registry.down();
    let payload = confluent(id, SERVICE_REQUEST, service_request("stopped-1"));
    produce(&producer(), &topic, Some("stopped-1"), &payload, &[]).await;
    let paused = [("topic", topic.as_str()), ("reason", "schema_registry")];
    until("the partition waits for the registry", || {
        metric("partition_pauses_total", &paused) >= 1.0
    })
    .await;
    // Stops within the shutdown deadline (PATIENCE guards a hang), committing nothing.
    tokio::time::timeout(PATIENCE, worker.stop())
        .await
        .expect("the worker stops while a fetch is retried");
    let (committed, _) = committed_and_end(&topics.group, &topic, 1)[0];
    assert!(
        committed <= 0,
        "committed to {committed} past a record never decoded"
    );

    registry.up();
    let worker = Worker::start(config(&topics, dir.path(), &registry));
    let mut outcomes = Outcomes::new(&topics);
    outcomes.until_terminal(["stopped-1"]).await;
    assert_eq!(
        outcomes.stages("stopped-1"),
        ["received", "translated", "applied"]
    );
    worker.stop().await;
}
