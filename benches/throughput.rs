//! End-to-end throughput on the local broker (P1 of the throughput work): the worker with
//! the rule translator and a discarding sink, next to a bare rdkafka consume-then-produce
//! passthrough over the same input, in the same run. Prints messages per second for
//! both and their ratio.
//!
//! Needs a broker: `scripts/bench --bench throughput` starts one. `THROUGHPUT_MESSAGES`
//! overrides the message count (default 200 000, over 8 partitions).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use nephoran_kafka_consumer::apply::IntentSink;
use nephoran_kafka_consumer::config::Config;
use nephoran_kafka_consumer::health::Health;
use nephoran_kafka_consumer::kafka::admin;
use nephoran_kafka_consumer::pipeline::Pipeline;
use nephoran_kafka_consumer::translate::RuleTranslator;
use nephoran_kafka_consumer::validate::Limits;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

const PARTITIONS: i32 = 8;

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    config: Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let brokers = std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let messages: usize = std::env::var("THROUGHPUT_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let run = std::process::id();
    let input = format!("bench-in-{run}");
    let passthrough_out = format!("bench-passthrough-{run}");
    let outcomes = format!("bench-outcomes-{run}");
    let dlq = format!("bench-dlq-{run}");
    let properties = BTreeMap::from([("bootstrap.servers".to_string(), brokers.clone())]);
    admin::create_topics(
        &properties,
        &[
            input.clone(),
            passthrough_out.clone(),
            outcomes.clone(),
            dlq.clone(),
        ],
        PARTITIONS,
        1,
    )
    .await?;

    let ends = fill(&brokers, &input, messages).await?;
    println!("P1: {messages} messages over {PARTITIONS} partitions of {input}");

    let bare = passthrough(&brokers, &input, &passthrough_out, messages).await?;
    let bare_rate = messages as f64 / bare.as_secs_f64();
    println!(
        "  bare consume-then-produce: {:>8.0} msg/s ({:.1} s)",
        bare_rate,
        bare.as_secs_f64()
    );

    let worker = worker(&brokers, &input, &outcomes, &dlq, &ends).await?;
    let worker_rate = messages as f64 / worker.as_secs_f64();
    println!(
        "  worker (rules, discard):   {:>8.0} msg/s ({:.1} s); 5 sends per message \
         (received, translated, applied, 2 changelog entries)",
        worker_rate,
        worker.as_secs_f64(),
    );
    println!(
        "  ratio worker / bare: {:.2} (target >= 0.5)",
        worker_rate / bare_rate
    );
    Ok(())
}

/// Produces `messages` small service requests with distinct keys; returns each
/// partition's end offset.
async fn fill(brokers: &str, topic: &str, messages: usize) -> anyhow::Result<Vec<i64>> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let mut deliveries = Vec::with_capacity(messages);
    for i in 0..messages {
        let key = format!("order-{i}");
        let payload = format!(
            r#"{{"idempotency_key":"{key}","intent":"Deploy AMF with {} replicas in namespace core5g"}}"#,
            i % 5 + 1
        );
        let record = FutureRecord::to(topic).key(&key).payload(&payload);
        match producer.send_result(record) {
            Ok(d) => deliveries.push(d),
            Err((e, _)) => anyhow::bail!("fill: {e}"),
        }
    }
    let mut ends = vec![0i64; PARTITIONS as usize];
    for d in deliveries {
        let delivery = d.await?.map_err(|(e, _)| e)?;
        let p = delivery.partition as usize;
        ends[p] = ends[p].max(delivery.offset + 1);
    }
    Ok(ends)
}

/// Reads every message with a group consumer and produces it to `out`; the time until
/// the last one is acknowledged.
async fn passthrough(
    brokers: &str,
    input: &str,
    out: &str,
    messages: usize,
) -> anyhow::Result<Duration> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{input}-bare"))
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .create()?;
    consumer.subscribe(&[input])?;
    // Timed from the first message, so the group join is not counted (as for the worker).
    let first = consumer.recv().await?.detach();
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(messages);
    let mut next = Some(first);
    for _ in 0..messages {
        let m = match next.take() {
            Some(m) => m,
            None => consumer.recv().await?.detach(),
        };
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(out);
        if let Some(k) = m.key() {
            record = record.key(k);
        }
        if let Some(p) = m.payload() {
            record = record.payload(p);
        }
        loop {
            match producer.send_result(record) {
                Ok(d) => break deliveries.push(d),
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(1));
                }
            }
        }
    }
    for d in deliveries {
        d.await?.map_err(|(e, _)| e)?;
    }
    Ok(started.elapsed())
}

/// Runs a worker until its group has committed every input offset; the time from its
/// first committed progress (the group joined and restored) to the end.
async fn worker(
    brokers: &str,
    input: &str,
    outcomes: &str,
    dlq: &str,
    ends: &[i64],
) -> anyhow::Result<Duration> {
    let group = format!("{input}-worker");
    let args = [
        "bench",
        "--brokers",
        brokers,
        "--topics",
        input,
        "--outcomes-topic",
        outcomes,
        "--dlq-topic",
        dlq,
        "--group",
        &group,
        "--intent-sink",
        "discard",
        "--metrics-addr",
        "127.0.0.1:0",
        "--dedup-changelog-replication",
        "1",
        "--kafka-config",
        "session.timeout.ms=6000",
        "--kafka-config",
        "auto.commit.interval.ms=100",
    ];
    let config = Wrapper::try_parse_from(args)?.config;
    let pipeline = Pipeline::new(
        RuleTranslator::new(100),
        IntentSink::new(config.intent_sink.clone()),
        Limits::default(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        nephoran_kafka_consumer::worker::run(
            &config,
            pipeline,
            Arc::new(Health::default()),
            shutdown,
        )
        .await
    });

    let watcher: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", &group)
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(input, p);
    }
    let mut started = None;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let committed = watcher.committed_offsets(tpl.clone(), Duration::from_secs(5))?;
        let done: Vec<i64> = (0..PARTITIONS)
            .map(
                |p| match committed.find_partition(input, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o,
                    _ => 0,
                },
            )
            .collect();
        if started.is_none() && done.iter().any(|o| *o > 0) {
            started = Some(Instant::now());
        }
        if done.iter().zip(ends).all(|(d, e)| d >= e) {
            break;
        }
    }
    let elapsed = started.map(|s| s.elapsed()).unwrap_or_default();
    let _ = stop.send(());
    task.await??;
    Ok(elapsed)
}
