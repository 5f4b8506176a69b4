//! Publishing outcome events, dead letters and dedup changelog records.
//!
//! The producer is idempotent with `acks=all`, so a retried send cannot duplicate or
//! reorder events of one key. The sends of one message are enqueued in order under one
//! [`Sends`]; once it is sealed and librdkafka has reported every one of them, it comes
//! back, once, on the [`Acknowledged`] channel, with the first failure if there was one.
//! The worker stores the message's offset only then. Counting deliveries in the delivery
//! callback, rather than awaiting a future per send, keeps the cost per message to one
//! hand-off from librdkafka's polling thread.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::util::{IntoOpaque, Timeout};
use rdkafka::{ClientContext, Message};
use tokio::sync::mpsc;

use crate::message::InboundMessage;
use crate::outcome::{Failure, OutcomeEvent};

/// Headers a dead letter carries beside the original headers.
pub mod dlq_headers {
    pub const ERROR_CODE: &str = "nephoran.error.code";
    pub const ERROR_MESSAGE: &str = "nephoran.error.message";
    pub const SOURCE_TOPIC: &str = "nephoran.source.topic";
    pub const SOURCE_PARTITION: &str = "nephoran.source.partition";
    pub const SOURCE_OFFSET: &str = "nephoran.source.offset";
    pub const IDEMPOTENCY_KEY: &str = "nephoran.idempotency.key";
    /// Set when the original payload was too large to copy; says where to find it.
    pub const PAYLOAD_OMITTED: &str = "nephoran.payload.omitted";
}

/// Room left in a dead letter for the record overhead and the error headers.
const DEAD_LETTER_SLACK_BYTES: usize = 16 * 1024;

/// The sends of one message, acknowledged as one, and what the sender wants back with
/// them (`of`).
pub struct Sends<M> {
    /// Sends not yet reported by librdkafka, plus one until the sender seals it.
    unreported: AtomicUsize,
    failure: Mutex<Option<PublishError>>,
    pub of: M,
}

