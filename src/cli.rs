//! The command line: `run` (the worker, and the default), and the tools an operator
//! or a quick start needs around it: `create-topics`, `submit`, `outcomes`, `dlq replay`,
//! `translate`, `crd`.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use sha2::Digest;

use crate::apply::IntentSink;
use crate::avro::registry::Registry;
use crate::config::{parse_duration, Config, KafkaArgs, LlmArgs, RegistryArgs, TopicArgs};
use crate::health::Health;
use crate::intent::NetworkIntent;
use crate::kafka::admin;
use crate::kafka::tools::{OutcomeReader, Read, Start};
use crate::outcome::Stage;
use crate::pipeline::Pipeline;
use crate::policy::PolicyArgs;
use crate::request::{NetworkEvent, Request, ServiceRequest};
use crate::translate::{self, Translation, Translator};
use crate::validate::{check_request, validate, Limits};

#[derive(Debug, Parser)]
#[command(
    name = "nephoran-kafka-consumer",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Settings of `run` when no subcommand is given.
    #[command(flatten)]
    pub run: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a worker of the consumer group (the default).
    Run(Box<Config>),
    /// Create the input, outcome and dead-letter topics, and the dead-letter topic's
    /// `.replayed` (existing ones are left alone).
    CreateTopics(CreateTopics),
    /// Produce a service request (and with --wait, follow it to its outcome), or a batch
    /// of JSON documents with --file.
    Submit(crate::submit::Submit),
    /// Print outcome events; with --keys, wait until each key has a terminal outcome.
    Outcomes(Outcomes),
    /// Work with the dead-letter topic.
    Dlq {
        #[command(subcommand)]
        command: Dlq,
    },
    /// Print the NetworkIntent a request would become, without Kafka (exit 2: rejected).
    Translate(Box<Translate>),
    /// Print the NetworkIntent CustomResourceDefinition (YAML), generated from the type.
    Crd,
}

#[derive(Debug, Subcommand)]
pub enum Dlq {
    /// Re-publish dead letters to their original topic, key and headers, once each (exit
    /// 3: some chosen letters cannot be replayed as they were).
    Replay(Box<crate::replay::Replay>),
}

