//! Effectively once, against the real broker: duplicates by idempotency key yield no
//! second intent and no second translation, across restarts, crashes and rebalances,
//! with bounded state restored from the changelog. Keys are claimed by their content
//! (another payload under a claimed key is a conflict), messages that cannot claim a
//! key (tombstones, bad key headers) leave no entry, and closed-loop KPI events for one
//! network function fold into one scale-out within the cool-down.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Stdio;
use std::time::Duration;

use common::raw::produce_raw;
use common::recorder::{metric, recorder};
use common::{
    brokers, committed_and_end, header, intent_files, produce, produce_all, producer,
    CountingTranslator, Outcomes, TestTopics, TopicReader, Worker,
};
use nephoran_kafka_consumer::decode::fingerprint;
use nephoran_kafka_consumer::dedup::{changelog_topic, now_secs, Entry, Limits, Outcome, State};
use nephoran_kafka_consumer::intent::{intent_name, NetworkIntent};
use nephoran_kafka_consumer::kafka::changelog;
use nephoran_kafka_consumer::outcome::{event_id, ErrorCode, Stage};
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

    // 100 requests, 40 keys: each batch mixes new keys and repeats of earlier ones. A
    // repeat carries the same payload (another payload would be a conflict).
    let key = |i: usize| format!("dup-{}", (i * 7) % 40);
    for batch in 0..4 {
        for i in batch * 25..(batch + 1) * 25 {
            let k = key(i);
            let replicas = (i * 7) % 40 % 3 + 1;
            let text = format!("Deploy AMF with {replicas} replicas in namespace core5g");
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
    assert_eq!(outcomes.count("rejected"), 0, "no conflicts");
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
                let replicas = (i * 7) % 150 % 4 + 1; // the key's: repeats are duplicates
                let text = format!("Deploy UPF with {replicas} replicas in namespace edge");
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

    assert_eq!(outcomes.count("rejected"), 0, "no conflicts");
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
        true,
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
    let mut config = topics.config(dir.path());
    // Above the default bound (40 000), so that every entry is kept.
    config.dedup_max_entries = 100_000;
    let worker = Worker::start_with(config, translator.clone());
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

/// The dead letters on the test's dead-letter topic, as (error code, source offset).
async fn dead_letters(topics: &TestTopics, n: usize) -> Vec<(String, String)> {
    let reader = TopicReader::new(&topics.dlq, topics.partitions);
    let mut letters = Vec::new();
    while letters.len() < n {
        let message = reader
            .next(common::PATIENCE)
            .await
            .expect("the dead letters arrive");
        letters.push((
            header(&message, "nephoran.error.code").unwrap_or_default(),
            header(&message, "nephoran.source.offset").unwrap_or_default(),
        ));
    }
    letters
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_key_with_another_payload_is_a_conflict_and_the_original_stands() {
    recorder();
    let topics = TestTopics::create("conflict", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    let original = request(
        "claimed-1",
        "Deploy AMF with 3 replicas in namespace core5g",
    );
    let hijack = request(
        "claimed-1",
        "Deploy AMF with 9 replicas in namespace core5g",
    );
    for payload in [&original, &hijack, &original] {
        produce(
            &producer,
            &topics.service_requests,
            Some("claimed-1"),
            payload,
            &[],
        )
        .await;
    }
    let worker = Worker::start(topics.config(dir.path()));
    let mut outcomes = Outcomes::new(&topics);
    outcomes.until_terminal_messages(3).await;
    worker.stop().await;

    let terminal = outcomes.terminal("claimed-1");
    let stages: Vec<_> = terminal.iter().map(|e| e.stage).collect();
    assert_eq!(
        stages,
        [Stage::Applied, Stage::Rejected, Stage::Duplicate],
        "{:?}",
        outcomes.stages("claimed-1")
    );
    let conflict = terminal[1];
    assert_eq!(conflict.source.offset, 1);
    let error = conflict.error.as_ref().expect("a conflict says why");
    assert_eq!(error.code, ErrorCode::IdempotencyKeyConflict);
    assert!(
        error.message.contains("conflict") && error.message.contains("offset 0"),
        "{}",
        error.message
    );
    assert_eq!(
        conflict.intent, None,
        "a conflict names no intent of its own"
    );
    // its events are its own, not re-publications of the original's
    assert_ne!(
        conflict.event_id,
        event_id("claimed-1", Stage::Rejected, &terminal[0].source)
    );
    assert!(outcomes.stages("claimed-1").contains(&"dead_lettered"));
    // the same payload again is a duplicate of the original, not of the conflict
    let duplicate = terminal[2].original.as_ref().expect("names the original");
    assert_eq!(
        (duplicate.stage, duplicate.source.offset),
        (Stage::Applied, 0)
    );

    // one intent, the original's, untouched
    assert_eq!(intent_files(dir.path()), 1);
    let path = dir
        .path()
        .join("core5g")
        .join(format!("{}.yaml", intent_name("claimed-1")));
    let intent: NetworkIntent = serde_yaml::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(intent.spec.scaling.and_then(|s| s.replicas), Some(3));

    // the conflict went to the dead-letter topic; nothing else did
    let letters = dead_letters(&topics, 1).await;
    assert_eq!(
        letters,
        [("idempotency_key_conflict".to_string(), "1".to_string())]
    );
    // and the claimant's entry still holds its payload's fingerprint and offset
    let entry = changelog_entry(&topics, "claimed-1").expect("the original's entry");
    assert_eq!(entry.offset, 0);
    assert_eq!(entry.fingerprint, Some(fingerprint(Some(&original))));
    let labels = [("topic", topics.service_requests.as_str())];
    assert_eq!(metric("dedup_conflicts_total", &labels), 1.0);
}

/// The dedup state is per partition; the intent is not. A key claimed on one partition
/// and sent with another payload on another is refused at the sink, which reads the
/// claimant's fingerprint from the intent it wrote.
#[tokio::test(flavor = "multi_thread")]
async fn another_payload_under_a_claimed_key_on_another_partition_is_a_conflict_too() {
    let topics = TestTopics::create("conflict-across", 2).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    let original = request("across-1", "Deploy AMF with 3 replicas in namespace core5g");
    let hijack = request("across-1", "Deploy AMF with 9 replicas in namespace core5g");
    let worker = Worker::start(topics.config(dir.path()));
    let mut outcomes = Outcomes::new(&topics);
    produce_raw(
        &producer,
        &topics.service_requests,
        0,
        None,
        Some(&original),
        &[],
    )
    .await;
    outcomes.until_terminal_messages(1).await;
    produce_raw(
        &producer,
        &topics.service_requests,
        1,
        None,
        Some(&hijack),
        &[],
    )
    .await;
    outcomes.until_terminal_messages(2).await;
    worker.stop().await;

    let terminal = outcomes.terminal("across-1");
    let stages: Vec<_> = terminal
        .iter()
        .map(|e| (e.stage, e.source.partition))
        .collect();
    assert_eq!(stages, [(Stage::Applied, 0), (Stage::Rejected, 1)]);
    let error = terminal[1].error.as_ref().expect("a conflict says why");
    assert_eq!(error.code, ErrorCode::IdempotencyKeyConflict);
    assert!(
        error.message.contains("claimed by another payload"),
        "{}",
        error.message
    );
    let path = dir
        .path()
        .join("core5g")
        .join(format!("{}.yaml", intent_name("across-1")));
    let intent: NetworkIntent = serde_yaml::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(
        intent.spec.scaling.and_then(|s| s.replicas),
        Some(3),
        "the first stands"
    );
    assert_eq!(
        dead_letters(&topics, 1).await,
        [("idempotency_key_conflict".to_string(), "0".to_string())]
    );
}

/// The entry of `key` in the changelog of the test's request topic, as a restore reads it.
fn changelog_entry(topics: &TestTopics, key: &str) -> Option<Entry> {
    let properties = BTreeMap::from([("bootstrap.servers".to_string(), brokers())]);
    let limits = Limits {
        window_secs: u32::MAX,
        max_entries: usize::MAX,
    };
    let topic = changelog_topic(&topics.group, &topics.service_requests);
    (0..topics.partitions).find_map(|partition| {
        let (store, _) = changelog::restore(&properties, &topic, partition, limits).unwrap();
        store.get(key).copied()
    })
}

/// Every key in the changelog of the test's request topic.
fn changelog_len(topics: &TestTopics) -> usize {
    let properties = BTreeMap::from([("bootstrap.servers".to_string(), brokers())]);
    let limits = Limits {
        window_secs: u32::MAX,
        max_entries: usize::MAX,
    };
    let topic = changelog_topic(&topics.group, &topics.service_requests);
    (0..topics.partitions)
        .map(|partition| {
            changelog::restore(&properties, &topic, partition, limits)
                .unwrap()
                .0
                .len()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn tombstones_are_each_rejected_and_claim_no_key() {
    let topics = TestTopics::create("tombstones", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    for key in [Some(&b"gone"[..]), Some(&b"gone"[..]), None] {
        produce_raw(&producer, &topics.service_requests, 0, key, None, &[]).await;
    }
    produce(
        &producer,
        &topics.service_requests,
        Some("after-tombstones"),
        &request("after-tombstones", "Deploy SMF in namespace core5g"),
        &[],
    )
    .await;
    let worker = Worker::start(topics.config(dir.path()));
    let mut outcomes = Outcomes::new(&topics);
    outcomes.until_terminal_messages(4).await;
    worker.stop().await;

    let tombstones: Vec<_> = outcomes
        .in_order
        .iter()
        .filter(|e| e.stage.is_terminal() && e.source.offset < 3)
        .collect();
    assert_eq!(tombstones.len(), 3, "{:?}", outcomes.in_order);
    for event in &tombstones {
        assert_eq!(event.stage, Stage::Rejected, "{event:?}");
        let code = event.error.as_ref().map(|f| f.code);
        assert!(
            matches!(
                code,
                Some(ErrorCode::InvalidRecord | ErrorCode::InvalidJson)
            ),
            "{event:?}"
        );
    }
    assert_eq!(outcomes.count("duplicate"), 0);
    assert_eq!(
        outcomes.terminal("after-tombstones")[0].stage,
        Stage::Applied
    );
    assert_eq!(dead_letters(&topics, 3).await.len(), 3);
    // only the good request has an entry
    assert_eq!(changelog_len(&topics), 1);
    assert!(changelog_entry(&topics, "after-tombstones").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_bad_key_header_does_not_poison_its_corrected_resend() {
    let topics = TestTopics::create("resend", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    // No key in the payload: without a good header, its key is derived from the bytes.
    let payload = serde_json::json!({"intent": "Deploy NRF in namespace core5g"})
        .to_string()
        .into_bytes();
    let too_long = "k".repeat(300);
    let sends: [&[(&str, &str)]; 3] = [
        &[("idempotency-key", &too_long)],
        &[("idempotency-key", "fixed-1")],
        &[],
    ];
    for headers in sends {
        produce(&producer, &topics.service_requests, None, &payload, headers).await;
    }
    let worker = Worker::start(topics.config(dir.path()));
    let mut outcomes = Outcomes::new(&topics);
    outcomes.until_terminal_messages(3).await;
    worker.stop().await;

    let by_offset = |offset: i64| {
        outcomes
            .in_order
            .iter()
            .find(|e| e.stage.is_terminal() && e.source.offset == offset)
            .cloned()
            .expect("a terminal outcome")
    };
    let bad = by_offset(0);
    assert_eq!(bad.stage, Stage::Rejected);
    assert_eq!(
        bad.error.map(|f| f.code),
        Some(ErrorCode::InvalidIdempotencyKey)
    );
    let fixed = by_offset(1);
    assert_eq!(
        (fixed.stage, fixed.idempotency_key.as_str()),
        (Stage::Applied, "fixed-1")
    );
    // the same bytes with no key at all: keyed by their hash, which the rejected message
    // never claimed
    let keyless = by_offset(2);
    assert_eq!(keyless.stage, Stage::Applied, "{keyless:?}");
    assert_eq!(intent_files(dir.path()), 2);
    assert_eq!(
        changelog_len(&topics),
        2,
        "the rejected message left no entry"
    );
}

fn kpi_event(id: &str, nf: &str, value: f64) -> Vec<u8> {
    serde_json::json!({
        "event_id": id, "event_type": "kpi_threshold_crossed", "source": format!("{nf}-1"),
        "nf_type": nf, "namespace": "core5g", "severity": "major",
        "metric": "cpu_utilization", "value": value, "threshold": 80.0,
        "timestamp": "2026-11-26T10:00:00Z"
    })
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn kpi_events_for_one_function_within_the_cooldown_fold_into_one_scale_out() {
    recorder();
    let topics = TestTopics::create("cooldown", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    let storm: Vec<String> = (1..=5).map(|i| format!("upf-kpi-{i}")).collect();
    for id in &storm {
        let event = kpi_event(id, "upf", 91.0);
        produce(&producer, &topics.network_events, Some(id), &event, &[]).await;
    }
    // another function in the same namespace is another target
    let amf = kpi_event("amf-kpi-1", "amf", 95.0);
    produce(
        &producer,
        &topics.network_events,
        Some("amf-kpi-1"),
        &amf,
        &[],
    )
    .await;
    let mut config = topics.config(dir.path());
    config.event_cooldown = Duration::from_secs(300);
    let worker = Worker::start(config);
    let mut outcomes = Outcomes::new(&topics);
    outcomes
        .until_terminal(storm.iter().map(String::as_str).chain(["amf-kpi-1"]))
        .await;
    worker.stop().await;

    let terminal = |key: &str| outcomes.terminal(key)[0].clone();
    assert_eq!(terminal("amf-kpi-1").stage, Stage::Applied);
    let applied: Vec<_> = storm
        .iter()
        .map(|k| terminal(k))
        .filter(|e| e.stage == Stage::Applied)
        .collect();
    assert_eq!(applied.len(), 1, "one scale-out: {:?}", outcomes.by_key);
    let first = &applied[0];
    for key in &storm {
        let event = terminal(key);
        if event.idempotency_key == first.idempotency_key {
            continue;
        }
        assert_eq!(event.stage, Stage::Duplicate, "{key}");
        let original = event.original.as_ref().expect("names what it folded into");
        assert_eq!(original.stage, Stage::Applied);
        assert_eq!(original.intent, first.intent, "{key}");
        assert_eq!(original.source, first.source, "{key}");
        assert_eq!(event.intent, None, "{key}: no intent of its own");
        assert!(!outcomes.stages(key).contains(&"applied"), "{key}");
    }
    assert_eq!(
        intent_files(dir.path()),
        2,
        "the UPF's scale-out and the AMF's"
    );
    assert_eq!(metric("events_folded_total", &[("component", "upf")]), 4.0);
}

/// Sets the group's committed offset of partition 0 of `topic` back to `offset`, as if
/// the worker had crashed before committing (the group must have no member).
fn rewind(group: &str, topic: &str, offset: i64) {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("offset consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Offset(offset))
        .expect("tpl");
    consumer.commit(&tpl, CommitMode::Sync).expect("rewind");
}

#[tokio::test(flavor = "multi_thread")]
async fn redelivered_messages_that_claim_no_key_are_processed_again_with_the_same_event_ids() {
    let topics = TestTopics::create("redeliver", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    produce_raw(
        &producer,
        &topics.service_requests,
        0,
        Some(b"t"),
        None,
        &[],
    )
    .await;
    let too_long = "k".repeat(300);
    let payload = request("has-a-field", "Deploy UDM in namespace core5g");
    let bad_header = [("idempotency-key", too_long.as_str())];
    produce(
        &producer,
        &topics.service_requests,
        None,
        &payload,
        &bad_header,
    )
    .await;
    produce(&producer, &topics.service_requests, None, &payload, &[]).await;

    let mut outcomes = Outcomes::new(&topics);
    let terminals = |n: usize| {
        move |o: &Outcomes| o.in_order.iter().filter(|e| e.stage.is_terminal()).count() >= n
    };
    let worker = Worker::start(topics.config(dir.path()));
    outcomes.until(terminals(3)).await;
    worker.stop().await;
    rewind(&topics.group, &topics.service_requests, 0);
    let worker = Worker::start(topics.config(dir.path()));
    outcomes.until(terminals(6)).await;
    worker.stop().await;

    for offset in 0..3 {
        let events: Vec<_> = outcomes
            .in_order
            .iter()
            .filter(|e| e.stage.is_terminal() && e.source.offset == offset)
            .collect();
        assert_eq!(events.len(), 2, "offset {offset}: {events:?}");
        assert_eq!(events[0].event_id, events[1].event_id, "offset {offset}");
        assert_eq!(events[0].stage, events[1].stage, "offset {offset}");
        let expected = if offset == 2 {
            Stage::Applied
        } else {
            Stage::Rejected
        };
        assert_eq!(events[0].stage, expected, "offset {offset}");
    }
    assert_eq!(outcomes.count("duplicate"), 0);
    assert_eq!(
        changelog_len(&topics),
        1,
        "only the keyed request has an entry"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_sent_again_after_its_window_gets_new_event_ids_and_a_redelivery_keeps_them() {
    let topics = TestTopics::create("per-processing", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    let payload = request("again-1", "Deploy AMF in namespace core5g");
    produce(
        &producer,
        &topics.service_requests,
        Some("again-1"),
        &payload,
        &[],
    )
    .await;
    let mut outcomes = Outcomes::new(&topics);
    let worker = Worker::start(topics.config(dir.path()));
    outcomes.until_terminal_messages(1).await;
    worker.stop().await;

    // A redelivery (the offset was not committed): the same processing, the same ids.
    rewind(&topics.group, &topics.service_requests, 0);
    let worker = Worker::start(topics.config(dir.path()));
    outcomes.until(|o| o.terminal("again-1").len() >= 2).await;
    worker.stop().await;
    let first = outcomes.terminal("again-1");
    assert_eq!(
        (first[0].stage, first[1].stage),
        (Stage::Applied, Stage::Applied)
    );
    assert_eq!(
        first[0].event_id, first[1].event_id,
        "a redelivery keeps its ids"
    );
    assert_eq!(
        first[0].event_id,
        event_id("again-1", Stage::Applied, &first[0].source)
    );

    // The entry expires (written as last seen 8 days ago), and the key is sent again:
    // a new processing, whose events are new to a subscriber that drops seen ids.
    write_changelog(
        &topics,
        std::iter::once((
            "again-1".to_string(),
            applied_entry(0, now_secs() - 8 * 24 * 3600),
        )),
    )
    .await;
    produce(
        &producer,
        &topics.service_requests,
        Some("again-1"),
        &payload,
        &[],
    )
    .await;
    let worker = Worker::start(topics.config(dir.path()));
    outcomes.until(|o| o.terminal("again-1").len() >= 3).await;
    worker.stop().await;
    let terminals = outcomes.terminal("again-1");
    let again = terminals[2];
    assert_eq!((again.stage, again.source.offset), (Stage::Applied, 1));
    assert_ne!(
        again.event_id, terminals[0].event_id,
        "a new processing has new ids"
    );
    let received: Vec<_> = outcomes.by_key["again-1"]
        .iter()
        .filter(|e| e.stage == Stage::Received)
        .collect();
    let ids: HashSet<_> = received
        .iter()
        .map(|e| (e.source.offset, &e.event_id))
        .collect();
    let offsets: HashSet<_> = received.iter().map(|e| e.source.offset).collect();
    assert_eq!(
        ids.len(),
        offsets.len(),
        "one received id per message: {received:?}"
    );
    assert_eq!(offsets, HashSet::from([0, 1]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_key_sent_again_is_processed_and_a_rejected_one_is_a_duplicate() {
    recorder();
    let topics = TestTopics::create("retry-failed", 1).await;
    let dir = tempfile::tempdir().unwrap();
    // Another key's intent (here: not an intent at all) holds fail-1's path: the dir:
    // sink refuses to overwrite it, a permanent apply_failed.
    let blocked = dir
        .path()
        .join("core5g")
        .join(format!("{}.yaml", intent_name("fail-1")));
    std::fs::create_dir_all(blocked.parent().unwrap()).unwrap();
    std::fs::write(&blocked, "not: an intent of this service\n").unwrap();
    let producer = producer();
    let fail = request("fail-1", "Deploy AMF in namespace core5g");
    let reject = request("rej-1", "Delete every AMF in namespace core5g");
    let send_both = || async {
        produce(
            &producer,
            &topics.service_requests,
            Some("fail-1"),
            &fail,
            &[],
        )
        .await;
        produce(
            &producer,
            &topics.service_requests,
            Some("rej-1"),
            &reject,
            &[],
        )
        .await;
    };
    send_both().await;
    let mut outcomes = Outcomes::new(&topics);
    let worker = Worker::start(topics.config(dir.path()));
    outcomes.until_terminal_messages(2).await;
    let failed = outcomes.terminal("fail-1")[0].clone();
    assert_eq!(failed.stage, Stage::Failed, "{failed:?}");
    assert_eq!(
        failed.error.as_ref().map(|f| f.code),
        Some(ErrorCode::ApplyFailed)
    );
    assert_eq!(outcomes.terminal("rej-1")[0].stage, Stage::Rejected);

    // The cause is fixed; both are sent again, same payloads.
    std::fs::remove_file(&blocked).unwrap();
    send_both().await;
    outcomes.until_terminal_messages(4).await;
    worker.stop().await;

    let retried = outcomes.terminal("fail-1");
    assert_eq!(retried.len(), 2);
    assert_eq!(
        (retried[1].stage, retried[1].source.offset),
        (Stage::Applied, 2),
        "a failed key is processed again: {retried:?}"
    );
    assert_ne!(retried[1].event_id, failed.event_id);
    assert!(
        outcomes
            .stages("fail-1")
            .iter()
            .filter(|s| **s == "translated")
            .count()
            == 2
    );
    let intent = std::fs::read_to_string(&blocked).expect("the intent is written now");
    assert!(intent.contains("fail-1"), "{intent}");
    let rejected = outcomes.terminal("rej-1");
    assert_eq!(
        rejected.iter().map(|e| e.stage).collect::<Vec<_>>(),
        [Stage::Rejected, Stage::Duplicate],
        "rejected stays final for the same payload"
    );
    let topic = topics.service_requests.as_str();
    assert_eq!(metric("dedup_retries_total", &[("topic", topic)]), 1.0);
    assert!(matches!(
        changelog_entry(&topics, "fail-1").map(|e| e.state),
        Some(State::Done(Outcome {
            stage: Stage::Applied,
            ..
        }))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_rejected_message_sends_its_dead_letter_again_with_its_event_id() {
    let topics = TestTopics::create("redeliver-dlq", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    let reject = request("rej-2", "Delete every AMF in namespace core5g");
    produce(
        &producer,
        &topics.service_requests,
        Some("rej-2"),
        &reject,
        &[],
    )
    .await;
    let mut outcomes = Outcomes::new(&topics);
    let worker = Worker::start(topics.config(dir.path()));
    outcomes.until_terminal_messages(1).await;
    worker.stop().await;
    // A crash after the changelog's acknowledgement, before the offset's commit.
    rewind(&topics.group, &topics.service_requests, 0);
    let worker = Worker::start(topics.config(dir.path()));
    outcomes
        .until(|o| {
            o.by_key.get("rej-2").is_some_and(|events| {
                events
                    .iter()
                    .filter(|e| e.stage == Stage::DeadLettered)
                    .count()
                    >= 2
            })
        })
        .await;
    worker.stop().await;

    let dead_lettered: Vec<_> = outcomes.by_key["rej-2"]
        .iter()
        .filter(|e| e.stage == Stage::DeadLettered)
        .collect();
    assert_eq!(dead_lettered[0].event_id, dead_lettered[1].event_id);
    let reader = TopicReader::new(&topics.dlq, topics.partitions);
    let mut letters = Vec::new();
    for _ in 0..2 {
        let letter = reader
            .next(common::PATIENCE)
            .await
            .expect("a dead letter for each delivery");
        letters.push((
            header(&letter, "nephoran.event.id"),
            header(&letter, "nephoran.error.code"),
            header(&letter, "nephoran.source.offset"),
            rdkafka::Message::payload(&letter).map(<[u8]>::to_vec),
        ));
    }
    for letter in &letters {
        assert_eq!(
            letter,
            &(
                Some(dead_lettered[0].event_id.clone()),
                Some("untranslatable".to_string()),
                Some("0".to_string()),
                Some(reject.clone()),
            ),
            "the copy is identified by its dead_lettered event id"
        );
    }
}
