//! Validation of a NetworkIntent before anything is applied.
//!
//! Every translator's output passes through here, so the limits hold whatever produced
//! the spec: component names are allowlisted by type ([`Component`](crate::intent::Component)); this module checks
//! the rest (counts, names, text) and reports the first violation with the field it is in.

use crate::intent::{NetworkIntent, NetworkIntentSpec, ParamValue};

/// The limits an intent must respect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest replica count (and `maxReplicas`) an intent may ask for.
    pub max_replicas: u32,
    /// Longest intent text, in characters.
    pub max_intent_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_replicas: 100,
            max_intent_chars: 1024,
        }
    }
}

const MAX_PARAMETERS: usize = 32;
const MAX_PARAMETER_VALUE_CHARS: usize = 256;
/// Most components one intent may name.
pub const MAX_COMPONENTS: usize = 16;

/// Why an intent was refused: the offending field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct Invalid {
    pub field: &'static str,
    pub problem: String,
}

fn invalid(field: &'static str, problem: impl Into<String>) -> Invalid {
    Invalid {
        field,
        problem: problem.into(),
    }
}

/// Checks a whole intent against `limits`.
pub fn validate(intent: &NetworkIntent, limits: &Limits) -> Result<(), Invalid> {
    let meta = &intent.metadata;
    let spec = &intent.spec;
    if !is_dns1123_label(&meta.name) {
        return Err(invalid(
            "metadata.name",
            format!("{:?} is not a DNS-1123 label", meta.name),
        ));
    }
    validate_spec(spec, limits)?;
    if meta.namespace != spec.target_namespace {
        return Err(invalid(
            "metadata.namespace",
            "differs from spec.targetNamespace",
        ));
    }
    Ok(())
}

