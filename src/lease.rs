//! A worker's hold on a partition, for fencing work that outlives it.
//!
//! When a partition is revoked, messages still being translated may finish after another
//! worker owns it. Each assignment of a partition gets a [`Lease`] with a fresh epoch;
//! work started under it carries a clone, and the worker ends the lease when it hands the
//! partition over. Work that finds its lease ended applies nothing and publishes nothing,
//! and a translation still waiting (an LLM call) is dropped at once rather than finished
//! for nothing: the new owner processes the message again, and dedup makes that safe.
//!
//! The leases held are kept in [`Held`], shared with the consumer's rebalance callback: if
//! the worker does not answer a revocation in time (it is stuck), the callback ends the
//! revoked partitions' leases itself before they are given up, so the fencing does not
//! depend on the worker getting round to it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use crate::schedule::PartitionId;

#[derive(Debug, Clone)]
pub struct Lease {
    epoch: u64,
    end: Arc<watch::Sender<bool>>,
    ended: watch::Receiver<bool>,
}

impl Lease {
    pub fn new(epoch: u64) -> Self {
        let (end, ended) = watch::channel(false);
        Self {
            epoch,
            end: Arc::new(end),
            ended,
        }
    }

    /// Which assignment of the partition this lease belongs to.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn is_held(&self) -> bool {
        !*self.ended.borrow()
    }

    /// Ends the lease, for every clone.
    pub fn end(&self) {
        self.end.send_replace(true);
    }

    /// Resolves when the lease ends.
    pub async fn ended(&self) {
        let mut ended = self.ended.clone();
        // The sender lives as long as any clone of the lease, this one included.
        let _ = ended.wait_for(|ended| *ended).await;
    }
}

/// The leases a worker holds, by partition; changed only on rebalances, read for every
/// message (an uncontended lock).
#[derive(Debug, Clone, Default)]
pub struct Held(Arc<Mutex<HashMap<PartitionId, Lease>>>);

impl Held {
    /// The partition's lease, if it is held and has not ended.
    pub fn get(&self, partition: &PartitionId) -> Option<Lease> {
        self.table()
            .get(partition)
            .filter(|lease| lease.is_held())
            .cloned()
    }

    /// The epoch of the partition's lease, if it is held.
    pub fn epoch(&self, partition: &PartitionId) -> Option<u64> {
        self.table().get(partition).map(Lease::epoch)
    }

    pub fn partitions(&self) -> Vec<PartitionId> {
        self.table().keys().cloned().collect()
    }

    /// Holds `partition` under `lease`, ending the lease it had.
    pub fn insert(&self, partition: PartitionId, lease: Lease) {
        if let Some(old) = self.table().insert(partition, lease) {
            old.end();
        }
    }

    /// Ends every lease (on shutdown); they stay listed.
    pub fn end_all(&self) {
        self.table().values().for_each(Lease::end);
    }

    /// Ends and forgets the leases of `partitions` (handed over); returns how many there
    /// were.
    pub fn end(&self, partitions: &[PartitionId]) -> usize {
        let mut table = self.table();
        partitions
            .iter()
            .filter_map(|p| table.remove(p))
            .inspect(Lease::end)
            .count()
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<PartitionId, Lease>> {
        // A panic elsewhere leaves the table consistent: each call is one map operation.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Work found its partition handed over: it applied and published nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the partition was handed over while the message was in flight")]
pub struct Fenced;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ending_a_lease_ends_it_for_every_clone() {
        let lease = Lease::new(7);
        let carried = lease.clone();
        assert!(carried.is_held());
        let waiting = tokio::spawn(async move {
            carried.ended().await;
            carried.is_held()
        });
        lease.end();
        assert!(!waiting.await.unwrap(), "the waiter sees the end");
        assert_eq!(lease.epoch(), 7);
    }

    #[test]
    fn held_leases_end_by_partition() {
        let held = Held::default();
        let (a, b) = (("t".to_string(), 0), ("t".to_string(), 1));
        let (lease_a, lease_b) = (Lease::new(1), Lease::new(2));
        held.insert(a.clone(), lease_a.clone());
        held.insert(b.clone(), lease_b.clone());
        assert_eq!(held.get(&a).map(|l| l.epoch()), Some(1));
        assert_eq!(held.end(&[a.clone(), ("u".to_string(), 0)]), 1);
        assert!(!lease_a.is_held());
        assert!(held.get(&a).is_none(), "ended leases are forgotten");
        assert!(lease_b.is_held(), "only the revoked partition's lease ends");
        assert_eq!(held.end(&[a]), 0);
        let lease_b2 = Lease::new(3);
        held.insert(b.clone(), lease_b2.clone());
        assert!(!lease_b.is_held(), "a new lease ends the old one");
        held.end_all();
        assert!(!lease_b2.is_held() && held.get(&b).is_none());
        assert_eq!(held.partitions(), vec![b]);
    }
}
