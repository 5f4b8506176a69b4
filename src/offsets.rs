//! Which offset of each partition may be committed, when messages finish out of order.
//!
//! A message is outstanding from the moment it is consumed until everything it publishes
//! is acknowledged. The committable position of a partition (the watermark) is its
//! lowest outstanding offset, or one past the last consumed offset when nothing is
//! outstanding: everything below it is done. Offsets need not be contiguous (compacted
//! or transactional topics skip some), so the tracker keeps the outstanding offsets
//! themselves rather than counting.

use std::collections::{BTreeSet, HashMap};

use crate::message::SourceRef;

#[derive(Debug, Default)]
struct Partition {
    outstanding: BTreeSet<i64>,
    /// One past the highest offset consumed.
    next: i64,
    /// The last position handed out for committing.
    committed: i64,
}

impl Partition {
    fn watermark(&self) -> i64 {
        self.outstanding.first().copied().unwrap_or(self.next)
    }
}

/// Outstanding offsets of every partition this worker consumes, by topic and partition
/// (nested, so that a lookup by `&str` allocates nothing: this runs for every message).
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<String, HashMap<i32, Partition>>,
}

impl OffsetTracker {
    /// Records a consumed message as outstanding.
    pub fn arrived(&mut self, source: &SourceRef) {
        if !self.partitions.contains_key(&source.topic) {
            self.partitions
                .insert(source.topic.clone(), HashMap::default());
        }
        let Some(topic) = self.partitions.get_mut(&source.topic) else {
            return;
        };
        let p = topic.entry(source.partition).or_insert_with(|| Partition {
            next: source.offset,
            committed: source.offset,
            ..Partition::default()
        });
        p.outstanding.insert(source.offset);
        p.next = p.next.max(source.offset + 1);
    }

    /// Records a message as done. Returns the partition's new committable position when it
    /// moved forward (the offset to store: where a new owner starts).
    pub fn completed(&mut self, source: &SourceRef) -> Option<i64> {
        let p = self
            .partitions
            .get_mut(&source.topic)?
            .get_mut(&source.partition)?;
        if !p.outstanding.remove(&source.offset) {
            return None;
        }
        let watermark = p.watermark();
        (watermark > p.committed).then(|| {
            p.committed = watermark;
            watermark
        })
    }

    /// Messages of a partition consumed and not yet done.
    pub fn outstanding(&self, topic: &str, partition: i32) -> usize {
        self.partitions
            .get(topic)
            .and_then(|t| t.get(&partition))
            .map_or(0, |p| p.outstanding.len())
    }

    /// Forgets a partition (revoked): later completions of its messages move nothing.
    pub fn forget(&mut self, topic: &str, partition: i32) {
        if let Some(t) = self.partitions.get_mut(topic) {
            t.remove(&partition);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(partition: i32, offset: i64) -> SourceRef {
        SourceRef {
            topic: "t".into(),
            partition,
            offset,
        }
    }

    #[test]
    fn the_watermark_waits_for_the_oldest_outstanding_message() {
        let mut t = OffsetTracker::default();
        for o in 10..15 {
            t.arrived(&at(0, o));
        }
        assert_eq!(t.completed(&at(0, 12)), None, "10 and 11 still outstanding");
        assert_eq!(t.outstanding("t", 0), 4);
        assert_eq!(t.completed(&at(0, 11)), None);
        assert_eq!(t.completed(&at(0, 10)), Some(13), "jumps past 11 and 12");
        assert_eq!(t.completed(&at(0, 14)), None, "13 still outstanding");
        assert_eq!(t.completed(&at(0, 13)), Some(15));
        assert_eq!(t.completed(&at(0, 13)), None, "done once");
    }

    #[test]
    fn partitions_are_independent_and_gaps_are_fine() {
        let mut t = OffsetTracker::default();
        t.arrived(&at(0, 0));
        t.arrived(&at(1, 100));
        t.arrived(&at(1, 105)); // 101..=104 compacted away
        assert_eq!(t.completed(&at(1, 100)), Some(105));
        assert_eq!(t.completed(&at(1, 105)), Some(106));
        assert_eq!(
            t.completed(&at(0, 0)),
            Some(1),
            "partition 0 was still waiting"
        );
    }

    #[test]
    fn a_forgotten_partition_moves_nothing() {
        let mut t = OffsetTracker::default();
        t.arrived(&at(0, 5));
        t.forget("t", 0);
        assert_eq!(t.completed(&at(0, 5)), None);
        assert_eq!(t.completed(&at(0, 5)), None, "twice is harmless");
    }
}
