//! A sink that is down, on the real broker: a `dir:` sink whose directory cannot be
//! written (its path is a file; as root, permissions would not stop the worker) turns a
//! backlog into neither `failed` outcomes nor dead letters. The partitions pause, the
//! worker is not ready and nothing is committed; once the directory can be written, every
//! message is applied once, in order per key, and committed to the end.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use common::raw::produce_raw;
use common::recorder::{metric, recorder};
use common::{
    committed_and_end, committed_offset, intent_files, produce, producer, until, Outcomes,
    TestTopics, TopicReader, Worker,
};
use rdkafka::producer::FutureProducer;

fn request(key: &str, text: &str) -> Vec<u8> {
    serde_json::json!({"idempotency_key": key, "intent": text})
        .to_string()
        .into_bytes()
}

/// Produces `seqs` messages for each of `lanes` record keys, interleaved; returns the
/// idempotency keys by record key, in production order.
async fn produce_lanes(
    producer: &FutureProducer,
    topic: &str,
    batch: &str,
    lanes: usize,
    seqs: usize,
) -> HashMap<String, Vec<String>> {
    let mut by_lane: HashMap<String, Vec<String>> = HashMap::new();
    for seq in 0..seqs {
        for lane in 0..lanes {
            let record_key = format!("cell-{lane:02}");
            let id = format!("down-{batch}-{lane:02}-{seq}");
            let text = format!("Scale UPF to {} replicas in namespace edge-{lane}", seq + 1);
            produce(
                producer,
                topic,
                Some(&record_key),
                &request(&id, &text),
                &[],
            )
            .await;
            by_lane.entry(record_key).or_default().push(id);
        }
    }
    by_lane
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sink_that_is_down_pauses_the_backlog_and_applies_it_all_when_back() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info,rdkafka=warn")
        .try_init();
    recorder();
    const LANES: usize = 6;
    const SEQS: usize = 3;
    // One partition: the outcome topic then holds the events in publication order.
    let topics = TestTopics::create("sinkdown", 1).await;
    let topic = topics.service_requests.clone();
    let dir = tempfile::tempdir().unwrap();
    let sink_dir = dir.path().join("intents");
    // The sink's directory is a file: nothing can be written under it.
    std::fs::write(&sink_dir, b"not a directory").unwrap();

    let worker = Worker::start(topics.config(&sink_dir));
    worker.until_assigned().await;
    let producer = producer();
    let first = produce_lanes(&producer, &topic, "a", LANES, SEQS).await;

    // The sink is found down: not ready, with the reason; the partition is paused.
    until("the worker is not ready", || !worker.health.is_ready()).await;
    let why = worker.health.not_ready().unwrap_or_default();
    assert!(why.contains("intent sink is down"), "{why}");
    assert!(
        why.contains(&sink_dir.display().to_string()),
        "the reason names the path: {why}"
    );
    // (Metrics by this test's topic: the tests of this file run side by side.)
    let paused = [("topic", topic.as_str()), ("reason", "sink_down")];
    until("the partition is paused", || {
        metric("partition_pauses_total", &paused) >= 1.0
    })
    .await;
    assert!(metric("sink_waiting_messages", &[("topic", &topic)]) >= 1.0);
    assert!(metric("sink_errors_total", &[("kind", "transient")]) >= 1.0);

    // More arrives while it is down: it stays in Kafka (the partition is paused).
    let second = produce_lanes(&producer, &topic, "b", LANES, SEQS).await;
    let mut outcomes = Outcomes::new(&topics);
    outcomes.drain(Duration::from_secs(4)).await;
    let received_second = second
        .values()
        .flatten()
        .filter(|key| !outcomes.stages(key).is_empty())
        .count();
    assert_eq!(
        received_second, 0,
        "messages produced after the pause were admitted"
    );
    for stage in ["applied", "failed", "rejected", "dead_lettered"] {
        assert_eq!(outcomes.count(stage), 0, "{stage} while the sink is down");
    }
    assert!(
        TopicReader::new(&topics.dlq, 1)
            .next(Duration::from_secs(1))
            .await
            .is_none(),
        "no dead letter while the sink is down"
    );
    let (committed, _) = committed_and_end(&topics.group, &topic, 1)[0];
    assert!(
        committed <= 0,
        "committed to {committed} with nothing applied"
    );
    assert!(!worker.health.is_ready(), "still not ready");

    // Healed: everything waiting is applied, once, in order per key.
    std::fs::remove_file(&sink_dir).unwrap();
    let all: Vec<&String> = first.values().chain(second.values()).flatten().collect();
    outcomes
        .until_terminal(all.iter().map(|k| k.as_str()))
        .await;
    let total = 2 * LANES * SEQS;
    committed_offset(&topics.group, &topic, 0, |o| o == total as i64).await;
    outcomes.drain(Duration::from_secs(1)).await;
    for key in &all {
        assert_eq!(
            outcomes.stages(key),
            ["received", "translated", "applied"],
            "{key}"
        );
    }
    let mut lanes = first.clone();
    for (lane, keys) in &second {
        lanes
            .entry(lane.clone())
            .or_default()
            .extend(keys.iter().cloned());
    }
    for (lane, keys) in &lanes {
        let applied: Vec<&str> = outcomes
            .in_order
            .iter()
            .filter(|e| e.stage.as_str() == "applied")
            .map(|e| e.idempotency_key.as_str())
            .filter(|k| keys.iter().any(|own| own == k))
            .collect();
        assert_eq!(applied, *keys, "applied out of order in lane {lane}");
    }
    assert_eq!(intent_files(&sink_dir), total);
    until("the worker is ready again", || worker.health.is_ready()).await;
    assert_eq!(metric("sink_waiting_messages", &[("topic", &topic)]), 0.0);
    assert_eq!(
        metric("partition_pauses_total", &paused),
        1.0,
        "paused once, resumed once"
    );
    assert!(
        TopicReader::new(&topics.dlq, 1)
            .next(Duration::from_secs(1))
            .await
            .is_none(),
        "no dead letter at all"
    );
    worker.stop().await;
}

