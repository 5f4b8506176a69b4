//! The NetworkIntent custom resource (`nephoran.com/v1alpha1`), as this service writes it.
//!
//! Everything a translator produces is a [`NetworkIntentSpec`]; the sink only ever sees a
//! whole [`NetworkIntent`] built by [`NetworkIntent::new`], whose name is a pure function
//! of the idempotency key so that applying the same request twice converges on one object.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const API_VERSION: &str = "nephoran.com/v1alpha1";
pub const KIND: &str = "NetworkIntent";
/// Annotation that records which request an intent came from (the name is only a hash).
pub const IDEMPOTENCY_KEY_ANNOTATION: &str = "nephoran.com/idempotency-key";
/// Annotation that records which payload claimed the key (hex of its fingerprint): a sink
/// refuses to overwrite an intent of the same key that another payload claimed, which is
/// what the dedup state cannot see when the two arrive on different partitions, or after
/// the first one's entry expired.
pub const PAYLOAD_FINGERPRINT_ANNOTATION: &str = "nephoran.com/payload-fingerprint";
const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
const MANAGED_BY: &str = "nephoran-kafka-consumer";

/// A whole NetworkIntent object, serialised exactly as `kubectl apply` expects it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkIntent {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: NetworkIntentSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// What a translator decides: the desired state, without identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkIntentSpec {
    /// The natural-language text the intent came from.
    pub intent: String,
    pub intent_type: IntentType,
    pub priority: Priority,
    pub target_components: Vec<Component>,
    pub target_namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<Scaling>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_slice: Option<NetworkSlice>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, ParamValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntentType {
    Deployment,
    Scaling,
    Optimization,
    Maintenance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Medium,
    High,
    Critical,
}

impl Priority {
    /// Parses the priority words producers use; `None` for anything else.
    pub fn parse(word: &str) -> Option<Self> {
        const WORDS: [(&str, Priority); 12] = [
            ("low", Priority::Low),
            ("minor", Priority::Low),
            ("medium", Priority::Medium),
            ("normal", Priority::Medium),
            ("default", Priority::Medium),
            ("high", Priority::High),
            ("major", Priority::High),
            ("important", Priority::High),
            ("critical", Priority::Critical),
            ("urgent", Priority::Critical),
            ("emergency", Priority::Critical),
            ("asap", Priority::Critical),
        ];
        let word = word.trim();
        WORDS
            .iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(word))
            .map(|(_, p)| *p)
    }
}

/// The allowlist of network functions an intent may target. A name outside this enum
/// cannot be represented, so no translator can make the service touch anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    Amf,
    Smf,
    Upf,
    Nrf,
    Udm,
    Udr,
    Pcf,
    Ausf,
    Nssf,
    Nef,
    NearRtRic,
    Xapp,
    ODu,
    OCuCp,
    OCuUp,
}

impl Component {
    pub const ALL: [Component; 15] = [
        Self::Amf,
        Self::Smf,
        Self::Upf,
        Self::Nrf,
        Self::Udm,
        Self::Udr,
        Self::Pcf,
        Self::Ausf,
        Self::Nssf,
        Self::Nef,
        Self::NearRtRic,
        Self::Xapp,
        Self::ODu,
        Self::OCuCp,
        Self::OCuUp,
    ];

    /// The canonical (Kubernetes-facing) name, e.g. `near-rt-ric`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Amf => "amf",
            Self::Smf => "smf",
            Self::Upf => "upf",
            Self::Nrf => "nrf",
            Self::Udm => "udm",
            Self::Udr => "udr",
            Self::Pcf => "pcf",
            Self::Ausf => "ausf",
            Self::Nssf => "nssf",
            Self::Nef => "nef",
            Self::NearRtRic => "near-rt-ric",
            Self::Xapp => "xapp",
            Self::ODu => "o-du",
            Self::OCuCp => "o-cu-cp",
            Self::OCuUp => "o-cu-up",
        }
    }

    /// Looks a canonical name up, case-insensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Replica counts. `scale_by` is a relative change (a network event's scale-out) that
/// the operator applies to the current count, never past `max_replicas`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scaling {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_by: Option<i32>,
}

