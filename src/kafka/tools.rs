//! The Kafka side of the operator tools (`submit`, `outcomes`): producing requests with
//! their idempotency key, and reading outcome events (in whatever format each record is:
//! [`crate::avro::outcome`]) from the start of the topic, or from where it ended before a
//! request was produced (`submit --wait`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use apache_avro::Schema;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::avro::outcome::{decode, frame, Framing};
use crate::avro::registry::Registry;
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
        /// The event as JSON: the record's value when it was JSON, else the decoded Avro
        /// event serialised as the JSON format writes it.
        raw: Vec<u8>,
        /// Where the event was read (not the request it is about: that is its `source`).
        at: SourceRef,
    },
    /// A record that is not an outcome event, at this place, and why.
    Undecodable { at: SourceRef, reason: String },
}

/// Reads every partition of the outcomes topic without a group: from the beginning, or
/// from offsets taken when it was created. Each record is read in the format it is in
/// (JSON, single-object Avro, or Confluent-framed Avro with its writer schema from the
/// registry), so a topic whose format was switched mid-stream reads as one.
pub struct OutcomeReader {
    consumer: StreamConsumer,
    topic: String,
    registry: Option<Registry>,
    /// A record read whose writer schema is being fetched: a caller that drops
    /// [`OutcomeReader::next`] while it waits (a `select!`) finds it again on the next
    /// call, rather than losing it.
    pending: Mutex<Option<OwnedMessage>>,
}

/// Attempts at fetching a writer schema from a registry that does not answer before the
/// record is reported and skipped; the waits between them double from
/// [`REGISTRY_FIRST_RETRY`].
const REGISTRY_ATTEMPTS: u32 = 5;
const REGISTRY_FIRST_RETRY: Duration = Duration::from_millis(250);

/// Where an [`OutcomeReader`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The first record of each partition.
    Beginning,
    /// Each partition's end as the broker reports it now, taken before `new` returns, so
    /// nothing published after `new` returns is missed (unlike `Offset::End`, which
    /// librdkafka resolves later, when it starts fetching). A broker that reports an
    /// end too low (the development broker does, after batched writes) only makes the
    /// reader see some older records again: callers filter what they read.
    Now,
    /// Each partition's first record written at or after this time (by the record's
    /// timestamp, found with `offsets_for_times`), or its end when there is none.
    Since(SystemTime),
}

impl OutcomeReader {
    /// A reader of `topic`; `registry` resolves the schema ids of Confluent-framed records
    /// (without one, such records are reported and skipped).
    pub fn new(
        properties: &BTreeMap<String, String>,
        topic: &str,
        start: Start,
        registry: Option<Registry>,
    ) -> anyhow::Result<Self> {
        let consumer = assigned_consumer(properties, "outcomes-cli", &[])?;
        let metadata = consumer
            .fetch_metadata(Some(topic), METADATA_TIMEOUT)
            .with_context(|| format!("cannot read the metadata of {topic}"))?;
        let mut tpl = TopicPartitionList::new();
        for t in metadata.topics().iter().filter(|t| t.error().is_none()) {
            for partition in t.partitions() {
                let offset = match start {
                    Start::Beginning => Offset::Beginning,
                    Start::Since(since) => offset_at(&consumer, t.name(), partition.id(), since)?,
                    Start::Now => {
                        let (_, high) = consumer
                            .fetch_watermarks(t.name(), partition.id(), METADATA_TIMEOUT)
                            .with_context(|| {
                                format!("cannot read the end of {topic}[{}]", partition.id())
                            })?;
                        Offset::Offset(high.max(0))
                    }
                };
                tpl.add_partition_offset(t.name(), partition.id(), offset)?;
            }
        }
        if tpl.count() == 0 {
            bail!("topic {topic} has no partitions (does it exist?)");
        }
        consumer.assign(&tpl)?;
        Ok(Self {
            consumer,
            topic: topic.to_string(),
            registry,
            pending: Mutex::new(None),
        })
    }

