//! Effectively once, against the real broker: duplicates by idempotency key yield no
//! second intent and no second translation, across restarts, crashes and rebalances,
//! with bounded state restored from the changelog.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Stdio;
use std::time::Duration;

use common::recorder::{metric, recorder};
use common::{
    brokers, committed_and_end, intent_files, produce, produce_all, producer, CountingTranslator,
    Outcomes, TestTopics, Worker,
};
use nephoran_kafka_consumer::dedup::{changelog_topic, now_secs, Entry, Limits, Outcome, State};
use nephoran_kafka_consumer::intent::intent_name;
use nephoran_kafka_consumer::kafka::changelog;
use nephoran_kafka_consumer::outcome::Stage;
use nephoran_kafka_consumer::request::MessageType;
use nephoran_kafka_consumer::translate::TranslatorKind;
use rdkafka::producer::FutureRecord;

fn request(key: &str, text: &str) -> Vec<u8> {
    serde_json::json!({"idempotency_key": key, "intent": text})
        .to_string()
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_spread_over_time_get_one_intent_and_one_translation_per_key() {
    recorder();
    let topics = TestTopics::create("dups", 4).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    let translator = CountingTranslator::new();
    let worker = Worker::start_with(topics.config(dir.path()), translator.clone());
    let mut outcomes = Outcomes::new(&topics);

    // 100 requests, 40 keys: each batch mixes new keys and repeats of earlier ones.
    let key = |i: usize| format!("dup-{}", (i * 7) % 40);
    for batch in 0..4 {
        for i in batch * 25..(batch + 1) * 25 {
            let k = key(i);
            let text = format!("Deploy AMF with {} replicas in namespace core5g", i % 3 + 1);
            produce(
                &producer,
                &topics.service_requests,
                Some(&k),
                &request(&k, &text),
                &[],
            )
            .await;
        }
        outcomes.until_terminal_messages((batch + 1) * 25).await;
    }
    worker.stop().await;
    outcomes.drain(Duration::from_millis(500)).await;

    assert_eq!(outcomes.count("applied"), 40);
    assert_eq!(outcomes.count("duplicate"), 60);
    assert_eq!(intent_files(dir.path()), 40);
    let calls = translator.calls();
    assert_eq!(calls.len(), 40);
    assert!(calls.values().all(|n| *n == 1), "{calls:?}");
    for (k, events) in &outcomes.by_key {
        let applied: Vec<_> = events
            .iter()
            .filter(|e| e.stage == Stage::Applied)
            .collect();
        assert_eq!(applied.len(), 1, "{k}");
        for duplicate in events.iter().filter(|e| e.stage == Stage::Duplicate) {
            let original = duplicate
                .original
                .as_ref()
                .expect("a duplicate names the original");
            assert_eq!(original.stage, Stage::Applied);
            assert_eq!(original.source, applied[0].source, "{k}");
            assert_eq!(original.intent, applied[0].intent, "{k}");
            assert!(duplicate.source.offset > original.source.offset);
            assert_eq!(duplicate.message_type, Some(MessageType::ServiceRequest));
        }
    }
    assert!(metric("dedup_hits_total", &[("topic", &topics.service_requests)]) >= 60.0);
    for (p, (committed, end)) in committed_and_end(&topics.group, &topics.service_requests, 4)
        .into_iter()
        .enumerate()
    {
        assert_eq!(committed, end, "partition {p}");
    }
}

/// The keys whose terminal entry is in the changelog now: "completed" for the crash test.
fn completed_keys(topics: &TestTopics, keys: &HashSet<String>) -> HashSet<String> {
    let properties = BTreeMap::from([("bootstrap.servers".to_string(), brokers())]);
    let limits = Limits {
        window_secs: u32::MAX,
        max_entries: usize::MAX,
    };
    let topic = changelog_topic(&topics.group, &topics.service_requests);
    let mut completed = HashSet::new();
    for partition in 0..topics.partitions {
        let (store, _) = changelog::restore(&properties, &topic, partition, limits).unwrap();
        for key in keys {
            if store
                .get(key)
                .is_some_and(|e| matches!(e.state, State::Done(_)))
            {
                completed.insert(key.clone());
            }
        }
    }
    completed
}

#[tokio::test(flavor = "multi_thread")]
async fn after_kill_9_no_completed_key_is_translated_again_and_none_is_lost() {
    // Long enough that the kill falls mid-stream however fast the worker is: each key
    // twice, the repeats in the second half.
    const MESSAGES: usize = 12_000;
    let topics = TestTopics::create("crash", 3).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    let key = |i: usize| format!("crash-{}", (i * 7) % (MESSAGES / 2));
    let ends = produce_all(
        &producer,
        &topics.service_requests,
        3,
        (0..MESSAGES).map(|i| {
            let k = key(i);
            let text = format!("Deploy SMF with 2 replicas in namespace core-{}", i % 3);
            let payload = request(&k, &text);
            (k, payload)
        }),
    )
    .await;
    let keys: HashSet<String> = (0..MESSAGES).map(key).collect();

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_nephoran-kafka-consumer"))
        .arg("run")
        .args(topics.args(dir.path()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the worker binary");
    let mut outcomes = Outcomes::new(&topics);
    outcomes.until_terminal_messages(50).await;
    child.kill().await.expect("kill -9 the worker");

    let completed = completed_keys(&topics, &keys);
    eprintln!(
        "{} of {} keys completed before the crash",
        completed.len(),
        keys.len()
    );
    assert!(
        !completed.is_empty() && completed.len() < keys.len(),
        "the crash must fall mid-stream"
    );

    let translator = CountingTranslator::new();
    let worker = Worker::start_with(topics.config(dir.path()), translator.clone());
    outcomes.until_terminal_messages(MESSAGES).await;
    worker.stop().await;
    outcomes.drain(Duration::from_millis(500)).await;

    let calls = translator.calls();
    for k in &completed {
        assert_eq!(
            calls.get(k),
            None,
            "{k} completed before the crash but was translated again"
        );
    }
    assert!(calls.values().all(|n| *n == 1), "{calls:?}");
    for k in &keys {
        let applied: HashSet<_> = outcomes.by_key[k]
            .iter()
            .filter(|e| e.stage == Stage::Applied)
            .map(|e| (e.event_id.clone(), e.intent.clone(), e.source.clone()))
            .collect();
        assert_eq!(
            applied.len(),
            1,
            "{k}: one applied outcome (a re-publication repeats it exactly)"
        );
    }
    assert_eq!(intent_files(dir.path()), keys.len());
    for (p, ((committed, _), end)) in committed_and_end(&topics.group, &topics.service_requests, 3)
        .into_iter()
        .zip(ends)
        .enumerate()
    {
        assert_eq!(committed, end, "partition {p}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn workers_joining_and_leaving_apply_each_key_once() {
    let topics = TestTopics::create("rebalance", 6).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    let translator = CountingTranslator::new();
    let start = || Worker::start_with(topics.config(dir.path()), translator.clone());
    let key = |i: usize| format!("reb-{}", (i * 7) % 150);
    let mut outcomes = Outcomes::new(&topics);
    let produce_batch = |batch: usize| {
        let producer = &producer;
        let topic = topics.service_requests.clone();
        async move {
            for i in batch * 100..(batch + 1) * 100 {
                let k = key(i);
                let text = format!("Deploy UPF with {} replicas in namespace edge", i % 4 + 1);
                produce(producer, &topic, Some(&k), &request(&k, &text), &[]).await;
            }
        }
    };

    let first = start();
    let second = start();
    produce_batch(0).await;
    outcomes.until_terminal_messages(100).await;
    let third = start();
    produce_batch(1).await;
    outcomes.until_terminal_messages(200).await;
    // Leave only once the group is stable again: the development broker wedges a group
    // whose member leaves in the middle of a join (Apache Kafka does not).
    third.until_assigned().await;
    first.stop().await;
    produce_batch(2).await;
    outcomes.until_terminal_messages(300).await;
    second.stop().await;
    third.stop().await;
    outcomes.drain(Duration::from_millis(500)).await;

    let calls = translator.calls();
    assert_eq!(calls.len(), 150, "every key translated");
    let twice: Vec<_> = calls.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "translated more than once: {twice:?}");
    for k in (0..300).map(key) {
        let applied: HashSet<_> = outcomes.by_key[&k]
            .iter()
            .filter(|e| e.stage == Stage::Applied)
            .map(|e| e.event_id.clone())
            .collect();
        assert_eq!(applied.len(), 1, "{k}");
    }
    assert_eq!(intent_files(dir.path()), 150);
    for (p, (committed, end)) in committed_and_end(&topics.group, &topics.service_requests, 6)
        .into_iter()
        .enumerate()
    {
        assert_eq!(committed, end, "partition {p}");
    }
}

fn applied_entry(offset: i64, last_seen: u32) -> Entry {
    Entry {
        state: State::Done(Outcome {
            stage: Stage::Applied,
            message_type: Some(MessageType::ServiceRequest),
            translator: Some(TranslatorKind::Rules),
            error: None,
        }),
        offset,
        since: last_seen,
        last_seen,
        namespace: 0,
        fingerprint: None,
    }
}

/// Writes entries straight to partition 0 of the changelog of the test's request topic.
async fn write_changelog(topics: &TestTopics, entries: impl Iterator<Item = (String, Entry)>) {
    let properties = BTreeMap::from([("bootstrap.servers".to_string(), brokers())]);
    changelog::ensure_changelogs(
        &properties,
        &topics.group,
        std::slice::from_ref(&topics.service_requests),
        1,
    )
    .await
    .unwrap();
    let topic = changelog_topic(&topics.group, &topics.service_requests);
    let producer = producer();
    let mut deliveries = Vec::new();
    for (key, entry) in entries {
        let value = entry.encode(Some("core5g"));
        let mut record = FutureRecord::to(&topic)
            .partition(0)
            .key(&key)
            .payload(&value);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => break deliveries.push(delivery),
                Err((_, back)) => {
                    // queue full: let earlier sends drain
                    record = back;
                    tokio::task::yield_now().await;
                    if let Some(d) = deliveries.pop() {
                        d.await.unwrap().map_err(|(e, _)| e).unwrap();
                    }
                }
            }
        }
    }
    for d in deliveries {
        d.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_worker_restores_100_000_entries_and_reports_the_time() {
    recorder();
    let topics = TestTopics::create("restore", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let now = now_secs();
    write_changelog(
        &topics,
        (0..100_000).map(|i| (format!("old-{i}"), applied_entry(i, now))),
    )
    .await;
    produce(
        &producer(),
        &topics.service_requests,
        Some("old-4242"),
        &request("old-4242", "Deploy AMF in namespace core5g"),
        &[],
    )
    .await;

    let translator = CountingTranslator::new();
    let worker = Worker::start_with(topics.config(dir.path()), translator.clone());
    let mut outcomes = Outcomes::new(&topics);
    outcomes.until_terminal(["old-4242"]).await;
    worker.stop().await;

    let duplicate = outcomes.terminal("old-4242")[0];
    assert_eq!(duplicate.stage, Stage::Duplicate);
    let original = duplicate.original.as_ref().unwrap();
    assert_eq!(original.source.offset, 4242);
    assert_eq!(
        original
            .intent
            .as_ref()
            .map(|i| (i.name.clone(), i.namespace.as_str())),
        Some((intent_name("old-4242"), "core5g"))
    );
    assert!(translator.calls().is_empty());
    let labels = [("topic", topics.service_requests.as_str())];
    assert_eq!(metric("dedup_restored_entries_total", &labels), 100_000.0);
    assert_eq!(
        metric("dedup_restore_duration_seconds", &labels),
        1.0,
        "one restore, timed"
    );
    assert_eq!(metric("dedup_entries", &labels), 100_000.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn entries_past_the_window_no_longer_deduplicate() {
    recorder();
    let topics = TestTopics::create("window", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let now = now_secs();
    let eight_days_ago = now - 8 * 24 * 3600;
    write_changelog(
        &topics,
        [
            ("stale-1".to_string(), applied_entry(1000, eight_days_ago)),
            ("fresh-1".to_string(), applied_entry(1001, now)),
        ]
        .into_iter(),
    )
    .await;
    let producer = producer();
    for k in ["stale-1", "fresh-1"] {
        produce(
            &producer,
            &topics.service_requests,
            Some(k),
            &request(k, "Deploy AMF in namespace core5g"),
            &[],
        )
        .await;
    }
    let worker = Worker::start(topics.config(dir.path()));
    let mut outcomes = Outcomes::new(&topics);
    outcomes.until_terminal(["stale-1", "fresh-1"]).await;
    worker.stop().await;

    assert_eq!(
        outcomes.terminal("stale-1")[0].stage,
        Stage::Applied,
        "past the 7-day window"
    );
    assert_eq!(outcomes.terminal("fresh-1")[0].stage, Stage::Duplicate);
    let labels = [
        ("topic", topics.service_requests.as_str()),
        ("reason", "window"),
    ];
    assert_eq!(metric("dedup_evictions_total", &labels), 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn at_the_entry_bound_the_oldest_keys_go_first() {
    recorder();
    let topics = TestTopics::create("bound", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    let order: Vec<String> = (0..15)
        .map(|i| format!("b-{i}"))
        .chain(["b-0".to_string(), "b-14".to_string()])
        .collect();
    for k in &order {
        produce(
            &producer,
            &topics.service_requests,
            Some(k),
            &request(k, "Deploy NRF in namespace core5g"),
            &[],
        )
        .await;
    }
    let mut config = topics.config(dir.path());
    config.dedup_max_entries = 10;
    // One message at a time, so which keys are least recently seen is deterministic.
    config.max_in_flight = 1;
    let worker = Worker::start(config);
    let mut outcomes = Outcomes::new(&topics);
    outcomes.until_terminal_messages(order.len()).await;
    worker.stop().await;

    let stages = |k: &str| -> Vec<Stage> { outcomes.terminal(k).iter().map(|e| e.stage).collect() };
    assert_eq!(
        stages("b-0"),
        [Stage::Applied, Stage::Applied],
        "b-0 was evicted, so it is new again"
    );
    assert_eq!(stages("b-14"), [Stage::Applied, Stage::Duplicate]);
    let topic = topics.service_requests.as_str();
    assert_eq!(
        metric(
            "dedup_evictions_total",
            &[("topic", topic), ("reason", "bound")]
        ),
        6.0,
        "b-0..b-4, then b-5 for b-0's return"
    );
    assert_eq!(metric("dedup_entries", &[("topic", topic)]), 10.0);
    let by_key: HashMap<_, _> = outcomes
        .by_key
        .iter()
        .map(|(k, v)| (k.clone(), v.len()))
        .collect();
    assert_eq!(by_key.len(), 15);
}
