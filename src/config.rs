//! Configuration: flags and environment, with the integration guide's variable names.
//!
//! Every setting is a flag with an environment variable behind it (clap's `env`), so the
//! Kubernetes Deployment configures the service the way the guide shows. Anything
//! librdkafka understands can be passed through, as `--kafka-config key=value` or as an
//! `RDKAFKA_`-prefixed variable (`RDKAFKA_SECURITY_PROTOCOL=SASL_SSL` sets
//! `security.protocol`). Not `KAFKA_`: Kubernetes injects `KAFKA_PORT` and friends for a
//! Service called `kafka`. A bad setting fails at start with a message naming it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::str::FromStr;

use clap::Args;

use crate::apply::SinkSpec;

/// Prefix of environment variables passed to librdkafka as properties.
pub const RDKAFKA_ENV_PREFIX: &str = "RDKAFKA_";

/// How to reach the cluster: shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Bootstrap servers, comma-separated.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,

    /// A librdkafka property, `key=value`; repeatable. Overrides RDKAFKA_* variables.
    #[arg(long = "kafka-config", value_name = "KEY=VALUE")]
    pub kafka_config: Vec<Property>,
}

/// The topics the service reads and writes.
#[derive(Debug, Clone, Args)]
pub struct TopicArgs {
    /// Input topics, comma-separated.
    #[arg(
        long,
        env = "TOPICS",
        value_delimiter = ',',
        default_value = "network-events,service-requests"
    )]
    pub topics: Vec<String>,

    /// Topic the lifecycle events are published to.
    #[arg(long, env = "OUTCOMES_TOPIC", default_value = "intent-outcomes")]
    pub outcomes_topic: String,

    /// Topic that receives a copy of every message that is rejected or fails.
    #[arg(long, env = "DLQ_TOPIC", default_value = "intent-dlq")]
    pub dlq_topic: String,
}

/// Settings of `run`, the worker.
#[derive(Debug, Clone, Args)]
pub struct Config {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub topics: TopicArgs,

    /// Consumer group shared by all workers.
    #[arg(long, env = "CONSUMER_GROUP", default_value = "nephoran-intents")]
    pub group: String,

    /// Where intents go: `dir:<path>` (one YAML file each, for GitOps), `stdout`, or `discard`.
    #[arg(long, env = "INTENT_SINK", default_value = "dir:./intents")]
    pub intent_sink: SinkSpec,

    /// Address of the HTTP server for /healthz, /readyz (and /metrics).
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,

    /// How long a shutdown may take to finish in-flight work before handing it back.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "25s", value_parser = parse_duration)]
    pub shutdown_timeout: std::time::Duration,

    /// Largest replica count an intent may ask for.
    #[arg(long, env = "MAX_REPLICAS", default_value_t = 100)]
    pub max_replicas: u32,

    /// How long after its last sighting a key still deduplicates.
    #[arg(long, env = "DEDUP_WINDOW", default_value = "7d", value_parser = parse_duration)]
    pub dedup_window: std::time::Duration,

    /// Dedup entries kept per input partition; at the bound the least recently seen go.
    #[arg(long, env = "DEDUP_MAX_ENTRIES", default_value_t = 200_000)]
    pub dedup_max_entries: usize,

    /// Replication factor of dedup changelog topics the worker creates (-1: broker default).
    #[arg(long, env = "DEDUP_CHANGELOG_REPLICATION", default_value_t = -1, allow_negative_numbers = true)]
    pub dedup_changelog_replication: i32,

    /// Messages being translated and applied at once, across all partitions.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = 256)]
    pub max_in_flight: usize,

    /// Messages of one partition consumed and not yet done; at the bound the partition is
    /// paused until half of them are done.
    #[arg(long, env = "PARTITION_BUFFER", default_value_t = 1000)]
    pub partition_buffer: usize,

    /// How long a revoked partition's in-flight messages may take to finish before the
    /// partition is handed over without them (the new owner processes them again).
    #[arg(long, env = "REVOKE_DRAIN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub revoke_drain_timeout: std::time::Duration,

