//! One assigned partition's state, from its assignment to its hand-over, in one place
//! ([`PartitionState`]), and the decisions made on it ([`Partitions`]): when to pause and
//! resume it, which position to store.
//!
//! A partition is paused, for as many reasons as hold ([`Reason`]): its own buffer is
//! full (`PARTITION_BUFFER` messages or `PARTITION_BUFFER_BYTES` bytes consumed and not
//! done; resumed at half of both), the whole worker's buffer is full (`BUFFER_BYTES`
//! over all partitions: every partition pauses, and resumes at half), or its messages
//! wait for the intent sink, which is down, or its next message waits for its writer
//! schema from the schema registry. A paused partition is not fetched
//! (librdkafka drops what it had prefetched and fetches it again on resume), so a
//! backlog stays in Kafka, not in memory.
//!
//! The state is created when the partition is assigned and dropped when it is handed
//! over, so a revocation clears one place. What the worker asks of the consumer goes
//! through [`Control`], so these decisions are unit-tested without Kafka.
//!
//! The worker's [`PartitionGauges`] (consumer lag per partition, rendered on `/metrics`)
//! follow the held partitions from here: a partition's series appear at assignment and
//! go at hand-over, and its oldest message not done is kept up to date.
//!
//! Metrics: `partitions_paused` (partitions paused for any reason),
//! `partition_pauses_total{topic,reason}`, `buffered_message_bytes` (bytes of messages
//! consumed and not done, all partitions), `dedup_entries{topic,partition}`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use tracing::info;

use crate::dedup::PartitionStore;
use crate::kafka::consumer::GroupConsumer;
use crate::message::InboundMessage;
use crate::meters;
use crate::meters::partitions::PartitionGauges;
use crate::offsets::OffsetTracker;
use crate::schedule::PartitionId;

/// What the worker asks of the consumer about a partition.
pub(super) trait Control {
    fn pause(&self, partition: &PartitionId);
    fn resume(&self, partition: &PartitionId);
}

impl Control for GroupConsumer {
    fn pause(&self, partition: &PartitionId) {
        GroupConsumer::pause(self, &partition.0, partition.1);
    }

    fn resume(&self, partition: &PartitionId) {
        GroupConsumer::resume(self, &partition.0, partition.1);
    }
}

/// Why a partition is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reason {
    /// Its own buffer is full, in messages or bytes.
    Buffer,
    /// The whole worker's buffer is full, in bytes.
    Memory,
    /// Its messages wait for the intent sink, which is down.
    SinkDown,
    /// Its next message waits for its writer schema from the schema registry.
    SchemaRegistry,
}

impl Reason {
    fn bit(self) -> u8 {
        match self {
            Self::Buffer => 1,
            Self::Memory => 2,
            Self::SinkDown => 4,
            Self::SchemaRegistry => 8,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Buffer => "buffer",
            Self::Memory => "memory",
            Self::SinkDown => "sink_down",
            Self::SchemaRegistry => "schema_registry",
        }
    }
}

/// How much may be buffered before partitions pause.
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    /// Messages per partition (`PARTITION_BUFFER`).
    pub messages: usize,
    /// Bytes per partition (`PARTITION_BUFFER_BYTES`).
    pub bytes: usize,
    /// Bytes over all partitions (`BUFFER_BYTES`).
    pub total_bytes: usize,
}

/// Everything the worker knows about one partition it holds. `M` is a message parked
/// behind another of the same idempotency key.
pub(super) struct PartitionState<M> {
    /// The epoch of the lease it was assigned under: an acknowledgement of a message
    /// consumed under another lease is not this assignment's.
    pub epoch: u64,
    /// Its messages consumed and not yet done, with their arrival once noted
    /// ([`Partitions::note_arrival`]: Kafka timestamp and when consumed), and the position
    /// to commit.
    pub offsets: OffsetTracker<Option<(Option<i64>, Instant)>>,
    /// Bytes of its messages consumed and not yet done.
    pub bytes: usize,
    /// Its messages started and not yet done: what a revocation waits for.
    pub busy: usize,
    /// Why it is paused ([`Reason`] bits); 0 when it is fetched.
    paused: u8,
    /// Its dedup state, once restored from the changelog.
    pub dedup: Option<PartitionStore>,
    entries: metrics::Gauge,
    /// Idempotency keys being translated, with the messages of the same key (from other
    /// lanes: a different record key) parked until it is done.
    pub translating: HashMap<String, Vec<M>>,
    /// Parked messages whose key is done: they start before anything new.
    pub unparked: Vec<M>,
    /// Messages consumed and not yet decoded, in offset order: the first waits for its
    /// writer schema from the schema registry, the others behind it
    /// ([`super::schemas`]). Bounded by the partition's buffer, which they count in.
    pub undecoded: VecDeque<(InboundMessage, Instant)>,
}

