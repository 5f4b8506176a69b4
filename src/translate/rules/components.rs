//! Which network functions a request names: the alias table and the component scan.
//!
//! Only the allowlisted [`Component`]s can be targeted. Names of other network functions
//! (MME, the non-RT RIC) and names that could mean more than one component (a bare "CU")
//! are recognised too, so that they are claimed as whole names instead of falling back to
//! a shorter alias ("ric", "du"), and so that a refusal can say what was asked for.

use std::sync::LazyLock;

use super::refuse;
use super::text::{Role, Text, Word, WordMap};
use crate::intent::Component;
use crate::translate::Untranslatable;

#[derive(Debug, Clone, Copy)]
enum Meaning {
    Is(Component),
    /// A network function the service does not manage; only mentioned in refusals.
    Unsupported(&'static str),
    /// A name that could mean more than one component, and what to say instead.
    Ambiguous(&'static str, &'static str),
}

use Meaning::{Ambiguous, Is, Unsupported};

const CU_HINT: &str = "say o-cu-cp (control plane) or o-cu-up (user plane)";
/// Spelled out, the near-RT and non-RT RIC share a name; "RIC" alone is the near-RT one,
/// the usual shorthand, but the spelled-out name is only read with its qualifier.
const RIC_HINT: &str = "say near-RT RIC (near-rt-ric) or non-RT RIC";

/// Names as they may be written. A space may be any word break; a hyphen must be one
/// hyphenated token ("cu-up"), because "scale the cu up" is a direction, not the CU-UP.
const ALIASES: &[(&str, Meaning)] = &[
    ("amf", Is(Component::Amf)),
    ("smf", Is(Component::Smf)),
    ("upf", Is(Component::Upf)),
    ("nrf", Is(Component::Nrf)),
    ("udm", Is(Component::Udm)),
    ("udr", Is(Component::Udr)),
    ("pcf", Is(Component::Pcf)),
    ("ausf", Is(Component::Ausf)),
    ("nssf", Is(Component::Nssf)),
    ("nef", Is(Component::Nef)),
    ("near rt ric", Is(Component::NearRtRic)),
    ("near real time ric", Is(Component::NearRtRic)),
    ("nearrt ric", Is(Component::NearRtRic)),
    ("nearrtric", Is(Component::NearRtRic)),
    ("ric", Is(Component::NearRtRic)),
    ("xapp", Is(Component::Xapp)),
    // The xApps a RIC hosts are xApps, not the RIC as well.
    ("ric xapp", Is(Component::Xapp)),
    ("near rt ric xapp", Is(Component::Xapp)),
    ("o-du", Is(Component::ODu)),
    ("odu", Is(Component::ODu)),
    ("du", Is(Component::ODu)),
    ("distributed unit", Is(Component::ODu)),
    ("o-cu-cp", Is(Component::OCuCp)),
    ("cu-cp", Is(Component::OCuCp)),
    ("cucp", Is(Component::OCuCp)),
    ("ocucp", Is(Component::OCuCp)),
    ("o-cu-up", Is(Component::OCuUp)),
    ("cu-up", Is(Component::OCuUp)),
    ("cuup", Is(Component::OCuUp)),
    ("ocuup", Is(Component::OCuUp)),
    // The names the specifications spell out (3GPP TS 23.501, O-RAN WG1).
    (
        "access and mobility management function",
        Is(Component::Amf),
    ),
    ("session management function", Is(Component::Smf)),
    ("user plane function", Is(Component::Upf)),
    ("network repository function", Is(Component::Nrf)),
    ("unified data management", Is(Component::Udm)),
    ("unified data repository", Is(Component::Udr)),
    ("policy control function", Is(Component::Pcf)),
    ("authentication server function", Is(Component::Ausf)),
    ("network slice selection function", Is(Component::Nssf)),
    ("network exposure function", Is(Component::Nef)),
    (
        "near rt ran intelligent controller",
        Is(Component::NearRtRic),
    ),
    (
        "near real time ran intelligent controller",
        Is(Component::NearRtRic),
    ),
    ("central unit control plane", Is(Component::OCuCp)),
    ("cu control plane", Is(Component::OCuCp)),
    ("central unit user plane", Is(Component::OCuUp)),
    ("cu user plane", Is(Component::OCuUp)),
    // Whole names that must not fall back to a shorter alias ("ric", "du"), or that
    // name a family rather than one component.
    ("non rt ric", Unsupported("non-RT RIC")),
    ("nonrt ric", Unsupported("non-RT RIC")),
    ("non real time ric", Unsupported("non-RT RIC")),
    (
        "non rt ran intelligent controller",
        Unsupported("non-RT RIC"),
    ),
    (
        "non real time ran intelligent controller",
        Unsupported("non-RT RIC"),
    ),
    (
        "ran intelligent controller",
        Ambiguous("RAN intelligent controller", RIC_HINT),
    ),
    ("o-cu", Ambiguous("o-cu", CU_HINT)),
    ("cu", Ambiguous("cu", CU_HINT)),
    ("central unit", Ambiguous("central unit", CU_HINT)),
    ("o-ru", Unsupported("o-ru")),
    ("ru", Unsupported("ru")),
    ("mme", Unsupported("mme")),
    ("hss", Unsupported("hss")),
    ("sgw", Unsupported("sgw")),
    ("pgw", Unsupported("pgw")),
    ("nwdaf", Unsupported("nwdaf")),
    ("chf", Unsupported("chf")),
    ("scp", Unsupported("scp")),
    ("sepp", Unsupported("sepp")),
    ("bsf", Unsupported("bsf")),
    ("smsf", Unsupported("smsf")),
    ("smo", Unsupported("smo")),
    ("gnb", Unsupported("gnb")),
    ("n3iwf", Unsupported("n3iwf")),
    ("udsf", Unsupported("udsf")),
    ("lmf", Unsupported("lmf")),
    ("nssaaf", Unsupported("nssaaf")),
    ("pcrf", Unsupported("pcrf")),
    ("etcd", Unsupported("etcd")),
];

/// One entry of [`ALIASES`], split into words.
#[derive(Debug)]
struct Alias {
    words: Vec<&'static str>,
    /// Written with hyphens, so all its words must be one token.
    one_token: bool,
    meaning: Meaning,
}

impl Alias {
    fn new(name: &'static str, meaning: Meaning) -> Self {
        Self {
            words: name.split([' ', '-']).collect(),
            one_token: name.contains('-'),
            meaning,
        }
    }

