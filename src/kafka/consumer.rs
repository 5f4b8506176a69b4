//! The group consumer: a thread that polls, and the events it hands the worker.
//!
//! librdkafka runs rebalance callbacks inside `poll`. Polling on a thread of its own lets
//! a revocation wait for the worker: the callback sends [`GroupEvent::Revoked`] and blocks
//! until the worker has drained the partitions (or its drain deadline passed) and stored
//! their final offsets, while the worker keeps running. A worker that does not answer in
//! time has the revoked partitions' leases ended by the callback itself, so their work in
//! flight is fenced before the partitions are given up. The thread never stops polling
//! for the worker's sake (the worker pauses partitions instead), so
//! `max.poll.interval.ms` is not exceeded however slow translation is.
//!
//! The hand-off of a revocation waits for room in the worker's queue up to the drain
//! deadline too: a worker too stuck to take it has the leases ended by the callback in
//! the same way, counted in `revocations_unanswered_total`.
//!
//! Liveness: the thread beats [`Health::poll_thread`] on every turn, and while it waits
//! for room in the worker's queue (whether the worker is stuck is the worker's own
//! heartbeat's to say); a revocation, which may legitimately wait for the drain, says
//! until when. Readiness: a fatal error or `AllBrokersDown` returned by a poll is told
//! to [`Health`]; the [`probe`](super::probe) thread notices hung brokers and recovery.
//!
//! Offsets are committed by librdkafka's auto-commit (and, for revoked partitions, when
//! they are unassigned), but only offsets the worker stored
//! (`enable.auto.offset.store=false`): a partition's watermark, below which every message
//! has its outcome published.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::BorrowedMessage;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::health::{Client, Health};
use crate::lease::Held;
use crate::message::{InboundMessage, SourceRef};
use crate::schedule::PartitionId;

use super::queued::{QueuedBytes, Slot};

/// Consumed messages and rebalances, in the order they happened.
#[derive(Debug)]
pub enum GroupEvent {
    /// A consumed message, with its bytes' place in the hand-off queue
    /// ([`super::queued`]): dropping the slot gives them back.
    Message(InboundMessage, Slot),
    Assigned(Vec<PartitionId>),
    /// The partitions are being taken away. The worker answers on `handed_over` once it
    /// has finished (or fenced) their in-flight messages and stored their offsets; the
    /// group waits for the answer, up to the drain deadline.
    Revoked {
        partitions: Vec<PartitionId>,
        handed_over: std::sync::mpsc::SyncSender<()>,
    },
}

/// Waits up to the given time for every send of the producer to be reported.
pub type FlushProducer = Box<dyn Fn(Duration) -> KafkaResult<()> + Send + Sync>;

/// Events waiting for the worker; when full, the poll thread waits for it.
pub const EVENT_QUEUE: usize = 256;
/// How long one poll waits for a message, which is also how quickly the thread notices
/// that it should stop.
const POLL_WAIT: Duration = Duration::from_millis(100);
/// How much longer than the worker's drain deadline a revocation waits for its answer:
/// time to store offsets and answer.
pub const REVOKE_ANSWER_SLACK: Duration = Duration::from_secs(5);
/// Time for a flush of the producer before partitions are handed over.
const REVOKE_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the poll thread beats while it waits for room in the worker's queue.
const WAITING_BEAT: Duration = Duration::from_secs(1);

/// Sends rebalances to the worker and waits for revocations to be drained; tells
/// `/readyz` when the group has been joined.
pub struct GroupContext {
    health: Arc<Health>,
    /// Weak, so that the poll thread holds the only strong sender: when that thread ends
    /// (or panics), the channel closes and the worker stops with an error instead of
    /// waiting for events that will never come.
    events: mpsc::WeakSender<GroupEvent>,
    /// Flushed before partitions are handed over, so that their next owner restores
    /// every dedup entry and sees every outcome written so far.
    flush_producer: FlushProducer,
    /// The worker's drain deadline: how long a revocation waits for room in the queue.
    revoke_send_wait: Duration,
    /// The worker's drain deadline, plus time to store offsets.
    revoke_wait: Duration,
    /// The worker's runtime: the poll thread waits on the queue through it, with
    /// timeouts and beats.
    runtime: tokio::runtime::Handle,
    /// The worker's leases, ended here when the worker does not answer in time.
    leases: Held,
}

impl ClientContext for GroupContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        super::logs::forward(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        super::client_error(&self.health, Client::Consumer, &error, reason);
    }
}