    /// Closed-loop cool-down: KPI events that scale out the same network function in
    /// the same namespace within it fold into the first scale-out (0s: off).
    #[arg(long, env = "EVENT_COOLDOWN", default_value = "5m", value_parser = parse_duration)]
    pub event_cooldown: std::time::Duration,

    #[command(flatten)]
    pub llm: LlmArgs,
}

/// The LLM translator. Without `LLM_ENDPOINT` the service translates by rules alone.
#[derive(Debug, Clone, Args)]
pub struct LlmArgs {
    /// Base URL of an OpenAI-compatible API (e.g. http://127.0.0.1:11434/v1 for Ollama).
    /// Unset: the rule translator alone.
    #[arg(long, env = "LLM_ENDPOINT")]
    pub llm_endpoint: Option<String>,

    /// Model name sent with every request; required with LLM_ENDPOINT.
    #[arg(long, env = "LLM_MODEL")]
    pub llm_model: Option<String>,

    /// API key, sent as a bearer token. Prefer LLM_API_KEY_FILE (a mounted Secret).
    #[arg(
        long,
        env = "LLM_API_KEY",
        hide_env_values = true,
        conflicts_with = "llm_api_key_file"
    )]
    pub llm_api_key: Option<Secret>,

    /// File holding the API key (read once at start; surrounding whitespace ignored).
    #[arg(long, env = "LLM_API_KEY_FILE")]
    pub llm_api_key_file: Option<std::path::PathBuf>,

    /// Longest wait for one LLM answer; retries stop once twice this has passed.
    #[arg(long, env = "LLM_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub llm_timeout: std::time::Duration,

    /// LLM requests open at once; further translations wait their turn.
    #[arg(long, env = "LLM_MAX_CONCURRENCY", default_value_t = 16)]
    pub llm_max_concurrency: usize,

    /// Consecutive failed LLM calls that open the circuit breaker (requests go straight
    /// to the rules until the cool-down has passed and a probe succeeds).
    #[arg(long, env = "LLM_BREAKER_FAILURES", default_value_t = 5)]
    pub llm_breaker_failures: u32,

    /// How long an open circuit breaker sends requests to the rules before probing.
    #[arg(long, env = "LLM_BREAKER_COOLDOWN", default_value = "30s", value_parser = parse_duration)]
    pub llm_breaker_cooldown: std::time::Duration,

    /// Answers kept in the response cache; at the bound the least recently used goes.
    #[arg(long, env = "LLM_CACHE_ENTRIES", default_value_t = 10_000)]
    pub llm_cache_entries: usize,
}

/// A value that must not appear in logs, errors or `Debug` output (an API key).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.trim().to_string()))
    }
}

impl LlmArgs {
    /// Checks the settings that only matter with an endpoint.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let Some(endpoint) = &self.llm_endpoint else {
            return Ok(());
        };
        let url = reqwest::Url::parse(endpoint).map_err(|e| {
            config_error(
                "LLM_ENDPOINT (--llm-endpoint)",
                format!("{endpoint:?} is not a URL: {e}"),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(config_error(
                "LLM_ENDPOINT (--llm-endpoint)",
                format!("{endpoint:?} is not an http or https URL"),
            ));
        }
        if self
            .llm_model
            .as_deref()
            .is_none_or(|m| m.trim().is_empty())
        {
            return Err(config_error(
                "LLM_MODEL (--llm-model)",
                "must name the model when LLM_ENDPOINT is set",
            ));
        }
        if self.llm_timeout.is_zero() {
            return Err(config_error(
                "LLM_TIMEOUT (--llm-timeout)",
                "must be longer than 0s",
            ));
        }
        if self.llm_max_concurrency == 0 {
            return Err(config_error(
                "LLM_MAX_CONCURRENCY (--llm-max-concurrency)",
                "must be at least 1",
            ));
        }
        if self.llm_breaker_failures == 0 {
            return Err(config_error(
                "LLM_BREAKER_FAILURES (--llm-breaker-failures)",
                "must be at least 1",
            ));
        }
        if self.llm_cache_entries == 0 {
            return Err(config_error(
                "LLM_CACHE_ENTRIES (--llm-cache-entries)",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// The API key, from the flag or variable, else from the file; `None` if neither.
    pub fn api_key(&self) -> Result<Option<Secret>, ConfigError> {
        if let Some(key) = &self.llm_api_key {
            return Ok(Some(key.clone()));
        }
        let Some(path) = &self.llm_api_key_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            config_error(
                "LLM_API_KEY_FILE (--llm-api-key-file)",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let key = text.trim();
        if key.is_empty() {
            return Err(config_error(
                "LLM_API_KEY_FILE (--llm-api-key-file)",
                format!("{} is empty", path.display()),
            ));
        }
        Ok(Some(Secret::new(key)))
    }
}

/// A `key=value` librdkafka property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    pub value: String,
}

impl FromStr for Property {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => Ok(Self {
                key: key.trim().to_string(),
                value: value.to_string(),
            }),
            _ => Err(format!("{s:?} is not key=value")),
        }
    }
}

/// A setting that cannot work, named as the user wrote it.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting}: {problem}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub problem: String,
}

fn config_error(setting: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        problem: problem.into(),
    }
}

pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like 25s: {e}"))
}

impl KafkaArgs {
    /// librdkafka properties from the environment and the flags, flags last.
    pub fn properties(&self) -> Result<BTreeMap<String, String>, ConfigError> {
        if self.brokers.trim().is_empty() {
            return Err(config_error("KAFKA_BROKERS (--brokers)", "is empty"));
        }
        let mut properties = BTreeMap::new();
        for (name, value) in std::env::vars() {
            if let Some(rest) = name.strip_prefix(RDKAFKA_ENV_PREFIX) {
                if rest.is_empty() {
                    continue;
                }
                properties.insert(rest.to_ascii_lowercase().replace('_', "."), value);
            }
        }
        for Property { key, value } in &self.kafka_config {
            properties.insert(key.clone(), value.clone());
        }
        properties.insert("bootstrap.servers".into(), self.brokers.clone());
        Ok(properties)
    }
}

impl TopicArgs {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.topics.is_empty() {
            return Err(config_error("TOPICS (--topics)", "names no topic"));
        }
        for topic in &self.topics {
            check_topic("TOPICS (--topics)", topic)?;
        }
        check_topic("OUTCOMES_TOPIC (--outcomes-topic)", &self.outcomes_topic)?;
        check_topic("DLQ_TOPIC (--dlq-topic)", &self.dlq_topic)?;
        for (setting, output) in [
            ("OUTCOMES_TOPIC (--outcomes-topic)", &self.outcomes_topic),
            ("DLQ_TOPIC (--dlq-topic)", &self.dlq_topic),
        ] {
            if self.topics.contains(output) {
                return Err(config_error(
                    setting,
                    format!(
                        "{output:?} is also an input topic; the service would read its own output"
                    ),
                ));
            }
        }
        if self.outcomes_topic == self.dlq_topic {
            return Err(config_error(
                "DLQ_TOPIC (--dlq-topic)",
                "is the same topic as OUTCOMES_TOPIC",
            ));
        }
        Ok(())
    }
}

impl Config {
    /// Checks what clap cannot: topic names, their relations, the group.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.kafka.properties()?;
        self.topics.validate()?;
        if self.group.trim().is_empty() {
            return Err(config_error("CONSUMER_GROUP (--group)", "is empty"));
        }
        if self.dedup_max_entries == 0 {
            return Err(config_error(
                "DEDUP_MAX_ENTRIES (--dedup-max-entries)",
                "must be at least 1",
            ));
        }
        if self.dedup_window.is_zero() {
            return Err(config_error(
                "DEDUP_WINDOW (--dedup-window)",
                "must be longer than 0s",
            ));
        }
        if self.max_replicas == 0 {
            return Err(config_error(
                "MAX_REPLICAS (--max-replicas)",
                "must be at least 1",
            ));
        }
        if self.max_in_flight == 0 {
            return Err(config_error(
                "MAX_IN_FLIGHT (--max-in-flight)",
                "must be at least 1",
            ));
        }
        if self.partition_buffer == 0 {
            return Err(config_error(
                "PARTITION_BUFFER (--partition-buffer)",
                "must be at least 1",
            ));
        }
        self.llm.validate()
    }
}

