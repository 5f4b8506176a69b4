//! Outcomes in Avro (`OUTCOMES_FORMAT=avro`), against the real broker and the schema
//! registry test server:
//!
//! - with a registry, a worker binary registers the outcome schema under
//!   `<outcomes topic>-value` (waiting, without consuming, while the registry is down)
//!   and its outcomes decode in confluent-kafka's Python client (no project code) with
//!   the CloudEvents headers; `submit --wait` and `outcomes --json` read them too;
//! - without one, single-object outcomes decode with apache-avro's
//!   `GenericSingleObjectReader`, and `outcomes` reads them beside JSON ones and skips
//!   (reporting) a record it cannot read;
//! - the registration's refusal is a clear startup error, and shutting down ends the wait
//!   for a registry that is down.
//!
//! The Python client: `pip install 'confluent-kafka[avro,schemaregistry]==2.16.1'`
//! (.ci/run installs it). Without it the first test is skipped with a message, except
//! under CI, where it fails.

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::binary::BinaryWorker;
use common::registry::Registry as TestRegistry;
use common::{Outcomes, TestTopics, TopicReader, Worker, PATIENCE};
use nephoran_kafka_consumer::avro::outcome::OutcomeEncoding;
use nephoran_kafka_consumer::avro::registration;
use nephoran_kafka_consumer::avro::registry::Registry;
use nephoran_kafka_consumer::config::{OutcomesFormat, RegistryArgs};
use nephoran_kafka_consumer::health::Health;
use nephoran_kafka_consumer::outcome::OutcomeEvent;
use rdkafka::Message;
use serde_json::Value;

const APPLIED: &str = "Deploy AMF with 3 replicas in namespace core5g";
const REJECTED: &str = "Delete the AMF in namespace core5g";

fn request(key: &str, text: &str) -> Vec<u8> {
    serde_json::json!({"idempotency_key": key, "intent": text})
        .to_string()
        .into_bytes()
}

async fn produce_request(topics: &TestTopics, key: &str, text: &str) {
    common::produce(
        &common::producer_on(&topics.brokers),
        &topics.service_requests,
        Some(key),
        &request(key, text),
        &[("idempotency-key", key)],
    )
    .await;
}

/// Whether confluent-kafka's Avro deserialiser can be imported; under CI it must be.
fn python_client_installed() -> bool {
    let installed = std::process::Command::new("python3")
        .args([
            "-c",
            "import confluent_kafka.schema_registry.avro, confluent_kafka.schema_registry",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI: python3 cannot import confluent_kafka.schema_registry.avro; .ci/run installs \
             it with pip install 'confluent-kafka[avro,schemaregistry]==2.16.1'"
        );
        eprintln!(
            "skipping: python3 cannot import confluent_kafka.schema_registry.avro \
             (pip install 'confluent-kafka[avro,schemaregistry]==2.16.1')"
        );
    }
    installed
}

/// The registry client the worker would build for `url`.
fn registry(url: Option<String>) -> Option<Registry> {
    Registry::from_args(&registry_args(url)).expect("valid registry settings")
}

fn registry_args(url: Option<String>) -> RegistryArgs {
    RegistryArgs {
        schema_registry_url: url,
        schema_registry_basic_auth_file: None,
        schema_registry_timeout: Duration::from_secs(5),
        schema_registry_cache_schemas: 10,
    }
}

/// A CLI command with the broker of `topics` and the registry at `url`, killed on drop.
fn command(topics: &TestTopics, url: Option<&str>) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_nephoran-kafka-consumer"));
    command
        .env("KAFKA_BROKERS", &topics.brokers)
        .env("RUST_LOG", "warn")
        .env_remove("SCHEMA_REGISTRY_URL")
        .env("OUTCOMES_TOPIC", &topics.outcomes)
        .kill_on_drop(true);
    if let Some(url) = url {
        command.env("SCHEMA_REGISTRY_URL", url);
    }
    command
}

