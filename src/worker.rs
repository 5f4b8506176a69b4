//! The worker's main loop: consume, process, publish, store the offset; and shut down.
//!
//! Reads top to bottom: each message is received (its `received` event enqueued),
//! completed (translated, validated, applied), and its remaining events and dead letter
//! enqueued. The sends of every message join an ordered queue of pending messages; as
//! the head of that queue is acknowledged by the broker its offset is stored, so an
//! offset is stored only once the message and every message before it has its outcome
//! published. librdkafka auto-commits stored offsets; shutdown commits them at once.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use futures::stream::FuturesOrdered;
use futures::StreamExt;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::health::Health;
use crate::kafka::consumer::{self, GroupConsumer, GroupContext};
use crate::kafka::publisher::{Delivery, PublishError, Publisher};
use crate::message::{InboundMessage, SourceRef};
use crate::outcome::Stage;
use crate::pipeline::Pipeline;
use crate::translate::Translator;

/// Messages whose outcomes may be awaiting acknowledgement at once. At the limit the
/// worker stops reading until the oldest is acknowledged.
const MAX_PENDING_MESSAGES: usize = 1024;

/// A processed message waiting for its sends to be acknowledged.
type Pending = futures::future::BoxFuture<'static, Result<SourceRef, PublishError>>;

/// Runs the worker until `shutdown` completes, then drains and leaves the group.
pub async fn run<T: Translator>(
    config: &Config,
    pipeline: Pipeline<T>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let properties = config.kafka.properties()?;
    let publisher = Publisher::new(
        &properties,
        &config.topics.outcomes_topic,
        &config.topics.dlq_topic,
    )
    .context("could not create the Kafka producer")?;
    let mut expected: Vec<(&'static str, &str)> = config
        .topics
        .topics
        .iter()
        .map(|t| ("TOPICS (--topics)", t.as_str()))
        .collect();
    expected.push((
        "OUTCOMES_TOPIC (--outcomes-topic)",
        &config.topics.outcomes_topic,
    ));
    expected.push(("DLQ_TOPIC (--dlq-topic)", &config.topics.dlq_topic));
    publisher.check_topics_exist(&expected)?;
    let context = GroupContext {
        health: health.clone(),
    };
    let consumer = consumer::create(&properties, &config.group, context)
        .context("could not create the Kafka consumer")?;
    let topics: Vec<&str> = config.topics.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .context("could not subscribe to TOPICS")?;
    info!(group = %config.group, topics = ?topics, sink = %config.intent_sink, "worker started");

    let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
    let result = consume(&consumer, &pipeline, &publisher, &mut pending, shutdown).await;
    health.stopping();
    if let Err(e) = &result {
        warn!(error = %e, "stopping: an outcome could not be published");
    }

    // Finish what is in flight, within the deadline; what is left is handed back to
    // the group uncommitted, and the next owner processes it again.
    let deadline = config.shutdown_timeout;
    let drained = tokio::time::timeout(deadline, async {
        while let Some(done) = pending.next().await {
            store_offset(&consumer, done?);
        }
        Ok::<_, PublishError>(())
    })
    .await;
    match drained {
        Ok(Ok(())) => info!("in-flight messages finished"),
        Ok(Err(e)) => warn!(error = %e, "an outcome could not be published while draining"),
        Err(_) => warn!(
            handed_back = pending.len(),
            deadline = ?deadline,
            "shutdown deadline reached; unfinished messages are left to the next owner"
        ),
    }
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        debug!(error = %e, "final commit: nothing committed");
    }
    if let Err(e) = publisher.flush(deadline) {
        warn!(error = %e, "producer flush incomplete");
    }
    // Dropping the consumer leaves the group; it blocks while librdkafka closes.
    tokio::task::spawn_blocking(move || drop(consumer))
        .await
        .context("consumer close panicked")?;
    info!("worker stopped");
    result.map_err(Into::into)
}

/// The loop proper: returns when `shutdown` completes or a publication fails.
async fn consume<T: Translator>(
    consumer: &GroupConsumer,
    pipeline: &Pipeline<T>,
    publisher: &Publisher,
    pending: &mut FuturesOrdered<Pending>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), PublishError> {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => {
                info!(in_flight = pending.len(), "shutdown requested: no new messages");
                return Ok(());
            }
            Some(done) = pending.next(), if !pending.is_empty() => {
                store_offset(consumer, done?);
            }
            received = consumer.recv(), if pending.len() < MAX_PENDING_MESSAGES => {
                let message = match received {
                    Ok(record) => consumer::to_inbound(&record),
                    Err(e) => {
                        warn!(error = %e, "consumer error");
                        continue;
                    }
                };
                pending.push_back(process(pipeline, publisher, message).await?);
            }
        }
    }
}

/// Processes one message and enqueues everything it publishes. The returned future
/// resolves once all of it is acknowledged.
async fn process<T: Translator>(
    pipeline: &Pipeline<T>,
    publisher: &Publisher,
    message: InboundMessage,
) -> Result<Pending, PublishError> {
    let (received, event) = pipeline.receive(&message);
    let key = received.key.value.clone();
    let mut deliveries: Vec<Delivery> = vec![publisher.outcome(&event).await?];
    let completion = pipeline.complete(received).await;
    if let Some(failure) = &completion.dead_letter {
        deliveries.push(publisher.dead_letter(&message, &key, failure).await?);
    }
    for event in &completion.outcomes {
        deliveries.push(publisher.outcome(event).await?);
    }
    if let Some(terminal) = completion.outcomes.iter().find(|e| e.stage.is_terminal()) {
        let source = &message.source;
        match (&terminal.error, terminal.stage) {
            (Some(error), stage) => info!(
                key = %key, stage = stage.as_str(), code = error.code.as_str(), reason = %error.message,
                topic = %source.topic, partition = source.partition, offset = source.offset,
                "message not applied"
            ),
            (None, Stage::Applied) => debug!(
                key = %key, intent = ?terminal.intent.as_ref().map(|i| &i.name),
                topic = %source.topic, partition = source.partition, offset = source.offset,
                "intent applied"
            ),
            (None, stage) => debug!(key = %key, stage = stage.as_str(), "message done"),
        }
    }
    let source = message.source;
    Ok(Box::pin(async move {
        futures::future::try_join_all(deliveries).await?;
        Ok(source)
    }))
}

/// Stores the offset after `done`: the next message of its partition is where a new
/// owner starts. A partition revoked meanwhile cannot be stored to; its new owner
/// re-reads from the last commit.
fn store_offset(consumer: &GroupConsumer, done: SourceRef) {
    let mut tpl = TopicPartitionList::new();
    if let Err(e) =
        tpl.add_partition_offset(&done.topic, done.partition, Offset::Offset(done.offset + 1))
    {
        warn!(error = %e, "could not build an offset list");
        return;
    }
    if let Err(e) = consumer.store_offsets(&tpl) {
        debug!(error = %e, topic = %done.topic, partition = done.partition, "offset not stored (partition revoked?)");
    }
}
