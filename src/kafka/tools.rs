//! The Kafka side of the operator tools (`submit`, `outcomes`): producing requests with
//! their idempotency key, and reading outcome events from the start of the topic.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::decode::IDEMPOTENCY_KEY_HEADER;
use crate::message::SourceRef;
use crate::outcome::OutcomeEvent;

/// Produces requests as producers should: keyed by idempotency key.
pub struct Submitter {
    producer: FutureProducer,
}

impl Submitter {
    pub fn new(properties: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let producer = super::client_config(properties, &[("enable.idempotence", "true")])
            .create()
            .context("could not create the Kafka producer")?;
        Ok(Self { producer })
    }

    /// Produces `payload` to `topic`; with a key, as the message key (all messages of a
    /// key share a partition, so they are processed in order) and the
    /// `idempotency-key` header. Returns where it landed.
    pub async fn submit(
        &self,
        topic: &str,
        key: Option<&str>,
        payload: &str,
    ) -> anyhow::Result<SourceRef> {
        let mut record = FutureRecord::to(topic).payload(payload);
        if let Some(key) = key {
            record = record.key(key).headers(OwnedHeaders::new().insert(Header {
                key: IDEMPOTENCY_KEY_HEADER,
                value: Some(key),
            }));
        }
        match self.producer.send(record, Duration::from_secs(30)).await {
            Ok(delivery) => Ok(SourceRef {
                topic: topic.to_string(),
                partition: delivery.partition,
                offset: delivery.offset,
            }),
            Err((e, _)) => bail!("could not produce to {topic}: {e}"),
        }
    }
}

/// What reading the outcomes topic yields.
pub enum Read {
    Event {
        event: Box<OutcomeEvent>,
        raw: Vec<u8>,
    },
    /// A record that is not an outcome event, at this place.
    Undecodable(SourceRef),
}

/// Reads every partition of the outcomes topic from its beginning, without a group.
pub struct OutcomeReader {
    consumer: StreamConsumer,
}

impl OutcomeReader {
    pub fn new(properties: &BTreeMap<String, String>, topic: &str) -> anyhow::Result<Self> {
        // Partitions are assigned, not subscribed: the group id only satisfies the client.
        let group = format!("nephoran-outcomes-cli-{}", std::process::id());
        let consumer: StreamConsumer = super::client_config(
            properties,
            &[("group.id", &group), ("enable.auto.commit", "false")],
        )
        .create()
        .context("could not create the Kafka consumer")?;
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .with_context(|| format!("cannot read the metadata of {topic}"))?;
        let mut tpl = TopicPartitionList::new();
        for t in metadata.topics().iter().filter(|t| t.error().is_none()) {
            for partition in t.partitions() {
                tpl.add_partition_offset(t.name(), partition.id(), Offset::Beginning)?;
            }
        }
        if tpl.count() == 0 {
            bail!("topic {topic} has no partitions (does it exist?)");
        }
        consumer.assign(&tpl)?;
        Ok(Self { consumer })
    }

    /// The next record; waits for one to arrive.
    pub async fn next(&self) -> anyhow::Result<Read> {
        let record = self.consumer.recv().await?;
        let payload = record.payload().unwrap_or_default();
        Ok(match serde_json::from_slice::<OutcomeEvent>(payload) {
            Ok(event) => Read::Event {
                event: Box::new(event),
                raw: payload.to_vec(),
            },
            Err(_) => Read::Undecodable(SourceRef {
                topic: record.topic().to_string(),
                partition: record.partition(),
                offset: record.offset(),
            }),
        })
    }
}
