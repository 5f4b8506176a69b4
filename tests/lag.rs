//! Consumer lag as an operator and the autoscaler see it, on `/metrics` of workers on the
//! real broker: in messages (log end minus committed offset) and in seconds (the age of
//! the oldest message consumed and not done), per partition the worker holds, and the
//! oldest in-flight message's age.
//!
//! Messages are produced one per batch (each waits for its acknowledgement): the
//! development broker's high watermark counts batches, not records.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{produce, producer, SlowTranslator, TestTopics, Worker, PATIENCE};
use metrics_exporter_prometheus::PrometheusHandle;
use nephoran_kafka_consumer::config::Property;
use nephoran_kafka_consumer::health::{self, Health};
use nephoran_kafka_consumer::outcome::ErrorCode;

/// A worker's series of one per-partition gauge: (topic, partition) -> value.
type Series = BTreeMap<(String, i32), f64>;

/// A worker's `/metrics`, served as the binary serves it.
struct Page {
    url: String,
    http: reqwest::Client,
}

impl Page {
    async fn serve(health: Arc<Health>, metrics: PrometheusHandle) -> Self {
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let bound = health::serve(addr, health, Some(metrics))
            .await
            .expect("serve /metrics");
        Self {
            url: format!("http://{bound}/metrics"),
            http: reqwest::Client::new(),
        }
    }

    async fn scrape(&self) -> String {
        let response = self.http.get(&self.url).send().await.expect("scrape");
        assert_eq!(response.status(), 200);
        response.text().await.expect("page")
    }

    /// The per-partition series of `name`.
    async fn series(&self, name: &str) -> Series {
        parse(&self.scrape().await, name)
    }

    /// The value of the unlabelled series `name`.
    async fn value(&self, name: &str) -> f64 {
        let page = self.scrape().await;
        page.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} on the page:\n{page}"))
    }

    /// Scrapes until `done` holds for the series of `name`; returns them.
    async fn until(&self, name: &str, what: &str, done: impl Fn(&Series) -> bool) -> Series {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let series = self.series(name).await;
            if done(&series) {
                return series;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: {name} is {series:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn parse(page: &str, name: &str) -> Series {
    let mut series = Series::new();
    for line in page.lines() {
        let Some(rest) = line.strip_prefix(name).and_then(|r| r.strip_prefix('{')) else {
            continue;
        };
        let (labels, value) = rest.split_once("} ").expect("labels and value");
        let label = |key: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix("=\"")?.strip_suffix('"'))
                .unwrap_or_else(|| panic!("no {key} in {line}"))
                .to_string()
        };
        series.insert(
            (
                label("topic"),
                label("partition").parse().expect("partition"),
            ),
            value.parse().expect("value"),
        );
    }
    series
}

/// Before anything is done, the page of a fresh worker already has the series
/// dashboards and alerts use, at 0, and every series has its HELP and TYPE.
fn first_scrape_has_every_known_series_with_help(page: &str, topics: &TestTopics) {
    let zero = |series: &str| page.lines().any(|l| l == format!("{series} 0"));
    for topic in topics.inputs() {
        for status in ["success", "duplicate", "rejected", "failed"] {
            let series =
                format!("networkintent_processed_total{{topic=\"{topic}\",status=\"{status}\"}}");
            assert!(zero(&series), "{series}:\n{page}");
        }
    }
    for code in ErrorCode::ALL {
        let series = format!("networkintent_failed_total{{code=\"{}\"}}", code.as_str());
        assert!(zero(&series), "{series}:\n{page}");
    }
    assert!(
        zero("networkintent_processing_duration_seconds_count"),
        "{page}"
    );
    let mut families: Vec<&str> = page
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(|name| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|f| page.contains(&format!("# TYPE {f} histogram")))
                .unwrap_or(name)
        })
        .collect();
    families.dedup();
    for family in families {
        assert!(
            page.contains(&format!("# HELP {family} ")),
            "no HELP for {family}"
        );
        assert!(
            page.contains(&format!("# TYPE {family} ")),
            "no TYPE for {family}"
        );
    }
}

