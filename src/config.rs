//! Configuration: flags and environment, with the integration guide's variable names.
//!
//! Every setting is a flag with an environment variable behind it (clap's `env`), so the
//! Kubernetes Deployment configures the service the way the guide shows. Anything
//! librdkafka understands can be passed through, as `--kafka-config key=value` or as an
//! `RDKAFKA_`-prefixed variable (`RDKAFKA_SECURITY_PROTOCOL=SASL_SSL` sets
//! `security.protocol`). Not `KAFKA_`: Kubernetes injects `KAFKA_PORT` and friends for a
//! Service called `kafka`. A bad setting fails at start with a message naming it.
//!
//! Secrets come from variables or files only, never from flags: process arguments are
//! readable by every user of the node (`/proc/<pid>/cmdline`, `ps`). The API key is
//! `LLM_API_KEY` or `LLM_API_KEY_FILE`; a librdkafka secret is `RDKAFKA_SASL_PASSWORD` or
//! `RDKAFKA_SASL_PASSWORD_FILE` (any `RDKAFKA_<NAME>_FILE` reads `<name>` from a file).
//! librdkafka properties the service pins, their aliases, and values that would break a
//! guarantee are refused ([`crate::kafka::properties`]).

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
    /// Secrets (sasl.password, ...) are refused here: use RDKAFKA_<NAME> or
    /// RDKAFKA_<NAME>_FILE.
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

    /// Where intents go: `dir:<path>` (one YAML file each, for GitOps), `kube` (server-side
    /// apply to the cluster, in-cluster or from KUBECONFIG), `stdout`, or `discard`.
    #[arg(long, env = "INTENT_SINK", default_value = "dir:./intents")]
    pub intent_sink: SinkSpec,

    #[command(flatten)]
    pub kube: KubeArgs,

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
    /// Each takes about 80 bytes plus its key (docs/memory.md): 40 000 keeps a worker
    /// holding 12 partitions within the Deployment's memory limit even with 256-byte keys.
    #[arg(long, env = "DEDUP_MAX_ENTRIES", default_value_t = 40_000)]
    pub dedup_max_entries: usize,

    /// Dedup changelog partitions restored at once after an assignment (each reader
    /// buffers up to 16 MiB besides the state it builds; docs/memory.md).
    #[arg(long, env = "DEDUP_RESTORE_CONCURRENCY", default_value_t = 2)]
    pub dedup_restore_concurrency: usize,

    /// Replication factor of dedup changelog topics the worker creates (-1: broker default).
    #[arg(long, env = "DEDUP_CHANGELOG_REPLICATION", default_value_t = -1, allow_negative_numbers = true)]
    pub dedup_changelog_replication: i32,

    /// Accept a missing dedup changelog for a group that has committed offsets: create it
    /// empty (logged) instead of refusing to start; completed keys are forgotten.
    #[arg(
        long,
        env = "DEDUP_REBUILD",
        default_value_t = false,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub dedup_rebuild: bool,

    /// Messages being translated and applied at once, across all partitions.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = 256)]
    pub max_in_flight: usize,

    /// Messages of one partition consumed and not yet done; at the bound the partition is
    /// paused until half of them are done.
    #[arg(long, env = "PARTITION_BUFFER", default_value_t = 1000)]
    pub partition_buffer: usize,

    /// Bytes of one partition's messages consumed and not yet done (record key, value and
    /// headers); at the bound the partition is paused until they are down to half. A size
    /// as Kubernetes writes one (`16Mi`) or bytes.
    #[arg(long, env = "PARTITION_BUFFER_BYTES", default_value = "16Mi", value_parser = parse_bytes)]
    pub partition_buffer_bytes: usize,

    /// Bytes of all partitions' messages consumed and not yet done; at the bound every
    /// partition is paused until they are down to half. See docs/memory.md.
    #[arg(long, env = "BUFFER_BYTES", default_value = "64Mi", value_parser = parse_bytes)]
    pub buffer_bytes: usize,

    /// How long a revoked partition's in-flight messages may take to finish before the
    /// partition is handed over without them (the new owner processes them again).
    #[arg(long, env = "REVOKE_DRAIN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub revoke_drain_timeout: std::time::Duration,

    /// `/healthz` fails when the Kafka poll thread or the worker's main loop has not
    /// turned for this long (a wait for a revocation's drain excepted).
    #[arg(long, env = "LIVENESS_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub liveness_timeout: std::time::Duration,

    /// `/readyz` fails once no Kafka broker has been reachable, or the producer queue has
    /// been full, for longer than this.
    #[arg(long, env = "READINESS_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub readiness_grace: std::time::Duration,

    /// Closed-loop cool-down: KPI events that scale out the same network function in
    /// the same namespace within it fold into the first scale-out (0s: off).
    #[arg(long, env = "EVENT_COOLDOWN", default_value = "5m", value_parser = parse_duration)]
    pub event_cooldown: std::time::Duration,

    #[command(flatten)]
    pub llm: LlmArgs,

    #[command(flatten)]
    pub policy: crate::policy::PolicyArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,

    /// How outcome events are written: `json`, or `avro` (the Confluent wire format,
    /// registered under `<outcomes topic>-value`, when SCHEMA_REGISTRY_URL is set; else
    /// Avro single-object encoding of schemas/outcome-event.avsc).
    #[arg(long, env = "OUTCOMES_FORMAT", value_enum, default_value_t = OutcomesFormat::Json)]
    pub outcomes_format: OutcomesFormat,
}