/// How a hand-off to the worker went.
#[derive(Debug, PartialEq, Eq)]
enum Handed {
    Taken,
    /// The worker (or the poll thread) is gone.
    Gone,
    /// No room in the worker's queue before the deadline.
    TimedOut,
}

/// Hands `event` to the worker, waiting for room in its queue up to `deadline` (for
/// ever without one), beating `health`'s poll thread meanwhile.
fn hand(
    events: &mpsc::Sender<GroupEvent>,
    runtime: &tokio::runtime::Handle,
    health: &Health,
    event: GroupEvent,
    deadline: Option<Instant>,
) -> Handed {
    let event = match events.try_send(event) {
        Ok(()) => return Handed::Taken,
        Err(mpsc::error::TrySendError::Closed(_)) => return Handed::Gone,
        Err(mpsc::error::TrySendError::Full(event)) => event,
    };
    runtime.block_on(async {
        loop {
            let wait = match deadline {
                None => WAITING_BEAT,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Handed::TimedOut;
                    }
                    left.min(WAITING_BEAT)
                }
            };
            match tokio::time::timeout(wait, events.reserve()).await {
                Ok(Ok(permit)) => {
                    permit.send(event);
                    return Handed::Taken;
                }
                Ok(Err(_)) => return Handed::Gone,
                Err(_) => health.poll_thread.beat(),
            }
        }
    })
}

impl GroupContext {
    /// Hands an event to the worker, waiting up to `deadline` for room.
    fn send(&self, event: GroupEvent, deadline: Option<Instant>) -> Handed {
        match self.events.upgrade() {
            Some(events) => hand(&events, &self.runtime, &self.health, event, deadline),
            None => Handed::Gone,
        }
    }

    /// Hands a revocation to the worker and waits for it to drain the partitions,
    /// each up to its deadline; past one, ends their leases itself. Then flushes the
    /// producer, so the next owner sees every outcome and dedup entry written so far.
    fn revoke(&self, tpl: &TopicPartitionList) {
        let (handed_over, drained) = std::sync::mpsc::sync_channel(1);
        let revoked = GroupEvent::Revoked {
            partitions: partition_ids(tpl),
            handed_over,
        };
        // The poll thread waits here, on purpose, up to these deadlines: not stuck.
        let now = Instant::now();
        let send_by = now + self.revoke_send_wait;
        self.health
            .poll_thread
            .waiting_until(send_by + self.revoke_wait + REVOKE_FLUSH_TIMEOUT);
        match self.send(revoked, Some(send_by)) {
            // A worker that is gone (shutting down) has nothing more to drain.
            Handed::Gone => {}
            Handed::TimedOut => self.unanswered(tpl, "did not take the revocation in time"),
            Handed::Taken => {
                if drained.recv_timeout(self.revoke_wait).is_err() {
                    self.unanswered(tpl, "did not drain the revoked partitions in time");
                }
            }
        }
        if let Err(e) = (self.flush_producer)(REVOKE_FLUSH_TIMEOUT) {
            warn!(error = %e, "sends not all acknowledged before handing partitions over");
        }
        self.health.poll_thread.beat();
    }

    /// The worker did not answer a revocation in time: whatever of the partitions is
    /// still in flight must publish and apply nothing once they are someone else's.
    fn unanswered(&self, tpl: &TopicPartitionList, what: &str) {
        let fenced = self.leases.end(&partition_ids(tpl));
        crate::meters::revocations_unanswered().increment(1);
        warn!(
            partitions = %describe(tpl), leases_ended = fenced,
            "the worker {what}; the revoked partitions' leases are ended here"
        );
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        info!(partitions = %describe(tpl), "partitions revoked");
        self.revoke(tpl);
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                info!(partitions = %describe(tpl), "partitions assigned");
                // A worker that is gone ignores it.
                self.send(GroupEvent::Assigned(partition_ids(tpl)), None);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => warn!(error = %e, "rebalance failed"),
        }
        if let Ok(assignment) = consumer.assignment() {
            self.health.rebalanced(assignment.count());
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => debug!(offsets = %describe(offsets), "offsets committed"),
            // Nothing to commit is not worth a warning.
            Err(rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::NoOffset,
            )) => {}
            Err(e) => warn!(error = %e, offsets = %describe(offsets), "offset commit failed"),
        }
    }
}

fn partition_ids(tpl: &TopicPartitionList) -> Vec<PartitionId> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

