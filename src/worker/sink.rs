//! Following the intent sink ([`crate::apply::SinkStatus`]): while it is down, every held
//! partition is paused, so the backlog stays in Kafka rather than in memory or in dead
//! letters, and `/readyz` fails with the reason; the messages already started keep
//! retrying their apply (see [`crate::pipeline`]). When an apply succeeds again, the
//! partitions resume and `/readyz` passes. A partition assigned while the sink is down
//! starts paused.

use tracing::info;

use super::pause::Reason;
use super::Worker;
use crate::schedule::PartitionId;
use crate::translate::Translator;

impl<T: Translator + 'static> Worker<'_, T> {
    /// The sink went down or came back.
    pub(super) fn sink_changed(&mut self) {
        let down = self.sink.borrow_and_update().clone();
        match down {
            Some(down) => {
                self.health.sink_down(&down.reason);
                let mut paused = 0;
                for partition in self.held.partitions() {
                    paused += usize::from(self.pause_for_sink(&partition));
                }
                info!(paused, reason = %down.reason, "partitions paused: the intent sink is down");
            }
            None => {
                self.health.sink_up();
                let partitions = self.pauses.paused_for(Reason::SinkDown);
                for partition in &partitions {
                    self.pauses
                        .resume(self.consumer, partition, Reason::SinkDown);
                }
                info!(
                    resumed = partitions.len(),
                    "partitions resumed: the intent sink is back"
                );
            }
        }
    }

    /// Whether the sink is down now, as last seen.
    pub(super) fn sink_is_down(&self) -> bool {
        self.sink.borrow().is_some()
    }

    /// Pauses a partition until the sink is back; false if it was paused for it already.
    pub(super) fn pause_for_sink(&mut self, partition: &PartitionId) -> bool {
        let paused = self
            .pauses
            .pause(self.consumer, partition, Reason::SinkDown);
        if paused {
            metrics::counter!("partition_pauses_total", "topic" => partition.0.clone(), "reason" => "sink_down")
                .increment(1);
        }
        paused
    }
}
