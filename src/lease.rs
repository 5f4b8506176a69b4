//! A worker's hold on a partition, for fencing work that outlives it.
//!
//! When a partition is revoked, messages still being translated may finish after another
//! worker owns it. Each assignment of a partition gets a [`Lease`] with a fresh epoch;
//! work started under it carries a clone, and the worker ends the lease when it hands the
//! partition over. Work that finds its lease ended applies nothing and publishes nothing:
//! the new owner processes the message again, and dedup makes that safe.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Lease {
    epoch: u64,
    held: Arc<AtomicBool>,
}

impl Lease {
    pub fn new(epoch: u64) -> Self {
        Self {
            epoch,
            held: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Which assignment of the partition this lease belongs to.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }

    /// Ends the lease, for every clone.
    pub fn end(&self) {
        self.held.store(false, Ordering::Release);
    }
}

/// Work found its partition handed over: it applied and published nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the partition was handed over while the message was in flight")]
pub struct Fenced;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ending_a_lease_ends_it_for_every_clone() {
        let lease = Lease::new(7);
        let carried = lease.clone();
        assert!(carried.is_held());
        lease.end();
        assert!(!carried.is_held());
        assert_eq!(carried.epoch(), 7);
    }
}
