//! Publishing outcome events, dead letters and dedup changelog records.
//!
//! The producer is idempotent with `acks=all`, so a retried send cannot duplicate or
//! reorder events of one key. The sends of one message are enqueued in order under one
//! [`Sends`]; once it is sealed and librdkafka has reported every one of them, it comes
//! back, once, on the [`Acknowledged`] channel, with the first failure if there was one.
//! The worker stores the message's offset only then. Counting deliveries in the delivery
//! callback, rather than awaiting a future per send, keeps the cost per message to one
//! hand-off from librdkafka's polling thread.
//!
//! A dead letter always fits and is never a reason to stop: its size is computed as
//! librdkafka computes it, and what would not fit in `message.max.bytes` (less a margin)
//! is left out, the payload first, then the record key, then the original headers, each
//! with a header saying so and where the original is. If it still cannot be sent (not
//! enqueued, or its delivery failed), a minimal one follows (the error and source
//! headers only), and if that fails too, it is logged and counted in
//! `dead_letters_failed_total{code}`: the message keeps its `rejected` outcome and its
//! offset is committed. Outcome and changelog sends, by contrast, must not be lost: their
//! failures come back to the worker, which stops.
//!
//! A send that finds librdkafka's queue full waits for room (the queue empties as the
//! brokers acknowledge, on librdkafka's own thread); meanwhile [`Health::queue_full`]
//! holds, so `/readyz` fails once it has lasted `READINESS_GRACE` (the worker's loop,
//! waiting, still counts as turning for liveness). On shutdown the worker
//! stops waiting ([`Publisher::stop_waiting_for_room`]): a send that finds the queue full
//! then fails at once, and its message is left to the next owner.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::util::{IntoOpaque, Timeout};
use rdkafka::{ClientContext, Message};
use tokio::sync::mpsc;
use tracing::{error, warn};

use crate::avro::outcome::OutcomeEncoding;
use crate::health::{Client, Health};
use crate::message::{InboundMessage, SourceRef};
use crate::outcome::{Failure, OutcomeEvent};

/// Headers a dead letter carries beside the original headers.
pub mod dlq_headers {
    /// The prefix of every header this service writes; an original header that claims it
    /// is never copied into a dead letter, so every header with it is this service's.
    pub const PREFIX: &str = "nephoran.";
    pub const ERROR_CODE: &str = "nephoran.error.code";
    pub const ERROR_MESSAGE: &str = "nephoran.error.message";
    pub const SOURCE_TOPIC: &str = "nephoran.source.topic";
    pub const SOURCE_PARTITION: &str = "nephoran.source.partition";
    pub const SOURCE_OFFSET: &str = "nephoran.source.offset";
    pub const IDEMPOTENCY_KEY: &str = "nephoran.idempotency.key";
    /// The `event_id` of the message's `dead_lettered` outcome event: the same for every
    /// copy of the dead letter of one processing (a redelivery sends it again), so a
    /// consumer of the dead-letter topic drops the copies by it.
    pub const EVENT_ID: &str = "nephoran.event.id";
    /// Set when the original payload was left out (too large to copy, or a minimal dead
    /// letter); says why and where to find it.
    pub const PAYLOAD_OMITTED: &str = "nephoran.payload.omitted";
    /// Set when the original record key was left out; says why and where to find it.
    pub const KEY_OMITTED: &str = "nephoran.key.omitted";
    /// Set when original headers were left out: all of them when they did not fit (or in
    /// a minimal dead letter), else those whose names are not printable UTF-8 (a consumer
    /// of the dead-letter topic could not read them; rdkafka's own accessors panic) or
    /// that claim this service's `nephoran.` prefix (they could pass for its own). Says
    /// which (by index and hex name) and where the original is.
    pub const HEADERS_OMITTED: &str = "nephoran.headers.omitted";
}

/// librdkafka's worst-case overhead of one record beside its key, value and headers
/// (`RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD`, 36 bytes), rounded up.
const RECORD_OVERHEAD_BYTES: usize = 64;
/// Overhead of one header beside its name and value: two varint lengths.
const HEADER_OVERHEAD_BYTES: usize = 10;
/// Kept free below `message.max.bytes`: the batch that carries the record, and any
/// difference between this count and the broker's.
const DEAD_LETTER_MARGIN_BYTES: usize = 1024;
/// Omitted headers named one by one in the `nephoran.headers.omitted` note; the rest are
/// counted.
const OMITTED_NAMED: usize = 8;

/// The sends of one message, acknowledged as one, and what the sender wants back with
/// them (`of`).
pub struct Sends<M> {
    /// Sends not yet reported by librdkafka, plus one until the sender seals it.
    unreported: AtomicUsize,
    failure: Mutex<Option<PublishError>>,
    /// The message's dead letter, if it has one: its failures are not in `failure`.
    dead_letter: Mutex<DeadLetter>,
    pub of: M,
}

