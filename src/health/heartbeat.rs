//! A heartbeat: proof that a loop (the Kafka poll thread, the worker's main loop) still
//! turns. The loop beats on every turn; `/healthz` fails when one has not beaten for
//! `LIVENESS_TIMEOUT`. A loop that legitimately waits (a rebalance callback waiting for
//! the worker's drain, up to its deadline) says until when, and is not stuck before then.
//!
//! Lock-free: a beat is one atomic store, cheap enough for every turn of a hot loop.
//! Times are kept as nanoseconds since a base instant shared by the heartbeats of one
//! [`super::Health`]; every method has an `_at` form taking the current instant, so the
//! logic is tested with made-up instants rather than sleeps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `last` before the first beat: the loop has not started, and is not judged.
const NEVER: u64 = 0;

#[derive(Debug)]
pub struct Heartbeat {
    base: Instant,
    /// When the loop last turned (nanoseconds since `base`, plus one so that a beat at
    /// `base` is not [`NEVER`]).
    last: AtomicU64,
    /// Until when the loop is excused from beating (nanoseconds since `base`).
    excused_until: AtomicU64,
}

impl Heartbeat {
    pub fn new(base: Instant) -> Self {
        Self {
            base,
            last: AtomicU64::new(NEVER),
            excused_until: AtomicU64::new(0),
        }
    }

    /// The loop turned.
    pub fn beat(&self) {
        self.beat_at(Instant::now());
    }

    pub fn beat_at(&self, now: Instant) {
        self.last.store(self.since_base(now) + 1, Ordering::Relaxed);
    }

    /// The loop is about to wait, legitimately, until `until` at the latest (a bounded
    /// wait it cannot beat during): not stuck before then. Counts as a beat.
    pub fn waiting_until(&self, until: Instant) {
        self.waiting_until_at(Instant::now(), until);
    }

    pub fn waiting_until_at(&self, now: Instant, until: Instant) {
        self.excused_until
            .store(self.since_base(until), Ordering::Relaxed);
        self.beat_at(now);
    }

    /// How long the loop has not turned, when that is longer than `timeout` and it is not
    /// excused; `None` while it turns, or before its first beat.
    pub fn stuck_at(&self, now: Instant, timeout: Duration) -> Option<Duration> {
        let last = self.last.load(Ordering::Relaxed);
        if last == NEVER {
            return None;
        }
        let now = self.since_base(now);
        if now <= self.excused_until.load(Ordering::Relaxed) {
            return None;
        }
        let silent = Duration::from_nanos(now.saturating_sub(last - 1));
        (silent > timeout).then_some(silent)
    }

    /// Nanoseconds from the base to `at` (0 before it; saturating, some 584 years on).
    fn since_base(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base)
            .as_nanos()
            .try_into()
            .unwrap_or(u64::MAX - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(60);

    fn at(base: Instant, secs: u64) -> Instant {
        base + Duration::from_secs(secs)
    }

    #[test]
    fn a_loop_is_stuck_once_it_has_not_beaten_for_the_timeout() {
        let base = Instant::now();
        let heart = Heartbeat::new(base);
        assert_eq!(heart.stuck_at(at(base, 1000), TIMEOUT), None, "not started");
        heart.beat_at(at(base, 10));
        assert_eq!(
            heart.stuck_at(at(base, 70), TIMEOUT),
            None,
            "exactly the timeout"
        );
        assert_eq!(
            heart.stuck_at(at(base, 71), TIMEOUT),
            Some(Duration::from_secs(61))
        );
        heart.beat_at(at(base, 72));
        assert_eq!(
            heart.stuck_at(at(base, 100), TIMEOUT),
            None,
            "turning again"
        );
    }

    #[test]
    fn a_loop_waiting_until_a_deadline_is_not_stuck_before_it() {
        let base = Instant::now();
        let heart = Heartbeat::new(base);
        heart.beat_at(base);
        // A revocation waits up to 5 minutes for the worker's drain.
        heart.waiting_until_at(at(base, 10), at(base, 310));
        assert_eq!(heart.stuck_at(at(base, 300), TIMEOUT), None);
        assert_eq!(heart.stuck_at(at(base, 310), TIMEOUT), None);
        // Past its own deadline, the wait no longer excuses it.
        assert_eq!(
            heart.stuck_at(at(base, 311), TIMEOUT),
            Some(Duration::from_secs(301))
        );
        heart.beat_at(at(base, 312));
        assert_eq!(heart.stuck_at(at(base, 320), TIMEOUT), None);
    }
}
