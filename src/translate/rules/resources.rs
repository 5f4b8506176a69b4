//! CPU and memory amounts: "500m cpu", "cpu 2", "memory: 1Gi", "1Gi of ram", "2 GB of
//! memory", "4 cores", "500 millicores".
//!
//! Quantities are checked here per resource, more strictly than validation's generic
//! quantity check, so that "1GB memory" is refused with the spelling Kubernetes expects
//! instead of reaching the operator. The keyword and its quantity are claimed, so that
//! "2 cpus" is not read as a replica count.

use super::counts::is_replica_word;
use super::number::{number, Number};
use super::refuse;
use super::text::{Role, Text};
use crate::intent::Resources;
use crate::translate::Untranslatable;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResourceKind {
    Cpu,
    /// Thousandths of a cpu: "500 millicores" is cpu `500m`.
    MilliCpu,
    Memory,
}

impl ResourceKind {
    fn of(word: &str) -> Option<Self> {
        match word {
            "cpu" | "cpus" | "vcpu" | "vcpus" | "cores" | "vcores" => Some(Self::Cpu),
            "millicore" | "millicores" | "millicpu" | "millicpus" => Some(Self::MilliCpu),
            "memory" | "mem" | "ram" => Some(Self::Memory),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Cpu | Self::MilliCpu => "cpu",
            Self::Memory => "memory",
        }
    }

    /// The quantity as Kubernetes writes it, if `written` is one this kind takes: cpu
    /// `2`, `0.5`, `500m`; memory `512Mi`, `1G`, and `1GB` or `1GiB` with the byte
    /// written out (the same amounts, `G` being 10^9 bytes and `Gi` 2^30).
    fn read(self, written: &str) -> Option<String> {
        let split = written
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(written.len());
        let (number, suffix) = written.split_at(split);
        let numeric = number
            .parse::<f64>()
            .is_ok_and(|n| n > 0.0 && n.is_finite());
        if !numeric {
            return None;
        }
        match self {
            Self::Cpu => matches!(suffix, "" | "m").then(|| written.to_string()),
            Self::MilliCpu => (suffix.is_empty() && number.bytes().all(|b| b.is_ascii_digit()))
                .then(|| format!("{number}m")),
            Self::Memory => {
                let unit = match suffix {
                    "Ki" | "Mi" | "Gi" | "Ti" | "k" | "M" | "G" | "T" => suffix,
                    "KiB" | "MiB" | "GiB" | "TiB" => &suffix[..2],
                    "kB" | "KB" => "k",
                    "MB" | "GB" | "TB" => &suffix[..1],
                    _ => return None,
                };
                Some(format!("{number}{unit}"))
            }
        }
    }

    fn example(self) -> &'static str {
        match self {
            Self::Cpu | Self::MilliCpu => "500m or 2",
            Self::Memory => "512Mi or 1Gi",
        }
    }
}

/// Looks like an attempt at an amount ("1GB", "512mb", "1,5", "1e3", "-1", ".5x", "two"):
/// it starts with a digit, a dot or a minus, or is a number word.
fn looks_like_amount(raw: &str) -> bool {
    let lower = raw.to_ascii_lowercase();
    raw.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '.' | '-'))
        || !matches!(number(&lower), Number::NotNumeric)
}

/// A unit written apart from its number ("2 GB", "512 Mi", "8 gigabytes").
fn is_unit_word(raw: &str) -> bool {
    #[rustfmt::skip]
    const UNITS: &[&str] = &[
        "k", "kb", "ki", "kib", "m", "mb", "mi", "mib", "g", "gb", "gi", "gib", "t", "tb",
        "ti", "tib", "gig", "gigs", "byte", "bytes", "kilobyte", "kilobytes", "megabyte",
        "megabytes", "gigabyte", "gigabytes", "terabyte", "terabytes", "kibibyte",
        "kibibytes", "mebibyte", "mebibytes", "gibibyte", "gibibytes", "tebibyte",
        "tebibytes",
    ];
    UNITS.contains(&raw.to_ascii_lowercase().as_str())
}