/// Checks a spec alone (what a translator produced, before it has a name): the LLM
/// translator uses it to judge an answer before accepting it.
pub fn validate_spec(spec: &NetworkIntentSpec, limits: &Limits) -> Result<(), Invalid> {
    if !is_dns1123_label(&spec.target_namespace) {
        return Err(invalid(
            "spec.targetNamespace",
            format!(
                "{:?} is not a DNS-1123 label (lower-case letters, digits and '-', at most 63)",
                spec.target_namespace
            ),
        ));
    }
    check_text(&spec.intent, limits)?;
    if spec.target_components.is_empty() {
        return Err(invalid("spec.targetComponents", "names no component"));
    }
    if spec.target_components.len() > MAX_COMPONENTS {
        return Err(invalid(
            "spec.targetComponents",
            format!("more than {MAX_COMPONENTS} components"),
        ));
    }
    if let Some(env) = &spec.target_environment {
        if !is_dns1123_label(env) {
            return Err(invalid(
                "spec.targetEnvironment",
                format!("{env:?} is not a DNS-1123 label"),
            ));
        }
    }
    if let Some(scaling) = &spec.scaling {
        let max = limits.max_replicas;
        for (field, value) in [
            ("spec.scaling.replicas", scaling.replicas),
            ("spec.scaling.minReplicas", scaling.min_replicas),
            ("spec.scaling.maxReplicas", scaling.max_replicas),
        ] {
            if let Some(n) = value {
                if n > max {
                    return Err(invalid(field, format!("{n} is above the limit of {max}")));
                }
            }
        }
        if let (Some(lo), Some(hi)) = (scaling.min_replicas, scaling.max_replicas) {
            if lo > hi {
                return Err(invalid(
                    "spec.scaling",
                    format!("minReplicas {lo} is above maxReplicas {hi}"),
                ));
            }
        }
        if let Some(step) = scaling.scale_by {
            if step == 0 || step.unsigned_abs() > max {
                return Err(invalid(
                    "spec.scaling.scaleBy",
                    format!("{step} is outside ±1..={max}"),
                ));
            }
        }
    }
    if let Some(resources) = &spec.resources {
        for (field, value) in [
            ("spec.resources.cpu", &resources.cpu),
            ("spec.resources.memory", &resources.memory),
        ] {
            if let Some(q) = value {
                if !is_quantity(q) {
                    return Err(invalid(
                        field,
                        format!("{q:?} is not a Kubernetes quantity"),
                    ));
                }
            }
        }
    }
    if spec.parameters.len() > MAX_PARAMETERS {
        return Err(invalid(
            "spec.parameters",
            format!("more than {MAX_PARAMETERS} parameters"),
        ));
    }
    for (key, value) in &spec.parameters {
        if key.is_empty()
            || key.len() > 63
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(invalid(
                "spec.parameters",
                format!("key {key:?} must be 1-63 letters, digits, '_', '-' or '.'"),
            ));
        }
        if let ParamValue::String(s) = value {
            if s.chars().count() > MAX_PARAMETER_VALUE_CHARS || has_markup(s) {
                return Err(invalid(
                    "spec.parameters",
                    format!(
                        "value of {key:?} is longer than {MAX_PARAMETER_VALUE_CHARS} characters or holds markup"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Checks the text of an intent: not empty, not too long, no markup.
pub fn check_text(text: &str, limits: &Limits) -> Result<(), Invalid> {
    let chars = text.chars().count();
    if text.trim().is_empty() {
        return Err(invalid("spec.intent", "is empty"));
    }
    if chars > limits.max_intent_chars {
        return Err(invalid(
            "spec.intent",
            format!(
                "is {chars} characters long, above the limit of {}",
                limits.max_intent_chars
            ),
        ));
    }
    if has_markup(text) {
        return Err(invalid(
            "spec.intent",
            "contains markup or control characters (HTML/XML tags, template braces, backticks)",
        ));
    }
    Ok(())
}

/// True when text carries markup that has no place in an intent: tags, template
/// expressions, code fences, or control characters.
pub fn has_markup(text: &str) -> bool {
    text.chars()
        .any(|c| matches!(c, '<' | '>' | '`') || (c.is_control() && c != ' '))
        || text.contains("{{")
        || text.contains("}}")
        || text.contains("${")
}

/// RFC 1123 label, as Kubernetes checks names and namespaces: 1-63 characters of
/// lower-case letters, digits and '-', starting and ending with a letter or digit.
pub fn is_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// A Kubernetes quantity such as `500m`, `2`, `1.5`, `512Mi`, `1G`.
fn is_quantity(s: &str) -> bool {
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    !number.is_empty()
        && number.parse::<f64>().is_ok()
        && matches!(
            suffix,
            "" | "m" | "k" | "M" | "G" | "T" | "Ki" | "Mi" | "Gi" | "Ti"
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::{Component, IntentType, NetworkIntentSpec, Priority, Resources, Scaling};
    use std::collections::BTreeMap;

    fn spec() -> NetworkIntentSpec {
        NetworkIntentSpec {
            intent: "Deploy AMF with 3 replicas in namespace core5g".into(),
            intent_type: IntentType::Deployment,
            priority: Priority::Medium,
            target_components: vec![Component::Amf],
            target_namespace: "core5g".into(),
            target_environment: Some("production".into()),
            scaling: Some(Scaling {
                replicas: Some(3),
                ..Scaling::default()
            }),
            resources: None,
            network_slice: None,
            parameters: BTreeMap::new(),
        }
    }

    fn check(spec: NetworkIntentSpec) -> Result<(), Invalid> {
        validate(&NetworkIntent::new("key-1", spec), &Limits::default())
    }

    fn field_of(spec: NetworkIntentSpec) -> &'static str {
        check(spec).expect_err("should be invalid").field
    }

    #[test]
    fn accepts_a_reasonable_intent() {
        check(spec()).unwrap();
        let mut s = spec();
        s.scaling = Some(Scaling {
            replicas: Some(0),
            min_replicas: Some(0),
            max_replicas: Some(100),
            scale_by: None,
        });
        check(s).unwrap();
    }

    #[test]
    fn replicas_are_bounded() {
        let mut s = spec();
        s.scaling.as_mut().unwrap().replicas = Some(101);
        assert_eq!(field_of(s), "spec.scaling.replicas");
        let mut s = spec();
        s.scaling = Some(Scaling {
            min_replicas: Some(5),
            max_replicas: Some(2),
            ..Scaling::default()
        });
        assert_eq!(field_of(s), "spec.scaling");
        let mut s = spec();
        s.scaling = Some(Scaling {
            scale_by: Some(0),
            ..Scaling::default()
        });
        assert_eq!(field_of(s), "spec.scaling.scaleBy");
    }

    #[test]
    fn the_replica_limit_is_configurable() {
        let mut s = spec();
        s.scaling.as_mut().unwrap().replicas = Some(20);
        let limits = Limits {
            max_replicas: 10,
            ..Limits::default()
        };
        let err = validate(&NetworkIntent::new("k", s), &limits).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.scaling.replicas: 20 is above the limit of 10"
        );
    }

    #[test]
    fn namespaces_must_be_dns_labels() {
        for bad in ["Core5G", "core_5g", "-core", "core-", "", &"a".repeat(64)] {
            let mut s = spec();
            s.target_namespace = bad.to_string();
            assert_eq!(field_of(s), "spec.targetNamespace", "{bad:?}");
        }
    }

    #[test]
    fn intent_text_is_bounded_and_free_of_markup() {
        for bad in [
            "",
            "   ",
            "Deploy <script>alert(1)</script> amf",
            "Deploy {{ .Values.x }}",
            "Deploy ${HOME}",
            "Deploy `rm -rf`",
            "Deploy amf\u{0}",
        ] {
            let mut s = spec();
            s.intent = bad.to_string();
            assert_eq!(field_of(s), "spec.intent", "{bad:?}");
        }
        let mut s = spec();
        s.intent = "a".repeat(1025);
        assert_eq!(field_of(s), "spec.intent");
    }

    #[test]
    fn components_and_parameters_are_checked() {
        let mut s = spec();
        s.target_components.clear();
        assert_eq!(field_of(s), "spec.targetComponents");
        let mut s = spec();
        s.parameters
            .insert("bad key!".into(), ParamValue::String("x".into()));
        assert_eq!(field_of(s), "spec.parameters");
        let mut s = spec();
        s.parameters
            .insert("ok".into(), ParamValue::String("<b>".into()));
        assert_eq!(field_of(s), "spec.parameters");
    }

    #[test]
    fn resources_must_be_quantities() {
        let mut s = spec();
        s.resources = Some(Resources {
            cpu: Some("500m".into()),
            memory: Some("1Gi".into()),
        });
        check(s).unwrap();
        let mut s = spec();
        s.resources = Some(Resources {
            cpu: Some("lots".into()),
            memory: None,
        });
        assert_eq!(field_of(s), "spec.resources.cpu");
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns1123_label("core5g"));
        assert!(is_dns1123_label("a"));
        assert!(is_dns1123_label("a-b-1"));
        assert!(!is_dns1123_label("a.b"));
        assert!(!is_dns1123_label("A"));
    }
}
