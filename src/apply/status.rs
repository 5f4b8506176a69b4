//! Whether the sink is up: the one place that learns it from applies, and tells whoever
//! must act on it (the worker pauses its partitions and fails `/readyz` while it is down).
//!
//! The sink is *down* from a transient error ([`super::Transience::Transient`]) until the
//! next apply that succeeds; a permanent error says nothing about it (the sink answered).
//! Going down and coming back are logged (warn, with the error; info, with how long it
//! was down), and while it stays down a warn line repeats at most every
//! [`STILL_DOWN_EVERY`], so a backlog of retries does not flood the log.
//!
//! Metrics: `sink_up` (gauge, 1 up, 0 down) and `sink_errors_total{kind}` (counter, every
//! failed apply attempt, `kind` = `transient` or `permanent`).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::ApplyError;

/// How often, at most, a sink that stays down is logged again.
pub const STILL_DOWN_EVERY: Duration = Duration::from_secs(30);

/// The most of an error kept as the reason the sink is down (characters), shown on
/// `/readyz`: an API server's message may be long.
const MAX_REASON_CHARS: usize = 512;

/// Why the sink is down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Down {
    /// The error that took it down, bounded and without control characters.
    pub reason: String,
}

/// The sink's state, shared by every apply.
#[derive(Debug)]
pub struct SinkStatus {
    /// `None` while up.
    down: watch::Sender<Option<Down>>,
    /// When the sink went down and when it was last logged as down.
    since: Mutex<Option<(Instant, Instant)>>,
}

impl Default for SinkStatus {
    fn default() -> Self {
        Self {
            down: watch::Sender::new(None),
            since: Mutex::new(None),
        }
    }
}

impl SinkStatus {
    /// Follows the state: `None` while up, the reason while down.
    pub fn subscribe(&self) -> watch::Receiver<Option<Down>> {
        self.down.subscribe()
    }

    pub fn is_up(&self) -> bool {
        self.down.borrow().is_none()
    }

    /// An apply succeeded: the sink is up.
    pub fn succeeded(&self) {
        if self.is_up() {
            return;
        }
        let went_down = self.since().take().map(|(since, _)| since);
        if self.down.send_if_modified(|down| down.take().is_some()) {
            metrics::gauge!("sink_up").set(1.0);
            let down_ms = went_down.map_or(0, |since| since.elapsed().as_millis() as u64);
            info!(down_ms, "intent sink back up: paused partitions resume");
        }
    }

    /// An apply failed with `error`; `intent` names what it was applying.
    pub fn failed(&self, error: &ApplyError, intent: &str) {
        let kind = error.transience();
        metrics::counter!("sink_errors_total", "kind" => kind.as_str()).increment(1);
        if !error.is_transient() {
            return;
        }
        let now = Instant::now();
        let mut since = self.since();
        match &mut *since {
            None => {
                *since = Some((now, now));
                let reason = bounded(&error.to_string());
                warn!(error = %reason, intent, "intent sink down: its partitions pause and retry until it is back");
                metrics::gauge!("sink_up").set(0.0);
                self.down.send_replace(Some(Down { reason }));
            }
            Some((went_down, logged)) if now.duration_since(*logged) >= STILL_DOWN_EVERY => {
                *logged = now;
                let down_s = now.duration_since(*went_down).as_secs();
                warn!(error = %bounded(&error.to_string()), intent, down_s, "intent sink still down");
            }
            Some(_) => debug!(error = %error, intent, "apply failed, retrying"),
        }
    }

    fn since(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Instant)>> {
        // One assignment per call: a panic elsewhere cannot leave it half-written.
        self.since.lock().unwrap_or_else(PoisonError::into_inner)
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
    use crate::apply::Holder;

    fn io_error() -> ApplyError {
        ApplyError::Io {
            path: "/intents/\u{1b}[31mx".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotADirectory),
        }
    }

    #[test]
    fn a_transient_error_takes_the_sink_down_until_an_apply_succeeds() {
        let status = SinkStatus::default();
        let mut follow = status.subscribe();
        assert!(status.is_up());
        let conflict = ApplyError::Conflict {
            path: "/x".into(),
            holder: Holder::OtherKey("k".into()),
        };
        status.failed(&conflict, "a");
        assert!(
            status.is_up(),
            "a permanent error says nothing about the sink"
        );
        assert!(!follow.has_changed().unwrap());

        status.failed(&io_error(), "a");
        status.failed(&io_error(), "b");
        assert!(!status.is_up());
        assert!(follow.has_changed().unwrap());
        let down = follow.borrow_and_update().clone().expect("down");
        assert!(down.reason.contains("/intents/"), "{down:?}");
        assert!(!down.reason.chars().any(char::is_control), "{down:?}");

        status.succeeded();
        assert!(status.is_up());
        assert!(follow.has_changed().unwrap());
        assert_eq!(*follow.borrow_and_update(), None);
        status.succeeded();
        assert!(!follow.has_changed().unwrap(), "no news when it stays up");
    }

    #[test]
    fn a_reason_is_bounded() {
        let long = "x".repeat(MAX_REASON_CHARS * 2);
        assert_eq!(bounded(&long).chars().count(), MAX_REASON_CHARS + 1);
        assert_eq!(bounded("a\nb"), "a\\nb");
    }
}