impl<M> Sends<M> {
    pub fn new(of: M) -> Arc<Self> {
        Arc::new(Self {
            unreported: AtomicUsize::new(1),
            failure: Mutex::new(None),
            of,
        })
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

/// What a record carries through librdkafka: the sends it counts in, if any.
pub struct Ticket<M>(Option<Arc<Sends<M>>>);

impl<M: Send + Sync> IntoOpaque for Ticket<M> {
    fn into_ptr(self) -> *mut c_void {
        self.0
            .map_or(std::ptr::null_mut(), |s| Arc::into_raw(s) as *mut c_void)
    }

    unsafe fn from_ptr(ptr: *mut c_void) -> Self {
        if ptr.is_null() {
            Self(None)
        } else {
            // SAFETY: made by `into_ptr` from an `Arc<Sends<M>>`, and librdkafka hands
            // each record's opaque back exactly once.
            Self(Some(unsafe { Arc::from_raw(ptr as *const Sends<M>) }))
        }
    }
}

/// Counts delivery reports into their [`Sends`].
pub struct Reports<M> {
    acknowledged: mpsc::UnboundedSender<Arc<Sends<M>>>,
}

impl<M: Send + Sync + 'static> ClientContext for Reports<M> {}

impl<M: Send + Sync + 'static> ProducerContext for Reports<M> {
    type DeliveryOpaque = Ticket<M>;

    fn delivery(&self, result: &DeliveryResult<'_>, ticket: Ticket<M>) {
        let Some(sends) = ticket.0 else {
            return;
        };
        if let Err((source, message)) = result {
            sends.fail(PublishError {
                topic: message.topic().to_string(),
                source: source.clone(),
            });
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

pub struct Publisher<M: Send + Sync + 'static> {
    producer: ThreadedProducer<Reports<M>>,
    acknowledged: mpsc::UnboundedSender<Arc<Sends<M>>>,
    outcomes_topic: String,
    dlq_topic: String,
    /// The producer's `message.max.bytes`: a dead letter must fit, or it could never be
    /// written and its partition would stop there.
    max_message_bytes: usize,
}

impl<M: Send + Sync + 'static> Publisher<M> {
    pub fn new(
        properties: &BTreeMap<String, String>,
        outcomes_topic: &str,
        dlq_topic: &str,
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
        let (acknowledged, reports) = mpsc::unbounded_channel();
        let producer = config.create_with_context(Reports {
            acknowledged: acknowledged.clone(),
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

    /// Enqueues an outcome event, keyed by its idempotency key.
    pub async fn outcome(
        &self,
        sends: &Arc<Sends<M>>,
        event: &OutcomeEvent,
    ) -> Result<(), PublishError> {
        // Plain structs with string keys: serialisation cannot fail.
        let payload = serde_json::to_vec(event).expect("outcome events serialise to JSON");
        let headers = OwnedHeaders::new().insert(Header {
            key: "content-type",
            value: Some("application/json"),
        });
        let record = BaseRecord::with_opaque_to(&self.outcomes_topic, ticket(sends))
            .key(event.idempotency_key.as_bytes())
            .payload(&payload)
            .headers(headers);
        self.enqueue(record).await
    }

    /// Enqueues a copy of `message` (same key, payload and headers) on the dead-letter
    /// topic, with headers naming the error and where the message came from.
    pub async fn dead_letter(
        &self,
        sends: &Arc<Sends<M>>,
        message: &InboundMessage,
        idempotency_key: &str,
        failure: &Failure,
    ) -> Result<(), PublishError> {
        let mut headers = OwnedHeaders::new_with_capacity(message.headers.len() + 6);
        for (key, value) in &message.headers {
            headers = headers.insert(Header {
                key: key.as_str(),
                value: value.as_deref(),
            });
        }
        let partition = message.source.partition.to_string();
        let offset = message.source.offset.to_string();
        for (key, value) in [
            (dlq_headers::ERROR_CODE, failure.code.as_str()),
            (dlq_headers::ERROR_MESSAGE, failure.message.as_str()),
            (dlq_headers::SOURCE_TOPIC, message.source.topic.as_str()),
            (dlq_headers::SOURCE_PARTITION, partition.as_str()),
            (dlq_headers::SOURCE_OFFSET, offset.as_str()),
            (dlq_headers::IDEMPOTENCY_KEY, idempotency_key),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let size = message.key.as_ref().map_or(0, Vec::len)
            + message.payload.as_ref().map_or(0, Vec::len)
            + message
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
                .sum::<usize>()
            + failure.message.len();
        let payload = message.payload.as_deref().filter(|payload| {
            size + DEAD_LETTER_SLACK_BYTES <= self.max_message_bytes || payload.is_empty()
        });
        let omitted = match (&message.payload, payload) {
            (Some(original), None) => Some(format!(
                "the payload of {} bytes does not fit in message.max.bytes={}; it is at {}[{partition}]@{offset}",
                original.len(),
                self.max_message_bytes,
                message.source.topic
            )),
            _ => None,
        };
        if let Some(note) = &omitted {
            headers = headers.insert(Header {
                key: dlq_headers::PAYLOAD_OMITTED,
                value: Some(note.as_str()),
            });
        }
        let mut record: BaseRecord<'_, [u8], [u8], Ticket<M>> =
            BaseRecord::with_opaque_to(&self.dlq_topic, ticket(sends)).headers(headers);
        if let Some(key) = &message.key {
            record = record.key(key);
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        self.enqueue(record).await
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
        let ticket = sends.map_or(Ticket(None), ticket);
        let mut record: BaseRecord<'_, str, [u8], Ticket<M>> =
            BaseRecord::with_opaque_to(topic, ticket)
                .partition(partition)
                .key(key);
        if let Some(value) = value {
            record = record.payload(value);
        }
        self.enqueue(record).await
    }

    /// Enqueues a record, waiting while librdkafka's queue is full rather than failing.
    async fn enqueue<K, P>(
        &self,
        mut record: BaseRecord<'_, K, P, Ticket<M>>,
    ) -> Result<(), PublishError>
    where
        K: rdkafka::message::ToBytes + ?Sized,
        P: rdkafka::message::ToBytes + ?Sized,
    {
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((source, back)) => {
                    // Never enqueued: it will not be reported.
                    if let Some(sends) = &back.delivery_opaque.0 {
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

/// A ticket counted in `sends`.
fn ticket<M>(sends: &Arc<Sends<M>>) -> Ticket<M> {
    sends.unreported.fetch_add(1, Ordering::AcqRel);
    Ticket(Some(sends.clone()))
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
        for Ticket(counted) in tickets {
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
        let ptr = ticket(&sends).into_ptr();
        // SAFETY: made by `into_ptr` just above, converted back once.
        let Ticket(back) = unsafe { Ticket::<i32>::from_ptr(ptr) };
        assert!(Arc::ptr_eq(&back.expect("a ticket"), &sends));
        let none = Ticket::<i32>(None).into_ptr();
        // SAFETY: as above.
        assert!(unsafe { Ticket::<i32>::from_ptr(none) }.0.is_none());
    }
}