/// Where a message's dead letter stands.
#[derive(Default)]
struct DeadLetter {
    /// The minimal dead letter to send if the full one fails; taken when it is sent.
    minimal: Option<Minimal>,
    /// What it is about, for the log line when no dead letter could be written.
    about: Option<Minimal>,
    /// The latest failure of a dead-letter send, until it is settled.
    failed: Option<KafkaError>,
}

/// A dead letter with no key, payload or original headers: the error and source headers.
#[derive(Clone)]
struct Minimal {
    code: &'static str,
    source: SourceRef,
    idempotency_key: String,
    headers: Vec<(&'static str, String)>,
}

impl<M> Sends<M> {
    pub fn new(of: M) -> Arc<Self> {
        Arc::new(Self {
            unreported: AtomicUsize::new(1),
            failure: Mutex::new(None),
            dead_letter: Mutex::new(DeadLetter::default()),
            of,
        })
    }

    fn dead_letter(&self) -> std::sync::MutexGuard<'_, DeadLetter> {
        self.dead_letter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// `Ok` when every send was acknowledged by the broker; else the first failure.
    pub fn result(&self) -> Result<(), PublishError> {
        match self
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            None => Ok(()),
            Some(failure) => Err(failure),
        }
    }

    fn fail(&self, failure: PublishError) {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(failure);
    }

    /// Counts one report (or the seal); the last one hands the sends back.
    fn reported(self: Arc<Self>, acknowledged: &mpsc::UnboundedSender<Arc<Self>>) {
        if self.unreported.fetch_sub(1, Ordering::AcqRel) == 1 {
            // A worker that is gone no longer waits for it.
            let _ = acknowledged.send(self);
        }
    }
}

/// Sealed [`Sends`] whose every send has been reported. Unbounded, but each message's
/// sends come back at most once, so it never holds more than the messages consumed and
/// not yet done, which the partition buffers bound.
pub type Acknowledged<M> = mpsc::UnboundedReceiver<Arc<Sends<M>>>;

/// What a record carries through librdkafka: the sends it counts in, if any, and
/// whether it is a dead letter (whose failure is not the message's).
pub struct Ticket<M> {
    sends: Option<Arc<Sends<M>>>,
    dead_letter: bool,
}

/// The bit of a ticket's pointer that marks a dead letter: an `Arc`'s pointer is aligned
/// to at least its counters' 8 bytes, so its lowest bit is free.
const DEAD_LETTER_BIT: usize = 1;

impl<M: Send + Sync> IntoOpaque for Ticket<M> {
    fn into_ptr(self) -> *mut c_void {
        match self.sends {
            None => std::ptr::null_mut(),
            Some(sends) => {
                let mark = if self.dead_letter { DEAD_LETTER_BIT } else { 0 };
                Arc::into_raw(sends).map_addr(|a| a | mark) as *mut c_void
            }
        }
    }

    unsafe fn from_ptr(ptr: *mut c_void) -> Self {
        if ptr.is_null() {
            return Self {
                sends: None,
                dead_letter: false,
            };
        }
        let dead_letter = ptr.addr() & DEAD_LETTER_BIT != 0;
        let ptr = ptr.map_addr(|a| a & !DEAD_LETTER_BIT) as *const Sends<M>;
        Self {
            // SAFETY: made by `into_ptr` from an `Arc<Sends<M>>` (its mark cleared
            // again), and librdkafka hands each record's opaque back exactly once.
            sends: Some(unsafe { Arc::from_raw(ptr) }),
            dead_letter,
        }
    }
}

/// Counts delivery reports into their [`Sends`]; tells `health` about fatal errors and
/// brokers down.
pub struct Reports<M> {
    acknowledged: mpsc::UnboundedSender<Arc<Sends<M>>>,
    health: Option<Arc<Health>>,
}

impl<M: Send + Sync + 'static> ClientContext for Reports<M> {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        super::logs::forward(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match &self.health {
            Some(health) => super::client_error(health, Client::Producer, &error, reason),
            None => warn!(error = %error, reason, "librdkafka producer error"),
        }
    }
}

impl<M: Send + Sync + 'static> ProducerContext for Reports<M> {
    type DeliveryOpaque = Ticket<M>;

    fn delivery(&self, result: &DeliveryResult<'_>, ticket: Ticket<M>) {
        let Some(sends) = ticket.sends else {
            return;
        };
        if let Err((source, message)) = result {
            if ticket.dead_letter {
                sends.dead_letter().failed = Some(source.clone());
            } else {
                sends.fail(PublishError {
                    topic: message.topic().to_string(),
                    source: source.clone(),
                });
            }
        }
        sends.reported(&self.acknowledged);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("could not publish to {topic}: {source}")]
pub struct PublishError {
    pub topic: String,
    pub source: KafkaError,
}

