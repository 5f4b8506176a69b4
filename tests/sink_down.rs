//! A sink that is down, on the real broker: a `dir:` sink whose directory cannot be
//! written (its path is a file; as root, permissions would not stop the worker) turns a
//! backlog into neither `failed` outcomes nor dead letters. The partitions pause, the
//! worker is not ready and nothing is committed; once the directory can be written, every
//! message is applied once, in order per key, and committed to the end.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::recorder::{metric, recorder};
use common::{
    committed_and_end, committed_offset, intent_files, produce, producer, Outcomes, TestTopics,
    TopicReader, Worker, PATIENCE,
};
use rdkafka::producer::FutureProducer;

fn request(key: &str, text: &str) -> Vec<u8> {
    serde_json::json!({"idempotency_key": key, "intent": text})
        .to_string()
        .into_bytes()
}

/// Waits until `ready` holds, checking every 50 ms (a worker's health and metrics
/// cannot be awaited from outside); panics after [`PATIENCE`] naming `what`.
async fn until(what: &str, ready: impl Fn() -> bool) {
    let waited = tokio::time::timeout(PATIENCE, async {
        while !ready() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{what}: not within {PATIENCE:?}");
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
    until("the partition is paused", || {
        metric("partitions_paused", &[]) >= 1.0
    })
    .await;
    assert_eq!(metric("sink_up", &[]), 0.0);
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
    assert_eq!(metric("sink_up", &[]), 1.0);
    until("the partition is resumed", || {
        metric("partitions_paused", &[]) == 0.0
    })
    .await;
    assert!(
        TopicReader::new(&topics.dlq, 1)
            .next(Duration::from_secs(1))
            .await
            .is_none(),
        "no dead letter at all"
    );
    worker.stop().await;
}
