//! The worker's main loop: consume, deduplicate, schedule, process, publish, store the
//! offset; hand partitions over; shut down.
//!
//! Reads top to bottom. A consumed message is admitted: its `received` event is enqueued
//! and it waits in its key's lane ([`Scheduler`]). When it may start, its idempotency key
//! is looked up in its partition's dedup state (restored from the changelog the first
//! time the partition is seen after an assignment): a key already completed gets a
//! `duplicate` event at once, or a `rejected` conflict when another payload claimed it;
//! a message that claims no key (a tombstone, a bad key header) skips the lookup and is
//! rejected by the pipeline; a new key (or one whose attempt never finished) is
//! translated, validated and applied by a future of its own, polled side by side with
//! the others by this task (no hand-off between threads: an LLM call waits on I/O, and a
//! translator must not block). When it finishes, its changelog entry, dead letter and
//! events are enqueued and its lane's next message may start. The sends of a message are
//! counted together ([`Sends`]); when they are all acknowledged the message is done, and the
//! partition's [`crate::offsets::OffsetTracker`] moves its committable position past every
//! message below which all are done. librdkafka auto-commits stored positions.
//!
//! Everything known about a partition lives in its [`partition::PartitionState`], created
//! at assignment and dropped at hand-over. A partition whose buffer is full (in messages
//! or bytes), or every partition when the worker's buffer is full in bytes, is paused
//! until half of it is done; the poll thread keeps polling. A partition whose messages wait
//! for the intent sink (it is down) is paused until none does ([`sink`]); one whose next
//! record waits for its writer schema from the schema registry is paused, its later records
//! held back in order, until the registry answers ([`schemas`]). A revoked
//! partition stops starting messages, and the group waits while its in-flight ones
//! finish (not those waiting for the sink), up to [`Config::revoke_drain_timeout`]; then
//! its lease ends, and what was still in flight is fenced: it applies and publishes
//! nothing, and the next owner processes it again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::apply::status::SinkState;
use crate::config::Config;
use crate::dedup::{self, Entry};
use crate::health::Health;
use crate::kafka::changelog;
use crate::kafka::consumer::{self, GroupConsumer, GroupEvent};
use crate::kafka::lag::LagReader;
use crate::kafka::publisher::{Acknowledged, PublishError, Publisher, Sends};
use crate::lease::{Fenced, Held, Lease};
use crate::message::{InboundMessage, SourceRef};
use crate::meters;
use crate::meters::partitions::PartitionGauges;
use crate::outcome::{ErrorCode, OutcomeEvent, Stage};
use crate::pipeline::{Completion, Pipeline, Received};
use crate::schedule::{ordering_key, Lane, PartitionId, Scheduler};
use crate::translate::Translator;

mod partition;
mod rebalance;
mod schemas;
mod sink;
mod state;

use partition::{Budget, Partitions};

/// Events taken from the poll thread at once. Taking them in batches frees room in the
/// hand-off queue in batches, so the poll thread, when it waits for room, is woken once
/// per batch rather than once per message.
pub const EVENT_BATCH: usize = 64;

/// Time given to the final commit and to leaving the group even when the shutdown
/// deadline has passed: a prompt leave hands the partitions over at once, rather than
/// after the session timeout.
const LEAVE_AT_LEAST: Duration = Duration::from_secs(2);

/// How often the main loop turns when nothing happens, beating its heartbeat
/// ([`Health::main_loop`]).
pub const HEARTBEAT_TICK: Duration = Duration::from_secs(1);

