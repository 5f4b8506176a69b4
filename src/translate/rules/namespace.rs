//! The target namespace: read from the text ("in namespace core5g", "in the ran
//! namespace"), from the request's `target_namespace` field, or both when they agree.
//!
//! The namespace decides where a change lands, so unlike the other fields a disagreement
//! between text and field is refused, as are two namespaces in the text. The namespace
//! phrase is read first and claims its tokens, so that a name like "delete-me" or "upf"
//! is not read as anything else.

use super::refuse;
use super::text::{Role, Text};
use crate::translate::Untranslatable;

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
    /// "in the X namespace": every mention, lower-cased, with its tokens claimed.
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
            if !found.iter().any(|f| f == value) {
                found.push(value.to_string());
            }
            self.claim(at, Role::Namespace);
            self.claim(value_at, Role::Namespace);
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

/// The namespace from the text's mentions and the request's field.
pub(super) fn namespace(
    in_text: Vec<String>,
    field: Option<&str>,
) -> Result<String, Untranslatable> {
    let field = field
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_lowercase);
    let mut in_text = in_text.into_iter();
    match (in_text.next(), in_text.next(), field) {
        (Some(a), Some(b), _) => refuse(format!("the text names two namespaces, '{a}' and '{b}'")),
        (Some(text), None, Some(field)) if text != field => refuse(format!(
            "namespace conflict: the text says '{text}' but target_namespace is '{field}'"
        )),
        (Some(text), None, _) => Ok(text),
        (None, _, Some(field)) => Ok(field),
        (None, _, None) => {
            refuse("no target namespace: say 'in namespace X' or set target_namespace")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::expect::*;
    use crate::intent::Component::*;

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
