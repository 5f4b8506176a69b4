//! Choosing how outcome events are written, at start: with `OUTCOMES_FORMAT=avro` and a
//! registry, the outcome schema is registered under `<outcomes topic>-value` (Confluent's
//! TopicNameStrategy, what subscribers' deserialisers look up) before anything is
//! consumed, since no message may be processed whose outcome could not be published.
//!
//! A registry that does not answer is retried with backoff ([`FIRST_RETRY`] doubling to
//! [`LAST_RETRY`]) for as long as it takes, `health.registry_down` holding meanwhile;
//! shutting down ends the wait at once. A registry that refuses the schema (incompatible
//! with the subject's latest version, or credentials it rejects with a 4xx) is a startup
//! error that says so: retrying would not change its answer.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::bail;
use tracing::{info, warn};

use super::outcome::OutcomeEncoding;
use super::registry::{Registry, RegistryError};
use super::schemas::OUTCOME_EVENT;
use crate::config::OutcomesFormat;
use crate::health::Health;

/// Wait before the first retry of a registration the registry did not answer.
pub const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Longest wait between retries.
pub const LAST_RETRY: Duration = Duration::from_secs(30);

/// The subject outcome events are registered under (TopicNameStrategy, record values).
pub fn subject(outcomes_topic: &str) -> String {
    format!("{outcomes_topic}-value")
}

/// How the worker writes outcome events: JSON, single-object Avro, or Confluent-framed
/// Avro once the schema is registered. `None` when `stop` completed first. Logs the
/// format (and the subject and schema id).
pub async fn outcome_encoding(
    format: OutcomesFormat,
    registry: Option<&Registry>,
    outcomes_topic: &str,
    health: &Health,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<Option<OutcomeEncoding>> {
    let encoding = match format {
        OutcomesFormat::Json => OutcomeEncoding::Json,
        OutcomesFormat::Avro => match registry {
            None => OutcomeEncoding::SingleObject,
            Some(client) => {
                let subject = subject(outcomes_topic);
                let Some(schema_id) = register(client, &subject, health, stop).await? else {
                    return Ok(None);
                };
                info!(
                    format = "avro", framing = "confluent", subject = %subject, schema_id,
                    topic = %outcomes_topic,
                    "outcome events are written as Avro in the Confluent wire format"
                );
                return Ok(Some(OutcomeEncoding::Confluent { schema_id }));
            }
        },
    };
    match encoding {
        OutcomeEncoding::SingleObject => info!(
            format = "avro", framing = "single_object", topic = %outcomes_topic,
            fingerprint = %crate::hex::lower_hex(&OUTCOME_EVENT.fingerprint),
            "outcome events are written as Avro single-object encoding (no SCHEMA_REGISTRY_URL)"
        ),
        _ => info!(format = "json", topic = %outcomes_topic, "outcome events are written as JSON"),
    }
    Ok(Some(encoding))
}

/// Registers the outcome schema under `subject` and returns its id, retrying while the
/// registry does not answer; `None` when `stop` completed first.
pub async fn register(
    registry: &Registry,
    subject: &str,
    health: &Health,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<Option<u32>> {
    tokio::pin!(stop);
    let mut wait = FIRST_RETRY;
    let mut attempts: u32 = 0;
    let result = loop {
        attempts += 1;
        let attempt = tokio::select! {
            result = registry.register(subject, &OUTCOME_EVENT.schema) => result,
            () = &mut stop => break Ok(None),
        };
        match attempt {
            Ok(id) => break Ok(Some(id)),
            Err(RegistryError::Unavailable { reason }) => {
                health.registry_down.holds_at(Instant::now(), &reason);
                warn!(
                    subject, attempts, retry_in_ms = wait.as_millis() as u64, error = %reason,
                    "the schema registry did not answer; outcome events cannot be published \
                     and nothing is consumed until the outcome schema is registered"
                );
            }
            Err(e) => break Err(e),
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = &mut stop => break Ok(None),
        }
        wait = (wait * 2).min(LAST_RETRY);
    };
    health.registry_down.cleared();
    match result {
        Ok(id) => Ok(id),
        Err(e) => bail!(
            "cannot write outcome events as Avro (OUTCOMES_FORMAT=avro): {e}; make the \
             subject accept schemas/outcome-event.avsc (its compatibility setting, or a \
             subject of its own through OUTCOMES_TOPIC), or set OUTCOMES_FORMAT=json"
        ),
    }
}