/// Kubernetes resource quantities per replica, e.g. `cpu: "500m"`, `memory: "1Gi"`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkSlice {
    pub slice_type: SliceType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SliceType {
    Embb,
    Urllc,
    Mmtc,
}

/// A free parameter value: parameters are flat, so they stay readable in YAML and
/// representable in every wire format (JSON and Avro alike).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
}

impl NetworkIntent {
    /// Wraps a translated spec into the object the sink applies. The object's namespace is
    /// the spec's target namespace; its name comes from the idempotency key alone.
    /// Records the fingerprint of the payload that claimed the key, for the sink's check.
    pub fn claimed_by(mut self, fingerprint: &crate::decode::Fingerprint) -> Self {
        self.metadata.annotations.insert(
            PAYLOAD_FINGERPRINT_ANNOTATION.to_string(),
            crate::hex::lower_hex(fingerprint),
        );
        self
    }

    pub fn new(idempotency_key: &str, spec: NetworkIntentSpec) -> Self {
        let labels = BTreeMap::from([(MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string())]);
        let annotations = BTreeMap::from([(
            IDEMPOTENCY_KEY_ANNOTATION.to_string(),
            idempotency_key.to_string(),
        )]);
        Self {
            api_version: API_VERSION.to_string(),
            kind: KIND.to_string(),
            metadata: ObjectMeta {
                name: intent_name(idempotency_key),
                namespace: spec.target_namespace.clone(),
                labels,
                annotations,
            },
            spec,
        }
    }
}

/// Derives the NetworkIntent name from an idempotency key: a readable, DNS-1123-safe
/// prefix of the key (at most [`NAME_PREFIX_MAX`] characters), `-`, and 26 base32
/// characters of the key's SHA-256 (130 bits), at most 63 characters in all.
///
/// The name is a pure function of the whole key, and only the digest makes it unique:
/// keys that share a prefix, or a key crafted to sanitise to another's prefix, get a
/// different name unless they collide in 130 bits of SHA-256, which nobody can arrange.
pub fn intent_name(idempotency_key: &str) -> String {
    let mut prefix = String::with_capacity(NAME_PREFIX_MAX);
    for c in idempotency_key.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if c == '-' && (prefix.is_empty() || prefix.ends_with('-')) {
            continue;
        }
        prefix.push(c);
        if prefix.len() == NAME_PREFIX_MAX {
            break;
        }
    }
    let prefix = prefix.trim_end_matches('-');
    let prefix = if prefix.is_empty() { "intent" } else { prefix };
    let digest = Sha256::digest(idempotency_key.as_bytes());
    format!("{prefix}-{}", base32_130(&digest))
}

/// Characters of an intent name's digest: 26 base32 characters of 5 bits each.
const NAME_DIGEST_CHARS: usize = 26;
/// The longest readable prefix: a DNS-1123 label has 63 characters, less `-` and the digest.
pub const NAME_PREFIX_MAX: usize = 63 - 1 - NAME_DIGEST_CHARS;

