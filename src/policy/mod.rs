//! The policy: what the service may apply, the same for every translator.
//!
//! Translators propose; the policy decides. It runs in the pipeline after translation and
//! structural validation ([`crate::validate`], which asks whether an intent is well
//! formed) and before apply, and it reads only the intent: nothing a translator or a
//! model says about it counts. An intent outside it is `rejected` with `policy_denied`
//! and a message naming the field and the rule, e.g.
//! `spec.targetNamespace: "kube-system" is denied by policy (denied namespace pattern "kube-*")`.
//!
//! The rules, each with safe defaults ([`settings`] reads them from the environment or a
//! policy file):
//! - namespaces ([`namespaces`]): deny `kube-*`, `default`, `openshift-*` and the
//!   service's own; optionally allow only a list;
//! - replicas: `replicas`, `minReplicas` and `maxReplicas` within `1..=MAX_REPLICAS`
//!   (0 replicas is a deletion in all but name: allowed only with a minimum of 0), and a
//!   `scaleBy` step no larger than that range;
//! - CPU and memory per replica within bounds (default `1m..=16` cores, `1Mi..=64Gi`),
//!   compared exactly ([`crate::quantity`]);
//! - `parameters`: an allowlist of keys with a type and bounds each ([`parameters`]).
//!
//! Metric: `policy_denials_total{rule}` counts denials by rule (`namespace`, `replicas`,
//! `cpu`, `memory`, `parameters`).

pub mod namespaces;
pub mod parameters;
pub mod settings;

use std::collections::BTreeMap;
use std::fmt;

use crate::intent::{NetworkIntentSpec, ParamValue};
use crate::quantity::{Quantity, QuantityError};
use crate::validate::is_dns1123_label;

pub use namespaces::{Namespaces, Pattern};
pub use parameters::{Charset, ParameterRule};
pub use settings::PolicyArgs;

/// Default replica bounds: at least one (0 is a deletion), at most `MAX_REPLICAS`'s default.
pub const DEFAULT_MIN_REPLICAS: u32 = 1;
pub const DEFAULT_MAX_REPLICAS: u32 = 100;
/// Default CPU bounds per replica: a millicore to 16 cores.
pub const DEFAULT_MIN_CPU: &str = "1m";
pub const DEFAULT_MAX_CPU: &str = "16";
/// Default memory bounds per replica: a mebibyte to 64 gibibytes.
pub const DEFAULT_MIN_MEMORY: &str = "1Mi";
pub const DEFAULT_MAX_MEMORY: &str = "64Gi";

/// The policy in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub namespaces: Namespaces,
    pub replicas: ReplicaBounds,
    pub cpu: QuantityBounds,
    pub memory: QuantityBounds,
    /// The allowed parameter keys; any other key is denied.
    pub parameters: BTreeMap<String, ParameterRule>,
}

/// Inclusive bounds on every replica count an intent names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaBounds {
    pub min: u32,
    pub max: u32,
}

/// Inclusive bounds on a resource quantity per replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantityBounds {
    pub min: Quantity,
    pub max: Quantity,
}

impl Default for Policy {
    fn default() -> Self {
        let quantity = |s| Quantity::parse(s).unwrap_or_else(|e| unreachable!("{s}: {e}"));
        Self {
            namespaces: Namespaces::default(),
            replicas: ReplicaBounds {
                min: DEFAULT_MIN_REPLICAS,
                max: DEFAULT_MAX_REPLICAS,
            },
            cpu: QuantityBounds {
                min: quantity(DEFAULT_MIN_CPU),
                max: quantity(DEFAULT_MAX_CPU),
            },
            memory: QuantityBounds {
                min: quantity(DEFAULT_MIN_MEMORY),
                max: quantity(DEFAULT_MAX_MEMORY),
            },
            parameters: parameters::defaults(),
        }
    }
}

/// Which rule refused an intent: the `rule` label of `policy_denials_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Namespace,
    Replicas,
    Cpu,
    Memory,
    Parameters,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Namespace => "namespace",
            Self::Replicas => "replicas",
            Self::Cpu => "cpu",
            Self::Memory => "memory",
            Self::Parameters => "parameters",
        }
    }
}

/// Why the policy refused an intent: the field, its value and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {value} is denied by policy ({reason})")]
pub struct Denial {
    pub rule: Rule,
    pub field: String,
    /// The value as it appears in the intent (strings quoted).
    pub value: String,
    pub reason: String,
}

