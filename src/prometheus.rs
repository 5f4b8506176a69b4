//! The Prometheus exposition of the service's metrics, served on `/metrics` beside the
//! probes.
//!
//! Every module records through the `metrics` facade; this installs the recorder that
//! keeps them for scraping. It must run before any metric handle is created (handles
//! made earlier go to the no-op recorder and are never seen). Histograms are exposed
//! with buckets (for `histogram_quantile`), from half a millisecond, the worker's own
//! overhead, to a minute, a slow LLM call.

use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Upper bounds of the histogram buckets, in seconds.
const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// How often histogram samples are folded into their buckets (bounding their memory).
const UPKEEP: Duration = Duration::from_secs(5);

/// Installs the recorder as the process's global one and starts its upkeep; the handle
/// renders the `/metrics` page.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&BUCKETS)
        .context("histogram buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder (one is installed already)")?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}
