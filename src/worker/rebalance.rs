//! Partitions coming and going: leases on assignment, and on revocation the drain, the
//! hand-over and the fencing of what is still in flight.

use std::time::Instant;

use tracing::info;

use super::{Revocation, Worker};
use crate::lease::Lease;
use crate::schedule::PartitionId;
use crate::translate::Translator;

impl<T: Translator + 'static> Worker<'_, T> {
    /// Partitions were assigned: each gets a new lease, and its state is read afresh.
    pub(super) fn assigned(&mut self, partitions: Vec<PartitionId>) {
        for partition in partitions {
            self.epochs += 1;
            self.held.insert(partition.clone(), Lease::new(self.epochs));
            // Back after a revocation this worker did not answer in time: that hand-over
            // is over, and must not take the new assignment with it.
            for revocation in &mut self.revocations {
                revocation.partitions.retain(|p| p != &partition);
            }
            self.scheduler.forget_partition(&partition);
            self.partitions
                .assign(partition, self.epochs, self.consumer);
        }
    }

    /// Partitions are being revoked: nothing more of them starts, and the group waits
    /// for their in-flight messages (see [`Self::hand_over_drained`]).
    pub(super) fn revoked(
        &mut self,
        partitions: Vec<PartitionId>,
        handed_over: std::sync::mpsc::SyncSender<()>,
    ) {
        let mut dropped = 0;
        for partition in &partitions {
            dropped += self.scheduler.drop_waiting(partition);
        }
        let in_flight: usize = partitions
            .iter()
            .filter_map(|p| self.partitions.get(p))
            .map(|s| s.busy)
            .sum();
        info!(
            partitions = ?partitions, in_flight, not_started = dropped,
            deadline = ?self.revoke_drain_timeout,
            "draining revoked partitions"
        );
        self.revocations.push(Revocation {
            partitions,
            deadline: tokio::time::Instant::now() + self.revoke_drain_timeout,
            started: Instant::now(),
            handed_over,
        });
    }

    /// Hands over every revoked partition whose in-flight messages are done, or whose
    /// drain deadline has passed (fencing what is left).
    pub(super) fn hand_over_drained(&mut self) {
        let now = tokio::time::Instant::now();
        let mut i = 0;
        while i < self.revocations.len() {
            let revocation = &self.revocations[i];
            // A message waiting for the sink is not waited for: it is fenced.
            let drained = revocation
                .partitions
                .iter()
                .all(|p| self.may_finish(p) == 0);
            if drained || now >= revocation.deadline {
                let revocation = self.revocations.swap_remove(i);
                self.hand_over(revocation);
            } else {
                i += 1;
            }
        }
    }

    pub(super) fn hand_over_all(&mut self) {
        for revocation in std::mem::take(&mut self.revocations) {
            self.hand_over(revocation);
        }
    }

    pub(super) fn hand_over(&mut self, revocation: Revocation) {
        let mut fenced = 0;
        for partition in &revocation.partitions {
            crate::meters::partitions_revoked(partition.0.clone()).increment(1);
            self.held.end(std::slice::from_ref(partition));
            self.scheduler.forget_partition(partition);
            if let Some(state) = self.partitions.hand_over(partition, self.consumer) {
                fenced += state.busy;
            }
        }
        crate::meters::revocation_drain().record(revocation.started.elapsed().as_secs_f64());
        info!(
            partitions = ?revocation.partitions, fenced,
            elapsed_ms = revocation.started.elapsed().as_millis() as u64,
            "revoked partitions handed over"
        );
        // The poll thread may have given up waiting; then nobody listens.
        let _ = revocation.handed_over.try_send(());
    }

    /// Ends every lease: on shutdown, work still in flight must not apply anything.
    pub(super) fn end_leases(&mut self) {
        self.held.end_all();
    }
}