/// Runs the worker until `shutdown` completes, then drains and leaves the group.
pub async fn run<T: Translator + 'static>(
    config: &Config,
    pipeline: Pipeline<T>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let properties = config.kafka.properties()?;
    health.configure(config.liveness_timeout, config.readiness_grace);
    tokio::pin!(shutdown);
    crate::avro::read::bound_allocations();
    // One registry client (and cache) for the writer schemas of the input and the
    // registration of the outcome schema.
    let registry = crate::avro::registry::Registry::from_args(&config.registry)?.map(Arc::new);
    let pipeline = pipeline.with_registry(registry.clone());
    let (mut publisher, acknowledged) = Publisher::new(
        &properties,
        &config.topics.outcomes_topic,
        &config.topics.dlq_topic,
        Some(health.clone()),
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
    // Before consuming: a message must not be processed whose outcome cannot be written.
    let Some(outcome_encoding) = crate::avro::registration::outcome_encoding(
        config.outcomes_format,
        registry.as_deref(),
        &config.topics.outcomes_topic,
        &health,
        shutdown.as_mut(),
    )
    .await?
    else {
        info!("shut down while waiting for the schema registry; nothing was consumed");
        return Ok(());
    };
    publisher.set_outcome_encoding(outcome_encoding);
    changelog::ensure_changelogs(
        &properties,
        &config.group,
        &config.topics.topics,
        config.dedup_changelog_replication,
        config.dedup_rebuild,
    )
    .await?;

    let held = Held::default();
    let (consumer, mut events) = GroupConsumer::start(consumer::Settings {
        properties: &properties,
        group: &config.group,
        topics: &config.topics.topics,
        health: health.clone(),
        flush_producer: Box::new(publisher.flusher()),
        revoke_wait: config.revoke_drain_timeout,
        leases: held.clone(),
    })
    .context("could not create the Kafka consumer")?;
    // With a sink whose intents have a status, the lifecycle comes back: `deployed` and
    // `failed` for the intents of the partitions this worker holds.
    let lifecycle = crate::lifecycle::Handle::for_worker(
        &config.intent_sink,
        &properties,
        &config.topics.outcomes_topic,
        outcome_encoding,
        held.clone(),
    )
    .await?;
    info!(
        group = %config.group, topics = ?config.topics.topics, sink = %config.intent_sink,
        max_in_flight = config.max_in_flight, partition_buffer = config.partition_buffer,
        "worker started"
    );

    meters::register_known(
        &config.topics.topics,
        config
            .llm
            .llm_endpoint
            .as_ref()
            .and(config.llm.llm_model.as_deref()),
    );
    let (stop_lag, lag_stopped) = tokio::sync::oneshot::channel();
    let lag = tokio::spawn(refresh_lag(
        consumer.lag_reader(),
        health.partitions.clone(),
        lag_stopped,
    ));
    let sink = pipeline.sink_status().subscribe();
    meters::sink_up().set(if sink.borrow().is_down() { 0.0 } else { 1.0 });
    let mut worker = Worker {
        consumer: &consumer,
        pipeline: Arc::new(pipeline),
        health: health.clone(),
        sink,
        publisher: &publisher,
        limits: dedup::Limits::new(config.dedup_window, config.dedup_max_entries),
        restore_concurrency: config.dedup_restore_concurrency,
        properties: &properties,
        group: &config.group,
        partitions: Partitions::new(
            Budget {
                messages: config.partition_buffer,
                bytes: config.partition_buffer_bytes,
                total_bytes: config.buffer_bytes,
            },
            health.partitions.clone(),
        ),
        scheduler: Scheduler::new(config.max_in_flight),
        held,
        epochs: 0,
        changelogs: config
            .topics
            .topics
            .iter()
            .map(|t| (t.clone(), dedup::changelog_topic(&config.group, t)))
            .collect(),
        revocations: Vec::new(),
        revoke_drain_timeout: config.revoke_drain_timeout,
        translations: FuturesUnordered::new(),
        schema_fetches: FuturesUnordered::new(),
        acknowledged,
        sealed: 0,
        meters: Meters::new(&config.topics.topics),
    };
    let result = consume_until(&mut worker, &mut events, shutdown).await;
    health.stopping();
    if let Err(e) = &result {
        warn!(error = %format!("{e:#}"), "stopping on an error");
    }

    // Finish what is in flight, within the deadline; what is left is handed back to
    // the group uncommitted, and the next owner processes it again. Every step of the
    // shutdown shares the one deadline, so that brokers that do not answer cannot make
    // it several times as long.
    let deadline = config.shutdown_timeout;
    let stop_by = tokio::time::Instant::now() + deadline;
    let left = || stop_by.saturating_duration_since(tokio::time::Instant::now());
    match tokio::time::timeout_at(stop_by, worker.finish_in_flight(&mut events)).await {
        Ok(Ok(())) => info!("in-flight messages finished"),
        Ok(Err(e)) => warn!(error = %format!("{e:#}"), "in-flight messages not finished"),
        Err(_) => warn!(
            handed_back = worker.scheduler.in_flight(),
            deadline = ?deadline,
            "shutdown deadline reached; unfinished messages are left to the next owner"
        ),
    }
    worker.end_leases();
    drop(worker);
    // A read in flight ends within its bound; none may hold the consumer while it closes.
    let _ = stop_lag.send(());
    let _ = tokio::time::timeout(left().max(LEAVE_AT_LEAST), lag).await;
    health.partitions.clear();
    if let Some(lifecycle) = lifecycle {
        // An event being published is finished, within the deadline; one cut short is
        // published again by the next owner (same event id: it was not recorded).
        match tokio::time::timeout_at(stop_by, lifecycle.stop()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %format!("{e:#}"), "lifecycle watcher stopped on an error"),
            Err(_) => warn!("shutdown deadline reached; the lifecycle watcher was cut short"),
        }
    }
    consumer.commit_within(left().max(LEAVE_AT_LEAST)).await;
    if let Err(e) = publisher.flush(left()) {
        warn!(error = %e, "producer flush incomplete");
    }
    consumer
        .close_within(events, left().max(LEAVE_AT_LEAST))
        .await?;
    info!("worker stopped");
    result
}

