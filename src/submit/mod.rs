//! The `submit` command: one service request from the command line, optionally followed
//! to its outcome (`--wait`), or a batch of JSON documents from files (`--file`).
//!
//! A request is produced as the design asks producers to: the idempotency key is the
//! Kafka message key and the `idempotency-key` header. `--wait` must not miss an outcome
//! published between the produce and its first read, so it takes the outcome topic's
//! offsets *before* producing and reads from there, and it takes only the events that
//! name its key and its own place (topic, partition, offset) as their source
//! ([`follow`]): an earlier submission with the same key is not this one.

mod follow;
mod progress;

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{ArgGroup, Args};

use crate::avro::registry::Registry;
use crate::config::{parse_duration, KafkaArgs, RegistryArgs};
use crate::decode::{is_forbidden, MAX_KEY_BYTES};
use crate::intent::Priority;
use crate::kafka::tools::{OutcomeReader, Read, Start, Submitter};
use crate::request::ServiceRequest;
use crate::show::{escaped, place};
use crate::validate::is_dns1123_label;

pub use follow::{Follow, Reason, Step, Target};
use progress::Progress;

/// Exit code of a request that was rejected or failed (or duplicates one that was), and
/// of a Kafka error.
pub const EXIT_REFUSED: u8 = 1;
/// Exit code of a usage or settings error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when `--timeout` passes first, as timeout(1) has it.
pub const EXIT_TIMEOUT: u8 = 124;
/// Exit code when the wait is interrupted (Ctrl-C), as shells report SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("request").required(true).args(["text", "file"])))]
pub struct Submit {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Topic for service requests (documents with an "intent" field).
    #[arg(long, default_value = "service-requests")]
    pub service_requests_topic: String,
    /// Topic for network events (documents with an "event_type" field).
    #[arg(long, default_value = "network-events")]
    pub network_events_topic: String,
    /// Topic the outcomes are read from (--wait).
    #[arg(long, env = "OUTCOMES_TOPIC", default_value = "intent-outcomes")]
    pub outcomes_topic: String,
    /// The service request, e.g. "Deploy AMF with 3 replicas in namespace core5g".
    pub text: Option<String>,
    /// A file of JSON documents, one per line, to produce as a batch ("-": standard
    /// input); repeatable.
    #[arg(long, value_name = "FILE")]
    pub file: Vec<PathBuf>,
    /// The request's target namespace.
    #[arg(long, value_name = "NS", requires = "text")]
    pub namespace: Option<String>,
    /// The request's priority: low, medium, high or critical.
    #[arg(long, value_name = "P", requires = "text")]
    pub priority: Option<String>,
    /// Idempotency key (default: a new random one, printed). Submitting the same request
    /// with the same key again yields a `duplicate`, not a second intent.
    #[arg(long, value_name = "K", requires = "text")]
    pub key: Option<String>,
    /// Follow the request's outcomes until it succeeds, is refused, or --timeout passes.
    #[arg(long, requires = "text")]
    pub wait: bool,
    /// The stage --wait counts as success.
    #[arg(long = "for", value_enum, default_value = "applied", requires = "wait")]
    pub target: Target,
    /// How long --wait waits (exit code 124 when it passes).
    #[arg(long, default_value = "10m", value_parser = parse_duration, requires = "wait")]
    pub timeout: Duration,
    /// The registry that resolves Confluent-framed Avro outcomes (--wait, with workers
    /// at `OUTCOMES_FORMAT=avro` and a registry).
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Runs `submit`; the exit code is 0, [`EXIT_REFUSED`], [`EXIT_USAGE`] or [`EXIT_TIMEOUT`].
pub async fn run(args: Submit) -> anyhow::Result<ExitCode> {
    let properties = match args.kafka.properties() {
        Ok(properties) => properties,
        Err(e) => return Ok(usage(&format!("{e:#}"))),
    };
    match &args.text {
        Some(text) => submit_one(&args, text, &properties).await,
        None => {
            submit_files(&args, &properties).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_USAGE)
}

/// The request as a payload, or what is wrong with the flags.
fn request_payload(args: &Submit, text: &str, key: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("the request TEXT is empty".into());
    }
    if key.is_empty() || key.len() > MAX_KEY_BYTES || key.chars().any(is_forbidden) {
        // `key` is trimmed: a key of blanks is empty here.
        return Err(format!(
            "--key {}: an idempotency key is 1 to {MAX_KEY_BYTES} bytes without control or format characters",
            escaped(key)
        ));
    }
    if let Some(ns) = &args.namespace {
        if !is_dns1123_label(ns) {
            return Err(format!(
                "--namespace {}: not a DNS-1123 label (lower-case letters, digits and '-', at most 63)",
                escaped(ns)
            ));
        }
    }
    if let Some(priority) = &args.priority {
        if Priority::parse(priority).is_none() {
            return Err(format!(
                "--priority {}: not one of low, medium, high, critical",
                escaped(priority)
            ));
        }
    }
    let mut request = ServiceRequest::new(text);
    request.idempotency_key = Some(key.to_string());
    request.target_namespace = args.namespace.clone();
    request.priority = args.priority.clone();
    serde_json::to_string(&request).map_err(|e| format!("cannot encode the request: {e}"))
}

async fn submit_one(
    args: &Submit,
    text: &str,
    properties: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<ExitCode> {
    let generated = args.key.is_none();
    // Trimmed as the worker trims it, or the outcomes would carry another key than this.
    let key = args
        .key
        .as_deref()
        .map_or_else(new_key, |key| key.trim().to_string());
    let payload = match request_payload(args, text, &key) {
        Ok(payload) => payload,
        Err(problem) => return Ok(usage(&problem)),
    };
    let deadline = tokio::time::Instant::now() + args.timeout;
    // Before producing: the offsets it starts from must precede any outcome of the request.
    let reader = if args.wait {
        let registry = match Registry::from_args(&args.registry) {
            Ok(registry) => registry,
            Err(e) => return Ok(usage(&e.to_string())),
        };
        Some(OutcomeReader::new(
            properties,
            &args.outcomes_topic,
            Start::Now,
            registry,
        )?)
    } else {
        None
    };
    // Ctrl-C while waiting ends the wait with a word on where to look; taken over before
    // the first line is printed, so a script that reads it may interrupt at once.
    let interrupt = if args.wait {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok()
    } else {
        None
    };
    let submitter = Submitter::new(properties)?;
    let produced = submitter.submit(&args.service_requests_topic, Some(&key), &payload);
    let source = if args.wait {
        match tokio::time::timeout_at(deadline, produced).await {
            Ok(source) => source?,
            Err(_) => {
                eprintln!(
                    "timed out after {} producing the request",
                    humantime::format_duration(args.timeout)
                );
                return Ok(ExitCode::from(EXIT_TIMEOUT));
            }
        }
    } else {
        produced.await?
    };
    println!(
        "submitted {} to {}{}",
        escaped(&key),
        place(&source),
        if generated { " (key generated)" } else { "" }
    );
    match reader {
        Some(reader) => Ok(wait(args, &key, source, &reader, deadline, interrupt).await),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Follows the request's outcomes until success, refusal or the deadline.
async fn wait(
    args: &Submit,
    key: &str,
    source: crate::message::SourceRef,
    reader: &OutcomeReader,
    deadline: tokio::time::Instant,
    mut interrupt: Option<tokio::signal::unix::Signal>,
) -> ExitCode {
    let mut follow = Follow::new(key, source, args.target);
    let mut progress = Progress::new(key, std::io::stdout().is_terminal());
    progress.tick();
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    let mut last_stage = None;
    loop {
        let read = tokio::select! {
            read = reader.next() => read,
            _ = ticks.tick() => {
                progress.tick();
                continue;
            }
            Some(_) = async {
                match interrupt.as_mut() {
                    Some(interrupt) => interrupt.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                progress.finish();
                eprintln!(
                    "interrupted; the request is processed all the same: outcomes --keys {}",
                    escaped(key)
                );
                return ExitCode::from(EXIT_INTERRUPTED);
            }
            _ = tokio::time::sleep_until(deadline) => {
                progress.finish();
                let target = match args.target {
                    Target::Applied => "applied",
                    Target::Deployed => "deployed",
                };
                let hint = match (last_stage, args.target) {
                    (None, _) => "; no event about it arrived: is a worker running?",
                    (Some(_), Target::Deployed) => {
                        "; `deployed` comes from a worker with INTENT_SINK=kube watching the operator's status"
                    }
                    (Some(_), Target::Applied) => "",
                };
                eprintln!(
                    "timed out: no {target} outcome for {} within {} (last stage seen: {}){hint}",
                    escaped(key),
                    humantime::format_duration(args.timeout),
                    last_stage.map_or("none", crate::outcome::Stage::as_str),
                );
                return ExitCode::from(EXIT_TIMEOUT);
            }
        };
        let (event, at) = match read {
            Ok(Read::Event { event, at, .. }) => (event, at),
            Ok(Read::Undecodable { at, reason }) => {
                progress.warn(&format!(
                    "skipping a record that is not an outcome event at {}: {}",
                    place(&at),
                    escaped(&reason)
                ));
                continue;
            }
            Err(e) => {
                // A broker that is away is retried by the client; this is a read that
                // failed for good (a partition gone, ...): keep waiting, say so.
                progress.warn(&format!("reading {}: {e:#}", escaped(&args.outcomes_topic)));
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let step = follow.observe(&event, &at);
        if step != Step::Ignore {
            last_stage = Some(event.stage);
            progress.stage(&event);
        }
        match step {
            Step::Ignore | Step::Progress => {}
            Step::LookBack { partition } => {
                progress.note(&format!(
                    "a duplicate of a request already applied; looking for its deployment in {}[{partition}]",
                    escaped(&args.outcomes_topic)
                ));
                if let Err(e) = reader.reread_partition(partition) {
                    progress.finish();
                    eprintln!("error: {e:#}");
                    return ExitCode::from(EXIT_REFUSED);
                }
            }
            Step::Succeeded(note) => {
                progress.finish();
                if let Some(note) = note {
                    println!("{note}");
                }
                return ExitCode::SUCCESS;
            }
            Step::Refused(Reason {
                stage,
                code,
                message,
            }) => {
                progress.finish();
                eprintln!(
                    "{} ({}): {}",
                    stage.as_str(),
                    escaped(&code),
                    escaped(&message)
                );
                return ExitCode::from(EXIT_REFUSED);
            }
        }
    }
}

/// A new idempotency key, shaped like a random UUID (version 4): the time, the process
/// and the standard library's per-process random hash keys, hashed together.
fn new_key() -> String {
    use sha2::Digest;
    use std::hash::{BuildHasher, RandomState};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let mut hasher = sha2::Sha256::new();
    hasher.update(now.to_le_bytes());
    hasher.update(std::process::id().to_le_bytes());
    for n in 0..2u8 {
        hasher.update(RandomState::new().hash_one(n).to_le_bytes());
    }
    let digest = hasher.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex = crate::hex::lower_hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The batch form: every line of every file (or standard input) is a JSON document,
/// produced to the topic its shape names, keyed by its own idempotency key.
async fn submit_files(
    args: &Submit,
    properties: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let submitter = Submitter::new(properties)?;
    let mut lines: Vec<(String, String)> = Vec::new();
    for file in &args.file {
        if file.as_os_str() == "-" {
            for (n, line) in std::io::stdin().lock().lines().enumerate() {
                lines.push((format!("<stdin>:{}", n + 1), line?));
            }
            continue;
        }
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        for (n, line) in text.lines().enumerate() {
            lines.push((format!("{}:{}", file.display(), n + 1), line.to_string()));
        }
    }
    let mut bad = 0;
    for (place, line) in lines.iter().filter(|(_, l)| !l.trim().is_empty()) {
        let doc: serde_json::Value = match serde_json::from_str(line) {
            Ok(doc) => doc,
            Err(e) => {
                eprintln!("{place}: not JSON: {e}");
                bad += 1;
                continue;
            }
        };
        let (topic, key_field) = if doc.get("intent").is_some() {
            (&args.service_requests_topic, "idempotency_key")
        } else if doc.get("event_type").is_some() {
            (&args.network_events_topic, "event_id")
        } else {
            eprintln!("{place}: neither a service request (\"intent\") nor a network event (\"event_type\")");
            bad += 1;
            continue;
        };
        let key = doc.get(key_field).and_then(|k| k.as_str());
        let at = submitter
            .submit(topic, key, line)
            .await
            .with_context(|| place.clone())?;
        println!(
            "submitted {} to {}",
            key.map_or_else(|| "(no key)".to_string(), escaped),
            crate::show::place(&at)
        );
    }
    if bad > 0 {
        bail!("{bad} line(s) were not submitted");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Submit {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            submit: Submit,
        }
        use clap::Parser;
        Wrapper::try_parse_from(std::iter::once("submit").chain(args.iter().copied()))
            .expect("arguments")
            .submit
    }

    #[test]
    fn the_request_carries_the_flags_and_the_key_the_worker_will_see() {
        let args = parsed(&[
            "Deploy AMF",
            "--namespace",
            "core5g",
            "--priority",
            "urgent",
        ]);
        let payload = request_payload(&args, "Deploy AMF", "k-1").unwrap();
        let request: serde_json::Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(
            request,
            serde_json::json!({"idempotency_key": "k-1", "intent": "Deploy AMF",
                "target_namespace": "core5g", "priority": "urgent"})
        );
        let args = parsed(&["Deploy AMF", "--namespace", "Core5G"]);
        assert!(request_payload(&args, "Deploy AMF", "k-1")
            .unwrap_err()
            .contains("--namespace"));
        let args = parsed(&["Deploy AMF"]);
        for bad in ["", "a\u{202e}b", &"k".repeat(MAX_KEY_BYTES + 1)] {
            assert!(request_payload(&args, "Deploy AMF", bad)
                .unwrap_err()
                .contains("--key"));
        }
        assert!(request_payload(&args, "  ", "k").is_err());
    }

    #[test]
    fn generated_keys_are_uuid_shaped_and_differ() {
        let (a, b) = (new_key(), new_key());
        assert_ne!(a, b);
        for key in [a, b] {
            assert_eq!(key.len(), 36, "{key}");
            assert_eq!(key.as_bytes()[14], b'4', "{key}");
            assert!(key.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        }
    }
}