impl PublishError {
    /// Whether `error` is (or was caused by) a send that found the queue full and was
    /// told not to wait ([`Publisher::stop_waiting_for_room`]).
    pub fn is_queue_full(error: &anyhow::Error) -> bool {
        error.chain().any(|e| {
            e.downcast_ref::<Self>().is_some_and(|e| {
                matches!(
                    e.source,
                    KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)
                )
            })
        })
    }
}

pub struct Publisher<M: Send + Sync + 'static> {
    producer: ThreadedProducer<Reports<M>>,
    acknowledged: mpsc::UnboundedSender<Arc<Sends<M>>>,
    outcomes_topic: String,
    dlq_topic: String,
    /// The producer's `message.max.bytes`: a dead letter must fit, or it could never be
    /// written and its partition would stop there.
    max_message_bytes: usize,
    /// Told while sends wait for room in a full queue.
    health: Option<Arc<Health>>,
    /// Set on shutdown: a send that finds the queue full fails instead of waiting.
    stop_waiting: AtomicBool,
    /// How outcome events are written.
    outcome_encoding: OutcomeEncoding,
}

impl<M: Send + Sync + 'static> Publisher<M> {
    /// A producer; `health`, when given, is told about fatal errors, brokers down and a
    /// full queue.
    pub fn new(
        properties: &BTreeMap<String, String>,
        outcomes_topic: &str,
        dlq_topic: &str,
        health: Option<Arc<Health>>,
    ) -> KafkaResult<(Self, Acknowledged<M>)> {
        let mut config = super::client_config(
            properties,
            &[("enable.idempotence", "true"), ("acks", "all")],
        );
        // Output topics are created on purpose, with the partitions they need; a producer
        // must not create one by a typo (librdkafka's producer default would).
        if !properties.contains_key("allow.auto.create.topics") {
            config.set("allow.auto.create.topics", "false");
        }
        // The queue bounded in bytes (docs/memory.md), unless the user sets it.
        super::budgets::apply(&mut config, &super::budgets::producer_defaults(properties));
        let (acknowledged, reports) = mpsc::unbounded_channel();
        let producer = config.create_with_context(Reports {
            acknowledged: acknowledged.clone(),
            health: health.clone(),
        })?;
        let max_message_bytes = properties
            .get("message.max.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        Ok((
            Self {
                producer,
                acknowledged,
                outcomes_topic: outcomes_topic.to_string(),
                dlq_topic: dlq_topic.to_string(),
                max_message_bytes,
                health,
                stop_waiting: AtomicBool::new(false),
                outcome_encoding: OutcomeEncoding::Json,
            },
            reports,
        ))
    }

    /// No more sends will be added: `sends` comes back on the [`Acknowledged`] channel
    /// once all of them are reported (at once, if they already are).
    pub fn seal(&self, sends: Arc<Sends<M>>) {
        sends.reported(&self.acknowledged);
    }

    /// Fails unless every topic exists, so a typo in the configuration stops the worker
    /// at start instead of leaving it retrying sends for minutes.
    pub fn check_topics_exist(&self, topics: &[(&'static str, &str)]) -> anyhow::Result<()> {
        for (setting, topic) in topics {
            let metadata = self
                .producer
                .client()
                .fetch_metadata(Some(topic), Duration::from_secs(30))
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot read the metadata of topic {topic:?} from KAFKA_BROKERS: {e}"
                    )
                })?;
            let missing = metadata
                .topics()
                .iter()
                .find(|t| t.name() == *topic)
                .is_none_or(|t| t.error().is_some() || t.partitions().is_empty());
            if missing {
                anyhow::bail!(
                    "invalid setting {setting}: topic {topic:?} does not exist on the cluster \
                     (create it, e.g. with `nephoran-kafka-consumer create-topics`)"
                );
            }
        }
        Ok(())
    }

    /// Writes outcome events as `encoding` says from now on (JSON until told).
    pub fn set_outcome_encoding(&mut self, encoding: OutcomeEncoding) {
        self.outcome_encoding = encoding;
    }

    /// Enqueues an outcome event, keyed by its idempotency key, encoded as
    /// [`Publisher::set_outcome_encoding`] said, with its CloudEvents headers
    /// ([`super::cloudevents`]; `content-type` names the encoding).
    pub async fn outcome(
        &self,
        sends: &Arc<Sends<M>>,
        event: &OutcomeEvent,
    ) -> Result<(), PublishError> {
        let encoded = self.outcome_encoding.encode(event);
        let headers = owned_headers(&super::cloudevents::headers_with(
            event,
            encoded.content_type,
        ));
        let record = BaseRecord::with_opaque_to(&self.outcomes_topic, ticket(sends))
            .key(event.idempotency_key.as_bytes())
            .payload(&encoded.payload)
            .headers(headers);
        self.enqueue(record).await
    }

    /// Enqueues a copy of `message` (same key, payload and headers) on the dead-letter
    /// topic, with headers naming the error and where the message came from; what does
    /// not fit is left out, and said so. Never fails: a dead letter that cannot be
    /// enqueued is followed by a minimal one, and one whose delivery fails is settled by
    /// [`Publisher::settle_dead_letter`] when the message's sends come back. `event_id`
    /// is that of the message's `dead_lettered` event ([`dlq_headers::EVENT_ID`]).
    pub async fn dead_letter(
        &self,
        sends: &Arc<Sends<M>>,
        message: &InboundMessage,
        idempotency_key: &str,
        failure: &Failure,
        event_id: &str,
    ) {
        let letter =
            DeadLetterRecord::new(message, idempotency_key, failure, event_id, self.budget());
        {
            let mut state = sends.dead_letter();
            state.minimal = Some(letter.minimal.clone());
            state.about = Some(letter.minimal.clone());
        }
        let mut record: BaseRecord<'_, [u8], [u8], Ticket<M>> =
            BaseRecord::with_opaque_to(&self.dlq_topic, dead_letter_ticket(sends))
                .headers(letter.headers());
        if let Some(key) = letter.key {
            record = record.key(key);
        }
        if let Some(payload) = letter.payload {
            record = record.payload(payload);
        }
        if let Err(e) = self.enqueue(record).await {
            warn!(
                topic = %message.source.topic, partition = message.source.partition,
                offset = message.source.offset, key = %idempotency_key,
                code = failure.code.as_str(), error = %e.source,
                "dead letter not enqueued; sending a minimal one"
            );
            sends.dead_letter().failed = Some(e.source);
            self.send_minimal(sends).await;
        }
    }

    /// Settles a message's dead letter once its sends have come back. If the last
    /// dead letter sent failed and the minimal one is still to try, sends it and returns
    /// true: the sends come back again once it is reported. If none could be written,
    /// logs and counts it. Returns false when the message is done.
    pub async fn settle_dead_letter(&self, sends: &Arc<Sends<M>>) -> bool {
        let (failed, untried, about) = {
            let mut state = sends.dead_letter();
            let Some(failed) = state.failed.take() else {
                return false;
            };
            (failed, state.minimal.is_some(), state.about.clone())
        };
        if untried {
            if let Some(about) = &about {
                warn!(
                    topic = %about.source.topic, partition = about.source.partition,
                    offset = about.source.offset, key = %about.idempotency_key,
                    code = about.code, error = %failed,
                    "dead letter not delivered; sending a minimal one"
                );
            }
            // Sealed again below: it comes back once the minimal letter is reported.
            sends.unreported.fetch_add(1, Ordering::AcqRel);
            self.send_minimal(sends).await;
            self.seal(sends.clone());
            return true;
        }
        if let Some(about) = about {
            crate::meters::dead_letters_failed(about.code).increment(1);
            error!(
                topic = %about.source.topic, partition = about.source.partition,
                offset = about.source.offset, key = %about.idempotency_key,
                code = about.code, error = %failed,
                "no dead letter could be written, not even a minimal one; the message keeps its outcome and its offset is committed"
            );
        }
        false
    }

    /// Enqueues the minimal dead letter of `sends`, once.
    async fn send_minimal(&self, sends: &Arc<Sends<M>>) {
        let Some(minimal) = sends.dead_letter().minimal.take() else {
            return;
        };
        crate::meters::dead_letters_minimal(minimal.code).increment(1);
        let record: BaseRecord<'_, [u8], [u8], Ticket<M>> =
            BaseRecord::with_opaque_to(&self.dlq_topic, dead_letter_ticket(sends))
                .headers(owned_headers(&minimal.headers));
        if let Err(e) = self.enqueue(record).await {
            sends.dead_letter().failed = Some(e.source);
        }
    }

    /// The most bytes a dead letter may take, by librdkafka's count.
    fn budget(&self) -> usize {
        self.max_message_bytes
            .saturating_sub(DEAD_LETTER_MARGIN_BYTES)
    }

    /// Enqueues a dedup changelog record: `value` sets the key's entry, `None` is a
    /// tombstone that removes it. Written to the input message's partition number.
    /// Counted in `sends` when it belongs to a message.
    pub async fn changelog(
        &self,
        sends: Option<&Arc<Sends<M>>>,
        topic: &str,
        partition: i32,
        key: &str,
        value: Option<&[u8]>,
    ) -> Result<(), PublishError> {
        let ticket = sends.map_or(
            Ticket {
                sends: None,
                dead_letter: false,
            },
            ticket,
        );
        let mut record: BaseRecord<'_, str, [u8], Ticket<M>> =
            BaseRecord::with_opaque_to(topic, ticket)
                .partition(partition)
                .key(key);
        if let Some(value) = value {
            record = record.payload(value);
        }
        self.enqueue(record).await
    }

    /// From now on, a send that finds the queue full fails at once (on shutdown: the
    /// worker must not wait behind it), until [`Publisher::wait_for_room`].
    pub fn stop_waiting_for_room(&self) {
        self.stop_waiting.store(true, Ordering::Relaxed);
    }

    /// Sends wait for room in a full queue again.
    pub fn wait_for_room(&self) {
        self.stop_waiting.store(false, Ordering::Relaxed);
    }

    /// Enqueues a record, waiting while librdkafka's queue is full rather than failing
    /// (unless told to stop waiting).
    async fn enqueue<K, P>(
        &self,
        mut record: BaseRecord<'_, K, P, Ticket<M>>,
    ) -> Result<(), PublishError>
    where
        K: rdkafka::message::ToBytes + ?Sized,
        P: rdkafka::message::ToBytes + ?Sized,
    {
        let mut waited = false;
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    if let (true, Some(health)) = (waited, &self.health) {
                        health.queue_full.cleared();
                    }
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if !self.stop_waiting.load(Ordering::Relaxed) =>
                {
                    if let (false, Some(health)) = (waited, &self.health) {
                        // Logged when it lasts (readiness falls), counted each time.
                        crate::meters::producer_queue_full().increment(1);
                        health.queue_full.holds_at(
                            Instant::now(),
                            "sends wait until the brokers acknowledge earlier ones",
                        );
                    }
                    // The worker's loop is waiting for the brokers, not stuck: readiness
                    // says so, and liveness holds, so a broker outage does not restart
                    // every pod (a restart would only read the same backlog again).
                    if let Some(health) = &self.health {
                        health.main_loop.beat();
                    }
                    waited = true;
                    record = back;
                    tokio::time::sleep(QUEUE_FULL_RETRY).await;
                }
                Err((source, back)) => {
                    // Never enqueued: it will not be reported.
                    if let Some(sends) = &back.delivery_opaque.sends {
                        sends.unreported.fetch_sub(1, Ordering::AcqRel);
                    }
                    return Err(PublishError {
                        topic: back.topic.to_string(),
                        source,
                    });
                }
            }
        }
    }

    /// Waits for every enqueued send, up to `timeout`; for a rebalance callback.
    pub fn flusher(&self) -> impl Fn(Duration) -> KafkaResult<()> + Send + Sync + 'static {
        let producer = self.producer.clone();
        move |timeout| producer.flush(Timeout::After(timeout))
    }

    /// Waits for every enqueued send, up to `timeout`.
    pub fn flush(&self, timeout: Duration) -> KafkaResult<()> {
        self.producer.flush(Timeout::After(timeout))
    }
}