    /// True when the free words starting at `at` are this name.
    fn written_at(&self, words: &[Word], at: usize) -> bool {
        let Some(written) = words.get(at..at + self.words.len()) else {
            return false;
        };
        let last = self.words.len() - 1;
        let same_words = written
            .iter()
            .zip(&self.words)
            .enumerate()
            .all(|(k, (w, part))| {
                // A plural ("two UPFs") names the same component.
                let plural = k == last && w.text.strip_suffix('s') == Some(*part);
                w.is_free() && (w.text == *part || plural)
            });
        same_words && (!self.one_token || written.iter().all(|w| w.token == written[0].token))
    }
}

/// [`ALIASES`] by first word, so each word of a text is looked up rather than compared
/// with every alias.
static BY_FIRST_WORD: LazyLock<WordMap<Vec<Alias>>> = LazyLock::new(|| {
    let mut index = WordMap::<Vec<Alias>>::default();
    for &(name, meaning) in ALIASES {
        let alias = Alias::new(name, meaning);
        index.entry(alias.words[0]).or_default().push(alias);
    }
    index
});

/// The longest alias written at `at`, as (number of words, meaning).
fn longest_alias_at(words: &[Word], at: usize) -> Option<(usize, Meaning)> {
    let word = words.get(at).filter(|w| w.is_free())?;
    // A one-word plural ("upfs") is found under its singular.
    let singular = word.text.strip_suffix('s');
    let exact = BY_FIRST_WORD.get(word.text);
    let plural = singular.and_then(|s| BY_FIRST_WORD.get(s));
    exact
        .into_iter()
        .chain(plural)
        .flatten()
        .filter(|alias| alias.written_at(words, at))
        .max_by_key(|alias| alias.words.len())
        .map(|alias| (alias.words.len(), alias.meaning))
}

/// What the component scan found; turned into a result once earlier errors are reported.
#[derive(Debug, Default)]
pub(super) struct ComponentScan {
    found: Vec<Component>,
    /// Each token that names a component, with the component.
    tokens: Vec<(usize, Component)>,
    unsupported: Vec<&'static str>,
    /// Each ambiguous name, with what to say instead.
    ambiguous: Vec<(&'static str, &'static str)>,
}

impl ComponentScan {
    /// The components named, in order of appearance.
    pub(super) fn found(&self) -> &[Component] {
        &self.found
    }