#[derive(Debug, Args)]
pub struct Translate {
    /// The service request text; with --event, a network event as JSON.
    pub text: String,
    /// TEXT is a network event (JSON), not a service request.
    #[arg(long)]
    pub event: bool,
    /// Print the intent as JSON instead of YAML.
    #[arg(long)]
    pub json: bool,
    /// Idempotency key the intent's name derives from (default: a hash of TEXT).
    #[arg(long)]
    pub key: Option<String>,
    /// Largest replica count an intent may ask for.
    #[arg(long, env = "MAX_REPLICAS", default_value_t = 100)]
    pub max_replicas: u32,
    #[command(flatten)]
    pub llm: LlmArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

#[derive(Debug, Args)]
pub struct CreateTopics {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub topics: TopicArgs,
    /// Partitions of each topic.
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// Replication factor of each topic.
    #[arg(long, default_value_t = 1)]
    pub replication: i32,
}

#[derive(Debug, Args)]
pub struct Outcomes {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Topic the lifecycle events are read from.
    #[arg(long, env = "OUTCOMES_TOPIC", default_value = "intent-outcomes")]
    pub outcomes_topic: String,
    /// Only these idempotency keys (comma-separated); read from the beginning and exit
    /// once each has a terminal stage.
    #[arg(long, value_delimiter = ',')]
    pub keys: Vec<String>,
    /// Give up waiting for --keys after this long (exit code 1).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Only events of this exact idempotency key (repeatable); keeps following.
    #[arg(long)]
    pub key: Vec<String>,
    /// Only events of these lifecycle stages (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',', value_parser = parse_stage)]
    pub stage: Vec<Stage>,
    /// Print the events as published, one JSON object per line, instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// Only events that occurred at or after this time: a duration back from now
    /// (`15m`) or RFC 3339 (`2026-11-26T10:00:00Z`). Reading starts near that time.
    #[arg(long, value_parser = parse_since)]
    pub since: Option<SystemTime>,
    /// Read the topic from its first record (else only events published from now on).
    #[arg(long)]
    pub from_beginning: bool,
    /// The registry that resolves Confluent-framed Avro outcomes (`OUTCOMES_FORMAT=avro`
    /// with a registry); JSON and single-object Avro need none.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

fn parse_stage(s: &str) -> Result<Stage, String> {
    Stage::ALL
        .into_iter()
        .find(|stage| stage.as_str() == s)
        .ok_or_else(|| {
            let known: Vec<_> = Stage::ALL.iter().map(|s| s.as_str()).collect();
            format!("unknown stage {s:?} (one of {})", known.join(", "))
        })
}

fn parse_since(s: &str) -> Result<SystemTime, String> {
    if let Ok(ago) = parse_duration(s) {
        return SystemTime::now()
            .checked_sub(ago)
            .ok_or_else(|| format!("{s:?} reaches back before the clock's epoch"));
    }
    humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("{s:?} is neither a duration (15m) nor an RFC 3339 time: {e}"))
}

/// Runs the parsed command line; the exit code is the command's.
pub async fn main(cli: Cli) -> anyhow::Result<ExitCode> {
    let done = match cli.command {
        None => run(cli.run).await,
        Some(Command::Run(config)) => run(*config).await,
        Some(Command::CreateTopics(args)) => create_topics(args).await,
        Some(Command::Submit(args)) => return crate::submit::run(args).await,
        Some(Command::Outcomes(args)) => outcomes(args).await,
        Some(Command::Dlq {
            command: Dlq::Replay(args),
        }) => return crate::replay::run(*args).await,
        Some(Command::Translate(args)) => return translate(*args).await,
        Some(Command::Crd) => crd(),
    };
    done.map(|()| ExitCode::SUCCESS)
}

async fn run(config: Config) -> anyhow::Result<()> {
    config.validate()?;
    // Before anything records a metric: handles made earlier would not be exposed.
    let metrics = crate::prometheus::install()?;
    let health = Arc::new(Health::default());
    let addr = crate::health::serve(config.metrics_addr, health.clone(), Some(metrics)).await?;
    tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
    let limits = Limits {
        max_replicas: config.max_replicas,
        ..Limits::default()
    };
    let (policy, source) = config.policy.policy(config.max_replicas)?;
    policy.log_in_force(&source);
    let translator = translate::configured(&config.llm, limits.clone())?;
    let sink = IntentSink::start(config.intent_sink.clone(), config.kube.options()).await?;
    let pipeline =
        Pipeline::new(translator, sink, limits, policy).with_event_cooldown(config.event_cooldown);
    crate::worker::run(&config, pipeline, health, shutdown_signal()).await
}

/// Translates one request the way a worker would (same translator settings, same
/// validation, same policy) and prints the intent; a rejection goes to stderr with exit code 2.
async fn translate(args: Translate) -> anyhow::Result<ExitCode> {
    const REJECTED: u8 = 2;
    let request = if args.event {
        match serde_json::from_str::<NetworkEvent>(&args.text) {
            Ok(event) => Request::Event(event),
            Err(e) => {
                eprintln!("rejected (invalid_schema): TEXT is not a network event: {e}");
                return Ok(ExitCode::from(REJECTED));
            }
        }
    } else {
        Request::Service(ServiceRequest::new(args.text.clone()))
    };
    let limits = Limits {
        max_replicas: args.max_replicas,
        ..Limits::default()
    };
    let (policy, _) = args.policy.policy(args.max_replicas)?;
    if let Err(invalid) = check_request(&request, &limits) {
        eprintln!("rejected (invalid_intent): {invalid}");
        return Ok(ExitCode::from(REJECTED));
    }
    let translator = translate::configured(&args.llm, limits.clone())?;
    let Translation { by, result } = translator.translate(&request).await;
    let by = by.as_str();
    let spec = match result {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("rejected (untranslatable) by {by}: {}", e.reason);
            return Ok(ExitCode::from(REJECTED));
        }
    };
    let key = args.key.unwrap_or_else(|| {
        let digest = sha2::Sha256::digest(args.text.as_bytes());
        format!("sha256:{}", crate::hex::lower_hex(&digest))
    });
    let intent = NetworkIntent::for_key(&key, spec);
    if let Err(invalid) = validate(&intent, &limits) {
        eprintln!("rejected (invalid_intent) by {by}: {invalid}");
        return Ok(ExitCode::from(REJECTED));
    }
    if let Err(denial) = policy.check(&intent.spec) {
        eprintln!("rejected (policy_denied) by {by}: {denial}");
        return Ok(ExitCode::from(REJECTED));
    }
    let printed = if args.json {
        serde_json::to_string_pretty(&intent)? + "\n"
    } else {
        serde_yaml::to_string(&intent)?
    };
    print!("{printed}");
    eprintln!("translated by {by}");
    Ok(ExitCode::SUCCESS)
}

