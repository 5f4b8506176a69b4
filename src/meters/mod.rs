//! Every metric the service exports: its name, labels, type and help text, in one place,
//! and the typed functions the rest of the code records through.
//!
//! No other module names a metric. A function here returns the handle of one series
//! (`metrics` handles are cheap clones of an `Arc`); code on the per-message path keeps
//! the handles it needs, registered once, rather than looking a series up per message.
//! [`describe`] gives every name its help text and unit (the `# HELP` and `# TYPE`
//! lines of `/metrics`); [`register_known`] creates the series whose labels are known
//! at start at 0, so that dashboards and alerts see 0 rather than no data before the
//! first event.
//!
//! The per-partition consumer lag and the oldest in-flight message's age are not kept
//! by the `metrics` recorder, which cannot forget a series: they are rendered from the
//! worker's own partition table ([`partitions`]), so that a partition's series go with
//! it at revocation.
//!
//! Metric names are the integration guide's where it names them
//! (`networkintent_processed_total{topic,status}`, `networkintent_processing_duration_seconds`,
//! `networkintent_failed_total{code}`, `llm_api_calls_total{status,model}`).

pub mod partitions;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter,
    Gauge, Histogram, SharedString, Unit,
};

use crate::decode::InputFormat;
use crate::outcome::ErrorCode;

/// `networkintent_processed_total`'s `status` values, in the order of [`processed`]'s
/// handles.
pub const STATUSES: [&str; 4] = ["success", "duplicate", "rejected", "failed"];

/// The `reason` values of `partition_pauses_total`.
pub const PAUSE_REASONS: [&str; 4] = ["buffer", "memory", "sink_down", "schema_registry"];

/// The `result` values of `schema_registry_requests_total`.
pub const REGISTRY_RESULTS: [&str; 4] = ["ok", "unknown_id", "unavailable", "unusable"];

/// The `reason` values of `llm_fallbacks_total`.
pub const FALLBACK_REASONS: [&str; 6] = [
    "circuit_open",
    "circuit_opened",
    "timeout",
    "api_error",
    "invalid_answer",
    "refused",
];

/// The `kind` values of `sink_errors_total`.
pub const SINK_ERROR_KINDS: [&str; 2] = ["transient", "permanent"];

