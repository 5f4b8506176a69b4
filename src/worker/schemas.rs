//! Waiting for writer schemas: a Confluent-framed Avro record whose schema id is not in
//! the registry client's cache is not decoded until the schema is fetched. Its
//! partition's later records wait behind it in order ([`PartitionState::undecoded`]),
//! nothing of theirs is published (not even `received`: its key may be in the datum),
//! and the partition is paused (reason `schema_registry`) so its backlog stays in Kafka.
//! Other partitions go on, and the main loop keeps turning: the fetch is a future
//! polled beside the translations.
//!
//! A fetch the registry cannot answer (no connection, a timeout, a 5xx: never the
//! record's fault) is retried with backoff for as long as the partition is held; while
//! it fails, `/readyz` falls with `schema_registry_down` past READINESS_GRACE. When the
//! registry answers, the waiting records are received in order, the first with that
//! answer (a schema, or an unknown id or unusable schema: then it is rejected with its
//! code), and the partition resumes. At a hand-over the fetch ends with the lease and
//! the waiting records are simply dropped: nothing was committed past them, so the next
//! owner reads them again.
//!
//! [`PartitionState::undecoded`]: super::partition::PartitionState::undecoded

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backoff::backoff::Backoff;
use backoff::ExponentialBackoff;
use tracing::{info, warn};

use super::Worker;
use crate::avro::registry::{Registry, RegistryError, SchemaAnswer};
use crate::health::Health;
use crate::lease::Lease;
use crate::message::InboundMessage;
use crate::meters;
use crate::schedule::PartitionId;
use crate::translate::Translator;

/// The first wait before a fetch the registry did not answer is tried again; it doubles
/// (with jitter) up to [`FETCH_RETRY_MAX_INTERVAL`].
pub const FETCH_RETRY_FIRST_INTERVAL: Duration = Duration::from_millis(200);

/// The longest wait between two tries of a fetch while the registry does not answer.
pub const FETCH_RETRY_MAX_INTERVAL: Duration = Duration::from_secs(10);

/// How much of the registry's error `/readyz` and the logs quote.
const DETAIL_BYTES: usize = 300;

/// A fetch that ended: the registry's answer for `id`, or `None` when the partition was
/// handed over first.
pub(super) struct SchemaFetched {
    partition: PartitionId,
    epoch: u64,
    id: u32,
    answer: Option<SchemaAnswer>,
}

/// A writer schema being fetched for a partition's first undecoded record.
pub(super) type SchemaFetch = Pin<Box<dyn Future<Output = SchemaFetched> + Send>>;

impl<T: Translator + 'static> Worker<'_, T> {
    /// Holds `message` back, in order, when it or an earlier record of its partition
    /// waits for a writer schema (starting the fetch when it is the first); gives it back
    /// when it may be received now.
    pub(super) fn hold_undecoded(
        &mut self,
        partition: &PartitionId,
        message: InboundMessage,
        at: Instant,
    ) -> Option<(InboundMessage, Instant)> {
        let Some(state) = self.partitions.get_mut(partition) else {
            return Some((message, at));
        };
        if !state.undecoded.is_empty() {
            state.undecoded.push_back((message, at));
            return None;
        }
        let Some(id) = self.pipeline.needs_writer_schema(&message) else {
            return Some((message, at));
        };
        state.undecoded.push_back((message, at));
        self.fetch_schema(partition, id);
        self.partitions
            .schema_waiting(partition, true, self.consumer);
        None
    }

    /// Starts fetching schema `id` for `partition`'s first undecoded record.
    fn fetch_schema(&mut self, partition: &PartitionId, id: u32) {
        let (Some(registry), Some(lease)) =
            (self.pipeline.registry().cloned(), self.held.get(partition))
        else {
            return;
        };
        self.schema_fetches.push(Box::pin(fetch(
            registry,
            id,
            lease,
            self.health.clone(),
            partition.clone(),
        )));
    }

