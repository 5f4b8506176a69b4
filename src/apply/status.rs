//! Whether the sink is up: the one place that learns it from applies, and tells whoever
//! must act on it. The worker pauses the partitions whose messages wait for the sink and
//! fails `/readyz` while any does; the messages waiting retry sooner when another apply
//! succeeds.
//!
//! The sink is *down* while at least one message waits to try its apply again after a
//! transient error ([`super::Transience::Transient`]); each waits under a [`Waiting`]
//! guard, which counts it against its partition until it is applied, fails for good or
//! is fenced. A permanent error says nothing about the sink (it answered). Going down and
//! coming back are logged (warn, with the error; info, with how long it was down), and
//! while it stays down a warn line repeats at most every [`STILL_DOWN_EVERY`], so a
//! backlog of retries, or a sink that fails now and then, does not flood the log.
//!
//! Metrics: `sink_up` (gauge: 1, or 0 while a message waits for the sink),
//! `sink_errors_total{kind}` (counter: every failed apply attempt, `kind` = `transient`
//! or `permanent`) and `sink_waiting_messages{topic}` (gauge: messages waiting for the
//! sink).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::ApplyError;
use crate::schedule::PartitionId;

/// How often, at most, the sink going down or staying down is logged as a warning.
pub const STILL_DOWN_EVERY: Duration = Duration::from_secs(30);

/// The most of an error kept as the reason the sink is down (characters), shown on
/// `/readyz`: an API server's message may be long.
const MAX_REASON_CHARS: usize = 512;

/// What the worker follows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkState {
    /// Messages waiting to try their apply again, by partition (only those with some).
    pub waiting: BTreeMap<PartitionId, usize>,
    /// The last transient error, bounded and on one line; `None` while up.
    pub reason: Option<String>,
}

impl SinkState {
    pub fn is_down(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Messages of `partition` waiting for the sink.
    pub fn waiting_in(&self, partition: &PartitionId) -> usize {
        self.waiting.get(partition).copied().unwrap_or(0)
    }
}

/// The sink's state, shared by every apply.
#[derive(Debug)]
pub struct SinkStatus {
    state: watch::Sender<SinkState>,
    /// Applies that succeeded while the sink was down: wakes the messages waiting.
    successes: watch::Sender<u64>,
    /// When the sink last went down, and when it was last logged as a warning.
    log: Mutex<Log>,
}

#[derive(Debug, Default)]
struct Log {
    down_since: Option<Instant>,
    warned: Option<Instant>,
    /// Whether this time down was warned about (then coming back is logged too).
    told: bool,
}

impl Default for SinkStatus {
    fn default() -> Self {
        Self {
            state: watch::Sender::new(SinkState::default()),
            successes: watch::Sender::new(0),
            log: Mutex::new(Log::default()),
        }
    }
}

impl SinkStatus {
    /// Follows the state: which partitions have messages waiting, and why.
    pub fn subscribe(&self) -> watch::Receiver<SinkState> {
        self.state.subscribe()
    }

    /// Follows the applies that succeed while the sink is down.
    pub fn successes(&self) -> watch::Receiver<u64> {
        self.successes.subscribe()
    }

    pub fn is_up(&self) -> bool {
        !self.state.borrow().is_down()
    }

