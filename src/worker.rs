//! The worker's main loop: consume, deduplicate, process, publish, store the offset; and
//! shut down.
//!
//! Reads top to bottom. Each message is received (its `received` event enqueued) and its
//! key looked up in its partition's dedup state (restored from the changelog the first
//! time the partition is seen after an assignment). A key already completed gets a
//! `duplicate` event and nothing else; a new key (or one whose attempt never finished)
//! is completed by the pipeline, and its changelog entry, dead letter and events are
//! enqueued. The sends of every message are awaited together; when they are all
//! acknowledged the message is done, and the [`OffsetTracker`] moves its partition's
//! committable position past every message below which all are done. So an offset is
//! stored only once the message and every earlier one of its partition has its changelog
//! entry and outcome published, whatever order acknowledgements arrive in. librdkafka
//! auto-commits stored offsets; shutdown commits at once.

use std::future::Future;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use rdkafka::consumer::{CommitMode, Consumer};
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::dedup::{self, Check, Dedup, Entry, PartitionStore, State};
use crate::health::Health;
use crate::intent::intent_name;
use crate::kafka::changelog;
use crate::kafka::consumer::{self, GroupConsumer, GroupContext};
use crate::kafka::publisher::{Delivery, PublishError, Publisher};
use crate::message::{InboundMessage, SourceRef};
use crate::offsets::OffsetTracker;
use crate::outcome::{Failure, IntentRef, Original, OutcomeEvent, Stage};
use crate::pipeline::Pipeline;
use crate::translate::Translator;

/// Messages whose outcomes may be awaiting acknowledgement at once. At the limit the
/// worker stops reading until the oldest is acknowledged.
const MAX_PENDING_MESSAGES: usize = 1024;

/// A processed message waiting for its sends to be acknowledged.
type Pending =
    std::pin::Pin<Box<dyn Future<Output = Result<SourceRef, PublishError>> + Send + Sync>>;

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
    changelog::ensure_changelogs(
        &properties,
        &config.group,
        &config.topics.topics,
        config.dedup_changelog_replication,
    )
    .await?;

    let reassigned = Arc::new(Mutex::new(Vec::new()));
    let context = GroupContext {
        health: health.clone(),
        reassigned: reassigned.clone(),
        producer: publisher.producer(),
    };
    let consumer = consumer::create(&properties, &config.group, context)
        .context("could not create the Kafka consumer")?;
    let topics: Vec<&str> = config.topics.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .context("could not subscribe to TOPICS")?;
    info!(group = %config.group, topics = ?topics, sink = %config.intent_sink, "worker started");

    let mut worker = Worker {
        consumer: &consumer,
        pipeline: &pipeline,
        publisher: &publisher,
        dedup: Dedup::new(config.dedup_window, config.dedup_max_entries),
        reassigned,
        properties: &properties,
        group: &config.group,
        offsets: OffsetTracker::default(),
    };
    let mut pending: FuturesUnordered<Pending> = FuturesUnordered::new();
    let result = worker.consume(&mut pending, shutdown).await;
    health.stopping();
    if let Err(e) = &result {
        warn!(error = %format!("{e:#}"), "stopping on an error");
    }

    // Finish what is in flight, within the deadline; what is left is handed back to
    // the group uncommitted, and the next owner processes it again.
    let deadline = config.shutdown_timeout;
    let drained = tokio::time::timeout(deadline, async {
        while let Some(done) = pending.next().await {
            worker.done(done?);
        }
        Ok::<_, PublishError>(())
    })
    .await;
    drop(worker);
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
    result
}

/// What the loop works with.
struct Worker<'a, T> {
    consumer: &'a GroupConsumer,
    pipeline: &'a Pipeline<T>,
    publisher: &'a Publisher,
    dedup: Dedup,
    /// Partitions assigned or revoked since the last message, whose state is stale.
    reassigned: Arc<Mutex<Vec<(String, i32)>>>,
    properties: &'a std::collections::BTreeMap<String, String>,
    group: &'a str,
    /// Messages consumed and not yet done, per partition.
    offsets: OffsetTracker,
}

