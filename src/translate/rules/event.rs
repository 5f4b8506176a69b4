//! The one network-event rule: a utilisation KPI above its threshold scales the network
//! function out by one replica, capped at the translator's `max_replicas`.
//!
//! Every other event is refused with the reason. Event strings come from monitoring
//! systems, not people, so they are quoted in generated text only when plainly safe, and
//! in refusals with anything unusual replaced: neither may carry markup.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::refuse;
use crate::intent::{Component, IntentType, NetworkIntentSpec, Priority, Scaling};
use crate::request::NetworkEvent;
use crate::translate::Untranslatable;

const KPI_THRESHOLD_CROSSED: &str = "kpi_threshold_crossed";

/// The longest event string quoted in generated text or in a refusal.
const MAX_SHOWN: usize = 64;

pub(super) fn translate(
    event: &NetworkEvent,
    max_replicas: u32,
) -> Result<NetworkIntentSpec, Untranslatable> {
    let kpi = KpiCrossing::read(event)?;
    let scaling = Scaling {
        scale_by: Some(1),
        max_replicas: Some(max_replicas),
        ..Scaling::default()
    };
    Ok(NetworkIntentSpec {
        intent: kpi.describe(event),
        intent_type: IntentType::Scaling,
        priority: priority_of_severity(event.severity.as_deref()),
        target_components: vec![kpi.component],
        target_namespace: kpi.namespace,
        target_environment: None,
        scaling: Some(scaling),
        resources: None,
        network_slice: None,
        parameters: BTreeMap::new(),
    })
}

/// A utilisation KPI above its threshold, the one event that scales out.
#[derive(Debug)]
struct KpiCrossing<'e> {
    component: Component,
    /// Lower-cased.
    namespace: String,
    metric: &'e str,
    value: f64,
    threshold: f64,
}

impl<'e> KpiCrossing<'e> {
    fn read(event: &'e NetworkEvent) -> Result<Self, Untranslatable> {
        let kind = event.event_type.trim();
        if !kind.eq_ignore_ascii_case(KPI_THRESHOLD_CROSSED) {
            return refuse(format!(
                "no rule for network events of type '{}'",
                shown(kind)
            ));
        }
        let metric = required(event.metric.as_deref(), "metric")?;
        let value = event
            .value
            .ok_or_else(|| Untranslatable::new("the network event has no 'value'"))?;
        let threshold = event
            .threshold
            .ok_or_else(|| Untranslatable::new("the network event has no 'threshold'"))?;
        let nf_type = required(event.nf_type.as_deref(), "nf_type")?;
        let namespace = required(event.namespace.as_deref(), "namespace")?;

        if !is_utilisation(metric) {
            return refuse(format!(
                "metric '{}' is not a utilisation metric; only utilisation crossings scale out",
                shown(metric)
            ));
        }
        if !value.is_finite() || !threshold.is_finite() {
            return refuse("the event's value or threshold is not a finite number");
        }
        if value <= threshold {
            return refuse(format!(
                "{} {value} is not above the threshold {threshold}",
                shown(metric)
            ));
        }
        let component = Component::from_name(nf_type).ok_or_else(|| {
            Untranslatable::new(format!(
                "nf_type '{}' is not a supported network function",
                shown(nf_type)
            ))
        })?;
        Ok(Self {
            component,
            namespace: namespace.to_ascii_lowercase(),
            metric,
            value,
            threshold,
        })
    }

    /// The generated intent text. Event strings that are not plainly safe are left out,
    /// since the text must carry no markup (validation refuses it) and stays readable.
    fn describe(&self, event: &NetworkEvent) -> String {
        let metric = clean(self.metric).unwrap_or("utilisation");
        let id = event.event_id.as_deref().and_then(clean);
        let source = event.source.as_deref().and_then(clean);

        // Writing to a String cannot fail.
        let mut text = format!("Scale out {}", self.component);
        if let Some(ns) = clean(&self.namespace) {
            let _ = write!(text, " in {ns}");
        }
        let _ = write!(
            text,
            " by one replica: {metric} {} is above the threshold {}",
            self.value, self.threshold
        );
        let _ = match (id, source) {
            (Some(id), Some(source)) => write!(text, " (event {id} from {source})"),
            (Some(id), None) => write!(text, " (event {id})"),
            (None, Some(source)) => write!(text, " (from {source})"),
            (None, None) => Ok(()),
        };
        text
    }
}