/// A metric's name, label names and help text.
pub type Meta = (&'static str, &'static [&'static str], &'static str);

/// Every counter: name, labels, help.
const COUNTERS: &[Meta] = &[
    (PROCESSED, &["topic", "status"], "Messages done (every send acknowledged), by input topic and terminal status: success, duplicate, rejected, failed."),
    (FAILED, &["code"], "Messages rejected or failed, by error code."),
    (POLICY_DENIALS, &["rule"], "Translated intents denied by the policy, by the rule they broke."),
    (DEDUP_HITS, &["topic"], "Messages answered as duplicates of a completed idempotency key."),
    (DEDUP_CONFLICTS, &["topic"], "Messages rejected because their idempotency key was claimed by another payload."),
    (DEDUP_REDELIVERIES, &["topic"], "Messages recognised as redeliveries of one already completed (its outcome re-published)."),
    (DEAD_LETTERS_RESENT, &["topic"], "Dead letters sent again for a redelivered message."),
    (DEDUP_TAKEOVERS, &["topic"], "In-progress dedup entries left by a crashed attempt, taken over."),
    (DEDUP_RETRIES, &["topic"], "Keys whose last processing failed, processed again on re-submission."),
    (DEDUP_REPLAYS, &["topic"], "Rejected keys processed again by a replay of their dead letter (dlq replay)."),
    (DEDUP_RESTORED_ENTRIES, &["topic"], "Dedup entries restored from the changelog at assignment."),
    (DEDUP_EVICTIONS, &["topic", "reason"], "Dedup entries evicted, by reason (expired, capacity)."),
    (PARTITION_PAUSES, &["topic", "reason"], "Partition pauses, by reason: buffer, memory, sink_down, schema_registry."),
    (PARTITIONS_REVOKED, &["topic"], "Partitions handed over at a rebalance."),
    (FENCED_COMPLETIONS, &["topic"], "Messages whose work finished after their partition was handed over: nothing applied or published."),
    (REVOCATIONS_UNANSWERED, &[], "Revocations the worker did not answer in time: the poll thread ended the leases itself."),
    (LLM_API_CALLS, &["status", "model"], "LLM API calls, by status (success, error) and model."),
    (LLM_TOKENS, &["kind", "model"], "LLM tokens used, by kind (prompt, completion) and model."),
    (LLM_SCREENED, &["model"], "Service requests refused by the rules' screen before any LLM call."),
    (LLM_INVALID_ANSWERS, &["model"], "LLM answers that were not a valid translation."),
    (LLM_FALLBACKS, &["reason", "model"], "Requests translated by the rules instead of the LLM, by reason."),
    (LLM_CACHE_HITS, &[], "LLM translations answered from the cache."),
    (LLM_CACHE_MISSES, &[], "LLM translations not in the cache."),
    (SINK_ERRORS, &["kind"], "Failed apply attempts, by kind: transient (retried), permanent."),
    (KUBE_NAMESPACES_CREATED, &[], "Namespaces the kube sink created."),
    (HEADER_LAYOUT_UNEXPECTED, &[], "Records whose headers librdkafka laid out unexpectedly."),
    (MESSAGES_DECODED, &["format"], "Messages read, by input format: json, avro_confluent, avro_single_object, cloudevents_structured, cloudevents_binary (a record refused before its format is known is not counted)."),
    (DEAD_LETTERS_FAILED, &["code"], "Dead letters that could not be written, by error code (a minimal one follows)."),
    (DEAD_LETTERS_MINIMAL, &["code"], "Minimal dead letters sent after a full one failed, by error code."),
    (PRODUCER_QUEUE_FULL, &[], "Sends that found the producer's queue full and waited for room."),
    (NOT_READY, &["reason"], "Times readiness fell, by cause."),
    (EVENTS_FOLDED, &["component"], "Network events folded into one already being processed (cooldown), by component."),
    (EVENT_COOLDOWN_EVICTIONS, &[], "Cooldown entries evicted at the table's bound."),
    (LIFECYCLE_WATCH_ERRORS, &[], "Errors of the intents' status watch."),
    (LIFECYCLE_EVENTS, &["stage"], "Lifecycle events published, by stage (deployed, failed)."),
    (LIFECYCLE_RECORD_FAILURES, &[], "Lifecycle events that could not be recorded."),
    (OUTCOME_ENCODING_FAILURES, &["stage"], "Outcome events the Avro outcome schema could not hold (a bug), published as JSON instead, by stage."),
    (SCHEMA_REGISTRY_REQUESTS, &["result"], "Writer-schema fetches from the schema registry, by result: ok, unknown_id, unavailable (retried; the record waits), unusable."),
];

/// Every gauge kept by the recorder: name, labels, help.
const GAUGES: &[Meta] = &[
    (
        MESSAGES_WAITING,
        &[],
        "Messages consumed and waiting in their key's lane.",
    ),
    (
        MESSAGES_IN_FLIGHT,
        &[],
        "Messages being processed (at most MAX_IN_FLIGHT).",
    ),
    (PARTITIONS_PAUSED, &[], "Partitions paused, for any reason."),
    (
        BUFFERED_MESSAGE_BYTES,
        &[],
        "Bytes of messages consumed and not done, all partitions.",
    ),
    (
        DEDUP_ENTRIES,
        &["topic", "partition"],
        "Dedup entries held, per partition.",
    ),
    (
        DEDUP_RESTORES_IN_PROGRESS,
        &[],
        "Dedup changelog restores running.",
    ),
    (
        DEDUP_RESTORES_WAITING,
        &[],
        "Assigned partitions waiting for their turn to be restored.",
    ),
    (
        SINK_UP,
        &[],
        "1 while the intent sink takes intents, 0 while a message waits for it.",
    ),
    (
        SINK_WAITING_MESSAGES,
        &["topic"],
        "Messages waiting for the intent sink.",
    ),
    (
        LLM_CIRCUIT_BREAKER_STATE,
        &["model"],
        "The LLM circuit breaker: 0 closed, 1 open, 2 half-open.",
    ),
    (
        SCHEMA_REGISTRY_CACHED_SCHEMAS,
        &[],
        "Writer schemas held in the schema registry client's cache (at most SCHEMA_REGISTRY_CACHE_SCHEMAS).",
    ),
    (WORKER_READY, &[], "1 when /readyz answers ready, else 0."),
    (WORKER_LIVE, &[], "1 when /healthz answers live, else 0."),
];

/// Every histogram (seconds): name, labels, help.
const HISTOGRAMS: &[Meta] = &[
    (PROCESSING_DURATION, &[], "Time from consuming a message to its sends all acknowledged."),
    (MESSAGE_OVERHEAD, &["until"], "The worker's own time per message, translation and apply excluded, until its terminal outcome is enqueued or acknowledged."),
    (REVOCATION_DRAIN, &[], "Time a revocation waited for its partitions' in-flight messages."),
    (DEDUP_RESTORE_DURATION, &["topic"], "Time to restore a partition's dedup state from its changelog."),
    (LLM_API_CALL_DURATION, &["model"], "Duration of LLM API calls, by model."),
];

const PROCESSED: &str = "networkintent_processed_total";
const FAILED: &str = "networkintent_failed_total";
const PROCESSING_DURATION: &str = "networkintent_processing_duration_seconds";
const POLICY_DENIALS: &str = "policy_denials_total";
const DEDUP_HITS: &str = "dedup_hits_total";
const DEDUP_CONFLICTS: &str = "dedup_conflicts_total";
const DEDUP_REDELIVERIES: &str = "dedup_redeliveries_total";
const DEAD_LETTERS_RESENT: &str = "dead_letters_resent_total";
const DEDUP_TAKEOVERS: &str = "dedup_takeovers_total";
const DEDUP_RETRIES: &str = "dedup_retries_total";
const DEDUP_REPLAYS: &str = "dedup_replays_total";
const DEDUP_RESTORED_ENTRIES: &str = "dedup_restored_entries_total";
const DEDUP_RESTORE_DURATION: &str = "dedup_restore_duration_seconds";
const DEDUP_EVICTIONS: &str = "dedup_evictions_total";
const DEDUP_ENTRIES: &str = "dedup_entries";
const DEDUP_RESTORES_IN_PROGRESS: &str = "dedup_restores_in_progress";
const DEDUP_RESTORES_WAITING: &str = "dedup_restores_waiting";
const PARTITION_PAUSES: &str = "partition_pauses_total";
const PARTITIONS_PAUSED: &str = "partitions_paused";
const BUFFERED_MESSAGE_BYTES: &str = "buffered_message_bytes";
const MESSAGES_WAITING: &str = "messages_waiting";
const MESSAGES_IN_FLIGHT: &str = "messages_in_flight";
const MESSAGE_OVERHEAD: &str = "message_overhead_seconds";
const PARTITIONS_REVOKED: &str = "partitions_revoked_total";
const REVOCATION_DRAIN: &str = "revocation_drain_seconds";
const FENCED_COMPLETIONS: &str = "fenced_completions_total";
const REVOCATIONS_UNANSWERED: &str = "revocations_unanswered_total";
const LLM_API_CALLS: &str = "llm_api_calls_total";
const LLM_API_CALL_DURATION: &str = "llm_api_call_duration_seconds";
const LLM_TOKENS: &str = "llm_tokens_total";
const LLM_SCREENED: &str = "llm_screened_total";
const LLM_INVALID_ANSWERS: &str = "llm_invalid_answers_total";
const LLM_FALLBACKS: &str = "llm_fallbacks_total";
const LLM_CACHE_HITS: &str = "llm_cache_hits_total";
const LLM_CACHE_MISSES: &str = "llm_cache_misses_total";
const LLM_CIRCUIT_BREAKER_STATE: &str = "llm_circuit_breaker_state";
const SINK_UP: &str = "sink_up";
const SCHEMA_REGISTRY_REQUESTS: &str = "schema_registry_requests_total";
const SCHEMA_REGISTRY_CACHED_SCHEMAS: &str = "schema_registry_cached_schemas";
const SINK_ERRORS: &str = "sink_errors_total";
const SINK_WAITING_MESSAGES: &str = "sink_waiting_messages";
const KUBE_NAMESPACES_CREATED: &str = "kube_namespaces_created_total";
const HEADER_LAYOUT_UNEXPECTED: &str = "kafka_header_layout_unexpected_total";
const MESSAGES_DECODED: &str = "messages_decoded_total";
const DEAD_LETTERS_FAILED: &str = "dead_letters_failed_total";
const DEAD_LETTERS_MINIMAL: &str = "dead_letters_minimal_total";
const PRODUCER_QUEUE_FULL: &str = "producer_queue_full_total";
const WORKER_READY: &str = "worker_ready";
const WORKER_LIVE: &str = "worker_live";
const NOT_READY: &str = "not_ready_total";
const EVENTS_FOLDED: &str = "events_folded_total";
const EVENT_COOLDOWN_EVICTIONS: &str = "event_cooldown_evictions_total";
const LIFECYCLE_WATCH_ERRORS: &str = "lifecycle_watch_errors_total";
const LIFECYCLE_EVENTS: &str = "lifecycle_events_total";
const LIFECYCLE_RECORD_FAILURES: &str = "lifecycle_record_failures_total";
const OUTCOME_ENCODING_FAILURES: &str = "outcome_encoding_failures_total";

/// Every metric with its type (`counter`, `gauge`, `histogram`), labels and help, the
/// recorder's and the partition table's: what `/metrics` may show, and what
/// docs/operations.md lists.
pub fn catalogue() -> impl Iterator<
    Item = (
        &'static str,
        &'static str,
        &'static [&'static str],
        &'static str,
    ),
