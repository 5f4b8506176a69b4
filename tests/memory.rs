//! Fault case 9: a flood of 1 MB messages while the translator is blocked. The worker
//! binary's resident memory (`VmRSS`) is sampled while it takes in the flood; its growth
//! over the idle worker stays under the byte budget for buffered messages plus the
//! overhead docs/memory.md documents (the assertion is on memory, never on time). Then
//! the translator is released and every message gets its outcome, none applied twice,
//! the offsets committed to the end, the worker live and ready. `WORKER_BIN` runs another
//! build of the worker (the release binary, for the figures of docs/memory.md).

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::openai::{answer, FakeLlm, Reply};
use common::*;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::json;
use tokio::sync::watch;

const PARTITIONS: i32 = 8;
/// 320 MB: five times `BUFFER_BYTES`, forty per partition (2.5 times
/// `PARTITION_BUFFER_BYTES`).
const MESSAGES: usize = 320;
/// Each record's size on the wire (its JSON value).
const RECORD_BYTES: usize = 1_000_000;
const MIB: u64 = 1024 * 1024;
/// The default `BUFFER_BYTES`: the most the worker holds in consumed, not-done messages.
const BUFFER_BYTES: u64 = 64 * MIB;
/// What docs/memory.md allows over the buffered messages for this flood: librdkafka's
/// prefetch (16 MiB queue + a 4 MiB fetch response in flight), the LLM requests and
/// their prompts, and the allocator's slack for 1 MB buffers freed and reused.
const OVERHEAD: u64 = 48 * MIB;
/// LLM requests open at once (`LLM_MAX_CONCURRENCY`); the rest wait their turn.
const LLM_CONCURRENCY: usize = 4;

/// A text the rules do not translate, so the model is asked; numbered, so that no two
/// are the same ask (the LLM cache would answer a repeat without asking).
fn prose(n: &str) -> String {
    format!(
        "The stadium crowd needs far more session management capacity in core5g, make it 7 \
         SMFs (ticket {n})"
    )
}

/// A request of `RECORD_BYTES` bytes: a short text and padding the decoder ignores.
fn flood_record(key: &str) -> Vec<u8> {
    let mut value = json!({"idempotency_key": key, "intent": prose(key), "padding": ""});
    let room = RECORD_BYTES - value.to_string().len();
    value["padding"] = json!("x".repeat(room));
    let bytes = value.to_string().into_bytes();
    assert_eq!(bytes.len(), RECORD_BYTES);
    bytes
}