/// Runs the loop until `shutdown`. The loop sees `shutdown` between two turns, but a turn
/// may be waiting inside a send for room in a full producer queue: then sends stop
/// waiting, the turn fails at once, and the loop ends (its message is left to the next
/// owner).
async fn consume_until<T: Translator + 'static>(
    worker: &mut Worker<'_, T>,
    events: &mut mpsc::Receiver<GroupEvent>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let publisher = worker.publisher;
    let (stop, mut stopped) = watch::channel(false);
    let consumed = worker.consume(events, async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    });
    tokio::pin!(consumed, shutdown);
    let result = tokio::select! {
        result = &mut consumed => return result,
        () = &mut shutdown => {
            publisher.stop_waiting_for_room();
            stop.send_replace(true);
            consumed.await
        }
    };
    // What is in flight is finished within the shutdown deadline, waiting for room.
    publisher.wait_for_room();
    match result {
        Err(e) if PublishError::is_queue_full(&e) => {
            warn!(error = %e, "shutdown while the producer queue was full: the message being sent is left to the next owner");
            Ok(())
        }
        result => result,
    }
}

/// A consumed message waiting in its lane.
struct Admitted {
    message: InboundMessage,
    /// Shared with its translation, which runs beside the worker.
    received: Arc<Received>,
    /// Its sends so far (the `received` event).
    sends: Arc<Sends<Sent>>,
}

/// What a message's [`Sends`] bring back when they are all acknowledged.
struct Sent {
    source: SourceRef,
    /// The lease it was consumed under: an acknowledgement after a hand-over is ignored.
    epoch: u64,
    /// When it was consumed.
    at: Instant,
    /// Its size, as the buffer budgets count it ([`InboundMessage::size`]).
    bytes: usize,
    /// Nanoseconds spent translating and applying, left out of the worker's own overhead.
    took: AtomicU64,
    /// Its terminal stage (and error code), once it has one; counted when acknowledged.
    /// A redelivery's re-published events are not counted again.
    terminal: OnceLock<(Stage, Option<ErrorCode>)>,
}