/// Kafka's rule for topic names: 1-249 characters of ASCII letters, digits, '.', '_', '-'.
fn check_topic(setting: &'static str, topic: &str) -> Result<(), ConfigError> {
    let valid = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(config_error(
            setting,
            format!(
                "{topic:?} is not a valid topic name (1-249 of letters, digits, '.', '_', '-')"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        config: Config,
    }

    fn parse(args: &[&str]) -> Config {
        Wrapper::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            .unwrap()
            .config
    }

    #[test]
    fn defaults_follow_the_integration_guide() {
        let c = parse(&[]);
        assert_eq!(c.group, "nephoran-intents");
        assert_eq!(c.topics.topics, ["network-events", "service-requests"]);
        assert_eq!(c.topics.outcomes_topic, "intent-outcomes");
        assert_eq!(c.topics.dlq_topic, "intent-dlq");
        assert_eq!(c.intent_sink, SinkSpec::Dir("./intents".into()));
        c.validate().unwrap();
    }

    #[test]
    fn bad_settings_are_named() {
        let c = parse(&["--topics", "a,intent-outcomes"]);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("OUTCOMES_TOPIC"), "{err}");
        let c = parse(&["--topics", "bad topic"]);
        assert!(c.validate().unwrap_err().to_string().contains("TOPICS"));
        let c = parse(&["--group", " "]);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("CONSUMER_GROUP"));
        let bad_sink = Wrapper::try_parse_from(["x", "--intent-sink", "kube"]);
        assert!(bad_sink.is_err());
        let bad_property = Wrapper::try_parse_from(["x", "--kafka-config", "novalue"]);
        assert!(bad_property.is_err());
    }

    #[test]
    fn llm_settings_are_checked_only_with_an_endpoint() {
        parse(&["--llm-model", "m"]).validate().unwrap();
        let err = |args: &[&str]| parse(args).validate().unwrap_err().to_string();
        assert!(err(&["--llm-endpoint", "http://h/v1"]).contains("LLM_MODEL"));
        assert!(err(&["--llm-endpoint", "h:1", "--llm-model", "m"]).contains("LLM_ENDPOINT"));
        assert!(err(&["--llm-endpoint", "ftp://h", "--llm-model", "m"]).contains("not an http"));
        let c = parse(&["--llm-endpoint", "http://h/v1", "--llm-model", "m"]);
        c.validate().unwrap();
        assert_eq!(c.llm.llm_timeout, std::time::Duration::from_secs(30));
        assert_eq!(c.llm.api_key().unwrap(), None);
    }

    #[test]
    fn the_api_key_never_shows_in_debug_output() {
        let c = parse(&["--llm-api-key", "sk-very-secret"]);
        assert_eq!(c.llm.api_key().unwrap().unwrap().expose(), "sk-very-secret");
        assert!(!format!("{c:?}").contains("sk-very-secret"));
    }

    #[test]
    fn the_api_key_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "sk-from-file\n").unwrap();
        let path = path.to_str().unwrap();
        let c = parse(&["--llm-api-key-file", path]);
        assert_eq!(c.llm.api_key().unwrap().unwrap().expose(), "sk-from-file");
        let missing = parse(&["--llm-api-key-file", "/nonexistent/key"]);
        let err = missing.llm.api_key().unwrap_err().to_string();
        assert!(
            err.contains("LLM_API_KEY_FILE") && err.contains("/nonexistent/key"),
            "{err}"
        );
        let both = Wrapper::try_parse_from(["x", "--llm-api-key", "a", "--llm-api-key-file", path]);
        assert!(both.is_err());
    }

    #[test]
    fn kafka_properties_pass_through() {
        let c = parse(&[
            "--kafka-config",
            "session.timeout.ms=6000",
            "--brokers",
            "b:1",
        ]);
        let p = c.kafka.properties().unwrap();
        assert_eq!(p["session.timeout.ms"], "6000");
        assert_eq!(p["bootstrap.servers"], "b:1");
    }
}
