//! The dedup changelog topics: creating them, and reading a partition to its end.
//!
//! One compacted changelog per input topic ([`changelog_topic`]), with as many partitions
//! as the input topic: the state of input partition N is written to changelog partition
//! N, so a worker that is assigned an input partition knows exactly what to read.
//! Writing goes through the [`Publisher`](super::publisher::Publisher) like every other
//! send, so it is acknowledged before the input offset is stored.
//!
//! At start an existing changelog must be compacted (a deleting one loses completed keys
//! after its retention), and a missing changelog of a group that has already committed
//! offsets is refused unless the operator accepts an empty state: recreating it empty
//! would forget every completed key.
//!
//! Restores after a rebalance run at most `DEDUP_RESTORE_CONCURRENCY` at once, each
//! reader's buffers bounded in bytes ([`budgets::restore_settings`]): one client per
//! partition at once, each with librdkafka's 64 MiB, did not fit a pod. Metrics:
//! `dedup_restores_in_progress` (gauge, readers running) and `dedup_restores_waiting`
//! (gauge, partitions waiting for their turn).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use tracing::{info, warn};

use super::budgets;
use crate::dedup::{changelog_topic, Limits, PartitionStore};

const METADATA_TIMEOUT: Duration = Duration::from_secs(30);
/// A restore that receives nothing for this long while records remain has stalled.
const RESTORE_STALL: Duration = Duration::from_secs(60);
/// How long to wait for records past the reported end of a changelog partition.
const TAIL_GRACE: Duration = Duration::from_millis(100);

/// Creates the changelog of each input topic if it is missing (compacted, one partition
/// per input partition), and checks that existing ones are compacted and have enough
/// partitions. A missing changelog of a group with committed offsets on the input topic
/// is an error unless `rebuild` (`DEDUP_REBUILD`) accepts starting from an empty state.
pub async fn ensure_changelogs(
    properties: &BTreeMap<String, String>,
    group: &str,
    inputs: &[String],
    replication: i32,
    rebuild: bool,
) -> anyhow::Result<()> {
    let admin = super::admin_client(properties)?;
    for input in inputs {
        let changelog = changelog_topic(group, input);
        let wanted = partition_count(&admin, input)?
            .with_context(|| format!("input topic {input:?} does not exist"))?;
        match partition_count(&admin, &changelog)? {
            Some(have) if have >= wanted => {
                check_compacted(&admin, &changelog).await?;
                continue;
            }
            Some(have) => bail!(
                "the dedup changelog {changelog:?} has {have} partitions but {input:?} has {wanted}: \
                 add partitions to the changelog (input partition N is kept in changelog partition N)"
            ),
            None => {}
        }
        let committed = committed_partitions(properties, group, input, wanted).await?;
        if committed > 0 {
            if !rebuild {
                bail!(
                    "the dedup changelog {changelog:?} is missing but group {group:?} has committed \
                     offsets on {input:?} ({committed} partitions): an empty changelog would forget \
                     every completed key and re-apply them on redelivery; restore the changelog, or \
                     set DEDUP_REBUILD=true to start with an empty dedup state"
                );
            }
            warn!(
                topic = %changelog, group, input = %input, committed_partitions = committed,
                "dedup changelog missing for a group with committed offsets; DEDUP_REBUILD=true: \
                 creating it empty, completed keys are forgotten"
            );
        }
        let topic = NewTopic::new(&changelog, wanted, TopicReplication::Fixed(replication))
            .set("cleanup.policy", "compact");
        let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
        let results = admin
            .create_topics([&topic], &options)
            .await
            .context("could not reach the brokers to create the dedup changelog")?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    info!(topic = %changelog, partitions = wanted, "dedup changelog created")
                }
                Err((t, code)) => bail!("could not create the dedup changelog {t}: {code}"),
            }
        }
    }
    Ok(())
}

/// Refuses a changelog whose `cleanup.policy` does not include `compact`. A broker that
/// does not report the policy is let through with a warning: never a false refusal.
async fn check_compacted(
    admin: &AdminClient<DefaultClientContext>,
    changelog: &str,
) -> anyhow::Result<()> {
    let options = AdminOptions::new().request_timeout(Some(METADATA_TIMEOUT));
    let results = admin
        .describe_configs([&ResourceSpecifier::Topic(changelog)], &options)
        .await
        .with_context(|| format!("could not reach the brokers to describe {changelog:?}"))?;
    let policy = results.into_iter().find_map(|result| match result {
        Ok(resource) => resource.get("cleanup.policy").and_then(|e| e.value.clone()),
        Err(code) => {
            warn!(topic = %changelog, error = %code, "could not describe the dedup changelog's config; its cleanup.policy is not checked");
            None
        }
    });
    let Some(policy) = policy else {
        warn!(topic = %changelog, "the broker reports no cleanup.policy for the dedup changelog; not checked");
        return Ok(());
    };
    if !is_compacted(&policy) {
        bail!(
            "the dedup changelog {changelog:?} has cleanup.policy={policy:?}, not compacted: its \
             entries would be deleted after the retention and completed keys forgotten; fix it with \
             `kafka-configs --alter --entity-type topics --entity-name {changelog} \
             --add-config cleanup.policy=compact`"
        );
    }
    Ok(())
}

