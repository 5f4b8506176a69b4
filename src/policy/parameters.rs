//! `parameters` as an allowlist: each key the policy knows has a type and bounds, and
//! every other key is denied by name.
//!
//! Parameters are copied from the request into the intent whatever the translator, and
//! whatever reads the intent downstream may act on them, so an unknown key
//! (`privileged`, `hostNetwork`, `image`, `replicas`, `namespace`, ...) is never passed
//! along. The defaults ([`defaults`]) are the slice and QoS keys producers use.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::intent::ParamValue;

/// Longest string parameter when a rule does not say.
const DEFAULT_MAX_LENGTH: usize = 64;

/// The type and bounds of one allowed parameter, as written in a policy file:
/// `{type: int, min: 1, max: 255}`, `{type: string, values: [embb, urllc]}`,
/// `{type: string, charset: hex, min_length: 6, max_length: 6}`, `{type: bool}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ParameterRule {
    String {
        /// When not empty, the value must be one of these, exactly.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        values: Vec<String>,
        #[serde(default = "one")]
        min_length: usize,
        #[serde(default = "default_max_length")]
        max_length: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        charset: Option<Charset>,
    },
    Int {
        min: i64,
        max: i64,
    },
    /// An integer value is accepted for a float parameter (`10` for `10.0`).
    Float {
        min: f64,
        max: f64,
    },
    Bool,
}

fn one() -> usize {
    1
}

fn default_max_length() -> usize {
    DEFAULT_MAX_LENGTH
}

/// The characters a string parameter may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Charset {
    /// `0-9`.
    Digits,
    /// `0-9`, `a-f`, `A-F`.
    Hex,
    /// `a-z`, `0-9`, `-`, not starting or ending with `-` (a Kubernetes name).
    DnsLabel,
    /// ASCII letters, digits, `-`, `_`, `.`.
    Identifier,
}

impl Charset {
    fn admits(self, s: &str) -> bool {
        match self {
            Self::Digits => s.bytes().all(|b| b.is_ascii_digit()),
            Self::Hex => s.bytes().all(|b| b.is_ascii_hexdigit()),
            Self::DnsLabel => crate::validate::is_dns1123_label(s),
            Self::Identifier => s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Digits => "decimal digits",
            Self::Hex => "hexadecimal digits",
            Self::DnsLabel => "a DNS-1123 label",
            Self::Identifier => "letters, digits, '-', '_' and '.'",
        }
    }
}

/// The default allowlist: slice identity (`slice_id`, `slice_type`, S-NSSAI `sst` and
/// `sd`), network identity (`plmn`, `tac`) and QoS targets (`5qi`, `latency_ms`,
/// `throughput_mbps`).
pub fn defaults() -> BTreeMap<String, ParameterRule> {
    let string = |values: &[&str], min_length, max_length, charset| ParameterRule::String {
        values: values.iter().map(|v| v.to_string()).collect(),
        min_length,
        max_length,
        charset,
    };
    BTreeMap::from([
        (
            "slice_id".into(),
            string(&[], 1, 63, Some(Charset::DnsLabel)),
        ),
        (
            "slice_type".into(),
            string(
                &["embb", "urllc", "mmtc", "eMBB", "URLLC", "mMTC"],
                1,
                5,
                None,
            ),
        ),
        ("sst".into(), ParameterRule::Int { min: 1, max: 255 }),
        ("sd".into(), string(&[], 6, 6, Some(Charset::Hex))),
        ("plmn".into(), string(&[], 5, 6, Some(Charset::Digits))),
        (
            "tac".into(),
            ParameterRule::Int {
                min: 0,
                max: 0xFF_FFFF,
            },
        ),
        ("5qi".into(), ParameterRule::Int { min: 1, max: 255 }),
        (
            "latency_ms".into(),
            ParameterRule::Float {
                min: 0.0,
                max: 10_000.0,
            },
        ),
        (
            "throughput_mbps".into(),
            ParameterRule::Float {
                min: 0.0,
                max: 1_000_000.0,
            },
        ),
    ])
}

impl ParameterRule {
    /// Why `value` is outside this rule, or `None` when it is inside.
    pub fn denial(&self, value: &ParamValue) -> Option<String> {
        match (self, value) {
            (
                Self::String {
                    values,
                    min_length,
                    max_length,
                    charset,
                },
                ParamValue::String(s),
            ) => {
                if !values.is_empty() {
                    return (!values.iter().any(|v| v == s)).then(|| {
                        let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
                        format!("must be one of {}", quoted.join(", "))
                    });
                }
                let chars = s.chars().count();
                if chars < *min_length || chars > *max_length {
                    return Some(if min_length == max_length {
                        format!("must be {min_length} characters long")
                    } else {
                        format!("must be {min_length} to {max_length} characters long")
                    });
                }
                charset
                    .filter(|c| !c.admits(s))
                    .map(|c| format!("must be {}", c.describe()))
            }
            (Self::Int { min, max }, ParamValue::Int(n)) => {
                (n < min || n > max).then(|| format!("must be within {min}..={max}"))
            }
            (Self::Float { min, max }, ParamValue::Float(_) | ParamValue::Int(_)) => {
                let x = match value {
                    ParamValue::Float(x) => *x,
                    ParamValue::Int(n) => *n as f64,
                    _ => return Some("must be a number".into()),
                };
                if !x.is_finite() {
                    return Some("must be a finite number".into());
                }
                (x < *min || x > *max).then(|| format!("must be within {min}..={max}"))
            }
            (Self::Bool, ParamValue::Bool(_)) => None,
            (rule, _) => Some(format!("must be {}", rule.kind())),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::String { .. } => "a string",
            Self::Int { .. } => "an integer",
            Self::Float { .. } => "a number",
            Self::Bool => "true or false",
        }
    }