impl<M> PartitionState<M> {
    fn new(partition: &PartitionId, epoch: u64) -> Self {
        Self {
            epoch,
            offsets: OffsetTracker::default(),
            bytes: 0,
            busy: 0,
            paused: 0,
            dedup: None,
            entries: meters::dedup_entries(partition.0.clone(), partition.1),
            translating: HashMap::new(),
            unparked: Vec::new(),
            undecoded: VecDeque::new(),
        }
    }

    pub(super) fn is_paused_for(&self, reason: Reason) -> bool {
        self.paused & reason.bit() != 0
    }

    /// Sets the `dedup_entries` gauge from its dedup state.
    pub(super) fn count_entries(&self) {
        if let Some(store) = &self.dedup {
            self.entries.set(store.len() as f64);
        }
    }
}

/// The partitions this worker holds, with their state, and the whole worker's buffer.
pub(super) struct Partitions<M> {
    states: HashMap<PartitionId, PartitionState<M>>,
    budget: Budget,
    /// Bytes of all partitions' messages consumed and not yet done.
    bytes: usize,
    /// Every partition is paused for [`Reason::Memory`].
    memory_full: bool,
    paused_gauge: metrics::Gauge,
    bytes_gauge: metrics::Gauge,
    /// The held partitions' lag, as `/metrics` shows it.
    gauges: Arc<PartitionGauges>,
}

impl<M> Partitions<M> {
    pub(super) fn new(budget: Budget, gauges: Arc<PartitionGauges>) -> Self {
        Self {
            states: HashMap::new(),
            budget,
            bytes: 0,
            memory_full: false,
            paused_gauge: meters::partitions_paused(),
            bytes_gauge: meters::buffered_message_bytes(),
            gauges,
        }
    }

    pub(super) fn get(&self, partition: &PartitionId) -> Option<&PartitionState<M>> {
        self.states.get(partition)
    }

    pub(super) fn get_mut(&mut self, partition: &PartitionId) -> Option<&mut PartitionState<M>> {
        self.states.get_mut(partition)
    }

    pub(super) fn iter_mut(
        &mut self,
    ) -> impl Iterator<Item = (&PartitionId, &mut PartitionState<M>)> {
        self.states.iter_mut()
    }

    pub(super) fn held(&self) -> impl Iterator<Item = &PartitionId> {
        self.states.keys()
    }

    /// Bytes of all partitions' messages consumed and not yet done.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// A partition was assigned under lease `epoch`: its state starts afresh (one left
    /// from an earlier assignment is dropped: another worker may have changed it). It is
    /// paused at once while the whole worker's buffer is full.
    pub(super) fn assign(&mut self, partition: PartitionId, epoch: u64, control: &impl Control) {
        let mut state = PartitionState::new(&partition, epoch);
        if let Some(old) = self.states.remove(&partition) {
            self.bytes = self.bytes.saturating_sub(old.bytes);
        }
        if self.memory_full {
            control.pause(&partition);
            state.paused = Reason::Memory.bit();
        }
        self.gauges.assigned(&partition);
        self.states.insert(partition, state);
        self.count();
    }

    /// A partition was handed over: its state goes, and it is resumed if it was paused,
    /// so that its next assignment (here or elsewhere in this process) starts fetching.
    pub(super) fn hand_over(
        &mut self,
        partition: &PartitionId,
        control: &impl Control,
    ) -> Option<PartitionState<M>> {
        let state = self.states.remove(partition)?;
        self.gauges.revoked(partition);
        if state.paused != 0 {
            control.resume(partition);
        }
        state.entries.set(0.0);
        self.bytes = self.bytes.saturating_sub(state.bytes);
        self.lift_memory_pause(control);
        self.count();
        Some(state)
    }

