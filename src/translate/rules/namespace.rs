//! The target namespace: read from the text ("in namespace core5g", "in the ran
//! namespace", or a bare "in core5g" when the name can be nothing else), from the
//! request's `target_namespace` field, or both when they agree.
//!
//! The namespace decides where a change lands, so unlike the other fields a disagreement
//! between text and field is refused, as are two namespaces in the text. The namespace
//! phrase is read first and claims its tokens, so that a name like "delete-me" or "upf"
//! is not read as anything else.

use super::refuse;
use super::text::{Role, Text};
use crate::translate::Untranslatable;
use crate::validate::is_dns1123_label;

/// Words that cannot be a namespace name, so "namespace with ..." or "in the same
/// namespace" takes none.
#[rustfmt::skip]
const NOT_A_NAME: &[&str] = &[
    "the", "a", "an", "and", "or", "with", "for", "in", "on", "to", "into", "of", "using",
    "at", "as", "by", "that", "which", "is", "it", "its", "please", "now", "this", "named",
    "called", "same", "own", "new", "existing", "other", "another", "different", "one",
    "each", "every", "all", "any", "some", "my", "our", "your", "their", "target", "right",
    "correct",
];

impl Text {
    /// "in namespace X", "namespace X", "namespace: X", "namespace named X", "ns X",
    /// "in the X namespace": every mention, with its tokens claimed.
    ///
    /// The name is the token as written, lower-cased in ASCII only: a Unicode case
    /// mapping would turn the Kelvin sign of "\u{212A}ube-system" into the 'k' of
    /// kube-system, while the name as written stays invalid (validation refuses it).
    pub(super) fn claim_namespaces(&mut self) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        for at in 0..self.len() {
            let Some(keyword) = self.free(at) else {
                continue;
            };
            if keyword != "namespace" && keyword != "ns" {
                continue;
            }
            let Some((value_at, value)) = self.namespace_value(at, keyword == "namespace") else {
                continue;
            };
            let value = self
                .free_raw(value_at)
                .map_or_else(|| value.to_string(), str::to_ascii_lowercase);
            if !found.contains(&value) {
                found.push(value);
            }
            self.claim(at, Role::Namespace);
            self.claim(value_at, Role::Namespace);
        }
        found
    }

    /// "in core5g": a name after a bare "in", read as the namespace only when it looks
    /// like a namespace and like nothing else (see [`is_bare_namespace`]); every mention,
    /// with its tokens claimed.
    ///
    /// Runs after the components are claimed. A mention that differs from another
    /// namespace in the text or from `target_namespace` is refused as a conflict rather
    /// than ignored: if it was a place ("in paris2"), the request is not one the rules
    /// can carry out either.
    pub(super) fn claim_bare_namespaces(&mut self) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        for at in 1..self.len() {
            if !matches!(self.free(at - 1), Some("in" | "into"))
                || self
                    .free_before(at, 2)
                    .is_some_and(|w| w.starts_with("scal"))
            {
                continue;
            }
            let Some(name) = self.free_raw(at).filter(|raw| is_bare_namespace(raw)) else {
                continue;
            };
            let ends_phrase = self.ends_clause(at)
                || at + 1 == self.len()
                || self
                    .free(at + 1)
                    .is_some_and(|w| BARE_FOLLOWERS.contains(&w));
            if !ends_phrase {
                // "in core5g cluster", "in edge01 mode": the name is of something else.
                continue;
            }
            let name = name.to_string();
            if !found.contains(&name) {
                found.push(name);
            }
            self.claim(at - 1, Role::Namespace);
            self.claim(at, Role::Namespace);
        }
        found
    }

    /// The free token naming the namespace for the keyword at `keyword`, as its position
    /// and its lower-cased text.
    fn namespace_value(&self, keyword: usize, may_precede: bool) -> Option<(usize, &str)> {
        let name_at = |i: usize| {
            self.free(i)
                .filter(|w| !NOT_A_NAME.contains(w))
                .map(|w| (i, w))
        };
        let mut after = keyword + 1;
        if matches!(self.free(after), Some("named" | "called")) {
            after += 1;
        }
        if let Some(name) = name_at(after) {
            return Some(name);
        }
        // "in the core5g namespace"; not for "ns", which also follows numbers ("5 ns").
        let before = keyword.checked_sub(1)?;
        let preposition = self.free_before(keyword, 2)?;
        if !may_precede || !["the", "in", "into", "to", "on"].contains(&preposition) {
            return None;
        }
        name_at(before)
    }
}

