//! `dlq replay`: re-publishes dead letters to their original topic and partition, with
//! their original record key, payload and headers, once their cause is fixed, and never
//! the same dead letter twice.
//!
//! The run reads what it remembers ([`marks`], the compacted `<DLQ_TOPIC>.replayed`),
//! then the dead-letter topic from its first record to the end sampled at the start,
//! choosing letters by `--code` and `--key`, at most `--limit` of them; only then does it
//! re-publish (so its own replays, rejected again, cannot feed the same run). Each
//! replay is marked `replaying` (acknowledged) before it is produced and `replayed`
//! after; it carries [`crate::dedup::REPLAY_OF_HEADER`] with the dead letter's event id,
//! which lets the worker process a request whose key ended `rejected` again, once.
//!
//! A letter that cannot be re-published as it was (its payload, key or headers were left
//! out of it, it names no source, or its source is not one of `TOPICS`) is listed with
//! the reason and not replayed; the command then exits with [`NOT_ALL_REPLAYABLE`].
//! Memory: the letters chosen (at most `--limit`, each at most the size of a dead letter)
//! and the remembered set (about 100 bytes per letter ever replayed).

pub mod letter;
pub mod marks;

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use clap::Args;

use crate::config::{KafkaArgs, TopicArgs};
use crate::kafka::admin;
use crate::kafka::replay::{read_to_end, AckedProducer, Outgoing};
use crate::message::SourceRef;
use crate::outcome::ErrorCode;
use crate::show::{escaped, place};
use letter::Letter;
use marks::{Mark, Remembered, Seen, State};

/// Exit code when some chosen letters could not be replayed (listed as `not replayed`).
pub const NOT_ALL_REPLAYABLE: u8 = 3;

#[derive(Debug, Args)]
pub struct Replay {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// TOPICS: the only topics letters are replayed to; DLQ_TOPIC: where they are read.
    #[command(flatten)]
    pub topics: TopicArgs,
    /// Only dead letters with this error code (`nephoran.error.code`; repeatable or
    /// comma-separated).
    #[arg(long, value_delimiter = ',', value_parser = parse_code)]
    pub code: Vec<ErrorCode>,
    /// Only dead letters of this exact idempotency key (`nephoran.idempotency.key`;
    /// repeatable).
    #[arg(long)]
    pub key: Vec<String>,
    /// Replay at most this many dead letters in one run.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    /// Print what would be replayed; publish nothing (and create nothing).
    #[arg(long)]
    pub dry_run: bool,
    /// Replication factor of `<DLQ_TOPIC>.replayed` when this command creates it
    /// (-1: the broker's default).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub replication: i32,
}

fn parse_code(s: &str) -> Result<ErrorCode, String> {
    ErrorCode::ALL
        .into_iter()
        .find(|code| code.as_str() == s)
        .ok_or_else(|| {
            let known: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
            format!("unknown error code {s:?} (one of {})", known.join(", "))
        })
}

/// What a run did, for its summary line.
#[derive(Debug, Default)]
struct Tally {
    read: u64,
    not_selected: u64,
    replayed: u64,
    already: u64,
    copies: u64,
    unreplayable: u64,
    /// The run stopped reading at `--limit`.
    limited: bool,
}

impl Tally {
    fn summary(&self, dry_run: bool, limit: u32) -> String {
        let verb = if dry_run { "would replay" } else { "replayed" };
        let mut line = format!(
            "{verb} {}, skipped {} already replayed, {} copies, {} not replayable \
             ({} dead letters read, {} not selected)",
            self.replayed,
            self.already,
            self.copies,
            self.unreplayable,
            self.read,
            self.not_selected
        );
        if self.limited {
            line.push_str(&format!(
                "; stopped at --limit {limit}: run again for the rest"
            ));
        }
        line
    }
}

/// A letter chosen for replay, and whether an earlier run may have replayed it already.
struct Chosen {
    letter: Letter,
    in_doubt: bool,
}

