//! The HTTP endpoints Kubernetes probes: `/healthz` (the process serves) and `/readyz`
//! (the worker has joined its group and is taking messages; not while shutting down),
//! and Prometheus scrapes: `/metrics` (see [`crate::prometheus`]).
//! A worker with no partitions (more replicas than partitions) is still ready: it is a
//! healthy member of the group, waiting for a rebalance to give it work.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

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

    pub fn is_ready(&self) -> bool {
        self.joined.load(Ordering::Relaxed) && !self.stopping.load(Ordering::Relaxed)
    }

    pub fn assigned(&self) -> usize {
        self.assigned.load(Ordering::Relaxed)
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
    if health.is_ready() {
        let assigned = health.assigned();
        (
            StatusCode::OK,
            format!("ready, {assigned} partitions assigned\n"),
        )
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_string())
    }
}
