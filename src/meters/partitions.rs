//! The per-partition series of one worker: consumer lag in messages and in seconds for
//! each partition it holds, and the age of its oldest message in flight, rendered into
//! `/metrics` by this module rather than kept by the `metrics` recorder.
//!
//! Why not the recorder: `metrics-exporter-prometheus` cannot delete a series, and a
//! partition's lag must vanish from this worker's page when the partition is handed over
//! (else two workers report the same partition, and a dashboard sums a stale value; the
//! exporter's idle timeout would only hide it minutes later, and hide quiet series the
//! dashboard needs as well). So the worker writes its partitions here when they are
//! assigned, updates them, and removes them at hand-over; each scrape renders what is
//! here at that moment, with `# HELP` and `# TYPE` lines like the recorder's.
//!
//! - `kafka_consumer_lag_messages{topic,partition}`: the partition's log end offset (its
//!   high watermark) minus the group's committed offset (the low watermark while the
//!   group has none), as last read from the broker (every [`REFRESH`]); absent until
//!   first read.
//! - `kafka_consumer_lag_seconds{topic,partition}`: the age, by its Kafka timestamp, of
//!   the partition's oldest message consumed and not yet done; 0 when none is.
//! - `oldest_in_flight_seconds`: how long this worker has held its oldest message
//!   consumed and not yet done (since it was consumed); 0 when none.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::schedule::PartitionId;

/// How often the log end and committed offsets are read from the broker.
pub const REFRESH: Duration = Duration::from_secs(2);

pub const LAG_MESSAGES: &str = "kafka_consumer_lag_messages";
pub const LAG_SECONDS: &str = "kafka_consumer_lag_seconds";
pub const OLDEST_IN_FLIGHT: &str = "oldest_in_flight_seconds";

/// Name, labels, help of each series rendered here (all gauges).
pub const GAUGES: &[super::Meta] = &[
    (LAG_MESSAGES, &["topic", "partition"], "Per assigned partition: log end offset minus the group's committed offset, as last read from the broker."),
    (LAG_SECONDS, &["topic", "partition"], "Per assigned partition: age (by its Kafka timestamp) of the oldest message consumed and not yet done; 0 when caught up."),
    (OLDEST_IN_FLIGHT, &[], "Seconds since the oldest message consumed and not yet done was consumed; 0 when none."),
];

/// One held partition's figures.
#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    /// Log end offset and committed offset, as last read.
    lag_messages: Option<i64>,
    /// Kafka timestamp (ms since the epoch) of its oldest message not done.
    oldest_timestamp_ms: Option<i64>,
    /// When its oldest message not done was consumed.
    oldest_consumed: Option<Instant>,
}

/// The partitions one worker holds, with their lag; shared between the worker, which
/// writes it, and `/metrics`, which renders it.
#[derive(Debug, Default)]
pub struct PartitionGauges {
    held: Mutex<BTreeMap<PartitionId, Figures>>,
}

/// What a scrape reads of one partition (for tests and [`PartitionGauges::render`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Lag {
    pub partition: PartitionId,
    pub messages: Option<i64>,
    pub seconds: f64,
}

impl PartitionGauges {
    fn held(&self) -> std::sync::MutexGuard<'_, BTreeMap<PartitionId, Figures>> {
        // The table holds plain numbers: one left by a panicking writer is still valid.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The partition is assigned: its series appear (lag in messages once first read).
    pub fn assigned(&self, partition: &PartitionId) {
        self.held().insert(partition.clone(), Figures::default());
    }

    /// The partition is handed over: its series disappear.
    pub fn revoked(&self, partition: &PartitionId) {
        self.held().remove(partition);
    }

    /// Every partition is let go (the worker stopped).
    pub fn clear(&self) {
        self.held().clear();
    }

    /// The partitions held now, whose offsets are to be read.
    pub fn partitions(&self) -> Vec<PartitionId> {
        self.held().keys().cloned().collect()
    }