/// Words that may follow a bare "in <name>" and leave it a namespace: the phrase ends
/// there. Any other word ("in core5g cluster") makes the name one of something else.
#[rustfmt::skip]
const BARE_FOLLOWERS: &[&str] = &[
    "for", "with", "and", "please", "now", "immediately", "asap", "urgently",
];

/// Parts of a name that make it a place, an environment, a release, a slice or a mode
/// rather than a namespace: "eu-west-1", "site12", "prod-2", "release-17", "ipv6-only".
#[rustfmt::skip]
const NOT_NAMESPACE_PARTS: &[&str] = &[
    // places and infrastructure
    "zone", "region", "site", "cluster", "rack", "node", "nodes", "cell", "sector", "band",
    "datacenter", "host", "server", "pool", "tenant", "cloud", "aws", "gcp", "azure",
    "east", "west", "north", "south", "central", "emea", "apac", "amer", "latam",
    "europe", "asia", "africa", "america",
    // environments
    "prod", "production", "staging", "stage", "dev", "development", "test", "testing",
    "preprod", "sandbox", "demo", "perf",
    // releases, plans and time
    "release", "version", "build", "sprint", "phase", "wave", "step", "batch", "round",
    "tier", "level", "option", "plan", "profile", "flavor", "flavour", "week", "weeks",
    "hour", "hours", "minute", "minutes", "days", "month", "months", "year", "quarter",
    "january", "february", "march", "april", "june", "july", "august", "september",
    "october", "november", "december",
    // slices and modes
    "embb", "urllc", "mmtc", "slice", "mode", "only", "dual", "stack", "single", "multi",
    "active", "standby", "ipv", "arm",
];

/// A bare name after "in" is read as a namespace only when it looks like an identifier
/// and like nothing else: a DNS-1123 label as written (lower-case, so "in Frankfurt" is
/// not one), starting with a letter and holding a digit (so plain words like "in
/// parallel" or "in production" are not), with a run of at least four letters (so codes
/// like "n78", "az1", "k8s", "fra3" are not), and no part that names a place, an
/// environment, a release, a slice or a mode.
fn is_bare_namespace(raw: &str) -> bool {
    let parts: Vec<&str> = raw
        .split(|c: char| !c.is_ascii_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    is_dns1123_label(raw)
        && raw.starts_with(|c: char| c.is_ascii_lowercase())
        && raw.contains(|c: char| c.is_ascii_digit())
        && parts.iter().any(|p| p.len() >= 4)
        && !parts.iter().any(|p| NOT_NAMESPACE_PARTS.contains(p))
}

/// The request's `target_namespace` as the rules read it: trimmed and lower-cased in
/// ASCII only (see [`Text::claim_namespaces`]), `None` when empty.
pub fn field_namespace(field: Option<&str>) -> Option<String> {
    field
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_ascii_lowercase)
}

/// The namespace the text and the field agree on, if either names one. Two namespaces
/// in the text, or a text and a field that disagree, are refused: the namespace
/// decides where a change lands. Part of the screen.
pub(super) fn stated_namespace(
    in_text: &[String],
    field: Option<&str>,
) -> Result<Option<String>, Untranslatable> {
    let field = field_namespace(field);
    match (in_text, field) {
        ([a, b, ..], _) => refuse(format!("the text names two namespaces, '{a}' and '{b}'")),
        ([text], Some(field)) if *text != field => refuse(format!(
            "namespace conflict: the text says '{text}' but target_namespace is '{field}'"
        )),
        ([text], _) => Ok(Some(text.clone())),
        ([], field) => Ok(field),
    }
}

/// The namespace from the text's mentions and the request's field.
pub(super) fn namespace(in_text: &[String], field: Option<&str>) -> Result<String, Untranslatable> {
    stated_namespace(in_text, field)?.map_or_else(
        || refuse("no target namespace: say 'in namespace X' or set target_namespace"),
        Ok,
    )
}

#[cfg(test)]
mod tests {
    use super::super::expect::*;
    use crate::intent::Component::*;
    use crate::intent::{Priority, SliceType};

    #[test]
    fn namespace_phrasings() {
        for text in [
            "Deploy AMF in namespace core5g",
            "Deploy AMF namespace core5g",
            "Deploy AMF in the core5g namespace",
            "Deploy AMF ns core5g",
            "Deploy AMF, namespace: core5g",
            "Deploy AMF namespace=core5g",
            "Deploy AMF into namespace Core5G.",
            "Deploy AMF in a namespace named core5g",
            "Deploy AMF in namespace core5g, in the core5g namespace",
        ] {
            check(text, deploy(&[Amf], "core5g"));
        }
    }