pub async fn run(args: Replay) -> anyhow::Result<ExitCode> {
    args.topics.validate()?;
    let properties = args.kafka.properties()?;
    let dlq = &args.topics.dlq_topic;
    let remembered_topic = marks::topic_of(dlq);

    let created = !args.dry_run
        && admin::create_compacted(&properties, &remembered_topic, 1, args.replication).await?;
    let mut remembered = Remembered::default();
    // A dry run creates nothing, and a topic just created is empty (and may not be in
    // the brokers' metadata yet): either way a missing remembered set is an empty one.
    let missing_ok = args.dry_run || created;
    read_to_end(
        &properties,
        &remembered_topic,
        "the remembered replays of DLQ_TOPIC",
        missing_ok,
        |record| {
            remembered.restore(record.key.as_deref(), record.payload.as_deref());
            ControlFlow::Continue(())
        },
    )
    .await?;

    let mut tally = Tally::default();
    let mut chosen: Vec<Chosen> = Vec::new();
    // The letters chosen, by identity: a later copy of one is not replayed again.
    let mut chosen_at: HashMap<String, SourceRef> = HashMap::new();
    let limit = usize::try_from(args.limit).unwrap_or(usize::MAX);
    read_to_end(&properties, dlq, "DLQ_TOPIC", false, |record| {
        tally.read += 1;
        let letter = Letter::read(record);
        if !selected(&args, &letter) {
            tally.not_selected += 1;
            return ControlFlow::Continue(());
        }
        let identity = letter.identity();
        if let Some(first) = chosen_at.get(&identity) {
            tally.copies += 1;
            let what = format!("a copy of the dead letter at {}", place(first));
            println!("{}", line("skipped", &letter, &what));
            return ControlFlow::Continue(());
        }
        let in_doubt = match remembered.get(&identity) {
            Some(Seen::Replayed { to }) => {
                tally.already += 1;
                let to = to.as_deref().map(escaped).unwrap_or_else(|| "?".into());
                println!(
                    "{}",
                    line("skipped", &letter, &format!("already replayed -> {to}"))
                );
                return ControlFlow::Continue(());
            }
            Some(Seen::InDoubt) => true,
            None => false,
        };
        let not_an_input = letter
            .source
            .as_ref()
            .filter(|s| !args.topics.topics.contains(&s.topic))
            .map(|s| {
                format!(
                    "its source topic {} is not one of TOPICS",
                    escaped(&s.topic)
                )
            });
        if let Some(why) = letter.unreplayable.clone().or(not_an_input) {
            tally.unreplayable += 1;
            println!("{}", line("not replayed", &letter, &escaped(&why)));
            return ControlFlow::Continue(());
        }
        chosen_at.insert(identity, letter.at.clone());
        if args.dry_run {
            tally.replayed += 1;
            println!("{}", line("would replay", &letter, again(in_doubt)));
        }
        chosen.push(Chosen { letter, in_doubt });
        if chosen.len() >= limit {
            tally.limited = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })
    .await?;

    if !args.dry_run {
        let producer = AckedProducer::new(&properties)?;
        for Chosen { letter, in_doubt } in &chosen {
            match replay(&producer, &remembered_topic, letter).await {
                Ok(to) => {
                    tally.replayed += 1;
                    let what = format!("-> {}{}", place(&to), again(*in_doubt));
                    println!("{}", line("replayed", letter, &what));
                }
                Err(e) => {
                    println!("{}", tally.summary(args.dry_run, args.limit));
                    return Err(e);
                }
            }
        }
    }
    println!("{}", tally.summary(args.dry_run, args.limit));
    Ok(if tally.unreplayable > 0 {
        ExitCode::from(NOT_ALL_REPLAYABLE)
    } else {
        ExitCode::SUCCESS
    })
}

/// Whether `--code` and `--key` choose the letter.
fn selected(args: &Replay, letter: &Letter) -> bool {
    let code_ok = args.code.is_empty()
        || letter
            .code
            .as_deref()
            .is_some_and(|c| args.code.iter().any(|wanted| wanted.as_str() == c));
    let key_ok = args.key.is_empty()
        || letter
            .idempotency_key
            .as_ref()
            .is_some_and(|k| args.key.contains(k));
    code_ok && key_ok
}

fn again(in_doubt: bool) -> &'static str {
    if in_doubt {
        "  (again: an earlier run stopped between marking and publishing it)"
    } else {
        ""
    }
}