> {
    let of = |kind: &'static str, list: &'static [Meta]| {
        list.iter()
            .map(move |(name, labels, help)| (*name, kind, *labels, *help))
    };
    of("counter", COUNTERS)
        .chain(of("gauge", GAUGES))
        .chain(of("histogram", HISTOGRAMS))
        .chain(of("gauge", partitions::GAUGES))
}

/// Gives every metric its help text and unit. Call once, after the recorder is
/// installed (a recorder that keeps no descriptions ignores it).
pub fn describe() {
    for (name, _, help) in COUNTERS {
        describe_counter!(*name, Unit::Count, *help);
    }
    for (name, _, help) in GAUGES {
        let unit = if *name == BUFFERED_MESSAGE_BYTES {
            Unit::Bytes
        } else {
            Unit::Count
        };
        describe_gauge!(*name, unit, *help);
    }
    for (name, _, help) in HISTOGRAMS {
        describe_histogram!(*name, Unit::Seconds, *help);
    }
}

/// Creates, at 0, the series whose labels are known when the worker starts: the
/// guide's counters for every status and error code, the per-topic counters of the
/// input `topics`, the worker's gauges, and the LLM's series for `model` when an LLM
/// is configured. Series whose labels come with events (a policy rule, a component)
/// appear with their first event.
pub fn register_known(topics: &[String], model: Option<&str>) {
    for topic in topics {
        for status in STATUSES {
            processed(topic, status).increment(0);
        }
    }
    let _ = processing_duration();
    for code in ErrorCode::ALL {
        failed(code).increment(0);
        dead_letters_failed(code.as_str()).increment(0);
        dead_letters_minimal(code.as_str()).increment(0);
    }
    for topic in topics {
        let topic = || SharedString::from(topic.clone());
        dedup_hits(topic()).increment(0);
        dedup_conflicts(topic()).increment(0);
        dedup_redeliveries(topic()).increment(0);
        dead_letters_resent(topic()).increment(0);
        dedup_takeovers(topic()).increment(0);
        dedup_retries(topic()).increment(0);
        dedup_replays(topic()).increment(0);
        dedup_restored_entries(topic()).increment(0);
        partitions_revoked(topic()).increment(0);
        fenced_completions(topic()).increment(0);
        sink_waiting_messages(topic()).increment(0);
        for reason in PAUSE_REASONS {
            partition_pauses(topic(), reason).increment(0);
        }
    }
    for kind in SINK_ERROR_KINDS {
        sink_errors(kind).increment(0);
    }
    for result in REGISTRY_RESULTS {
        schema_registry_requests(result).increment(0);
    }
    schema_registry_cached_schemas().increment(0.0);
    for gauge in [
        messages_waiting(),
        messages_in_flight(),
        partitions_paused(),
        buffered_message_bytes(),
        dedup_restores_in_progress(),
        dedup_restores_waiting(),
    ] {
        gauge.increment(0.0);
    }
    for until in ["enqueued", "acknowledged"] {
        let _ = message_overhead(until);
    }
    let _ = revocation_drain();
    revocations_unanswered().increment(0);
    producer_queue_full().increment(0);
    header_layout_unexpected().increment(0);
    for format in InputFormat::ALL {
        messages_decoded(format).increment(0);
    }
    for stage in crate::outcome::Stage::ALL {
        outcome_encoding_failures(stage.as_str()).increment(0);
    }
    if let Some(model) = model {
        let model = || SharedString::from(model.to_string());
        for status in ["success", "error"] {
            llm_api_calls(status, model()).increment(0);
        }
        let _ = llm_api_call_duration(model());
        for kind in ["prompt", "completion"] {
            llm_tokens(kind, model()).increment(0);
        }
        llm_screened(model()).increment(0);
        llm_invalid_answers(model()).increment(0);
        for reason in FALLBACK_REASONS {
            llm_fallbacks(reason, model()).increment(0);
        }
        llm_cache_hits().increment(0);
        llm_cache_misses().increment(0);
    }
}