/// How long a send that found the queue full waits before trying again.
const QUEUE_FULL_RETRY: Duration = Duration::from_millis(10);

/// A ticket counted in `sends`.
fn ticket<M>(sends: &Arc<Sends<M>>) -> Ticket<M> {
    sends.unreported.fetch_add(1, Ordering::AcqRel);
    Ticket {
        sends: Some(sends.clone()),
        dead_letter: false,
    }
}

/// A dead letter's ticket counted in `sends`: its failure is settled apart.
fn dead_letter_ticket<M>(sends: &Arc<Sends<M>>) -> Ticket<M> {
    Ticket {
        dead_letter: true,
        ..ticket(sends)
    }
}

fn owned_headers(headers: &[(&str, String)]) -> OwnedHeaders {
    headers.iter().fold(
        OwnedHeaders::new_with_capacity(headers.len().max(1)),
        |all, (key, value)| {
            all.insert(Header {
                key,
                value: Some(value.as_str()),
            })
        },
    )
}

/// Bytes a record takes by librdkafka's count (`rd_kafka_msg_max_wire_size`).
fn record_size<'a>(
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    headers: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
) -> usize {
    RECORD_OVERHEAD_BYTES
        + key.map_or(0, <[u8]>::len)
        + payload.map_or(0, <[u8]>::len)
        + headers
            .into_iter()
            .map(|(name, value)| HEADER_OVERHEAD_BYTES + name.len() + value.map_or(0, <[u8]>::len))
            .sum::<usize>()
}