    /// Each token that names a component, with the component.
    pub(super) fn tokens(&self) -> &[(usize, Component)] {
        &self.tokens
    }

    /// What no translator may pass: an ambiguous name, or a network function this
    /// service does not manage, alone or beside known ones.
    pub(super) fn screen(&self) -> Result<(), Untranslatable> {
        if !self.ambiguous.is_empty() || !self.unsupported.is_empty() {
            return self.refusal();
        }
        Ok(())
    }

    pub(super) fn into_result(self) -> Result<Vec<Component>, Untranslatable> {
        self.refusal()?;
        Ok(self.found)
    }

    fn refusal(&self) -> Result<(), Untranslatable> {
        if let Some((name, say)) = self.ambiguous.first() {
            return refuse(format!("'{name}' is ambiguous: {say}"));
        }
        let known: Vec<&str> = Component::ALL.iter().map(|c| c.as_str()).collect();
        let known = known.join(", ");
        if self.found.is_empty() {
            let mentioned = if self.unsupported.is_empty() {
                String::new()
            } else {
                format!(" ({} is not supported)", self.unsupported.join(", "))
            };
            return refuse(format!(
                "no known network function named{mentioned}; known: {known}"
            ));
        }
        // Doing the supported part alone would report success for a request that was
        // only half carried out.
        if !self.unsupported.is_empty() {
            return refuse(format!(
                "the text also names {}, which this service does not manage; known: {known}",
                self.unsupported.join(", ")
            ));
        }
        Ok(())
    }
}

/// Words that may stand before "function" without naming one ("the network function",
/// "each function").
#[rustfmt::skip]
const NOT_A_FUNCTION_NAME: &[&str] = &[
    "the", "a", "an", "this", "that", "these", "those", "each", "every", "any", "all",
    "same", "other", "another", "new", "its", "their", "our", "your", "my", "main",
    "primary", "secondary", "backup", "whole", "entire", "core", "network", "5g", "4g",
    "5gc", "telecom", "required", "needed", "relevant", "corresponding", "following",
    "and", "or", "with", "of", "for", "to", "in", "as", "one", "both", "virtual", "cloud",
    "native", "containerised", "containerized",
];

/// Words after a name that make it the name of a network function.
const FUNCTION_WORDS: &[&str] = &[
    "function",
    "functions",
    "nf",
    "nfs",
    "vnf",
    "vnfs",
    "cnf",
    "cnfs",
];

/// Upper-case words of three letters or more that are not function names.
#[rustfmt::skip]
const NOT_AN_ACRONYM: &[&str] = &[
    "and", "the", "for", "with", "all", "now", "asap", "please", "urgent", "critical",
    "high", "low", "medium", "priority", "deploy", "scale", "pods", "pod", "replicas",
    "replica", "cpu", "cpus", "ram", "vcpu", "vcpus", "embb", "urllc", "mmtc", "ran",
    "oran", "5gc", "5gs", "k8s", "qos", "sla", "nfs", "vnf", "cnf", "plus", "also",
    "then", "new", "one", "two", "three", "slice", "core", "edge",
];

impl Text {
    /// Names of network functions the tables do not know, written beside known ones:
    /// "the FOOBAR function", "AMF, FOOBAR and SMF". Beside a known name, reading only
    /// the known ones would carry out part of the request and report it done.
    ///
    /// Two shapes are recognised: a name before "function" (or "NF", "VNF", "CNF"), and
    /// an upper-case acronym listed next to a known component (in a text that is not
    /// written all in capitals). Other unknown words cannot be told from ordinary ones.
    pub(super) fn unknown_functions(&self) -> Vec<String> {
        let mut unknown: Vec<String> = Vec::new();
        let has_lower = (0..self.len())
            .filter_map(|i| self.raw_token(i))
            .any(|raw| raw.contains(|c: char| c.is_ascii_lowercase()));
        let is_component = |i: Option<usize>| i.and_then(|i| self.role(i)) == Some(Role::Component);
        let is_list_word = |i: Option<usize>| {
            i.and_then(|i| self.free(i))
                .is_some_and(|w| matches!(w, "and" | "or" | "plus" | "also"))
        };
        for at in 0..self.len() {
            let Some(word) = self.free(at) else {
                continue;
            };
            if FUNCTION_WORDS.contains(&word) {
                let mut name = at.checked_sub(1);
                while let Some(i) = name.filter(|&i| self.free(i) == Some("network")) {
                    name = i.checked_sub(1);
                }
                let name = name.and_then(|i| self.free_raw(i).map(|raw| (i, raw)));
                if let Some((i, raw)) = name {
                    let lower = self.free(i).unwrap_or_default();
                    let is_number = lower.starts_with(|c: char| c.is_ascii_digit());
                    if !NOT_A_FUNCTION_NAME.contains(&lower) && !is_number {
                        unknown.push(format!("{raw} {word}"));
                    }
                }
                continue;
            }
            let Some(raw) = self.free_raw(at) else {
                continue;
            };
            let acronym = raw.len() >= 3
                && raw
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                && raw.chars().filter(char::is_ascii_uppercase).count() >= 2
                && !NOT_AN_ACRONYM.contains(&word);
            let listed = is_component(at.checked_sub(1))
                || is_component(Some(at + 1))
                || (is_list_word(at.checked_sub(1)) && is_component(at.checked_sub(2)))
                || (is_list_word(Some(at + 1)) && is_component(Some(at + 2)));
            if has_lower && acronym && listed && !unknown.iter().any(|u| u == raw) {
                unknown.push(raw.to_string());
            }
        }
        unknown
    }
}

impl Text {
    /// Finds every component named in the free text, in order of appearance, and claims
    /// the tokens it was named with.
    ///
    /// The words are read as they were before the scan: claiming "amf" in "amf-smf" takes
    /// the whole token, yet its "smf" is still read as a name.
    pub(super) fn claim_components(&mut self) -> ComponentScan {
        let mut scan = ComponentScan::default();
        let mut claims: Vec<(usize, Role)> = Vec::new();
        let words = self.words();
        let mut at = 0;
        while at < words.len() {
            let Some((len, meaning)) = longest_alias_at(&words, at) else {
                at += 1;
                continue;
            };
            let role = match meaning {
                Meaning::Is(_) => Role::Component,
                _ => Role::OtherFunction,
            };
            claims.extend(words[at..at + len].iter().map(|word| (word.token, role)));
            if let Meaning::Is(c) = meaning {
                for word in &words[at..at + len] {
                    if !scan.tokens.contains(&(word.token, c)) {
                        scan.tokens.push((word.token, c));
                    }
                }
            }
            match meaning {
                Meaning::Is(c) if !scan.found.contains(&c) => scan.found.push(c),
                Meaning::Is(_) => {}
                Meaning::Unsupported(name) => scan.unsupported.push(name),
                Meaning::Ambiguous(name, say) => scan.ambiguous.push((name, say)),
            }
            at += len;
        }
        for (token, role) in claims {
            self.claim(token, role);
        }
        scan
    }
}

#[cfg(test)]
mod tests {
    use super::super::expect::*;
    use super::*;
    use crate::intent::IntentType;
    use Component::*;

