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
    crate::meters::describe();
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

#[cfg(test)]
mod tests {
    use metrics_exporter_prometheus::PrometheusBuilder;

    use crate::meters::{self, partitions::PartitionGauges};
    use crate::outcome::ErrorCode;

    /// What a fresh worker's first scrape shows: its recorder's page after
    /// [`meters::describe`] and [`meters::register_known`], and its partition table's.
    fn first_scrape() -> String {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&super::BUCKETS)
            .expect("buckets")
            .build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            meters::describe();
            meters::register_known(&["service-requests".to_string()], Some("m1"));
        });
        let mut page = handle.render();
        page.push_str(&PartitionGauges::default().render());
        page
    }

    #[test]
    fn every_series_of_the_first_scrape_has_help_and_type() {
        let page = first_scrape();
        let mut names: Vec<&str> = page
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        names.dedup();
        assert!(names.len() > 20, "{page}");
        for name in names {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|f| page.contains(&format!("# TYPE {f} histogram")))
                .unwrap_or(name);
            assert!(
                page.contains(&format!("# HELP {family} ")),
                "no HELP for {family}:\n{page}"
            );
            assert!(
                page.contains(&format!("# TYPE {family} ")),
                "no TYPE for {family}:\n{page}"
            );
        }
    }

    #[test]
    fn the_series_dashboards_and_alerts_use_are_there_at_0_from_the_first_scrape() {
        let page = first_scrape();
        let has = |series: &str| page.lines().any(|l| l == format!("{series} 0"));
        for status in meters::STATUSES {
            assert!(
                has(&format!(
                    "networkintent_processed_total{{topic=\"service-requests\",status=\"{status}\"}}"
                )),
                "{status}:\n{page}"
            );
        }
        for code in ErrorCode::ALL {
            assert!(
                has(&format!(
                    "networkintent_failed_total{{code=\"{}\"}}",
                    code.as_str()
                )),
                "{code:?}:\n{page}"
            );
        }
        for status in ["success", "error"] {
            assert!(
                has(&format!(
                    "llm_api_calls_total{{status=\"{status}\",model=\"m1\"}}"
                )),
                "{page}"
            );
        }
        for series in [
            "networkintent_processing_duration_seconds_count",
            "dedup_hits_total{topic=\"service-requests\"}",
            "partition_pauses_total{topic=\"service-requests\",reason=\"sink_down\"}",
            "fenced_completions_total{topic=\"service-requests\"}",
            "partitions_revoked_total{topic=\"service-requests\"}",
            "llm_fallbacks_total{reason=\"circuit_open\",model=\"m1\"}",
            "messages_in_flight",
            "oldest_in_flight_seconds",
        ] {
            assert!(has(series), "{series}:\n{page}");
        }
    }

    #[test]
    fn every_described_metric_is_in_the_catalogue_and_the_page() {
        // A series with a HELP line is one the catalogue lists (so docs/operations.md,
        // which lists the catalogue, lists it too).
        let page = first_scrape();
        let catalogue: Vec<&str> = meters::catalogue().map(|(name, _, _, _)| name).collect();
        for line in page.lines().filter_map(|l| l.strip_prefix("# HELP ")) {
            let name = line.split(' ').next().unwrap_or_default();
            assert!(catalogue.contains(&name), "{name} is not in the catalogue");
        }
    }
}
