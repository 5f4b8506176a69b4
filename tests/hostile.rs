//! The trust boundary, tried as a hostile producer and a hostile model would: every record
//! of the catalogue in `tests/data/hostile-records.jsonl` (key, value and headers as
//! bytes, the stage and code it must end with) is sent through the real broker to the
//! worker binary, each followed by a good request on the same partition, with an
//! OpenAI-compatible model configured that answers everything it is not told otherwise
//! with an intent in `kube-system`, with 0 replicas and 64 CPUs.
//!
//! Asserted for every case: its terminal outcome has the expected stage and code; a
//! rejected one has a dead letter and no NetworkIntent; the good request after it is
//! applied. For the run: the worker is still running and ready, every offset is committed,
//! nothing panicked, no outcome or dead letter quotes the API key, every error message is
//! bounded, no intent is outside the policy, and texts the screens refuse cost no call.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::openai::{FakeLlm, Reply};
use common::raw::{produce_raw, RawHeader};
use common::{brokers, Outcomes, TestTopics, TopicReader, PATIENCE};
use nephoran_kafka_consumer::outcome::{OutcomeEvent, MAX_FAILURE_MESSAGE_BYTES};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientConfig, Message};
use serde_json::{json, Value};

const CATALOGUE: &str = include_str!("data/hostile-records.jsonl");
/// Set to run a trimmed copy of the catalogue while working on one part of it.
const CATALOGUE_FILE_VARIABLE: &str = "HOSTILE_CATALOGUE";
const API_KEY: &str = "sk-catalogue-secret-4f1d";

/// One entry of the catalogue.
struct Case {
    name: String,
    topic: String,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<RawHeader>,
    stage: String,
    code: Option<String>,
    /// What the model answers for this case's text (the hostile default otherwise).
    llm: Option<Value>,
    /// The text, for cases whose model calls are checked.
    text: Option<String>,
    no_call: bool,
    translator: Option<String>,
    namespace: Option<String>,
    replicas: Option<u64>,
    components: Option<Vec<String>>,
}

/// Bytes as the catalogue writes them: a string (its UTF-8), `{"hex": ...}`,
/// `{"repeat": s, "times": n}`, `{"json": value}` or `{"concat": [...]}`; null is none.
fn bytes(spec: &Value) -> Option<Vec<u8>> {
    Some(match spec {
        Value::Null => return None,
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Object(o) if o.contains_key("hex") => {
            let hex = o["hex"].as_str().expect("hex string");
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                .collect()
        }
        Value::Object(o) if o.contains_key("repeat") => o["repeat"]
            .as_str()
            .expect("repeat string")
            .repeat(o["times"].as_u64().expect("times") as usize)
            .into_bytes(),
        Value::Object(o) if o.contains_key("json") => o["json"].to_string().into_bytes(),
        Value::Object(o) if o.contains_key("concat") => o["concat"]
            .as_array()
            .expect("concat list")
            .iter()
            .flat_map(|part| bytes(part).unwrap_or_default())
            .collect(),
        other => panic!("not a byte spec: {other}"),
    })
}

fn catalogue(topics: &TestTopics) -> Vec<Case> {
    let text = match std::env::var(CATALOGUE_FILE_VARIABLE) {
        Ok(path) => std::fs::read_to_string(path).expect("the catalogue file"),
        Err(_) => CATALOGUE.to_string(),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let c: Value = serde_json::from_str(line).expect("catalogue line is JSON");
            let topic = match c["topic"].as_str() {
                Some("network-events") => topics.network_events.clone(),
                _ => topics.service_requests.clone(),
            };
            let headers = c["headers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| (bytes(&h[0]).expect("header name"), bytes(&h[1])))
                .collect();
            let str_of = |v: &Value| v.as_str().map(str::to_string);
            Case {
                name: str_of(&c["name"]).expect("name"),
                topic,
                key: bytes(&c["key"]),
                value: bytes(&c["value"]),
                headers,
                stage: str_of(&c["expect"]["stage"]).expect("stage"),
                code: str_of(&c["expect"]["code"]),
                llm: c.get("llm").cloned(),
                text: str_of(&c["value"]["json"]["intent"]),
                no_call: c["no_call"].as_bool().unwrap_or(false),
                translator: str_of(&c["translator"]),
                namespace: str_of(&c["namespace"]),
                replicas: c["replicas"].as_u64(),
                components: c["components"].as_array().map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                }),
            }
        })
        .collect()
}