/// The encodings of outcome events ([`Config::outcomes_format`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutcomesFormat {
    Json,
    Avro,
}

/// A Confluent-compatible schema registry ([`crate::avro::registry`]): where the writer
/// schemas of Avro records in the Confluent wire format come from, and where the outcome
/// schema is registered with `OUTCOMES_FORMAT=avro`.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Base URL of the registry (e.g. http://schema-registry:8081). Unset: a record in the
    /// Confluent wire format is rejected (`unknown_schema_id`), single-object Avro and
    /// JSON are read as ever.
    #[arg(long, env = "SCHEMA_REGISTRY_URL")]
    pub schema_registry_url: Option<String>,

    /// File holding `user:password` for HTTP basic authentication to the registry (read
    /// once at start; surrounding whitespace ignored).
    #[arg(long, env = "SCHEMA_REGISTRY_BASIC_AUTH_FILE")]
    pub schema_registry_basic_auth_file: Option<std::path::PathBuf>,

    /// Longest wait for one registry request.
    #[arg(long, env = "SCHEMA_REGISTRY_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub schema_registry_timeout: std::time::Duration,

    /// Writer schemas kept (by id); at the bound the least recently used goes and is
    /// fetched again when next needed.
    #[arg(long, env = "SCHEMA_REGISTRY_CACHE_SCHEMAS", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub schema_registry_cache_schemas: u32,
}

impl RegistryArgs {
    /// The basic-auth user and password from the file, if one is set. The error names the
    /// file and what is wrong, never the content.
    pub fn basic_auth(&self) -> Result<Option<(String, Secret)>, ConfigError> {
        const SETTING: &str = "SCHEMA_REGISTRY_BASIC_AUTH_FILE (--schema-registry-basic-auth-file)";
        let Some(path) = &self.schema_registry_basic_auth_file else {
            return Ok(None);
        };
        let text = read_secret_file(path).map_err(|problem| config_error(SETTING, problem))?;
        let Some((user, password)) = text.trim().split_once(':') else {
            return Err(config_error(
                SETTING,
                format!("{} does not hold `user:password`", path.display()),
            ));
        };
        if user.is_empty() || user.chars().any(char::is_control) {
            return Err(config_error(
                SETTING,
                format!(
                    "{}: the user is empty or holds control characters",
                    path.display()
                ),
            ));
        }
        Ok(Some((user.to_owned(), Secret::new(password))))
    }
}

/// The `kube` sink (`INTENT_SINK=kube`); ignored by the other sinks.
#[derive(Debug, Clone, Args)]
pub struct KubeArgs {
    /// Creates an intent's namespace when it does not exist (needs the RBAC of
    /// deploy/components/create-namespaces); false: such an intent fails with
    /// `namespace_not_found`.
    #[arg(
        long,
        env = "CREATE_NAMESPACES",
        default_value_t = false,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub create_namespaces: bool,

    /// Server-side apply with force: fields another field manager owns are taken over;
    /// false: such an intent fails (`apply_failed`) naming the other manager.
    #[arg(
        long,
        env = "KUBE_FORCE_APPLY",
        default_value_t = false,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub kube_force_apply: bool,
}

impl KubeArgs {
    pub fn options(&self) -> crate::apply::KubeOptions {
        crate::apply::KubeOptions {
            create_namespaces: self.create_namespaces,
            force_apply: self.kube_force_apply,
        }
    }
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