// The guide's metrics.

/// `networkintent_processed_total{topic,status}`; `status` is one of [`STATUSES`]. The
/// guide's queries sum over `topic`.
pub fn processed(topic: &str, status: &'static str) -> Counter {
    counter!(PROCESSED, "topic" => topic.to_string(), "status" => status)
}

pub fn failed(code: ErrorCode) -> Counter {
    counter!(FAILED, "code" => code.as_str())
}

pub fn processing_duration() -> Histogram {
    histogram!(PROCESSING_DURATION)
}

pub fn policy_denials(rule: &'static str) -> Counter {
    counter!(POLICY_DENIALS, "rule" => rule)
}

// Deduplication.

pub fn dedup_hits(topic: impl Into<SharedString>) -> Counter {
    counter!(DEDUP_HITS, "topic" => topic.into())
}

pub fn dedup_conflicts(topic: impl Into<SharedString>) -> Counter {
    counter!(DEDUP_CONFLICTS, "topic" => topic.into())
}

pub fn dedup_redeliveries(topic: impl Into<SharedString>) -> Counter {
    counter!(DEDUP_REDELIVERIES, "topic" => topic.into())
}

pub fn dead_letters_resent(topic: impl Into<SharedString>) -> Counter {
    counter!(DEAD_LETTERS_RESENT, "topic" => topic.into())
}

