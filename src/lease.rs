//! A worker's hold on a partition, for fencing work that outlives it.
//!
//! When a partition is revoked, messages still being translated may finish after another
//! worker owns it. Each assignment of a partition gets a [`Lease`] with a fresh epoch;
//! work started under it carries a clone, and the worker ends the lease when it hands the
//! partition over. Work that finds its lease ended applies nothing and publishes nothing,
//! and a translation still waiting (an LLM call) is dropped at once rather than finished
//! for nothing: the new owner processes the message again, and dedup makes that safe.

use std::sync::Arc;

use tokio::sync::watch;

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
}
