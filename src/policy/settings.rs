//! Where the policy comes from: environment variables (and matching flags), or one
//! YAML file (`POLICY_FILE`) that holds the same settings under the same names.
//!
//! One source at a time: `POLICY_FILE` together with any `POLICY_*` variable or flag is
//! refused at start, so no one has to guess which wins. Two settings sit outside that
//! choice: `POD_NAMESPACE`, a fact about where the service runs (always denied as a
//! target), and `MAX_REPLICAS`, the existing ceiling, which is the maximum replica count
//! unless the file names a lower `max_replicas`.
//!
//! | variable (flag `--policy-...`) | file key            | default                         |
//! |--------------------------------|---------------------|---------------------------------|
//! | `POLICY_ALLOWED_NAMESPACES`    | `allowed_namespaces`| any namespace not denied        |
//! | `POLICY_DENIED_NAMESPACES`     | `denied_namespaces` | `kube-*,default,openshift-*`    |
//! | `POLICY_MIN_REPLICAS`          | `min_replicas`      | 1                               |
//! | `MAX_REPLICAS`                 | `max_replicas`      | 100                             |
//! | `POLICY_MIN_CPU`               | `min_cpu`           | `1m`                            |
//! | `POLICY_MAX_CPU`               | `max_cpu`           | `16`                            |
//! | `POLICY_MIN_MEMORY`            | `min_memory`        | `1Mi`                           |
//! | `POLICY_MAX_MEMORY`            | `max_memory`        | `64Gi`                          |
//! | `POLICY_PARAMETERS` (YAML map) | `parameters`        | the slice and QoS keys          |
//!
//! Lists given replace the defaults (a denylist that should still hold `kube-*` must
//! say so); a file that leaves a key out gets its default.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;

use super::{
    parameters, Namespaces, ParameterRule, Pattern, Policy, QuantityBounds, ReplicaBounds,
};
use crate::config::ConfigError;
use crate::quantity::Quantity;

/// Largest policy file read, in bytes.
const MAX_POLICY_FILE_BYTES: u64 = 1 << 20;

/// The policy's settings. See the module documentation for defaults and the file form.
#[derive(Debug, Clone, Default, Args)]
pub struct PolicyArgs {
    /// YAML file holding the whole policy (keys as the POLICY_* variables, lower-case,
    /// without the prefix). Refused together with any POLICY_* variable or flag.
    #[arg(long, env = "POLICY_FILE")]
    pub policy_file: Option<PathBuf>,

    /// Namespace patterns intents may target, comma-separated (`name` or `prefix-*`).
    /// Unset: any namespace that is not denied.
    #[arg(long, env = "POLICY_ALLOWED_NAMESPACES", value_delimiter = ',')]
    pub policy_allowed_namespaces: Option<Vec<String>>,

    /// Namespace patterns intents may never target, comma-separated; replaces the default
    /// `kube-*,default,openshift-*`. The service's own namespace is denied in any case.
    #[arg(long, env = "POLICY_DENIED_NAMESPACES", value_delimiter = ',')]
    pub policy_denied_namespaces: Option<Vec<String>>,

    /// Smallest replica count an intent may name (default 1; 0 allows scaling to zero,
    /// which is a deletion in all but name). The largest is MAX_REPLICAS.
    #[arg(long, env = "POLICY_MIN_REPLICAS")]
    pub policy_min_replicas: Option<u32>,

    /// Smallest CPU per replica an intent may ask for (default 1m).
    #[arg(long, env = "POLICY_MIN_CPU")]
    pub policy_min_cpu: Option<String>,

    /// Largest CPU per replica an intent may ask for (default 16 cores).
    #[arg(long, env = "POLICY_MAX_CPU")]
    pub policy_max_cpu: Option<String>,

    /// Smallest memory per replica an intent may ask for (default 1Mi).
    #[arg(long, env = "POLICY_MIN_MEMORY")]
    pub policy_min_memory: Option<String>,

    /// Largest memory per replica an intent may ask for (default 64Gi).
    #[arg(long, env = "POLICY_MAX_MEMORY")]
    pub policy_max_memory: Option<String>,

    /// The parameter allowlist as a YAML or JSON map, e.g.
    /// `{sst: {type: int, min: 1, max: 255}}`; replaces the default slice and QoS keys.
    #[arg(long, env = "POLICY_PARAMETERS")]
    pub policy_parameters: Option<String>,

    /// The namespace the service runs in (from the downward API); never a target.
    #[arg(long, env = "POD_NAMESPACE")]
    pub pod_namespace: Option<String>,
}

