//! Validation of shape: is a request or a NetworkIntent well formed at all?
//!
//! Every translator's output passes through here, so the checks hold whatever produced
//! the spec: component names are allowlisted by type ([`Component`](crate::intent::Component)); this module checks
//! the rest (DNS names, markup, counts of things, quantities that parse) and reports the
//! first violation with the field it is in, as `invalid_intent`. Whether a well-formed
//! intent is *allowed* (namespaces, replica and resource bounds, parameters) is the
//! policy's decision ([`crate::policy`]), which runs after this.
//!
//! Nothing here normalises: a namespace that is not exactly a DNS-1123 label is invalid,
//! never lower-cased into one (`\u{212A}ube-system`, with a Kelvin sign, Unicode-lowercases
//! to `kube-system`).

use crate::intent::{NetworkIntent, NetworkIntentSpec, ParamValue};
use crate::quantity::{Quantity, QuantityError};
use crate::request::Request;

/// The limits an intent must respect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest replica count the LLM prompt states and its answers are held to
    /// ([`validate_spec`]). The bound for every translator is the policy's
    /// ([`crate::policy`]), which takes it from the same `MAX_REPLICAS`.
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

/// Most parameters one intent may carry.
pub const MAX_PARAMETERS: usize = 32;
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
    let spec = &intent.spec;
    if !is_dns1123_label(intent.name()) {
        return Err(invalid(
            "metadata.name",
            format!("{:?} is not a DNS-1123 label", intent.name()),
        ));
    }
    check_shape(spec, limits)?;
    if intent.namespace() != spec.target_namespace {
        return Err(invalid(
            "metadata.namespace",
            "differs from spec.targetNamespace",
        ));
    }
    Ok(())
}

/// Checks a spec alone (what a translator produced, before it has a name): the LLM
/// translator uses it to judge an answer before accepting it. Besides the shape, an
/// answer must keep to the replica ceiling its prompt states (`limits.max_replicas`), so
/// that a model going past it is asked again (or the rules answer) rather than its
/// answer applied; the bound that holds for every translator is the policy's.
pub fn validate_spec(spec: &NetworkIntentSpec, limits: &Limits) -> Result<(), Invalid> {
    check_shape(spec, limits)?;
    if let Some(scaling) = &spec.scaling {
        let max = limits.max_replicas;
        for (field, value) in [
            ("spec.scaling.replicas", scaling.replicas),
            ("spec.scaling.minReplicas", scaling.min_replicas),
            ("spec.scaling.maxReplicas", scaling.max_replicas),
        ] {
            if let Some(n) = value.filter(|n| *n > max) {
                return Err(invalid(field, format!("{n} is above the limit of {max}")));
            }
        }
        if let Some(step) = scaling.scale_by.filter(|s| s.unsigned_abs() > max) {
            return Err(invalid(
                "spec.scaling.scaleBy",
                format!("{step} is outside ±1..={max}"),
            ));
        }
    }
    Ok(())
}

