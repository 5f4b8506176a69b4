//! Throughput and latency on the local broker, the three figures of the throughput work,
//! in one run:
//!
//! - P1 bookkeeping: the worker with the rule translator and a discarding sink over
//!   200 000 small messages in 8 partitions, next to a bare rdkafka consume-then-produce
//!   passthrough of the same input; messages per second and their ratio (target >= 0.5).
//!   For reference, two more passthroughs: one producing the worker's four records per
//!   message, and one also running the pipeline inline (the worker's work without its
//!   bookkeeping); each line with the CPU time this process spent per message.
//! - P2 slow translator: a translator that sleeps L = 200 ms, MAX_IN_FLIGHT C = 256,
//!   20 000 messages with 5 000 distinct record keys in 8 partitions; messages per
//!   second, the ratio to C/L (target >= 0.9) and to a partition-sequential consumer of
//!   the same input (target >= 20x).
//! - P3 latency: messages produced at half of P1's rate; p50/p99 of the time from consume
//!   to every outcome of the message acknowledged, translation excluded (the worker's
//!   `message_overhead_seconds`); target p99 <= 5 ms.
//!
//! Needs a broker: `scripts/bench --bench throughput` starts one. `THROUGHPUT_MESSAGES`
//! overrides P1's message count; `THROUGHPUT_PARTS=p1,p2,p3` picks parts (P3 needs P1).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::FutureExt;
use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use nephoran_kafka_consumer::apply::IntentSink;
use nephoran_kafka_consumer::config::Config;
use nephoran_kafka_consumer::health::Health;
use nephoran_kafka_consumer::kafka::admin;
use nephoran_kafka_consumer::kafka::consumer::to_inbound;
use nephoran_kafka_consumer::lease::Lease;
use nephoran_kafka_consumer::pipeline::Pipeline;
use nephoran_kafka_consumer::policy::Policy;
use nephoran_kafka_consumer::request::Request;
use nephoran_kafka_consumer::translate::{RuleTranslator, Translation, Translator, TranslatorKind};
use nephoran_kafka_consumer::validate::Limits;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::ToBytes;
use rdkafka::producer::future_producer::DeliveryFuture;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

// The allocator of the binary, so the figures are the service's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PARTITIONS: i32 = 8;
/// What the worker writes for each message of P1: three outcome events and the dedup
/// changelog entry.
const RECORDS_PER_MESSAGE: usize = 4;
const P2_MESSAGES: usize = 20_000;
const P2_KEYS: usize = 5_000;
const P2_LATENCY: Duration = Duration::from_millis(200);
const P2_IN_FLIGHT: usize = 256;
/// How long the partition-sequential baseline runs; its rate is steady, so a sample
/// stands for the whole input (which would take minutes).
const P2_SEQUENTIAL_SAMPLE: Duration = Duration::from_secs(10);
const P3_DURATION: Duration = Duration::from_secs(10);

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    config: Config,
}

/// Keeps the samples of the worker's `message_overhead_seconds`; ignores the rest.
#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        if let Ok(mut samples) = self.0.lock() {
            samples.push(value);
        }
    }
}

/// Samples of `message_overhead_seconds`, by its `until` label, and the count of
/// `partition_pauses_total` (a paused partition is refetched: worth knowing in a figure).
#[derive(Default)]
struct Overhead {
    acknowledged: Arc<Samples>,
    enqueued: Arc<Samples>,
    pauses: Arc<std::sync::atomic::AtomicU64>,
}

struct OverheadRecorder(&'static Overhead);

impl Recorder for OverheadRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        if key.name() == "partition_pauses_total" {
            return Counter::from_arc(self.0.pauses.clone());
        }
        Counter::noop()
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        if key.name() != "message_overhead_seconds" {
            return Histogram::noop();
        }
        match key.labels().find(|l| l.key() == "until").map(|l| l.value()) {
            Some("acknowledged") => Histogram::from_arc(self.0.acknowledged.clone()),
            Some("enqueued") => Histogram::from_arc(self.0.enqueued.clone()),
            _ => Histogram::noop(),
        }
    }
}

