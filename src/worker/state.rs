//! The worker's dedup state: looking a message's key up (new, taken over, retried after a
//! `failed`, replayed after a `rejected`, a duplicate, a redelivery or a conflict) and
//! recording its end, restoring a partition's store from its changelog, trimming it,
//! tombstoning what it drops, and rebuilding the events (and dead letter) of a completed
//! key.
//!
//! A message with the [`dedup::REPLAY_OF_HEADER`] header (`dlq replay` sets it) is a
//! replay only when the header holds the id of the dead letter of the key's last
//! processing, which ended `rejected` with the same payload: the id is derived from the
//! key and that processing's offset, so a replay is honoured once (the replay's own
//! processing has another offset) and a forged header can at most have a rejected
//! request, byte for byte, judged again under the settings in force.
//!
//! A key is claimed by its content: the entry keeps the fingerprint of the payload that
//! claimed it, and another payload under the same key is `rejected` as
//! `idempotency_key_conflict` without touching the claimant's entry, so nobody can
//! pre-claim (or, after the fact, hide behind) another producer's key.

use std::sync::Arc;

use anyhow::Context;
use tracing::{debug, info};

use super::{log_terminal, Admitted, Sent, Worker};
use crate::dedup::{self, Check, Entry, PartitionStore, State};
use crate::intent::intent_name;
use crate::kafka::changelog;
use crate::kafka::publisher::{PublishError, Sends};
use crate::message::SourceRef;
use crate::meters;
use crate::outcome::{ErrorCode, Failure, IntentRef, Original, OutcomeEvent, Stage};
use crate::pipeline::Received;
use crate::translate::Translator;

