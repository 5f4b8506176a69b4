//! Publishing outcome events and dead letters.
//!
//! The producer is idempotent with `acks=all`, so a retried send cannot duplicate or
//! reorder events of one key. Sends are enqueued in order and return a [`Delivery`] to
//! await; the worker awaits them before storing the offset of the message they belong to.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use std::future::Future;
use std::pin::Pin;

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

/// A send that has been enqueued; resolves when the broker acknowledged it.
/// `Sync` so that a set of them can be held across awaits by a `Send` task.
pub type Delivery = Pin<Box<dyn Future<Output = Result<(), PublishError>> + Send + Sync>>;

#[derive(Debug, thiserror::Error)]
#[error("could not publish to {topic}: {source}")]
pub struct PublishError {
    pub topic: String,
    pub source: KafkaError,
}

pub struct Publisher {
    producer: FutureProducer,
    outcomes_topic: String,
    dlq_topic: String,
    /// The producer's `message.max.bytes`: a dead letter must fit, or it could never be
    /// written and its partition would stop there.
    max_message_bytes: usize,
}

impl Publisher {
    pub fn new(
        properties: &BTreeMap<String, String>,
        outcomes_topic: &str,
        dlq_topic: &str,
    ) -> KafkaResult<Self> {
        let mut config = super::client_config(
            properties,
            &[("enable.idempotence", "true"), ("acks", "all")],
        );
        // Output topics are created on purpose, with the partitions they need; a producer
        // must not create one by a typo (librdkafka's producer default would).
        if !properties.contains_key("allow.auto.create.topics") {
            config.set("allow.auto.create.topics", "false");
        }
        let producer = config.create()?;
        let max_message_bytes = properties
            .get("message.max.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        Ok(Self {
            producer,
            outcomes_topic: outcomes_topic.to_string(),
            dlq_topic: dlq_topic.to_string(),
            max_message_bytes,
        })
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
    pub async fn outcome(&self, event: &OutcomeEvent) -> Result<Delivery, PublishError> {
        // Plain structs with string keys: serialisation cannot fail.
        let payload = serde_json::to_vec(event).expect("outcome events serialise to JSON");
        let headers = OwnedHeaders::new().insert(Header {
            key: "content-type",
            value: Some("application/json"),
        });
        let record = FutureRecord::to(&self.outcomes_topic)
            .key(event.idempotency_key.as_bytes())
            .payload(&payload)
            .headers(headers);
        self.enqueue(record).await
    }

    /// Enqueues a copy of `message` (same key, payload and headers) on the dead-letter
    /// topic, with headers naming the error and where the message came from.
    pub async fn dead_letter(
        &self,
        message: &InboundMessage,
        idempotency_key: &str,
        failure: &Failure,
    ) -> Result<Delivery, PublishError> {
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
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.dlq_topic).headers(headers);
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
    pub async fn changelog(
        &self,
        topic: &str,
        partition: i32,
        key: &str,
        value: Option<&[u8]>,
    ) -> Result<Delivery, PublishError> {
        let mut record: FutureRecord<'_, str, [u8]> =
            FutureRecord::to(topic).partition(partition).key(key);
        if let Some(value) = value {
            record = record.payload(value);
        }
        self.enqueue(record).await
    }

    /// Enqueues a record, waiting while librdkafka's queue is full rather than failing.
    async fn enqueue<K, P>(
        &self,
        mut record: FutureRecord<'_, K, P>,
    ) -> Result<Delivery, PublishError>
    where
        K: rdkafka::message::ToBytes + ?Sized,
        P: rdkafka::message::ToBytes + ?Sized,
    {
        let topic = record.topic.to_string();
        loop {
            match self.producer.send_result(record) {
                Ok(future) => {
                    return Ok(Box::pin(async move {
                        match future.await {
                            Ok(Ok(_)) => Ok(()),
                            Ok(Err((source, _))) => Err(PublishError { topic, source }),
                            Err(_) => Err(PublishError {
                                topic,
                                source: KafkaError::Canceled,
                            }),
                        }
                    }));
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((source, _)) => return Err(PublishError { topic, source }),
            }
        }
    }

    /// A handle on the producer, for flushing it from the consumer's rebalance callback.
    pub fn producer(&self) -> FutureProducer {
        self.producer.clone()
    }

    /// Waits for every enqueued send, up to `timeout`.
    pub fn flush(&self, timeout: Duration) -> KafkaResult<()> {
        self.producer.flush(Timeout::After(timeout))
    }
}