/// The first 130 bits of `digest` (at least 17 bytes) in lowercase base32 (RFC 4648
/// alphabet, lowercased: letters and the digits 2-7, all DNS-safe).
fn base32_130(digest: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(NAME_DIGEST_CHARS);
    let (mut bits, mut held) = (0u32, 0u32);
    for &byte in digest {
        bits = (bits << 8) | u32::from(byte);
        held += 8;
        while held >= 5 && out.len() < NAME_DIGEST_CHARS {
            held -= 5;
            out.push(char::from(ALPHABET[((bits >> held) & 31) as usize]));
        }
        bits &= (1 << held) - 1;
        if out.len() == NAME_DIGEST_CHARS {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::is_dns1123_label;

    #[test]
    fn name_is_a_pure_function_of_the_key() {
        assert_eq!(intent_name("order-42"), intent_name("order-42"));
        assert_ne!(intent_name("order-42"), intent_name("order-43"));
        assert!(intent_name("order-42").starts_with("order-42-"));
        // a known value: the format is a contract (the names of intents already applied)
        assert_eq!(
            intent_name("order-42"),
            "order-42-hp4lcv6eeoho7znojjtozka4no"
        );
    }

    #[test]
    fn base32_digest_matches_rfc_4648() {
        // RFC 4648 test vector "foobar" -> MZXW6YTBOI (10 characters = 50 bits); padded
        // with zero bytes, the first 26 characters start the same way.
        let mut bytes = b"foobar".to_vec();
        bytes.resize(17, 0);
        assert!(base32_130(&bytes).starts_with("mzxw6ytboi"));
        assert_eq!(base32_130(&bytes).len(), 26);
    }

    #[test]
    fn keys_that_share_a_long_prefix_get_different_names() {
        let shared = "tenant-a/order/".repeat(10);
        let names: std::collections::HashSet<String> = (0..10_000)
            .map(|i| intent_name(&format!("{shared}{i}")))
            .collect();
        assert_eq!(names.len(), 10_000);
        for name in &names {
            assert!(name.len() <= 63 && is_dns1123_label(name), "{name}");
            assert!(
                name.starts_with("tenant-a-order-tenant-a-order-tenan"),
                "{name}"
            );
        }
    }

    #[test]
    fn a_key_crafted_to_look_like_anothers_gets_its_own_name() {
        let victim = "order-42";
        // all of these sanitise to the victim's readable prefix
        for hostile in [
            "ORDER-42",
            "order_42",
            "order/42",
            "order--42",
            "-order-42-",
            "order-42\u{0}",
            "order-42\u{1b}[0m",
            "order-42\u{202e}",
            " order 42 ",
        ] {
            let name = intent_name(hostile);
            assert!(name.starts_with("order-42-"), "{hostile:?} gave {name}");
            assert_ne!(name, intent_name(victim), "{hostile:?}");
            assert!(is_dns1123_label(&name), "{hostile:?} gave {name}");
        }
        // and a long one whose prefix is cut exactly where the victim's ends
        let long_victim = "x".repeat(NAME_PREFIX_MAX);
        let long_hostile = format!("{long_victim}-and-more");
        assert_eq!(
            intent_name(&long_victim)[..NAME_PREFIX_MAX],
            intent_name(&long_hostile)[..NAME_PREFIX_MAX]
        );
        assert_ne!(intent_name(&long_victim), intent_name(&long_hostile));
    }

    #[test]
    fn name_is_a_dns_label_whatever_the_key() {
        for key in [
            "",
            "---",
            "ORDER/42:x",
            "ünïcödé",
            &"a".repeat(300),
            "a-",
            "-b",
            "x..y",
        ] {
            let name = intent_name(key);
            assert!(is_dns1123_label(&name), "{key:?} gave {name:?}");
        }
        // keys that sanitise alike still differ
        assert_ne!(intent_name("A/B"), intent_name("a-b"));
    }

    #[test]
    fn priority_words() {
        assert_eq!(Priority::parse(" URGENT "), Some(Priority::Critical));
        assert_eq!(Priority::parse("Major"), Some(Priority::High));
        assert_eq!(Priority::parse("normal"), Some(Priority::Medium));
        assert_eq!(Priority::parse("minor"), Some(Priority::Low));
        assert_eq!(Priority::parse("soonish"), None);
    }

    #[test]
    fn serialises_as_kubernetes_expects() {
        let spec = NetworkIntentSpec {
            intent: "Deploy AMF".into(),
            intent_type: IntentType::Deployment,
            priority: Priority::High,
            target_components: vec![Component::Amf, Component::NearRtRic],
            target_namespace: "core5g".into(),
            target_environment: None,
            scaling: Some(Scaling {
                replicas: Some(3),
                ..Scaling::default()
            }),
            resources: None,
            network_slice: Some(NetworkSlice {
                slice_type: SliceType::Embb,
            }),
            parameters: BTreeMap::new(),
        };
        let yaml = serde_yaml::to_string(&NetworkIntent::new("k1", spec)).unwrap();
        assert!(yaml.starts_with("apiVersion: nephoran.com/v1alpha1\nkind: NetworkIntent\n"));
        assert!(yaml.contains("intentType: deployment"));
        assert!(yaml.contains("- near-rt-ric"));
        assert!(yaml.contains("namespace: core5g"));
        assert!(yaml.contains("sliceType: embb"));
        assert!(!yaml.contains("targetEnvironment"));
    }
}
