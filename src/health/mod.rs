//! The HTTP endpoints Kubernetes probes, and what they read.
//!
//! `/healthz` (liveness) fails when the Kafka poll thread or the worker's main loop has
//! not turned for `LIVENESS_TIMEOUT` ([`Heartbeat`]): a stuck process is restarted.
//! `/readyz` (readiness) fails while the worker has not joined its group, after a
//! librdkafka fatal error, while no broker has been reachable or the producer queue has
//! been full for longer than `READINESS_GRACE` ([`Lasting`]), while messages wait for an
//! intent sink that is down (their partitions are paused), and while shutting down.
//! Either fails with one line naming the cause. Prometheus scrapes `/metrics` (see
//! [`crate::prometheus`]).
//!
//! A worker with no partitions (more replicas than partitions) is still ready: it is a
//! healthy member of the group, waiting for a rebalance to give it work.
//!
//! Metrics: `worker_ready` (gauge, 1 ready, 0 not), `worker_live` (gauge, 1 live, 0 a
//! loop stuck), `not_ready_total{reason}` (counter: each time readiness falls, by cause:
//! `shutting_down`, `fatal_error`, `not_joined`, `brokers_down`, `producer_queue_full`,
//! `sink_down`). Each change is logged once, with the cause and the reason, whether a
//! probe or the periodic check ([`Health::observe`]) notices it first.

mod grace;
mod heartbeat;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::meters::partitions::PartitionGauges;

pub use grace::Lasting;
pub use heartbeat::Heartbeat;

/// `LIVENESS_TIMEOUT` when the worker does not set it.
pub const DEFAULT_LIVENESS_TIMEOUT: Duration = Duration::from_secs(60);
/// `READINESS_GRACE` when the worker does not set it.
pub const DEFAULT_READINESS_GRACE: Duration = Duration::from_secs(30);

/// Which librdkafka client reported a fatal error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Consumer,
    Producer,
}

impl Client {
    fn as_str(self) -> &'static str {
        match self {
            Self::Consumer => "consumer",
            Self::Producer => "producer",
        }
    }
}

/// Why the worker is not ready: a cause (the `reason` label of `not_ready_total`) and a
/// one-line explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    pub cause: &'static str,
    pub reason: String,
}