/// Whether a `cleanup.policy` value (a comma-separated list) includes `compact`.
fn is_compacted(policy: &str) -> bool {
    policy
        .split(',')
        .any(|p| p.trim().eq_ignore_ascii_case("compact"))
}

/// How many of `input`'s `partitions` have an offset committed by `group`, read without
/// joining the group.
async fn committed_partitions(
    properties: &BTreeMap<String, String>,
    group: &str,
    input: &str,
    partitions: i32,
) -> anyhow::Result<usize> {
    let properties = properties.clone();
    let (group, input) = (group.to_string(), input.to_string());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = super::client_config(
            &properties,
            &[
                ("group.id", group.as_str()),
                ("enable.auto.commit", "false"),
            ],
        )
        .create()
        .context("could not create the client that reads the group's committed offsets")?;
        let mut tpl = TopicPartitionList::new();
        for partition in 0..partitions {
            tpl.add_partition(&input, partition);
        }
        let committed = consumer
            .committed_offsets(tpl, METADATA_TIMEOUT)
            .with_context(|| {
                format!("cannot read the offsets group {group:?} committed on {input:?}")
            })?;
        Ok(committed
            .elements()
            .iter()
            .filter(|e| matches!(e.offset(), Offset::Offset(o) if o >= 0))
            .count())
    })
    .await
    .context("the committed-offsets check panicked")?
}

fn partition_count(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
) -> anyhow::Result<Option<i32>> {
    let metadata = admin
        .inner()
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .with_context(|| format!("cannot read the metadata of {topic:?}"))?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        .and_then(|t| i32::try_from(t.partitions().len()).ok()))
}

/// What a restore did, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Records read from the changelog (values and tombstones).
    pub records: u64,
    /// Records that could not be read (bad key or value) and were skipped.
    pub skipped: u64,
    pub elapsed: Duration,
}

/// The result of restoring one input partition's dedup state.
pub type RestoreResult = anyhow::Result<(PartitionStore, Restored)>;

/// Restores the dedup state of each of `partitions` (input topic, partition) of `group`
/// from its changelog, at most `concurrency` at once (each reader holds up to
/// [`budgets::restore_reader_bytes`] besides the state it builds), each on a blocking
/// thread. The results come in the order of `partitions`: put first the one a message
/// waits for. `dedup_restores_in_progress` and `dedup_restores_waiting` show the queue.
pub async fn restore_all(
    properties: &BTreeMap<String, String>,
    group: &str,
    partitions: Vec<(String, i32)>,
    limits: Limits,
    concurrency: usize,
) -> Vec<((String, i32), RestoreResult)> {
    let properties = properties.clone();
    let group = group.to_string();
    fan_out(partitions, concurrency, move |topic, partition| {
        restore(
            &properties,
            &changelog_topic(&group, topic),
            partition,
            limits,
        )
    })
    .await
}

/// Runs `restore` for each of `partitions` on blocking threads, at most `concurrency` at
/// once, starting them in order; the results come in that order.
async fn fan_out<F>(
    partitions: Vec<(String, i32)>,
    concurrency: usize,
    restore: F,
) -> Vec<((String, i32), RestoreResult)>
where
    F: Fn(&str, i32) -> RestoreResult + Clone + Send + 'static,
{
    use futures::StreamExt;
    // Made at once, so every partition counts as waiting until its restore starts (or
    // the whole is dropped).
    let restores: Vec<_> = partitions
        .into_iter()
        .map(|(topic, partition)| {
            let waiting = Counted::new(crate::meters::dedup_restores_waiting());
            let restore = restore.clone();
            async move {
                drop(waiting);
                let name = topic.clone();
                let result = tokio::task::spawn_blocking(move || {
                    let _running = Counted::new(crate::meters::dedup_restores_in_progress());
                    restore(&name, partition)
                })
                .await
                .unwrap_or_else(|e| Err(anyhow::anyhow!("the changelog reader panicked: {e}")));
                ((topic, partition), result)
            }
        })
        .collect();
    futures::stream::iter(restores)
        .buffered(concurrency.max(1))
        .collect()
        .await
}