fn overhead() -> &'static Overhead {
    static OVERHEAD: OnceLock<&'static Overhead> = OnceLock::new();
    OVERHEAD.get_or_init(|| {
        let overhead: &'static Overhead = Box::leak(Box::default());
        metrics::set_global_recorder(OverheadRecorder(overhead))
            .expect("the only metrics recorder");
        overhead
    })
}

impl Samples {
    fn clear(&self) {
        if let Ok(mut samples) = self.0.lock() {
            samples.clear();
        }
    }

    /// The sorted samples, in milliseconds.
    fn sorted_ms(&self) -> Vec<f64> {
        let mut samples: Vec<f64> = self
            .0
            .lock()
            .map(|s| s.iter().map(|v| v * 1000.0).collect())
            .unwrap_or_default();
        samples.sort_by(f64::total_cmp);
        samples
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

/// The rule translator behind a fixed delay, standing in for an LLM call.
struct SleepingTranslator(RuleTranslator, Duration);

impl Translator for SleepingTranslator {
    async fn translate(&self, request: &Request) -> Translation {
        tokio::time::sleep(self.1).await;
        Translation {
            by: TranslatorKind::Llm,
            result: self.0.translate_sync(request),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let brokers = std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let parts = std::env::var("THROUGHPUT_PARTS").unwrap_or_else(|_| "p1,p2,p3".into());
    overhead();
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::consts::ARCH
    );
    let mut p1_rate = None;
    if parts.contains("p1") {
        p1_rate = Some(p1(&brokers).await?);
    }
    if parts.contains("p2") {
        p2(&brokers).await?;
    }
    if parts.contains("p3") {
        let rate =
            p1_rate.ok_or_else(|| anyhow::anyhow!("P3 runs at half of P1's rate: run p1 too"))?;
        p3(&brokers, rate / 2.0).await?;
    }
    Ok(())
}

/// Topics of one part of the run: input, outcomes, dead letters, and a spare output.
struct Topics {
    input: String,
    outcomes: String,
    dlq: String,
    spare: String,
}

async fn topics(brokers: &str, part: &str) -> anyhow::Result<Topics> {
    let run = std::process::id();
    let topics = Topics {
        input: format!("bench-{part}-in-{run}"),
        outcomes: format!("bench-{part}-outcomes-{run}"),
        dlq: format!("bench-{part}-dlq-{run}"),
        spare: format!("bench-{part}-out-{run}"),
    };
    let properties = BTreeMap::from([("bootstrap.servers".to_string(), brokers.to_string())]);
    admin::create_topics(
        &properties,
        &[
            topics.input.clone(),
            topics.outcomes.clone(),
            topics.dlq.clone(),
            topics.spare.clone(),
        ],
        PARTITIONS,
        1,
    )
    .await?;
    Ok(topics)
}

async fn p1(brokers: &str) -> anyhow::Result<f64> {
    let messages: usize = std::env::var("THROUGHPUT_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let t = topics(brokers, "p1").await?;
    let ends = fill(brokers, &t.input, messages, |i| format!("order-{i}")).await?;
    println!(
        "P1: {messages} messages over {PARTITIONS} partitions of {}",
        t.input
    );

    let bare = passthrough(brokers, &t.input, &t.spare, messages, 1).await?;
    bare.print("bare consume-then-produce", messages);
    let bare4 = passthrough(brokers, &t.input, &t.spare, messages, RECORDS_PER_MESSAGE).await?;
    bare4.print(
        &format!("bare, {RECORDS_PER_MESSAGE} records produced per message"),
        messages,
    );
    let inline = pipeline_passthrough(brokers, &t.input, &t.spare, messages).await?;
    inline.print(
        &format!("bare, {RECORDS_PER_MESSAGE} records, pipeline inline"),
        messages,
    );
    let pauses = || overhead().pauses.load(std::sync::atomic::Ordering::Relaxed);
    let paused_before = pauses();
    let worker = worker(brokers, &t, &ends, RuleTranslator::new(100), &[]).await?;
    worker.print("worker (rules, discard)", messages);
    println!(
        "  partitions paused during the worker's run (buffer full): {}",
        pauses() - paused_before
    );
    println!(
        "  {RECORDS_PER_MESSAGE} records per message: received, translated, applied, changelog entry; \
         CPU is this process's (clients, not the broker)"
    );
    let worker_rate = worker.rate(messages);
    println!(
        "  ratio worker / bare: {:.2} (target >= 0.5); worker / bare with {RECORDS_PER_MESSAGE} records: {:.2}; \
         worker / pipeline inline: {:.2}",
        worker_rate / bare.rate(messages),
        worker_rate / bare4.rate(messages),
        worker_rate / inline.rate(messages),
    );
    Ok(worker_rate)
}

async fn p2(brokers: &str) -> anyhow::Result<()> {
    let t = topics(brokers, "p2").await?;
    let ends = fill(brokers, &t.input, P2_MESSAGES, |i| {
        format!("cell-{}", i % P2_KEYS)
    })
    .await?;
    println!(
        "P2: {P2_MESSAGES} messages, {P2_KEYS} record keys, {PARTITIONS} partitions; \
         translator sleeps {} ms; MAX_IN_FLIGHT {P2_IN_FLIGHT}",
        P2_LATENCY.as_millis()
    );
    let translator = SleepingTranslator(RuleTranslator::new(100), P2_LATENCY);
    let in_flight = P2_IN_FLIGHT.to_string();
    let took = worker(
        brokers,
        &t,
        &ends,
        translator,
        &["--max-in-flight", &in_flight],
    )
    .await?
    .elapsed;
    let rate = P2_MESSAGES as f64 / took.as_secs_f64();
    let ideal = P2_IN_FLIGHT as f64 / P2_LATENCY.as_secs_f64();
    println!(
        "  worker:                {rate:>8.0} msg/s ({:.1} s)",
        took.as_secs_f64()
    );
    println!(
        "  ratio to C/L = {ideal:.0} msg/s: {:.2} (target >= 0.9)",
        rate / ideal
    );

    let sequential = partition_sequential(brokers, &t.input, &t.spare).await?;
    println!(
        "  partition-sequential:  {sequential:>8.1} msg/s (sampled for {} s)",
        P2_SEQUENTIAL_SAMPLE.as_secs()
    );
    println!(
        "  ratio worker / partition-sequential: {:.0}x (target >= 20x)",
        rate / sequential
    );
    Ok(())
}

async fn p3(brokers: &str, rate: f64) -> anyhow::Result<()> {
    let t = topics(brokers, "p3").await?;
    let messages = (rate * P3_DURATION.as_secs_f64()) as usize;
    println!(
        "P3: {messages} messages at {rate:.0} msg/s (half of P1's worker rate) over {} s",
        P3_DURATION.as_secs()
    );
    // The worker is running and idle before the first message is produced.
    let running = start_worker(brokers, &t, RuleTranslator::new(100), &[])?;
    running.joined().await;
    overhead().acknowledged.clear();
    overhead().enqueued.clear();
    let (ends, input_acks) = produce_at(brokers, &t.input, messages, rate).await?;
    running.until_committed(brokers, &t.input, &ends).await?;
    running.stop().await?;

    for (what, samples) in [
        ("terminal outcome enqueued", &overhead().enqueued),
        ("every send acknowledged", &overhead().acknowledged),
    ] {
        let sorted = samples.sorted_ms();
        println!(
            "  consume -> {what:<26} p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms  ({} messages)",
            quantile(&sorted, 0.5),
            quantile(&sorted, 0.99),
            quantile(&sorted, 1.0),
            sorted.len(),
        );
    }
    println!(
        "  for reference, the input producer: send -> acknowledged  p50 {:>6.2} ms  p99 {:>6.2} ms",
        quantile(&input_acks, 0.5),
        quantile(&input_acks, 0.99),
    );
    println!("  (translation excluded; target p99 <= 5 ms)");
    Ok(())
}

/// Produces `messages` small service requests, each with its own idempotency key and the
/// record key `key(i)`; returns each partition's end offset.
async fn fill(
    brokers: &str,
    topic: &str,
    messages: usize,
    key: impl Fn(usize) -> String,
) -> anyhow::Result<Vec<i64>> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let mut deliveries = Vec::with_capacity(messages);
    for i in 0..messages {
        let key = key(i);
        let payload = request(i);
        let record = FutureRecord::to(topic).key(&key).payload(&payload);
        match producer.send_result(record) {
            Ok(d) => deliveries.push(d),
            Err((e, _)) => anyhow::bail!("fill: {e}"),
        }
    }
    ends_of(deliveries).await
}

fn request(i: usize) -> String {
    format!(
        r#"{{"idempotency_key":"req-{i}","intent":"Deploy AMF with {} replicas in namespace core5g"}}"#,
        i % 5 + 1
    )
}

/// Each partition's end offset, from the delivery reports (the development broker's
/// high watermark undercounts batched writes).
async fn ends_of(deliveries: Vec<rdkafka::producer::DeliveryFuture>) -> anyhow::Result<Vec<i64>> {
    let mut ends = vec![0i64; PARTITIONS as usize];
    for d in deliveries {
        let delivery = d.await?.map_err(|(e, _)| e)?;
        let p = delivery.partition as usize;
        ends[p] = ends[p].max(delivery.offset + 1);
    }
    Ok(ends)
}

/// Produces `messages` requests at `rate` a second, spread over the partitions, with
/// librdkafka's default producer settings (as the worker's). Returns each partition's end
/// offset and each record's time from send to acknowledgement, in milliseconds: the
/// broker's share of an outcome's latency at this rate.
async fn produce_at(
    brokers: &str,
    topic: &str,
    messages: usize,
    rate: f64,
) -> anyhow::Result<(Vec<i64>, Vec<f64>)> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .create()?;
    let start = tokio::time::Instant::now();
    let mut acknowledged = Vec::with_capacity(messages);
    for i in 0..messages {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
        let key = format!("p3-{i}");
        let payload = request(i);
        let record = FutureRecord::to(topic).key(&key).payload(&payload);
        let sent = Instant::now();
        match producer.send_result(record) {
            Ok(d) => acknowledged.push(tokio::spawn(async move {
                let delivery = d.await;
                (delivery, sent.elapsed())
            })),
            Err((e, _)) => anyhow::bail!("produce: {e}"),
        }
    }
    let mut ends = vec![0i64; PARTITIONS as usize];
    let mut latencies = Vec::with_capacity(messages);
    for a in acknowledged {
        let (delivery, took) = a.await?;
        let delivery = delivery?.map_err(|(e, _)| e)?;
        let p = delivery.partition as usize;
        ends[p] = ends[p].max(delivery.offset + 1);
        latencies.push(took.as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    Ok((ends, latencies))
}

/// A group consumer subscribed to `input`, reading from the start, and an idempotent
/// producer: what a bare Kafka service has.
fn consumer_and_producer(
    brokers: &str,
    input: &str,
    group: &str,
) -> anyhow::Result<(StreamConsumer, FutureProducer)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .create()?;
    consumer.subscribe(&[input])?;
    Ok((consumer, producer))
}

/// Reads every message with a group consumer and produces it to `out`, `copies` times;
/// the time until the last one is acknowledged.
async fn passthrough(
    brokers: &str,
    input: &str,
    out: &str,
    messages: usize,
    copies: usize,
) -> anyhow::Result<Ran> {
    let (consumer, producer) =
        consumer_and_producer(brokers, input, &format!("{input}-bare-{copies}"))?;
    // Timed from the first message, so the group join is not counted (as for the worker).
    let first = consumer.recv().await?.detach();
    let run = Run::start();
    let mut deliveries = Vec::with_capacity(messages);
    let mut next = Some(first);
    for _ in 0..messages {
        let m = match next.take() {
            Some(m) => m,
            None => consumer.recv().await?.detach(),
        };
        for _ in 0..copies {
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(out);
            if let Some(k) = m.key() {
                record = record.key(k);
            }
            if let Some(p) = m.payload() {
                record = record.payload(p);
            }
            deliveries.push(enqueue(&producer, record));
        }
    }
    all_acknowledged(deliveries).await?;
    Ok(run.stop())
}

/// The bare passthrough doing, inline, the work the worker does for each message and
/// nothing more: decode, rules, validation, the three outcome events serialised, and a
/// changelog-sized fourth record; no scheduling, dedup state, offset tracking or waiting
/// per message. What a worker doing this work could reach on this machine and broker.
async fn pipeline_passthrough(
    brokers: &str,
    input: &str,
    out: &str,
    messages: usize,
) -> anyhow::Result<Ran> {
    let (consumer, producer) = consumer_and_producer(brokers, input, &format!("{input}-pipeline"))?;
    let pipeline = Pipeline::new(
        RuleTranslator::new(100),
        IntentSink::discard(),
        Limits::default(),
        Policy::default(),
    );
    let lease = Lease::new(1);
    let mut deliveries = Vec::with_capacity(messages * RECORDS_PER_MESSAGE);
    let mut run = None;
    for _ in 0..messages {
        let message = to_inbound(&consumer.recv().await?);
        run.get_or_insert_with(Run::start);
        let (received, event) = pipeline.receive(&message);
        let key = received.key.value.clone();
        let completion = pipeline
            .complete(&received, &lease)
            .now_or_never()
            .ok_or_else(|| anyhow::anyhow!("the rules finish at once"))??;
        let mut records = vec![serde_json::to_vec(&event)?];
        for event in &completion.outcomes {
            records.push(serde_json::to_vec(event)?);
        }
        records.push(br#"{"state":"done","offset":1,"since":1,"last_seen":1}"#.to_vec());
        for payload in &records {
            let record: FutureRecord<'_, str, [u8]> = FutureRecord::to(out)
                .key(key.as_str())
                .payload(payload.as_slice());
            deliveries.push(enqueue(&producer, record));
        }
    }
    all_acknowledged(deliveries).await?;
    run.map(Run::stop)
        .ok_or_else(|| anyhow::anyhow!("no messages"))
}

/// Enqueues `record`, polling the producer while its queue is full.
fn enqueue<K, P>(producer: &FutureProducer, mut record: FutureRecord<'_, K, P>) -> DeliveryFuture
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return delivery,
            Err((_, back)) => {
                record = back;
                producer.poll(Duration::from_millis(1));
            }
        }
    }
}

/// Waits until every send is acknowledged; fails on the first that was not.
async fn all_acknowledged(deliveries: Vec<DeliveryFuture>) -> anyhow::Result<()> {
    for delivery in deliveries {
        delivery.await?.map_err(|(e, _)| e)?;
    }
    Ok(())
}

/// One timed phase: its wall-clock time and the CPU time this process spent in it.
struct Run {
    started: Instant,
    cpu: f64,
}

/// The outcome of a [`Run`].
struct Ran {
    elapsed: Duration,
    cpu: Duration,
}

impl Run {
    fn start() -> Self {
        Self {
            started: Instant::now(),
            cpu: cpu_seconds(),
        }
    }

    fn stop(self) -> Ran {
        Ran {
            elapsed: self.started.elapsed(),
            cpu: Duration::from_secs_f64((cpu_seconds() - self.cpu).max(0.0)),
        }
    }
}

impl Ran {
    fn rate(&self, messages: usize) -> f64 {
        messages as f64 / self.elapsed.as_secs_f64()
    }

    fn print(&self, what: &str, messages: usize) {
        println!(
            "  {what:<44} {:>7.0} msg/s ({:.1} s; {:>4.1} us CPU per message)",
            self.rate(messages),
            self.elapsed.as_secs_f64(),
            self.cpu.as_secs_f64() * 1e6 / messages as f64,
        );
    }
}

/// CPU seconds (user and system, all threads) this process has used, from
/// `/proc/self/stat`; 0 where there is no such file.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces:
    // utime and stime are the 12th and 13th, in clock ticks (100 a second on Linux).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum::<f64>()
        / 100.0
}

/// A worker running in this process.
struct RunningWorker {
    health: Arc<Health>,
    group: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn start_worker<T: Translator + 'static>(
    brokers: &str,
    t: &Topics,
    translator: T,
    extra: &[&str],
) -> anyhow::Result<RunningWorker> {
    let group = format!("{}-worker", t.input);
    let mut args = vec![
        "bench",
        "--brokers",
        brokers,
        "--topics",
        &t.input,
        "--outcomes-topic",
        &t.outcomes,
        "--dlq-topic",
        &t.dlq,
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
    args.extend_from_slice(extra);
    let config = Wrapper::try_parse_from(args)?.config;
    let pipeline = Pipeline::new(
        translator,
        IntentSink::discard(),
        Limits::default(),
        Policy::default(),
    );
    let health = Arc::new(Health::default());
    let worker_health = health.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        nephoran_kafka_consumer::worker::run(&config, pipeline, worker_health, shutdown).await
    });
    Ok(RunningWorker {
        health,
        group,
        stop,
        task,
    })
}