    /// The API key, sent as a bearer token: from the `LLM_API_KEY` variable only (there
    /// is no flag), read when the arguments are parsed. Prefer LLM_API_KEY_FILE.
    #[arg(skip = api_key_variable())]
    pub llm_api_key: Option<Secret>,

    /// Refused: a key on the command line is readable by every user of the node.
    #[arg(long = "llm-api-key", hide = true, value_name = "REFUSED")]
    pub llm_api_key_flag: Option<Secret>,

    /// File holding the API key (read once at start; surrounding whitespace ignored).
    /// Or set the LLM_API_KEY variable. There is no flag for the key itself: a command
    /// line is readable by every user of the node.
    #[arg(long, env = "LLM_API_KEY_FILE")]
    pub llm_api_key_file: Option<std::path::PathBuf>,

    /// Longest wait for one LLM answer, retries included: the whole ask (its turn, its
    /// calls and their retries) ends by this, then the rules translate.
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
    /// Up to about 24 KiB each at the answer and text limits (docs/memory.md).
    #[arg(long, env = "LLM_CACHE_ENTRIES", default_value_t = 1_000)]
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

/// The variable that holds the API key.
const API_KEY_VARIABLE: &str = "LLM_API_KEY";

/// `LLM_API_KEY`, if set and not empty (an unset Secret key may come through as "").
fn api_key_variable() -> Option<Secret> {
    let value = std::env::var_os(API_KEY_VARIABLE)?;
    let key = Secret::new(value.to_string_lossy().trim());
    (!key.expose().is_empty()).then_some(key)
}

/// Longest `LLM_TIMEOUT`: an answer that takes longer is not coming.
const MAX_LLM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60 * 60);
/// Longest `LLM_BREAKER_COOLDOWN`.
const MAX_BREAKER_COOLDOWN: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