/// `topic[partition]@offset, ...` for logs.
fn describe(tpl: &TopicPartitionList) -> String {
    tpl.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => format!("{}[{}]@{o}", e.topic(), e.partition()),
            _ => format!("{}[{}]", e.topic(), e.partition()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The subscribed consumer, polled by its own thread. [`GroupConsumer::close`] leaves the
/// group.
pub struct GroupConsumer {
    consumer: Arc<BaseConsumer<GroupContext>>,
    stop: Arc<AtomicBool>,
    poller: std::thread::JoinHandle<()>,
    probe: super::probe::Probe,
}

/// What the worker needs to create the consumer.
pub struct Settings<'a> {
    pub properties: &'a BTreeMap<String, String>,
    pub group: &'a str,
    pub topics: &'a [String],
    pub health: Arc<Health>,
    /// Flushes the worker's producer, before partitions are handed over.
    pub flush_producer: FlushProducer,
    /// How long a revocation waits for the worker to drain.
    pub revoke_wait: Duration,
    /// The worker's leases, for a revocation it does not answer in time.
    pub leases: Held,
}

impl GroupConsumer {
    /// Creates the consumer, subscribes, and starts polling. Settings the no-loss
    /// guarantee depends on are fixed.
    pub fn start(settings: Settings<'_>) -> KafkaResult<(Self, mpsc::Receiver<GroupEvent>)> {
        let mut config = super::client_config(
            settings.properties,
            &[
                ("group.id", settings.group),
                ("enable.auto.commit", "true"),
                ("enable.auto.offset.store", "false"),
                ("partition.assignment.strategy", "cooperative-sticky"),
            ],
        );
        // A new group starts at the beginning: requests produced before the first worker
        // started are work, not history. Overridable, unlike the settings above.
        if !settings.properties.contains_key("auto.offset.reset") {
            config.set("auto.offset.reset", "earliest");
        }
        // Prefetch bounded in bytes (docs/memory.md), unless the user sets it.
        super::budgets::apply(
            &mut config,
            &super::budgets::consumer_defaults(settings.properties),
        );
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            KafkaError::ClientCreation(format!("the consumer needs a tokio runtime: {e}"))
        })?;
        let (events, received) = mpsc::channel(EVENT_QUEUE);
        let health = settings.health;
        let context = GroupContext {
            health: health.clone(),
            events: events.downgrade(),
            flush_producer: settings.flush_producer,
            revoke_send_wait: settings.revoke_wait,
            revoke_wait: settings.revoke_wait + REVOKE_ANSWER_SLACK,
            runtime: runtime.clone(),
            leases: settings.leases,
        };
        let consumer: BaseConsumer<GroupContext> = config.create_with_context(context)?;
        let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        let consumer = Arc::new(consumer);
        let stop = Arc::new(AtomicBool::new(false));
        let poller = {
            let consumer = consumer.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("kafka-poll".into())
                .spawn(move || poll(&consumer, &events, &runtime, &stop, &Arc::default()))
                .map_err(|e| {
                    KafkaError::ClientCreation(format!("cannot start the poll thread: {e}"))
                })?
        };
        // Asks for the first input topic's metadata: small, and known to exist.
        let probed = {
            let consumer = consumer.clone();
            let topic = settings.topics.first().cloned();
            move |timeout| {
                consumer
                    .client()
                    .fetch_metadata(topic.as_deref(), timeout)
                    .map(|_| ())
            }
        };
        let probe = super::probe::Probe::start(Box::new(probed), health).map_err(|e| {
            KafkaError::ClientCreation(format!("cannot start the broker probe thread: {e}"))
        })?;
        Ok((
            Self {
                consumer,
                stop,
                poller,
                probe,
            },
            received,
        ))
    }

    /// A reader of the held partitions' lag in messages, for another thread.
    pub fn lag_reader(&self) -> super::lag::LagReader {
        super::lag::LagReader {
            consumer: Arc::downgrade(&self.consumer),
        }
    }

    /// Stores `position` (where a new owner of the partition starts) for the next commit.
    /// A partition revoked meanwhile cannot be stored to; its new owner re-reads from the
    /// last commit.
    pub fn store_position(&self, topic: &str, partition: i32, position: i64) {
        let mut tpl = TopicPartitionList::new();
        if let Err(e) = tpl.add_partition_offset(topic, partition, Offset::Offset(position)) {
            warn!(error = %e, "could not build an offset list");
            return;
        }
        if let Err(e) = self.consumer.store_offsets(&tpl) {
            debug!(error = %e, topic, partition, "offset not stored (partition revoked?)");
        }
    }

    /// Stops fetching a partition; what was fetched and not yet polled is discarded by
    /// librdkafka and fetched again on resume.
    pub fn pause(&self, topic: &str, partition: i32) {
        self.pause_or_resume(topic, partition, true);
    }

    pub fn resume(&self, topic: &str, partition: i32) {
        self.pause_or_resume(topic, partition, false);
    }

    fn pause_or_resume(&self, topic: &str, partition: i32, pause: bool) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        let result = if pause {
            self.consumer.pause(&tpl)
        } else {
            self.consumer.resume(&tpl)
        };
        if let Err(e) = result {
            warn!(error = %e, topic, partition, pause, "could not pause or resume a partition");
        }
    }

    /// Commits the stored offsets now, waiting for the answer up to `timeout` (a
    /// coordinator that does not answer would hold a shutdown for librdkafka's request
    /// timeout); past it the commit goes on in the background while the process ends.
    pub async fn commit_within(&self, timeout: Duration) {
        let consumer = self.consumer.clone();
        let committed = within(timeout, "kafka-commit", move || {
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                debug!(error = %e, "commit: nothing committed");
            }
        });
        if committed.await.is_none() {
            warn!(timeout = ?timeout, "final commit not answered in time; the offsets auto-committed so far stand");
        }
    }

    /// Stops polling and leaves the group. `events` is dropped first, so a revocation
    /// during the close does not wait for a worker that is no longer listening.
    pub async fn close(self, events: mpsc::Receiver<GroupEvent>) -> anyhow::Result<()> {
        self.close_within(events, Duration::MAX).await
    }

    /// [`GroupConsumer::close`], waiting up to `timeout`: past it, the process goes on
    /// (to its end) while librdkafka leaves the group in the background; if it never
    /// does, the group notices the session timeout and hands the partitions over.
    pub async fn close_within(
        self,
        events: mpsc::Receiver<GroupEvent>,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        // Stop first, so the poll thread, seeing the worker gone, knows it was asked to.
        self.stop.store(true, Ordering::Release);
        drop(events);
        let Self {
            consumer,
            poller,
            probe,
            ..
        } = self;
        // The poll and probe threads hold the other references; the consumer closes when
        // all are gone, which blocks while librdkafka leaves the group.
        let closed = within(timeout, "kafka-close", move || {
            probe.stop();
            drop(consumer);
            poller.join()
        });
        match closed.await {
            Some(joined) => joined.map_err(|_| anyhow::anyhow!("the poll thread panicked")),
            None => {
                warn!(timeout = ?timeout, "the consumer did not leave the group in time; the group hands its partitions over after the session timeout");
                Ok(())
            }
        }
    }
}

