//! Deduplication by idempotency key, per input partition, that survives restarts,
//! crashes and rebalances.
//!
//! In the manner of a Kafka Streams state store: each input partition's state lives in
//! memory ([`PartitionStore`]) and every change to it is written to a compacted changelog
//! topic, to the same partition number, keyed by idempotency key. When a partition is
//! assigned, its changelog partition is read to the end before its first message is
//! processed; when it is revoked (or assigned anew) the state is dropped, because another
//! worker may have changed it meanwhile. This module is Kafka-agnostic; reading and
//! writing the changelog is [`crate::kafka::changelog`]'s job.

pub mod entry;
pub mod store;

use std::collections::HashMap;
use std::time::Duration;

pub use entry::{Entry, Outcome, State};
pub use store::{Check, Limits, PartitionStore};

/// The changelog topic of an input topic for a consumer group.
pub fn changelog_topic(group: &str, input_topic: &str) -> String {
    format!("{group}-{input_topic}-dedup-changelog")
}

/// Seconds since the Unix epoch, as entries record time.
pub fn now_secs() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

/// The state of every partition this worker owns, restored or not.
#[derive(Debug)]
pub struct Dedup {
    limits: Limits,
    /// Partitions restored at once.
    restore_concurrency: usize,
    partitions: HashMap<(String, i32), PartitionStore>,
}

impl Dedup {
    pub fn new(window: Duration, max_entries: usize) -> Self {
        let window_secs = u32::try_from(window.as_secs()).unwrap_or(u32::MAX);
        Self {
            limits: Limits {
                window_secs,
                max_entries,
            },
            restore_concurrency: 1,
            partitions: HashMap::new(),
        }
    }

    /// Restores `concurrency` partitions at once (at least one).
    pub fn with_restore_concurrency(mut self, concurrency: usize) -> Self {
        self.restore_concurrency = concurrency.max(1);
        self
    }

    pub fn restore_concurrency(&self) -> usize {
        self.restore_concurrency
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The state of a partition, if it has been restored since it was assigned.
    pub fn partition(&mut self, topic: &str, partition: i32) -> Option<&mut PartitionStore> {
        self.partitions.get_mut(&(topic.to_string(), partition))
    }

    /// Installs a freshly restored partition state.
    pub fn restored(&mut self, topic: &str, partition: i32, store: PartitionStore) {
        self.partitions
            .insert((topic.to_string(), partition), store);
    }

    /// Forgets a partition's state: it was revoked, or assigned anew and must be re-read.
    pub fn drop_partition(&mut self, topic: &str, partition: i32) {
        if self
            .partitions
            .remove(&(topic.to_string(), partition))
            .is_some()
        {
            metrics::gauge!("dedup_entries", "topic" => topic.to_string(), "partition" => partition.to_string())
                .set(0.0);
        }
    }
}