/// Shared state the probes read.
#[derive(Debug)]
pub struct Health {
    joined: AtomicBool,
    stopping: AtomicBool,
    assigned: AtomicUsize,
    /// Why the intent sink is down, while it is.
    sink_down: Mutex<Option<String>>,
    /// The first librdkafka fatal error; the client cannot recover from it.
    fatal: Mutex<Option<String>>,
    /// No broker reachable (librdkafka's `AllBrokersDown`, or the broker probe failing).
    pub brokers_down: Lasting,
    /// The producer's queue full: sends wait for room.
    pub queue_full: Lasting,
    /// The schema registry not answering: records that need a writer schema it has not
    /// given yet wait, and their partitions with them ([`crate::avro::registry`]).
    pub registry_down: Lasting,
    /// The Kafka poll thread.
    pub poll_thread: Heartbeat,
    /// The worker's main loop.
    pub main_loop: Heartbeat,
    /// The worker's partitions and their lag, rendered on `/metrics` beside the
    /// recorder's series ([`crate::meters::partitions`]).
    pub partitions: Arc<PartitionGauges>,
    liveness_timeout_ms: AtomicU64,
    readiness_grace_ms: AtomicU64,
    /// What was last logged and measured: the readiness cause (`None`: ready), and
    /// whether live; `None` before the first observation.
    reported: Mutex<Option<(Option<&'static str>, bool)>>,
}

impl Default for Health {
    fn default() -> Self {
        let base = Instant::now();
        Self {
            joined: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            assigned: AtomicUsize::new(0),
            sink_down: Mutex::new(None),
            fatal: Mutex::new(None),
            brokers_down: Lasting::default(),
            queue_full: Lasting::default(),
            registry_down: Lasting::default(),
            poll_thread: Heartbeat::new(base),
            main_loop: Heartbeat::new(base),
            partitions: Arc::default(),
            liveness_timeout_ms: AtomicU64::new(millis(DEFAULT_LIVENESS_TIMEOUT)),
            readiness_grace_ms: AtomicU64::new(millis(DEFAULT_READINESS_GRACE)),
            reported: Mutex::new(None),
        }
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

impl Health {
    /// Sets `LIVENESS_TIMEOUT` and `READINESS_GRACE` (the worker does, from its
    /// configuration, when it starts).
    pub fn configure(&self, liveness_timeout: Duration, readiness_grace: Duration) {
        self.liveness_timeout_ms
            .store(millis(liveness_timeout), Ordering::Relaxed);
        self.readiness_grace_ms
            .store(millis(readiness_grace), Ordering::Relaxed);
    }

    pub fn liveness_timeout(&self) -> Duration {
        Duration::from_millis(self.liveness_timeout_ms.load(Ordering::Relaxed))
    }

    pub fn readiness_grace(&self) -> Duration {
        Duration::from_millis(self.readiness_grace_ms.load(Ordering::Relaxed))
    }

    /// Called after every rebalance with the size of the new assignment.
    pub fn rebalanced(&self, assigned: usize) {
        self.assigned.store(assigned, Ordering::Relaxed);
        self.joined.store(true, Ordering::Relaxed);
    }

    /// Called when shutdown starts: the pod stops receiving traffic. From then on the
    /// loops wind down within the shutdown deadline and liveness no longer judges them.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// The intent sink is down, for `reason` (bounded, one line): not ready until
    /// [`Health::sink_up`].
    pub fn sink_down(&self, reason: &str) {
        *lock(&self.sink_down) = Some(reason.to_string());
    }

    /// The intent sink is up again.
    pub fn sink_up(&self) {
        *lock(&self.sink_down) = None;
    }

    /// librdkafka reported a fatal error in `client`: the client is unusable, and the
    /// worker stays not ready until it is restarted. The first one is kept.
    pub fn fatal(&self, client: Client, reason: &str) {
        let mut fatal = lock(&self.fatal);
        if fatal.is_none() {
            tracing::error!(
                client = client.as_str(),
                reason,
                "librdkafka fatal error: the worker is not ready until it is restarted"
            );
            *fatal = Some(format!(
                "librdkafka fatal error in the {}: {}",
                client.as_str(),
                one_line(reason)
            ));
        }
    }

    pub fn is_ready(&self) -> bool {
        self.not_ready().is_none()
    }

    /// Why the worker is not ready, if it is not.
    pub fn not_ready(&self) -> Option<String> {
        self.not_ready_at(Instant::now()).map(|n| n.reason)
    }

    pub fn not_ready_at(&self, now: Instant) -> Option<NotReady> {
        let not = |cause, reason| Some(NotReady { cause, reason });
        if self.stopping.load(Ordering::Relaxed) {
            return not("shutting_down", "shutting down".into());
        }
        if let Some(fatal) = lock(&self.fatal).as_ref() {
            return not("fatal_error", format!("{fatal}; restart the worker"));
        }
        if !self.joined.load(Ordering::Relaxed) {
            return not(
                "not_joined",
                "not yet a member of the consumer group".into(),
            );
        }
        // These may hold together (brokers down fill the queue): each is named, the
        // first is the cause.
        let grace = self.readiness_grace();
        let mut causes: Vec<(&'static str, String)> = Vec::new();
        if let Some((lasted, detail)) = self.brokers_down.past_grace_at(now, grace) {
            causes.push((
                "brokers_down",
                format!(
                    "no Kafka broker reachable for {}s (READINESS_GRACE {}s): {detail}",
                    lasted.as_secs(),
                    grace.as_secs()
                ),
            ));
        }
        if let Some((lasted, detail)) = self.queue_full.past_grace_at(now, grace) {
            causes.push((
                "producer_queue_full",
                format!(
                    "the producer queue has been full for {}s (READINESS_GRACE {}s): {detail}",
                    lasted.as_secs(),
                    grace.as_secs()
                ),
            ));
        }
        if let Some((lasted, detail)) = self.registry_down.past_grace_at(now, grace) {
            causes.push((
                "schema_registry_down",
                format!(
                    "the schema registry has not answered for {}s (READINESS_GRACE {}s), \
                     records that need a writer schema wait: {detail}",
                    lasted.as_secs(),
                    grace.as_secs()
                ),
            ));
        }
        if let Some(reason) = lock(&self.sink_down).as_ref() {
            causes.push((
                "sink_down",
                format!("the intent sink is down, partitions paused: {reason}"),
            ));
        }
        let cause = causes.first()?.0;
        let reasons: Vec<String> = causes.into_iter().map(|(_, reason)| reason).collect();
        not(cause, reasons.join("; "))
    }

    /// Why the worker is not live (a loop stuck), if it is not.
    pub fn not_live(&self) -> Option<String> {
        self.not_live_at(Instant::now())
    }

    pub fn not_live_at(&self, now: Instant) -> Option<String> {
        if self.stopping.load(Ordering::Relaxed) {
            // Winding down, within the shutdown deadline: the loops stop on purpose.
            return None;
        }
        let timeout = self.liveness_timeout();
        let stuck = |what: &str, silent: Duration| {
            format!(
                "the {what} has not turned for {}s (LIVENESS_TIMEOUT {}s)",
                silent.as_secs(),
                timeout.as_secs()
            )
        };
        if let Some(silent) = self.main_loop.stuck_at(now, timeout) {
            return Some(stuck("worker's main loop", silent));
        }
        self.poll_thread
            .stuck_at(now, timeout)
            .map(|silent| stuck("Kafka poll thread", silent))
    }

    /// Logs and measures readiness and liveness if they changed since the last call:
    /// called by the probes and periodically by the worker, so a change shows even
    /// when nobody probes. Returns why the worker is not ready, if it is not.
    pub fn observe(&self) -> Option<String> {
        self.observe_at(Instant::now()).0.map(|n| n.reason)
    }

    /// [`Health::observe`] at `now`; also says whether readiness changed (was logged).
    fn observe_at(&self, now: Instant) -> (Option<NotReady>, bool) {
        let not_ready = self.not_ready_at(now);
        let not_live = self.not_live_at(now);
        let cause = not_ready.as_ref().map(|n| n.cause);
        let live = not_live.is_none();
        let mut reported = lock(&self.reported);
        let (was_cause, was_live) = match *reported {
            Some((cause, live)) => (Some(cause), Some(live)),
            None => (None, None),
        };
        *reported = Some((cause, live));
        let changed = was_cause != Some(cause);
        if changed {
            crate::meters::worker_ready().set(if cause.is_none() { 1.0 } else { 0.0 });
            match &not_ready {
                Some(n) => {
                    crate::meters::not_ready(n.cause).increment(1);
                    if matches!(n.cause, "not_joined" | "shutting_down") {
                        // Start and stop: expected, not a warning.
                        tracing::info!(cause = n.cause, reason = %n.reason, "not ready");
                    } else {
                        tracing::warn!(cause = n.cause, reason = %n.reason, "not ready");
                    }
                }
                None => tracing::info!("ready"),
            }
        }
        if was_live != Some(live) {
            crate::meters::worker_live().set(if live { 1.0 } else { 0.0 });
            match (&not_live, was_live) {
                (Some(reason), _) => tracing::error!(reason = %reason, "not live: a loop is stuck"),
                (None, Some(false)) => tracing::info!("live again"),
                (None, _) => {}
            }
        }
        (not_ready, changed)
    }

    pub fn assigned(&self) -> usize {
        self.assigned.load(Ordering::Relaxed)
    }
}

/// Each use of these locks is one read or assignment: a panic elsewhere leaves it whole.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Most of a librdkafka reason kept in a probe's answer.
const MAX_REASON_CHARS: usize = 300;

/// `text` on one line, bounded: a probe's answer is one line.
fn one_line(text: &str) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON_CHARS)
        .collect();
    if text.chars().count() > MAX_REASON_CHARS {
        line.push_str("...");
    }
    line
}

/// Binds `addr` and serves the probes, and `/metrics` when given its handle, in a
/// background task; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
    metrics: Option<PrometheusHandle>,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("invalid setting METRICS_ADDR (--metrics-addr): cannot listen on {addr}")
    })?;
    let bound = listener.local_addr()?;
    let partitions = health.partitions.clone();
    let mut app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health);
    if let Some(metrics) = metrics {
        let render = move || {
            let mut page = metrics.render();
            page.push_str(&partitions.render());
            async move { ([(CONTENT_TYPE, "text/plain; version=0.0.4")], page) }
        };
        app = app.route("/metrics", get(render));
    }
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "health server stopped");
        }
    });
    Ok(bound)
}