/// Runs `work` on a thread of its own and waits up to `timeout` for it; `None` when it
/// did not finish in time (it goes on, detached: it does not keep the process alive).
async fn within<R: Send + 'static>(
    timeout: Duration,
    name: &str,
    work: impl FnOnce() -> R + Send + 'static,
) -> Option<R> {
    let (done, finished) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _ = done.send(work());
        });
    if let Err(e) = spawned {
        warn!(error = %e, thread = name, "cannot start a thread");
        return None;
    }
    tokio::time::timeout(timeout, finished).await.ok()?.ok()
}

/// The poll thread: hands every message and rebalance to the worker, in order. It owns
/// the only strong sender of the events: however it ends (asked to stop, the worker gone,
/// a panic), the worker's receiver sees the channel close.
fn poll(
    consumer: &BaseConsumer<GroupContext>,
    events: &mpsc::Sender<GroupEvent>,
    runtime: &tokio::runtime::Handle,
    stop: &AtomicBool,
    queued: &Arc<QueuedBytes>,
) {
    /// Says so when the thread ends without having been asked to.
    struct Ended<'a>(&'a AtomicBool);
    impl Drop for Ended<'_> {
        fn drop(&mut self) {
            if !self.0.load(Ordering::Acquire) {
                error!(
                    panicked = std::thread::panicking(),
                    "the Kafka poll thread ended unasked; the worker stops"
                );
            }
        }
    }
    let _ended = Ended(stop);
    let health = &consumer.context().health;
    while !stop.load(Ordering::Acquire) {
        health.poll_thread.beat();
        let event = match consumer.poll(POLL_WAIT) {
            None => continue,
            Some(Ok(record)) => {
                let message = to_inbound(&record);
                // Waiting for the worker to take messages is not being stuck.
                let give_up = || {
                    health.poll_thread.beat();
                    stop.load(Ordering::Acquire) || events.is_closed()
                };
                let Some(slot) = queued.reserve(message.size(), give_up) else {
                    break; // stopping: the message is left uncommitted
                };
                GroupEvent::Message(message, slot)
            }
            Some(Err(e)) => {
                let reason = consumer
                    .client()
                    .fatal_error()
                    .map(|(_, reason)| reason)
                    .unwrap_or_default();
                super::client_error(health, Client::Consumer, &e, &reason);
                continue;
            }
        };
        if hand(events, runtime, health, event, None) == Handed::Gone {
            break; // the worker is gone
        }
    }
}

