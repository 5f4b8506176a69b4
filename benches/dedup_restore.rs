//! Restoring dedup state from the changelog: time and memory for 1 000 000 entries.
//!
//! Needs a broker: `scripts/bench` starts one and runs every benchmark. Writes 1 M entries
//! (keys like `order-000000123456`) to one changelog partition, then restores them the
//! way a worker does when the partition is assigned, and prints the restore time and the
//! bytes held per entry (counted by a global allocator around the store), next to the
//! targets: under 3 s and under 200 bytes per entry. First, without a broker, the
//! footprint of a full partition state (`DEDUP_MAX_ENTRIES`, 200 000, entries) with the
//! shortest and the longest keys (18 and 256 bytes), counted by the allocator and as
//! resident memory: the figures of the memory model (docs/memory.md).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nephoran_kafka_consumer::dedup::{changelog_topic, now_secs, Entry, Limits, Outcome, State};
use nephoran_kafka_consumer::kafka::{admin, changelog};
use nephoran_kafka_consumer::outcome::Stage;
use nephoran_kafka_consumer::translate::TranslatorKind;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;

/// Counts the bytes the Rust side holds, so the store's footprint can be measured.
struct Counting;
static HELD: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const ENTRIES: i64 = 1_000_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    for key_bytes in [18, 256] {
        footprint(key_bytes);
    }
    let brokers = std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let properties = BTreeMap::from([("bootstrap.servers".to_string(), brokers.clone())]);
    let run = std::process::id();
    let input = format!("bench-requests-{run}");
    let group = format!("bench-{run}");
    admin::create_topics(&properties, std::slice::from_ref(&input), 1, 1).await?;
    changelog::ensure_changelogs(&properties, &group, std::slice::from_ref(&input), 1, true)
        .await?;
    let topic = changelog_topic(&group, &input);

    let started = Instant::now();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let now = now_secs();
    for i in 0..ENTRIES {
        let entry = Entry {
            state: State::Done(Outcome {
                stage: Stage::Applied,
                message_type: None,
                translator: Some(TranslatorKind::Rules),
                error: None,
            }),
            offset: i,
            since: now,
            last_seen: now,
            namespace: 0,
            fingerprint: Some(i.to_be_bytes()),
        };
        let key = format!("order-{i:012}");
        let value = entry.encode(Some("core5g"));
        let mut record = FutureRecord::to(&topic)
            .partition(0)
            .key(&key)
            .payload(&value);
        loop {
            match producer.send_result(record) {
                Ok(_) => break,
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(5));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    println!(
        "wrote {ENTRIES} changelog entries in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The floor: reading the same partition with a bare consumer, doing nothing.
    let bare = bare_read(&properties, &topic)?;
    println!(
        "bare read of the partition: {:.2} s ({:.0} records/s)",
        bare.as_secs_f64(),
        ENTRIES as f64 / bare.as_secs_f64()
    );

    let limits = Limits {
        window_secs: 7 * 24 * 3600,
        max_entries: 2_000_000,
    };
    let held_before = HELD.load(Ordering::Relaxed);
    let (store, restored) =
        tokio::task::spawn_blocking(move || changelog::restore(&properties, &topic, 0, limits))
            .await??;
    let held = HELD.load(Ordering::Relaxed).saturating_sub(held_before);
    let seconds = restored.elapsed.as_secs_f64();
    let per_entry = held as f64 / store.len() as f64;
    println!(
        "restore time / bare read time: {:.2}",
        seconds / bare.as_secs_f64()
    );
    println!(
        "restore: {} entries from {} records in {seconds:.2} s ({:.0} entries/s); target < 3 s: {}",
        store.len(),
        restored.records,
        store.len() as f64 / seconds,
        if seconds < 3.0 { "met" } else { "MISSED" }
    );
    println!(
        "memory: {per_entry:.0} bytes per entry held ({:.1} MiB); target < 200: {}",
        held as f64 / (1024.0 * 1024.0),
        if per_entry < 200.0 { "met" } else { "MISSED" }
    );
    Ok(())
}

/// Fills a store to the default bound with keys of `key_bytes` and prints what it holds
/// per entry: bytes the Rust side asked for, and the process's resident memory growth
/// (allocator overhead included).
fn footprint(key_bytes: usize) {
    const BOUND: usize = 200_000;
    let limits = Limits {
        window_secs: 7 * 24 * 3600,
        max_entries: BOUND,
    };
    let now = now_secs();
    let held_before = HELD.load(Ordering::Relaxed);
    let rss_before = rss();
    let mut store = nephoran_kafka_consumer::dedup::PartitionStore::new(limits);
    for i in 0..BOUND {
        let entry = Entry {
            state: State::Done(Outcome {
                stage: Stage::Applied,
                message_type: None,
                translator: Some(TranslatorKind::Rules),
                error: None,
            }),
            offset: i as i64,
            since: now,
            last_seen: now,
            namespace: 0,
            fingerprint: Some((i as u64).to_be_bytes()),
        };
        let mut key = format!("order-{i:012}");
        key.extend(std::iter::repeat_n(
            'k',
            key_bytes.saturating_sub(key.len()),
        ));
        store.insert(&key, entry, Some("core5g"));
    }
    let held = HELD.load(Ordering::Relaxed).saturating_sub(held_before);
    let resident = rss().saturating_sub(rss_before);
    println!(
        "dedup state of {} entries with {key_bytes}-byte keys: {:.0} bytes per entry held, \
         {:.0} resident ({:.1} MiB)",
        store.len(),
        held as f64 / store.len() as f64,
        resident as f64 / store.len() as f64,
        resident as f64 / (1024.0 * 1024.0)
    );
}

/// This process's resident memory, in bytes (0 where /proc is not there).
fn rss() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<usize>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

fn bare_read(properties: &BTreeMap<String, String>, topic: &str) -> anyhow::Result<Duration> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    let started = Instant::now();
    let mut config = ClientConfig::new();
    for (k, v) in properties {
        config.set(k, v);
    }
    // The restore's own buffer settings.
    for (name, value) in nephoran_kafka_consumer::kafka::budgets::restore_settings(properties) {
        config.set(name, value);
    }
    let consumer: BaseConsumer = config
        .set("group.id", "bench-bare")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let mut read = 0;
    while read < ENTRIES {
        if let Some(record) = consumer.poll(Duration::from_secs(10)) {
            record?;
            read += 1;
        } else {
            anyhow::bail!("bare read stalled at {read}");
        }
    }
    Ok(started.elapsed())
}