    /// A rule that makes sense: bounds in order, floats finite, allowed values inside
    /// the length and charset. `Err` says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Self::String {
                values,
                min_length,
                max_length,
                charset,
            } => {
                if min_length > max_length {
                    return Err(format!(
                        "min_length {min_length} is above max_length {max_length}"
                    ));
                }
                for v in values {
                    let chars = v.chars().count();
                    if chars < *min_length
                        || chars > *max_length
                        || charset.is_some_and(|c| !c.admits(v))
                        || crate::validate::has_markup(v)
                    {
                        return Err(format!(
                            "allowed value {v:?} is outside the rule's own length or charset"
                        ));
                    }
                }
                Ok(())
            }
            Self::Int { min, max } if min > max => Err(format!("min {min} is above max {max}")),
            Self::Float { min, max } if !(min.is_finite() && max.is_finite() && min <= max) => Err(
                format!("min {min} and max {max} must be finite, min <= max"),
            ),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for ParameterRule {
    /// Compact, for the log line of the policy in force: `int 1..=255`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String {
                values,
                min_length,
                max_length,
                charset,
            } => {
                if values.is_empty() {
                    write!(f, "string {min_length}..={max_length} chars")?;
                    if let Some(c) = charset {
                        write!(f, " of {}", c.describe())?;
                    }
                    Ok(())
                } else {
                    write!(f, "string in {values:?}")
                }
            }
            Self::Int { min, max } => write!(f, "int {min}..={max}"),
            Self::Float { min, max } => write!(f, "float {min}..={max}"),
            Self::Bool => f.write_str("bool"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(key: &str) -> ParameterRule {
        defaults().remove(key).expect(key)
    }

    #[test]
    fn every_default_is_a_sensible_rule() {
        for (key, rule) in defaults() {
            rule.check().unwrap_or_else(|e| panic!("{key}: {e}"));
        }
    }

    #[test]
    fn the_default_slice_and_qos_keys_take_their_values() {
        use ParamValue::*;
        for (key, good) in [
            ("slice_id", String("embb-01".into())),
            ("slice_type", String("urllc".into())),
            ("slice_type", String("eMBB".into())),
            ("sst", Int(1)),
            ("sst", Int(255)),
            ("sd", String("00a1FF".into())),
            ("plmn", String("00101".into())),
            ("plmn", String("310410".into())),
            ("tac", Int(0)),
            ("tac", Int(16_777_215)),
            ("5qi", Int(9)),
            ("latency_ms", Float(10.5)),
            ("latency_ms", Int(10)),
            ("throughput_mbps", Float(1000.0)),
        ] {
            assert_eq!(rule(key).denial(&good), None, "{key} {good:?}");
        }
    }

    #[test]
    fn values_outside_their_rule_are_denied_with_the_reason() {
        use ParamValue::*;
        for (key, bad, why) in [
            ("slice_id", String("Embb_01".into()), "DNS-1123"),
            ("slice_id", Int(1), "a string"),
            ("slice_type", String("gold".into()), "one of \"embb\""),
            ("sst", Int(0), "1..=255"),
            ("sst", Int(256), "1..=255"),
            ("sst", Float(1.0), "an integer"),
            ("sst", String("1".into()), "an integer"),
            ("sd", String("00a1f".into()), "6 characters"),
            ("sd", String("00a1fg".into()), "hexadecimal"),
            ("plmn", String("0010a".into()), "decimal digits"),
            ("plmn", String("0010".into()), "5 to 6"),
            ("tac", Int(16_777_216), "0..=16777215"),
            ("5qi", Bool(true), "an integer"),
            ("latency_ms", Float(-1.0), "0..=10000"),
            ("latency_ms", Float(f64::NAN), "finite"),
            ("latency_ms", Float(f64::INFINITY), "finite"),
            ("throughput_mbps", Int(i64::MAX), "0..=1000000"),
            ("throughput_mbps", String("fast".into()), "a number"),
        ] {
            let reason = rule(key)
                .denial(&bad)
                .unwrap_or_else(|| panic!("{key} {bad:?} should be denied"));
            assert!(reason.contains(why), "{key} {bad:?}: {reason}");
        }
        assert_eq!(
            ParameterRule::Bool.denial(&String("true".into())).unwrap(),
            "must be true or false"
        );
    }

    #[test]
    fn rules_read_from_yaml_and_are_checked() {
        let rules: BTreeMap<std::string::String, ParameterRule> = serde_yaml::from_str(
            "sst: {type: int, min: 1, max: 4}\n\
             tier: {type: string, values: [gold, silver]}\n\
             code: {type: string, charset: hex, min_length: 2, max_length: 4}\n\
             ha: {type: bool}\n\
             ratio: {type: float, min: 0, max: 1}\n",
        )
        .unwrap();
        assert_eq!(rules["sst"], ParameterRule::Int { min: 1, max: 4 });
        assert_eq!(rules["ha"], ParameterRule::Bool);
        assert!(rules.values().all(|r| r.check().is_ok()));
        for bad in [
            "x: {type: int, min: 1}",
            "x: {type: int, min: 1, max: 2, step: 1}",
            "x: {type: list}",
            "x: {min: 1, max: 2}",
        ] {
            assert!(
                serde_yaml::from_str::<BTreeMap<std::string::String, ParameterRule>>(bad).is_err(),
                "{bad}"
            );
        }
        for bad in [
            ParameterRule::Int { min: 2, max: 1 },
            ParameterRule::Float {
                min: 0.0,
                max: f64::NAN,
            },
            ParameterRule::String {
                values: vec!["toolong".into()],
                min_length: 1,
                max_length: 3,
                charset: None,
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }
}