pub fn dedup_takeovers(topic: impl Into<SharedString>) -> Counter {
    counter!(DEDUP_TAKEOVERS, "topic" => topic.into())
}

pub fn dedup_retries(topic: impl Into<SharedString>) -> Counter {
    counter!(DEDUP_RETRIES, "topic" => topic.into())
}

pub fn dedup_replays(topic: impl Into<SharedString>) -> Counter {
    counter!(DEDUP_REPLAYS, "topic" => topic.into())
}

pub fn dedup_restored_entries(topic: impl Into<SharedString>) -> Counter {
    counter!(DEDUP_RESTORED_ENTRIES, "topic" => topic.into())
}

pub fn dedup_restore_duration(topic: impl Into<SharedString>) -> Histogram {
    histogram!(DEDUP_RESTORE_DURATION, "topic" => topic.into())
}

pub fn dedup_evictions(topic: impl Into<SharedString>, reason: &'static str) -> Counter {
    counter!(DEDUP_EVICTIONS, "topic" => topic.into(), "reason" => reason)
}

pub fn dedup_entries(topic: impl Into<SharedString>, partition: i32) -> Gauge {
    gauge!(DEDUP_ENTRIES, "topic" => topic.into(), "partition" => partition.to_string())
}

pub fn dedup_restores_in_progress() -> Gauge {
    gauge!(DEDUP_RESTORES_IN_PROGRESS)
}

