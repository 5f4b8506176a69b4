//! The optional qualifiers of a service request: priority, environment and network slice.
//!
//! Each is read from its structured field when the request has one (the field wins over
//! the text), otherwise from the text, and only when clearly phrased: "production-grade"
//! names no environment and "test traffic" no test environment. Two different values in
//! the text are refused rather than one picked.

use super::refuse;
use super::text::{free_word, Word};
use crate::intent::{Priority, SliceType};
use crate::translate::Untranslatable;

/// The structured field, when present, wins over the text (as for the environment); only
/// the namespace refuses a disagreement, since it decides where the change lands.
pub(super) fn priority(field: Option<&str>, words: &[Word]) -> Result<Priority, Untranslatable> {
    match field.map(str::trim).filter(|f| !f.is_empty()) {
        Some(value) => Priority::parse(value).ok_or_else(|| {
            Untranslatable::new(format!(
                "priority '{value}' is not one of low, medium, high, critical"
            ))
        }),
        None => Ok(priority_in_text(words)?.unwrap_or(Priority::Medium)),
    }
}

/// "urgent", "critical", "emergency", "asap", "high priority", "priority: low", ...
fn priority_in_text(words: &[Word]) -> Result<Option<Priority>, Untranslatable> {
    let mut found: Vec<(Priority, String)> = Vec::new();
    for (i, word) in words.iter().enumerate().filter(|(_, w)| w.is_free()) {
        let reading = match word.text {
            "urgent" | "urgently" | "critical" | "emergency" | "asap" => {
                Some((Priority::Critical, word.text.to_string()))
            }
            "priority" => {
                let before = free_word(words, i.checked_sub(1));
                let after = free_word(words, Some(i + 1));
                before
                    .and_then(|w| Priority::parse(w).map(|p| (p, format!("{w} priority"))))
                    .or_else(|| {
                        after.and_then(|w| Priority::parse(w).map(|p| (p, format!("priority {w}"))))
                    })
            }
            _ => None,
        };
        if let Some((p, phrase)) = reading {
            if let Some((_, other)) = found.iter().find(|(q, _)| *q != p) {
                return refuse(format!(
                    "conflicting priorities in the text: '{other}' and '{phrase}'"
                ));
            }
            found.push((p, phrase));
        }
    }
    Ok(found.first().map(|(p, _)| *p))
}

pub(super) fn environment(
    field: Option<&str>,
    words: &[Word],
) -> Result<Option<String>, Untranslatable> {
    match field.map(str::trim).filter(|f| !f.is_empty()) {
        Some(value) => Ok(Some(value.to_ascii_lowercase())),
        None => Ok(environment_in_text(words)?.map(str::to_string)),
    }
}

/// "for production", "in staging", "production environment", "in the dev environment":
/// only clearly phrased, since "production-grade" or "test traffic" name no environment.
fn environment_in_text(words: &[Word]) -> Result<Option<&'static str>, Untranslatable> {
    const PREPOSITIONS: &[&str] = &["in", "for", "to", "into"];
    let mut found: Option<&'static str> = None;
    for (i, word) in words.iter().enumerate().filter(|(_, w)| w.is_free()) {
        let canonical = match word.text {
            "production" | "prod" => "production",
            "staging" => "staging",
            "development" | "dev" => "development",
            "test" => "test",
            _ => continue,
        };
        let before = free_word(words, i.checked_sub(1));
        let before_the = free_word(words, i.checked_sub(2));
        let after = free_word(words, Some(i + 1));
        let phrased = before.is_some_and(|w| PREPOSITIONS.contains(&w) || w == "environment")
            || (before == Some("the") && before_the.is_some_and(|w| PREPOSITIONS.contains(&w)))
            || matches!(after, Some("environment" | "env"));
        if !phrased {
            continue;
        }
        match found {
            Some(other) if other != canonical => {
                return refuse(format!(
                    "conflicting environments in the text: '{other}' and '{canonical}'"
                ))
            }
            _ => found = Some(canonical),
        }
    }
    Ok(found)
}

/// "eMBB", "URLLC" or "mMTC" anywhere in the free text.
pub(super) fn slice(words: &[Word]) -> Result<Option<SliceType>, Untranslatable> {
    let mut found: Option<(SliceType, &str)> = None;
    for word in words.iter().filter(|w| w.is_free()) {
        let slice = match word.text {
            "embb" => SliceType::Embb,
            "urllc" => SliceType::Urllc,
            "mmtc" => SliceType::Mmtc,
            _ => continue,
        };
        match found {
            Some((other, name)) if other != slice => {
                return refuse(format!(
                    "two slice types in the text: '{name}' and '{}'",
                    word.text
                ))
            }
            _ => found = Some((slice, word.text)),
        }
    }
    Ok(found.map(|(s, _)| s))
}

