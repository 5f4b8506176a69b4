//! The worker's dedup state: restoring a partition's store from its changelog, trimming
//! it, tombstoning what it drops, and rebuilding the events of a completed key.

use std::sync::Arc;

use anyhow::Context;
use tracing::info;

use super::{Sent, Worker};
use crate::dedup::{self, Entry, PartitionStore, State};
use crate::intent::intent_name;
use crate::kafka::changelog;
use crate::kafka::publisher::{PublishError, Sends};
use crate::message::SourceRef;
use crate::outcome::{Failure, IntentRef, OutcomeEvent, Stage};
use crate::translate::Translator;

impl<T: Translator + 'static> Worker<'_, T> {
    /// The dedup changelog topic of an input topic.
    pub(super) fn changelog_of(&self, topic: &str) -> String {
        match self.changelogs.get(topic) {
            Some(changelog) => changelog.clone(),
            None => dedup::changelog_topic(self.group, topic),
        }
    }

    /// Sets a partition's `dedup_entries` gauge; the handle is kept, as this runs for
    /// every message.
    pub(super) fn record_entries(&mut self, source: &SourceRef) {
        let Some(store) = self.dedup.partition(&source.topic, source.partition) else {
            return;
        };
        let entries = store.len() as f64;
        if let Some(gauge) = self
            .entries_gauges
            .get(source.topic.as_str())
            .and_then(|partitions| partitions.get(&source.partition))
        {
            gauge.set(entries);
            return;
        }
        let gauge = metrics::gauge!("dedup_entries", "topic" => source.topic.clone(), "partition" => source.partition.to_string());
        gauge.set(entries);
        self.entries_gauges
            .entry(source.topic.clone())
            .or_default()
            .insert(source.partition, gauge);
    }

    /// The dedup state of a partition, restored from its changelog if this worker has
    /// not read it since the partition was assigned. Restoring one restores every held
    /// partition still without state, side by side: after a rebalance the first
    /// messages of all of them are about to arrive.
    pub(super) async fn store(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> anyhow::Result<&mut PartitionStore> {
        if self.dedup.partition(topic, partition).is_none() {
            let mut missing = vec![(topic.to_string(), partition)];
            for held in &self.held.partitions() {
                if !missing.contains(held) && self.dedup.partition(&held.0, held.1).is_none() {
                    missing.push(held.clone());
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
    pub(super) async fn install(
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
        let at = SourceRef {
            topic: topic.to_string(),
            partition,
            offset: -1,
        };
        let (windowed, bounded) = dropped.split_at(expired);
        self.tombstone(&at, windowed.to_vec(), "window", None)
            .await?;
        self.tombstone(&at, bounded.to_vec(), "bound", None).await?;
        self.dedup.restored(topic, partition, store);
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
        metrics::counter!("dedup_evictions_total", "topic" => input.topic.clone(), "reason" => reason)
            .increment(keys.len() as u64);
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

/// The intent a completed key names, when it has one.
pub(super) fn intent_ref(key: &str, namespace: Option<&str>) -> Option<IntentRef> {
    namespace.map(|namespace| IntentRef {
        name: intent_name(key),
        namespace: namespace.to_string(),
    })
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