pub fn dedup_restores_waiting() -> Gauge {
    gauge!(DEDUP_RESTORES_WAITING)
}

// The worker's buffers and rebalances.

/// `partition_pauses_total{topic,reason}`; `reason` is one of [`PAUSE_REASONS`].
pub fn partition_pauses(topic: impl Into<SharedString>, reason: &'static str) -> Counter {
    counter!(PARTITION_PAUSES, "topic" => topic.into(), "reason" => reason)
}

pub fn partitions_paused() -> Gauge {
    gauge!(PARTITIONS_PAUSED)
}

pub fn buffered_message_bytes() -> Gauge {
    gauge!(BUFFERED_MESSAGE_BYTES)
}

pub fn messages_waiting() -> Gauge {
    gauge!(MESSAGES_WAITING)
}

pub fn messages_in_flight() -> Gauge {
    gauge!(MESSAGES_IN_FLIGHT)
}

/// `message_overhead_seconds{until}`: `until` is `enqueued` or `acknowledged`.
pub fn message_overhead(until: &'static str) -> Histogram {
    histogram!(MESSAGE_OVERHEAD, "until" => until)
}

pub fn partitions_revoked(topic: impl Into<SharedString>) -> Counter {
    counter!(PARTITIONS_REVOKED, "topic" => topic.into())
}

pub fn revocation_drain() -> Histogram {
    histogram!(REVOCATION_DRAIN)
}

pub fn fenced_completions(topic: impl Into<SharedString>) -> Counter {
    counter!(FENCED_COMPLETIONS, "topic" => topic.into())
}

pub fn revocations_unanswered() -> Counter {
    counter!(REVOCATIONS_UNANSWERED)
}

// The LLM.

/// `llm_api_calls_total{status,model}`: `status` is `success` or `error`.
pub fn llm_api_calls(status: &'static str, model: impl Into<SharedString>) -> Counter {
    counter!(LLM_API_CALLS, "status" => status, "model" => model.into())
}

pub fn llm_api_call_duration(model: impl Into<SharedString>) -> Histogram {
    histogram!(LLM_API_CALL_DURATION, "model" => model.into())
}

/// `llm_tokens_total{kind,model}`: `kind` is `prompt` or `completion`.
pub fn llm_tokens(kind: &'static str, model: impl Into<SharedString>) -> Counter {
    counter!(LLM_TOKENS, "kind" => kind, "model" => model.into())
}

pub fn llm_screened(model: impl Into<SharedString>) -> Counter {
    counter!(LLM_SCREENED, "model" => model.into())
}

pub fn llm_invalid_answers(model: impl Into<SharedString>) -> Counter {
    counter!(LLM_INVALID_ANSWERS, "model" => model.into())
}

/// `llm_fallbacks_total{reason,model}`; `reason` is one of [`FALLBACK_REASONS`].
pub fn llm_fallbacks(reason: &'static str, model: impl Into<SharedString>) -> Counter {
    counter!(LLM_FALLBACKS, "reason" => reason, "model" => model.into())
}

pub fn llm_cache_hits() -> Counter {
    counter!(LLM_CACHE_HITS)
}

pub fn llm_cache_misses() -> Counter {
    counter!(LLM_CACHE_MISSES)
}

pub fn llm_circuit_breaker_state(model: impl Into<SharedString>) -> Gauge {
    gauge!(LLM_CIRCUIT_BREAKER_STATE, "model" => model.into())
}

// The intent sink.

