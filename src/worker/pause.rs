//! Pausing partitions, for more than one reason at once: a partition whose buffer is full
//! ([`Reason::Buffer`]), and a partition whose messages wait for the intent sink, which
//! is down ([`Reason::SinkDown`]). A paused partition is not fetched (librdkafka drops what it
//! had prefetched and fetches it again on resume), so a backlog stays in Kafka; it is
//! fetched again once no reason holds.
//!
//! Metrics: `partitions_paused` (gauge, partitions paused for any reason).

use std::collections::HashMap;

use crate::kafka::consumer::GroupConsumer;
use crate::schedule::PartitionId;

/// Why a partition is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reason {
    /// `PARTITION_BUFFER` messages consumed and not done.
    Buffer,
    /// Messages of the partition wait for the intent sink, which is down.
    SinkDown,
}

impl Reason {
    fn bit(self) -> u8 {
        match self {
            Self::Buffer => 1,
            Self::SinkDown => 2,
        }
    }
}

/// The paused partitions, with their reasons.
#[derive(Debug, Default)]
pub(super) struct Pauses {
    reasons: HashMap<PartitionId, u8>,
}

impl Pauses {
    /// Pauses `partition` for `reason`; false if it was paused for it already.
    pub(super) fn pause(
        &mut self,
        consumer: &GroupConsumer,
        partition: &PartitionId,
        reason: Reason,
    ) -> bool {
        let reasons = self.reasons.entry(partition.clone()).or_default();
        if *reasons & reason.bit() != 0 {
            return false;
        }
        if *reasons == 0 {
            consumer.pause(&partition.0, partition.1);
        }
        *reasons |= reason.bit();
        self.count();
        true
    }

    /// Lifts `reason` from `partition`, resuming it when no other reason holds; false if
    /// it was not paused for `reason`.
    pub(super) fn resume(
        &mut self,
        consumer: &GroupConsumer,
        partition: &PartitionId,
        reason: Reason,
    ) -> bool {
        let Some(reasons) = self.reasons.get_mut(partition) else {
            return false;
        };
        if *reasons & reason.bit() == 0 {
            return false;
        }
        *reasons &= !reason.bit();
        if *reasons == 0 {
            self.reasons.remove(partition);
            consumer.resume(&partition.0, partition.1);
        }
        self.count();
        true
    }

    pub(super) fn is_paused_for(&self, partition: &PartitionId, reason: Reason) -> bool {
        self.reasons
            .get(partition)
            .is_some_and(|reasons| reasons & reason.bit() != 0)
    }

    /// The partitions paused for `reason`.
    pub(super) fn paused_for(&self, reason: Reason) -> Vec<PartitionId> {
        self.reasons
            .iter()
            .filter(|(_, reasons)| *reasons & reason.bit() != 0)
            .map(|(partition, _)| partition.clone())
            .collect()
    }

    /// Lifts every reason from a partition handed over, resuming it so that its next
    /// assignment (here or elsewhere in this process) starts fetching.
    pub(super) fn hand_over(&mut self, consumer: &GroupConsumer, partition: &PartitionId) {
        if self.reasons.remove(partition).is_some() {
            consumer.resume(&partition.0, partition.1);
            self.count();
        }
    }

    /// Forgets a partition that changed hands (its pause went with it).
    pub(super) fn forget(&mut self, partition: &PartitionId) {
        if self.reasons.remove(partition).is_some() {
            self.count();
        }
    }

    fn count(&self) {
        metrics::gauge!("partitions_paused").set(self.reasons.len() as f64);
    }
}