#[cfg(test)]
mod tests {
    use super::super::expect::*;
    use crate::intent::Component::*;
    use crate::intent::{Priority, SliceType};

    #[test]
    fn priority_from_the_field() {
        let mut req = request("Deploy AMF in namespace core5g, low priority");
        req.priority = Some("High".into());
        check_request(req, deploy(&[Amf], "core5g").priority(Priority::High));
        let mut req = request("Deploy AMF in namespace core5g");
        req.priority = Some("whenever".into());
        let reason = translate(req).expect_err("bad priority").reason;
        assert!(reason.contains("'whenever'"), "{reason}");
    }

    #[test]
    fn priority_from_the_text() {
        let cases: &[(&str, Priority)] = &[
            ("Urgent: deploy AMF in namespace core5g", Priority::Critical),
            ("Deploy AMF in namespace core5g ASAP", Priority::Critical),
            (
                "Emergency: deploy AMF in namespace core5g",
                Priority::Critical,
            ),
            (
                "Deploy AMF in namespace core5g, critical",
                Priority::Critical,
            ),
            (
                "Deploy AMF in namespace core5g, high priority",
                Priority::High,
            ),
            (
                "High-priority: deploy AMF in namespace core5g",
                Priority::High,
            ),
            (
                "Deploy AMF in namespace core5g with priority: high",
                Priority::High,
            ),
            (
                "Deploy AMF in namespace core5g, low priority",
                Priority::Low,
            ),
            (
                "low-priority deploy of AMF in namespace core5g",
                Priority::Low,
            ),
            ("Deploy AMF in namespace core5g", Priority::Medium),
        ];
        for (text, priority) in cases {
            check(text, deploy(&[Amf], "core5g").priority(*priority));
        }
        assert_refused(
            "Urgent: deploy AMF in namespace core5g, low priority",
            &["conflicting priorities", "urgent", "low priority"],
        );
    }

    #[test]
    fn environment_only_when_clearly_phrased() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "Deploy AMF in namespace core5g for production",
                Some("production"),
            ),
            (
                "Deploy AMF in production, namespace core5g",
                Some("production"),
            ),
            (
                "Deploy AMF in the production environment, ns core5g",
                Some("production"),
            ),
            ("Deploy AMF in staging, namespace core5g", Some("staging")),
            (
                "Deploy AMF to the dev environment, namespace core5g",
                Some("development"),
            ),
            (
                "Deploy AMF in namespace core5g in development",
                Some("development"),
            ),
            (
                "Deploy AMF in the test environment, namespace core5g",
                Some("test"),
            ),
            (
                "Deploy AMF; namespace: core5g; environment: staging",
                Some("staging"),
            ),
            ("Deploy production-grade AMF in namespace core5g", None),
            ("Deploy AMF in namespace core5g to carry test traffic", None),
        ];
        for (text, env) in cases {
            let spec = check(text, deploy(&[Amf], "core5g"));
            assert_eq!(spec.target_environment.as_deref(), *env, "{text}");
        }
        let mut req = request("Deploy AMF in namespace core5g for production");
        req.target_environment = Some("Staging".into());
        let spec = check_request(req, deploy(&[Amf], "core5g"));
        assert_eq!(spec.target_environment.as_deref(), Some("staging"));
        assert_refused(
            "Deploy AMF in staging and in production, namespace core5g",
            &["conflicting environments"],
        );
    }

    #[test]
    fn slice_types() {
        check(
            "Deploy UPF for the eMBB slice in namespace core5g",
            deploy(&[Upf], "core5g").slice(SliceType::Embb),
        );
        check(
            "Deploy a URLLC UPF in namespace core5g",
            deploy(&[Upf], "core5g").slice(SliceType::Urllc),
        );
        check(
            "Scale SMF to 4 for mMTC in namespace core5g",
            scale(&[Smf], "core5g").replicas(4).slice(SliceType::Mmtc),
        );
        check(
            "Deploy UPF for embbx in namespace core5g",
            deploy(&[Upf], "core5g"),
        );
        assert_refused(
            "Deploy UPF for eMBB and URLLC in namespace core5g",
            &["two slice types", "embb", "urllc"],
        );
    }
}