/// The first `n` lines `outcomes ARGS` prints to stdout, and the first of its stderr
/// lines that are warnings (those that came before the last stdout line).
async fn outcomes_lines(
    topics: &TestTopics,
    url: Option<&str>,
    args: &[&str],
    n: usize,
) -> (Vec<String>, String) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut child = command(topics, url)
        .arg("outcomes")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run outcomes");
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut lines = Vec::new();
    while lines.len() < n {
        let mut line = String::new();
        let read = tokio::time::timeout(PATIENCE, stdout.read_line(&mut line))
            .await
            .unwrap_or_else(|_| panic!("outcomes printed only {lines:?}"))
            .expect("read stdout");
        assert!(read > 0, "outcomes ended after {lines:?}");
        lines.push(line.trim_end().to_string());
    }
    child.kill().await.expect("stop outcomes");
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr).await;
    }
    (lines, stderr)
}

/// Waits until the worker has logged `message`; its fields.
async fn until_logged(worker: &BinaryWorker, message: &str) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(fields) = worker.logged(message).into_iter().next() {
            return fields;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker did not log {message:?}:\n{}",
            worker.tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn avro_outcomes_through_the_registry_decode_in_confluent_kafkas_python_client() {
    let registry = TestRegistry::start().await;
    let url = registry.url();
    let topics = TestTopics::create("avro-outcomes", 2).await;
    let subject = format!("{}-value", topics.outcomes);
    let sink = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();

    // The registry is down when the worker starts: it waits, consuming nothing.
    registry.down();
    let worker = BinaryWorker::start(
        &topics.args(sink.path()),
        &[("OUTCOMES_FORMAT", "avro"), ("SCHEMA_REGISTRY_URL", &url)],
        &logs.path().join("worker.log"),
    )
    .await;
    produce_request(&topics, "avro-ok", APPLIED).await;
    produce_request(&topics, "avro-rejected", REJECTED).await;
    until_logged(
        &worker,
        "the schema registry did not answer; outcome events cannot be published and nothing \
         is consumed until the outcome schema is registered",
    )
    .await;
    let ready = worker.probe("/readyz").await;
    assert!(
        matches!(&ready, Some((503, body)) if body.contains("not yet a member")),
        "not ready, not in the group: {ready:?}"
    );
    registry.up();

    let started = until_logged(
        &worker,
        "outcome events are written as Avro in the Confluent wire format",
    )
    .await;
    let versions = registry.versions(&subject);
    assert_eq!(versions.len(), 1, "registered once under {subject}");
    assert_eq!(started["schema_id"].as_u64(), Some(u64::from(versions[0])));
    assert_eq!(started["subject"].as_str(), Some(subject.as_str()));

    // The tests' own reader (the project's decoder) sees every stage.
    let mut outcomes = Outcomes::with_registry(&topics, &url);
    outcomes
        .until(|o| {
            o.stages("avro-ok").contains(&"applied")
                && o.stages("avro-rejected").contains(&"dead_lettered")
        })
        .await;
    let ids: HashMap<String, &OutcomeEvent> = outcomes
        .in_order
        .iter()
        .map(|e| (e.event_id.clone(), e))
        .collect();
    assert_eq!(ids.len(), 6, "{:?}", outcomes.in_order);

    // A client no project code wrote: confluent-kafka's AvroDeserializer.
    if python_client_installed() {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/confluent_outcomes.py"
        );
        let output = tokio::time::timeout(
            PATIENCE,
            tokio::process::Command::new("python3")
                .args([script, &topics.brokers, &topics.outcomes, &url, "6", "60"])
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("the Python client ends within the patience")
        .expect("run python3");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{}\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let mut stages: HashMap<String, Vec<String>> = HashMap::new();
        for line in stdout.lines() {
            let record: Value = serde_json::from_str(line).expect("a JSON line");
            let value = &record["value"];
            let key = record["key"].as_str().expect("keyed");
            let stage = value["stage"].as_str().expect("a stage");
            assert_eq!(value["idempotency_key"].as_str(), Some(key), "{line}");
            let event_id = value["event_id"].as_str().expect("an event id");
            let ours = ids
                .get(event_id)
                .unwrap_or_else(|| panic!("unknown event {line}"));
            assert_eq!(ours.stage.as_str(), stage, "{line}");
            assert_eq!(value["source"]["topic"], topics.service_requests.as_str());
            let headers = &record["headers"];
            assert_eq!(headers["content-type"], "application/avro", "{line}");
            assert_eq!(headers["ce_specversion"], "1.0", "{line}");
            assert_eq!(headers["ce_id"].as_str(), Some(event_id), "{line}");
            assert_eq!(
                headers["ce_type"].as_str(),
                Some(format!("com.nephoran.intent.{stage}").as_str()),
                "{line}"
            );
            assert_eq!(headers["ce_time"], value["occurred_at"], "{line}");
            assert!(
                headers["ce_source"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("/nephoran-kafka-consumer/")),
                "{line}"
            );
            match stage {
                "applied" | "translated" => {
                    assert_eq!(value["intent"]["namespace"], "core5g", "{line}");
                    assert_eq!(value["translator"], "rules", "{line}");
                }
                "rejected" | "dead_lettered" => {
                    assert_eq!(value["error"]["code"], "untranslatable", "{line}");
                }
                _ => {}
            }
            stages
                .entry(key.to_string())
                .or_default()
                .push(stage.to_string());
        }
        assert_eq!(stages["avro-ok"], ["received", "translated", "applied"]);
        assert_eq!(
            stages["avro-rejected"],
            ["received", "rejected", "dead_lettered"]
        );
    }

    // The project's own readers: `submit --wait` follows a request to `applied`, and
    // `outcomes --json` prints the events as JSON.
    let output = command(&topics, Some(&url))
        .args([
            "submit",
            "Deploy SMF in namespace core5g",
            "--key",
            "avro-wait",
            "--service-requests-topic",
            &topics.service_requests,
            "--wait",
            "--timeout",
            "90s",
        ])
        .output()
        .await
        .expect("run submit");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("applied") && l.contains("avro-wait")),
        "{stdout}"
    );
    let (lines, stderr) = outcomes_lines(
        &topics,
        Some(&url),
        &[
            "--from-beginning",
            "--json",
            "--key",
            "avro-rejected",
            "--stage",
            "rejected",
        ],
        1,
    )
    .await;
    let event: Value = serde_json::from_str(&lines[0]).expect("a JSON line");
    assert_eq!(event["stage"], "rejected", "{lines:?}");
    assert_eq!(event["error"]["code"], "untranslatable", "{lines:?}");
    assert!(!stderr.contains("warning"), "{stderr}");

    let status = worker.terminate().await;
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn single_object_outcomes_without_a_registry_decode_with_apache_avro_and_outcomes() {
    let topics = TestTopics::create("avro-single", 1).await;
    let sink = tempfile::tempdir().unwrap();
    let mut config = topics.config(sink.path());
    config.outcomes_format = OutcomesFormat::Avro;
    let worker = Worker::start(config);
    produce_request(&topics, "single-1", APPLIED).await;

    // Each record decodes with apache-avro's single-object reader of the schema file.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/outcome-event.avsc");
    let schema = apache_avro::Schema::parse_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let reader = apache_avro::GenericSingleObjectReader::builder()
        .schema(schema)
        .build()
        .expect("a single-object reader");
    let records = TopicReader::new_on(&topics.brokers, &topics.outcomes, 1);
    let mut stages = Vec::new();
    while !stages.contains(&"applied") {
        let record = records
            .next(PATIENCE)
            .await
            .expect("the outcomes of single-1");
        assert_eq!(
            common::header(&record, "content-type").as_deref(),
            Some("application/avro")
        );
        let payload = record.payload().expect("a value");
        assert_eq!(&payload[..2], &[0xC3, 0x01]);
        let value = reader
            .read_value(&mut &payload[..])
            .expect("single-object Avro of schemas/outcome-event.avsc");
        let event: OutcomeEvent = apache_avro::from_value(&value).expect("an outcome event");
        assert_eq!(event.idempotency_key, "single-1");
        assert_eq!(
            common::header(&record, "ce_id").as_deref(),
            Some(event.event_id.as_str())
        );
        stages.push(event.stage.as_str());
    }
    assert_eq!(stages, ["received", "translated", "applied"]);
    worker.stop().await;

    // The format switched mid-stream: a JSON outcome after the Avro ones, then a record
    // in the Confluent framing that no registry resolves here. `outcomes` reads the first
    // two kinds and reports the third.
    let json = {
        let mut event = OutcomeEvent::new(
            &nephoran_kafka_consumer::decode::IdempotencyKey {
                value: "json-1".into(),
                source: nephoran_kafka_consumer::decode::KeySource::Header,
            },
            nephoran_kafka_consumer::outcome::Stage::Applied,
            &nephoran_kafka_consumer::message::SourceRef {
                topic: topics.service_requests.clone(),
                partition: 0,
                offset: 99,
            },
        );
        event.translator = Some(nephoran_kafka_consumer::translate::TranslatorKind::Rules);
        serde_json::to_vec(&event).unwrap()
    };
    let producer = common::producer_on(&topics.brokers);
    let confluent = OutcomeEncoding::Confluent { schema_id: 42 }
        .encode(&serde_json::from_slice(&json).unwrap())
        .payload;
    common::produce(&producer, &topics.outcomes, Some("conf-1"), &confluent, &[]).await;
    common::produce(&producer, &topics.outcomes, Some("json-1"), &json, &[]).await;

    let (lines, stderr) = outcomes_lines(
        &topics,
        None,
        &["--from-beginning", "--json", "--stage", "applied"],
        2,
    )
    .await;
    let keys: Vec<String> = lines
        .iter()
        .map(|l| {
            let event: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
            assert_eq!(event["stage"], "applied", "{l}");
            event["idempotency_key"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(keys, ["single-1", "json-1"]);
    assert!(
        stderr.contains("skipping a record that is not an outcome event")
            && stderr.contains("schema id 42"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_format_is_chosen_at_start_and_a_refused_schema_stops_it() {
    let health = Health::default();
    let never = std::future::pending::<()>;
    // Without a registry: JSON as asked, or single-object Avro.
    for (format, expected) in [
        (OutcomesFormat::Json, OutcomeEncoding::Json),
        (OutcomesFormat::Avro, OutcomeEncoding::SingleObject),
    ] {
        let chosen = registration::outcome_encoding(format, None, "t", &health, never())
            .await
            .expect("chosen");
        assert_eq!(chosen, Some(expected));
    }

    // A registry whose subject holds a schema the outcome schema cannot read: refused,
    // and said so, naming the subject.
    let server = TestRegistry::start().await;
    server.register("taken-value", "\"string\"");
    let error = registration::outcome_encoding(
        OutcomesFormat::Avro,
        registry(Some(server.url())).as_ref(),
        "taken",
        &health,
        never(),
    )
    .await
    .expect_err("refused");
    let error = format!("{error:#}");
    assert!(
        error.contains("refused") && error.contains("taken-value"),
        "{error}"
    );
    assert!(!health.registry_down.is_holding());

    // With the registry up, JSON stays JSON (nothing is registered).
    let chosen = registration::outcome_encoding(
        OutcomesFormat::Json,
        registry(Some(server.url())).as_ref(),
        "json",
        &health,
        never(),
    )
    .await
    .expect("chosen");
    assert_eq!(chosen, Some(OutcomeEncoding::Json));
    assert!(server.versions("json-value").is_empty());
}

#[tokio::test]
async fn shutting_down_ends_the_wait_for_a_registry_that_is_down() {
    let server = TestRegistry::start().await;
    server.down();
    let health = Arc::new(Health::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let waiting = tokio::spawn({
        let health = health.clone();
        let registry = registry(Some(server.url()));
        async move {
            registration::outcome_encoding(
                OutcomesFormat::Avro,
                registry.as_ref(),
                "t",
                &health,
                async {
                    let _ = stopped.await;
                },
            )
            .await
        }
    });
    tokio::time::timeout(PATIENCE, async {
        while !health.registry_down.is_holding() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("registry_down holds while the registry does not answer");
    stop.send(()).unwrap();
    let chosen = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the wait ends on shutdown")
        .expect("task")
        .expect("no error: it was stopped");
    assert_eq!(chosen, None);
    assert!(!health.registry_down.is_holding());
    assert!(server.versions("t-value").is_empty());
}