/// A partition handed over while its messages wait for the sink is not held up by them:
/// they are fenced at once (the drain timeout here is far beyond the test's patience),
/// and the next owner applies them; what stays applies when the sink is back.
#[tokio::test(flavor = "multi_thread")]
async fn messages_waiting_for_the_sink_are_fenced_at_a_hand_over_and_applied_by_the_next_owner() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info,rdkafka=warn")
        .try_init();
    recorder();
    const PER_PARTITION: usize = 3;
    let topics = TestTopics::create("sinkhandover", 2).await;
    let topic = topics.service_requests.clone();
    let dir = tempfile::tempdir().unwrap();
    let (down_dir, up_dir) = (dir.path().join("down"), dir.path().join("up"));
    std::fs::write(&down_dir, b"not a directory").unwrap();
    let config = |sink_dir: &Path| {
        let mut config = topics.config(sink_dir);
        // One topic: its two partitions are shared one each.
        config.topics.topics = vec![topic.clone()];
        config.revoke_drain_timeout = Duration::from_secs(600);
        config
    };

    let producer = producer();
    let mut keys = Vec::new();
    for partition in 0..2 {
        for lane in 0..PER_PARTITION {
            let key = format!("handover-{partition}-{lane}");
            let text = format!("Deploy AMF with 2 replicas in namespace edge-{lane}");
            let record_key = format!("cell-{partition}-{lane}");
            produce_raw(
                &producer,
                &topic,
                partition,
                Some(record_key.as_bytes()),
                Some(&request(&key, &text)),
                &[],
            )
            .await;
            keys.push(key);
        }
    }
    let first = Worker::start(config(&down_dir));
    // Both partitions have messages waiting for the sink (a partition pauses once its
    // first message waits, so not all of them may have been read).
    let mut outcomes = Outcomes::new(&topics);
    outcomes
        .until(|o| {
            (0..2).all(|p| {
                o.in_order
                    .iter()
                    .any(|e| e.stage.as_str() == "received" && e.source.partition == p)
            })
        })
        .await;
    until("the messages read wait for the sink", || {
        metric("sink_waiting_messages", &[("topic", &topic)]) >= 2.0
    })
    .await;
    assert!(!first.health.is_ready());

    // A second worker, whose sink is up, takes one of the partitions at once: its
    // waiting messages are fenced, and it applies the whole partition.
    let second = Worker::start(config(&up_dir));
    until(
        "the partition handed over is applied by its next owner",
        || intent_files(&up_dir) == PER_PARTITION,
    )
    .await;
    assert!(metric("fenced_completions_total", &[("topic", &topic)]) >= 1.0);
    assert!(!first.health.is_ready(), "the other partition still waits");

    // The first worker's sink is back: the rest is applied there.
    std::fs::remove_file(&down_dir).unwrap();
    outcomes
        .until_terminal(keys.iter().map(String::as_str))
        .await;
    for partition in 0..2 {
        committed_offset(&topics.group, &topic, partition, |o| {
            o == PER_PARTITION as i64
        })
        .await;
    }
    outcomes.drain(Duration::from_secs(1)).await;
    for key in &keys {
        let stages = outcomes.stages(key);
        assert_eq!(
            stages.iter().filter(|s| **s == "applied").count(),
            1,
            "{key}: {stages:?}"
        );
        assert!(
            !stages
                .iter()
                .any(|s| ["failed", "rejected", "dead_lettered"].contains(s)),
            "{key}: {stages:?}"
        );
    }
    assert_eq!(intent_files(&down_dir), PER_PARTITION);
    until("the first worker is ready again", || {
        first.health.is_ready()
    })
    .await;
    second.stop().await;
    first.stop().await;
}