/// A dead letter, cut to fit.
struct DeadLetterRecord<'m> {
    key: Option<&'m [u8]>,
    payload: Option<&'m [u8]>,
    /// Original headers copied.
    copied: Vec<(&'m str, Option<&'m [u8]>)>,
    /// The error and source headers, and the notes on what was left out.
    ours: Vec<(&'static str, String)>,
    /// What to send if this cannot be.
    minimal: Minimal,
}

impl<'m> DeadLetterRecord<'m> {
    fn new(
        message: &'m InboundMessage,
        idempotency_key: &str,
        failure: &Failure,
        event_id: &str,
        budget: usize,
    ) -> Self {
        let source = &message.source;
        let at = format!("{}[{}]@{}", source.topic, source.partition, source.offset);
        let ours = vec![
            (dlq_headers::ERROR_CODE, failure.code.as_str().to_string()),
            (dlq_headers::ERROR_MESSAGE, failure.message.clone()),
            (dlq_headers::SOURCE_TOPIC, source.topic.clone()),
            (dlq_headers::SOURCE_PARTITION, source.partition.to_string()),
            (dlq_headers::SOURCE_OFFSET, source.offset.to_string()),
            (dlq_headers::IDEMPOTENCY_KEY, idempotency_key.to_string()),
            (dlq_headers::EVENT_ID, event_id.to_string()),
        ];
        let mut minimal = Minimal {
            code: failure.code.as_str(),
            source: source.clone(),
            idempotency_key: idempotency_key.to_string(),
            headers: ours.clone(),
        };
        let minimal_note = |what: &str| {
            format!(
                "{what} left out: this is a minimal dead letter, sent because the full one \
                 could not be written; the original is at {at}"
            )
        };
        for (present, header, what) in [
            (
                message.payload.is_some(),
                dlq_headers::PAYLOAD_OMITTED,
                "the payload",
            ),
            (
                message.key.is_some(),
                dlq_headers::KEY_OMITTED,
                "the record key",
            ),
            (
                !message.headers.is_empty(),
                dlq_headers::HEADERS_OMITTED,
                "the original headers",
            ),
        ] {
            if present {
                minimal.headers.push((header, minimal_note(what)));
            }
        }

        let mut letter = Self {
            key: message.key.as_deref(),
            payload: message.payload.as_deref(),
            copied: Vec::new(),
            ours,
            minimal,
        };
        let mut unreadable = Vec::new();
        for (index, (name, value)) in message.headers.iter().enumerate() {
            // Said by `dlq replay`, not by the producer: a replay rejected again gets a
            // dead letter of its own, replayable like any other (the header is not an
            // original one, so leaving it out leaves nothing out).
            if name.as_slice() == crate::dedup::REPLAY_OF_HEADER.as_bytes() {
                continue;
            }
            match std::str::from_utf8(name) {
                Ok(name)
                    if !name.chars().any(crate::decode::is_forbidden)
                        && !name.starts_with(dlq_headers::PREFIX) =>
                {
                    letter.copied.push((name, value.as_deref()));
                }
                _ => unreadable.push((index, name.as_slice())),
            }
        }
        if !unreadable.is_empty() {
            let named: Vec<String> = unreadable
                .iter()
                .take(OMITTED_NAMED)
                .map(|(i, name)| {
                    format!(
                        "#{i} (hex {})",
                        crate::hex::lower_hex(&name[..name.len().min(32)])
                    )
                })
                .collect();
            let more = match unreadable.len().saturating_sub(OMITTED_NAMED) {
                0 => String::new(),
                more => format!(" and {more} more"),
            };
            letter.ours.push((
                dlq_headers::HEADERS_OMITTED,
                format!(
                    "{} original headers left out, whose names are not printable UTF-8 or \
                     use the reserved nephoran. prefix: {}{more}; the original is at {at}",
                    unreadable.len(),
                    named.join(", ")
                ),
            ));
        }

        let limit = budget + DEAD_LETTER_MARGIN_BYTES;
        let too_large = |what: &str, bytes: usize| {
            format!(
                "{what} of {bytes} bytes does not fit in message.max.bytes={limit}; it is at {at}"
            )
        };
        if letter.size() > budget {
            if let Some(payload) = letter.payload.filter(|p| !p.is_empty()) {
                letter.payload = None;
                letter.ours.push((
                    dlq_headers::PAYLOAD_OMITTED,
                    too_large("the payload", payload.len()),
                ));
            }
        }
        if letter.size() > budget {
            if let Some(key) = letter.key.filter(|k| !k.is_empty()) {
                letter.key = None;
                letter.ours.push((
                    dlq_headers::KEY_OMITTED,
                    too_large("the record key", key.len()),
                ));
            }
        }
        if letter.size() > budget && !letter.copied.is_empty() {
            let bytes = record_size(
                None,
                None,
                letter.copied.iter().map(|(n, v)| (n.as_bytes(), *v)),
            ) - RECORD_OVERHEAD_BYTES;
            let note = format!(
                "the {} original headers ({bytes} bytes) do not fit in \
                 message.max.bytes={limit}; they are at {at}",
                letter.copied.len()
            );
            letter.copied.clear();
            // One note on headers: this one replaces the one on unreadable names.
            letter
                .ours
                .retain(|(name, _)| *name != dlq_headers::HEADERS_OMITTED);
            letter.ours.push((dlq_headers::HEADERS_OMITTED, note));
        }
        letter
    }