fn required<'a>(value: Option<&'a str>, field: &str) -> Result<&'a str, Untranslatable> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => Ok(v),
        None => refuse(format!("the network event has no '{field}'")),
    }
}

fn is_utilisation(metric: &str) -> bool {
    let metric = metric.to_ascii_lowercase();
    metric.contains("utilization") || metric.contains("utilisation") || metric == "load"
}

fn priority_of_severity(severity: Option<&str>) -> Priority {
    let is = |name: &str| severity.is_some_and(|s| s.trim().eq_ignore_ascii_case(name));
    if is("critical") {
        Priority::Critical
    } else if is("major") {
        Priority::High
    } else if is("minor") || is("warning") {
        Priority::Low
    } else {
        Priority::Medium
    }
}

/// An event string fit to quote in generated text: short and plain, or nothing.
fn clean(s: &str) -> Option<&str> {
    let s = s.trim();
    let plain = s
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/' | '@'));
    (plain && !s.is_empty() && s.chars().count() <= MAX_SHOWN).then_some(s)
}

/// An event string as quoted in a refusal: anything not plain becomes '?', and it is cut
/// short, so reasons stay readable whatever the producer sent.
fn shown(s: &str) -> String {
    s.chars()
        .take(MAX_SHOWN)
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/' | '@' | ' ') {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::expect::*;
    use super::super::RuleTranslator;
    use crate::intent::Component::*;
    use crate::intent::{IntentType, NetworkIntent, NetworkIntentSpec, Priority, Scaling};
    use crate::request::{NetworkEvent, Request};
    use crate::translate::Untranslatable;
    use crate::validate::{has_markup, validate, Limits};

    fn kpi() -> NetworkEvent {
        NetworkEvent {
            event_id: Some("ev-1".into()),
            event_type: "kpi_threshold_crossed".into(),
            source: Some("amf-1".into()),
            nf_type: Some("amf".into()),
            namespace: Some("core5g".into()),
            severity: Some("major".into()),
            metric: Some("cpu_utilization".into()),
            value: Some(92.0),
            threshold: Some(80.0),
            description: Some("AMF CPU high".into()),
            timestamp: Some("2024-01-01T00:00:00Z".into()),
        }
    }

    fn translate_event(event: NetworkEvent) -> Result<NetworkIntentSpec, Untranslatable> {
        RuleTranslator::new(MAX).translate_sync(&Request::Event(event))
    }

    fn event_refused(event: NetworkEvent, mentions: &[&str]) {
        let reason = translate_event(event.clone())
            .expect_err(&format!("{event:?} should be refused"))
            .reason;
        for m in mentions {
            assert!(reason.contains(m), "reason {reason:?} should mention {m:?}");
        }
    }

    #[test]
    fn kpi_crossing_scales_out_by_one() {
        let spec = translate_event(kpi()).expect("translates");
        assert_spec(
            "kpi",
            &spec,
            scale(&[Amf], "core5g").by(1).priority(Priority::High),
        );
        assert_eq!(
            spec.scaling,
            Some(Scaling {
                scale_by: Some(1),
                max_replicas: Some(MAX),
                ..Scaling::default()
            })
        );
        assert_eq!(
            spec.intent,
            "Scale out amf in core5g by one replica: cpu_utilization 92 is above the \
             threshold 80 (event ev-1 from amf-1)"
        );
        assert_eq!(spec.target_environment, None);
        validate(&NetworkIntent::for_key("ev-1", spec), &Limits::default()).expect("valid");
    }

    #[test]
    fn kpi_utilisation_metrics() {
        for (metric, nf, component) in [
            ("memory_utilisation", "SMF", Smf),
            ("load", "upf", Upf),
            ("Cell_PRB_Utilization", "o-du", ODu),
            ("cpu_utilization", "near-rt-ric", NearRtRic),
        ] {
            let mut event = kpi();
            event.metric = Some(metric.into());
            event.nf_type = Some(nf.into());
            event.value = Some(80.5);
            let spec = translate_event(event).unwrap_or_else(|e| panic!("{metric}: {e}"));
            assert_eq!(spec.target_components, vec![component], "{metric}");
            assert_eq!(spec.intent_type, IntentType::Scaling, "{metric}");
            assert!(
                spec.intent.contains("80.5 is above the threshold 80"),
                "{}",
                spec.intent
            );
        }
    }

    #[test]
    fn the_namespace_is_lower_cased() {
        let mut event = kpi();
        event.namespace = Some(" Core5G ".into());
        let spec = translate_event(event).expect("translates");
        assert_eq!(spec.target_namespace, "core5g");
        assert!(spec.intent.contains(" in core5g "), "{}", spec.intent);
    }

    #[test]
    fn severity_sets_priority() {
        for (severity, priority) in [
            (Some("critical"), Priority::Critical),
            (Some("CRITICAL"), Priority::Critical),
            (Some("major"), Priority::High),
            (Some("minor"), Priority::Low),
            (Some("warning"), Priority::Low),
            (Some("info"), Priority::Medium),
            (None, Priority::Medium),
        ] {
            let mut event = kpi();
            event.severity = severity.map(String::from);
            let spec = translate_event(event).expect("translates");
            assert_eq!(spec.priority, priority, "{severity:?}");
        }
    }

    #[test]
    fn events_of_other_types_are_refused() {
        let mut event = kpi();
        event.event_type = "alarm".into();
        event_refused(event, &["no rule for network events of type 'alarm'"]);
    }

    #[test]
    fn kpi_on_other_metrics_is_refused() {
        let mut event = kpi();
        event.metric = Some("latency_ms".into());
        event_refused(event, &["'latency_ms'", "not a utilisation metric"]);
    }

    #[test]
    fn kpi_not_above_threshold_is_refused() {
        for value in [80.0, 12.0] {
            let mut event = kpi();
            event.value = Some(value);
            event_refused(event, &["not above the threshold 80"]);
        }
    }

    #[test]
    fn kpi_missing_fields_are_named() {
        type Strip = fn(&mut NetworkEvent);
        let cases: [(Strip, &str); 6] = [
            (|e| e.metric = None, "'metric'"),
            (|e| e.value = None, "'value'"),
            (|e| e.threshold = None, "'threshold'"),
            (|e| e.nf_type = None, "'nf_type'"),
            (|e| e.namespace = None, "'namespace'"),
            (|e| e.namespace = Some("  ".into()), "'namespace'"),
        ];
        for (strip, field) in cases {
            let mut event = kpi();
            strip(&mut event);
            event_refused(event, &["has no", field]);
        }
    }

    #[test]
    fn kpi_for_an_unknown_nf_is_refused() {
        let mut event = kpi();
        event.nf_type = Some("mme".into());
        event_refused(
            event,
            &["nf_type 'mme'", "not a supported network function"],
        );
    }

    #[test]
    fn generated_text_carries_no_markup() {
        let mut event = kpi();
        event.event_id = Some("<script>alert(1)</script>".into());
        event.source = Some("{{ .Values.evil }}".into());
        event.metric = Some("cpu_utilization`rm`".into());
        let spec = translate_event(event).expect("translates");
        assert!(!has_markup(&spec.intent), "{}", spec.intent);
        for bad in ['<', '>', '`'] {
            assert!(!spec.intent.contains(bad), "{}", spec.intent);
        }
        assert!(!spec.intent.contains("{{") && !spec.intent.contains("${"));
        assert_eq!(
            spec.intent,
            "Scale out amf in core5g by one replica: utilisation 92 is above the threshold 80"
        );

        let mut event = kpi();
        event.namespace = Some("${NS}".into());
        event.event_id = None;
        let spec = translate_event(event).expect("translates; validation refuses the namespace");
        assert!(!has_markup(&spec.intent), "{}", spec.intent);
        assert!(spec.intent.ends_with("(from amf-1)"), "{}", spec.intent);
    }

    #[test]
    fn refusals_quote_event_strings_safely() {
        let mut event = kpi();
        event.event_type = "<b>alarm</b>".into();
        let reason = translate_event(event).expect_err("refused").reason;
        assert!(!has_markup(&reason), "{reason}");
    }
}