impl RunningWorker {
    /// Waits until the worker has its partitions.
    async fn joined(&self) {
        while self.health.assigned() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until the group has committed every offset below `ends`.
    async fn until_committed(
        &self,
        brokers: &str,
        input: &str,
        ends: &[i64],
    ) -> anyhow::Result<()> {
        let watcher: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", &self.group)
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition(input, p);
        }
        loop {
            let committed = watcher.committed_offsets(tpl.clone(), Duration::from_secs(5))?;
            let done = (0..PARTITIONS).zip(ends).all(|(p, end)| {
                matches!(committed.find_partition(input, p).map(|e| e.offset()),
                    Some(Offset::Offset(o)) if o >= *end)
            });
            if done {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await?
    }
}

/// Runs a worker until its group has committed every input offset; the time from the
/// moment it had its partitions (dedup restores included) to the end.
async fn worker<T: Translator + 'static>(
    brokers: &str,
    t: &Topics,
    ends: &[i64],
    translator: T,
    extra: &[&str],
) -> anyhow::Result<Ran> {
    let running = start_worker(brokers, t, translator, extra)?;
    running.joined().await;
    let run = Run::start();
    running.until_committed(brokers, &t.input, ends).await?;
    let ran = run.stop();
    running.stop().await?;
    Ok(ran)
}

/// The baseline of P2: each partition processed one message at a time (translate, then
/// publish the outcome and wait for it), partitions side by side. Runs for
/// [`P2_SEQUENTIAL_SAMPLE`] and returns messages per second.
async fn partition_sequential(brokers: &str, input: &str, out: &str) -> anyhow::Result<f64> {
    let (consumer, producer) =
        consumer_and_producer(brokers, input, &format!("{input}-sequential"))?;
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut lanes = Vec::new();
    let mut workers = Vec::new();
    for _ in 0..PARTITIONS {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<rdkafka::message::OwnedMessage>();
        lanes.push(tx);
        let (producer, done, out) = (producer.clone(), done.clone(), out.to_string());
        workers.push(tokio::spawn(async move {
            let translator = SleepingTranslator(RuleTranslator::new(100), P2_LATENCY);
            while let Some(m) = rx.recv().await {
                let request = match m.payload().map(serde_json::from_slice) {
                    Some(Ok(r)) => Request::Service(r),
                    _ => continue,
                };
                let translation = translator.translate(&request).await;
                let outcome = format!("{{\"applied\":{}}}", translation.result.is_ok());
                let record: FutureRecord<'_, [u8], str> = FutureRecord::to(&out).payload(&outcome);
                if producer.send(record, Duration::from_secs(10)).await.is_ok() {
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }
    let first = consumer.recv().await?.detach();
    let started = Instant::now();
    let _ = lanes[first.partition() as usize].send(first);
    let deadline = tokio::time::Instant::now() + P2_SEQUENTIAL_SAMPLE;
    while let Ok(Ok(m)) = tokio::time::timeout_at(deadline, consumer.recv()).await {
        let _ = lanes[m.partition() as usize].send(m.detach());
    }
    tokio::time::sleep_until(deadline).await;
    let rate =
        done.load(std::sync::atomic::Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    for w in workers {
        w.abort();
    }
    Ok(rate)
}