/// The worker's resident set, in bytes, from /proc/PID/status.
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A free local port for the worker's /metrics, /healthz and /readyz.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// A gauge's value on the worker's /metrics page (0 when absent).
async fn gauge(client: &reqwest::Client, port: u16, name: &str) -> f64 {
    let Ok(response) = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
    else {
        return 0.0;
    };
    let page = response.text().await.unwrap_or_default();
    page.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn status(client: &reqwest::Client, port: u16, path: &str) -> u16 {
    client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// The tests measure their own process's memory or a worker's: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The producer's queue with the project's bounds (`queue.buffering.max.kbytes` 16 MiB of
/// values, `queue.buffering.max.messages` 20 000), against a broker that never answers:
/// sends are refused at the bound, and what the queue holds is measured (this process's
/// `VmRSS`), for librdkafka's bookkeeping per message in docs/memory.md.
#[tokio::test(flavor = "multi_thread")]
async fn the_producer_queue_stops_at_its_bounds() {
    use nephoran_kafka_consumer::kafka::budgets::{
        apply, producer_defaults, PRODUCER_QUEUE_KBYTES, PRODUCER_QUEUE_MESSAGES,
    };
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{BaseProducer, BaseRecord};

    let _serial = SERIAL.lock().await;
    // (value bytes, what stops the queue first)
    for (value_bytes, bound) in [(200, "messages"), (4000, "bytes")] {
        let properties = [("bootstrap.servers".to_string(), "127.0.0.1:1".to_string())].into();
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("message.timeout.ms", "600000")
            .set("log_level", "0");
        apply(&mut config, &producer_defaults(&properties));
        let producer: BaseProducer = config.create().expect("producer");
        let value = vec![b'v'; value_bytes];
        let key = "k".repeat(64);
        let before = rss(std::process::id()).expect("VmRSS");
        let mut queued: u64 = 0;
        loop {
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "nephoran.event.id",
                    value: Some(&"e".repeat(64)),
                })
                .insert(Header {
                    key: "nephoran.stage",
                    value: Some("received"),
                });
            let record = BaseRecord::to("outcomes")
                .key(&key)
                .payload(&value)
                .headers(headers);
            match producer.send(record) {
                Ok(()) => queued += 1,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => break,
                Err((e, _)) => panic!("unexpected send error: {e}"),
            }
            assert!(
                queued <= PRODUCER_QUEUE_MESSAGES,
                "the queue took more than its bound"
            );
        }
        match bound {
            "messages" => {
                // Measured on the first producer only: the second reuses what the first
                // freed, and its growth would say nothing.
                let growth = rss(std::process::id())
                    .expect("VmRSS")
                    .saturating_sub(before);
                let values = queued * value_bytes as u64;
                let per_message = growth.saturating_sub(values) as f64 / queued as f64;
                eprintln!(
                    "producer queue, {value_bytes}-byte values, 64-byte keys, two headers: \
                     {queued} queued before QueueFull, VmRSS +{:.1} MiB, of which values {:.1} \
                     MiB: {per_message:.0} bytes per message besides its value",
                    growth as f64 / MIB as f64,
                    values as f64 / MIB as f64,
                );
                assert_eq!(queued, PRODUCER_QUEUE_MESSAGES);
                assert!(
                    growth <= PRODUCER_QUEUE_MESSAGES * 1024,
                    "20 000 small messages grew the process by {growth} bytes"
                );
            }
            _ => {
                let values = queued * value_bytes as u64;
                eprintln!(
                    "producer queue, {value_bytes}-byte values: {queued} queued before QueueFull"
                );
                assert!(
                    values <= PRODUCER_QUEUE_KBYTES * 1024,
                    "{values} bytes of values queued"
                );
                assert!(
                    values + value_bytes as u64 > PRODUCER_QUEUE_KBYTES * 1024,
                    "stopped before the bound: {values} bytes of values queued"
                );
            }
        }
        drop(producer);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_1_mb_messages_with_a_blocked_translator_stays_within_the_byte_budget() {
    let _serial = SERIAL.lock().await;
    let topics = TestTopics::create("flood", PARTITIONS).await;
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeLlm::start(|_| Reply::answer(answer(&["smf"], "core5g", Some(7)))).await;
    let port = free_port();
    let mut args = topics.args(dir.path());
    let at = args.iter().position(|a| a == "--metrics-addr").unwrap() + 1;
    args[at] = format!("127.0.0.1:{port}");
    let concurrency = LLM_CONCURRENCY.to_string();
    args.extend(
        [
            "--llm-endpoint",
            &fake.endpoint,
            "--llm-model",
            "flood",
            // Longer than the flood is held: the held asks must not time out to the rules.
            "--llm-timeout",
            "30m",
            "--llm-max-concurrency",
            &concurrency,
        ]
        .map(String::from),
    );
    let log = tempfile::NamedTempFile::new().unwrap();
    let binary = std::env::var("WORKER_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_nephoran-kafka-consumer").to_string());
    let mut worker = tokio::process::Command::new(binary)
        .arg("run")
        .args(&args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("start the worker binary");
    let pid = worker.id().expect("the worker's pid");
    let client = reqwest::Client::new();
    let mut producer_config = ClientConfig::new();
    producer_config
        .set("bootstrap.servers", brokers())
        .set("message.max.bytes", "2000000")
        .set("linger.ms", "5");
    let producer: FutureProducer = producer_config.create().expect("producer");

    // Warm up: one small request per partition, translated, so that every partition is
    // assigned and restored and every path has run once before the idle figure is taken.
    let mut outcomes = Outcomes::new(&topics);
    for partition in 0..PARTITIONS {
        let key = format!("warm-{partition}");
        let value = json!({"idempotency_key": key, "intent": prose(&key)}).to_string();
        let record = FutureRecord::to(&topics.service_requests)
            .partition(partition)
            .key(&key)
            .payload(&value);
        producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| e)
            .expect("produce a warm-up request");
    }
    outcomes.until_terminal_messages(PARTITIONS as usize).await;
    let idle = rss(pid).expect("the worker's VmRSS");

    // The flood, with every translation held.
    fake.hold();
    let (stop, stopped) = watch::channel(false);
    let sampler = tokio::spawn(sample(pid, stopped));
    let keys: Vec<String> = (0..MESSAGES).map(|i| format!("flood-{i}")).collect();
    let mut deliveries = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let value = flood_record(key);
        let partition = i as i32 % PARTITIONS;
        let record = FutureRecord::to(&topics.service_requests)
            .partition(partition)
            .key(key)
            .payload(&value);
        let delivery = producer
            .send(record, Duration::from_secs(60))
            .await
            .map_err(|(e, _)| e)
            .expect("produce a 1 MB request");
        deliveries.push(delivery);
    }
    let mut ends = vec![0i64; PARTITIONS as usize];
    for delivery in deliveries {
        let end = &mut ends[delivery.partition as usize];
        *end = (*end).max(delivery.offset + 1);
    }

    // Taken in: every partition paused on its budget (or, without byte budgets, every
    // message consumed), and the translator holding as many asks as it takes.
    let last = std::sync::Mutex::new((0.0, 0.0, 0));
    let taken_in = tokio::time::timeout(PATIENCE, async {
        loop {
            let paused = gauge(&client, port, "partitions_paused").await;
            let consumed = gauge(&client, port, "messages_waiting").await
                + gauge(&client, port, "messages_in_flight").await;
            *last.lock().unwrap() = (paused, consumed, fake.open());
            if (paused >= f64::from(PARTITIONS) || consumed >= MESSAGES as f64)
                && fake.open() >= LLM_CONCURRENCY
            {
                return (paused, consumed);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let Ok((paused, consumed)) = taken_in else {
        let (paused, consumed, open) = *last.lock().unwrap();
        panic!(
            "the worker did not take in the flood: {paused} partitions paused, {consumed} \
             messages consumed and not done, {open} LLM asks held; the worker's log ends:\n{}",
            tail(log.path())
        );
    };
    // The state after the pause, sampled a while: what was prefetched arrives too.
    let after = sampled_for(pid, 50).await;
    stop.send_replace(true);
    let (peak, samples) = sampler.await.expect("sampler");
    let peak = peak.max(after);
    let growth = peak.saturating_sub(idle);
    eprintln!(
        "flood of {MESSAGES} x {RECORD_BYTES} B over {PARTITIONS} partitions, translator held: \
         idle VmRSS {:.1} MiB, peak {:.1} MiB ({samples} samples), growth {:.1} MiB; budget \
         {} MiB + overhead {} MiB = {} MiB; when measured: {} partitions paused, \
         {consumed} messages consumed and not done",
        idle as f64 / MIB as f64,
        peak as f64 / MIB as f64,
        growth as f64 / MIB as f64,
        BUFFER_BYTES / MIB,
        OVERHEAD / MIB,
        (BUFFER_BYTES + OVERHEAD) / MIB,
        paused as i64,
    );
    assert!(
        growth <= BUFFER_BYTES + OVERHEAD,
        "the worker grew by {:.1} MiB, over the budget {} MiB plus the overhead {} MiB \
         ; the worker's log ends:\n{}",
        growth as f64 / MIB as f64,
        BUFFER_BYTES / MIB,
        OVERHEAD / MIB,
        tail(log.path())
    );

    // Released: every message gets its outcome, once.
    fake.release();
    outcomes
        .until_terminal_messages(PARTITIONS as usize + MESSAGES)
        .await;
    outcomes.drain(Duration::from_millis(500)).await;
    for key in &keys {
        let terminal: Vec<_> = outcomes
            .terminal(key)
            .into_iter()
            .map(|e| e.stage.as_str())
            .collect();
        assert_eq!(terminal, ["applied"], "{key}");
    }
    assert_eq!(intent_files(dir.path()), PARTITIONS as usize + MESSAGES);
    let committed = tokio::time::timeout(PATIENCE, async {
        loop {
            let offsets = committed_and_end(&topics.group, &topics.service_requests, PARTITIONS);
            if offsets
                .iter()
                .zip(&ends)
                .all(|((committed, _), end)| committed >= end)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(committed.is_ok(), "offsets committed to the end: {ends:?}");
    assert_eq!(status(&client, port, "/healthz").await, 200, "live");
    assert_eq!(status(&client, port, "/readyz").await, 200, "ready");
    worker.kill().await.expect("stop the worker");
}

/// The highest VmRSS of `pid` until `stop`, and how many samples were taken.
async fn sample(pid: u32, mut stop: watch::Receiver<bool>) -> (u64, usize) {
    let mut peak = 0;
    let mut samples = 0;
    let mut every = tokio::time::interval(Duration::from_millis(20));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return (peak, samples),
        }
        if let Some(now) = rss(pid) {
            peak = peak.max(now);
            samples += 1;
        }
    }
}

/// The highest of `n` further samples of VmRSS of `pid`.
async fn sampled_for(pid: u32, n: usize) -> u64 {
    let mut peak = 0;
    let mut every = tokio::time::interval(Duration::from_millis(20));
    for _ in 0..n {
        every.tick().await;
        peak = peak.max(rss(pid).unwrap_or(0));
    }
    peak
}

/// The last lines of the worker's log, for a failure message.
fn tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
