//! The circuit breaker in front of the LLM: after a run of failed calls, requests go
//! straight to the rule translator for a cool-down, then one probe call decides.
//!
//! Without it, every message would wait out the full retry budget of a dead endpoint
//! before falling back, and the partition would crawl. States: closed (calls pass),
//! open (none pass until the cool-down ends), half-open (one probe passes; its success
//! closes the breaker, its failure opens it again). The state is the gauge
//! `llm_circuit_breaker_state{model}`: 0 closed, 1 half-open, 2 open.
//!
//! Opening is also a signal ([`Breaker::opened`]): the asks waiting for their turn and
//! the asks between retries select on it and go to the rules at once, so an outage
//! costs the calls in flight when it starts, the failures that open the breaker and a
//! probe per cool-down, not a retry budget per request.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use metrics::Gauge;

use crate::meters;
use tokio::sync::watch;
use tracing::{info, warn};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

impl State {
    fn gauge_value(self) -> f64 {
        match self {
            State::Closed { .. } => 0.0,
            State::HalfOpen => 1.0,
            State::Open { .. } => 2.0,
        }
    }
}

pub struct Breaker {
    state: Mutex<State>,
    threshold: u32,
    cooldown: Duration,
    gauge: Gauge,
    /// How many times the breaker has opened; a change wakes whoever waits on the LLM.
    opened: watch::Sender<u64>,
}

/// Leave to make one call. Its verdict is [`Pass::succeeded`] or [`Pass::failed`]; a
/// pass dropped without one (the message was handed over mid-call) leaves no verdict,
/// and a dropped probe lets the next request probe.
pub struct Pass<'a> {
    breaker: &'a Breaker,
    probe: bool,
    decided: bool,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration, model: &str) -> Self {
        let gauge = meters::llm_circuit_breaker_state(model.to_string());
        let state = State::Closed { failures: 0 };
        gauge.set(state.gauge_value());
        Self {
            state: Mutex::new(state),
            threshold: threshold.max(1),
            cooldown,
            gauge,
            opened: watch::Sender::new(0),
        }
    }

    /// A pass for one call, or `None` while the breaker is open (or a probe is out).
    pub fn try_pass(&self) -> Option<Pass<'_>> {
        let mut state = self.lock();
        let probe = match *state {
            State::Closed { .. } => false,
            State::HalfOpen => return None,
            State::Open { until } if Instant::now() < until => return None,
            State::Open { .. } => {
                self.set(&mut state, State::HalfOpen);
                info!("LLM circuit breaker half-open: probing the endpoint");
                true
            }
        };
        Some(Pass {
            breaker: self,
            probe,
            decided: false,
        })
    }

    /// A receiver that sees the breaker open from now on: `changed()` resolves at the
    /// next opening (never for one before the call).
    pub fn opened(&self) -> watch::Receiver<u64> {
        self.opened.subscribe()
    }

    /// Whether a request now would be refused a pass (open within its cool-down, or a
    /// probe out), without taking one.
    pub fn is_open(&self) -> bool {
        match *self.lock() {
            State::Closed { .. } => false,
            State::HalfOpen => true,
            State::Open { until } => Instant::now() < until,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a plain value: a panic elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, state: &mut State, new: State) {
        *state = new;
        self.gauge.set(new.gauge_value());
    }

    fn open(&self, state: &mut State) {
        self.set(
            state,
            State::Open {
                until: Instant::now() + self.cooldown,
            },
        );
        self.opened.send_modify(|openings| *openings += 1);
    }
}

impl Pass<'_> {
    pub fn succeeded(mut self) {
        self.decided = true;
        let breaker = self.breaker;
        let mut state = breaker.lock();
        if *state == State::HalfOpen {
            info!("LLM circuit breaker closed: the probe succeeded");
        }
        breaker.set(&mut state, State::Closed { failures: 0 });
    }

    pub fn failed(mut self) {
        self.decided = true;
        let breaker = self.breaker;
        let mut state = breaker.lock();
        match *state {
            State::Closed { failures } if failures + 1 >= breaker.threshold => {
                warn!(
                    failures = failures + 1,
                    cooldown = %humantime::format_duration(breaker.cooldown),
                    "LLM circuit breaker open: translating by rules until the cool-down ends"
                );
                breaker.open(&mut state);
            }
            State::Closed { failures } => breaker.set(
                &mut state,
                State::Closed {
                    failures: failures + 1,
                },
            ),
            State::HalfOpen => {
                warn!("LLM circuit breaker open again: the probe failed");
                breaker.open(&mut state);
            }
            // Calls that started before the breaker opened change nothing.
            State::Open { .. } => {}
        }
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        if self.probe && !self.decided {
            let breaker = self.breaker;
            let mut state = breaker.lock();
            if *state == State::HalfOpen {
                let now = Instant::now();
                breaker.set(&mut state, State::Open { until: now });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(b: &Breaker) -> State {
        *b.lock()
    }

    #[test]
    fn opens_after_the_threshold_and_probes_after_the_cooldown() {
        let b = Breaker::new(3, Duration::from_millis(30), "m");
        b.try_pass().unwrap().failed();
        b.try_pass().unwrap().failed();
        assert!(matches!(state(&b), State::Closed { failures: 2 }));
        b.try_pass().unwrap().failed();
        assert!(matches!(state(&b), State::Open { .. }));
        assert!(b.try_pass().is_none(), "open: nothing passes");
        std::thread::sleep(Duration::from_millis(40));
        let probe = b.try_pass().expect("the cool-down is over: one probe");
        assert!(b.try_pass().is_none(), "only one probe at a time");
        probe.succeeded();
        assert_eq!(state(&b), State::Closed { failures: 0 });
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = Breaker::new(2, Duration::from_secs(60), "m");
        b.try_pass().unwrap().failed();
        b.try_pass().unwrap().succeeded();
        b.try_pass().unwrap().failed();
        assert!(matches!(state(&b), State::Closed { failures: 1 }));
    }

    #[test]
    fn a_failed_probe_opens_again() {
        let b = Breaker::new(1, Duration::ZERO, "m");
        b.try_pass().unwrap().failed();
        let probe = b.try_pass().expect("zero cool-down");
        probe.failed();
        assert!(matches!(state(&b), State::Open { .. }));
    }

    #[tokio::test]
    async fn opening_wakes_the_waiters_once() {
        let b = Breaker::new(2, Duration::from_secs(60), "m");
        let mut opened = b.opened();
        b.try_pass().unwrap().failed();
        assert!(
            !opened.has_changed().unwrap(),
            "one failure does not open it"
        );
        assert!(!b.is_open());
        b.try_pass().unwrap().failed();
        assert!(b.is_open());
        opened
            .changed()
            .await
            .expect("the sender lives in the breaker");
        let later = b.opened();
        assert!(
            !later.has_changed().unwrap(),
            "a later receiver sees later openings only"
        );
    }

    #[test]
    fn a_dropped_probe_lets_the_next_request_probe() {
        let b = Breaker::new(1, Duration::ZERO, "m");
        b.try_pass().unwrap().failed();
        drop(b.try_pass().expect("probe"));
        assert!(b.try_pass().is_some(), "a new probe after the dropped one");
    }
}
