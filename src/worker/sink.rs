//! Following the intent sink ([`crate::apply::SinkStatus`]): a partition with messages
//! waiting for the sink (an apply that failed transiently, retried by the pipeline) is
//! paused, so its backlog stays in Kafka rather than in memory or in dead letters, and
//! resumed when none waits any more; `/readyz` fails, with the reason, while any message
//! waits. A message waiting for the sink is not waited for at a hand-over or a shutdown:
//! nothing else can finish it, so it is fenced at once and the next owner applies it.

use super::Worker;
use crate::schedule::PartitionId;
use crate::translate::Translator;

impl<T: Translator + 'static> Worker<'_, T> {
    /// Messages started waiting for the sink, or stopped.
    pub(super) fn sink_changed(&mut self) {
        let state = self.sink.borrow_and_update().clone();
        match &state.reason {
            Some(reason) if state.is_down() => self.health.sink_down(reason),
            _ => self.health.sink_up(),
        }
        let partitions: Vec<PartitionId> = self.partitions.held().cloned().collect();
        for partition in partitions {
            let waiting = state.waiting_in(&partition);
            self.partitions
                .sink_waiting(&partition, waiting, self.consumer);
        }
    }

    /// Started messages of `partition` that may still finish: those not waiting for the
    /// sink.
    pub(super) fn may_finish(&self, partition: &PartitionId) -> usize {
        let busy = self.partitions.get(partition).map_or(0, |s| s.busy);
        busy.saturating_sub(self.sink.borrow().waiting_in(partition))
    }
}