/// The shape of a spec: DNS names, markup, counts of things, quantities that parse.
fn check_shape(spec: &NetworkIntentSpec, limits: &Limits) -> Result<(), Invalid> {
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
        // The bounds are the policy's; a shape that cannot mean anything is refused here.
        if let (Some(lo), Some(hi)) = (scaling.min_replicas, scaling.max_replicas) {
            if lo > hi {
                return Err(invalid(
                    "spec.scaling",
                    format!("minReplicas {lo} is above maxReplicas {hi}"),
                ));
            }
        }
        if scaling.scale_by == Some(0) {
            return Err(invalid(
                "spec.scaling.scaleBy",
                "is 0, which changes nothing",
            ));
        }
    }
    if let Some(resources) = &spec.resources {
        for (field, value) in [
            ("spec.resources.cpu", &resources.cpu),
            ("spec.resources.memory", &resources.memory),
        ] {
            if let Some(q) = value {
                if let Err(QuantityError::Malformed(why)) = Quantity::parse(q) {
                    return Err(invalid(
                        field,
                        format!("{q:?} is not a Kubernetes quantity: it {why}"),
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
            "contains markup, control or invisible formatting characters (HTML/XML tags, template braces, backticks, bidi overrides, zero-width characters)",
        ));
    }
    Ok(())
}

/// True when text carries markup that has no place in an intent: tags, template
/// expressions, code fences, control characters, or invisible formatting characters
/// (bidi overrides, zero-width characters: what shows differently from what it is).
pub fn has_markup(text: &str) -> bool {
    text.chars().any(|c| {
        matches!(c, '<' | '>' | '`') || (c.is_control() && c != ' ') || is_invisible_format(c)
    }) || text.contains("{{")
        || text.contains("}}")
        || text.contains("${")
}

/// Unicode's format characters (general category Cf: bidi controls such as U+202E,
/// zero-width spaces and joiners, the byte-order mark, tags, ...), the line and paragraph
/// separators, and the fillers that render as nothing. Unicode 15.1; the ranges include
/// the unassigned code points between them, which no text needs either.
pub fn is_invisible_format(c: char) -> bool {
    const RANGES: &[(u32, u32)] = &[
        (0x00AD, 0x00AD),   // soft hyphen
        (0x034F, 0x034F),   // combining grapheme joiner
        (0x0600, 0x0605),   // Arabic number signs
        (0x061C, 0x061C),   // Arabic letter mark
        (0x06DD, 0x06DD),   // Arabic end of ayah
        (0x070F, 0x070F),   // Syriac abbreviation mark
        (0x0890, 0x0891),   // Arabic pound and piastre marks above
        (0x08E2, 0x08E2),   // Arabic disputed end of ayah
        (0x115F, 0x1160),   // Hangul fillers
        (0x17B4, 0x17B5),   // Khmer inherent vowels
        (0x180B, 0x180F),   // Mongolian variation selectors and vowel separator
        (0x200B, 0x200F),   // zero-width space, joiners, LRM, RLM
        (0x2028, 0x202E),   // line/paragraph separators, bidi embeddings and overrides
        (0x2060, 0x206F),   // word joiner, invisible operators, bidi isolates
        (0x3164, 0x3164),   // Hangul filler
        (0xFE00, 0xFE0F),   // variation selectors
        (0xFEFF, 0xFEFF),   // byte-order mark, zero-width no-break space
        (0xFFA0, 0xFFA0),   // halfwidth Hangul filler
        (0xFFF9, 0xFFFB),   // interlinear annotation
        (0x110BD, 0x110BD), // Kaithi number sign
        (0x110CD, 0x110CD), // Kaithi number sign above
        (0x13430, 0x1343F), // Egyptian hieroglyph format controls
        (0x1BCA0, 0x1BCA3), // shorthand format controls
        (0x1D173, 0x1D17A), // musical symbol format controls
        (0xE0000, 0xE0FFF), // tags and variation selectors supplement
    ];
    let c = u32::from(c);
    RANGES.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// Checks what a request says before any translator reads it: the text (not empty, not
/// too long, no markup) and a namespace the producer names, which must be exactly a
/// DNS-1123 label. A translator must never fold `Core5G` or `\u{212A}ube-system` into
/// a namespace: what the producer wrote is what is checked, and refused if it is not one.
pub fn check_request(request: &Request, limits: &Limits) -> Result<(), Invalid> {
    let (field, namespace) = match request {
        Request::Service(service) => {
            check_text(service.intent.trim(), limits).map_err(|e| invalid("intent", e.problem))?;
            ("target_namespace", service.target_namespace.as_deref())
        }
        Request::Event(event) => ("namespace", event.namespace.as_deref()),
    };
    match namespace {
        Some(ns) if !is_dns1123_label(ns) => Err(invalid(
            field,
            format!(
                "{ns:?} is not a DNS-1123 label (lower-case letters, digits and '-', at most 63); namespaces are never normalised"
            ),
        )),
        _ => Ok(()),
    }
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
        validate(&NetworkIntent::for_key("key-1", spec), &Limits::default())
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
    fn scaling_must_make_sense_but_its_bounds_are_the_policys() {
        let mut s = spec();
        s.scaling.as_mut().unwrap().replicas = Some(5000);
        check(s).expect("the replica bounds are the policy's");
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
    fn an_answer_keeps_to_the_replica_ceiling_its_prompt_states() {
        let mut s = spec();
        s.scaling.as_mut().unwrap().replicas = Some(20);
        let limits = Limits {
            max_replicas: 10,
            ..Limits::default()
        };
        let err = validate_spec(&s, &limits).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.scaling.replicas: 20 is above the limit of 10"
        );
        let mut s = spec();
        s.scaling = Some(Scaling {
            scale_by: Some(-11),
            ..Scaling::default()
        });
        assert_eq!(
            validate_spec(&s, &limits).unwrap_err().field,
            "spec.scaling.scaleBy"
        );
        s.scaling = Some(Scaling {
            scale_by: Some(-10),
            ..Scaling::default()
        });
        validate_spec(&s, &limits).unwrap();
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
            "Deploy amf in namespace core5g\u{202E}",
            "Deploy \u{202E}fma",
            "Deploy a\u{200B}mf",
            "Deploy amf\u{2066}",
            "Deploy amf\u{FEFF}",
            "Deploy amf\u{2028}in namespace kube-system",
            "Deploy amf\u{E0041}",
            "Deploy amf\u{AD}",
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
        for (cpu, memory, field) in [
            ("1e3", "1Gi", "spec.resources.cpu"),
            ("-1", "1Gi", "spec.resources.cpu"),
            ("1", "1E3", "spec.resources.memory"),
        ] {
            let mut s = spec();
            s.resources = Some(Resources {
                cpu: Some(cpu.into()),
                memory: Some(memory.into()),
            });
            assert_eq!(field_of(s), field, "{cpu} {memory}");
        }
        let mut s = spec();
        s.resources = Some(Resources {
            cpu: Some("100000".into()),
            memory: Some("999999Ti".into()),
        });
        check(s).expect("well formed; the bounds are the policy's");
    }

    #[test]
    fn every_format_character_is_markup() {
        for c in [
            '\u{200B}', '\u{200F}', '\u{202A}', '\u{202E}', '\u{2060}', '\u{2069}', '\u{FEFF}',
        ] {
            assert!(has_markup(&format!("a{c}b")), "U+{:04X}", u32::from(c));
        }
        for fine in [
            "Deploy AMF in namespace core5g",
            "Déployer l'AMF",
            "5G NR – eMBB",
            "a\u{00A0}b",
        ] {
            assert!(!has_markup(fine), "{fine:?}");
        }
    }

    #[test]
    fn requests_are_checked_before_translation_without_normalising() {
        use crate::request::{NetworkEvent, ServiceRequest};
        let limits = Limits::default();
        let service = |ns: &str| {
            let mut r = ServiceRequest::new("Deploy AMF in namespace core5g\n");
            r.target_namespace = Some(ns.to_string());
            Request::Service(r)
        };
        check_request(&service("core5g"), &limits).unwrap();
        for bad in [
            "\u{212A}ube-system",
            "Core5G",
            " core5g",
            "core5g\u{200B}",
            "",
        ] {
            let err = check_request(&service(bad), &limits).unwrap_err();
            assert_eq!(err.field, "target_namespace", "{bad:?}");
            assert!(err.problem.contains("never normalised"), "{err}");
        }
        let text = Request::Service(ServiceRequest::new("Deploy AMF\u{202E} in core5g"));
        assert_eq!(check_request(&text, &limits).unwrap_err().field, "intent");
        let event = |ns: &str| {
            Request::Event(NetworkEvent {
                event_id: None,
                event_type: "kpi_threshold_crossed".into(),
                source: None,
                nf_type: Some("amf".into()),
                namespace: Some(ns.into()),
                severity: None,
                metric: None,
                value: None,
                threshold: None,
                description: None,
                timestamp: None,
            })
        };
        check_request(&event("core5g"), &limits).unwrap();
        let err = check_request(&event("\u{212A}ube-system"), &limits).unwrap_err();
        assert_eq!(err.field, "namespace");
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
