//! Deduplication by idempotency key, per input partition, that survives restarts,
//! crashes and rebalances.
//!
//! In the manner of a Kafka Streams state store: each input partition's state lives in
//! memory ([`PartitionStore`]) and every change to it is written to a compacted changelog
//! topic, to the same partition number, keyed by idempotency key. When a partition is
//! assigned, its changelog partition is read to the end before its first message is
//! processed; when it is revoked (or assigned anew) the state is dropped, because another
//! worker may have changed it meanwhile. Each partition's store lives in the worker's
//! state of that partition. This module is Kafka-agnostic; reading and
//! writing the changelog is [`crate::kafka::changelog`]'s job.

pub mod entry;
pub mod store;

use std::time::Duration;

pub use entry::{Entry, Outcome, State};
pub use store::{Check, Limits, PartitionStore};

/// The header `dlq replay` puts on a dead letter it re-publishes: the `nephoran.event.id`
/// of that dead letter. A message carrying it whose key's last processing was `rejected`,
/// with the same payload, and whose dead letter has that id, is processed again, once
/// ([`Check::Replay`]); anywhere else the header changes nothing. Dead letters never copy
/// it (a replay rejected again gets a dead letter of its own, with its own id).
pub const REPLAY_OF_HEADER: &str = "nephoran.replay.of";

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

impl Limits {
    /// The limits for a window (whole seconds, saturating) and a bound per partition.
    pub fn new(window: Duration, max_entries: usize) -> Self {
        Self {
            window_secs: u32::try_from(window.as_secs()).unwrap_or(u32::MAX),
            max_entries,
        }
    }
}