    /// A message of `bytes` bytes at `offset` was consumed: it is outstanding until
    /// [`Self::done`]. Pauses its partition when its buffer is full, and every partition
    /// when the worker's is. False if the partition is not held.
    pub(super) fn arrived(
        &mut self,
        partition: &PartitionId,
        offset: i64,
        bytes: usize,
        control: &impl Control,
    ) -> bool {
        let budget = self.budget;
        let Some(state) = self.states.get_mut(partition) else {
            return false;
        };
        state.offsets.arrived(offset);
        state.bytes += bytes;
        self.bytes += bytes;
        let (outstanding, buffered) = (state.offsets.outstanding(), state.bytes);
        if (outstanding >= budget.messages || buffered >= budget.bytes)
            && self.pause(partition, Reason::Buffer, control)
        {
            info!(
                topic = %partition.0, partition = partition.1, outstanding, bytes = buffered,
                "partition paused: its buffer is full"
            );
        }
        if self.bytes >= budget.total_bytes && !self.memory_full {
            self.memory_full = true;
            let partitions: Vec<PartitionId> = self.states.keys().cloned().collect();
            for partition in &partitions {
                self.pause(partition, Reason::Memory, control);
            }
            info!(
                bytes = self.bytes,
                budget = budget.total_bytes,
                partitions = partitions.len(),
                "every partition paused: the worker's buffer is full (BUFFER_BYTES)"
            );
        }
        self.bytes_gauge.set(self.bytes as f64);
        true
    }

    /// The message at `offset`, just [`Self::arrived`], has Kafka timestamp
    /// `timestamp_ms` and was consumed `at`: what its partition's lag in seconds and the
    /// oldest in-flight age are measured from until it is done.
    pub(super) fn note_arrival(
        &mut self,
        partition: &PartitionId,
        offset: i64,
        timestamp_ms: Option<i64>,
        at: Instant,
    ) {
        let Some(state) = self.states.get_mut(partition) else {
            return;
        };
        if let Some(arrival) = state.offsets.get_mut(offset) {
            *arrival = Some((timestamp_ms, at));
        }
        if state
            .offsets
            .oldest()
            .is_some_and(|(oldest, _)| oldest == offset)
        {
            self.gauges.oldest(partition, Some((timestamp_ms, at)));
        }
    }

    /// A message of `bytes` bytes at `offset`, consumed under lease `epoch`, is done (all
    /// it publishes acknowledged). Returns the partition's new committable position when
    /// it moved; nothing when the partition was handed over since (another lease).
    /// Resumes what the message's bytes were holding paused.
    pub(super) fn done(
        &mut self,
        partition: &PartitionId,
        epoch: u64,
        offset: i64,
        bytes: usize,
        control: &impl Control,
    ) -> Option<i64> {
        let budget = self.budget;
        let state = self
            .states
            .get_mut(partition)
            .filter(|state| state.epoch == epoch)?;
        state.busy = state.busy.saturating_sub(1);
        let was_oldest = state.offsets.oldest().is_some_and(|(o, _)| o == offset);
        let position = state.offsets.completed(offset);
        if was_oldest {
            let oldest = state.offsets.oldest().and_then(|(_, arrival)| *arrival);
            self.gauges.oldest(partition, oldest);
        }
        state.bytes = state.bytes.saturating_sub(bytes);
        self.bytes = self.bytes.saturating_sub(bytes);
        let (outstanding, buffered) = (state.offsets.outstanding(), state.bytes);
        if outstanding <= budget.messages / 2
            && buffered <= budget.bytes / 2
            && state.is_paused_for(Reason::Buffer)
        {
            self.resume(partition, Reason::Buffer, control);
            info!(
                topic = %partition.0, partition = partition.1, outstanding, bytes = buffered,
                "partition's buffer drained"
            );
        }
        self.lift_memory_pause(control);
        self.bytes_gauge.set(self.bytes as f64);
        position
    }

