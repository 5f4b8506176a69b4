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
//! Offsets are committed by librdkafka's auto-commit (and, for revoked partitions, when
//! they are unassigned), but only offsets the worker stored
//! (`enable.auto.offset.store=false`): a partition's watermark, below which every message
//! has its outcome published.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::message::BorrowedMessage;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::health::Health;
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
    /// The worker's drain deadline, plus time to store offsets.
    revoke_wait: Duration,
    /// The worker's leases, ended here when the worker does not answer in time.
    leases: Held,
}

impl ClientContext for GroupContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        super::logs::forward(level, facility, message);
    }
}

impl GroupContext {
    /// Hands an event to the worker; false when there is no worker (or no poll thread)
    /// any more.
    fn send(&self, event: GroupEvent) -> bool {
        self.events
            .upgrade()
            .is_some_and(|events| events.blocking_send(event).is_ok())
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        info!(partitions = %describe(tpl), "partitions revoked");
        let (handed_over, drained) = std::sync::mpsc::sync_channel(1);
        let revoked = GroupEvent::Revoked {
            partitions: partition_ids(tpl),
            handed_over,
        };
        // A worker that is gone (shutting down) has nothing more to drain.
        if self.send(revoked) && drained.recv_timeout(self.revoke_wait).is_err() {
            // Whatever of them is still in flight must publish and apply nothing once
            // the partitions are someone else's.
            let fenced = self.leases.end(&partition_ids(tpl));
            warn!(
                partitions = %describe(tpl), leases_ended = fenced,
                "the worker did not drain the revoked partitions in time; their leases are ended here"
            );
        }
        if let Err(e) = (self.flush_producer)(REVOKE_FLUSH_TIMEOUT) {
            warn!(error = %e, "sends not all acknowledged before handing partitions over");
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                info!(partitions = %describe(tpl), "partitions assigned");
                // A worker that is gone ignores it.
                self.send(GroupEvent::Assigned(partition_ids(tpl)));
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
        let (events, received) = mpsc::channel(EVENT_QUEUE);
        let context = GroupContext {
            health: settings.health,
            events: events.downgrade(),
            flush_producer: settings.flush_producer,
            revoke_wait: settings.revoke_wait + REVOKE_ANSWER_SLACK,
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
                .spawn(move || poll(&consumer, &events, &stop, &Arc::default()))
                .map_err(|e| {
                    rdkafka::error::KafkaError::ClientCreation(format!(
                        "cannot start the poll thread: {e}"
                    ))
                })?
        };
        Ok((
            Self {
                consumer,
                stop,
                poller,
            },
            received,
        ))
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

    /// Commits the stored offsets now, waiting for the answer.
    pub fn commit(&self) {
        if let Err(e) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            debug!(error = %e, "commit: nothing committed");
        }
    }

    /// Stops polling and leaves the group. `events` is dropped first, so a revocation
    /// during the close does not wait for a worker that is no longer listening.
    pub async fn close(self, events: mpsc::Receiver<GroupEvent>) -> anyhow::Result<()> {
        // Stop first, so the poll thread, seeing the worker gone, knows it was asked to.
        self.stop.store(true, Ordering::Release);
        drop(events);
        let Self {
            consumer, poller, ..
        } = self;
        // The poll thread holds the other reference; the consumer closes when both are
        // gone, which blocks while librdkafka leaves the group.
        tokio::task::spawn_blocking(move || {
            drop(consumer);
            poller.join()
        })
        .await?
        .map_err(|_| anyhow::anyhow!("the poll thread panicked"))
    }
}

/// The poll thread: hands every message and rebalance to the worker, in order. It owns
/// the only strong sender of the events: however it ends (asked to stop, the worker gone,
/// a panic), the worker's receiver sees the channel close.
fn poll(
    consumer: &BaseConsumer<GroupContext>,
    events: &mpsc::Sender<GroupEvent>,
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
    while !stop.load(Ordering::Acquire) {
        let event = match consumer.poll(POLL_WAIT) {
            None => continue,
            Some(Ok(record)) => {
                let message = to_inbound(&record);
                let give_up = || stop.load(Ordering::Acquire) || events.is_closed();
                let Some(slot) = queued.reserve(message.size(), give_up) else {
                    break; // stopping: the message is left uncommitted
                };
                GroupEvent::Message(message, slot)
            }
            Some(Err(e)) => {
                warn!(error = %e, "consumer error");
                continue;
            }
        };
        if events.blocking_send(event).is_err() {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(events: &mpsc::Sender<GroupEvent>) -> GroupContext {
        GroupContext {
            health: Arc::new(Health::default()),
            events: events.downgrade(),
            flush_producer: Box::new(|_| Ok(())),
            revoke_wait: Duration::from_secs(1),
            leases: Held::default(),
        }
    }

    #[test]
    fn the_worker_sees_the_poll_thread_end_however_it_ends() {
        for panics in [false, true] {
            let (events, mut received) = mpsc::channel(1);
            let context = context(&events);
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
            assert!(!context.send(GroupEvent::Assigned(Vec::new())));
        }
    }

    #[test]
    fn rebalance_events_reach_the_worker_while_the_poll_thread_runs() {
        let (events, mut received) = mpsc::channel(1);
        let context = context(&events);
        assert!(context.send(GroupEvent::Assigned(vec![("t".into(), 0)])));
        assert!(matches!(
            received.blocking_recv(),
            Some(GroupEvent::Assigned(p)) if p == [("t".to_string(), 0)]
        ));
    }
}
