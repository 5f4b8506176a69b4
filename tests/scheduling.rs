//! Parallel across keys, in order within a key, on the real broker: slow translations
//! run side by side, the committed offset is the watermark of what is done, a full
//! partition is paused without leaving the group (in messages, or in bytes: its own
//! and the whole worker's), and work in flight on a revoked
//! partition is fenced.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::recorder::{metric, recorder};
use common::{
    committed_offset, intent_files, produce, producer, Outcomes, SlowTranslator, TestTopics, Worker,
};
use nephoran_kafka_consumer::config::Property;
use nephoran_kafka_consumer::kafka::consumer::EVENT_QUEUE;
use nephoran_kafka_consumer::outcome::Stage;
use nephoran_kafka_consumer::worker::EVENT_BATCH;

fn request(key: &str, text: &str) -> Vec<u8> {
    serde_json::json!({"idempotency_key": key, "intent": text})
        .to_string()
        .into_bytes()
}

fn kafka_config(config: &mut nephoran_kafka_consumer::config::Config, key: &str, value: &str) {
    config.kafka.kafka_config.push(Property {
        key: key.into(),
        value: value.into(),
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_of_one_key_run_in_order_and_keys_run_side_by_side() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info,rdkafka=warn")
        .try_init();
    const KEYS: usize = 12;
    const PER_KEY: usize = 8;
    // One partition: its outcome topic then holds the events in publication order.
    let topics = TestTopics::create("order", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    // Interleaved: key 0 seq 0, key 1 seq 0, ..., key 0 seq 1, ...
    for seq in 0..PER_KEY {
        for k in 0..KEYS {
            let id = format!("ord-{k:02}-{seq}");
            let text = format!("Scale UPF to {} replicas in namespace core5g", seq + 1);
            produce(
                &producer,
                &topics.service_requests,
                Some(&format!("cell-{k:02}")),
                &request(&id, &text),
                &[],
            )
            .await;
        }
    }
    let translator = SlowTranslator::new(Duration::from_millis(40), None);
    let worker = Worker::start_with(topics.config(dir.path()), translator.clone());
    let mut outcomes = Outcomes::new(&topics);
    outcomes.until_terminal_messages(KEYS * PER_KEY).await;
    worker.stop().await;

    // Outcomes, in the order they were published, carry each key's sequence in order.
    let mut applied: HashMap<String, Vec<usize>> = HashMap::new();
    for event in outcomes
        .in_order
        .iter()
        .filter(|e| e.stage == Stage::Applied)
    {
        let (cell, seq) = split(&event.idempotency_key);
        applied.entry(cell).or_default().push(seq);
    }
    assert_eq!(applied.len(), KEYS);
    for (cell, seqs) in &applied {
        assert_eq!(
            *seqs,
            (0..PER_KEY).collect::<Vec<_>>(),
            "outcomes of {cell} out of order"
        );
    }
    // One key never runs two at once; different keys do.
    let calls = translator.log.lock().unwrap().calls.clone();
    let mut running: HashMap<String, usize> = HashMap::new();
    for (key, started) in &calls {
        let (cell, _) = split(key);
        let n = running.entry(cell.clone()).or_default();
        if *started {
            assert_eq!(
                *n, 0,
                "{key} started while an earlier message of {cell} ran"
            );
            *n += 1;
        } else {
            *n -= 1;
        }
    }
    let starts: Vec<usize> = translator
        .started()
        .iter()
        .filter(|k| k.starts_with("ord-00-"))
        .map(|k| split(k).1)
        .collect();
    assert_eq!(starts, (0..PER_KEY).collect::<Vec<_>>());
    let most_running = translator.most_running();
    assert!(
        most_running > 1,
        "different keys should translate side by side (at most {most_running} did)"
    );
}

/// `ord-07-3` -> (`07`, 3)
fn split(key: &str) -> (String, usize) {
    let mut parts = key.rsplitn(2, '-');
    let seq = parts.next().and_then(|s| s.parse().ok()).expect("seq");
    let cell = parts.next().expect("cell").to_string();
    (cell, seq)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_message_holds_the_committed_offset_back_until_it_is_done() {
    let topics = TestTopics::create("watermark", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    let keys = ["wm-0", "held-1", "wm-2", "wm-3", "wm-4", "wm-5", "wm-6"];
    for key in keys {
        produce(
            &producer,
            &topics.service_requests,
            Some(key),
            &request(key, "Deploy AMF in namespace core5g"),
            &[],
        )
        .await;
    }
    let translator = SlowTranslator::new(Duration::ZERO, Some("held-"));
    let mut config = topics.config(dir.path());
    kafka_config(&mut config, "auto.commit.interval.ms", "100");
    let worker = Worker::start_with(config, translator.clone());
    let mut outcomes = Outcomes::new(&topics);
    let fast: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| k.starts_with("wm-"))
        .collect();
    outcomes.until_terminal(fast.iter().copied()).await;
    assert!(outcomes.terminal("held-1").is_empty(), "still held");

    // Offset 0 is done, 1 is held: the group may start again at 1, not later, although
    // 2..=6 are done.
    let topic = topics.service_requests.as_str();
    let group = topics.group.as_str();
    assert_eq!(committed_offset(group, topic, 0, |o| o >= 1).await, 1);
    translator.release();
    outcomes.until_terminal(["held-1"]).await;
    assert_eq!(
        committed_offset(group, topic, 0, |o| o > 1).await,
        7,
        "jumps past the messages that finished earlier"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_partition_is_paused_without_leaving_the_group_and_loses_nothing() {
    recorder();
    const MESSAGES: usize = 1500;
    const BUFFER: usize = 20;
    let topics = TestTopics::create("backpressure", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    for i in 0..MESSAGES {
        let key = format!("bp-{i}");
        let payload = request(&key, "Deploy NRF in namespace core5g");
        let record = rdkafka::producer::FutureRecord::to(&topics.service_requests)
            .key(&key)
            .payload(&payload);
        // Enqueued without waiting one by one; the wait for all of them follows.
        producer
            .send_result(record)
            .map_err(|(e, _)| e)
            .expect("enqueue");
    }
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(30)).expect("flush");

    let translator = SlowTranslator::new(Duration::ZERO, Some("bp-"));
    let mut config = topics.config(dir.path());
    config.partition_buffer = BUFFER;
    config.intent_sink = "discard".parse().unwrap();
    // The lowest librdkafka allows next to the tests' session timeout.
    kafka_config(&mut config, "max.poll.interval.ms", "6000");
    let worker = Worker::start_with(config, translator.clone());
    let mut outcomes = Outcomes::new(&topics);
    // Everything that will be admitted while the translator is held has arrived once the
    // outcome topic is quiet for a while.
    outcomes.until(|o| o.count("received") >= BUFFER).await;
    outcomes.drain(Duration::from_secs(3)).await;
    let topic = topics.service_requests.as_str();
    assert!(metric("partition_pauses_total", &[("topic", topic)]) >= 1.0);
    let admitted = outcomes.count("received");
    assert!(
        (BUFFER..=BUFFER + EVENT_QUEUE + EVENT_BATCH).contains(&admitted),
        "{admitted} messages admitted with a buffer of {BUFFER}: the partition was not paused"
    );

    // Held past max.poll.interval.ms: the poll thread keeps polling, so the group keeps
    // the partition here. (Time passing is what this checks.)
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        metric("partitions_revoked_total", &[("topic", topic)]),
        0.0,
        "the worker lost its partition while paused"
    );
    assert!(worker.health.is_ready());

    translator.release();
    outcomes.until_terminal_messages(MESSAGES).await;
    committed_offset(&topics.group, topic, 0, |o| o == MESSAGES as i64).await;
    worker.stop().await;
    outcomes.drain(Duration::from_millis(500)).await;
    assert_eq!(outcomes.count("applied"), MESSAGES);
    assert_eq!(
        outcomes.count("received"),
        MESSAGES,
        "each message received once: none was redelivered by a rebalance"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn partitions_pause_on_bytes_their_own_and_the_whole_workers() {
    recorder();
    use nephoran_kafka_consumer::kafka::queued::QUEUE_BYTES;
    use rdkafka::message::{Header, OwnedHeaders};
    const MESSAGES: usize = 40;
    // 32 headers of 16 000 bytes: half a megabyte a message, each header under the
    // per-value limit of the trust boundary.
    const HEADERS: usize = 32;
    const HEADER_BYTES: usize = 16_000;
    const MESSAGE_BYTES: usize = HEADERS * HEADER_BYTES;
    let topics = TestTopics::create("bytes", 2).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    let padding = vec![b'x'; HEADER_BYTES];
    for i in 0..MESSAGES {
        let key = format!("bytes-{i}");
        let payload = request(&key, "Deploy NRF in namespace core5g");
        let mut headers = OwnedHeaders::new();
        for h in 0..HEADERS {
            headers = headers.insert(Header {
                key: &format!("x-padding-{h}"),
                value: Some(&padding),
            });
        }
        let record = rdkafka::producer::FutureRecord::to(&topics.service_requests)
            .key(&key)
            .partition((i % 2) as i32)
            .headers(headers)
            .payload(&payload);
        producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| e)
            .expect("produce");
    }

    let translator = SlowTranslator::new(Duration::ZERO, Some("bytes-"));
    let mut config = topics.config(dir.path());
    config.intent_sink = "discard".parse().unwrap();
    // Far above what arrives: only bytes can pause a partition here.
    config.partition_buffer = 1000;
    config.partition_buffer_bytes = 4 * MESSAGE_BYTES;
    config.buffer_bytes = 6 * MESSAGE_BYTES;
    let worker = Worker::start_with(config, translator.clone());
    let mut outcomes = Outcomes::new(&topics);
    outcomes.until(|o| o.count("received") >= 6).await;
    outcomes.drain(Duration::from_secs(3)).await;
    let topic = topics.service_requests.as_str();
    let pauses = |reason| {
        metric(
            "partition_pauses_total",
            &[("topic", topic), ("reason", reason)],
        )
    };
    assert!(
        pauses("memory") >= 2.0,
        "both partitions paused for the worker's buffer"
    );
    let admitted = outcomes.count("received");
    // What the budget admits, what was already in the hand-off queue, and one more.
    let bound = 6 + QUEUE_BYTES / MESSAGE_BYTES + 2;
    assert!(
        admitted <= bound,
        "{admitted} messages of {MESSAGE_BYTES} bytes admitted with a buffer of 6 of them \
         (at most {bound} with the hand-off queue): the byte budgets did not pause"
    );

    translator.release();
    outcomes.until_terminal_messages(MESSAGES).await;
    for partition in 0..2 {
        committed_offset(&topics.group, topic, partition, |o| {
            o == (MESSAGES / 2) as i64
        })
        .await;
    }
    worker.stop().await;
    outcomes.drain(Duration::from_millis(500)).await;
    assert_eq!(
        outcomes.count("applied"),
        MESSAGES,
        "nothing lost while paused"
    );
    assert_eq!(outcomes.count("received"), MESSAGES, "nor redelivered");
}

#[tokio::test(flavor = "multi_thread")]
async fn work_in_flight_on_a_revoked_partition_is_fenced_and_redone_by_the_new_owner() {
    recorder();
    let topics = TestTopics::create("fencing", 2).await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let producer = producer();
    // One held message in each of the four input partitions: whichever two move to the
    // second worker, two are in flight on the first when they do.
    let mut keys = Vec::new();
    for topic in topics.inputs() {
        for partition in 0..2 {
            let key = format!("fence-{partition}-{}", keys.len());
            let payload = if topic == topics.network_events {
                serde_json::json!({
                    "event_id": key, "event_type": "kpi_threshold_crossed", "source": "upf-1",
                    "nf_type": "upf", "namespace": "core5g", "severity": "major",
                    "metric": "cpu_utilization", "value": 95.0, "threshold": 80.0,
                    "timestamp": "2026-11-26T10:00:00Z"
                })
                .to_string()
                .into_bytes()
            } else {
                request(&key, "Deploy SMF in namespace core5g")
            };
            let record = rdkafka::producer::FutureRecord::to(topic)
                .key(&key)
                .partition(partition)
                .payload(&payload);
            producer
                .send(record, Duration::from_secs(30))
                .await
                .map_err(|(e, _)| e)
                .expect("produce");
            keys.push(key);
        }
    }
    let held = SlowTranslator::new(Duration::ZERO, Some("fence-"));
    let mut config_a = topics.config(dir_a.path());
    config_a.revoke_drain_timeout = Duration::from_secs(1);
    let a = Worker::start_with(config_a, held.clone());
    // All four are in flight on A.
    let mut outcomes = Outcomes::new(&topics);
    while held.started().len() < keys.len() {
        outcomes.drain(Duration::from_millis(200)).await;
    }

    let b = Worker::start(topics.config(dir_b.path()));
    // B takes two partitions; A's two translations there are fenced, and B redoes them.
    outcomes.until_terminal_messages(2).await;
    let moved: Vec<String> = keys
        .iter()
        .filter(|k| !outcomes.terminal(k).is_empty())
        .cloned()
        .collect();
    assert_eq!(moved.len(), 2, "{:?}", outcomes.by_key);
    // A dropped its two translations there at the hand-over, while they were still held.
    let fenced = || -> f64 {
        topics
            .inputs()
            .iter()
            .map(|t| metric("fenced_completions_total", &[("topic", t)]))
            .sum()
    };
    assert_eq!(
        fenced(),
        2.0,
        "A's two in-flight messages are counted as fenced"
    );

    held.release();
    outcomes
        .until_terminal(keys.iter().map(String::as_str))
        .await;
    a.stop().await;
    b.stop().await;
    outcomes.drain(Duration::from_millis(500)).await;

    for key in &keys {
        let stages = outcomes.stages(key);
        let count = |stage: &str| stages.iter().filter(|s| **s == stage).count();
        assert_eq!(count("applied"), 1, "{key}: {stages:?}");
        assert_eq!(count("translated"), 1, "{key}: {stages:?}");
    }
    assert_eq!(fenced(), 2.0, "the two A kept were not fenced");
    assert_eq!(
        intent_files(dir_b.path()),
        2,
        "B applied the two it took over"
    );
    assert_eq!(
        intent_files(dir_a.path()),
        2,
        "A applied only the two it kept, not the fenced ones"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_request_under_two_record_keys_is_translated_once() {
    let topics = TestTopics::create("twins", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    // Same idempotency key, different record keys: two lanes, one request.
    for record_key in ["cell-1", "cell-2"] {
        produce(
            &producer,
            &topics.service_requests,
            Some(record_key),
            &request("twin-1", "Deploy AMF in namespace core5g"),
            &[],
        )
        .await;
    }
    let held = SlowTranslator::new(Duration::ZERO, Some("twin-"));
    let worker = Worker::start_with(topics.config(dir.path()), held.clone());
    let mut outcomes = Outcomes::new(&topics);
    let received = |o: &Outcomes| {
        o.stages("twin-1")
            .iter()
            .filter(|s| **s == "received")
            .count()
    };
    outcomes.until(|o| received(o) == 2).await;
    held.release();
    outcomes.until(|o| o.terminal("twin-1").len() == 2).await;
    worker.stop().await;

    let stages: Vec<Stage> = outcomes
        .terminal("twin-1")
        .iter()
        .map(|e| e.stage)
        .collect();
    assert_eq!(stages, [Stage::Applied, Stage::Duplicate]);
    assert_eq!(held.started(), ["twin-1"], "translated once");
    assert_eq!(intent_files(dir.path()), 1);
}

/// A worker stuck past its drain deadline does not answer a revocation. The rebalance
/// callback then ends the revoked partitions' leases itself before librdkafka gives them
/// up, so whatever of them is still in flight is fenced; the partition kept stays leased.
#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_not_answered_in_time_ends_its_leases_in_the_callback() {
    use nephoran_kafka_consumer::health::Health;
    use nephoran_kafka_consumer::kafka::consumer::{GroupConsumer, GroupEvent, Settings};
    use nephoran_kafka_consumer::lease::{Held, Lease};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    let topics = TestTopics::create("unanswered", 2).await;
    let properties = BTreeMap::from([
        ("bootstrap.servers".to_string(), common::brokers()),
        ("session.timeout.ms".to_string(), "6000".to_string()),
    ]);
    let inputs = [topics.service_requests.clone()];
    let start = |held: Held| {
        GroupConsumer::start(Settings {
            properties: &properties,
            group: &topics.group,
            topics: &inputs,
            health: Arc::new(Health::default()),
            flush_producer: Box::new(|_| Ok(())),
            revoke_wait: Duration::ZERO,
            leases: held,
        })
        .expect("consumer")
    };
    let patience = Duration::from_secs(60);

    // The stuck worker: takes its two partitions and leases them.
    let held = Held::default();
    let (stuck, mut stuck_events) = start(held.clone());
    let mut leases: HashMap<i32, Lease> = HashMap::new();
    while leases.len() < 2 {
        let event = tokio::time::timeout(patience, stuck_events.recv())
            .await
            .expect("assigned within the patience")
            .expect("poll thread running");
        if let GroupEvent::Assigned(partitions) = event {
            for partition in partitions {
                let lease = Lease::new(partition.1 as u64 + 1);
                held.insert(partition.clone(), lease.clone());
                leases.insert(partition.1, lease);
            }
        }
    }

    // A second member joins; one partition is revoked from the first, which never
    // answers (the answer channel is kept open, as by a worker that is busy).
    let (joiner, mut joiner_events) = start(Held::default());
    let (revoked, _unanswered) = loop {
        let event = tokio::time::timeout(patience, stuck_events.recv())
            .await
            .expect("a revocation within the patience")
            .expect("poll thread running");
        if let GroupEvent::Revoked {
            partitions,
            handed_over,
        } = event
        {
            break (partitions, handed_over);
        }
    };
    assert_eq!(revoked.len(), 1, "cooperative: one of two partitions moves");
    let moved = revoked[0].1;
    assert!(
        leases[&moved].is_held(),
        "the callback first waits for the worker's answer"
    );
    tokio::time::timeout(patience, leases[&moved].ended())
        .await
        .expect("the callback ends the lease once the wait runs out");
    assert!(
        leases.iter().all(|(p, l)| *p == moved || l.is_held()),
        "the partition kept stays leased"
    );
    // The joiner got the moved partition.
    tokio::time::timeout(patience, async {
        loop {
            match joiner_events.recv().await {
                Some(GroupEvent::Assigned(partitions))
                    if partitions.iter().any(|p| p.1 == moved) =>
                {
                    break
                }
                Some(_) => {}
                None => panic!("the joiner's poll thread stopped"),
            }
        }
    })
    .await
    .expect("the joiner is assigned the moved partition");

    joiner.close(joiner_events).await.expect("joiner closes");
    stuck
        .close(stuck_events)
        .await
        .expect("stuck member closes");
}
