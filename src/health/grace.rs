//! A condition that fails readiness only once it has lasted longer than a grace period
//! (`READINESS_GRACE`): all brokers unreachable, the producer queue full. Brief blips
//! (a broker restarting, a burst filling the queue) do not take the pod out of service;
//! a lasting one does, and clears as soon as the condition does.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Lasting {
    /// Since when the condition holds, and the latest detail about it.
    state: Mutex<Option<(Instant, String)>>,
}

impl Lasting {
    /// The condition holds at `now` (kept from its first report on), with `detail`
    /// (bounded by the caller, one line).
    pub fn holds_at(&self, now: Instant, detail: &str) {
        let mut state = self.state();
        match &mut *state {
            Some((_, latest)) => {
                if latest != detail {
                    *latest = detail.to_string();
                }
            }
            None => *state = Some((now, detail.to_string())),
        }
    }

    /// The condition is over.
    pub fn cleared(&self) {
        *self.state() = None;
    }

    pub fn is_holding(&self) -> bool {
        self.state().is_some()
    }

    /// How long the condition has held, with its detail, once that is longer than
    /// `grace`.
    pub fn past_grace_at(&self, now: Instant, grace: Duration) -> Option<(Duration, String)> {
        let state = self.state();
        let (since, detail) = state.as_ref()?;
        let lasted = now.saturating_duration_since(*since);
        (lasted > grace).then(|| (lasted, detail.clone()))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Option<(Instant, String)>> {
        // Each use is one read or assignment: a panic elsewhere leaves it whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(30);

    #[test]
    fn a_condition_counts_from_its_first_report_and_clears_at_once() {
        let base = Instant::now();
        let at = |s| base + Duration::from_secs(s);
        let down = Lasting::default();
        assert_eq!(down.past_grace_at(at(100), GRACE), None);
        down.holds_at(at(10), "timed out");
        down.holds_at(at(25), "connection refused");
        assert_eq!(down.past_grace_at(at(40), GRACE), None, "within the grace");
        assert_eq!(
            down.past_grace_at(at(41), GRACE),
            Some((Duration::from_secs(31), "connection refused".to_string())),
            "measured from the first report, with the latest detail"
        );
        down.cleared();
        assert!(!down.is_holding());
        assert_eq!(down.past_grace_at(at(100), GRACE), None);
        down.holds_at(at(100), "timed out");
        assert_eq!(
            down.past_grace_at(at(120), GRACE),
            None,
            "a new occurrence gets a new grace"
        );
    }
}
