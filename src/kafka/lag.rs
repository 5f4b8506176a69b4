//! Reads what consumer lag in messages is made of, for the partitions a worker holds:
//! each partition's log end offset (high watermark) and the group's committed offset.
//!
//! Read from the broker rather than from librdkafka's statistics: the statistics' high
//! watermark comes from fetch responses, so it goes stale while a partition is paused
//! (exactly when its lag matters), and their committed offset is unknown for a new
//! group. A read is one OffsetFetch for the group and a ListOffsets per partition,
//! every [`crate::meters::partitions::REFRESH`], each bounded by a timeout. Blocking:
//! call it from a blocking thread.
//!
//! A partition the group has committed nothing for counts from its low watermark, where
//! the worker starts reading (`auto.offset.reset=earliest`, the default here).

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
    /// Lag in messages of each of `partitions` that could be read within `timeout` in
    /// all; one that could not is left out (its series keeps its last value).
    pub fn read(&self, partitions: &[PartitionId], timeout: Duration) -> Vec<(PartitionId, i64)> {
        if partitions.is_empty() {
            return Vec::new();
        }
        let Some(consumer) = self.consumer.upgrade() else {
            return Vec::new(); // closed
        };
        let deadline = Instant::now() + timeout;
        let mut list = TopicPartitionList::new();
        for (topic, partition) in partitions {
            list.add_partition(topic, *partition);
        }
        let committed = match consumer.committed_offsets(list, timeout) {
            Ok(committed) => committed,
            Err(e) => {
                debug!(error = %e, "committed offsets not read; lag not updated");
                return Vec::new();
            }
        };
        let mut lags = Vec::with_capacity(partitions.len());
        for (topic, partition) in partitions {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                debug!("lag read out of time; the rest keep their last values");
                break;
            }
            let (low, high) = match consumer.fetch_watermarks(topic, *partition, left) {
                Ok(watermarks) => watermarks,
                Err(e) => {
                    debug!(error = %e, topic, partition, "watermarks not read");
                    continue;
                }
            };
            let from = match committed
                .find_partition(topic, *partition)
                .map(|e| e.offset())
            {
                Some(Offset::Offset(offset)) => offset.max(low),
                _ => low,
            };
            lags.push(((topic.clone(), *partition), (high - from).max(0)));
        }
        lags
    }
}