pub fn sink_up() -> Gauge {
    gauge!(SINK_UP)
}

/// `schema_registry_requests_total{result}`; `result` is one of [`REGISTRY_RESULTS`].
pub fn schema_registry_requests(result: &'static str) -> Counter {
    counter!(SCHEMA_REGISTRY_REQUESTS, "result" => result)
}

/// `schema_registry_cached_schemas`.
pub fn schema_registry_cached_schemas() -> Gauge {
    gauge!(SCHEMA_REGISTRY_CACHED_SCHEMAS)
}

/// `sink_errors_total{kind}`; `kind` is one of [`SINK_ERROR_KINDS`].
pub fn sink_errors(kind: &'static str) -> Counter {
    counter!(SINK_ERRORS, "kind" => kind)
}

pub fn sink_waiting_messages(topic: impl Into<SharedString>) -> Gauge {
    gauge!(SINK_WAITING_MESSAGES, "topic" => topic.into())
}

pub fn kube_namespaces_created() -> Counter {
    counter!(KUBE_NAMESPACES_CREATED)
}

// Kafka.

pub fn header_layout_unexpected() -> Counter {
    counter!(HEADER_LAYOUT_UNEXPECTED)
}

/// `messages_decoded_total{format}`.
pub fn messages_decoded(format: InputFormat) -> Counter {
    counter!(MESSAGES_DECODED, "format" => format.as_str())
}

pub fn dead_letters_failed(code: &'static str) -> Counter {
    counter!(DEAD_LETTERS_FAILED, "code" => code)
}

pub fn dead_letters_minimal(code: &'static str) -> Counter {
    counter!(DEAD_LETTERS_MINIMAL, "code" => code)
}

pub fn producer_queue_full() -> Counter {
    counter!(PRODUCER_QUEUE_FULL)
}

// Health.

pub fn worker_ready() -> Gauge {
    gauge!(WORKER_READY)
}

pub fn worker_live() -> Gauge {
    gauge!(WORKER_LIVE)
}

pub fn not_ready(cause: &'static str) -> Counter {
    counter!(NOT_READY, "reason" => cause)
}

// Network events' cooldown and the intents' lifecycle.

pub fn events_folded(component: impl Into<SharedString>) -> Counter {
    counter!(EVENTS_FOLDED, "component" => component.into())
}

pub fn event_cooldown_evictions() -> Counter {
    counter!(EVENT_COOLDOWN_EVICTIONS)
}

pub fn lifecycle_watch_errors() -> Counter {
    counter!(LIFECYCLE_WATCH_ERRORS)
}

pub fn lifecycle_events(stage: &'static str) -> Counter {
    counter!(LIFECYCLE_EVENTS, "stage" => stage)
}

pub fn lifecycle_record_failures() -> Counter {
    counter!(LIFECYCLE_RECORD_FAILURES)
}

// Outcome encoding.

pub fn outcome_encoding_failures(stage: &'static str) -> Counter {
    counter!(OUTCOME_ENCODING_FAILURES, "stage" => stage)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// The reference table of docs/operations.md, one row per metric.
    fn reference_table() -> String {
        let mut table = String::from("| metric | type | help |\n|---|---|---|\n");
        for (name, kind, labels, help) in catalogue() {
            let labels = if labels.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", labels.join(","))
            };
            table.push_str(&format!("| `{name}{labels}` | {kind} | {help} |\n"));
        }
        table
    }

    #[test]
    fn docs_operations_lists_every_metric_as_the_module_defines_it() {
        let docs = include_str!("../../docs/operations.md");
        let table = reference_table();
        assert!(
            docs.contains(&table),
            "docs/operations.md's reference table differs from src/meters; it should read:\n\n{table}"
        );
    }

    #[test]
    fn every_name_is_listed_once_and_described() {
        let mut names = HashSet::new();
        for (name, _, _, help) in catalogue() {
            assert!(names.insert(name), "{name} listed twice");
            assert!(!help.is_empty(), "{name} has no help");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit()),
                "{name} is not a plain Prometheus name"
            );
        }
    }
}
