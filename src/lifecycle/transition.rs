//! Which lifecycle events an intent's status calls for, and which of them were already
//! published: a pure function of the object, so the watcher, a restart and a second
//! replica all reach the same answer from the same object.
//!
//! What was published is recorded on the object itself, in the annotation
//! [`REPORTED_ANNOTATION`] (`deployed@3,failed@3`: stage and generation), patched by the
//! watcher once the broker has acknowledged the event. Only the current generation's
//! entries are kept, so the annotation stays a few bytes.

use crate::intent::{NetworkIntent, Phase};
use crate::outcome::Stage;

/// Annotation recording the lifecycle events already published for the object.
pub const REPORTED_ANNOTATION: &str = "nephoran.com/reported";

/// Longest [`REPORTED_ANNOTATION`] read, in bytes: the watcher writes at most two short
/// entries; a longer value was not written by it and is read as "nothing reported" (at
/// worst an event is published again, under the same event id).
pub const MAX_REPORTED_BYTES: usize = 256;

/// A lifecycle event the status calls for: `stage` of generation `generation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Transition {
    pub stage: Stage,
    pub generation: i64,
}

impl Transition {
    fn entry(self) -> String {
        format!("{}@{}", self.stage.as_str(), self.generation)
    }
}

/// The transitions the object's status shows for its current generation: `deployed`
/// when the `Deployed` condition is True, `failed` when the phase is `Failed`, each only
/// when the status's `observedGeneration` is the object's `generation` (a status about an
/// older spec says nothing about the current one).
pub fn shown(intent: &NetworkIntent) -> Vec<Transition> {
    let (Some(status), Some(generation)) = (&intent.status, intent.metadata.generation) else {
        return Vec::new();
    };
    if status.observed_generation != Some(generation) {
        return Vec::new();
    }
    let mut shown = Vec::new();
    if status.is_deployed() {
        shown.push(Transition {
            stage: Stage::Deployed,
            generation,
        });
    }
    if status.phase == Some(Phase::Failed) {
        shown.push(Transition {
            stage: Stage::Failed,
            generation,
        });
    }
    shown
}

/// The transitions recorded in the object's [`REPORTED_ANNOTATION`]; entries that do not
/// parse are ignored.
pub fn reported(intent: &NetworkIntent) -> Vec<Transition> {
    let Some(value) = intent.annotation(REPORTED_ANNOTATION) else {
        return Vec::new();
    };
    if value.len() > MAX_REPORTED_BYTES {
        return Vec::new();
    }
    value
        .split(',')
        .filter_map(|entry| {
            let (stage, generation) = entry.trim().split_once('@')?;
            let stage = [Stage::Deployed, Stage::Failed]
                .into_iter()
                .find(|s| s.as_str() == stage)?;
            Some(Transition {
                stage,
                generation: generation.parse().ok()?,
            })
        })
        .collect()
}

/// The transitions shown and not yet reported.
pub fn due(intent: &NetworkIntent) -> Vec<Transition> {
    let reported = reported(intent);
    shown(intent)
        .into_iter()
        .filter(|t| !reported.contains(t))
        .collect()
}

/// The annotation value after `transition` is published: the entries of its generation
/// already there, and it.
pub fn recorded(intent: &NetworkIntent, transition: Transition) -> String {
    let mut entries: Vec<Transition> = reported(intent)
        .into_iter()
        .filter(|t| t.generation == transition.generation && *t != transition)
        .collect();
    entries.push(transition);
    entries
        .into_iter()
        .map(Transition::entry)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::NetworkIntentStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn intent(generation: i64, status: Option<NetworkIntentStatus>) -> NetworkIntent {
        let spec = serde_json::from_value(serde_json::json!({
            "intent": "deploy amf",
            "intentType": "deployment",
            "priority": "medium",
            "targetNamespace": "default",
            "targetComponents": ["amf"],
        }))
        .unwrap();
        let mut intent = NetworkIntent::for_key("k1", spec);
        intent.metadata.generation = Some(generation);
        intent.status = status;
        intent
    }

    fn status(phase: Phase, deployed: &str, observed: i64) -> NetworkIntentStatus {
        NetworkIntentStatus {
            phase: Some(phase),
            message: Some("m".into()),
            observed_generation: Some(observed),
            conditions: vec![Condition {
                type_: "Deployed".into(),
                status: deployed.into(),
                reason: "R".into(),
                message: "m".into(),
                observed_generation: Some(observed),
                last_transition_time: Time(Default::default()),
            }],
        }
    }

    fn annotate(mut intent: NetworkIntent, value: &str) -> NetworkIntent {
        intent
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(REPORTED_ANNOTATION.into(), value.into());
        intent
    }

    #[test]
    fn deployed_and_failed_of_the_current_generation_are_due() {
        let deployed = intent(2, Some(status(Phase::Deployed, "True", 2)));
        assert_eq!(
            due(&deployed),
            [Transition {
                stage: Stage::Deployed,
                generation: 2
            }]
        );
        let failed = intent(2, Some(status(Phase::Failed, "False", 2)));
        assert_eq!(
            due(&failed),
            [Transition {
                stage: Stage::Failed,
                generation: 2
            }]
        );
        assert!(due(&intent(2, None)).is_empty());
        assert!(due(&intent(2, Some(status(Phase::Deploying, "Unknown", 2)))).is_empty());
    }

    #[test]
    fn a_status_about_an_older_generation_is_not_due() {
        assert!(due(&intent(3, Some(status(Phase::Deployed, "True", 2)))).is_empty());
    }

    #[test]
    fn what_was_reported_is_not_due_again() {
        let deployed = intent(2, Some(status(Phase::Deployed, "True", 2)));
        let value = recorded(&deployed, due(&deployed)[0]);
        assert_eq!(value, "deployed@2");
        assert!(due(&annotate(deployed.clone(), &value)).is_empty());
        // An older generation's record does not cover this one.
        assert_eq!(due(&annotate(deployed.clone(), "deployed@1")).len(), 1);
        // Garbage and oversize values are nothing reported.
        assert_eq!(due(&annotate(deployed.clone(), "x@@,deployed@zz")).len(), 1);
        let long = format!("deployed@2,{}", " ".repeat(MAX_REPORTED_BYTES));
        assert_eq!(due(&annotate(deployed, &long)).len(), 1);
    }

    #[test]
    fn the_record_keeps_the_current_generation_only() {
        let failed = annotate(
            intent(3, Some(status(Phase::Failed, "False", 3))),
            "deployed@2,deployed@3",
        );
        let value = recorded(&failed, due(&failed)[0]);
        assert_eq!(value, "deployed@3,failed@3");
    }
}
