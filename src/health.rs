//! The HTTP endpoints Kubernetes probes: `/healthz` (the process serves) and `/readyz`
//! (the worker has joined its group and is taking messages; not while shutting down, nor
//! while messages wait for an intent sink that is down: their partitions are paused),
//! and Prometheus scrapes: `/metrics` (see [`crate::prometheus`]). A `/readyz` that fails
//! says why, in one line.
//! A worker with no partitions (more replicas than partitions) is still ready: it is a
//! healthy member of the group, waiting for a rebalance to give it work.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

/// Shared state the probes read.
#[derive(Debug, Default)]
pub struct Health {
    joined: AtomicBool,
    stopping: AtomicBool,
    assigned: AtomicUsize,
    /// Why the intent sink is down, while it is.
    sink_down: Mutex<Option<String>>,
}

impl Health {
    /// Called after every rebalance with the size of the new assignment.
    pub fn rebalanced(&self, assigned: usize) {
        self.assigned.store(assigned, Ordering::Relaxed);
        self.joined.store(true, Ordering::Relaxed);
    }

    /// Called when shutdown starts: the pod stops receiving traffic.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// The intent sink is down, for `reason` (bounded, one line): not ready until
    /// [`Health::sink_up`].
    pub fn sink_down(&self, reason: &str) {
        *self.sink() = Some(reason.to_string());
    }

    /// The intent sink is up again.
    pub fn sink_up(&self) {
        *self.sink() = None;
    }

    pub fn is_ready(&self) -> bool {
        self.not_ready().is_none()
    }

    /// Why the worker is not ready, if it is not.
    pub fn not_ready(&self) -> Option<String> {
        if self.stopping.load(Ordering::Relaxed) {
            return Some("shutting down".into());
        }
        if !self.joined.load(Ordering::Relaxed) {
            return Some("not yet a member of the consumer group".into());
        }
        self.sink()
            .as_ref()
            .map(|reason| format!("the intent sink is down, partitions paused: {reason}"))
    }

    pub fn assigned(&self) -> usize {
        self.assigned.load(Ordering::Relaxed)
    }

    fn sink(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // Each use is one assignment or read: a panic elsewhere leaves it whole.
        self.sink_down
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
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
    let mut app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(health);
    if let Some(metrics) = metrics {
        let render = move || {
            let page = metrics.render();
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

async fn readyz(State(health): State<Arc<Health>>) -> (StatusCode, String) {
    match health.not_ready() {
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
}
