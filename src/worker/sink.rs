//! Following the intent sink ([`crate::apply::SinkStatus`]): a partition with messages
//! waiting for the sink (an apply that failed transiently, retried by the pipeline) is
//! paused, so its backlog stays in Kafka rather than in memory or in dead letters, and
//! resumed when none waits any more; `/readyz` fails, with the reason, while any message
//! waits. A message waiting for the sink is not waited for at a hand-over or a shutdown:
//! nothing else can finish it, so it is fenced at once and the next owner applies it.

use tracing::info;

use super::pause::Reason;
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
        let mut partitions = self.held.partitions();
        partitions.extend(self.pauses.paused_for(Reason::SinkDown));
        partitions.sort();
        partitions.dedup();
        for partition in partitions {
            let waiting = state.waiting_in(&partition);
            let paused = self.pauses.is_paused_for(&partition, Reason::SinkDown);
            if waiting > 0 && !paused {
                self.pauses
                    .pause(self.consumer, &partition, Reason::SinkDown);
                metrics::counter!("partition_pauses_total", "topic" => partition.0.clone(), "reason" => "sink_down")
                    .increment(1);
                info!(
                    topic = %partition.0, partition = partition.1, waiting,
                    "partition paused: its messages wait for the intent sink"
                );
            } else if waiting == 0 && paused {
                self.pauses
                    .resume(self.consumer, &partition, Reason::SinkDown);
                info!(
                    topic = %partition.0, partition = partition.1,
                    "partition resumed: none of its messages waits for the intent sink"
                );
            }
        }
    }

    /// Started messages of `partition` that may still finish: those not waiting for the
    /// sink.
    pub(super) fn may_finish(&self, partition: &PartitionId) -> usize {
        let busy = self.busy.get(partition).copied().unwrap_or(0);
        busy.saturating_sub(self.sink.borrow().waiting_in(partition))
    }
}
