//! Reads what consumer lag in messages is made of, for the partitions a worker holds:
//! each partition's log end offset (high watermark) and the group's committed offset.
//!
//! Read from the broker rather than from librdkafka's statistics: the statistics' high
//! watermark comes from fetch responses, so it goes stale while a partition is paused
//! (exactly when its lag matters), and their committed offset is unknown for a new
//! group. A read is one OffsetFetch for the group and one ListOffsets ("latest") for
//! all its partitions, every [`crate::meters::partitions::REFRESH`], bounded by that
//! period. Blocking: call it from a blocking thread.
//!
//! A partition the group has committed nothing for counts from its log start (low
//! watermark, one more ListOffsets, "earliest"), where the worker starts reading
//! (`auto.offset.reset=earliest`, the default here).

use std::sync::Weak;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tracing::debug;

use super::consumer::GroupContext;
use crate::schedule::PartitionId;

/// Reads lag for the group's consumer; cheap to clone, usable from any thread. It does
/// not keep the consumer alive: the consumer leaves the group when its last strong
/// reference goes ([`super::consumer::GroupConsumer::close_within`]), and a reader left
/// behind reads nothing.
#[derive(Clone)]
pub struct LagReader {
    pub(super) consumer: Weak<BaseConsumer<GroupContext>>,
}

impl LagReader {
    /// Lag in messages of each of `partitions` that could be read within `timeout`; a
    /// read that fails leaves them out (their series keep their last values). Three
    /// requests at most, whatever the number of partitions: the group's committed
    /// offsets, every log end (a ListOffsets for "latest"), and the log start of those
    /// the group has committed nothing for ("earliest").
    pub fn read(&self, partitions: &[PartitionId], timeout: Duration) -> Vec<(PartitionId, i64)> {
        if partitions.is_empty() {
            return Vec::new();
        }
        let Some(consumer) = self.consumer.upgrade() else {
            return Vec::new(); // closed
        };
        let deadline = Instant::now() + timeout;
        let left = || deadline.saturating_duration_since(Instant::now());
        let list = |at: Option<Offset>, only: &dyn Fn(&PartitionId) -> bool| {
            let mut list = TopicPartitionList::new();
            for partition in partitions.iter().filter(|p| only(p)) {
                match at {
                    Some(at) => {
                        // Cannot fail for a plain offset; a partition left out is not read.
                        let _ = list.add_partition_offset(&partition.0, partition.1, at);
                    }
                    None => {
                        list.add_partition(&partition.0, partition.1);
                    }
                }
            }
            list
        };
        let offset = |list: &TopicPartitionList, partition: &PartitionId| match list
            .find_partition(&partition.0, partition.1)
            .map(|e| e.offset())
        {
            Some(Offset::Offset(offset)) => Some(offset),
            _ => None,
        };
        let committed = match consumer.committed_offsets(list(None, &|_| true), left()) {
            Ok(committed) => committed,
            Err(e) => {
                debug!(error = %e, "committed offsets not read; lag not updated");
                return Vec::new();
            }
        };
        // A timestamp of -1 (`Offset::End`) asks for the log end, -2 for its start.
        let ends = match consumer.offsets_for_times(list(Some(Offset::End), &|_| true), left()) {
            Ok(ends) => ends,
            Err(e) => {
                debug!(error = %e, "log end offsets not read; lag not updated");
                return Vec::new();
            }
        };
        let uncommitted = |p: &PartitionId| offset(&committed, p).is_none();
        let starts = if partitions.iter().any(uncommitted) {
            match consumer.offsets_for_times(list(Some(Offset::Beginning), &uncommitted), left()) {
                Ok(starts) => Some(starts),
                Err(e) => {
                    debug!(error = %e, "log start offsets not read");
                    None
                }
            }
        } else {
            None
        };
        partitions
            .iter()
            .filter_map(|partition| {
                let end = offset(&ends, partition)?;
                let from = offset(&committed, partition)
                    .or_else(|| offset(starts.as_ref()?, partition))?;
                Some((partition.clone(), (end - from).max(0)))
            })
            .collect()
    }
}