/// Counts one in a gauge for as long as it lives.
struct Counted(metrics::Gauge);

impl Counted {
    fn new(gauge: metrics::Gauge) -> Self {
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Reads changelog partition `partition` of `topic` from its start to its current end
/// into a new store. Blocking; call it from a blocking thread.
pub fn restore(
    properties: &BTreeMap<String, String>,
    topic: &str,
    partition: i32,
    limits: Limits,
) -> anyhow::Result<(PartitionStore, Restored)> {
    let started = Instant::now();
    // Assigned, never subscribed, never committed: the group id only satisfies the
    // client. A restore reads a whole partition as fast as it can: a deep prefetch queue
    // in records (queued.min.messages; with librdkafka's default 1 M entries took 6 s
    // instead of under 2 s on the development broker), bounded in bytes
    // ([`budgets::restore_settings`]) so that restores side by side stay small.
    let budgets = budgets::restore_settings(properties);
    let mut fixed = vec![
        ("group.id", "nephoran-dedup-restore"),
        ("enable.auto.commit", "false"),
        ("enable.partition.eof", "false"),
    ];
    fixed.extend(budgets.iter().map(|(name, value)| (*name, value.as_str())));
    let consumer: BaseConsumer = super::client_config(properties, &fixed)
        .create()
        .context("could not create the changelog reader")?;
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, METADATA_TIMEOUT)
        .with_context(|| format!("cannot read the end offsets of {topic}[{partition}]"))?;
    let mut store = PartitionStore::new(limits);
    store.reserve(
        usize::try_from(high - low)
            .unwrap_or(0)
            .min(limits.max_entries),
    );
    let mut restored = Restored {
        records: 0,
        skipped: 0,
        elapsed: Duration::ZERO,
    };
    if high > low {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(low))?;
        consumer.assign(&tpl)?;
        let mut last_progress = Instant::now();
        let mut next = low;
        loop {
            // Past the end offset read at the start, keep taking what is already on its
            // way: some brokers (the development broker among them) report the end of a
            // partition as the start of its last batch plus one, so the rest of that
            // batch follows. On Apache Kafka this costs one short, empty poll.
            let wait = if next < high {
                Duration::from_millis(500)
            } else {
                TAIL_GRACE
            };
            let Some(result) = consumer.poll(wait) else {
                if next >= high {
                    break;
                }
                if last_progress.elapsed() > RESTORE_STALL {
                    bail!("restoring {topic}[{partition}] stalled at offset {next} of {high}");
                }
                continue;
            };
            let record = result.with_context(|| format!("reading {topic}[{partition}]"))?;
            last_progress = Instant::now();
            next = record.offset() + 1;
            restored.records += 1;
            let Some(key) = record.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                restored.skipped += 1;
                continue;
            };
            if let Err(e) = store.restore(key, record.payload()) {
                warn!(topic, partition, offset = record.offset(), error = %e, "skipping a changelog record");
                restored.skipped += 1;
            }
        }
    }
    restored.elapsed = started.elapsed();
    Ok((store, restored))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn restores_run_at_most_concurrency_at_once_and_answer_in_order() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let partitions: Vec<_> = (0..6).map(|p| ("t".to_string(), p)).collect();
        let (r, m) = (running.clone(), most.clone());
        let results = fan_out(partitions, 2, move |_, partition| {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            // The work of a restore, long enough for unbounded restores to overlap.
            std::thread::sleep(Duration::from_millis(20));
            r.fetch_sub(1, Ordering::SeqCst);
            if partition == 3 {
                bail!("partition 3 cannot be read");
            }
            let limits = Limits {
                window_secs: 60,
                max_entries: 10,
            };
            let restored = Restored {
                records: u64::try_from(partition).unwrap_or(0),
                skipped: 0,
                elapsed: Duration::ZERO,
            };
            Ok((PartitionStore::new(limits), restored))
        })
        .await;
        assert!(most.load(Ordering::SeqCst) <= 2, "at most 2 at once");
        let order: Vec<i32> = results.iter().map(|((_, p), _)| *p).collect();
        assert_eq!(order, [0, 1, 2, 3, 4, 5]);
        for ((_, partition), result) in &results {
            match result {
                Ok((_, restored)) => assert_eq!(restored.records, *partition as u64),
                Err(e) => {
                    assert_eq!(*partition, 3);
                    assert!(e.to_string().contains("partition 3"), "{e}");
                }
            }
        }
    }
}
