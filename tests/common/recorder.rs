//! A metrics recorder for the tests of one binary, and a way to read what it recorded.

use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};

/// Records metrics for the tests of this binary without resetting them on read (one
/// recorder per process; tests tell their metrics apart by their topic label).
pub struct TestRecorder(Registry<Key, AtomicStorage>);

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.0
            .get_or_create_counter(key, |c| Counter::from_arc(c.clone()))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.0
            .get_or_create_gauge(key, |g| Gauge::from_arc(g.clone()))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.0
            .get_or_create_histogram(key, |h| Histogram::from_arc(h.clone()))
    }
}

pub fn recorder() -> &'static TestRecorder {
    static RECORDER: OnceLock<&'static TestRecorder> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let recorder: &'static TestRecorder = Box::leak(Box::new(TestRecorder(Registry::atomic())));
        metrics::set_global_recorder(recorder).expect("install the metrics recorder");
        recorder
    })
}

/// The value of the counters, gauges (or histogram sample counts) called `name` whose
/// labels include all of `labels`, summed.
pub fn metric(name: &str, labels: &[(&str, &str)]) -> f64 {
    let registry = &recorder().0;
    let matches = |key: &Key| {
        key.name() == name
            && labels
                .iter()
                .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
    };
    let counters: f64 = registry
        .get_counter_handles()
        .into_iter()
        .filter(|(k, _)| matches(k))
        .map(|(_, c)| c.load(Ordering::Relaxed) as f64)
        .sum();
    let gauges: f64 = registry
        .get_gauge_handles()
        .into_iter()
        .filter(|(k, _)| matches(k))
        .map(|(_, g)| f64::from_bits(g.load(Ordering::Relaxed)))
        .sum();
    let histograms: f64 = registry
        .get_histogram_handles()
        .into_iter()
        .filter(|(k, _)| matches(k))
        .map(|(_, h)| h.data().len() as f64)
        .sum();
    counters + gauges + histograms
}