/// One line about a letter: what was done, where its original was, its key and code.
fn line(done: &str, letter: &Letter, what: &str) -> String {
    let source = match &letter.source {
        Some(source) => place(source),
        None => format!("(dead letter {})", place(&letter.at)),
    };
    let key = letter
        .idempotency_key
        .as_deref()
        .map_or("-".into(), escaped);
    let code = letter.code.as_deref().map_or("-".into(), escaped);
    format!("{done:<13} {source}  key={key}  code={code}  {what}")
        .trim_end()
        .to_string()
}

/// Marks the letter `replaying`, re-publishes it, marks it `replayed`; each step
/// acknowledged before the next. Returns where the replay landed.
async fn replay(
    producer: &AckedProducer,
    remembered_topic: &str,
    letter: &Letter,
) -> anyhow::Result<SourceRef> {
    let source = letter
        .source
        .as_ref()
        .context("a letter without a source was chosen")?;
    let identity = letter.identity();
    let identity = identity.as_str();
    let mut mark = Mark {
        state: State::Replaying,
        dead_letter: place(&letter.at),
        source: place(source),
        to: None,
        at: now(),
    };
    let remember = |mark: &Mark| {
        let value = mark.to_json();
        async move {
            producer
                .send(&Outgoing {
                    topic: remembered_topic,
                    partition: None,
                    key: Some(identity.as_bytes()),
                    payload: Some(&value),
                    headers: &[],
                })
                .await
        }
    };
    remember(&mark).await.with_context(|| {
        format!(
            "could not remember the replay of the dead letter at {} (nothing was replayed)",
            place(&letter.at)
        )
    })?;
    let mut headers = letter.headers.clone();
    if let Some(id) = &letter.event_id {
        headers.push((
            crate::dedup::REPLAY_OF_HEADER.to_string(),
            Some(id.clone().into_bytes()),
        ));
    }
    let to = producer
        .send(&Outgoing {
            topic: &source.topic,
            partition: Some(source.partition),
            key: letter.record_key.as_deref(),
            payload: letter.payload.as_deref(),
            headers: &headers,
        })
        .await
        .with_context(|| {
            format!(
                "could not replay the dead letter at {}; it is marked as being replayed, and \
                 the next run replays it again",
                place(&letter.at)
            )
        })?;
    mark.state = State::Replayed;
    mark.to = Some(place(&to));
    mark.at = now();
    remember(&mark).await.with_context(|| {
        format!(
            "the dead letter at {} was replayed to {}, but that could not be remembered: the \
             next run replays it again (the worker answers the second copy `duplicate`)",
            place(&letter.at),
            place(&to)
        )
    })?;
    Ok(to)
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_checked_by_name() {
        assert_eq!(parse_code("policy_denied"), Ok(ErrorCode::PolicyDenied));
        let error = parse_code("policy-denied").unwrap_err();
        assert!(
            error.contains("\"policy-denied\"") && error.contains("invalid_json"),
            "{error}"
        );
    }

    #[test]
    fn the_summary_says_what_was_done_and_not() {
        let tally = Tally {
            read: 5,
            not_selected: 1,
            replayed: 0,
            already: 3,
            copies: 1,
            unreplayable: 0,
            limited: false,
        };
        assert_eq!(
            tally.summary(false, 100),
            "replayed 0, skipped 3 already replayed, 1 copies, 0 not replayable \
             (5 dead letters read, 1 not selected)"
        );
        let tally = Tally {
            limited: true,
            ..tally
        };
        assert!(tally
            .summary(true, 2)
            .starts_with("would replay 0, skipped 3"));
        assert!(tally
            .summary(true, 2)
            .ends_with("stopped at --limit 2: run again for the rest"));
    }
}