/// Copies a record out of the client's buffers, byte for byte: header names are read
/// through librdkafka directly ([`super::headers`]), never through rdkafka's accessors,
/// which panic on a name that is not UTF-8.
pub fn to_inbound(message: &BorrowedMessage<'_>) -> InboundMessage {
    let headers = super::headers::read(message);
    InboundMessage {
        source: SourceRef {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
        },
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().map(<[u8]>::to_vec),
        headers,
        timestamp_ms: message.timestamp().to_millis(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(
        events: &mpsc::Sender<GroupEvent>,
        runtime: &tokio::runtime::Runtime,
    ) -> GroupContext {
        GroupContext {
            health: Arc::new(Health::default()),
            events: events.downgrade(),
            flush_producer: Box::new(|_| Ok(())),
            revoke_send_wait: Duration::from_secs(1),
            revoke_wait: Duration::from_secs(1),
            runtime: runtime.handle().clone(),
            leases: Held::default(),
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn the_worker_sees_the_poll_thread_end_however_it_ends() {
        let runtime = runtime();
        for panics in [false, true] {
            let (events, mut received) = mpsc::channel(1);
            let context = context(&events, &runtime);
            // The poll thread owns the only strong sender.
            let poller = std::thread::spawn(move || {
                let _events = events;
                if panics {
                    panic!("the poll thread panics");
                }
            });
            assert_eq!(poller.join().is_err(), panics);
            // The context (owned by the consumer) lives on, yet the channel is closed:
            // the worker's receive returns nothing, and it stops with an error.
            assert!(received.blocking_recv().is_none());
            assert_eq!(
                context.send(GroupEvent::Assigned(Vec::new()), None),
                Handed::Gone
            );
        }
    }

    #[test]
    fn rebalance_events_reach_the_worker_while_the_poll_thread_runs() {
        let runtime = runtime();
        let (events, mut received) = mpsc::channel(1);
        let context = context(&events, &runtime);
        assert_eq!(
            context.send(GroupEvent::Assigned(vec![("t".into(), 0)]), None),
            Handed::Taken
        );
        assert!(matches!(
            received.blocking_recv(),
            Some(GroupEvent::Assigned(p)) if p == [("t".to_string(), 0)]
        ));
    }

    fn revoked_tpl() -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("t", 0);
        tpl
    }

    #[test]
    fn a_revocation_the_worker_cannot_take_ends_the_leases_at_the_drain_deadline() {
        let runtime = runtime();
        let (events, _received) = mpsc::channel(1);
        let mut context = context(&events, &runtime);
        context.revoke_send_wait = Duration::from_millis(200);
        let lease = crate::lease::Lease::new(1);
        context.leases.insert(("t".into(), 0), lease.clone());
        // The worker is stuck: its queue is full and nobody reads it.
        assert_eq!(
            context.send(GroupEvent::Assigned(Vec::new()), None),
            Handed::Taken
        );

        context.revoke(&revoked_tpl());
        assert!(!lease.is_held(), "fenced by the callback");
        assert!(context.leases.get(&("t".into(), 0)).is_none());
        assert_eq!(
            context
                .health
                .poll_thread
                .stuck_at(Instant::now(), Duration::ZERO),
            None,
            "the poll thread beat when it went on"
        );
    }

    #[test]
    fn a_revocation_the_worker_answers_leaves_the_leases_to_the_worker() {
        let runtime = runtime();
        let (events, mut received) = mpsc::channel(1);
        let context = context(&events, &runtime);
        let lease = crate::lease::Lease::new(1);
        context.leases.insert(("t".into(), 0), lease.clone());
        let worker = std::thread::spawn(move || match received.blocking_recv() {
            Some(GroupEvent::Revoked {
                partitions,
                handed_over,
            }) => {
                assert_eq!(partitions, [("t".to_string(), 0)]);
                handed_over.send(()).unwrap();
            }
            other => panic!("expected a revocation, got {other:?}"),
        });
        context.revoke(&revoked_tpl());
        worker.join().unwrap();
        assert!(lease.is_held(), "the worker ends it when it hands over");
    }
}