/// The settings as a file holds them; the variables are read into the same shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    allowed_namespaces: Option<Vec<String>>,
    denied_namespaces: Option<Vec<String>>,
    min_replicas: Option<u32>,
    max_replicas: Option<u32>,
    min_cpu: Option<String>,
    max_cpu: Option<String>,
    min_memory: Option<String>,
    max_memory: Option<String>,
    parameters: Option<BTreeMap<String, ParameterRule>>,
}

/// Names a setting in an error: the variable and flag, or the file's key.
struct Namer {
    from_file: bool,
}

impl Namer {
    fn error(&self, variable: &'static str, key: &str, problem: impl Into<String>) -> ConfigError {
        let problem = problem.into();
        if self.from_file {
            ConfigError {
                setting: "POLICY_FILE",
                problem: format!("{key}: {problem}"),
            }
        } else {
            ConfigError {
                setting: variable,
                problem,
            }
        }
    }
}

impl PolicyArgs {
    /// The policy these settings describe, with `max_replicas` (`MAX_REPLICAS`) as the
    /// ceiling, and a description of where it came from for the start-up log.
    pub fn policy(&self, max_replicas: u32) -> Result<(Policy, String), ConfigError> {
        self.one_source()?;
        let (settings, namer, source) = match &self.policy_file {
            Some(path) => (
                read_file(path)?,
                Namer { from_file: true },
                format!("POLICY_FILE {}", path.display()),
            ),
            None => (
                self.variables()?,
                Namer { from_file: false },
                "environment".to_string(),
            ),
        };
        let policy = build(
            settings,
            &namer,
            max_replicas,
            self.pod_namespace.as_deref(),
        )?;
        Ok((policy, source))
    }