fn deny(
    rule: Rule,
    field: impl Into<String>,
    value: impl Into<String>,
    reason: impl Into<String>,
) -> Denial {
    Denial {
        rule,
        field: field.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

impl Policy {
    /// Checks a translated spec; the first rule it breaks is the denial, counted in
    /// `policy_denials_total{rule}`.
    pub fn check(&self, spec: &NetworkIntentSpec) -> Result<(), Denial> {
        let checked = self.judge(spec);
        if let Err(denial) = &checked {
            crate::meters::policy_denials(denial.rule.as_str()).increment(1);
        }
        checked
    }

    fn judge(&self, spec: &NetworkIntentSpec) -> Result<(), Denial> {
        self.check_namespace(&spec.target_namespace)?;
        if let Some(scaling) = &spec.scaling {
            for (field, count) in [
                ("spec.scaling.replicas", scaling.replicas),
                ("spec.scaling.minReplicas", scaling.min_replicas),
                ("spec.scaling.maxReplicas", scaling.max_replicas),
            ] {
                if let Some(n) = count {
                    self.check_replicas(field, n)?;
                }
            }
            if let Some(step) = scaling.scale_by {
                let range = self.replicas.max.saturating_sub(self.replicas.min);
                if step.unsigned_abs() > range {
                    return Err(deny(
                        Rule::Replicas,
                        "spec.scaling.scaleBy",
                        step.to_string(),
                        format!(
                            "a step larger than the replica range {}..={} allows, ±{range}",
                            self.replicas.min, self.replicas.max
                        ),
                    ));
                }
            }
        }
        if let Some(resources) = &spec.resources {
            if let Some(cpu) = &resources.cpu {
                check_quantity(Rule::Cpu, "spec.resources.cpu", cpu, &self.cpu)?;
            }
            if let Some(memory) = &resources.memory {
                check_quantity(Rule::Memory, "spec.resources.memory", memory, &self.memory)?;
            }
        }
        for (key, value) in &spec.parameters {
            self.check_parameter(key, value)?;
        }
        Ok(())
    }

    fn check_namespace(&self, namespace: &str) -> Result<(), Denial> {
        let field = "spec.targetNamespace";
        // Validation refuses this first; the policy does not rely on it.
        if !is_dns1123_label(namespace) {
            return Err(deny(
                Rule::Namespace,
                field,
                format!("{namespace:?}"),
                "not a DNS-1123 label",
            ));
        }
        match self.namespaces.denial(namespace) {
            Some(reason) => Err(deny(
                Rule::Namespace,
                field,
                format!("{namespace:?}"),
                reason,
            )),
            None => Ok(()),
        }
    }

    fn check_replicas(&self, field: &'static str, n: u32) -> Result<(), Denial> {
        let ReplicaBounds { min, max } = self.replicas;
        if n < min {
            let reason = if n == 0 {
                format!("below the minimum of {min}; 0 replicas is a deletion in all but name, allowed only with POLICY_MIN_REPLICAS=0")
            } else {
                format!("below the minimum of {min}")
            };
            return Err(deny(Rule::Replicas, field, n.to_string(), reason));
        }
        if n > max {
            return Err(deny(
                Rule::Replicas,
                field,
                n.to_string(),
                format!("above the maximum of {max}, MAX_REPLICAS"),
            ));
        }
        Ok(())
    }

    fn check_parameter(&self, key: &str, value: &ParamValue) -> Result<(), Denial> {
        let field = format!("spec.parameters.{key}");
        let shown = show(value);
        match self.parameters.get(key) {
            None => Err(deny(
                Rule::Parameters,
                field,
                shown,
                format!(
                    "{key:?} is not an allowed parameter; allowed: {}",
                    self.allowed_parameter_keys()
                ),
            )),
            Some(rule) => match rule.denial(value) {
                Some(reason) => Err(deny(Rule::Parameters, field, shown, reason)),
                None => Ok(()),
            },
        }
    }

    fn allowed_parameter_keys(&self) -> String {
        if self.parameters.is_empty() {
            return "none".into();
        }
        self.parameters
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Logs the policy in force, once at start, as structured fields.
    pub fn log_in_force(&self, source: &str) {
        let parameters: Vec<String> = self
            .parameters
            .iter()
            .map(|(k, r)| format!("{k}: {r}"))
            .collect();
        tracing::info!(
            source,
            allowed_namespaces = %self
                .namespaces
                .allowed
                .as_deref()
                .map_or_else(|| "any not denied".to_string(), namespaces::list),
            denied_namespaces = %namespaces::list(&self.namespaces.denied),
            own_namespace = self.namespaces.own.as_deref().unwrap_or("(POD_NAMESPACE unset)"),
            min_replicas = self.replicas.min,
            max_replicas = self.replicas.max,
            cpu = %format!("{}..={}", self.cpu.min, self.cpu.max),
            memory = %format!("{}..={}", self.memory.min, self.memory.max),
            parameters = %parameters.join("; "),
            "policy in force"
        );
    }
}

fn check_quantity(
    rule: Rule,
    field: &'static str,
    written: &str,
    bounds: &QuantityBounds,
) -> Result<(), Denial> {
    let shown = format!("{written:?}");
    let above = || format!("above the maximum of {:?} per replica", bounds.max.as_str());
    match Quantity::parse(written) {
        Ok(q) if q < bounds.min => Err(deny(
            rule,
            field,
            shown,
            format!("below the minimum of {:?} per replica", bounds.min.as_str()),
        )),
        Ok(q) if q > bounds.max => Err(deny(rule, field, shown, above())),
        Ok(_) => Ok(()),
        Err(QuantityError::TooLarge) => Err(deny(rule, field, shown, above())),
        // Validation refuses this first; the policy does not rely on it.
        Err(QuantityError::Malformed(why)) => Err(deny(
            rule,
            field,
            shown,
            format!("not a quantity: it {why}"),
        )),
    }
}

/// A parameter value as it would be written in JSON.
fn show(value: &ParamValue) -> String {
    match value {
        ParamValue::Bool(b) => b.to_string(),
        ParamValue::Int(n) => n.to_string(),
        ParamValue::Float(x) => x.to_string(),
        ParamValue::String(s) => format!("{s:?}"),
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests;