    /// A fetch ended: the partition's waiting records are received in order, up to the
    /// next that needs another schema (whose fetch starts); the partition resumes when
    /// none waits.
    pub(super) async fn schema_fetched(&mut self, fetched: SchemaFetched) -> anyhow::Result<()> {
        if let Some(registry) = self.pipeline.registry() {
            meters::schema_registry_cached_schemas().set(registry.cached_schemas() as f64);
        }
        if self.schema_fetches.is_empty() {
            // No record waits any more: readiness does not fall for a registry nobody needs.
            self.health.registry_down.cleared();
        }
        let SchemaFetched {
            partition,
            epoch,
            id,
            answer,
        } = fetched;
        let Some(answer) = answer else {
            return Ok(()); // handed over: the next owner reads the records again
        };
        loop {
            let Some(state) = self
                .partitions
                .get_mut(&partition)
                .filter(|state| state.epoch == epoch)
            else {
                return Ok(());
            };
            let Some((message, at)) = state.undecoded.pop_front() else {
                break;
            };
            // The same id again gets the same answer (an unknown id is not asked twice).
            if let Some(next) = self.pipeline.needs_writer_schema(&message) {
                if next != id {
                    state.undecoded.push_front((message, at));
                    self.fetch_schema(&partition, next);
                    return Ok(());
                }
            }
            self.receive(message, at, epoch, Some((id, &answer)))
                .await?;
        }
        self.partitions
            .schema_waiting(&partition, false, self.consumer);
        Ok(())
    }
}

/// Fetches schema `id`, retrying while the registry does not answer, until it answers
/// or `lease` ends.
async fn fetch(
    registry: Arc<Registry>,
    id: u32,
    lease: Lease,
    health: Arc<Health>,
    partition: PartitionId,
) -> SchemaFetched {
    let mut backoff = ExponentialBackoff {
        initial_interval: FETCH_RETRY_FIRST_INTERVAL,
        max_interval: FETCH_RETRY_MAX_INTERVAL,
        max_elapsed_time: None,
        ..ExponentialBackoff::default()
    };
    let answer = loop {
        let answer = tokio::select! {
            biased;
            () = lease.ended() => break None,
            answer = registry.writer_schema(id) => answer,
        };
        meters::schema_registry_requests(result_label(&answer)).increment(1);
        match answer {
            Err(e) if e.is_unavailable() => {
                let detail = bounded(&e.to_string());
                if !health.registry_down.is_holding() {
                    warn!(
                        schema_id = id, topic = %partition.0, partition = partition.1, error = %detail,
                        "the schema registry does not answer: records that need a writer schema from it wait, their partitions paused; retrying"
                    );
                }
                health.registry_down.holds_at(Instant::now(), &detail);
                let wait = backoff.next_backoff().unwrap_or(FETCH_RETRY_MAX_INTERVAL);
                tokio::select! {
                    biased;
                    () = lease.ended() => break None,
                    () = tokio::time::sleep(wait) => {}
                }
            }
            answer => {
                if health.registry_down.is_holding() {
                    info!(schema_id = id, "the schema registry answers again");
                    health.registry_down.cleared();
                }
                break Some(answer);
            }
        }
    };
    SchemaFetched {
        partition,
        epoch: lease.epoch(),
        id,
        answer,
    }
}

fn result_label(answer: &SchemaAnswer) -> &'static str {
    match answer {
        Ok(_) => "ok",
        Err(RegistryError::UnknownId { .. } | RegistryError::NotConfigured { .. }) => "unknown_id",
        Err(RegistryError::Unavailable { .. }) => "unavailable",
        Err(RegistryError::Unusable { .. } | RegistryError::Refused { .. }) => "unusable",
    }
}

/// One line, at most [`DETAIL_BYTES`].
fn bounded(text: &str) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.len() > DETAIL_BYTES {
        let mut end = DETAIL_BYTES;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push('…');
    }
    line
}