fn request(key: &str) -> Vec<u8> {
    serde_json::json!({"idempotency_key": key, "intent": "Deploy AMF in namespace core5g"})
        .to_string()
        .into_bytes()
}

const LAG_MESSAGES: &str = "kafka_consumer_lag_messages";
const LAG_SECONDS: &str = "kafka_consumer_lag_seconds";
const OLDEST_IN_FLIGHT: &str = "oldest_in_flight_seconds";

#[tokio::test(flavor = "multi_thread")]
async fn lag_counts_what_is_not_done_per_partition_held_and_follows_the_partitions() {
    const N: usize = 6;
    let metrics = nephoran_kafka_consumer::prometheus::install().expect("recorder");
    let topics = TestTopics::create("lag", 2).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = producer();
    for i in 0..N {
        let key = format!("held-{i}");
        produce(
            &producer,
            &topics.service_requests,
            Some(&key),
            &request(&key),
            &[],
        )
        .await;
    }

    // A worker whose translator holds every message: all N consumed, none done.
    let translator = SlowTranslator::new(Duration::ZERO, Some("held-"));
    let config = || {
        let mut config = topics.config(dir.path());
        config.kafka.kafka_config.push(Property {
            key: "auto.commit.interval.ms".into(),
            value: "100".into(),
        });
        config
    };
    let first = Worker::start_with(config(), translator.clone());
    let page = Page::serve(first.health.clone(), metrics.clone()).await;
    let all = page
        .until(
            LAG_MESSAGES,
            "N messages behind over the 4 partitions",
            |s| s.len() == 4 && s.values().sum::<f64>() == N as f64,
        )
        .await;
    first_scrape_has_every_known_series_with_help(&page.scrape().await, &topics);
    let behind: f64 = all
        .iter()
        .filter(|((topic, _), _)| *topic == topics.service_requests)
        .map(|(_, lag)| lag)
        .sum();
    assert_eq!(behind, N as f64, "the lag is on the topic produced to");
    // The held messages' age grows, by their Kafka timestamps.
    let oldest = |s: &Series| s.values().copied().fold(0.0, f64::max);
    let before = oldest(
        &page
            .until(LAG_SECONDS, "the held messages have an age", |s| {
                oldest(s) > 0.0
            })
            .await,
    );
    page.until(LAG_SECONDS, "the held messages' age grows", |s| {
        oldest(s) > before
    })
    .await;
    assert!(page.value(OLDEST_IN_FLIGHT).await > 0.0);

    // Released: everything done and committed; both lags fall to 0.
    translator.release();
    page.until(LAG_MESSAGES, "caught up in messages", |s| {
        s.len() == 4 && s.values().all(|lag| *lag == 0.0)
    })
    .await;
    page.until(LAG_SECONDS, "caught up in seconds", |s| {
        s.len() == 4 && s.values().all(|lag| *lag == 0.0)
    })
    .await;
    assert_eq!(page.value(OLDEST_IN_FLIGHT).await, 0.0);

    // A second worker takes some partitions: each reports only its own.
    let second = Worker::start_with(config(), translator.clone());
    let second_page = Page::serve(second.health.clone(), metrics.clone()).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        // Lag in seconds is there from assignment; in messages from the first read.
        let mine = page.series(LAG_SECONDS).await;
        let theirs = second_page.series(LAG_SECONDS).await;
        let split = !mine.is_empty()
            && !theirs.is_empty()
            && mine.len() + theirs.len() == 4
            && mine.keys().all(|p| !theirs.contains_key(p))
            && first.health.assigned() == mine.len()
            && second.health.assigned() == theirs.len();
        if split {
            for series in [LAG_MESSAGES] {
                let mine_too = page.series(series).await;
                assert!(
                    mine_too.keys().all(|p| mine.contains_key(p)),
                    "{series} of a partition handed over: {mine_too:?}, held {mine:?}"
                );
            }
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the partitions were not split: first {mine:?}, second {theirs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    second.stop().await;
    first.stop().await;
}
