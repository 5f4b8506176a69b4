//! End to end against the real broker: requests and events in, outcomes, intent files,
//! dead letters and committed offsets out.

mod common;

use std::time::Duration;

use common::{
    committed_and_end, header, produce, producer, read_intent, Outcomes, TestTopics, TopicReader,
    Worker,
};
use nephoran_kafka_consumer::outcome::{ErrorCode, Stage};
use nephoran_kafka_consumer::translate::TranslatorKind;
use rdkafka::Message;

fn service_request(key: &str, text: &str) -> String {
    serde_json::json!({"idempotency_key": key, "intent": text, "requester": "oss-bss"}).to_string()
}

fn kpi_event(id: &str, nf: &str, value: f64) -> String {
    serde_json::json!({
        "event_id": id, "event_type": "kpi_threshold_crossed", "source": format!("{nf}-1"),
        "nf_type": nf, "namespace": "core5g", "severity": "major",
        "metric": "cpu_utilization", "value": value, "threshold": 80.0,
        "timestamp": "2026-11-26T10:00:00Z"
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_and_an_event_are_applied_with_their_outcomes() {
    let topics = TestTopics::create("single", 2).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    produce(
        &producer,
        &topics.service_requests,
        Some("order-1"),
        service_request("order-1", "Deploy AMF with 3 replicas in namespace core5g").as_bytes(),
        &[],
    )
    .await;
    produce(
        &producer,
        &topics.network_events,
        Some("ev-1"),
        kpi_event("ev-1", "smf", 92.0).as_bytes(),
        &[],
    )
    .await;

    let worker = Worker::start(topics.config(dir.path()));
    let health = worker.health.clone();
    let addr = nephoran_kafka_consumer::health::serve(
        "127.0.0.1:0".parse().unwrap(),
        health.clone(),
        None,
    )
    .await
    .unwrap();
    let probe = |path: &'static str| async move {
        let response = reqwest::get(format!("http://{addr}{path}"))
            .await
            .expect("probe");
        (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        )
    };
    assert_eq!(probe("/healthz").await.0, 200);
    let mut outcomes = Outcomes::new(&topics);
    outcomes.until_terminal(["order-1", "ev-1"]).await;
    let (status, body) = probe("/readyz").await;
    assert_eq!(status, 200, "ready once the group is joined: {body}");
    assert!(body.contains("4 partitions assigned"), "{body}");
    worker.stop().await;
    assert_eq!(probe("/readyz").await.0, 503, "not ready after shutdown");
    outcomes.drain(Duration::from_millis(500)).await;

    for key in ["order-1", "ev-1"] {
        assert_eq!(
            outcomes.stages(key),
            ["received", "translated", "applied"],
            "{key}"
        );
        let applied = outcomes.terminal(key)[0];
        assert_eq!(applied.translator, Some(TranslatorKind::Rules));
        assert_eq!(
            applied.event_id,
            nephoran_kafka_consumer::outcome::event_id(key, Stage::Applied, &applied.source)
        );
        let intent_ref = applied.intent.as_ref().expect("applied names its intent");
        let intent = read_intent(dir.path(), &intent_ref.namespace, &intent_ref.name);
        assert_eq!(
            intent.name(),
            nephoran_kafka_consumer::intent::intent_name(key)
        );
        assert_eq!(intent.spec.target_namespace, "core5g");
    }
    let order = outcomes.terminal("order-1")[0];
    assert_eq!(order.source.topic, topics.service_requests);
    assert_eq!(
        serde_json::to_value(order.message_type).unwrap(),
        "service_request"
    );
    let amf = read_intent(
        dir.path(),
        "core5g",
        &nephoran_kafka_consumer::intent::intent_name("order-1"),
    );
    assert_eq!(amf.spec.scaling.and_then(|s| s.replicas), Some(3));
    let smf = read_intent(
        dir.path(),
        "core5g",
        &nephoran_kafka_consumer::intent::intent_name("ev-1"),
    );
    assert_eq!(smf.spec.scaling.and_then(|s| s.scale_by), Some(1));

    // Every outcome record carries CloudEvents binary-mode headers naming the event.
    let reader = TopicReader::new_on(&topics.brokers, &topics.outcomes, topics.partitions);
    for _ in 0..outcomes.in_order.len() {
        let record = reader
            .next(common::PATIENCE)
            .await
            .expect("the outcome records read before");
        let event: nephoran_kafka_consumer::outcome::OutcomeEvent =
            serde_json::from_slice(record.payload().expect("payload")).expect("outcome JSON");
        let expected = [
            ("content-type", "application/json".to_string()),
            ("ce_specversion", "1.0".to_string()),
            ("ce_id", event.event_id.clone()),
            (
                "ce_source",
                format!(
                    "/nephoran-kafka-consumer/{}/{}",
                    event.source.topic, event.source.partition
                ),
            ),
            (
                "ce_type",
                format!("com.nephoran.intent.{}", event.stage.as_str()),
            ),
            ("ce_time", event.occurred_at.clone()),
        ];
        for (name, value) in expected {
            assert_eq!(
                header(&record, name).as_deref(),
                Some(value.as_str()),
                "{name} of {event:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_mixed_messages_each_get_one_terminal_outcome_and_offsets_reach_the_end() {
    let topics = TestTopics::create("mixed", 4).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    let components = ["AMF", "SMF", "UPF", "NRF", "PCF"];
    let mut keys = Vec::new();
    let mut expected_rejections = 0;
    for i in 0..200 {
        let key = format!("mixed-{i}");
        let (topic, payload) = match i % 5 {
            0 => (&topics.network_events, kpi_event(&key, "upf", 95.0)),
            // an event below its threshold calls for nothing: rejected
            1 if i % 10 == 1 => {
                expected_rejections += 1;
                (&topics.network_events, kpi_event(&key, "amf", 12.0))
            }
            _ => (
                &topics.service_requests,
                service_request(
                    &key,
                    &format!(
                        "Deploy {} with {} replicas in namespace ns-{}",
                        components[i % 5],
                        i % 7 + 1,
                        i % 3
                    ),
                ),
            ),
        };
        produce(&producer, topic, Some(&key), payload.as_bytes(), &[]).await;
        keys.push(key);
    }

    let worker = Worker::start(topics.config(dir.path()));
    let mut outcomes = Outcomes::new(&topics);
    outcomes
        .until_terminal(keys.iter().map(String::as_str))
        .await;
    worker.stop().await;
    outcomes.drain(Duration::from_millis(500)).await;

    let mut rejected = 0;
    for key in &keys {
        let terminal = outcomes.terminal(key);
        assert_eq!(terminal.len(), 1, "{key}: {:?}", outcomes.stages(key));
        if terminal[0].stage == Stage::Rejected {
            rejected += 1;
        } else {
            assert_eq!(terminal[0].stage, Stage::Applied, "{key}");
        }
    }
    assert_eq!(rejected, expected_rejections);
    let files = common::intent_files(dir.path());
    assert_eq!(
        files,
        200 - expected_rejections,
        "one intent file per applied message"
    );

    for topic in topics.inputs() {
        for (partition, (committed, end)) in committed_and_end(&topics.group, topic, 4)
            .into_iter()
            .enumerate()
        {
            assert_eq!(committed, end, "{topic}[{partition}] committed to the end");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_messages_are_rejected_dead_lettered_and_do_not_block_the_partition() {
    let topics = TestTopics::create("bad", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    let t = &topics.service_requests;
    produce(
        &producer,
        t,
        Some("good-1"),
        service_request("good-1", "Deploy UPF in namespace edge").as_bytes(),
        &[],
    )
    .await;
    produce(
        &producer,
        t,
        Some("k"),
        b"\xffnot json at all",
        &[("idempotency-key", "garbage-1"), ("trace", "abc")],
    )
    .await;
    produce(
        &producer,
        t,
        None,
        br#"{"intent": 42}"#,
        &[("idempotency-key", "shape-1")],
    )
    .await;
    produce(
        &producer,
        t,
        None,
        service_request("untranslatable-1", "Delete every AMF in namespace core5g").as_bytes(),
        &[],
    )
    .await;
    produce(
        &producer,
        t,
        None,
        service_request(
            "invalid-1",
            "Deploy AMF with 5000 replicas in namespace core5g",
        )
        .as_bytes(),
        &[],
    )
    .await;
    produce(&producer, t, None, br#"{"hello": "world"}"#, &[]).await;
    produce(
        &producer,
        t,
        Some("good-2"),
        service_request("good-2", "Scale SMF to 4 replicas in namespace core5g").as_bytes(),
        &[],
    )
    .await;

    let worker = Worker::start(topics.config(dir.path()));
    let mut outcomes = Outcomes::new(&topics);
    let rejected_keys = ["garbage-1", "shape-1", "untranslatable-1", "invalid-1"];
    outcomes
        .until_terminal(["good-1", "good-2"].into_iter().chain(rejected_keys))
        .await;
    worker.stop().await;
    outcomes.drain(Duration::from_millis(500)).await;

    assert_eq!(outcomes.terminal("good-1")[0].stage, Stage::Applied);
    assert_eq!(outcomes.terminal("good-2")[0].stage, Stage::Applied);
    for (key, code) in [
        ("garbage-1", ErrorCode::InvalidJson),
        ("shape-1", ErrorCode::InvalidSchema),
        ("untranslatable-1", ErrorCode::Untranslatable),
        ("invalid-1", ErrorCode::PolicyDenied),
    ] {
        assert_eq!(
            outcomes.stages(key),
            ["received", "rejected", "dead_lettered"],
            "{key}"
        );
        let rejection = outcomes.terminal(key)[0];
        let error = rejection.error.as_ref().expect("a rejection says why");
        assert_eq!(error.code, code, "{key}: {}", error.message);
        assert!(!error.message.is_empty());
    }
    // the key-less unknown object is keyed by a hash, and says so
    let derived: Vec<_> = outcomes
        .by_key
        .values()
        .flatten()
        .filter(|e| e.stage == Stage::Rejected && e.idempotency_key.starts_with("sha256:"))
        .collect();
    assert_eq!(derived.len(), 1);
    assert_eq!(
        derived[0].error.as_ref().unwrap().code,
        ErrorCode::UnknownMessageType
    );
    assert_eq!(
        serde_json::to_value(derived[0].key_source).unwrap(),
        "derived"
    );

    // five dead letters, each a copy of the original with the error headers
    let dlq = TopicReader::new(&topics.dlq, 1);
    let mut letters = Vec::new();
    while let Some(m) = dlq
        .next(Duration::from_secs(if letters.len() < 5 { 30 } else { 1 }))
        .await
    {
        letters.push(m);
    }
    assert_eq!(letters.len(), 5);
    // Messages of different keys run side by side, so letters come in any order.
    let garbage = letters
        .iter()
        .find(|m| header(m, "nephoran.idempotency.key").as_deref() == Some("garbage-1"))
        .expect("the garbage message's dead letter");
    assert_eq!(garbage.payload(), Some(&b"\xffnot json at all"[..]));
    assert_eq!(garbage.key(), Some(&b"k"[..]));
    assert_eq!(header(garbage, "trace").as_deref(), Some("abc"));
    assert_eq!(
        header(garbage, "nephoran.error.code").as_deref(),
        Some("invalid_json")
    );
    assert!(header(garbage, "nephoran.error.message").is_some_and(|m| m.contains("not JSON")));
    assert_eq!(
        header(garbage, "nephoran.source.topic").as_deref(),
        Some(t.as_str())
    );
    assert_eq!(
        header(garbage, "nephoran.source.partition").as_deref(),
        Some("0")
    );
    assert_eq!(
        header(garbage, "nephoran.source.offset").as_deref(),
        Some("1")
    );
    assert_eq!(
        header(garbage, "nephoran.idempotency.key").as_deref(),
        Some("garbage-1")
    );
    let mut codes: Vec<_> = letters
        .iter()
        .map(|m| header(m, "nephoran.error.code").unwrap())
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            "invalid_json",
            "invalid_schema",
            "policy_denied",
            "unknown_message_type",
            "untranslatable",
        ]
    );

    assert_eq!(
        common::intent_files(dir.path()),
        2,
        "only the good requests became intents"
    );
    assert_eq!(committed_and_end(&topics.group, t, 1), [(7, 7)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_too_large_to_copy_keeps_the_partition_moving() {
    let topics = TestTopics::create("large", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    let t = &topics.service_requests;
    // Not JSON, and so large that a copy plus the error headers would not fit the limit.
    let huge = vec![b'x'; 999_000];
    produce(
        &producer,
        t,
        Some("huge"),
        &huge,
        &[("idempotency-key", "huge-1")],
    )
    .await;
    produce(
        &producer,
        t,
        Some("after"),
        service_request("after-1", "Deploy NRF in namespace core5g").as_bytes(),
        &[],
    )
    .await;

    let worker = Worker::start(topics.config(dir.path()));
    let mut outcomes = Outcomes::new(&topics);
    outcomes.until_terminal(["huge-1", "after-1"]).await;
    worker.stop().await;

    assert_eq!(
        outcomes.terminal("huge-1")[0].error.as_ref().unwrap().code,
        ErrorCode::InvalidJson
    );
    assert_eq!(outcomes.terminal("after-1")[0].stage, Stage::Applied);
    let dlq = TopicReader::new(&topics.dlq, 1);
    let letter = dlq.next(common::PATIENCE).await.expect("a dead letter");
    assert_eq!(letter.payload(), None, "the payload is left out");
    let note = header(&letter, "nephoran.payload.omitted").expect("and the letter says so");
    assert!(
        note.contains("999000 bytes") && note.contains(&format!("{t}[0]@0")),
        "{note}"
    );
    assert_eq!(
        header(&letter, "nephoran.error.code").as_deref(),
        Some("invalid_json")
    );
    assert_eq!(committed_and_end(&topics.group, t, 1), [(2, 2)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_topic_stops_the_worker_at_start_naming_the_setting() {
    let topics = TestTopics::create("missing", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = topics.config(dir.path());
    config.topics.outcomes_topic = format!("{}-typo", topics.outcomes);
    let pipeline = nephoran_kafka_consumer::pipeline::Pipeline::new(
        nephoran_kafka_consumer::translate::RuleTranslator::new(100),
        nephoran_kafka_consumer::apply::IntentSink::start(
            config.intent_sink.clone(),
            config.kube.options(),
        )
        .await
        .expect("sink"),
        Default::default(),
        Default::default(),
    );
    let health = std::sync::Arc::new(nephoran_kafka_consumer::health::Health::default());
    // If the check were missing, the worker would run: stop it after a while, then fail.
    let run = nephoran_kafka_consumer::worker::run(
        &config,
        pipeline,
        health,
        tokio::time::sleep(Duration::from_secs(20)),
    );
    let error = run.await.expect_err("the worker must not start");
    let message = format!("{error:#}");
    assert!(
        message.contains("OUTCOMES_TOPIC") && message.contains("-typo"),
        "{message}"
    );
}