/// An answer object in the model's schema.
fn answer(namespace: &str, replicas: Option<u32>, cpu: Option<&str>) -> Value {
    json!({
        "intentType": if replicas.is_some() { "scaling" } else { "deployment" },
        "priority": "critical",
        "targetComponents": ["amf"],
        "targetNamespace": namespace,
        "targetEnvironment": null,
        "scaling": replicas.map(|r| json!({"replicas": r, "minReplicas": null, "maxReplicas": null, "scaleBy": null})),
        "resources": cpu.map(|c| json!({"cpu": c, "memory": null})),
        "networkSlice": null,
        "refusal": null,
    })
}

/// How the hostile model answers a text: by the case's directive, else with an intent
/// in kube-system, 0 replicas and 64 CPUs, whatever the text asked.
fn reply_for(directive: Option<&Value>, redirect_to: &str) -> Reply {
    let Some(d) = directive else {
        return Reply::answer(answer("kube-system", Some(0), Some("64")));
    };
    if d["redirect"].as_bool() == Some(true) {
        return Reply::redirect(307, redirect_to);
    }
    if let Some(cpu) = d["cpu"].as_str() {
        return Reply::answer(answer("core5g", None, Some(cpu)));
    }
    let status = d["status"].as_u64().expect("status") as u16;
    let message = if d["message_with_secret"].as_bool() == Some(true) {
        format!(
            "invalid api key {API_KEY}; request dump: {}",
            "\u{1b}[31mX".repeat(2500)
        )
    } else {
        "overloaded".to_string()
    };
    let reply = Reply::status(status, &message);
    match d["retry_after"].as_str() {
        Some(after) => reply.retry_after(after),
        None => reply,
    }
}

fn hostile_producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("enable.idempotence", "true")
        // Room for the catalogue's 1 000 000-byte key.
        .set("message.max.bytes", "3000000")
        .create()
        .expect("producer")
}

/// Every `.yaml` file under `dir`, as (namespace directory, parsed document).
fn intents(dir: &Path) -> Vec<(String, serde_yaml::Value)> {
    let mut found = Vec::new();
    for ns in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
            if file.path().extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(file.path()).expect("intent file");
                let doc = serde_yaml::from_str(&text).expect("intent YAML");
                found.push((ns.file_name().to_string_lossy().into_owned(), doc));
            }
        }
    }
    found
}

fn header(message: &OwnedMessage, name: &str) -> Option<Vec<u8>> {
    let headers = message.headers()?;
    (0..headers.count())
        .filter_map(|i| headers.try_get(i))
        .find(|h| h.key == name)
        .and_then(|h| h.value.map(<[u8]>::to_vec))
}