    /// An apply succeeded: the messages waiting try again (the sink may be back).
    pub fn succeeded(&self) {
        if !self.is_up() {
            self.successes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// An apply failed with `error`; `intent` names what it was applying. Counted, and
    /// logged when the sink is down and that was not said lately.
    pub fn failed(&self, error: &ApplyError, intent: &str) {
        let kind = error.transience();
        crate::meters::sink_errors(kind.as_str()).increment(1);
        if !error.is_transient() {
            return;
        }
        let now = Instant::now();
        let mut log = self.log();
        if log
            .warned
            .is_some_and(|at| now.duration_since(at) < STILL_DOWN_EVERY)
        {
            debug!(error = %error, intent, "apply failed, retrying");
            return;
        }
        log.warned = Some(now);
        log.told = true;
        let reason = bounded(&error.to_string());
        match log.down_since {
            Some(since) if !self.is_up() => {
                let down_s = now.duration_since(since).as_secs();
                warn!(error = %reason, intent, down_s, "intent sink still down");
            }
            _ => warn!(
                error = %reason, intent,
                "intent sink down: the messages waiting for it retry, and their partitions pause, until it is back"
            ),
        }
    }

    /// Counts a message of `partition` as waiting for the sink, for `error`, until the
    /// guard is dropped.
    pub fn wait(&self, partition: &PartitionId, error: &ApplyError) -> Waiting<'_> {
        let reason = bounded(&error.to_string());
        let mut went_down = false;
        self.state.send_modify(|state| {
            went_down = !state.is_down();
            *state.waiting.entry(partition.clone()).or_default() += 1;
            state.reason = Some(reason);
        });
        if went_down {
            let mut log = self.log();
            log.down_since = Some(Instant::now());
            crate::meters::sink_up().set(0.0);
        }
        crate::meters::sink_waiting_messages(partition.0.clone()).increment(1.0);
        Waiting {
            status: self,
            partition: partition.clone(),
        }
    }

    fn left(&self, partition: &PartitionId) {
        let mut back_up = false;
        self.state.send_modify(|state| {
            if let Some(n) = state.waiting.get_mut(partition) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    state.waiting.remove(partition);
                }
            }
            if !state.is_down() {
                state.reason = None;
                back_up = true;
            }
        });
        crate::meters::sink_waiting_messages(partition.0.clone()).decrement(1.0);
        if back_up {
            crate::meters::sink_up().set(1.0);
            let mut log = self.log();
            let down_ms = log
                .down_since
                .take()
                .map_or(0, |since| since.elapsed().as_millis() as u64);
            if std::mem::take(&mut log.told) {
                info!(
                    down_ms,
                    "no message waits for the intent sink any more (applied, or handed over)"
                );
            } else {
                debug!(
                    down_ms,
                    "no message waits for the intent sink any more (applied, or handed over)"
                );
            }
        }
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        // Each use sets fields whole: a panic elsewhere cannot leave it inconsistent.
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A message waiting for the sink; dropped when it is applied, fails for good, or is
/// fenced (its future dropped).
#[derive(Debug)]
pub struct Waiting<'a> {
    status: &'a SinkStatus,
    partition: PartitionId,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.status.left(&self.partition);
    }
}

/// `text` as a reason: at most [`MAX_REASON_CHARS`] characters, control characters
/// escaped, so it fits on one line of a probe's answer or a log.
fn bounded(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == MAX_REASON_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.push_str(&c.escape_default().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io_error() -> ApplyError {
        ApplyError::Io {
            path: "/intents/\u{1b}[31mx".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotADirectory),
        }
    }

    #[test]
    fn the_sink_is_down_while_a_message_waits_for_it() {
        let status = SinkStatus::default();
        let mut follow = status.subscribe();
        let successes = status.successes();
        let (p0, p1) = (("t".to_string(), 0), ("t".to_string(), 1));
        assert!(status.is_up());
        status.succeeded();
        assert!(!successes.has_changed().unwrap(), "nobody to wake");

        status.failed(&io_error(), "a");
        let a = status.wait(&p0, &io_error());
        let b = status.wait(&p0, &io_error());
        let c = status.wait(&p1, &io_error());
        assert!(!status.is_up());
        let state = follow.borrow_and_update().clone();
        assert_eq!((state.waiting_in(&p0), state.waiting_in(&p1)), (2, 1));
        let reason = state.reason.expect("a reason");
        assert!(reason.contains("/intents/"), "{reason}");
        assert!(!reason.chars().any(char::is_control), "{reason}");

        status.succeeded();
        assert!(successes.has_changed().unwrap(), "the waiting are woken");
        drop((a, c));
        let state = follow.borrow_and_update().clone();
        assert_eq!(state.waiting.len(), 1, "{state:?}");
        assert!(state.is_down());
        drop(b);
        assert_eq!(*follow.borrow_and_update(), SinkState::default());
        assert!(status.is_up());
    }

    #[test]
    fn a_reason_is_bounded() {
        let long = "x".repeat(MAX_REASON_CHARS * 2);
        assert_eq!(bounded(&long).chars().count(), MAX_REASON_CHARS + 1);
        assert_eq!(bounded("a\nb"), "a\\nb");
    }
}