/// A message whose translation task has ended, back on the worker.
struct Finished {
    lane: Lane,
    lease: Lease,
    admitted: Admitted,
    /// The dedup entry written when it started; `None` for a message that does not
    /// claim its key.
    started: Option<Entry>,
    /// Time spent translating and applying.
    took: Duration,
    result: Result<Completion, Fenced>,
}

/// A message being translated and applied.
type Translation = std::pin::Pin<Box<dyn Future<Output = Finished> + Send>>;

/// Revoked partitions the group is waiting for.
struct Revocation {
    partitions: Vec<PartitionId>,
    deadline: tokio::time::Instant,
    started: Instant,
    handed_over: std::sync::mpsc::SyncSender<()>,
}

/// What the loop works with.
struct Worker<'a, T> {
    consumer: &'a GroupConsumer,
    pipeline: Arc<Pipeline<T>>,
    /// What `/readyz` answers; the worker tells it when the sink goes down or comes back.
    health: Arc<Health>,
    /// The sink's state ([`Pipeline::sink_status`]): which partitions' messages wait for it.
    sink: watch::Receiver<SinkState>,
    publisher: &'a Publisher<Sent>,
    /// The dedup state's window and bound (the state is in each partition's).
    limits: dedup::Limits,
    /// Dedup changelog partitions restored at once (`DEDUP_RESTORE_CONCURRENCY`).
    restore_concurrency: usize,
    properties: &'a std::collections::BTreeMap<String, String>,
    group: &'a str,
    /// The partitions this worker holds, each with its state.
    partitions: Partitions<(Lane, Admitted)>,
    scheduler: Scheduler<Admitted>,
    /// The partitions this worker holds, with the lease their work carries; shared with
    /// the rebalance callback.
    held: Held,
    /// Leases handed out so far; the next lease's epoch.
    epochs: u64,
    /// The dedup changelog topic of each input topic.
    changelogs: HashMap<String, String>,
    revocations: Vec<Revocation>,
    revoke_drain_timeout: Duration,
    /// Messages being translated and applied; at most `max_in_flight`.
    translations: FuturesUnordered<Translation>,
    /// Writer schemas being fetched, one per partition whose next record waits for one.
    schema_fetches: FuturesUnordered<schemas::SchemaFetch>,
    /// Messages whose sends are all acknowledged.
    acknowledged: Acknowledged<Sent>,
    /// Messages whose sends are all enqueued and not yet all acknowledged.
    sealed: usize,
    meters: Meters,
}

/// The metrics updated for every message, registered once (when the worker starts,
/// after the recorder is installed) rather than looked up each time.
struct Meters {
    waiting: metrics::Gauge,
    in_flight: metrics::Gauge,
    until_enqueued: metrics::Histogram,
    until_acknowledged: metrics::Histogram,
    /// `networkintent_processed_total` by input topic, then by status: success,
    /// duplicate, rejected, failed.
    processed: HashMap<String, [metrics::Counter; 4]>,
    processing: metrics::Histogram,
}

impl Meters {
    fn new(topics: &[String]) -> Self {
        let overhead = |until: &'static str| meters::message_overhead(until);
        let processed = topics
            .iter()
            .map(|topic| {
                let counters = meters::STATUSES.map(|status| meters::processed(topic, status));
                (topic.clone(), counters)
            })
            .collect();
        Self {
            waiting: meters::messages_waiting(),
            in_flight: meters::messages_in_flight(),
            until_enqueued: overhead("enqueued"),
            until_acknowledged: overhead("acknowledged"),
            processed,
            processing: meters::processing_duration(),
        }
    }