#[tokio::test(flavor = "multi_thread")]
async fn no_hostile_record_or_model_gets_past_the_trust_boundary() {
    let topics = TestTopics::create("hostile", 1).await;
    let cases = catalogue(&topics);
    if std::env::var(CATALOGUE_FILE_VARIABLE).is_err() {
        assert!(cases.len() >= 40, "the catalogue has {} cases", cases.len());
    }

    // A second server that must never be reached: the model's redirect target.
    let elsewhere = FakeLlm::start(|_| Reply::answer(answer("kube-system", Some(0), None))).await;
    let directives: HashMap<String, Value> = cases
        .iter()
        .filter_map(|c| Some((c.text.clone()?, c.llm.clone()?)))
        .collect();
    let redirect_to = format!("{}/chat/completions", elsewhere.endpoint);
    let model =
        FakeLlm::start(move |call| reply_for(directives.get(&call.text()), &redirect_to)).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let log = tempfile::NamedTempFile::new().expect("log file");
    let port = common::free_port();
    let mut args = topics.args(dir.path());
    let at = args
        .iter()
        .position(|a| a == "--metrics-addr")
        .expect("metrics flag")
        + 1;
    args[at] = format!("127.0.0.1:{port}");
    let mut worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_nephoran-kafka-consumer"))
        .arg("run")
        .args(&args)
        .env("RUST_LOG", "info")
        .env("LLM_ENDPOINT", &model.endpoint)
        .env("LLM_MODEL", "hostile-model")
        .env("LLM_API_KEY", API_KEY)
        .env("LLM_TIMEOUT", "2s")
        .env("LLM_BREAKER_FAILURES", "1000")
        .stdout(Stdio::null())
        .stderr(log.reopen().expect("log file"))
        .kill_on_drop(true)
        .spawn()
        .expect("start the worker binary");

    // Each case, then a good request, on the one partition of its topic.
    let producer = hostile_producer();
    let mut offsets = Vec::new();
    let mut goods = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let offset = produce_raw(
            &producer,
            &case.topic,
            0,
            case.key.as_deref(),
            case.value.as_deref(),
            &case.headers,
        )
        .await;
        offsets.push((case.topic.clone(), offset));
        let good = format!("good-{i}");
        let payload = json!({
            "idempotency_key": good,
            "intent": format!("Deploy AMF with 2 replicas in namespace fill-{i}"),
        })
        .to_string();
        produce_raw(
            &producer,
            &case.topic,
            0,
            None,
            Some(payload.as_bytes()),
            &[],
        )
        .await;
        goods.push(good);
    }

    let mut outcomes = Outcomes::new(&topics);
    // Whatever did not end is listed case by case below.
    let _ = outcomes.try_until_terminal_messages(cases.len() * 2).await;
    let terminal_at: HashMap<(String, i64), &OutcomeEvent> = outcomes
        .in_order
        .iter()
        .filter(|e| e.stage.is_terminal())
        .map(|e| ((e.source.topic.clone(), e.source.offset), e))
        .collect();

    // Dead letters, by where their original came from; read until every case that must
    // have one has it (the good requests may have some too), or the topic is quiet.
    let wanted: Vec<(String, i64)> = cases
        .iter()
        .zip(&offsets)
        .filter(|(c, _)| c.stage == "rejected" || c.stage == "failed")
        .map(|(_, at)| at.clone())
        .collect();
    let dlq = TopicReader::new(&topics.dlq, 1);
    let mut dead: HashMap<(String, i64), OwnedMessage> = HashMap::new();
    while !wanted.iter().all(|at| dead.contains_key(at)) {
        let Some(letter) = dlq.next(Duration::from_secs(10)).await else {
            break; // the missing ones are listed case by case below
        };
        let text =
            |name| String::from_utf8(header(&letter, name).unwrap_or_default()).unwrap_or_default();
        let source = (
            text("nephoran.source.topic"),
            text("nephoran.source.offset").parse().unwrap_or(-1),
        );
        dead.insert(source, letter);
    }

    let intent_files = intents(dir.path());
    let calls = model.calls();
    let mut failures = Vec::new();
    for (case, (topic, offset)) in cases.iter().zip(&offsets) {
        let mut fail = |what: String| failures.push(format!("{}: {what}", case.name));
        let Some(event) = terminal_at.get(&(topic.clone(), *offset)) else {
            fail("no terminal outcome".into());
            continue;
        };
        let code = event.error.as_ref().map(|e| e.code.as_str().to_string());
        if event.stage.as_str() != case.stage || code != case.code {
            fail(format!(
                "ended {} {:?} ({:?}), expected {} {:?}",
                event.stage.as_str(),
                code,
                event.error.as_ref().map(|e| &e.message),
                case.stage,
                case.code
            ));
        }
        let letter = dead.get(&(topic.clone(), *offset));
        match (case.stage.as_str(), letter) {
            ("rejected" | "failed", None) => fail("no dead letter".into()),
            ("rejected" | "failed", Some(letter)) => {
                let code = header(letter, "nephoran.error.code").unwrap_or_default();
                if Some(String::from_utf8_lossy(&code).into_owned()) != case.code {
                    fail(format!(
                        "dead letter code {:?}",
                        String::from_utf8_lossy(&code)
                    ));
                }
            }
            (_, Some(_)) => fail("a dead letter for a message that was not rejected".into()),
            _ => {}
        }
        if let Some(translator) = &case.translator {
            let by = event.translator.map(|t| t.as_str().to_string());
            if by.as_ref() != Some(translator) {
                fail(format!("translated by {by:?}, expected {translator}"));
            }
        }
        if case.no_call {
            let text = case.text.as_deref().unwrap_or_default();
            let n = calls.iter().filter(|c| c.text() == text).count();
            if n > 0 {
                fail(format!("the screened text cost {n} model calls"));
            }
        }
        if event.stage.as_str() == "applied" {
            let name = event
                .intent
                .as_ref()
                .map(|i| i.name.clone())
                .unwrap_or_default();
            let Some((ns, doc)) = intent_files
                .iter()
                .find(|(_, d)| d["metadata"]["name"].as_str() == Some(&name))
            else {
                fail(format!("applied, but no intent file named {name:?}"));
                continue;
            };
            if let Some(expected) = &case.namespace {
                if ns != expected {
                    fail(format!("applied in {ns}, expected {expected}"));
                }
            }
            if let Some(replicas) = case.replicas {
                if doc["spec"]["scaling"]["replicas"].as_u64() != Some(replicas) {
                    fail(format!("replicas {:?}", doc["spec"]["scaling"]["replicas"]));
                }
            }
            if let Some(components) = &case.components {
                let got: Vec<String> = doc["spec"]["targetComponents"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect();
                if &got != components {
                    fail(format!("components {got:?}"));
                }
            }
        }
    }
    for good in &goods {
        let stages = outcomes.terminal(good);
        if stages.len() != 1 || stages[0].stage.as_str() != "applied" {
            failures.push(format!(
                "{good} (the good request after a case): {:?}",
                stages
                    .iter()
                    .map(|e| (e.stage.as_str(), &e.error))
                    .collect::<Vec<_>>()
            ));
        }
    }

    // Nothing outside the policy was written, whatever the model said.
    for (ns, doc) in &intent_files {
        let spec = &doc["spec"];
        let replicas = spec["scaling"]["replicas"].as_u64();
        if ns.starts_with("kube-") || ns == "default" || ns.starts_with("openshift-") {
            failures.push(format!("an intent in {ns}"));
        }
        if replicas == Some(0) || spec["resources"]["cpu"].as_str() == Some("64") {
            failures.push(format!("an intent with the model's numbers: {spec:?}"));
        }
    }
    // Distinct keys got distinct intents.
    let applied: BTreeMap<String, String> = outcomes
        .in_order
        .iter()
        .filter(|e| e.stage.as_str() == "applied")
        .filter_map(|e| Some((e.idempotency_key.clone(), e.intent.as_ref()?.name.clone())))
        .collect();
    let mut names: Vec<&String> = applied.values().collect();
    names.sort();
    names.dedup();
    if names.len() != applied.len() || intent_files.len() != applied.len() {
        failures.push(format!(
            "{} applied keys, {} distinct names, {} intent files",
            applied.len(),
            names.len(),
            intent_files.len()
        ));
    }
    // No secret quoted, every message bounded, no control character in a key.
    for event in &outcomes.in_order {
        let json = serde_json::to_string(event).unwrap_or_default();
        if json.contains(API_KEY) {
            failures.push(format!(
                "the API key in an outcome: {}",
                event.idempotency_key
            ));
        }
        if event
            .error
            .as_ref()
            .is_some_and(|e| e.message.len() > MAX_FAILURE_MESSAGE_BYTES)
        {
            failures.push(format!(
                "an unbounded error message for {}",
                event.idempotency_key
            ));
        }
        if event.idempotency_key.chars().any(char::is_control) {
            failures.push(format!(
                "a key with control characters: {:?}",
                event.idempotency_key
            ));
        }
    }
    for letter in dead.values() {
        let headers = letter.headers().map(|h| {
            (0..h.count())
                .filter_map(|i| h.try_get(i))
                .map(|h| h.value.unwrap_or_default().to_vec())
                .collect::<Vec<_>>()
        });
        if headers
            .into_iter()
            .flatten()
            .any(|v| String::from_utf8_lossy(&v).contains(API_KEY))
        {
            failures.push("the API key in a dead letter's headers".into());
        }
    }
    if !elsewhere.calls().is_empty() {
        failures.push(format!(
            "the redirect was followed: {} calls elsewhere",
            elsewhere.calls().len()
        ));
    }

    // Still running and ready, every offset committed.
    if let Ok(Some(status)) = worker.try_wait() {
        failures.push(format!("the worker exited: {status}"));
    }
    let ready = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .map(|r| r.status().as_u16());
    if ready.as_ref().ok() != Some(&200) {
        failures.push(format!("/readyz: {ready:?}"));
    }
    for topic in topics.inputs() {
        let committed = tokio::time::timeout(PATIENCE, async {
            loop {
                let [(committed, end)] = common::committed_and_end(&topics.group, topic, 1)[..]
                else {
                    panic!("one partition");
                };
                if committed >= end {
                    return (committed, end);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        if committed.is_err() {
            failures.push(format!("{topic}: offsets not committed to the end"));
        }
    }
    worker.kill().await.expect("stop the worker");
    let logged = std::fs::read_to_string(log.path()).unwrap_or_default();
    if logged.contains("panicked") {
        failures.push("a panic in the worker's log".into());
    }
    for line in logged.lines() {
        if line.contains('\u{1b}') || line.starts_with("level=ERROR msg=forged") {
            failures.push(format!("control characters reached the log: {line:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} checks failed:\n  {}",
        failures.len(),
        cases.len(),
        failures.join("\n  ")
    );
}