impl<T: Translator> Worker<'_, T> {
    /// The loop proper: returns when `shutdown` completes, or on an error that makes
    /// going on unsafe (an outcome or changelog entry that cannot be published).
    async fn consume(
        &mut self,
        pending: &mut FuturesUnordered<Pending>,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => {
                    info!(in_flight = pending.len(), "shutdown requested: no new messages");
                    return Ok(());
                }
                Some(done) = pending.next(), if !pending.is_empty() => {
                    self.forget_reassigned();
                    self.done(done?);
                }
                received = self.consumer.recv(), if pending.len() < MAX_PENDING_MESSAGES => {
                    let message = match received {
                        Ok(record) => consumer::to_inbound(&record),
                        Err(e) => {
                            warn!(error = %e, "consumer error");
                            continue;
                        }
                    };
                    self.forget_reassigned();
                    self.offsets.arrived(&message.source);
                    pending.push(self.process(message).await?);
                }
            }
        }
    }

    /// Drops the dedup state of partitions that changed hands since the last message.
    fn forget_reassigned(&mut self) {
        let changed = match self.reassigned.lock() {
            Ok(mut list) => std::mem::take(&mut *list),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for (topic, partition) in changed {
            self.dedup.drop_partition(&topic, partition);
            self.offsets.forget(&topic, partition);
        }
    }

    /// A message's sends are all acknowledged: store its partition's new committable
    /// position, if it moved.
    fn done(&mut self, message: SourceRef) {
        if let Some(position) = self.offsets.completed(&message) {
            consumer::store_position(self.consumer, &message.topic, message.partition, position);
        }
    }

    /// Processes one message and enqueues everything it publishes. The returned future
    /// resolves once all of it is acknowledged.
    async fn process(&mut self, message: InboundMessage) -> anyhow::Result<Pending> {
        let (received, event) = self.pipeline.receive(&message);
        let key = received.key.value.clone();
        let source = message.source.clone();
        let mut deliveries: Vec<Delivery> = vec![self.publisher.outcome(&event).await?];
        let changelog = dedup::changelog_topic(self.group, &source.topic);
        let now = dedup::now_secs();
        let store = self.store(&source.topic, source.partition).await?;
        let labels = [("topic", source.topic.clone())];

        match store.check(&key, source.offset, now) {
            Check::Duplicate(original) => {
                metrics::counter!("dedup_hits_total", &labels).increment(1);
                let namespace = store.namespace(&original).map(str::to_string);
                let mut event = OutcomeEvent::new(&received.key, Stage::Duplicate, &source);
                event.message_type = received.request.as_ref().ok().map(|r| r.message_type());
                if let State::Done(outcome) = original.state {
                    event.original = Some(Original {
                        stage: outcome.stage,
                        intent: intent_ref(&key, namespace.as_deref()),
                        source: SourceRef {
                            offset: original.offset,
                            ..source.clone()
                        },
                    });
                }
                debug!(key = %key, original_offset = original.offset, "duplicate");
                // The sighting refreshes the entry's age, on disk as in memory.
                let mut seen = original;
                seen.last_seen = now;
                let value = seen.encode(namespace.as_deref());
                deliveries.push(
                    self.publisher
                        .changelog(&changelog, source.partition, &key, Some(&value))
                        .await?,
                );
                deliveries.push(self.publisher.outcome(&event).await?);
            }
            Check::Redelivery(original) => {
                // Completed before a crash or rebalance, offset not committed: its events
                // may never have gone out. Publish them again (same event ids).
                metrics::counter!("dedup_redeliveries_total", &labels).increment(1);
                let namespace = store.namespace(&original).map(str::to_string);
                for event in republished(&received.key, &source, &original, namespace.as_deref()) {
                    deliveries.push(self.publisher.outcome(&event).await?);
                }
            }
            check @ (Check::New | Check::TakeOver(_)) => {
                if let Check::TakeOver(attempt) = check {
                    metrics::counter!("dedup_takeovers_total", &labels).increment(1);
                    info!(key = %key, started = attempt.since, offset = attempt.offset, "taking over an attempt that never finished");
                }
                let started = Entry {
                    state: State::InProgress,
                    offset: source.offset,
                    since: now,
                    last_seen: now,
                    namespace: 0,
                };
                let evicted = store.insert(&key, started, None);
                let value = started.encode(None);
                self.tombstone(&source, evicted, "bound", &mut deliveries)
                    .await?;
                deliveries.push(
                    self.publisher
                        .changelog(&changelog, source.partition, &key, Some(&value))
                        .await?,
                );

                let completion = self.pipeline.complete(received).await;

                if let Some(failure) = &completion.dead_letter {
                    deliveries.push(self.publisher.dead_letter(&message, &key, failure).await?);
                }
                if let Some(terminal) = completion.outcomes.iter().find(|e| e.stage.is_terminal()) {
                    log_terminal(&key, &source, terminal);
                    let done = Entry {
                        state: State::Done(dedup::Outcome {
                            stage: terminal.stage,
                            message_type: terminal.message_type,
                            translator: terminal.translator,
                            error: terminal.error.as_ref().map(|f| f.code),
                        }),
                        since: dedup::now_secs(),
                        ..started
                    };
                    let namespace = terminal.intent.as_ref().map(|i| i.namespace.as_str());
                    let value = done.encode(namespace);
                    // Cannot evict: the key is already in the store.
                    self.store(&source.topic, source.partition)
                        .await?
                        .insert(&key, done, namespace);
                    deliveries.push(
                        self.publisher
                            .changelog(&changelog, source.partition, &key, Some(&value))
                            .await?,
                    );
                }
                for event in &completion.outcomes {
                    deliveries.push(self.publisher.outcome(event).await?);
                }
            }
        }
        if let Some(store) = self.dedup.partition(&source.topic, source.partition) {
            metrics::gauge!("dedup_entries", "topic" => source.topic.clone(), "partition" => source.partition.to_string())
                .set(store.len() as f64);
        }
        Ok(Box::pin(async move {
            futures::future::try_join_all(deliveries).await?;
            Ok(source)
        }))
    }

    /// The dedup state of a partition, restored from its changelog if this worker has
    /// not read it since the partition was assigned. Restoring one restores every
    /// assigned partition still without state, side by side: after a rebalance the
    /// first messages of all of them are about to arrive.
    async fn store(&mut self, topic: &str, partition: i32) -> anyhow::Result<&mut PartitionStore> {
        if self.dedup.partition(topic, partition).is_none() {
            let mut missing = vec![(topic.to_string(), partition)];
            if let Ok(assignment) = self.consumer.assignment() {
                for e in assignment.elements() {
                    let tp = (e.topic().to_string(), e.partition());
                    if !missing.contains(&tp) && self.dedup.partition(&tp.0, tp.1).is_none() {
                        missing.push(tp);
                    }
                }
            }
            let limits = self.dedup.limits();
            let restores = missing.into_iter().map(|(topic, partition)| {
                let properties = self.properties.clone();
                let changelog = dedup::changelog_topic(self.group, &topic);
                tokio::task::spawn_blocking(move || {
                    changelog::restore(&properties, &changelog, partition, limits)
                        .map(|(store, restored)| (topic, partition, store, restored))
                })
            });
            for restore in futures::future::join_all(restores).await {
                let (topic, partition, store, restored) =
                    restore.context("the changelog reader panicked")??;
                self.install(&topic, partition, store, restored).await?;
            }
        }
        self.dedup
            .partition(topic, partition)
            .context("dedup state vanished after its restore")
    }

    /// Installs a restored partition state, trimmed to the window and the bound.
    async fn install(
        &mut self,
        topic: &str,
        partition: i32,
        mut store: PartitionStore,
        restored: changelog::Restored,
    ) -> anyhow::Result<()> {
        let (dropped, expired) = store.trim(dedup::now_secs());
        let labels = [("topic", topic.to_string())];
        metrics::counter!("dedup_restored_entries_total", &labels).increment(store.len() as u64);
        metrics::histogram!("dedup_restore_duration_seconds", &labels)
            .record(restored.elapsed.as_secs_f64());
        info!(
            topic,
            partition,
            entries = store.len(),
            records = restored.records,
            skipped = restored.skipped,
            expired,
            evicted = dropped.len() - expired,
            elapsed_ms = restored.elapsed.as_millis() as u64,
            "dedup state restored"
        );
        // Tombstones for what the window and the bound dropped; not tied to a message.
        let mut deliveries = Vec::new();
        let at = SourceRef {
            topic: topic.to_string(),
            partition,
            offset: -1,
        };
        let (windowed, bounded) = dropped.split_at(expired);
        self.tombstone(&at, windowed.to_vec(), "window", &mut deliveries)
            .await?;
        self.tombstone(&at, bounded.to_vec(), "bound", &mut deliveries)
            .await?;
        self.dedup.restored(topic, partition, store);
        Ok(())
    }

    /// Enqueues changelog tombstones for keys the state of `input`'s partition dropped,
    /// counting them as evicted for `reason` (`window` or `bound`).
    async fn tombstone(
        &self,
        input: &SourceRef,
        keys: Vec<Box<str>>,
        reason: &'static str,
        deliveries: &mut Vec<Delivery>,
    ) -> Result<(), PublishError> {
        if keys.is_empty() {
            return Ok(());
        }
        metrics::counter!("dedup_evictions_total", "topic" => input.topic.clone(), "reason" => reason)
            .increment(keys.len() as u64);
        info!(topic = %input.topic, partition = input.partition, evicted = keys.len(), reason, "dedup entries evicted");
        let changelog = dedup::changelog_topic(self.group, &input.topic);
        for key in keys {
            deliveries.push(
                self.publisher
                    .changelog(&changelog, input.partition, &key, None)
                    .await?,
            );
        }
        Ok(())
    }
}