    #[test]
    fn aliases_cannot_tie() {
        // The longest alias wins; two of the same length could only both match if one
        // were the other's plural, and then which wins would depend on the table order.
        for (i, (a, _)) in ALIASES.iter().enumerate() {
            for (j, (b, _)) in ALIASES.iter().enumerate() {
                assert!(i == j || a != b, "{a} is listed twice");
                assert_ne!(format!("{a}s"), *b, "{b} is the plural of {a}");
            }
        }
    }

    #[test]
    fn several_components_in_order_without_duplicates() {
        check(
            "Deploy AMF and SMF in namespace core5g",
            deploy(&[Amf, Smf], "core5g"),
        );
        check(
            "deploy amf, smf and upf in namespace core5g",
            deploy(&[Amf, Smf, Upf], "core5g"),
        );
        check(
            "Deploy UPF, then AMF, then the upf again in namespace core5g",
            deploy(&[Upf, Amf], "core5g"),
        );
        check(
            "Deploy NRF, UDM, UDR, PCF, AUSF, NSSF and NEF in namespace core5g",
            deploy(&[Nrf, Udm, Udr, Pcf, Ausf, Nssf, Nef], "core5g"),
        );
    }

    #[test]
    fn ran_aliases_name_their_component() {
        let cases: &[(&str, Component)] = &[
            ("near-rt ric", NearRtRic),
            ("Near RT RIC", NearRtRic),
            ("nearrt-ric", NearRtRic),
            ("near-RT-RIC", NearRtRic),
            ("RIC", NearRtRic),
            ("xApp", Xapp),
            ("XAPP", Xapp),
            ("O-DU", ODu),
            ("odu", ODu),
            ("distributed unit", ODu),
            ("DU", ODu),
            ("o-cu-cp", OCuCp),
            ("CU-CP", OCuCp),
            ("cucp", OCuCp),
            ("O-CU-UP", OCuUp),
            ("cu-up", OCuUp),
            ("cuup", OCuUp),
        ];
        for (name, component) in cases {
            let text = format!("Deploy the {name} in namespace ran");
            let spec = translate(request(&text)).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(spec.target_components, vec![*component], "{text}");
            assert_eq!(spec.intent_type, IntentType::Deployment, "{text}");
            assert_eq!(spec.target_namespace, "ran", "{text}");
        }
    }