    /// A message is done (all its sends acknowledged), `took` after it was consumed: the
    /// integration guide's metrics. A rejection or failure also counts in
    /// `networkintent_failed_total{code}`.
    fn processed(&self, topic: &str, stage: Stage, code: Option<ErrorCode>, took: Duration) {
        let status = match stage {
            Stage::Applied | Stage::Deployed => 0,
            Stage::Duplicate => 1,
            Stage::Rejected | Stage::DeadLettered => 2,
            Stage::Failed => 3,
            Stage::Received | Stage::Translated => return,
        };
        match self.processed.get(topic) {
            Some(counters) => counters[status].increment(1),
            None => meters::processed(topic, meters::STATUSES[status]).increment(1),
        }
        self.processing.record(took.as_secs_f64());
        if let Some(code) = code {
            meters::failed(code).increment(1);
        }
    }
}

impl<T: Translator + 'static> Worker<'_, T> {
    /// The loop proper: returns when `shutdown` completes, or on an error that makes
    /// going on unsafe (an outcome or changelog entry that cannot be published).
    async fn consume(
        &mut self,
        events: &mut mpsc::Receiver<GroupEvent>,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        let mut batch = Vec::with_capacity(EVENT_BATCH);
        let mut acknowledged = Vec::with_capacity(EVENT_BATCH);
        let mut heartbeat = tokio::time::interval(HEARTBEAT_TICK);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.health.main_loop.beat();
            self.start_ready().await?;
            let next_deadline = self.revocations.iter().map(|r| r.deadline).min();
            tokio::select! {
                biased;
                () = &mut shutdown => {
                    info!(
                        in_flight = self.scheduler.in_flight(),
                        waiting = self.scheduler.waiting(),
                        "shutdown requested: no new messages"
                    );
                    return Ok(());
                }
                Some(finished) = self.translations.next(), if !self.translations.is_empty() => {
                    self.finish(finished).await?;
                }
                Some(fetched) = self.schema_fetches.next(), if !self.schema_fetches.is_empty() => {
                    self.schema_fetched(fetched).await?;
                }
                _ = self.acknowledged.recv_many(&mut acknowledged, EVENT_BATCH), if self.sealed > 0 => {
                    self.done(&mut acknowledged).await?;
                }
                () = sleep_until(next_deadline), if next_deadline.is_some() => {}
                Ok(()) = self.sink.changed() => self.sink_changed(),
                received = events.recv_many(&mut batch, EVENT_BATCH) => {
                    if received == 0 {
                        anyhow::bail!("the consumer's poll thread stopped");
                    }
                    for event in batch.drain(..) {
                        match event {
                            // Started at once, so a batch adds no latency.
                            // Its bytes leave the hand-off queue's count as they join
                            // its partition's buffer.
                            GroupEvent::Message(message, _slot) => {
                                self.admit(message).await?;
                                self.start_ready().await?;
                            }
                            GroupEvent::Assigned(partitions) => self.assigned(partitions),
                            GroupEvent::Revoked { partitions, handed_over } => {
                                self.revoked(partitions, handed_over);
                                // Before any later event, as if it came alone.
                                self.hand_over_drained();
                            }
                        }
                    }
                }
                // Turns when idle, so that the heartbeat shows the loop is not stuck.
                _ = heartbeat.tick() => {}
            }
            self.hand_over_drained();
        }
    }

    /// After shutdown: waits for every started message to be done, starting nothing new,
    /// except those waiting for the sink (fenced when the leases end). Events keep being
    /// read so the poll thread is never stuck; their messages are left uncommitted for
    /// the next owner.
    async fn finish_in_flight(
        &mut self,
        events: &mut mpsc::Receiver<GroupEvent>,
    ) -> anyhow::Result<()> {
        let mut acknowledged = Vec::with_capacity(EVENT_BATCH);
        while self.partitions.held().any(|p| self.may_finish(p) > 0) {
            tokio::select! {
                Some(finished) = self.translations.next(), if !self.translations.is_empty() => {
                    self.finish(finished).await?;
                }
                _ = self.acknowledged.recv_many(&mut acknowledged, EVENT_BATCH), if self.sealed > 0 => {
                    self.done(&mut acknowledged).await?;
                }
                Ok(()) = self.sink.changed() => self.sink_changed(),
                Some(event) = events.recv() => {
                    if let GroupEvent::Revoked { partitions, handed_over } = event {
                        // Nothing more starts; what is in flight of these is fenced.
                        self.revoked(partitions, handed_over);
                        self.hand_over_all();
                    }
                }
                else => break, // nothing left that could finish
            }
            self.hand_over_drained();
        }
        Ok(())
    }

    /// A message was consumed: its `received` event goes out, and it waits in its lane.
    async fn admit(&mut self, message: InboundMessage) -> Result<(), PublishError> {
        let at = Instant::now();
        let partition = (message.source.topic.clone(), message.source.partition);
        let epoch = self.held.get(&partition).as_ref().map(Lease::epoch);
        let Some(epoch) = epoch.filter(|e| {
            self.partitions
                .get(&partition)
                .is_some_and(|s| s.epoch == *e)
        }) else {
            debug!(source = ?message.source, "message of a partition not held; left to its owner");
            return Ok(());
        };
        self.partitions.arrived(
            &partition,
            message.source.offset,
            message.size(),
            self.consumer,
        );
        self.partitions
            .note_arrival(&partition, message.source.offset, message.timestamp_ms, at);
        match self.hold_undecoded(&partition, message, at) {
            Some((message, at)) => self.receive(message, at, epoch, None).await,
            None => Ok(()), // it waits for a writer schema ([`schemas`])
        }
    }

    /// A consumed message is decoded (with the registry's answer for the schema id it
    /// waited for, if it did): its `received` event goes out, and it waits in its lane.
    async fn receive(
        &mut self,
        message: InboundMessage,
        at: Instant,
        epoch: u64,
        fetched: Option<(u32, &crate::avro::registry::SchemaAnswer)>,
    ) -> Result<(), PublishError> {
        let partition = (message.source.topic.clone(), message.source.partition);
        let bytes = message.size();
        let (received, event) = self.pipeline.receive_fetched(&message, fetched);
        let sends = Sends::new(Sent {
            source: message.source.clone(),
            epoch,
            at,
            bytes,
            took: AtomicU64::new(0),
            terminal: OnceLock::new(),
        });
        self.publisher.outcome(&sends, &event).await?;
        let lane = Lane {
            key: ordering_key(message.key.as_deref(), &received.key.value),
            partition,
        };
        self.scheduler.push(
            lane,
            Admitted {
                message,
                received: Arc::new(received),
                sends,
            },
        );
        self.meters.waiting.set(self.scheduler.waiting() as f64);
        Ok(())
    }

    /// Starts every message that may start.
    async fn start_ready(&mut self) -> anyhow::Result<()> {
        loop {
            let unparked: Vec<(Lane, Admitted)> = self
                .partitions
                .iter_mut()
                .flat_map(|(_, state)| std::mem::take(&mut state.unparked))
                .collect();
            if unparked.is_empty() {
                break;
            }
            for (lane, admitted) in unparked {
                self.start(lane, admitted).await?;
            }
        }
        while let Some((lane, admitted)) = self.scheduler.start_next() {
            self.start(lane, admitted).await?;
        }
        self.meters.in_flight.set(self.scheduler.in_flight() as f64);
        Ok(())
    }

    /// Looks a message's key up and either answers at once (a duplicate, a redelivery)
    /// or starts its translation (finished at once for the rules, polled with the others
    /// for a translator that waits).
    async fn start(&mut self, lane: Lane, admitted: Admitted) -> anyhow::Result<()> {
        let (Some(lease), Some(state)) = (
            self.held.get(&lane.partition),
            self.partitions.get_mut(&lane.partition),
        ) else {
            self.scheduler.finished(&lane);
            return Ok(());
        };
        let key = admitted.received.key.value.clone();
        // A message that does not claim its key (a bad key header, a bad record, a
        // tombstone) never looks up or writes a dedup entry: its key is only a correlation
        // id, and its rejection must not make a later, corrected message a duplicate.
        let claims_key = admitted.received.claims_key;
        if claims_key {
            if let Some(parked) = state.translating.get_mut(&key) {
                // The same request under another record key: it waits for the first,
                // then finds it done (a duplicate). Its lane waits with it.
                parked.push((lane, admitted));
                return Ok(());
            }
        }
        state.busy += 1;
        let source = admitted.message.source.clone();
        let started = if claims_key {
            match self.look_up(&admitted).await? {
                Some(started) => Some(started),
                None => {
                    // Answered: the lane's next message may start.
                    self.meters
                        .until_enqueued
                        .record(admitted.sends.of.at.elapsed().as_secs_f64());
                    self.scheduler.finished(&lane);
                    self.seal(admitted);
                    return Ok(());
                }
            }
        } else {
            None
        };
        let pipeline = self.pipeline.clone();
        let (received, carried) = (admitted.received.clone(), lease.clone());
        let mut translation = Box::pin(async move {
            let began = Instant::now();
            let result = pipeline.complete(&received, &carried).await;
            (began.elapsed(), result)
        });
        // A translation that finishes at once (the rules) needs no `in_progress` mark:
        // its terminal entry follows in the same breath.
        if let Some((took, result)) = (&mut translation).now_or_never() {
            return self
                .finish(Finished {
                    lane,
                    lease,
                    admitted,
                    started,
                    took,
                    result,
                })
                .await;
        }
        // One that waits (an LLM call) is marked, so that a crash or a hand-over
        // meanwhile is visible to the next owner as an attempt to take over; messages of
        // the same key that start meanwhile park behind it.
        if let Some(started) = &started {
            if let Some(state) = self.partitions.get_mut(&lane.partition) {
                state.translating.insert(key.clone(), Vec::new());
            }
            let value = started.encode(None);
            let changelog = self.changelog_of(&source.topic);
            self.publisher
                .changelog(
                    Some(&admitted.sends),
                    &changelog,
                    source.partition,
                    &key,
                    Some(&value),
                )
                .await?;
        }
        self.translations.push(Box::pin(async move {
            let (took, result) = translation.await;
            Finished {
                lane,
                lease,
                admitted,
                started,
                took,
                result,
            }
        }));
        Ok(())
    }

    /// A translation finished: publish what it produced, unless its partition
    /// was handed over meanwhile.
    async fn finish(&mut self, finished: Finished) -> anyhow::Result<()> {
        let Finished {
            lane,
            lease,
            admitted,
            started,
            took,
            result,
        } = finished;
        let source = admitted.message.source.clone();
        let held = self.held.epoch(&lane.partition) == Some(lease.epoch()) && lease.is_held();
        let completion = match result {
            Ok(completion) if held => completion,
            _ => {
                meters::fenced_completions(source.topic.clone()).increment(1);
                info!(
                    topic = %source.topic, partition = source.partition, offset = source.offset,
                    key = %admitted.received.key.value,
                    "in-flight message fenced: its partition was handed over; the new owner processes it"
                );
                return Ok(());
            }
        };
        let key = admitted.received.key.value.clone();
        if let Some(failure) = &completion.dead_letter {
            // Identified by its `dead_lettered` event, so a re-sent copy can be dropped.
            let event_id = completion
                .outcomes
                .iter()
                .find(|e| e.stage == Stage::DeadLettered)
                .map(|e| e.event_id.as_str())
                .unwrap_or_default();
            // Never fails: a dead letter that cannot be written is logged and counted.
            self.publisher
                .dead_letter(&admitted.sends, &admitted.message, &key, failure, event_id)
                .await;
        }
        if let Some(terminal) = completion.outcomes.iter().find(|e| e.stage.is_terminal()) {
            log_terminal(&key, &source, terminal);
            let code = terminal.error.as_ref().map(|f| f.code);
            let _ = admitted.sends.of.terminal.set((terminal.stage, code));
            if let Some(started) = started {
                self.record_done(&admitted, started, terminal).await?;
            }
        }
        for event in &completion.outcomes {
            self.publisher.outcome(&admitted.sends, event).await?;
        }
        let sent = &admitted.sends.of;
        self.meters
            .until_enqueued
            .record(sent.at.elapsed().saturating_sub(took).as_secs_f64());
        sent.took.store(
            took.as_nanos().try_into().unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        // The terminal entry is in the store: the lane's next message, and any parked
        // message of the same key, may look it up. (A message that claims no key parked
        // nothing: another message's key may be translating under the same value.)
        if started.is_some() {
            if let Some(state) = self.partitions.get_mut(&lane.partition) {
                if let Some(parked) = state.translating.remove(&key) {
                    state.unparked.extend(parked);
                }
            }
        }
        self.scheduler.finished(&lane);
        self.seal(admitted);
        Ok(())
    }

    /// Every send of the message is enqueued: it is done once they are acknowledged.
    fn seal(&mut self, admitted: Admitted) {
        self.sealed += 1;
        self.publisher.seal(admitted.sends);
    }

    /// Messages' sends are all acknowledged: store their partitions' new committable
    /// positions, where they moved, and resume partitions whose buffer has drained.
    async fn done(&mut self, acknowledged: &mut Vec<Arc<Sends<Sent>>>) -> Result<(), PublishError> {
        // Each partition's latest position, stored once for the whole batch.
        let mut positions: Vec<(String, i32, i64)> = Vec::new();
        for sends in acknowledged.drain(..) {
            self.sealed = self.sealed.saturating_sub(1);
            sends.result()?;
            // A dead letter that failed is followed by a minimal one: the message is done
            // when that one is reported.
            if self.publisher.settle_dead_letter(&sends).await {
                self.sealed += 1;
                continue;
            }
            let sent = &sends.of;
            let source = &sent.source;
            let partition = (source.topic.clone(), source.partition);
            if self.partitions.get(&partition).map(|s| s.epoch) != Some(sent.epoch) {
                continue; // handed over meanwhile
            }
            let took = Duration::from_nanos(sent.took.load(Ordering::Relaxed));
            self.meters
                .until_acknowledged
                .record(sent.at.elapsed().saturating_sub(took).as_secs_f64());
            if let Some(&(stage, code)) = sent.terminal.get() {
                self.meters
                    .processed(&source.topic, stage, code, sent.at.elapsed());
            }
            let done = self.partitions.done(
                &partition,
                sent.epoch,
                source.offset,
                sent.bytes,
                self.consumer,
            );
            if let Some(position) = done {
                match positions
                    .iter_mut()
                    .find(|(t, p, _)| *t == source.topic && *p == source.partition)
                {
                    Some(stored) => stored.2 = position,
                    None => positions.push((source.topic.clone(), source.partition, position)),
                }
            }
        }
        for (topic, partition, position) in positions {
            self.consumer.store_position(&topic, partition, position);
        }
        Ok(())
    }
}

/// Reads the held partitions' lag in messages from the broker every
/// [`meters::partitions::REFRESH`], until `stop`. Each read runs on a blocking thread,
/// bounded by the refresh period, so a broker that does not answer delays only the next
/// read (and the worker's close by at most that).
async fn refresh_lag(
    reader: LagReader,
    gauges: Arc<PartitionGauges>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut every = tokio::time::interval(meters::partitions::REFRESH);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = every.tick() => {}
        }
        let partitions = gauges.partitions();
        if partitions.is_empty() {
            continue;
        }
        let reader = reader.clone();
        let read = tokio::task::spawn_blocking(move || {
            reader.read(&partitions, meters::partitions::REFRESH)
        });
        if let Ok(lags) = read.await {
            for (partition, lag) in lags {
                gauges.read(&partition, lag);
            }
        }
    }
}

/// Sleeps until `deadline`; forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
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
