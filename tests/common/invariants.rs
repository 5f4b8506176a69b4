//! What every case of the fault suite must hold at its end: every input message has
//! exactly one terminal outcome (one distinct terminal `event_id` for its source offset:
//! a re-publication after a crash repeats the same event), no key applied twice (one
//! distinct `applied` event per key, one intent file per key), and the group's committed
//! offsets at the end of every input partition.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use nephoran_kafka_consumer::outcome::Stage;
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::{committed_and_end_on, intent_files, Outcomes, TestTopics, PATIENCE};

/// One input message as the broker acknowledged it.
#[derive(Debug, Clone)]
pub struct Produced {
    pub topic: String,
    pub key: String,
    pub partition: i32,
    pub offset: i64,
}

/// Produces keyed messages at once (not one round trip each) and returns where each
/// landed, from the delivery reports.
pub async fn produce_keyed(
    producer: &FutureProducer,
    topic: &str,
    messages: impl IntoIterator<Item = (String, Vec<u8>)>,
) -> Vec<Produced> {
    let mut deliveries = Vec::new();
    for (key, payload) in messages {
        let record = FutureRecord::to(topic).key(&key).payload(&payload);
        let delivery = producer
            .send_result(record)
            .map_err(|(e, _)| e)
            .expect("enqueue");
        deliveries.push((key, delivery));
    }
    let mut produced = Vec::new();
    for (key, delivery) in deliveries {
        let delivery = delivery
            .await
            .expect("delivery")
            .map_err(|(e, _)| e)
            .expect("produce");
        produced.push(Produced {
            topic: topic.to_string(),
            key,
            partition: delivery.partition,
            offset: delivery.offset,
        });
    }
    produced
}

/// Each (topic, partition)'s end: one past its highest produced offset.
fn ends(produced: &[Produced]) -> BTreeMap<(String, i32), i64> {
    let mut ends = BTreeMap::new();
    for p in produced {
        let end = ends.entry((p.topic.clone(), p.partition)).or_insert(0);
        *end = (*end).max(p.offset + 1);
    }
    ends
}

/// Waits until the group has committed the end of every partition `produced` went to,
/// polling (a commit cannot be awaited from outside the group); fails naming the
/// partitions behind.
pub async fn until_committed_to_the_end(topics: &TestTopics, produced: &[Produced]) {
    let ends = ends(produced);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut behind = Vec::new();
        let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
        for ((topic, partition), end) in &ends {
            by_topic.entry(topic).or_default().push((*partition, *end));
        }
        for (topic, partitions) in by_topic {
            let (brokers, group, name) = (
                topics.brokers.clone(),
                topics.group.clone(),
                topic.to_string(),
            );
            let count = topics.partitions;
            let committed = tokio::task::spawn_blocking(move || {
                committed_and_end_on(&brokers, &group, &name, count)
            })
            .await
            .expect("committed offsets");
            for (partition, end) in partitions {
                let committed = committed[partition as usize].0;
                if committed != end {
                    behind.push(format!(
                        "{topic}[{partition}] committed {committed}, end {end}"
                    ));
                }
            }
        }
        if behind.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "offsets not committed to the end after {PATIENCE:?}: {behind:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The suite's closing check (see the module comment). `produced` holds one message per
/// key, each a request that applies; `sink_dir` is the `dir:` sink's directory, when the
/// intents are written there. Reads the outcomes until every message has its
/// terminal one and the offsets are committed, then for a further quiet second (a
/// second terminal outcome would come late), then asserts.
pub async fn assert_each_message_once(
    topics: &TestTopics,
    outcomes: &mut Outcomes,
    produced: &[Produced],
    sink_dir: Option<&Path>,
) {
    let keys: HashSet<&str> = produced.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys.len(), produced.len(), "one message per key");
    outcomes.until_terminal(keys.iter().copied()).await;
    until_committed_to_the_end(topics, produced).await;
    outcomes.drain(Duration::from_secs(1)).await;

    for message in produced {
        let at = format!(
            "{}[{}]@{} (key {})",
            message.topic, message.partition, message.offset, message.key
        );
        let events = outcomes
            .by_key
            .get(&message.key)
            .cloned()
            .unwrap_or_default();
        let terminal: HashSet<(String, &'static str)> = events
            .iter()
            .filter(|e| e.stage.is_terminal())
            .map(|e| (e.event_id.clone(), e.stage.as_str()))
            .collect();
        assert_eq!(
            terminal.len(),
            1,
            "{at}: exactly one terminal outcome expected, got {terminal:?}"
        );
        for event in events.iter().filter(|e| e.stage.is_terminal()) {
            let source = &event.source;
            assert_eq!(
                (source.topic.as_str(), source.partition, source.offset),
                (message.topic.as_str(), message.partition, message.offset),
                "{at}: its terminal outcome names another source"
            );
        }
        let applied: HashSet<&str> = events
            .iter()
            .filter(|e| e.stage == Stage::Applied)
            .map(|e| e.event_id.as_str())
            .collect();
        assert_eq!(
            applied.len(),
            1,
            "{at}: applied once expected, got applied events {applied:?}; stages {:?}",
            outcomes.stages(&message.key)
        );
    }
    if let Some(dir) = sink_dir {
        assert_eq!(
            intent_files(dir),
            keys.len(),
            "one intent file per key under {}",
            dir.display()
        );
    }
}
