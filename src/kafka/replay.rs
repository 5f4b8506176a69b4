//! The Kafka side of `dlq replay` ([`crate::replay`]): reading a topic from its first
//! record to the end it had when reading started, and producing one record at a time,
//! each acknowledged before the next step.
//!
//! Reading is bounded: each partition's end offset is sampled before the first record is
//! read, and reading stops once every partition has reached it (plus what arrives within
//! [`TAIL_GRACE`] after, at most [`TAIL_LIMIT`] in all: some brokers, the development
//! broker among them, report the end of a partition as the start of its last batch plus
//! one, so the rest of that batch follows). Records are copied out as
//! [`InboundMessage`]s with their header names read as bytes ([`super::headers`]), as
//! the worker reads its input: a dead letter carries copies of hostile headers.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use super::tools::METADATA_TIMEOUT;
use crate::message::{InboundMessage, SourceRef};

/// Reading stops with an error when nothing arrives for this long while records remain.
const STALL: Duration = Duration::from_secs(60);
/// After every partition has reached its sampled end: how long to wait for the rest of a
/// batch that the broker's end offset did not count.
const TAIL_GRACE: Duration = Duration::from_millis(100);
/// The longest the reading goes on past the sampled ends, however much keeps arriving.
const TAIL_LIMIT: Duration = Duration::from_secs(1);
/// How long one produced record may take to be acknowledged.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// What a whole-topic read saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadToEnd {
    /// Records handed to the visitor.
    pub records: u64,
    /// Whether the visitor stopped the reading before the end.
    pub stopped: bool,
}

/// Reads every partition of `topic` from its first record to the end sampled at the
/// start, handing each record to `each` until it returns `Break`. A missing topic is an
/// error naming it and `setting`, unless `missing_ok` (then nothing is read).
pub async fn read_to_end(
    properties: &BTreeMap<String, String>,
    topic: &str,
    setting: &str,
    missing_ok: bool,
    mut each: impl FnMut(InboundMessage) -> ControlFlow<()>,
) -> anyhow::Result<ReadToEnd> {
    let consumer = super::tools::assigned_consumer(
        properties,
        "dlq-replay",
        // A partition's end is also known by its EOF: on a compacted topic the record
        // just before the sampled end may have been cleaned away.
        &[("enable.partition.eof", "true")],
    )?;
    let metadata = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .with_context(|| format!("cannot read the metadata of topic {topic:?}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        if missing_ok {
            return Ok(ReadToEnd::default());
        }
        bail!("topic {topic:?} ({setting}) does not exist or has no partitions");
    }
    // Each partition's end, before anything is read: where the reading stops.
    let mut ends = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, METADATA_TIMEOUT)
            .with_context(|| format!("cannot read the end of {topic}[{partition}]"))?;
        if high > low {
            ends.insert(partition, high);
        }
        tpl.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;

    let mut read = ReadToEnd::default();
    let mut tail_until = None;
    loop {
        let wait = match tail_until {
            None if ends.is_empty() => {
                let until = tokio::time::Instant::now() + TAIL_LIMIT;
                tail_until = Some(until);
                TAIL_GRACE
            }
            None => STALL,
            Some(until) => {
                TAIL_GRACE.min(until.saturating_duration_since(tokio::time::Instant::now()))
            }
        };
        let record = match tokio::time::timeout(wait, consumer.recv()).await {
            Ok(Err(KafkaError::PartitionEOF(partition))) => {
                ends.remove(&partition);
                continue;
            }
            Ok(record) => record.with_context(|| format!("reading {topic}"))?,
            Err(_) if tail_until.is_some() => break,
            Err(_) => {
                let behind: Vec<String> = ends.keys().map(|p| format!("{topic}[{p}]")).collect();
                bail!(
                    "reading {topic} stalled: nothing arrived for {STALL:?} from {}",
                    behind.join(", ")
                );
            }
        };
        let message = super::consumer::to_inbound(&record);
        drop(record);
        let place = (message.source.partition, message.source.offset);
        read.records += 1;
        if each(message).is_break() {
            read.stopped = true;
            break;
        }
        if ends.get(&place.0).is_some_and(|end| place.1 + 1 >= *end) {
            ends.remove(&place.0);
        }
    }
    Ok(read)
}

/// Produces records one at a time, each acknowledged by the brokers before `send`
/// returns: `dlq replay` writes what it remembers before what it replays.
pub struct AckedProducer {
    producer: FutureProducer,
}

/// One record to produce: to a partition of its own when it names one, else by its key.
pub struct Outgoing<'a> {
    pub topic: &'a str,
    pub partition: Option<i32>,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    /// Names must hold no NUL (librdkafka reads them as C strings).
    pub headers: &'a [(String, Option<Vec<u8>>)],
}

impl AckedProducer {
    pub fn new(properties: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let mut config = super::client_config(
            properties,
            &[("enable.idempotence", "true"), ("acks", "all")],
        );
        // A letter names its topic: a producer must not create one by a forged name.
        if !properties.contains_key("allow.auto.create.topics") {
            config.set("allow.auto.create.topics", "false");
        }
        let producer = config
            .create()
            .context("could not create the Kafka producer")?;
        Ok(Self { producer })
    }

    /// Produces `record` and waits for its acknowledgement; returns where it landed.
    pub async fn send(&self, record: &Outgoing<'_>) -> anyhow::Result<SourceRef> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len().max(1));
        for (name, value) in record.headers {
            if name.contains('\0') {
                bail!("header name {name:?} holds a NUL; it cannot be produced");
            }
            headers = headers.insert(Header {
                key: name,
                value: value.as_deref(),
            });
        }
        let mut out: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(record.topic).headers(headers);
        if let Some(partition) = record.partition {
            out = out.partition(partition);
        }
        if let Some(key) = record.key {
            out = out.key(key);
        }
        if let Some(payload) = record.payload {
            out = out.payload(payload);
        }
        match self.producer.send(out, SEND_TIMEOUT).await {
            Ok(delivery) => Ok(SourceRef {
                topic: record.topic.to_string(),
                partition: delivery.partition,
                offset: delivery.offset,
            }),
            Err((e, _)) => bail!("could not produce to {}: {e}", record.topic),
        }
    }
}
