//! Which namespaces an intent may land in: an optional allowlist, a denylist, and the
//! service's own namespace, which is always denied.
//!
//! Patterns are exact names or a prefix followed by one trailing `*` (`kube-*`), nothing
//! fancier, so that what a pattern covers is obvious from reading it. The denylist is
//! checked first: a namespace both allowed and denied is denied.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The denylist when none is configured.
pub const DEFAULT_DENIED: [&str; 3] = ["kube-*", "default", "openshift-*"];

/// An exact namespace name, or a prefix ending in `*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Pattern(String);

impl Pattern {
    /// Parses a pattern: lower-case letters, digits and '-', optionally ending in one `*`
    /// (`*` alone matches every namespace).
    pub fn parse(s: &str) -> Result<Self, String> {
        let body = s.strip_suffix('*').unwrap_or(s);
        let valid = s.len() <= 63
            && (body.is_empty() && s == "*"
                || !body.is_empty()
                    && body
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        if valid {
            Ok(Self(s.to_string()))
        } else {
            Err(format!(
                "{s:?} is not a namespace pattern (a name of lower-case letters, digits and '-', optionally ending in '*')"
            ))
        }
    }

    pub fn matches(&self, namespace: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => namespace.starts_with(prefix),
            None => namespace == self.0,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Pattern {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<Pattern> for String {
    fn from(p: Pattern) -> String {
        p.0
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// The namespace rule in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespaces {
    /// When set, only namespaces matching one of these.
    pub allowed: Option<Vec<Pattern>>,
    pub denied: Vec<Pattern>,
    /// The service's own namespace (`POD_NAMESPACE`): never a target.
    pub own: Option<String>,
}

impl Default for Namespaces {
    fn default() -> Self {
        Self {
            allowed: None,
            denied: default_denied(),
            own: None,
        }
    }
}

pub fn default_denied() -> Vec<Pattern> {
    DEFAULT_DENIED
        .iter()
        .map(|p| Pattern(p.to_string()))
        .collect()
}

impl Namespaces {
    /// Why `namespace` is denied, or `None` when it is allowed.
    pub fn denial(&self, namespace: &str) -> Option<String> {
        if self.own.as_deref() == Some(namespace) {
            return Some("the service's own namespace, POD_NAMESPACE".to_string());
        }
        if let Some(p) = self.denied.iter().find(|p| p.matches(namespace)) {
            return Some(format!("denied namespace pattern {p}"));
        }
        match &self.allowed {
            Some(allowed) if !allowed.iter().any(|p| p.matches(namespace)) => {
                Some(format!("not in the allowed namespaces {}", list(allowed)))
            }
            _ => None,
        }
    }
}

/// Patterns as the user would write them: `"a", "b-*"`.
pub fn list(patterns: &[Pattern]) -> String {
    if patterns.is_empty() {
        return "(none)".to_string();
    }
    patterns
        .iter()
        .map(Pattern::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(list: &[&str]) -> Vec<Pattern> {
        list.iter().map(|p| Pattern::parse(p).unwrap()).collect()
    }

    #[test]
    fn patterns_are_exact_names_or_trailing_star_prefixes() {
        let p = Pattern::parse("kube-*").unwrap();
        assert!(p.matches("kube-system") && p.matches("kube-") && !p.matches("kube"));
        let p = Pattern::parse("default").unwrap();
        assert!(p.matches("default") && !p.matches("default2") && !p.matches("xdefault"));
        assert!(Pattern::parse("*").unwrap().matches("anything"));
        for bad in [
            "",
            "Kube-*",
            "*-system",
            "ku*be",
            "kube-**",
            "a b",
            "\u{212A}ube-*",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_defaults_deny_system_namespaces_and_allow_the_rest() {
        let ns = Namespaces::default();
        for denied in [
            "kube-system",
            "kube-public",
            "default",
            "openshift-monitoring",
        ] {
            let why = ns.denial(denied).expect(denied);
            assert!(why.starts_with("denied namespace pattern"), "{why}");
        }
        assert_eq!(
            ns.denial("kube-system").unwrap(),
            "denied namespace pattern \"kube-*\""
        );
        for allowed in ["core5g", "ran", "defaults", "kubeflow"] {
            assert_eq!(ns.denial(allowed), None, "{allowed}");
        }
    }

    #[test]
    fn the_own_namespace_is_always_denied() {
        let ns = Namespaces {
            allowed: Some(patterns(&["*"])),
            denied: vec![],
            own: Some("nephoran-system".into()),
        };
        assert!(ns
            .denial("nephoran-system")
            .unwrap()
            .contains("POD_NAMESPACE"));
        assert_eq!(ns.denial("core5g"), None);
    }

    #[test]
    fn an_allowlist_admits_only_its_namespaces_and_the_denylist_wins() {
        let ns = Namespaces {
            allowed: Some(patterns(&["core5g", "ran-*", "kube-system"])),
            denied: default_denied(),
            own: None,
        };
        assert_eq!(ns.denial("core5g"), None);
        assert_eq!(ns.denial("ran-edge1"), None);
        assert_eq!(
            ns.denial("other").unwrap(),
            "not in the allowed namespaces \"core5g\", \"ran-*\", \"kube-system\""
        );
        assert!(ns.denial("kube-system").unwrap().contains("denied"));
        let nothing = Namespaces {
            allowed: Some(vec![]),
            ..Namespaces::default()
        };
        assert!(nothing.denial("core5g").unwrap().contains("(none)"));
    }
}
