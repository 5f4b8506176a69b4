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

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use tracing::{info, warn};

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

/// Reads changelog partition `partition` of `topic` from its start to its current end
/// into a new store. Blocking; call it from a blocking thread.
pub fn restore(
    properties: &BTreeMap<String, String>,
    topic: &str,
    partition: i32,
    limits: Limits,
) -> anyhow::Result<(PartitionStore, Restored)> {
    let started = Instant::now();
    let consumer: BaseConsumer = super::client_config(
        properties,
        &[
            // Assigned, never subscribed, never committed: the group id only satisfies
            // the client.
            ("group.id", "nephoran-dedup-restore"),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "false"),
            // A restore reads a whole partition as fast as it can: large fetches, and a
            // deep prefetch queue (bounded by queued.max.messages.kbytes, 64 MiB), which
            // takes 1 M entries from 6 s to under 2 s on the development broker.
            ("max.partition.fetch.bytes", "16777216"),
            ("fetch.max.bytes", "67108864"),
            ("queued.min.messages", "1000000"),
        ],
    )
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