impl Text {
    /// "500m cpu", "cpu 500m", "2 cpus", "1Gi memory", "memory: 1Gi", "1Gi of ram",
    /// "2 GB of memory", "500 millicores".
    ///
    /// An amount next to a resource word that cannot be read ("1e3 cpu", "two cpus",
    /// "1,5Gi memory", "8 gigabytes of ram") is refused, never dropped: the intent would
    /// be applied without the resources that were asked for.
    pub(super) fn claim_resources(&mut self) -> Result<Option<Resources>, Untranslatable> {
        let mut resources = Resources::default();
        for at in 0..self.len() {
            let Some(kind) = self.free(at).and_then(ResourceKind::of) else {
                continue;
            };
            let Some((tokens, value)) = self.quantity_near(at, kind)? else {
                continue;
            };
            self.claim(at, Role::Resource);
            for token in tokens {
                self.claim(token, Role::Resource);
            }
            let slot = match kind {
                ResourceKind::Cpu | ResourceKind::MilliCpu => &mut resources.cpu,
                ResourceKind::Memory => &mut resources.memory,
            };
            match slot {
                Some(old) if *old != value => {
                    return refuse(format!(
                        "the text gives two {} amounts, {old} and {value}",
                        kind.name()
                    ))
                }
                _ => *slot = Some(value),
            }
        }
        Ok((resources != Resources::default()).then_some(resources))
    }

    /// The free tokens next to a resource keyword holding its quantity (before it
    /// first), as their positions and the quantity as Kubernetes writes it.
    fn quantity_near(
        &self,
        at: usize,
        kind: ResourceKind,
    ) -> Result<Option<(Vec<usize>, String)>, Untranslatable> {
        let before = if self.free_before(at, 1) == Some("of") {
            at.checked_sub(2)
        } else {
            at.checked_sub(1)
        };
        // "cpu 3 replicas": a number followed by a replica word is the count, not the cpu.
        let after = Some(at + 1).filter(|&i| !self.free(i + 1).is_some_and(is_replica_word));
        // Each candidate: the tokens that hold the amount, as one or two (number, unit).
        let before = before.map(|i| match i.checked_sub(1) {
            Some(number) if self.is_split_amount(number, i) => vec![number, i],
            _ => vec![i],
        });
        let after = after.map(|i| {
            if self.is_split_amount(i, i + 1) {
                vec![i, i + 1]
            } else {
                vec![i]
            }
        });
        let candidates: Vec<Vec<usize>> = [before, after].into_iter().flatten().collect();
        let written = |tokens: &[usize]| -> Option<String> {
            tokens
                .iter()
                .map(|&i| self.free_raw(i))
                .collect::<Option<Vec<&str>>>()
                .map(|parts| parts.concat())
        };
        for tokens in &candidates {
            if let Some(value) = written(tokens).and_then(|w| kind.read(&w)) {
                return Ok(Some((tokens.clone(), value)));
            }
            // "two cpus": a whole number of cpus written as a word
            if let ([token], ResourceKind::Cpu) = (tokens.as_slice(), kind) {
                let word = self.free(*token).unwrap_or_default();
                if let (Number::Whole(n), true) =
                    (number(word), word.starts_with(char::is_alphabetic))
                {
                    if n > 0 {
                        return Ok(Some((tokens.clone(), n.to_string())));
                    }
                }
            }
        }
        for tokens in &candidates {
            let Some(first) = tokens.first().and_then(|&i| self.free_raw(i)) else {
                continue;
            };
            if tokens.len() > 1 || looks_like_amount(first) || is_unit_word(first) {
                let mut shown: Vec<&str> =
                    tokens.iter().filter_map(|&i| self.free_raw(i)).collect();
                // "two GB": the unit alone is found; show what it measures too
                if let (true, Some(number)) = (
                    tokens.len() == 1 && is_unit_word(first),
                    tokens[0].checked_sub(1).and_then(|i| self.free_raw(i)),
                ) {
                    shown.insert(0, number);
                }
                return refuse(format!(
                    "'{}' is not a {} quantity Kubernetes understands (e.g. {})",
                    shown.join(" "),
                    kind.name(),
                    kind.example()
                ));
            }
        }
        Ok(None)
    }

    /// True when the free tokens at `number` and `unit` are an amount written apart from
    /// its unit ("2 GB").
    fn is_split_amount(&self, number: usize, unit: usize) -> bool {
        let plain_number = self.free_raw(number).is_some_and(|n| {
            n.starts_with(|c: char| c.is_ascii_digit())
                && n.chars().all(|c| c.is_ascii_digit() || c == '.')
        });
        plain_number && self.free_raw(unit).is_some_and(is_unit_word)
    }
}

#[cfg(test)]
mod tests {
    use super::super::expect::*;
    use crate::intent::Component::*;