    #[test]
    fn namespace_from_the_field() {
        let mut req = request("Deploy AMF");
        req.target_namespace = Some(" Core5G ".into());
        check_request(req, deploy(&[Amf], "core5g"));
        let mut req = request("Deploy AMF in namespace core5g");
        req.target_namespace = Some("core5g".into());
        check_request(req, deploy(&[Amf], "core5g"));
    }

    #[test]
    fn missing_namespace_is_refused() {
        assert_refused(
            "Deploy AMF",
            &["no target namespace", "in namespace X", "target_namespace"],
        );
        let mut req = request("Deploy AMF");
        req.target_namespace = Some("  ".into());
        assert!(translate(req).is_err());
    }

    #[test]
    fn conflicting_namespaces_are_refused() {
        let mut req = request("Deploy AMF in namespace core5g");
        req.target_namespace = Some("edge".into());
        let reason = translate(req).expect_err("conflict").reason;
        assert!(
            reason.contains("core5g") && reason.contains("edge"),
            "{reason}"
        );
        assert_refused(
            "Deploy AMF in namespace core5g and SMF in namespace edge",
            &["two namespaces", "core5g", "edge"],
        );
    }

    #[test]
    fn a_bare_in_names_the_namespace_when_it_can_be_nothing_else() {
        check(
            "Deploy AMF with 3 replicas for the eMBB slice in core5g",
            deploy(&[Amf], "core5g").replicas(3).slice(SliceType::Embb),
        );
        for text in [
            "Deploy AMF in core5g",
            "Deploy AMF in core5g.",
            "Deploy AMF in core5g, in namespace core5g",
        ] {
            check(text, deploy(&[Amf], "core5g"));
        }
        check(
            "Deploy AMF in core5g with 3 replicas",
            deploy(&[Amf], "core5g").replicas(3),
        );
        let spec = check(
            "Deploy AMF in open5gs-core for production",
            deploy(&[Amf], "open5gs-core"),
        );
        assert_eq!(spec.target_environment.as_deref(), Some("production"));
        check(
            "Deploy AMF in core5g, urgently",
            deploy(&[Amf], "core5g").priority(Priority::Critical),
        );
        let mut req = request("Deploy AMF in core5g");
        req.target_namespace = Some("core5g".into());
        check_request(req, deploy(&[Amf], "core5g"));
    }

    #[test]
    fn a_bare_in_that_may_name_something_else_names_no_namespace() {
        for text in [
            // plain words, environments, proper nouns, upper case
            "Deploy AMF in production",
            "Deploy AMF in parallel",
            "Deploy AMF in Frankfurt",
            "Deploy AMF in Core5G",
            "Deploy AMF in high-availability mode",
            // places, codes, releases, technologies
            "Deploy AMF in eu-west-1",
            "Deploy AMF in fra3",
            "Deploy the O-DU in n78",
            "Deploy AMF in site12",
            "Deploy AMF in berlin-zone2",
            "Deploy AMF in prod-2",
            "Deploy AMF in release-17",
            "Deploy AMF in ipv6-only mode",
            "Deploy AMF in 5g",
            "Deploy AMF in 5gc",
            "Deploy AMF in june2025",
            "Deploy UPF in embb2",
            // the name is followed by what it names
            "Deploy AMF in core5g cluster",
            "Deploy AMF in edge01 datacenter",
        ] {
            assert_refused(text, &["no target namespace"]);
        }
        // "scale in" is a direction, not a namespace phrase
        assert_refused("Scale in core5g the AMF by 2", &["no target namespace"]);
    }

    #[test]
    fn a_bare_in_that_disagrees_is_a_conflict() {
        assert_refused(
            "Deploy AMF in core5g, in namespace edge5g",
            &["two namespaces", "core5g", "edge5g"],
        );
        assert_refused(
            "Deploy SMF in core5g and UPF in edge5g",
            &["two namespaces", "core5g", "edge5g"],
        );
        let mut req = request("Deploy AMF in core5g");
        req.target_namespace = Some("edge".into());
        let reason = translate(req).expect_err("conflict").reason;
        assert!(reason.contains("namespace conflict"), "{reason}");
    }

    #[test]
    fn the_namespace_name_is_not_read_as_anything_else() {
        check(
            "Deploy AMF in namespace delete-me",
            deploy(&[Amf], "delete-me"),
        );
        check("Deploy SMF in the upf namespace", deploy(&[Smf], "upf"));
        let spec = check(
            "Deploy AMF in namespace production",
            deploy(&[Amf], "production"),
        );
        assert_eq!(spec.target_environment, None);
        check("Deploy AMF in namespace urgent", deploy(&[Amf], "urgent"));
        // "in the same namespace" names none
        assert_refused("Deploy AMF in the same namespace", &["no target namespace"]);
    }
}
