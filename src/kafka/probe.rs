//! The broker probe: a thread that asks the cluster for one topic's metadata every
//! [`PROBE_INTERVAL`] and tells [`Health`] whether a broker answered. librdkafka reports
//! `AllBrokersDown` only once every connection is closed; a broker that hangs (paused,
//! overloaded, behind a black-holing network) keeps its connections open and is never
//! reported. A metadata request that gets no answer within [`PROBE_TIMEOUT`] is. The
//! condition counts from the first failed probe (or `AllBrokersDown`), fails `/readyz`
//! after `READINESS_GRACE`, and clears at the first answer.
//!
//! Each turn also calls [`Health::observe`], so a change of readiness or liveness is
//! logged and measured when it happens, whether or not anybody probes the endpoints.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaResult;
use tracing::{info, warn};

use crate::health::Health;

/// Time between two probes.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// How long a probe waits for an answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Asks the cluster for metadata, waiting up to the given time for the answer.
pub type Ask = Box<dyn Fn(Duration) -> KafkaResult<()> + Send>;

/// The running probe; [`Probe::stop`] ends it.
pub struct Probe {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Probe {
    pub fn start(ask: Ask, health: Arc<Health>) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("kafka-probe".into())
            .spawn(move || loop {
                let started = Instant::now();
                probe_once(&ask, &health, started);
                health.observe();
                match stopped.recv_timeout(PROBE_INTERVAL) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    // Asked to stop, or the owner is gone.
                    _ => return,
                }
            })?;
        Ok(Self { stop, thread })
    }

    /// Stops the probe and waits for it (up to a probe in progress, [`PROBE_TIMEOUT`]).
    pub fn stop(self) {
        drop(self.stop);
        if self.thread.join().is_err() {
            warn!("the broker probe thread panicked");
        }
    }
}

/// One probe at `started`: the brokers are reachable if one answers.
fn probe_once(ask: &Ask, health: &Health, started: Instant) {
    match ask(PROBE_TIMEOUT) {
        Ok(()) => {
            if health.brokers_down.is_holding() {
                info!("a Kafka broker answers again");
                health.brokers_down.cleared();
            }
        }
        Err(e) => {
            if !health.brokers_down.is_holding() {
                warn!(error = %e, "no Kafka broker answered the probe");
            }
            health.brokers_down.holds_at(
                started,
                &format!("no answer to a metadata request within {PROBE_TIMEOUT:?}: {e}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::error::KafkaError;
    use rdkafka::types::RDKafkaErrorCode;

    #[test]
    fn a_probe_without_an_answer_marks_the_brokers_down_and_an_answer_clears_it() {
        let health = Health::default();
        health.configure(Duration::from_secs(60), Duration::ZERO);
        health.rebalanced(1);
        let failing: Ask = Box::new(|_| {
            Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::OperationTimedOut,
            ))
        });
        let started = Instant::now();
        probe_once(&failing, &health, started);
        let not_ready = health
            .not_ready_at(started + Duration::from_secs(1))
            .expect("not ready");
        assert_eq!(not_ready.cause, "brokers_down");
        assert!(
            not_ready.reason.contains("no answer to a metadata request"),
            "{}",
            not_ready.reason
        );
        let answering: Ask = Box::new(|_| Ok(()));
        probe_once(&answering, &health, Instant::now());
        assert_eq!(health.not_ready_at(started + Duration::from_secs(2)), None);
    }

    #[test]
    fn the_probe_stops_when_asked() {
        let health = Arc::new(Health::default());
        let probe = Probe::start(Box::new(|_| Ok(())), health).unwrap();
        probe.stop();
    }
}
