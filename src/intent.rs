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
/// prefix of the key plus 10 hex digits of its SHA-256, at most 63 characters. Two keys
/// that sanitise to the same prefix still get different names through the hash.
pub fn intent_name(idempotency_key: &str) -> String {
    const PREFIX_MAX: usize = 52; // 52 + '-' + 10 hex = 63, the DNS-1123 label limit
    let mut prefix = String::with_capacity(PREFIX_MAX);
    for c in idempotency_key.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if c == '-' && (prefix.is_empty() || prefix.ends_with('-')) {
            continue;
        }
        prefix.push(c);
        if prefix.len() == PREFIX_MAX {
            break;
        }
    }
    let prefix = prefix.trim_end_matches('-');
    let prefix = if prefix.is_empty() { "intent" } else { prefix };
    let digest = Sha256::digest(idempotency_key.as_bytes());
    let hash = crate::hex::lower_hex(&digest[..5]);
    format!("{prefix}-{hash}")
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