    #[test]
    fn resources_when_given() {
        let spec = check(
            "Deploy AMF with 3 replicas, 500m cpu and 1Gi memory in namespace core5g",
            deploy(&[Amf], "core5g").replicas(3),
        );
        let resources = spec.resources.expect("resources");
        assert_eq!(resources.cpu.as_deref(), Some("500m"));
        assert_eq!(resources.memory.as_deref(), Some("1Gi"));

        let spec = check(
            "Deploy AMF with cpu 2 memory 4Gi in namespace core5g",
            deploy(&[Amf], "core5g"),
        );
        let resources = spec.resources.expect("resources");
        assert_eq!(resources.cpu.as_deref(), Some("2"));
        assert_eq!(resources.memory.as_deref(), Some("4Gi"));

        let spec = check(
            "Deploy AMF with memory: 512Mi and 2 cpus, 2 replicas, in namespace core5g",
            deploy(&[Amf], "core5g").replicas(2),
        );
        let resources = spec.resources.expect("resources");
        assert_eq!(resources.cpu.as_deref(), Some("2"));
        assert_eq!(resources.memory.as_deref(), Some("512Mi"));

        let spec = check(
            "Deploy AMF with cpu 3 replicas in namespace core5g",
            deploy(&[Amf], "core5g").replicas(3),
        );
        assert_eq!(spec.resources, None);

        assert_refused(
            "Deploy AMF with 1gb memory in namespace core5g",
            &["'1gb'", "memory", "1Gi"],
        );
    }

    #[test]
    fn amounts_written_as_people_write_them() {
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            ("Deploy AMF with 2 GB of memory", None, Some("2G")),
            ("Deploy AMF with 2GB memory", None, Some("2G")),
            ("Deploy AMF with memory 512 MiB", None, Some("512Mi")),
            ("Deploy AMF with 1GiB of RAM", None, Some("1Gi")),
            ("Deploy AMF with 512 Mi memory", None, Some("512Mi")),
            ("Deploy AMF with 4 cores", Some("4"), None),
            ("Deploy AMF with 2 CPU cores", Some("2"), None),
            ("Deploy AMF with 500 millicores", Some("500m"), None),
            ("Deploy AMF with two cpus", Some("2"), None),
        ];
        for (text, cpu, memory) in cases {
            let text = format!("{text} in namespace core5g");
            let spec = check(&text, deploy(&[Amf], "core5g"));
            let resources = spec.resources.unwrap_or_default();
            assert_eq!(resources.cpu.as_deref(), *cpu, "{text}");
            assert_eq!(resources.memory.as_deref(), *memory, "{text}");
        }
    }

    #[test]
    fn an_amount_that_cannot_be_read_is_refused_not_dropped() {
        for (text, shown) in [
            ("Deploy AMF with 1e3 cpu", "'1e3'"),
            ("Deploy AMF with cpu 1e3", "'1e3'"),
            ("Deploy AMF with -1 cpu", "'-1'"),
            ("Deploy AMF with 0 cpu", "'0'"),
            ("Deploy AMF with 2 gigabytes of memory", "'2 gigabytes'"),
            ("Deploy AMF with two GB of memory", "'two GB'"),
            ("Deploy AMF with 2 memory", "'2'"),
            ("Deploy AMF with 1gb memory", "'1gb'"),
            ("Deploy AMF with 3..5 cpu", "'3..5'"),
            ("Deploy AMF with 500 m millicores", "'500 m'"),
        ] {
            let text = format!("{text} in namespace core5g");
            let reason = refused(&text);
            assert!(reason.contains(shown), "{text}: {reason}");
            assert!(
                reason.contains("quantity Kubernetes understands"),
                "{text}: {reason}"
            );
        }
    }

    #[test]
    fn separators_and_leading_dots_do_not_change_an_amount() {
        // These used to read as cpu 5 and memory 5Gi: ".5" lost its dot, and "1,5"
        // split into 1 and 5.
        let spec = check(
            "Deploy AMF with .5 cpu in namespace core5g",
            deploy(&[Amf], "core5g"),
        );
        let resources = spec.resources.expect("resources");
        assert_eq!(resources.cpu.as_deref(), Some(".5"));
        assert_refused(
            "Deploy AMF with 1,5 cpu in namespace core5g",
            &["'1,5'", "cpu quantity"],
        );
        assert_refused(
            "Deploy AMF with 1,5Gi memory in namespace core5g",
            &["'1,5Gi'", "memory quantity"],
        );
    }
}