    /// Refuses `POLICY_FILE` beside any `POLICY_*` setting, naming them: which of the two
    /// should win is not a guess the service makes.
    fn one_source(&self) -> Result<(), ConfigError> {
        if self.policy_file.is_none() {
            return Ok(());
        }
        let given: Vec<&str> = [
            (
                self.policy_allowed_namespaces.is_some(),
                "POLICY_ALLOWED_NAMESPACES",
            ),
            (
                self.policy_denied_namespaces.is_some(),
                "POLICY_DENIED_NAMESPACES",
            ),
            (self.policy_min_replicas.is_some(), "POLICY_MIN_REPLICAS"),
            (self.policy_min_cpu.is_some(), "POLICY_MIN_CPU"),
            (self.policy_max_cpu.is_some(), "POLICY_MAX_CPU"),
            (self.policy_min_memory.is_some(), "POLICY_MIN_MEMORY"),
            (self.policy_max_memory.is_some(), "POLICY_MAX_MEMORY"),
            (self.policy_parameters.is_some(), "POLICY_PARAMETERS"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect();
        if given.is_empty() {
            return Ok(());
        }
        Err(ConfigError {
            setting: "POLICY_FILE (--policy-file)",
            problem: format!(
                "cannot be used together with {} (or their --policy-... flags): put those \
                 settings in the file, or unset POLICY_FILE",
                given.join(", ")
            ),
        })
    }

    fn variables(&self) -> Result<Settings, ConfigError> {
        let parameters = match &self.policy_parameters {
            None => None,
            Some(text) => Some(serde_yaml::from_str(text).map_err(|e| ConfigError {
                setting: "POLICY_PARAMETERS (--policy-parameters)",
                problem: format!("is not a map of parameter rules: {e}"),
            })?),
        };
        Ok(Settings {
            allowed_namespaces: self.policy_allowed_namespaces.clone(),
            denied_namespaces: self.policy_denied_namespaces.clone(),
            min_replicas: self.policy_min_replicas,
            max_replicas: None,
            min_cpu: self.policy_min_cpu.clone(),
            max_cpu: self.policy_max_cpu.clone(),
            min_memory: self.policy_min_memory.clone(),
            max_memory: self.policy_max_memory.clone(),
            parameters,
        })
    }
}

fn read_file(path: &std::path::Path) -> Result<Settings, ConfigError> {
    let error = |problem: String| ConfigError {
        setting: "POLICY_FILE",
        problem: format!("{}: {problem}", path.display()),
    };
    let file = std::fs::File::open(path).map_err(|e| error(format!("cannot open: {e}")))?;
    let mut text = String::new();
    file.take(MAX_POLICY_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| error(format!("cannot read as UTF-8 text: {e}")))?;
    if text.len() as u64 > MAX_POLICY_FILE_BYTES {
        return Err(error("is larger than 1 MiB".into()));
    }
    // An empty file is a policy of defaults.
    if text.trim().is_empty() {
        return Ok(Settings::default());
    }
    serde_yaml::from_str(&text).map_err(|e| error(format!("is not a policy: {e}")))
}

fn build(
    settings: Settings,
    namer: &Namer,
    ceiling: u32,
    pod_namespace: Option<&str>,
) -> Result<Policy, ConfigError> {
    let defaults = Policy::default();
    let patterns = |variable, key, list: Option<Vec<String>>| -> Result<_, ConfigError> {
        list.map(|list| {
            list.iter()
                .map(|p| Pattern::parse(p.trim()).map_err(|e| namer.error(variable, key, e)))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()
    };
    let allowed = patterns(
        "POLICY_ALLOWED_NAMESPACES (--policy-allowed-namespaces)",
        "allowed_namespaces",
        settings.allowed_namespaces,
    )?;
    let denied = patterns(
        "POLICY_DENIED_NAMESPACES (--policy-denied-namespaces)",
        "denied_namespaces",
        settings.denied_namespaces,
    )?
    .unwrap_or(defaults.namespaces.denied);
    let own = match pod_namespace.map(str::trim).filter(|ns| !ns.is_empty()) {
        Some(ns) if !crate::validate::is_dns1123_label(ns) => {
            return Err(ConfigError {
                setting: "POD_NAMESPACE (--pod-namespace)",
                problem: format!("{ns:?} is not a namespace name"),
            })
        }
        own => own.map(str::to_string),
    };

    let max = match settings.max_replicas {
        Some(max) if max > ceiling => {
            return Err(namer.error(
                "MAX_REPLICAS",
                "max_replicas",
                format!("{max} is above MAX_REPLICAS ({ceiling}); raise MAX_REPLICAS too"),
            ))
        }
        Some(max) => max,
        None => ceiling,
    };
    if max == 0 {
        return Err(namer.error("MAX_REPLICAS", "max_replicas", "must be at least 1"));
    }
    let min = settings.min_replicas.unwrap_or(defaults.replicas.min);
    if min > max {
        return Err(namer.error(
            "POLICY_MIN_REPLICAS (--policy-min-replicas)",
            "min_replicas",
            format!("{min} is above the maximum of {max}"),
        ));
    }

    let cpu = bounds(
        namer,
        (
            "POLICY_MIN_CPU (--policy-min-cpu)",
            "min_cpu",
            settings.min_cpu,
        ),
        (
            "POLICY_MAX_CPU (--policy-max-cpu)",
            "max_cpu",
            settings.max_cpu,
        ),
        defaults.cpu,
    )?;
    let memory = bounds(
        namer,
        (
            "POLICY_MIN_MEMORY (--policy-min-memory)",
            "min_memory",
            settings.min_memory,
        ),
        (
            "POLICY_MAX_MEMORY (--policy-max-memory)",
            "max_memory",
            settings.max_memory,
        ),
        defaults.memory,
    )?;

    let parameters = settings.parameters.unwrap_or_else(parameters::defaults);
    for (key, rule) in &parameters {
        let problem = if !is_parameter_key(key) {
            Some(format!(
                "key {key:?} must be 1-63 letters, digits, '_', '-' or '.'"
            ))
        } else {
            rule.check().err().map(|e| format!("{key}: {e}"))
        };
        if let Some(problem) = problem {
            return Err(namer.error(
                "POLICY_PARAMETERS (--policy-parameters)",
                "parameters",
                problem,
            ));
        }
    }

    Ok(Policy {
        namespaces: Namespaces {
            allowed,
            denied,
            own,
        },
        replicas: ReplicaBounds { min, max },
        cpu,
        memory,
        parameters,
    })
}

type QuantitySetting = (&'static str, &'static str, Option<String>);

fn bounds(
    namer: &Namer,
    (min_variable, min_key, min): QuantitySetting,
    (max_variable, max_key, max): QuantitySetting,
    defaults: QuantityBounds,
) -> Result<QuantityBounds, ConfigError> {
    let parse = |variable, key, written: Option<String>, default: Quantity| match written {
        None => Ok(default),
        Some(written) => Quantity::parse(written.trim()).map_err(|e| {
            namer.error(
                variable,
                key,
                format!("{written:?} is not a quantity: it {e}"),
            )
        }),
    };
    let min = parse(min_variable, min_key, min, defaults.min)?;
    let max = parse(max_variable, max_key, max, defaults.max)?;
    if min > max {
        return Err(namer.error(
            min_variable,
            min_key,
            format!("{min} is above the maximum of {max}"),
        ));
    }
    Ok(QuantityBounds { min, max })
}

/// The key rule validation applies to every parameter, so an allowed key can be sent.
fn is_parameter_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 63
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}