    #[test]
    fn spelled_out_names_name_their_component() {
        check(
            "Deploy the access and mobility management function in namespace core5g",
            deploy(&[Amf], "core5g"),
        );
        check(
            "Deploy the session management function and the user plane functions in \
             namespace core5g",
            deploy(&[Smf, Upf], "core5g"),
        );
        // a count for one of them only would be applied to both
        assert_refused(
            "Deploy the session management function and two user plane functions in \
             namespace core5g",
            &["count 2", "upf", "not for smf"],
        );
        check(
            "Deploy the NRF, unified data management and unified data repository in \
             namespace core5g",
            deploy(&[Nrf, Udm, Udr], "core5g"),
        );
        check(
            "Deploy the policy control function, authentication server function, network \
             slice selection function and network exposure function in namespace core5g",
            deploy(&[Pcf, Ausf, Nssf, Nef], "core5g"),
        );
        check(
            "Deploy the central unit control plane and the CU user plane in namespace ran",
            deploy(&[OCuCp, OCuUp], "ran"),
        );
        check(
            "Deploy the near-RT RAN intelligent controller in namespace ric",
            deploy(&[NearRtRic], "ric"),
        );
        assert_refused(
            "Deploy the RAN intelligent controller in namespace ric",
            &["ambiguous", "near-RT RIC"],
        );
        assert_refused(
            "Deploy the non-real-time RAN intelligent controller in namespace smo",
            &["non-RT RIC", "not supported"],
        );
    }

    #[test]
    fn the_xapps_of_a_ric_are_xapps() {
        check(
            "Scale the near-RT RIC xApps to 2 replicas in namespace ricxapp",
            scale(&[Xapp], "ricxapp").replicas(2),
        );
        check(
            "Deploy the RIC xApp in namespace ricxapp",
            deploy(&[Xapp], "ricxapp"),
        );
        check(
            "Deploy the RIC and an xApp in namespace ric",
            deploy(&[NearRtRic, Xapp], "ric"),
        );
    }

