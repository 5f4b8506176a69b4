//! CPU and memory amounts: "500m cpu", "cpu 2", "memory: 1Gi", "1Gi of ram".
//!
//! Quantities are checked here per resource, more strictly than validation's generic
//! quantity check, so that "1GB memory" is refused with the spelling Kubernetes expects
//! instead of reaching the operator. The keyword and its quantity are claimed, so that
//! "2 cpus" is not read as a replica count.

use super::counts::is_replica_word;
use super::refuse;
use super::text::{Role, Text};
use crate::intent::Resources;
use crate::translate::Untranslatable;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResourceKind {
    Cpu,
    Memory,
}

impl ResourceKind {
    fn of(word: &str) -> Option<Self> {
        match word {
            "cpu" | "cpus" | "vcpu" | "vcpus" => Some(Self::Cpu),
            "memory" | "mem" | "ram" => Some(Self::Memory),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Memory => "memory",
        }
    }

    /// Quantities as Kubernetes writes them: cpu `2`, `0.5`, `500m`; memory `512Mi`, `1G`.
    fn accepts(self, quantity: &str) -> bool {
        let split = quantity
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(quantity.len());
        let (number, suffix) = quantity.split_at(split);
        let numeric = number.parse::<f64>().is_ok_and(|n| n > 0.0);
        numeric
            && match self {
                Self::Cpu => matches!(suffix, "" | "m"),
                Self::Memory => {
                    matches!(suffix, "Ki" | "Mi" | "Gi" | "Ti" | "k" | "M" | "G" | "T")
                }
            }
    }

    fn example(self) -> &'static str {
        match self {
            Self::Cpu => "500m or 2",
            Self::Memory => "512Mi or 1Gi",
        }
    }
}

/// Looks like an attempt at a quantity ("1GB", "512mb", "1,5"): digits, then letters.
fn looks_like_quantity(raw: &str) -> bool {
    let rest = raw.trim_start_matches(|c: char| c.is_ascii_digit() || matches!(c, '.' | ','));
    rest.len() < raw.len() && rest.chars().all(|c| c.is_ascii_alphabetic())
}

impl Text {
    /// "500m cpu", "cpu 500m", "2 cpus", "1Gi memory", "memory: 1Gi", "1Gi of ram".
    pub(super) fn claim_resources(&mut self) -> Result<Option<Resources>, Untranslatable> {
        let mut resources = Resources::default();
        for at in 0..self.len() {
            let Some(kind) = self.free(at).and_then(ResourceKind::of) else {
                continue;
            };
            let Some((value_at, value)) = self.quantity_near(at, kind)? else {
                continue;
            };
            self.claim(at, Role::Resource);
            self.claim(value_at, Role::Resource);
            let slot = match kind {
                ResourceKind::Cpu => &mut resources.cpu,
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

    /// The free token next to a resource keyword holding its quantity (before it first),
    /// as its position and the quantity as written.
    fn quantity_near(
        &self,
        at: usize,
        kind: ResourceKind,
    ) -> Result<Option<(usize, String)>, Untranslatable> {
        let before = if self.free_before(at, 1) == Some("of") {
            at.checked_sub(2)
        } else {
            at.checked_sub(1)
        };
        // "cpu 3 replicas": a number followed by a replica word is the count, not the cpu.
        let after = Some(at + 1).filter(|&i| !self.free(i + 1).is_some_and(is_replica_word));
        let candidates = [before, after];
        for i in candidates.into_iter().flatten() {
            if let Some(raw) = self.free_raw(i).filter(|raw| kind.accepts(raw)) {
                return Ok(Some((i, raw.to_string())));
            }
        }
        for i in candidates.into_iter().flatten() {
            if let Some(raw) = self.free_raw(i).filter(|raw| looks_like_quantity(raw)) {
                return refuse(format!(
                    "'{raw}' is not a {} quantity Kubernetes understands (e.g. {})",
                    kind.name(),
                    kind.example()
                ));
            }
        }
        Ok(None)
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
            "Deploy AMF with 1GB memory in namespace core5g",
            &["'1GB'", "memory", "1Gi"],
        );
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