/// The intent a completed key names, when it has one.
fn intent_ref(key: &str, namespace: Option<&str>) -> Option<IntentRef> {
    namespace.map(|namespace| IntentRef {
        name: intent_name(key),
        namespace: namespace.to_string(),
    })
}

/// The terminal event (and `dead_lettered`, for a failure) of a completed message, as far
/// as its dedup entry can rebuild it. The event ids are those of the first publication.
fn republished(
    key: &crate::decode::IdempotencyKey,
    source: &SourceRef,
    entry: &Entry,
    namespace: Option<&str>,
) -> Vec<OutcomeEvent> {
    let State::Done(outcome) = entry.state else {
        return Vec::new();
    };
    let mut terminal = OutcomeEvent::new(key, outcome.stage, source);
    terminal.message_type = outcome.message_type;
    terminal.translator = outcome.translator;
    terminal.intent = intent_ref(&key.value, namespace);
    let Some(code) = outcome.error else {
        return vec![terminal];
    };
    terminal.error = Some(Failure::new(
        code,
        "published again after a restart; the first publication of this event has the details",
    ));
    let mut dead_lettered = terminal.clone();
    dead_lettered.stage = Stage::DeadLettered;
    dead_lettered.event_id = crate::outcome::event_id(&key.value, Stage::DeadLettered);
    vec![terminal, dead_lettered]
}

fn log_terminal(key: &str, source: &SourceRef, terminal: &OutcomeEvent) {
    match (&terminal.error, terminal.stage) {
        (Some(error), stage) => info!(
            key = %key, stage = stage.as_str(), code = error.code.as_str(), reason = %error.message,
            topic = %source.topic, partition = source.partition, offset = source.offset,
            "message not applied"
        ),
        (None, stage) => debug!(
            key = %key, stage = stage.as_str(), intent = ?terminal.intent.as_ref().map(|i| &i.name),
            topic = %source.topic, partition = source.partition, offset = source.offset,
            "message done"
        ),
    }
}