impl LlmArgs {
    /// Checks the settings that only matter with an endpoint, and refuses a key on the
    /// command line whether or not there is one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.llm_api_key_flag.is_some() {
            return Err(config_error(
                "--llm-api-key",
                "a key on the command line is readable by every user of the node \
                 (/proc/<pid>/cmdline, ps); set the LLM_API_KEY variable (from a Secret) or \
                 LLM_API_KEY_FILE (a mounted Secret file) instead",
            ));
        }
        if self.llm_api_key.is_some() && self.llm_api_key_file.is_some() {
            return Err(config_error(
                "LLM_API_KEY_FILE (--llm-api-key-file)",
                "is set together with LLM_API_KEY; set one of them",
            ));
        }
        let Some(endpoint) = &self.llm_endpoint else {
            return Ok(());
        };
        let shown = crate::translate::llm::shown_endpoint(endpoint);
        let url = reqwest::Url::parse(endpoint).map_err(|e| {
            config_error(
                "LLM_ENDPOINT (--llm-endpoint)",
                format!("{shown} is not a URL: {e}"),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(config_error(
                "LLM_ENDPOINT (--llm-endpoint)",
                format!("{shown} is not an http or https URL"),
            ));
        }
        let has_key = self.llm_api_key.is_some() || self.llm_api_key_file.is_some();
        let in_the_url = crate::translate::llm::carries_credentials(&url);
        if (has_key || in_the_url) && !crate::translate::llm::may_carry_a_key(&url) {
            let which = if has_key {
                "an API key is set (LLM_API_KEY or LLM_API_KEY_FILE)"
            } else {
                "the URL holds credentials (a user, a password or a key in the query)"
            };
            return Err(config_error(
                "LLM_ENDPOINT (--llm-endpoint)",
                format!(
                    "{shown} is plain http to a host that is not loopback, and {which}: it \
                     would cross the network readable by anyone on the path; use https:// \
                     (plain http only to 127.0.0.0/8, ::1 or localhost)"
                ),
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
        check_at_most(
            "LLM_TIMEOUT (--llm-timeout)",
            self.llm_timeout,
            MAX_LLM_TIMEOUT,
        )?;
        check_at_most(
            "LLM_BREAKER_COOLDOWN (--llm-breaker-cooldown)",
            self.llm_breaker_cooldown,
            MAX_BREAKER_COOLDOWN,
        )?;
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

    /// The API key, from the variable, else from the file; `None` if neither. A key a
    /// bearer token cannot carry (control characters, spaces, non-ASCII) is an error that
    /// does not quote it.
    pub fn api_key(&self) -> Result<Option<Secret>, ConfigError> {
        if let Some(key) = &self.llm_api_key {
            check_token(API_KEY_VARIABLE, key)?;
            return Ok(Some(key.clone()));
        }
        let Some(path) = &self.llm_api_key_file else {
            return Ok(None);
        };
        const SETTING: &str = "LLM_API_KEY_FILE (--llm-api-key-file)";
        let text = read_secret_file(path).map_err(|problem| config_error(SETTING, problem))?;
        let key = Secret::new(text.trim());
        if key.expose().is_empty() {
            return Err(config_error(
                SETTING,
                format!("{} is empty", path.display()),
            ));
        }
        check_token(SETTING, &key)?;
        Ok(Some(key))
    }
}

/// Fails unless `key` is visible ASCII, as an HTTP bearer token must be.
fn check_token(setting: &'static str, key: &Secret) -> Result<(), ConfigError> {
    if key.expose().bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(config_error(
            setting,
            "holds characters an API key (a bearer token) cannot: control characters, \
             spaces or non-ASCII (value not shown)",
        ))
    }
}

/// Largest secret file read (a PEM key is a few KiB).
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// A secret file's text, bounded; the error names the path, never the content.
fn read_secret_file(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(format!(
            "{} is larger than {MAX_SECRET_FILE_BYTES} bytes",
            path.display()
        ));
    }
    String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", path.display()))
}

/// Fails if `value` is longer than `max`: durations are added to clocks, and a huge one
/// would overflow them.
fn check_at_most(
    setting: &'static str,
    value: std::time::Duration,
    max: std::time::Duration,
) -> Result<(), ConfigError> {
    if value <= max {
        Ok(())
    } else {
        Err(config_error(
            setting,
            format!(
                "{} is longer than the most it may be, {}",
                humantime::format_duration(value),
                humantime::format_duration(max)
            ),
        ))
    }
}

/// Fails unless `min <= value <= max`.
fn check_between(
    setting: &'static str,
    value: std::time::Duration,
    min: std::time::Duration,
    max: std::time::Duration,
) -> Result<(), ConfigError> {
    if value < min {
        return Err(config_error(
            setting,
            format!(
                "{} is shorter than the least it may be, {}",
                humantime::format_duration(value),
                humantime::format_duration(min)
            ),
        ));
    }
    check_at_most(setting, value, max)
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

/// A size in bytes, written as a Kubernetes quantity (`16Mi`, `1G`) or a plain count.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let quantity = crate::quantity::Quantity::parse(s)
        .map_err(|e| format!("{s:?} is not a size like 16Mi: {e}"))?;
    usize::try_from(quantity.nanos().div_ceil(1_000_000_000))
        .map_err(|_| format!("{s:?} is larger than this machine can address"))
}

pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like 25s: {e}"))
}

/// Suffix of a variable naming a file that holds a property's value
/// (`RDKAFKA_SASL_PASSWORD_FILE=/secrets/kafka/password`).
pub const RDKAFKA_FILE_SUFFIX: &str = "_FILE";

/// How errors name the librdkafka pass-through settings.
const RDKAFKA_VARIABLES: &str = "RDKAFKA_<PROPERTY>";
const KAFKA_CONFIG_FLAG: &str = "--kafka-config";

/// A property's value and the variable or flag it came from.
struct Given {
    source: String,
    value: String,
}

impl KafkaArgs {
    /// librdkafka properties from the environment and the flags, flags last; refused
    /// properties ([`crate::kafka::properties`]) and secrets on the command line are
    /// errors naming the variable or flag.
    pub fn properties(&self) -> Result<BTreeMap<String, String>, ConfigError> {
        self.properties_from(std::env::vars_os())
    }

    /// [`Self::properties`] with the environment given.
    fn properties_from(
        &self,
        environment: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        use crate::kafka::properties::{canonical, is_secret, refusal, FILE_PROPERTIES};
        if self.brokers.trim().is_empty() {
            return Err(config_error("KAFKA_BROKERS (--brokers)", "is empty"));
        }
        // Sorted, so that which of two conflicting variables an error names is stable.
        let mut variables = BTreeMap::new();
        for (name, value) in environment {
            let prefixed = name
                .as_encoded_bytes()
                .starts_with(RDKAFKA_ENV_PREFIX.as_bytes());
            if !prefixed {
                continue;
            }
            let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
                let shown = name.to_string_lossy().escape_debug().to_string();
                return Err(config_error(
                    RDKAFKA_VARIABLES,
                    format!("{shown}: the variable's name or value is not UTF-8"),
                ));
            };
            variables.insert(name.to_string(), value.to_string());
        }
        let mut given: BTreeMap<String, Given> = BTreeMap::new();
        for (name, value) in variables {
            let rest = &name[RDKAFKA_ENV_PREFIX.len()..];
            if rest.is_empty() {
                continue;
            }
            let dotted = rest.to_ascii_lowercase().replace('_', ".");
            let from_file = rest.ends_with(RDKAFKA_FILE_SUFFIX)
                && rest.len() > RDKAFKA_FILE_SUFFIX.len()
                && !FILE_PROPERTIES.contains(&dotted.as_str());
            let (property, value) = if from_file {
                let property = dotted[..dotted.len() - RDKAFKA_FILE_SUFFIX.len()].to_string();
                let text = read_secret_file(std::path::Path::new(&value)).map_err(|problem| {
                    config_error(RDKAFKA_VARIABLES, format!("{name}: {problem}"))
                })?;
                // A file written by `echo` ends in a newline the value does not.
                (property, text.trim_end_matches(['\n', '\r']).to_string())
            } else {
                (dotted, value)
            };
            if let Some(earlier) = given.get(&property) {
                return Err(config_error(
                    RDKAFKA_VARIABLES,
                    format!(
                        "{} and {name} both set `{property}`; set one of them",
                        earlier.source
                    ),
                ));
            }
            given.insert(
                property,
                Given {
                    source: name,
                    value,
                },
            );
        }
        for Property { key, value } in &self.kafka_config {
            if is_secret(key) {
                let variable = format!(
                    "{RDKAFKA_ENV_PREFIX}{}",
                    key.to_ascii_uppercase().replace('.', "_")
                );
                return Err(config_error(
                    KAFKA_CONFIG_FLAG,
                    format!(
                        "`{key}` is a secret, and a command line is readable by every user \
                         of the node (/proc/<pid>/cmdline, ps); set {variable} (from a \
                         Secret) or {variable}{RDKAFKA_FILE_SUFFIX} (a mounted Secret file) \
                         instead"
                    ),
                ));
            }
            let source = format!("{KAFKA_CONFIG_FLAG} {key}=...");
            given.insert(
                key.clone(),
                Given {
                    source,
                    value: value.clone(),
                },
            );
        }
        let mut by_property: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, Given { source, value }) in &given {
            let setting = if source.starts_with(KAFKA_CONFIG_FLAG) {
                KAFKA_CONFIG_FLAG
            } else {
                RDKAFKA_VARIABLES
            };
            if let Some(why) = refusal(name, value) {
                return Err(config_error(setting, format!("{source}: {why}")));
            }
            if let Some(other) = by_property.insert(canonical(name), source) {
                return Err(config_error(
                    setting,
                    format!(
                        "{other} and {source} set the same librdkafka property `{}` under \
                         two names, and which one wins is not fixed; set one of them",
                        canonical(name)
                    ),
                ));
            }
        }
        let mut properties: BTreeMap<String, String> =
            given.into_iter().map(|(name, g)| (name, g.value)).collect();
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
        if !(1..=MAX_RESTORE_CONCURRENCY).contains(&self.dedup_restore_concurrency) {
            return Err(config_error(
                "DEDUP_RESTORE_CONCURRENCY (--dedup-restore-concurrency)",
                format!(
                    "{} is not between 1 and {MAX_RESTORE_CONCURRENCY} (each restore holds up to \
                     16 MiB of fetched records besides its state)",
                    self.dedup_restore_concurrency
                ),
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
        if self.partition_buffer_bytes == 0 {
            return Err(config_error(
                "PARTITION_BUFFER_BYTES (--partition-buffer-bytes)",
                "must be at least 1",
            ));
        }
        if self.buffer_bytes < self.partition_buffer_bytes {
            return Err(config_error(
                "BUFFER_BYTES (--buffer-bytes)",
                "must be at least PARTITION_BUFFER_BYTES: the whole worker's buffer holds at least one partition's",
            ));
        }
        self.check_durations()?;
        self.llm.validate()
    }
}

/// Most `DEDUP_RESTORE_CONCURRENCY`: restores side by side cost memory, and past a few
/// they share the same network and broker anyway.
const MAX_RESTORE_CONCURRENCY: usize = 64;

/// Longest `SHUTDOWN_TIMEOUT` and `REVOKE_DRAIN_TIMEOUT`.
const MAX_DRAIN: std::time::Duration = std::time::Duration::from_secs(60 * 60);
/// Shortest `LIVENESS_TIMEOUT`: the loops beat every second when idle
/// ([`crate::worker::HEARTBEAT_TICK`]); less would restart a healthy worker.
const MIN_LIVENESS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// Longest `DEDUP_WINDOW`.
const MAX_DEDUP_WINDOW: std::time::Duration =
    std::time::Duration::from_secs(10 * 365 * 24 * 60 * 60);

impl Config {
    /// Bounds the durations the worker adds to clocks, so none can overflow one.
    fn check_durations(&self) -> Result<(), ConfigError> {
        check_at_most(
            "SHUTDOWN_TIMEOUT (--shutdown-timeout)",
            self.shutdown_timeout,
            MAX_DRAIN,
        )?;
        check_at_most(
            "REVOKE_DRAIN_TIMEOUT (--revoke-drain-timeout)",
            self.revoke_drain_timeout,
            MAX_DRAIN,
        )?;
        check_between(
            "LIVENESS_TIMEOUT (--liveness-timeout)",
            self.liveness_timeout,
            MIN_LIVENESS_TIMEOUT,
            MAX_DRAIN,
        )?;
        check_at_most(
            "READINESS_GRACE (--readiness-grace)",
            self.readiness_grace,
            MAX_DRAIN,
        )?;
        check_at_most(
            "DEDUP_WINDOW (--dedup-window)",
            self.dedup_window,
            MAX_DEDUP_WINDOW,
        )
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
        let bad_sink = Wrapper::try_parse_from(["x", "--intent-sink", "k8s"]);
        assert!(bad_sink.is_err());
        let kube = parse(&["--intent-sink", "kube", "--create-namespaces", "true"]);
        assert_eq!(kube.intent_sink, SinkSpec::Kube);
        assert!(kube.kube.create_namespaces && !kube.kube.kube_force_apply);
        let not_a_bool = Wrapper::try_parse_from(["x", "--kube-force-apply", "sometimes"]);
        assert!(not_a_bool.is_err());
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
        let mut c = parse(&[]);
        c.llm.llm_api_key = Some(Secret::new("sk-very-secret"));
        assert_eq!(c.llm.api_key().unwrap().unwrap().expose(), "sk-very-secret");
        assert!(!format!("{c:?}").contains("sk-very-secret"));
    }

    #[test]
    fn an_api_key_on_the_command_line_is_refused_saying_why_and_what_instead() {
        // Refused with or without an endpoint, and never quoted.
        for args in [
            &["--llm-api-key", "sk-on-the-command-line"][..],
            &[
                "--llm-api-key=sk-on-the-command-line",
                "--llm-endpoint",
                "https://h/v1",
                "--llm-model",
                "m",
            ],
        ] {
            let c = parse(args);
            assert!(!format!("{c:?}").contains("sk-on-the-command-line"));
            let err = c.validate().unwrap_err().to_string();
            for expected in ["--llm-api-key", "/proc", "LLM_API_KEY", "LLM_API_KEY_FILE"] {
                assert!(err.contains(expected), "{err}");
            }
            assert!(!err.contains("sk-on-the-command-line"), "{err}");
        }
    }

    #[test]
    fn a_key_goes_over_plain_http_only_to_loopback() {
        let with_key = |endpoint: &str| {
            let mut c = parse(&["--llm-endpoint", endpoint, "--llm-model", "m"]);
            c.llm.llm_api_key = Some(Secret::new("sk-1"));
            c.validate()
        };
        let err = with_key("http://llm.internal:8000/v1?api-key=sk-q")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("LLM_ENDPOINT") && err.contains("https") && err.contains("loopback"),
            "{err}"
        );
        assert!(!err.contains("sk-q"), "the query string is redacted: {err}");
        with_key("https://llm.internal/v1").unwrap();
        with_key("http://127.0.0.1:8000/v1").unwrap();
        with_key("http://localhost:11434/v1").unwrap();
        with_key("http://[::1]:8000/v1").unwrap();
        // A key file counts as a key; no key, no rule.
        let c = parse(&[
            "--llm-endpoint",
            "http://llm:8000/v1",
            "--llm-model",
            "m",
            "--llm-api-key-file",
            "/run/secrets/key",
        ]);
        assert!(c.validate().unwrap_err().to_string().contains("https"));
        parse(&["--llm-endpoint", "http://llm:8000/v1", "--llm-model", "m"])
            .validate()
            .unwrap();
        // Credentials in the URL count as a key.
        let err = parse(&[
            "--llm-endpoint",
            "http://llm:8000/v1?key=sk-z",
            "--llm-model",
            "m",
        ])
        .validate()
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("holds credentials") && !err.contains("sk-z"),
            "{err}"
        );
    }

    #[test]
    fn durations_that_would_overflow_a_clock_are_refused() {
        for (args, setting) in [
            (
                &[
                    "--llm-endpoint",
                    "https://h/v1",
                    "--llm-model",
                    "m",
                    "--llm-timeout",
                    "100000000000y",
                ][..],
                "LLM_TIMEOUT",
            ),
            (
                &[
                    "--llm-endpoint",
                    "https://h/v1",
                    "--llm-model",
                    "m",
                    "--llm-breaker-cooldown",
                    "500y",
                ],
                "LLM_BREAKER_COOLDOWN",
            ),
            (&["--shutdown-timeout", "100000000000y"], "SHUTDOWN_TIMEOUT"),
            (&["--revoke-drain-timeout", "2h"], "REVOKE_DRAIN_TIMEOUT"),
            (&["--liveness-timeout", "2h"], "LIVENESS_TIMEOUT"),
            (&["--readiness-grace", "2h"], "READINESS_GRACE"),
            (&["--dedup-window", "500y"], "DEDUP_WINDOW"),
        ] {
            let err = parse(args).validate().unwrap_err().to_string();
            assert!(
                err.contains(setting) && err.contains("longer than"),
                "{err}"
            );
        }
    }

    #[test]
    fn restores_at_once_are_bounded() {
        assert_eq!(parse(&[]).dedup_restore_concurrency, 2);
        for refused in ["0", "65"] {
            let err = parse(&["--dedup-restore-concurrency", refused])
                .validate()
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("DEDUP_RESTORE_CONCURRENCY") && err.contains("between 1 and 64"),
                "{err}"
            );
        }
        assert!(parse(&["--dedup-restore-concurrency", "8"])
            .validate()
            .is_ok());
    }

    #[test]
    fn a_liveness_timeout_shorter_than_the_heartbeat_is_refused() {
        let err = parse(&["--liveness-timeout", "1s"])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("LIVENESS_TIMEOUT") && err.contains("shorter than"),
            "{err}"
        );
        let config = parse(&["--liveness-timeout", "2s", "--readiness-grace", "0s"]);
        assert!(config.validate().is_ok());
        let defaults = parse(&[]);
        assert_eq!(
            (defaults.liveness_timeout, defaults.readiness_grace),
            (
                crate::health::DEFAULT_LIVENESS_TIMEOUT,
                crate::health::DEFAULT_READINESS_GRACE
            )
        );
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
        let mut both = parse(&["--llm-api-key-file", path]);
        both.llm.llm_api_key = Some(Secret::new("a"));
        let err = both.validate().unwrap_err().to_string();
        assert!(
            err.contains("LLM_API_KEY_FILE") && err.contains("LLM_API_KEY;"),
            "{err}"
        );
        std::fs::write(dir.path().join("bad"), "sk-with\u{7}bell").unwrap();
        let bad = parse(&[
            "--llm-api-key-file",
            dir.path().join("bad").to_str().unwrap(),
        ]);
        let err = bad.llm.api_key().unwrap_err().to_string();
        assert!(
            err.contains("bearer token") && !err.contains("sk-with"),
            "{err}"
        );
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

    fn env(pairs: &[(&str, &str)]) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    fn kafka_error(args: &[&str], variables: &[(&str, &str)]) -> String {
        parse(args)
            .kafka
            .properties_from(env(variables))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn variables_become_properties_and_flags_win() {
        let c = parse(&["--kafka-config", "linger.ms=9"]);
        let p = c
            .kafka
            .properties_from(env(&[
                ("RDKAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
                ("RDKAFKA_SASL_PASSWORD", "pw"),
                ("RDKAFKA_LINGER_MS", "5"),
                ("RDKAFKA_", "ignored"),
                ("KAFKA_PORT", "tcp://10.0.0.1:9092"),
            ]))
            .unwrap();
        assert_eq!(p["security.protocol"], "SASL_SSL");
        assert_eq!(p["sasl.password"], "pw");
        assert_eq!(p["linger.ms"], "9");
        assert_eq!(p.len(), 4, "{p:?}");
    }

    #[test]
    fn a_secret_on_the_command_line_is_refused_and_taken_from_a_variable_or_file() {
        for secret in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "ssl.key.pem",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.config",
        ] {
            let arg = format!("{secret}=hunter2");
            let err = kafka_error(&["--kafka-config", &arg], &[]);
            let variable = format!("RDKAFKA_{}", secret.to_uppercase().replace('.', "_"));
            assert!(
                err.contains("--kafka-config")
                    && err.contains("/proc")
                    && err.contains(&variable)
                    && err.contains(&format!("{variable}_FILE")),
                "{err}"
            );
            assert!(!err.contains("hunter2"), "{err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        std::fs::write(&file, "s3cret \n").unwrap();
        let file = file.to_str().unwrap();
        let p = parse(&[])
            .kafka
            .properties_from(env(&[("RDKAFKA_SASL_PASSWORD_FILE", file)]))
            .unwrap();
        assert_eq!(
            p["sasl.password"], "s3cret ",
            "only the line ending is dropped"
        );
        let err = kafka_error(
            &[],
            &[
                ("RDKAFKA_SASL_PASSWORD", "a"),
                ("RDKAFKA_SASL_PASSWORD_FILE", file),
            ],
        );
        assert!(
            err.contains("RDKAFKA_SASL_PASSWORD and RDKAFKA_SASL_PASSWORD_FILE"),
            "{err}"
        );
        let err = kafka_error(&[], &[("RDKAFKA_SSL_KEY_PEM_FILE", "/nonexistent/key.pem")]);
        assert!(
            err.contains("RDKAFKA_SSL_KEY_PEM_FILE") && err.contains("/nonexistent/key.pem"),
            "{err}"
        );
        // A property whose own name ends in .file is that property, not a file of one.
        let p = parse(&[])
            .kafka
            .properties_from(env(&[(
                "RDKAFKA_SASL_OAUTHBEARER_ASSERTION_FILE",
                "/a.jwt",
            )]))
            .unwrap();
        assert_eq!(p["sasl.oauthbearer.assertion.file"], "/a.jwt");
    }

    #[test]
    fn pinned_properties_aliases_and_guarantee_breakers_are_refused_naming_the_setting() {
        for (args, variables, expected) in [
            (
                &[][..],
                &[("RDKAFKA_REQUEST_REQUIRED_ACKS", "1")][..],
                &["RDKAFKA_REQUEST_REQUIRED_ACKS", "`acks`"][..],
            ),
            (
                &["--kafka-config", "acks=1"],
                &[],
                &["--kafka-config acks", "no loss"],
            ),
            (
                &[],
                &[("RDKAFKA_BOOTSTRAP_SERVERS", "b:1")],
                &["RDKAFKA_BOOTSTRAP_SERVERS", "KAFKA_BROKERS"],
            ),
            (
                &["--kafka-config", "metadata.broker.list=b:1"],
                &[],
                &["metadata.broker.list", "KAFKA_BROKERS"],
            ),
            (&[], &[("RDKAFKA_GROUP_ID", "g")], &["CONSUMER_GROUP"]),
            (
                &[],
                &[("RDKAFKA_ISOLATION_LEVEL", "read_uncommitted")],
                &["RDKAFKA_ISOLATION_LEVEL", "read_uncommitted", "committed"],
            ),
            (
                &[],
                &[("RDKAFKA_MESSAGE_TIMEOUT_MS", "0")],
                &["RDKAFKA_MESSAGE_TIMEOUT_MS", "never times out"],
            ),
            (
                &[],
                &[("RDKAFKA_DELIVERY_TIMEOUT_MS", "0")],
                &["`message.timeout.ms`", "never times out"],
            ),
            (
                &[],
                &[("RDKAFKA_ENABLE_AUTO_COMMIT", "false")],
                &["enable.auto.commit"],
            ),
            (
                &[],
                &[("RDKAFKA_GROUP_INSTANCE_ID", "pod")],
                &["static membership"],
            ),
            (
                &[],
                &[("RDKAFKA_TRANSACTIONAL_ID", "t")],
                &["transactional"],
            ),
            (
                &[],
                &[("RDKAFKA_ENABLE_PARTITION_EOF", "true")],
                &["not messages"],
            ),
            (
                &[],
                &[("RDKAFKA_ALLOW_AUTO_CREATE_TOPICS", "true")],
                &["create-topics"],
            ),
            // Two names of one property: which wins would be left to chance.
            (
                &[],
                &[
                    ("RDKAFKA_LINGER_MS", "5"),
                    ("RDKAFKA_QUEUE_BUFFERING_MAX_MS", "10"),
                ],
                &[
                    "RDKAFKA_LINGER_MS",
                    "RDKAFKA_QUEUE_BUFFERING_MAX_MS",
                    "queue.buffering.max.ms",
                ],
            ),
        ] {
            let err = kafka_error(args, variables);
            for text in expected {
                assert!(err.contains(text), "{args:?} {variables:?}: {err}");
            }
        }
    }
}