/// Prints the CRD that `deploy/base/crd-networkintent.yaml` holds.
fn crd() -> anyhow::Result<()> {
    let yaml = crate::crd::yaml().context("cannot render the CRD as YAML")?;
    print!("{yaml}");
    Ok(())
}

/// Completes on SIGTERM (Kubernetes stopping the pod) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the worker");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn create_topics(args: CreateTopics) -> anyhow::Result<()> {
    args.topics.validate()?;
    let mut topics = args.topics.topics.clone();
    topics.push(args.topics.outcomes_topic.clone());
    topics.push(args.topics.dlq_topic.clone());
    let properties = args.kafka.properties()?;
    admin::create_topics(&properties, &topics, args.partitions, args.replication).await?;
    // What `dlq replay` remembers: compacted, small, one partition.
    let replayed = crate::replay::marks::topic_of(&args.topics.dlq_topic);
    admin::create_compacted(&properties, &replayed, 1, args.replication).await?;
    Ok(())
}

async fn outcomes(args: Outcomes) -> anyhow::Result<()> {
    // --keys waits for requests that may be done already: it reads from the beginning.
    let start = match args.since {
        Some(since) => Start::Since(since),
        None if args.from_beginning || !args.keys.is_empty() => Start::Beginning,
        None => Start::Now,
    };
    let registry = Registry::from_args(&args.registry)?;
    let reader = OutcomeReader::new(
        &args.kafka.properties()?,
        &args.outcomes_topic,
        start,
        registry,
    )?;
    eprintln!("following {}", crate::show::escaped(&args.outcomes_topic));
    let wanted: BTreeSet<&str> = args.keys.iter().map(String::as_str).collect();
    let mut finished: BTreeSet<String> = BTreeSet::new();
    let deadline = Instant::now() + args.timeout;
    while wanted.is_empty() || finished.len() < wanted.len() {
        let read = if wanted.is_empty() {
            reader.next().await?
        } else {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, reader.next()).await {
                Ok(read) => read?,
                Err(_) => {
                    let missing: Vec<_> =
                        wanted.iter().filter(|k| !finished.contains(**k)).collect();
                    bail!(
                        "no terminal outcome within {:?} for {missing:?}",
                        args.timeout
                    );
                }
            }
        };
        let (event, raw) = match read {
            Read::Event { event, raw, .. } => (event, raw),
            Read::Undecodable { at, reason } => {
                eprintln!(
                    "warning: skipping a record that is not an outcome event at {}: {}",
                    crate::show::place(&at),
                    crate::show::escaped(&reason)
                );
                continue;
            }
        };
        if !wanted.is_empty() && !wanted.contains(event.idempotency_key.as_str()) {
            continue;
        }
        if !args.key.is_empty() && !args.key.contains(&event.idempotency_key) {
            continue;
        }
        if !args.stage.is_empty() && !args.stage.contains(&event.stage) {
            continue;
        }
        if let Some(since) = args.since {
            let at = humantime::parse_rfc3339_weak(&event.occurred_at);
            if at.map_or(true, |at| at < since) {
                continue;
            }
        }
        if args.json {
            println!("{}", crate::show::json_line(&raw));
        } else {
            println!("{}", crate::show::summary(&event));
        }
        if event.stage.is_terminal() {
            finished.insert(event.idempotency_key.clone());
        }
    }
    Ok(())
}