/// A shutdown does not wait for messages waiting for the sink (the shutdown deadline here
/// is far beyond the test's patience): they are handed back uncommitted, and the next
/// worker applies them.
#[tokio::test(flavor = "multi_thread")]
async fn a_shutdown_hands_back_the_messages_waiting_for_the_sink() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info,rdkafka=warn")
        .try_init();
    recorder();
    let topics = TestTopics::create("sinkshutdown", 1).await;
    let topic = topics.service_requests.clone();
    let dir = tempfile::tempdir().unwrap();
    let (down_dir, up_dir) = (dir.path().join("down"), dir.path().join("up"));
    std::fs::write(&down_dir, b"not a directory").unwrap();
    let producer = producer();
    let keys = produce_lanes(&producer, &topic, "s", 3, 2).await;
    let total = keys.values().map(Vec::len).sum::<usize>();

    let mut config = topics.config(&down_dir);
    config.shutdown_timeout = Duration::from_secs(600);
    let first = Worker::start(config);
    until("messages wait for the sink", || {
        metric("sink_waiting_messages", &[("topic", &topic)]) >= 1.0
    })
    .await;
    first.stop().await;
    let (committed, _) = committed_and_end(&topics.group, &topic, 1)[0];
    assert!(
        committed <= 0,
        "committed to {committed} with nothing applied"
    );

    let second = Worker::start(topics.config(&up_dir));
    let mut outcomes = Outcomes::new(&topics);
    outcomes
        .until_terminal(keys.values().flatten().map(String::as_str))
        .await;
    committed_offset(&topics.group, &topic, 0, |o| o == total as i64).await;
    second.stop().await;
    outcomes.drain(Duration::from_secs(1)).await;
    assert_eq!(outcomes.count("applied"), total);
    assert_eq!(
        outcomes.count("failed") + outcomes.count("dead_lettered"),
        0
    );
    assert_eq!(intent_files(&up_dir), total);
}