    /// `waiting` messages of `partition` wait for the intent sink: paused while any does.
    pub(super) fn sink_waiting(
        &mut self,
        partition: &PartitionId,
        waiting: usize,
        control: &impl Control,
    ) {
        let Some(state) = self.states.get(partition) else {
            return;
        };
        let paused = state.is_paused_for(Reason::SinkDown);
        if waiting > 0 && !paused {
            self.pause(partition, Reason::SinkDown, control);
            info!(
                topic = %partition.0, partition = partition.1, waiting,
                "partition paused: its messages wait for the intent sink"
            );
        } else if waiting == 0 && paused {
            self.resume(partition, Reason::SinkDown, control);
            info!(
                topic = %partition.0, partition = partition.1,
                "none of the partition's messages waits for the intent sink any more"
            );
        }
    }

    /// `partition`'s next message waits, or no longer waits, for a writer schema from the
    /// schema registry: paused while it does.
    pub(super) fn schema_waiting(
        &mut self,
        partition: &PartitionId,
        waiting: bool,
        control: &impl Control,
    ) {
        let Some(state) = self.states.get(partition) else {
            return;
        };
        let paused = state.is_paused_for(Reason::SchemaRegistry);
        if waiting && !paused {
            self.pause(partition, Reason::SchemaRegistry, control);
            info!(
                topic = %partition.0, partition = partition.1,
                "partition paused: its next message waits for its writer schema from the schema registry"
            );
        } else if !waiting && paused {
            self.resume(partition, Reason::SchemaRegistry, control);
            info!(
                topic = %partition.0, partition = partition.1,
                "the partition's messages have their writer schemas"
            );
        }
    }

    /// The whole worker's buffer is down to half: every partition is resumed (those
    /// paused for no other reason).
    fn lift_memory_pause(&mut self, control: &impl Control) {
        if !self.memory_full || self.bytes > self.budget.total_bytes / 2 {
            return;
        }
        self.memory_full = false;
        let partitions: Vec<PartitionId> = self.states.keys().cloned().collect();
        for partition in &partitions {
            self.resume(partition, Reason::Memory, control);
        }
        info!(
            bytes = self.bytes,
            "the worker's buffer drained: partitions resumed"
        );
    }

    /// Pauses `partition` for `reason`; false if it was paused for it already.
    fn pause(&mut self, partition: &PartitionId, reason: Reason, control: &impl Control) -> bool {
        let Some(state) = self.states.get_mut(partition) else {
            return false;
        };
        if state.is_paused_for(reason) {
            return false;
        }
        if state.paused == 0 {
            control.pause(partition);
        }
        state.paused |= reason.bit();
        meters::partition_pauses(partition.0.clone(), reason.as_str()).increment(1);
        self.count();
        true
    }

    /// Lifts `reason` from `partition`, resuming it when no other reason holds.
    fn resume(&mut self, partition: &PartitionId, reason: Reason, control: &impl Control) {
        let Some(state) = self.states.get_mut(partition) else {
            return;
        };
        if !state.is_paused_for(reason) {
            return;
        }
        state.paused &= !reason.bit();
        if state.paused == 0 {
            control.resume(partition);
        } else {
            info!(
                topic = %partition.0, partition = partition.1, reason = reason.as_str(),
                "one reason to pause lifted; the partition stays paused for another"
            );
        }
        self.count();
    }

