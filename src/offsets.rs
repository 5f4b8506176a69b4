//! Which offset of each partition may be committed, when messages finish out of order.
//!
//! A message is outstanding from the moment it is consumed until everything it publishes
//! is acknowledged. The committable position of a partition (the watermark) is its
//! lowest outstanding offset, or one past the last consumed offset when nothing is
//! outstanding: everything below it is done. Offsets need not be contiguous (compacted
//! or transactional topics skip some), so the tracker keeps the outstanding offsets
//! themselves rather than counting. One tracker per partition, in the worker's
//! partition state: a revoked partition's tracker goes with it.

use std::collections::BTreeMap;

/// One partition's outstanding offsets and committable position, with what the owner
/// keeps about each outstanding message (`V`: when it arrived, say), so that the oldest
/// one is known without a second map of the same offsets.
#[derive(Debug)]
pub struct OffsetTracker<V = ()> {
    outstanding: BTreeMap<i64, V>,
    /// One past the highest offset consumed; `None` before the first.
    next: Option<i64>,
    /// The last position handed out for committing.
    committed: i64,
}

impl<V> Default for OffsetTracker<V> {
    fn default() -> Self {
        Self {
            outstanding: BTreeMap::new(),
            next: None,
            committed: 0,
        }
    }
}

impl<V: Default> OffsetTracker<V> {
    /// Records a consumed message as outstanding.
    pub fn arrived(&mut self, offset: i64) {
        let next = *self.next.get_or_insert_with(|| {
            self.committed = offset;
            offset
        });
        self.outstanding.insert(offset, V::default());
        self.next = Some(next.max(offset + 1));
    }

    /// Records a message as done. Returns the partition's new committable position when it
    /// moved forward (the offset to store: where a new owner starts).
    pub fn completed(&mut self, offset: i64) -> Option<i64> {
        self.outstanding.remove(&offset)?;
        let watermark = self.watermark();
        (watermark > self.committed).then(|| {
            self.committed = watermark;
            watermark
        })
    }

    /// Messages consumed and not yet done.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// What is kept about the outstanding message at `offset`, if it is outstanding.
    pub fn get_mut(&mut self, offset: i64) -> Option<&mut V> {
        self.outstanding.get_mut(&offset)
    }

    /// The oldest outstanding message: its offset and what is kept about it.
    pub fn oldest(&self) -> Option<(i64, &V)> {
        self.outstanding.first_key_value().map(|(o, v)| (*o, v))
    }

    fn watermark(&self) -> i64 {
        self.outstanding
            .first_key_value()
            .map(|(o, _)| *o)
            .unwrap_or(self.next.unwrap_or(self.committed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_waits_for_the_oldest_outstanding_message() {
        let mut t = OffsetTracker::<()>::default();
        for o in 10..15 {
            t.arrived(o);
        }
        assert_eq!(t.completed(12), None, "10 and 11 still outstanding");
        assert_eq!(t.outstanding(), 4);
        assert_eq!(t.completed(11), None);
        assert_eq!(t.completed(10), Some(13), "jumps past 11 and 12");
        assert_eq!(t.completed(14), None, "13 still outstanding");
        assert_eq!(t.completed(13), Some(15));
        assert_eq!(t.completed(13), None, "done once");
    }

    #[test]
    fn gaps_are_fine() {
        let mut t = OffsetTracker::<()>::default();
        t.arrived(100);
        t.arrived(105); // 101..=104 compacted away
        assert_eq!(t.completed(100), Some(105));
        assert_eq!(t.completed(105), Some(106));
    }

    #[test]
    fn an_offset_never_consumed_moves_nothing() {
        let mut t = OffsetTracker::<()>::default();
        assert_eq!(t.completed(5), None);
        t.arrived(5);
        assert_eq!(t.completed(4), None);
        assert_eq!(t.completed(5), Some(6));
    }
}