    /// The partition's oldest message not done is now the one with `timestamp_ms`
    /// (Kafka's, if the record had one) consumed at `consumed`; `None`: none is left.
    pub fn oldest(&self, partition: &PartitionId, oldest: Option<(Option<i64>, Instant)>) {
        if let Some(figures) = self.held().get_mut(partition) {
            figures.oldest_timestamp_ms = oldest.and_then(|(t, _)| t);
            figures.oldest_consumed = oldest.map(|(_, c)| c);
        }
    }

    /// Offsets read from the broker: `lag` messages behind. A partition handed over
    /// since the read began is not brought back.
    pub fn read(&self, partition: &PartitionId, lag: i64) {
        if let Some(figures) = self.held().get_mut(partition) {
            figures.lag_messages = Some(lag.max(0));
        }
    }

    /// Each held partition's lag now.
    pub fn lags(&self) -> Vec<Lag> {
        let now_ms = now_ms();
        self.held()
            .iter()
            .map(|(partition, figures)| Lag {
                partition: partition.clone(),
                messages: figures.lag_messages,
                seconds: figures
                    .oldest_timestamp_ms
                    .map_or(0.0, |t| now_ms.saturating_sub(t).max(0) as f64 / 1000.0),
            })
            .collect()
    }

    /// Seconds since the oldest message not done was consumed; 0 when none.
    pub fn oldest_in_flight(&self) -> f64 {
        self.held()
            .values()
            .filter_map(|f| f.oldest_consumed)
            .min()
            .map_or(0.0, |c| c.elapsed().as_secs_f64())
    }

    /// The series in Prometheus's text format, `# HELP` and `# TYPE` first.
    pub fn render(&self) -> String {
        let lags = self.lags();
        let mut page = String::new();
        for (name, _, help) in GAUGES {
            let _ = writeln!(page, "# HELP {name} {help}");
            let _ = writeln!(page, "# TYPE {name} gauge");
            if *name == OLDEST_IN_FLIGHT {
                let _ = writeln!(page, "{name} {}", self.oldest_in_flight());
                continue;
            }
            for lag in &lags {
                let value = match *name {
                    LAG_MESSAGES => match lag.messages {
                        Some(messages) => messages as f64,
                        None => continue,
                    },
                    _ => lag.seconds,
                };
                let _ = writeln!(
                    page,
                    "{name}{{topic=\"{}\",partition=\"{}\"}} {value}",
                    escape(&lag.partition.0),
                    lag.partition.1
                );
            }
        }
        page
    }
}

/// A label value as the text format needs it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().try_into().unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: i32) -> PartitionId {
        ("in".to_string(), n)
    }

    #[test]
    fn a_revoked_partition_leaves_the_page() {
        let gauges = PartitionGauges::default();
        gauges.assigned(&p(0));
        gauges.assigned(&p(1));
        gauges.read(&p(0), 5);
        gauges.read(&p(1), 7);
        let page = gauges.render();
        assert!(page.contains("kafka_consumer_lag_messages{topic=\"in\",partition=\"1\"} 7"));
        gauges.revoked(&p(1));
        gauges.read(&p(1), 9); // a read begun before the hand-over
        let page = gauges.render();
        assert!(page.contains("kafka_consumer_lag_messages{topic=\"in\",partition=\"0\"} 5"));
        assert!(!page.contains("partition=\"1\""), "{page}");
        assert!(page.contains("# HELP kafka_consumer_lag_seconds "));
        assert!(
            page.contains("# TYPE oldest_in_flight_seconds gauge\noldest_in_flight_seconds 0\n")
        );
    }

    #[test]
    fn lag_in_seconds_is_the_oldest_undone_messages_age_and_0_when_caught_up() {
        let gauges = PartitionGauges::default();
        gauges.assigned(&p(0));
        gauges.oldest(&p(0), Some((Some(now_ms() - 30_000), Instant::now())));
        let seconds = gauges.lags()[0].seconds;
        assert!((30.0..60.0).contains(&seconds), "{seconds}");
        gauges.oldest(&p(0), None);
        assert_eq!(gauges.lags()[0].seconds, 0.0);
        assert_eq!(gauges.oldest_in_flight(), 0.0);
        // Unknown until first read; never negative.
        assert_eq!(gauges.lags()[0].messages, None);
        gauges.read(&p(0), -3);
        assert_eq!(gauges.lags()[0].messages, Some(0));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