    fn count(&self) {
        let paused = self.states.values().filter(|s| s.paused != 0).count();
        self.paused_gauge.set(paused as f64);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// Records what the worker asks of the consumer.
    #[derive(Default)]
    struct Consumer {
        calls: RefCell<Vec<(&'static str, i32)>>,
    }

    impl Consumer {
        fn take(&self) -> Vec<(&'static str, i32)> {
            std::mem::take(&mut self.calls.borrow_mut())
        }
    }

    impl Control for Consumer {
        fn pause(&self, partition: &PartitionId) {
            self.calls.borrow_mut().push(("pause", partition.1));
        }
        fn resume(&self, partition: &PartitionId) {
            self.calls.borrow_mut().push(("resume", partition.1));
        }
    }

    fn p(n: i32) -> PartitionId {
        ("requests".to_string(), n)
    }

    fn partitions(messages: usize, bytes: usize, total_bytes: usize) -> Partitions<()> {
        Partitions::new(
            Budget {
                messages,
                bytes,
                total_bytes,
            },
            Arc::default(),
        )
    }

    #[test]
    fn a_partition_pauses_at_its_message_bound_and_resumes_at_half() {
        let consumer = Consumer::default();
        let mut held = partitions(4, usize::MAX, usize::MAX);
        held.assign(p(0), 1, &consumer);
        for offset in 0..4 {
            assert!(held.arrived(&p(0), offset, 10, &consumer));
        }
        assert_eq!(consumer.take(), [("pause", 0)], "paused once, at 4");
        assert_eq!(
            held.done(&p(0), 1, 1, 10, &consumer),
            None,
            "0 still outstanding"
        );
        assert_eq!(consumer.take(), [], "3 outstanding: above half");
        assert_eq!(held.done(&p(0), 1, 0, 10, &consumer), Some(2));
        assert_eq!(consumer.take(), [("resume", 0)], "2 outstanding: half");
    }

    #[test]
    fn a_partition_pauses_on_bytes_as_well_as_messages() {
        let consumer = Consumer::default();
        let mut held = partitions(1000, 1_000_000, usize::MAX);
        held.assign(p(0), 1, &consumer);
        held.assign(p(1), 2, &consumer);
        held.arrived(&p(0), 0, 600_000, &consumer);
        held.arrived(&p(1), 0, 10, &consumer);
        assert_eq!(consumer.take(), []);
        held.arrived(&p(0), 1, 400_000, &consumer);
        assert_eq!(consumer.take(), [("pause", 0)], "1 MB in two messages");
        held.done(&p(0), 1, 1, 400_000, &consumer);
        assert_eq!(consumer.take(), [], "600 000 bytes: above half");
        held.done(&p(0), 1, 0, 600_000, &consumer);
        assert_eq!(consumer.take(), [("resume", 0)]);
        assert_eq!(held.bytes(), 10, "partition 1's message is still buffered");
    }

    #[test]
    fn the_whole_buffer_pauses_every_partition_until_half() {
        let consumer = Consumer::default();
        let mut held = partitions(1000, 1000, 2000);
        for n in 0..3 {
            held.assign(p(n), 1, &consumer);
        }
        held.arrived(&p(0), 0, 900, &consumer);
        held.arrived(&p(1), 0, 900, &consumer);
        assert_eq!(consumer.take(), []);
        held.arrived(&p(2), 0, 200, &consumer);
        let mut paused = consumer.take();
        paused.sort();
        assert_eq!(paused, [("pause", 0), ("pause", 1), ("pause", 2)]);
        // Assigned while the buffer is full: paused from the start.
        held.assign(p(3), 2, &consumer);
        assert_eq!(consumer.take(), [("pause", 3)]);
        held.done(&p(0), 1, 0, 900, &consumer);
        assert_eq!(consumer.take(), [], "1100 bytes: above half of 2000");
        held.done(&p(1), 1, 0, 900, &consumer);
        let mut resumed = consumer.take();
        resumed.sort();
        assert_eq!(
            resumed,
            [("resume", 0), ("resume", 1), ("resume", 2), ("resume", 3)]
        );
    }

    #[test]
    fn a_partition_resumes_only_when_no_reason_holds() {
        let consumer = Consumer::default();
        let mut held = partitions(2, usize::MAX, usize::MAX);
        held.assign(p(0), 1, &consumer);
        held.arrived(&p(0), 0, 1, &consumer);
        held.arrived(&p(0), 1, 1, &consumer);
        held.sink_waiting(&p(0), 1, &consumer);
        assert_eq!(
            consumer.take(),
            [("pause", 0)],
            "paused once for two reasons"
        );
        held.done(&p(0), 1, 0, 1, &consumer);
        assert_eq!(consumer.take(), [], "the sink still holds it");
        assert!(held
            .get(&p(0))
            .is_some_and(|s| s.is_paused_for(Reason::SinkDown)));
        held.sink_waiting(&p(0), 0, &consumer);
        assert_eq!(consumer.take(), [("resume", 0)]);
    }

    #[test]
    fn a_partition_waiting_for_a_writer_schema_is_paused_until_it_has_it() {
        let consumer = Consumer::default();
        let mut held = partitions(10, usize::MAX, usize::MAX);
        held.assign(p(0), 1, &consumer);
        held.schema_waiting(&p(0), true, &consumer);
        held.schema_waiting(&p(0), true, &consumer);
        assert_eq!(consumer.take(), [("pause", 0)], "paused once");
        held.sink_waiting(&p(0), 1, &consumer);
        held.schema_waiting(&p(0), false, &consumer);
        assert_eq!(consumer.take(), [], "the sink still holds it");
        held.sink_waiting(&p(0), 0, &consumer);
        assert_eq!(consumer.take(), [("resume", 0)]);
        // Handed over while waiting: resumed for its next owner, nothing left waiting.
        held.schema_waiting(&p(0), true, &consumer);
        assert_eq!(consumer.take(), [("pause", 0)]);
        assert!(held.hand_over(&p(0), &consumer).is_some());
        assert_eq!(consumer.take(), [("resume", 0)]);
    }

    #[test]
    fn an_acknowledgement_from_an_earlier_assignment_moves_nothing() {
        let consumer = Consumer::default();
        let mut held = partitions(2, usize::MAX, usize::MAX);
        held.assign(p(0), 1, &consumer);
        held.arrived(&p(0), 5, 100, &consumer);
        held.arrived(&p(0), 6, 100, &consumer);
        assert_eq!(consumer.take(), [("pause", 0)]);
        // Handed over and assigned again: a new lease, a fresh state.
        assert!(held.hand_over(&p(0), &consumer).is_some());
        assert_eq!(
            consumer.take(),
            [("resume", 0)],
            "resumed for its next owner"
        );
        assert_eq!(held.bytes(), 0, "its bytes went with it");
        held.assign(p(0), 2, &consumer);
        held.arrived(&p(0), 5, 100, &consumer);
        assert_eq!(
            held.done(&p(0), 1, 5, 100, &consumer),
            None,
            "consumed under lease 1"
        );
        assert_eq!(held.bytes(), 100);
        assert_eq!(held.done(&p(0), 2, 5, 100, &consumer), Some(6));
        assert_eq!(held.bytes(), 0);
    }

    #[test]
    fn a_message_of_a_partition_not_held_is_not_counted() {
        let consumer = Consumer::default();
        let mut held = partitions(1, 1, 1);
        assert!(!held.arrived(&p(7), 0, 100, &consumer));
    }

    #[test]
    fn a_partitions_lag_series_follow_its_assignment_and_its_oldest_message() {
        let gauges = Arc::new(PartitionGauges::default());
        let mut held: Partitions<()> = Partitions::new(
            Budget {
                messages: 10,
                bytes: 1_000,
                total_bytes: 10_000,
            },
            gauges.clone(),
        );
        let consumer = Consumer::default();
        held.assign(p(0), 1, &consumer);
        held.assign(p(1), 2, &consumer);
        let at = Instant::now();
        let long_ago = Some(1_000); // one second after the epoch: decades old
        held.arrived(&p(0), 5, 10, &consumer);
        held.note_arrival(&p(0), 5, long_ago, at);
        held.arrived(&p(0), 6, 10, &consumer);
        held.note_arrival(&p(0), 6, None, at);
        let lag0 = |g: &PartitionGauges| g.lags().into_iter().find(|l| l.partition == p(0));
        assert!(lag0(&gauges).is_some_and(|l| l.seconds > 1_000_000.0));
        // The oldest done: the next one (no timestamp) is the oldest, of unknown age.
        held.done(&p(0), 1, 5, 10, &consumer);
        assert_eq!(lag0(&gauges).map(|l| l.seconds), Some(0.0));
        assert!(gauges.oldest_in_flight() >= 0.0);
        held.done(&p(0), 1, 6, 10, &consumer);
        assert_eq!(gauges.oldest_in_flight(), 0.0);
        held.hand_over(&p(1), &consumer);
        assert_eq!(gauges.partitions(), vec![p(0)]);
        assert_eq!(held.bytes(), 0);
        assert_eq!(consumer.take(), []);
        assert!(held.hand_over(&p(7), &consumer).is_none());
    }
}
