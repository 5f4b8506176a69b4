//! The group consumer: subscription, offset storage, and conversion of records.
//!
//! Offsets are committed by librdkafka's auto-commit, but only offsets this code stored
//! (`enable.auto.offset.store=false`): the worker stores a message's offset once it and
//! every earlier message of its partition have their outcomes published.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tracing::{debug, info, warn};

use crate::health::Health;
use crate::message::{InboundMessage, SourceRef};

pub type GroupConsumer = StreamConsumer<GroupContext>;

const REVOKE_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Logs rebalances and commits, tells `/readyz` when the group has been joined, and
/// lists the partitions that changed hands, whose dedup state the worker must drop.
pub struct GroupContext {
    pub health: Arc<Health>,
    /// Partitions assigned or revoked since the worker last looked.
    pub reassigned: Arc<Mutex<Vec<(String, i32)>>>,
    /// The producer of outcomes and changelog entries, flushed before partitions are
    /// handed over so their next owner restores every entry written so far.
    pub producer: FutureProducer,
}

impl GroupContext {
    fn note_reassigned(&self, tpl: &TopicPartitionList) {
        let mut list = match self.reassigned.lock() {
            Ok(list) => list,
            Err(poisoned) => poisoned.into_inner(),
        };
        list.extend(
            tpl.elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition())),
        );
    }
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            info!(partitions = %describe(tpl), "partitions revoked");
            self.note_reassigned(tpl);
            // Blocks the poll briefly; the worker is between messages here (callbacks run
            // inside its `recv`), so everything it processed is in the producer's queue.
            if let Err(e) = self.producer.flush(Timeout::After(REVOKE_FLUSH_TIMEOUT)) {
                warn!(error = %e, "sends not all acknowledged before handing partitions over");
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                info!(partitions = %describe(tpl), "partitions assigned");
                self.note_reassigned(tpl);
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
            Ok(()) => tracing::debug!(offsets = %describe(offsets), "offsets committed"),
            // Nothing to commit is not worth a warning.
            Err(rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::NoOffset,
            )) => {}
            Err(e) => warn!(error = %e, offsets = %describe(offsets), "offset commit failed"),
        }
    }
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

/// Creates the group consumer. Settings the no-loss guarantee depends on are fixed.
pub fn create(
    properties: &BTreeMap<String, String>,
    group: &str,
    context: GroupContext,
) -> KafkaResult<GroupConsumer> {
    let mut config = super::client_config(
        properties,
        &[
            ("group.id", group),
            ("enable.auto.commit", "true"),
            ("enable.auto.offset.store", "false"),
            ("partition.assignment.strategy", "cooperative-sticky"),
        ],
    );
    // A new group starts at the beginning: requests produced before the first worker
    // started are work, not history. Overridable, unlike the settings above.
    if !properties.contains_key("auto.offset.reset") {
        config.set("auto.offset.reset", "earliest");
    }
    config.create_with_context(context)
}

/// Copies a record out of the client's buffers.
pub fn to_inbound(message: &BorrowedMessage<'_>) -> InboundMessage {
    let headers = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default();
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

/// Stores `position` (where a new owner of the partition starts) for the next commit. A
/// partition revoked meanwhile cannot be stored to; its new owner re-reads from the last
/// commit.
pub fn store_position(consumer: &GroupConsumer, topic: &str, partition: i32, position: i64) {
    let mut tpl = TopicPartitionList::new();
    if let Err(e) = tpl.add_partition_offset(topic, partition, Offset::Offset(position)) {
        warn!(error = %e, "could not build an offset list");
        return;
    }
    if let Err(e) = consumer.store_offsets(&tpl) {
        debug!(error = %e, topic, partition, "offset not stored (partition revoked?)");
    }
}