    #[test]
    fn du_is_only_a_whole_word() {
        check(
            "Deploy AMF during maintenance in namespace core5g",
            deploy(&[Amf], "core5g"),
        );
        check(
            "Deploy the O-DU and the O-CU-CP in namespace ran",
            deploy(&[ODu, OCuCp], "ran"),
        );
    }

    #[test]
    fn plurals_name_the_component() {
        check(
            "Deploy two UPFs in namespace core5g",
            deploy(&[Upf], "core5g").replicas(2),
        );
        check("Deploy xApps in namespace ric", deploy(&[Xapp], "ric"));
    }

    #[test]
    fn every_word_of_a_hyphenated_token_is_read() {
        check(
            "Deploy amf-smf in namespace core5g",
            deploy(&[Amf, Smf], "core5g"),
        );
    }

    #[test]
    fn an_unsupported_function_beside_a_known_one_refuses_the_request() {
        for text in [
            "Deploy AMF and MME in namespace core5g",
            "Deploy AMF and 3 MMEs in namespace core5g",
            "Scale the SMF and the NWDAF to 3 in namespace core5g",
        ] {
            let reason = translate(request(text)).expect_err(text).reason;
            assert!(reason.contains("does not manage"), "{text}: {reason}");
        }
    }

    #[test]
    fn an_unknown_function_beside_a_known_one_refuses_the_request() {
        for (text, name) in [
            (
                "Deploy AMF and the FOOBAR function in namespace core5g",
                "'FOOBAR function'",
            ),
            (
                "Deploy AMF and the foobar network function in namespace core5g",
                "'foobar function'",
            ),
            ("Deploy AMF, FOOBAR and SMF in namespace core5g", "'FOOBAR'"),
            ("Scale the SMF and XYZ to 3 in namespace core5g", "'XYZ'"),
            (
                "Deploy AMF plus the QWERTY NF in namespace core5g",
                "'QWERTY nf'",
            ),
        ] {
            let reason = refused(text);
            assert!(reason.contains(name), "{text}: {reason}");
            assert!(
                reason.contains("not a network function this service knows"),
                "{text}: {reason}"
            );
        }
        // words that are not function names, and texts written in capitals
        check(
            "Deploy AMF and SMF as a network function in namespace core5g",
            deploy(&[Amf, Smf], "core5g"),
        );
        check(
            "Deploy AMF and SMF for eMBB ASAP in namespace core5g",
            deploy(&[Amf, Smf], "core5g")
                .slice(crate::intent::SliceType::Embb)
                .priority(crate::intent::Priority::Critical),
        );
        check(
            "DEPLOY AMF AND SMF IN NAMESPACE CORE5G",
            deploy(&[Amf, Smf], "core5g"),
        );
    }

    #[test]
    fn no_known_component_is_refused_with_the_list() {
        assert_refused(
            "Deploy something in namespace core5g",
            &[
                "no known network function",
                "amf",
                "smf",
                "near-rt-ric",
                "o-cu-up",
            ],
        );
        assert_refused(
            "Deploy MME in namespace core5g",
            &["no known network function", "mme", "not supported"],
        );
        // the non-RT RIC is not the near-RT RIC
        assert_refused(
            "Deploy the non-RT RIC in namespace smo",
            &["non-RT RIC", "not supported"],
        );
    }

    #[test]
    fn a_bare_cu_is_ambiguous() {
        assert_refused(
            "Deploy the CU in namespace ran",
            &["'cu'", "o-cu-cp", "o-cu-up"],
        );
        assert_refused(
            "Deploy AMF and O-CU in namespace ran",
            &["o-cu", "ambiguous"],
        );
    }

    #[test]
    fn component_names_are_not_directions() {
        // "up" in "cu-up" must not read as "scale up"
        assert_refused("Scale the cu-up by 2 in namespace ran", &["direction"]);
        check(
            "Scale out the cu-up by 2 in namespace ran",
            scale(&[OCuUp], "ran").by(2),
        );
    }
}