    /// Reads only `partition` from now on, from its first record: to find an event
    /// published before this reader started (all events of a key share a partition).
    pub fn reread_partition(&self, partition: i32) -> anyhow::Result<()> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, partition, Offset::Beginning)?;
        self.pending().take();
        self.consumer
            .assign(&tpl)
            .with_context(|| format!("cannot read {}[{partition}] again", self.topic))
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Option<OwnedMessage>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next record; waits for one to arrive. Cancel-safe: a record whose writer
    /// schema was being fetched when the future was dropped comes first next time.
    pub async fn next(&self) -> anyhow::Result<Read> {
        let pending = self.pending().take();
        let record = match pending {
            Some(record) => record,
            None => self.consumer.recv().await?.detach(),
        };
        let at = SourceRef {
            topic: record.topic().to_string(),
            partition: record.partition(),
            offset: record.offset(),
        };
        let payload = record.payload().unwrap_or_default();
        let framing = match frame(payload) {
            Ok(framing) => framing,
            Err(e) => {
                return Ok(Read::Undecodable {
                    at,
                    reason: e.to_string(),
                })
            }
        };
        let writer = match framing {
            Framing::Confluent { schema_id, .. } => {
                *self.pending() = Some(record.clone());
                let writer = self.writer_schema(schema_id).await;
                self.pending().take();
                match writer {
                    Ok(writer) => Some(writer),
                    Err(reason) => return Ok(Read::Undecodable { at, reason }),
                }
            }
            _ => None,
        };
        Ok(match decode(framing, writer.as_deref()) {
            Ok(event) => {
                let raw = match framing {
                    Framing::Json(json) => json.to_vec(),
                    // Plain structs with string keys: serialisation cannot fail.
                    _ => serde_json::to_vec(&event).expect("outcome events serialise to JSON"),
                };
                Read::Event {
                    event: Box::new(event),
                    raw,
                    at,
                }
            }
            Err(e) => Read::Undecodable {
                at,
                reason: e.to_string(),
            },
        })
    }

    /// The writer schema registered with `id`, retried a few times while the registry
    /// does not answer; else why not.
    async fn writer_schema(&self, id: u32) -> Result<Arc<Schema>, String> {
        let Some(registry) = &self.registry else {
            return Err(format!(
                "Confluent-framed Avro with schema id {id}, and no SCHEMA_REGISTRY_URL to resolve it"
            ));
        };
        let mut wait = REGISTRY_FIRST_RETRY;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match registry.writer_schema(id).await {
                Ok(schema) => return Ok(schema),
                Err(e) if e.is_unavailable() && attempts < REGISTRY_ATTEMPTS => {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(e) => return Err(format!("Confluent-framed Avro with schema id {id}: {e}")),
            }
        }
    }
}

/// The offset of the first record of `topic[partition]` written at or after `since`; the
/// partition's end when none is, its beginning when `since` is before the epoch.
fn offset_at(
    consumer: &StreamConsumer,
    topic: &str,
    partition: i32,
    since: SystemTime,
) -> anyhow::Result<Offset> {
    let Ok(millis) = since.duration_since(SystemTime::UNIX_EPOCH) else {
        return Ok(Offset::Beginning);
    };
    let millis = i64::try_from(millis.as_millis()).unwrap_or(i64::MAX);
    let mut query = TopicPartitionList::new();
    query.add_partition_offset(topic, partition, Offset::Offset(millis))?;
    let found = consumer
        .offsets_for_times(query, METADATA_TIMEOUT)
        .with_context(|| format!("cannot look up the offset of a time in {topic}[{partition}]"))?;
    match found.find_partition(topic, partition).map(|p| p.offset()) {
        Some(Offset::Offset(offset)) if offset >= 0 => Ok(Offset::Offset(offset)),
        // No record that new: start at the end as it is now.
        _ => {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition, METADATA_TIMEOUT)
                .with_context(|| format!("cannot read the end of {topic}[{partition}]"))?;
            Ok(Offset::Offset(high.max(0)))
        }
    }
}

/// How long a metadata or watermark request may take before the tool gives up.
pub(super) const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// A consumer that reads by assignment: never subscribed, never committed; its group id
/// (`nephoran-<purpose>-<pid>`) only satisfies the client. `extra` adds properties.
pub(super) fn assigned_consumer(
    properties: &BTreeMap<String, String>,
    purpose: &str,
    extra: &[(&str, &str)],
) -> anyhow::Result<StreamConsumer> {
    let group = format!("nephoran-{purpose}-{}", std::process::id());
    let mut settings = vec![
        ("group.id", group.as_str()),
        ("enable.auto.commit", "false"),
        ("allow.auto.create.topics", "false"),
    ];
    settings.extend_from_slice(extra);
    super::client_config(properties, &settings)
        .create()
        .context("could not create the Kafka consumer")
}