impl<T: Translator + 'static> Worker<'_, T> {
    /// Looks up the key a message claims. A key already completed with the same payload
    /// is answered at once (`duplicate`, or the first publication again for a
    /// redelivery), and so is a key claimed by another payload (`rejected`,
    /// `idempotency_key_conflict`, with a dead letter): `None`. A new key (or one whose
    /// attempt never finished) gets its `in_progress` entry, returned: it is processed.
    pub(super) async fn look_up(&mut self, admitted: &Admitted) -> anyhow::Result<Option<Entry>> {
        let received = &admitted.received;
        let key = received.key.value.clone();
        let source = admitted.message.source.clone();
        let changelog = self.changelog_of(&source.topic);
        let now = dedup::now_secs();
        let store = self.store(&source.topic, source.partition).await?;

        let check = match admitted.message.header(dedup::REPLAY_OF_HEADER) {
            None => store.check(&key, source.offset, received.fingerprint, now),
            Some(claim) => {
                let names_its_dead_letter =
                    |entry: &Entry| dead_letter_id(&key, &source, entry.offset).as_bytes() == claim;
                store.check_replay(
                    &key,
                    source.offset,
                    received.fingerprint,
                    now,
                    names_its_dead_letter,
                )
            }
        };
        let started = match check {
            Check::Duplicate(original) => {
                meters::dedup_hits(source.topic.clone()).increment(1);
                let namespace = store.namespace(&original).map(str::to_string);
                let mut event = OutcomeEvent::new(&received.key, Stage::Duplicate, &source);
                event.message_type = received.request.as_ref().ok().map(|r| r.message_type());
                if let State::Done(outcome) = original.state {
                    event.original = Some(Original {
                        stage: outcome.stage,
                        intent: intent_ref(&key, outcome.stage, namespace.as_deref()),
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
                let sends = Some(&admitted.sends);
                self.publisher
                    .changelog(sends, &changelog, source.partition, &key, Some(&value))
                    .await?;
                self.publisher.outcome(&admitted.sends, &event).await?;
                let _ = admitted.sends.of.terminal.set((Stage::Duplicate, None));
                None
            }
            Check::Conflict(claimant) => {
                meters::dedup_conflicts(source.topic.clone()).increment(1);
                let (terminal, dead_lettered) = conflict(received, &claimant);
                log_terminal(&key, &source, &terminal);
                if let Some(failure) = &terminal.error {
                    // Never a reason to stop: see `Publisher::dead_letter`.
                    self.publisher
                        .dead_letter(
                            &admitted.sends,
                            &admitted.message,
                            &key,
                            failure,
                            &dead_lettered.event_id,
                        )
                        .await;
                }
                self.publisher.outcome(&admitted.sends, &terminal).await?;
                self.publisher
                    .outcome(&admitted.sends, &dead_lettered)
                    .await?;
                let code = Some(ErrorCode::IdempotencyKeyConflict);
                let _ = admitted.sends.of.terminal.set((Stage::Rejected, code));
                None
            }
            Check::Redelivery(original) => {
                // Completed before a crash or rebalance, offset not committed: its events
                // and its dead letter may never have gone out. Send them again (same event
                // ids; the dead letter names its `dead_lettered` event's id).
                meters::dedup_redeliveries(source.topic.clone()).increment(1);
                let namespace = store.namespace(&original).map(str::to_string);
                let events = republished(&received.key, &source, &original, namespace.as_deref());
                let dead_lettered = events.iter().find(|e| e.stage == Stage::DeadLettered);
                if let Some(dead_lettered) = dead_lettered {
                    if let Some(failure) = &dead_lettered.error {
                        meters::dead_letters_resent(source.topic.clone()).increment(1);
                        self.publisher
                            .dead_letter(
                                &admitted.sends,
                                &admitted.message,
                                &key,
                                failure,
                                &dead_lettered.event_id,
                            )
                            .await;
                    }
                }
                for event in &events {
                    self.publisher.outcome(&admitted.sends, event).await?;
                }
                None
            }
            check @ (Check::New | Check::TakeOver(_) | Check::Retry(_) | Check::Replay(_)) => {
                if let Check::TakeOver(attempt) = check {
                    meters::dedup_takeovers(source.topic.clone()).increment(1);
                    info!(key = %key, started = attempt.since, offset = attempt.offset, "taking over an attempt that never finished");
                }
                if let Check::Retry(failed) = check {
                    // A `failed` key sent again: processed anew, as a new processing.
                    meters::dedup_retries(source.topic.clone()).increment(1);
                    info!(key = %key, failed_offset = failed.offset, "processing again a key whose last processing failed");
                }
                if let Check::Replay(rejected) = check {
                    meters::dedup_replays(source.topic.clone()).increment(1);
                    info!(key = %key, rejected_offset = rejected.offset, "processing again a rejected key: the message replays its dead letter");
                }
                let started = Entry {
                    state: State::InProgress,
                    offset: source.offset,
                    since: now,
                    last_seen: now,
                    namespace: 0,
                    fingerprint: Some(received.fingerprint),
                };
                let evicted = store.insert(&key, started, None);
                self.tombstone(&source, evicted, "bound", Some(&admitted.sends))
                    .await?;
                Some(started)
            }
        };
        self.record_entries(&source);
        Ok(started)
    }

    /// Records a processed message's terminal outcome as its key's entry (memory and
    /// changelog), replacing the `in_progress` entry `started`.
    pub(super) async fn record_done(
        &mut self,
        admitted: &Admitted,
        started: Entry,
        terminal: &OutcomeEvent,
    ) -> anyhow::Result<()> {
        let source = &admitted.message.source;
        let key = &admitted.received.key.value;
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
        // A folded event's own terminal names no intent of its own: no namespace.
        let namespace = terminal.intent.as_ref().map(|i| i.namespace.as_str());
        let value = done.encode(namespace);
        // Evicts only when the key itself was evicted while in flight.
        let evicted = self
            .store(&source.topic, source.partition)
            .await?
            .insert(key, done, namespace);
        self.tombstone(source, evicted, "bound", Some(&admitted.sends))
            .await?;
        let changelog = self.changelog_of(&source.topic);
        let sends = Some(&admitted.sends);
        self.publisher
            .changelog(sends, &changelog, source.partition, key, Some(&value))
            .await?;
        Ok(())
    }

    /// The dedup changelog topic of an input topic.
    pub(super) fn changelog_of(&self, topic: &str) -> String {
        match self.changelogs.get(topic) {
            Some(changelog) => changelog.clone(),
            None => dedup::changelog_topic(self.group, topic),
        }
    }

    /// Sets a partition's `dedup_entries` gauge.
    pub(super) fn record_entries(&mut self, source: &SourceRef) {
        let partition = (source.topic.clone(), source.partition);
        if let Some(state) = self.partitions.get(&partition) {
            state.count_entries();
        }
    }

    /// The dedup state of a partition, restored from its changelog if this worker has
    /// not read it since the partition was assigned. Restoring one restores every held
    /// partition still without state, `DEDUP_RESTORE_CONCURRENCY` at once, this one
    /// first: after a rebalance the first messages of all of them are about to arrive.
    pub(super) async fn store(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> anyhow::Result<&mut PartitionStore> {
        let wanted = (topic.to_string(), partition);
        let restored = |state: Option<&super::partition::PartitionState<_>>| {
            state.is_some_and(|s| s.dedup.is_some())
        };
        if !restored(self.partitions.get(&wanted)) {
            let mut missing = vec![wanted.clone()];
            for held in self.partitions.held() {
                if held != &wanted && !restored(self.partitions.get(held)) {
                    missing.push(held.clone());
                }
            }
            let restores = changelog::restore_all(
                self.properties,
                self.group,
                missing,
                self.limits,
                self.restore_concurrency,
            );
            // A restore fails by itself when it stalls: the loop waits for it, alive.
            tokio::pin!(restores);
            let restored = loop {
                tokio::select! {
                    restored = &mut restores => break restored,
                    () = tokio::time::sleep(super::HEARTBEAT_TICK) => self.health.main_loop.beat(),
                }
            };
            for ((topic, partition), restored) in restored {
                let (store, restored) = restored?;
                self.install(&topic, partition, store, restored).await?;
            }
        }
        self.partitions
            .get_mut(&wanted)
            .and_then(|s| s.dedup.as_mut())
            .context("the partition was handed over during its dedup state's restore")
    }

    /// Installs a restored partition state, trimmed to the window and the bound.
    pub(super) async fn install(
        &mut self,
        topic: &str,
        partition: i32,
        mut store: PartitionStore,
        restored: changelog::Restored,
    ) -> anyhow::Result<()> {
        let (dropped, expired) = store.trim(dedup::now_secs());
        meters::dedup_restored_entries(topic.to_string()).increment(store.len() as u64);
        meters::dedup_restore_duration(topic.to_string()).record(restored.elapsed.as_secs_f64());
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
        let at = SourceRef {
            topic: topic.to_string(),
            partition,
            offset: -1,
        };
        let (windowed, bounded) = dropped.split_at(expired);
        self.tombstone(&at, windowed.to_vec(), "window", None)
            .await?;
        self.tombstone(&at, bounded.to_vec(), "bound", None).await?;
        if let Some(state) = self.partitions.get_mut(&(topic.to_string(), partition)) {
            state.dedup = Some(store);
            state.count_entries();
        }
        Ok(())
    }

    /// Enqueues changelog tombstones for keys the state of `input`'s partition dropped,
    /// counting them as evicted for `reason` (`window` or `bound`).
    pub(super) async fn tombstone(
        &mut self,
        input: &SourceRef,
        keys: Vec<Box<str>>,
        reason: &'static str,
        sends: Option<&Arc<Sends<Sent>>>,
    ) -> Result<(), PublishError> {
        if keys.is_empty() {
            return Ok(());
        }
        meters::dedup_evictions(input.topic.clone(), reason).increment(keys.len() as u64);
        info!(topic = %input.topic, partition = input.partition, evicted = keys.len(), reason, "dedup entries evicted");
        let changelog = self.changelog_of(&input.topic);
        for key in keys {
            self.publisher
                .changelog(sends, &changelog, input.partition, &key, None)
                .await?;
        }
        Ok(())
    }
}

/// The `nephoran.event.id` of the dead letter of `key`'s processing at `offset` of
/// `source`'s partition: the id of that processing's `dead_lettered` event.
fn dead_letter_id(key: &str, source: &SourceRef, offset: i64) -> String {
    let at = SourceRef {
        offset,
        ..source.clone()
    };
    crate::outcome::event_id(key, Stage::DeadLettered, &at)
}

/// The intent a completed key names, when it has one: a key whose message ended as a
/// `duplicate` (a closed-loop event folded into another's scale-out) has none of its own.
pub(super) fn intent_ref(key: &str, stage: Stage, namespace: Option<&str>) -> Option<IntentRef> {
    if stage == Stage::Duplicate {
        return None;
    }
    namespace.map(|namespace| IntentRef {
        name: intent_name(key),
        namespace: namespace.to_string(),
    })
}

/// The `rejected` and `dead_lettered` events of a message whose key `claimant` holds
/// with another payload. Their event ids are derived from the key, the stage, this
/// payload's fingerprint and this message's place: deterministic for a redelivery of this
/// message, and distinct from the claimant's own events.
pub(super) fn conflict(received: &Received, claimant: &Entry) -> (OutcomeEvent, OutcomeEvent) {
    let source = &received.source;
    let state = match claimant.state {
        State::InProgress => "is being processed",
        State::Done(_) => "was processed",
    };
    let failure = Failure::new(
        ErrorCode::IdempotencyKeyConflict,
        format!(
            "conflict: the idempotency key was claimed by the message at offset {} of {}[{}], \
             whose payload differs, and that message {state}; this one is not applied \
             (send a different request under a key of its own)",
            claimant.offset, source.topic, source.partition
        ),
    );
    let id = |stage| {
        let fingerprint = crate::hex::lower_hex(&received.fingerprint);
        let claim = format!("{}\u{0}conflict\u{0}{fingerprint}", received.key.value);
        crate::outcome::event_id(&claim, stage, source)
    };
    let mut terminal = OutcomeEvent::new(&received.key, Stage::Rejected, source);
    terminal.event_id = id(Stage::Rejected);
    terminal.message_type = received.request.as_ref().ok().map(|r| r.message_type());
    terminal.error = Some(failure);
    let mut dead_lettered = terminal.clone();
    dead_lettered.stage = Stage::DeadLettered;
    dead_lettered.event_id = id(Stage::DeadLettered);
    (terminal, dead_lettered)
}

/// The terminal event (and `dead_lettered`, for a failure) of a completed message, as far
/// as its dedup entry can rebuild it. The event ids are those of the first publication.
pub(super) fn republished(
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
    terminal.intent = intent_ref(&key.value, outcome.stage, namespace);
    let Some(code) = outcome.error else {
        return vec![terminal];
    };
    terminal.error = Some(Failure::new(
        code,
        "published again for a redelivery after a restart or rebalance (only the code is \
         kept); the first publication of this event, if it went out, has the details",
    ));
    let mut dead_lettered = terminal.clone();
    dead_lettered.stage = Stage::DeadLettered;
    dead_lettered.event_id = crate::outcome::event_id(&key.value, Stage::DeadLettered, source);
    vec![terminal, dead_lettered]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{IdempotencyKey, KeySource};

    fn key() -> IdempotencyKey {
        IdempotencyKey {
            value: "order-1".into(),
            source: KeySource::Header,
        }
    }

    fn at(offset: i64) -> SourceRef {
        SourceRef {
            topic: "service-requests".into(),
            partition: 3,
            offset,
        }
    }

    fn done(stage: Stage, error: Option<ErrorCode>) -> Entry {
        Entry {
            state: State::Done(dedup::Outcome {
                stage,
                message_type: None,
                translator: None,
                error,
            }),
            offset: 40,
            since: 1,
            last_seen: 1,
            namespace: 0,
            fingerprint: Some([7; 8]),
        }
    }

    fn received(fingerprint: [u8; 8], offset: i64) -> Received {
        Received {
            key: key(),
            source: at(offset),
            request: Err(Failure::new(
                ErrorCode::InvalidJson,
                "not read in this test",
            )),
            fingerprint,
            claims_key: true,
        }
    }

    #[test]
    fn a_redelivery_republishes_the_first_publications_ids() {
        let events = republished(&key(), &at(40), &done(Stage::Applied, None), Some("core5g"));
        let first = OutcomeEvent::new(&key(), Stage::Applied, &at(40));
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0].event_id, first.event_id,
            "a subscriber drops the copy"
        );
        let intent = events[0]
            .intent
            .as_ref()
            .map(|i| (i.name.clone(), i.namespace.clone()));
        assert_eq!(intent, Some((intent_name("order-1"), "core5g".into())));
    }

    #[test]
    fn a_redelivered_rejection_republishes_its_dead_lettered_event_too() {
        let entry = done(Stage::Rejected, Some(ErrorCode::PolicyDenied));
        let events = republished(&key(), &at(40), &entry, None);
        let stages: Vec<Stage> = events.iter().map(|e| e.stage).collect();
        assert_eq!(stages, [Stage::Rejected, Stage::DeadLettered]);
        for event in &events {
            assert_eq!(
                event.error.as_ref().map(|f| f.code),
                Some(ErrorCode::PolicyDenied)
            );
            assert_eq!(
                event.event_id,
                crate::outcome::event_id("order-1", event.stage, &at(40)),
                "the dead letter names this id: a re-sent copy can be dropped"
            );
        }
    }

    #[test]
    fn an_attempt_that_never_finished_republishes_nothing() {
        let mut entry = done(Stage::Applied, None);
        entry.state = State::InProgress;
        assert!(republished(&key(), &at(40), &entry, Some("core5g")).is_empty());
    }

    #[test]
    fn a_conflict_has_ids_of_its_own_stable_across_redeliveries() {
        let claimant = done(Stage::Applied, None);
        let (rejected, dead_lettered) = conflict(&received([1; 8], 41), &claimant);
        let (again, _) = conflict(&received([1; 8], 41), &claimant);
        let (other_payload, _) = conflict(&received([2; 8], 41), &claimant);
        assert_eq!(rejected.stage, Stage::Rejected);
        assert_eq!(dead_lettered.stage, Stage::DeadLettered);
        assert_eq!(
            rejected.event_id, again.event_id,
            "a redelivery: the same ids"
        );
        assert_ne!(rejected.event_id, other_payload.event_id);
        assert_ne!(
            rejected.event_id,
            crate::outcome::event_id("order-1", Stage::Rejected, &at(41)),
            "not an id the claimant's own processing could have"
        );
        let failure = rejected
            .error
            .as_ref()
            .map(|f| (f.code, f.message.contains("offset 40")));
        assert_eq!(failure, Some((ErrorCode::IdempotencyKeyConflict, true)));
    }

    #[test]
    fn a_folded_duplicate_names_no_intent() {
        assert!(intent_ref("order-1", Stage::Duplicate, Some("core5g")).is_none());
        assert!(intent_ref("order-1", Stage::Applied, None).is_none());
        assert!(intent_ref("order-1", Stage::Applied, Some("core5g")).is_some());
    }
}