async fn healthz(State(health): State<Arc<Health>>) -> (StatusCode, String) {
    health.observe();
    match health.not_live() {
        None => (StatusCode::OK, "ok\n".into()),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not live: {why}\n"),
        ),
    }
}

async fn readyz(State(health): State<Arc<Health>>) -> (StatusCode, String) {
    match health.observe() {
        None => {
            let assigned = health.assigned();
            (
                StatusCode::OK,
                format!("ready, {assigned} partitions assigned\n"),
            )
        }
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readyz_fails_with_its_reason_while_the_sink_is_down() {
        let health = Arc::new(Health::default());
        let (status, body) = readyz(State(health.clone())).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("consumer group"), "{body}");
        health.rebalanced(3);
        assert_eq!(readyz(State(health.clone())).await.0, StatusCode::OK);

        health.sink_down("could not write /intents/core5g: Not a directory");
        let (status, body) = readyz(State(health.clone())).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            "not ready: the intent sink is down, partitions paused: \
             could not write /intents/core5g: Not a directory\n"
        );
        assert!(!health.is_ready());

        health.sink_up();
        let (status, body) = readyz(State(health.clone())).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "ready, 3 partitions assigned\n")
        );
        health.stopping();
        assert!(readyz(State(health)).await.1.contains("shutting down"));
    }

    fn joined() -> Health {
        let health = Health::default();
        health.configure(Duration::from_secs(60), Duration::from_secs(30));
        health.rebalanced(2);
        health
    }

    #[test]
    fn readiness_falls_when_no_broker_is_reachable_past_the_grace_and_comes_back() {
        let health = joined();
        let base = Instant::now();
        let at = |s| base + Duration::from_secs(s);
        health.brokers_down.holds_at(at(0), "all brokers down");
        assert_eq!(health.not_ready_at(at(30)), None, "within READINESS_GRACE");
        let not_ready = health.not_ready_at(at(31)).expect("not ready");
        assert_eq!(not_ready.cause, "brokers_down");
        assert_eq!(
            not_ready.reason,
            "no Kafka broker reachable for 31s (READINESS_GRACE 30s): all brokers down"
        );
        health.brokers_down.cleared();
        assert_eq!(health.not_ready_at(at(32)), None);
    }

    #[test]
    fn readiness_falls_while_the_schema_registry_does_not_answer_past_the_grace() {
        let health = joined();
        let base = Instant::now();
        let at = |s| base + Duration::from_secs(s);
        health.registry_down.holds_at(at(0), "connection refused");
        assert_eq!(health.not_ready_at(at(30)), None, "within READINESS_GRACE");
        let not_ready = health.not_ready_at(at(40)).expect("not ready");
        assert_eq!(not_ready.cause, "schema_registry_down");
        assert!(
            not_ready.reason.ends_with(": connection refused"),
            "{}",
            not_ready.reason
        );
        health.registry_down.cleared();
        assert!(health.not_ready_at(at(41)).is_none());
    }

    #[test]
    fn readiness_falls_when_the_producer_queue_stays_full() {
        let health = joined();
        let base = Instant::now();
        let at = |s| base + Duration::from_secs(s);
        health.queue_full.holds_at(at(0), "sends wait for room");
        assert_eq!(health.not_ready_at(at(10)), None);
        let not_ready = health.not_ready_at(at(45)).expect("not ready");
        assert_eq!(not_ready.cause, "producer_queue_full");
        assert!(
            not_ready
                .reason
                .starts_with("the producer queue has been full for 45s"),
            "{}",
            not_ready.reason
        );
        health.queue_full.cleared();
        assert!(health.not_ready_at(at(46)).is_none());
    }

    #[test]
    fn a_change_of_readiness_is_reported_once_however_often_it_is_observed() {
        let health = Health::default();
        health.configure(Duration::from_secs(60), Duration::from_secs(2));
        let base = Instant::now();
        let at = |s| base + Duration::from_secs(s);
        let changed = |s| health.observe_at(at(s)).1;
        assert!(changed(0), "the first observation: not joined");
        assert!(!changed(1));
        health.rebalanced(1);
        assert!(changed(2), "ready");
        health.brokers_down.holds_at(at(2), "no answer");
        assert!(!changed(3), "within the grace");
        assert!(changed(5), "brokers down");
        assert!(!changed(6), "the same cause, a new duration: not again");
        health.queue_full.holds_at(at(5), "sends wait");
        assert!(!changed(9), "a second condition under the same first cause");
        health.brokers_down.cleared();
        assert!(changed(10), "now the queue is the cause");
        health.queue_full.cleared();
        assert!(changed(11), "ready again");
        assert!(!changed(12));
    }

    #[test]
    fn conditions_that_hold_together_are_all_named() {
        let health = joined();
        let base = Instant::now();
        let at = |s| base + Duration::from_secs(s);
        health.brokers_down.holds_at(at(0), "no answer");
        health.queue_full.holds_at(at(1), "sends wait");
        let not_ready = health.not_ready_at(at(40)).expect("not ready");
        assert_eq!(not_ready.cause, "brokers_down");
        assert_eq!(
            not_ready.reason,
            "no Kafka broker reachable for 40s (READINESS_GRACE 30s): no answer; \
             the producer queue has been full for 39s (READINESS_GRACE 30s): sends wait"
        );
    }

    #[test]
    fn a_fatal_error_keeps_the_worker_not_ready_with_the_first_reason() {
        let health = joined();
        health.fatal(Client::Producer, "Fatal error: producer fenced\nby epoch");
        health.fatal(Client::Consumer, "a later one");
        let not_ready = health.not_ready_at(Instant::now()).expect("not ready");
        assert_eq!(not_ready.cause, "fatal_error");
        assert_eq!(
            not_ready.reason,
            "librdkafka fatal error in the producer: Fatal error: producer fenced by epoch; \
             restart the worker"
        );
    }

    #[tokio::test]
    async fn healthz_fails_naming_the_loop_that_stopped_turning() {
        let health = Arc::new(joined());
        health.configure(Duration::from_secs(2), Duration::from_secs(30));
        let now = Instant::now();
        assert_eq!(
            healthz(State(health.clone())).await.0,
            StatusCode::OK,
            "not started"
        );
        health.main_loop.beat_at(now);
        health.poll_thread.beat_at(now);
        assert_eq!(health.not_live_at(now + Duration::from_secs(2)), None);
        // The poll thread waits for a revocation's drain, up to its deadline.
        health
            .poll_thread
            .waiting_until_at(now, now + Duration::from_secs(20));
        health.main_loop.beat_at(now + Duration::from_secs(9));
        assert_eq!(health.not_live_at(now + Duration::from_secs(10)), None);
        assert_eq!(
            health.not_live_at(now + Duration::from_secs(12)).as_deref(),
            Some("the worker's main loop has not turned for 3s (LIVENESS_TIMEOUT 2s)")
        );
        health.main_loop.beat_at(now + Duration::from_secs(22));
        assert_eq!(
            health.not_live_at(now + Duration::from_secs(23)).as_deref(),
            Some("the Kafka poll thread has not turned for 23s (LIVENESS_TIMEOUT 2s)")
        );
        health.stopping();
        assert_eq!(
            health.not_live_at(now + Duration::from_secs(100)),
            None,
            "shutting down: the loops stop on purpose"
        );
    }

    #[tokio::test]
    async fn healthz_answers_503_with_its_reason() {
        let health = Arc::new(joined());
        health.configure(Duration::ZERO, Duration::from_secs(30));
        health
            .main_loop
            .beat_at(Instant::now() - Duration::from_secs(5));
        let (status, body) = healthz(State(health)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.starts_with("not live: the worker's main loop has not turned for"),
            "{body}"
        );
    }
}