    fn size(&self) -> usize {
        record_size(
            self.key,
            self.payload,
            self.copied.iter().map(|(n, v)| (n.as_bytes(), *v)).chain(
                self.ours
                    .iter()
                    .map(|(n, v)| (n.as_bytes(), Some(v.as_bytes()))),
            ),
        )
    }

    /// This service's headers first, then the copies: a reader that takes the first
    /// header of a name gets this service's.
    fn headers(&self) -> OwnedHeaders {
        let mut headers = owned_headers(&self.ours);
        for (key, value) in &self.copied {
            headers = headers.insert(Header { key, value: *value });
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(topic: &str) -> PublishError {
        PublishError {
            topic: topic.into(),
            source: KafkaError::Canceled,
        }
    }

    #[test]
    fn sends_come_back_once_when_sealed_and_all_reported() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let sends = Sends::new("message");
        let tickets = [ticket(&sends), ticket(&sends)];
        // Sealed before the reports: nothing yet.
        sends.clone().reported(&tx);
        assert!(rx.try_recv().is_err());
        for Ticket { sends: counted, .. } in tickets {
            counted.expect("counted").reported(&tx);
        }
        let back = rx.try_recv().expect("handed back after the last report");
        assert_eq!(back.of, "message");
        assert!(back.result().is_ok());
        assert!(rx.try_recv().is_err(), "handed back once");
    }

    #[test]
    fn the_first_failure_is_kept() {
        let sends = Sends::new(());
        sends.fail(failure("outcomes"));
        sends.fail(failure("changelog"));
        assert_eq!(sends.result().unwrap_err().topic, "outcomes");
    }

    #[test]
    fn tickets_survive_the_trip_through_librdkafka() {
        let sends = Sends::new(7);
        for dead_letter in [false, true] {
            let made = if dead_letter {
                dead_letter_ticket(&sends)
            } else {
                ticket(&sends)
            };
            let ptr = made.into_ptr();
            // SAFETY: made by `into_ptr` just above, converted back once.
            let back = unsafe { Ticket::<i32>::from_ptr(ptr) };
            assert!(Arc::ptr_eq(&back.sends.expect("a ticket"), &sends));
            assert_eq!(back.dead_letter, dead_letter);
        }
        let none = Ticket::<i32> {
            sends: None,
            dead_letter: false,
        }
        .into_ptr();
        // SAFETY: as above.
        assert!(unsafe { Ticket::<i32>::from_ptr(none) }.sends.is_none());
    }

    #[tokio::test]
    async fn a_full_queue_is_waited_for_and_reported_until_sends_stop_waiting() {
        use futures::FutureExt;
        // No broker: what is enqueued stays queued.
        let properties = BTreeMap::from([
            ("bootstrap.servers".to_string(), "127.0.0.1:1".to_string()),
            ("queue.buffering.max.messages".to_string(), "1".to_string()),
        ]);
        let health = Arc::new(Health::default());
        let (publisher, _acknowledged) =
            Publisher::<()>::new(&properties, "out", "dlq", Some(health.clone())).unwrap();
        publisher
            .changelog(None, "t", 0, "k1", Some(b"v"))
            .await
            .expect("room for one");
        assert!(!health.queue_full.is_holding());
        let mut second = Box::pin(publisher.changelog(None, "t", 0, "k2", Some(b"v")));
        assert!((&mut second).now_or_never().is_none(), "waits for room");
        assert!(health.queue_full.is_holding(), "and says so");

        publisher.stop_waiting_for_room();
        let error = second.await.expect_err("fails at once");
        assert!(matches!(
            error.source,
            KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)
        ));
        assert!(PublishError::is_queue_full(
            &anyhow::Error::new(error).context("while finishing a message")
        ));
    }

    fn inbound(
        key: Option<Vec<u8>>,
        payload: Option<Vec<u8>>,
        headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> InboundMessage {
        InboundMessage {
            source: SourceRef {
                topic: "requests".into(),
                partition: 2,
                offset: 9,
            },
            key,
            payload,
            headers,
            timestamp_ms: None,
        }
    }

    const BUDGET: usize = 1_000_000 - DEAD_LETTER_MARGIN_BYTES;

    fn letter(message: &InboundMessage) -> DeadLetterRecord<'_> {
        let failure = Failure::new(crate::outcome::ErrorCode::InvalidRecord, "x".repeat(5000));
        DeadLetterRecord::new(message, "sha256:00", &failure, "id", BUDGET)
    }

    fn note<'a>(letter: &'a DeadLetterRecord<'_>, name: &str) -> Option<&'a str> {
        letter
            .ours
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_dead_letter_that_fits_is_a_full_copy() {
        let payload = vec![b'{'; 360_000];
        let m = inbound(
            Some(b"k".to_vec()),
            Some(payload.clone()),
            vec![
                (b"trace".to_vec(), Some(b"1".to_vec())),
                (b"empty".to_vec(), None),
            ],
        );
        let l = letter(&m);
        assert_eq!(l.payload, Some(&payload[..]));
        assert_eq!(l.key, Some(&b"k"[..]));
        assert_eq!(l.copied, [("trace", Some(&b"1"[..])), ("empty", None)]);
        assert!(l.ours.iter().all(|(n, _)| !n.ends_with(".omitted")));
        // The failure message was bounded to 1 KiB.
        assert!(note(&l, dlq_headers::ERROR_MESSAGE).unwrap().len() <= 1024);
    }

    #[test]
    fn what_does_not_fit_is_left_out_in_order_and_said_so() {
        // A 1 000 000-byte key: the payload goes first, then the key; the headers stay.
        let m = inbound(
            Some(vec![b'k'; 1_000_000]),
            Some(b"not json".to_vec()),
            vec![(b"trace".to_vec(), Some(b"1".to_vec()))],
        );
        let l = letter(&m);
        assert!(l.size() <= BUDGET);
        assert_eq!((l.payload, l.key), (None, None));
        assert_eq!(l.copied.len(), 1);
        let key_note = note(&l, dlq_headers::KEY_OMITTED).expect("the key note");
        assert!(
            key_note.contains("1000000 bytes")
                && key_note.contains("message.max.bytes=1000000")
                && key_note.contains("requests[2]@9"),
            "{key_note}"
        );
        assert!(note(&l, dlq_headers::PAYLOAD_OMITTED).is_some());

        // Headers too large together: all three left out.
        let headers = (0..64)
            .map(|i| (format!("h{i}").into_bytes(), Some(vec![b'v'; 16 * 1024])))
            .collect();
        let m = inbound(Some(b"k".to_vec()), Some(vec![b'p'; 10]), headers);
        let l = letter(&m);
        assert!(l.size() <= BUDGET, "{}", l.size());
        assert!(l.copied.is_empty());
        let headers_note = note(&l, dlq_headers::HEADERS_OMITTED).expect("the headers note");
        assert!(
            headers_note.contains("64 original headers"),
            "{headers_note}"
        );

        // A large payload alone: only the payload.
        let m = inbound(Some(b"k".to_vec()), Some(vec![b'p'; 999_000]), vec![]);
        let l = letter(&m);
        assert_eq!((l.payload, l.key), (None, Some(&b"k"[..])));
        assert!(note(&l, dlq_headers::KEY_OMITTED).is_none());
        // Just at the limit: kept.
        let at_limit = BUDGET - letter(&inbound(None, Some(Vec::new()), vec![])).size();
        let m = inbound(None, Some(vec![b'p'; at_limit]), vec![]);
        assert_eq!(letter(&m).size(), BUDGET);
        assert!(letter(&m).payload.is_some());
    }

    #[test]
    fn headers_a_reader_could_not_read_or_could_mistake_are_left_out_with_a_note() {
        let m = inbound(
            None,
            Some(b"x".to_vec()),
            vec![
                (vec![0xFF, 0xFE, b'x'], Some(b"v".to_vec())),
                (b"idempotency-key\0x".to_vec(), Some(b"v".to_vec())),
                (b"nephoran.error.code".to_vec(), Some(b"forged".to_vec())),
                (b"trace".to_vec(), Some(b"1".to_vec())),
                // A replay's header: neither copied nor counted as left out.
                (b"nephoran.replay.of".to_vec(), Some(b"id".to_vec())),
            ],
        );
        let l = letter(&m);
        assert_eq!(l.copied, [("trace", Some(&b"1"[..]))]);
        let n = note(&l, dlq_headers::HEADERS_OMITTED).expect("a note");
        assert!(n.starts_with("3 original headers"), "{n}");
        assert!(
            n.contains("#0 (hex fffe78)") && n.contains("requests[2]@9"),
            "{n}"
        );
        // This service's own headers come first.
        assert_eq!(l.ours[0].0, dlq_headers::ERROR_CODE);
    }

    #[test]
    fn a_minimal_dead_letter_carries_only_the_error_and_source() {
        let m = inbound(
            Some(b"k".to_vec()),
            Some(b"x".to_vec()),
            vec![(b"trace".to_vec(), None)],
        );
        let minimal = letter(&m).minimal;
        let names: Vec<_> = minimal.headers.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                dlq_headers::ERROR_CODE,
                dlq_headers::ERROR_MESSAGE,
                dlq_headers::SOURCE_TOPIC,
                dlq_headers::SOURCE_PARTITION,
                dlq_headers::SOURCE_OFFSET,
                dlq_headers::IDEMPOTENCY_KEY,
                dlq_headers::EVENT_ID,
                dlq_headers::PAYLOAD_OMITTED,
                dlq_headers::KEY_OMITTED,
                dlq_headers::HEADERS_OMITTED,
            ]
        );
        assert_eq!(
            minimal.headers[6].1, "id",
            "a minimal letter can be dropped as a copy too"
        );
        assert!(minimal.headers[9].1.contains("minimal dead letter"));
        assert_eq!(minimal.code, "invalid_record");
    }
}
