//! Following one submitted request on the outcomes topic: which events are about it and
//! what each means for `submit --wait`. Pure; reading and printing are the caller's.
//!
//! An event is about the request when it carries the request's idempotency key *and*
//! names the request's own place (topic, partition, offset) as its source: an older
//! submission with the same key, or a forged event with it, is not this one's. The only
//! other events taken are those of the original a `duplicate` points to, and only the
//! stages that can still come after its terminal one (`deployed`, `failed`).

use std::collections::HashSet;

use crate::message::SourceRef;
use crate::outcome::{OutcomeEvent, Stage};
use crate::show::place;

/// The stage that counts as success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// The intent is applied (written to the cluster or the directory).
    Applied,
    /// The operator reports the intent deployed (needs `INTENT_SINK=kube`).
    Deployed,
}

/// What one event means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Not about this request, or a repeat of an event already taken.
    Ignore,
    /// A stage on the way; show it.
    Progress,
    /// The request duplicates one applied earlier, whose `deployed` (or `failed`) may have
    /// been published before the reader started: read the outcome partition `partition`
    /// again from its start (all events of a key share one).
    LookBack { partition: i32 },
    /// Done: the target stage was reached; the text says how when it is not plain.
    Succeeded(Option<String>),
    /// Done: rejected or failed, for this reason.
    Refused(Reason),
}

/// Why a request did not succeed: the event's machine-readable code and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub stage: Stage,
    pub code: String,
    pub message: String,
}

/// The original a `duplicate` refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Original {
    /// This request is not a duplicate (or not known to be one yet).
    None,
    /// A duplicate of a request still being processed: it is on the same input partition
    /// at a lower offset, and its events are taken until its terminal one names it.
    Pending,
    /// A duplicate of the request at this place.
    Known(SourceRef),
}

/// Most distinct (stage, source) pairs remembered to drop repeats; beyond it repeats are
/// shown again, which is harmless, while memory stays bounded whatever the topic holds.
const MAX_SEEN: usize = 64;

/// The state of following one request.
#[derive(Debug)]
pub struct Follow {
    key: String,
    source: SourceRef,
    target: Target,
    original: Original,
    seen: HashSet<(Stage, SourceRef)>,
}

impl Follow {
    /// Follows the request produced with idempotency key `key` at `source`.
    pub fn new(key: &str, source: SourceRef, target: Target) -> Self {
        Self {
            key: key.to_string(),
            source,
            target,
            original: Original::None,
            seen: HashSet::new(),
        }
    }

    /// What `event`, read at `at` on the outcomes topic, means for the request.
    pub fn observe(&mut self, event: &OutcomeEvent, at: &SourceRef) -> Step {
        if event.idempotency_key != self.key {
            return Step::Ignore;
        }
        let ours = event.source == self.source;
        let of_original = !ours
            && match &self.original {
                Original::None => false,
                Original::Pending => {
                    event.source.topic == self.source.topic
                        && event.source.partition == self.source.partition
                        && event.source.offset < self.source.offset
                }
                Original::Known(original) => {
                    event.source == *original
                        && matches!(event.stage, Stage::Deployed | Stage::Failed)
                }
            };
        if !ours && !of_original {
            return Step::Ignore;
        }
        let pair = (event.stage, event.source.clone());
        if self.seen.contains(&pair) {
            return Step::Ignore;
        }
        if self.seen.len() < MAX_SEEN {
            self.seen.insert(pair);
        }
        let of_the_original = |what: &str| {
            Some(format!(
                "the request it duplicates ({}) was {what}",
                place(&event.source)
            ))
        };
        match event.stage {
            Stage::Received | Stage::Translated | Stage::DeadLettered => Step::Progress,
            Stage::Applied => {
                if of_original {
                    self.original = Original::Known(event.source.clone());
                }
                match self.target {
                    Target::Applied if of_original => Step::Succeeded(of_the_original("applied")),
                    Target::Applied => Step::Succeeded(None),
                    Target::Deployed => Step::Progress,
                }
            }
            Stage::Deployed if of_original => Step::Succeeded(of_the_original("deployed")),
            Stage::Deployed => Step::Succeeded(None),
            Stage::Rejected | Stage::Failed => {
                let (code, message) = match &event.error {
                    Some(error) => (error.code.as_str().to_string(), error.message.clone()),
                    None => (
                        "unknown".to_string(),
                        "(the event gives no reason)".to_string(),
                    ),
                };
                let message = if of_original {
                    format!(
                        "the request it duplicates ({}) was {}: {message}",
                        place(&event.source),
                        event.stage.as_str()
                    )
                } else {
                    message
                };
                Step::Refused(Reason {
                    stage: event.stage,
                    code,
                    message,
                })
            }
            Stage::Duplicate if of_original => Step::Progress,
            Stage::Duplicate => self.duplicate(event, at),
        }
    }

    fn duplicate(&mut self, event: &OutcomeEvent, at: &SourceRef) -> Step {
        let Some(original) = &event.original else {
            self.original = Original::Pending;
            return Step::Progress;
        };
        let was = format!(
            "a duplicate of the request at {}, which was {}",
            place(&original.source),
            original.stage.as_str()
        );
        match (original.stage, self.target) {
            (Stage::Applied, Target::Applied) | (Stage::Deployed, _) => Step::Succeeded(Some(was)),
            (Stage::Applied, Target::Deployed) => {
                self.original = Original::Known(original.source.clone());
                Step::LookBack {
                    partition: at.partition,
                }
            }
            (stage, _) => Step::Refused(Reason {
                stage: Stage::Duplicate,
                code: match &event.error {
                    Some(error) => error.code.as_str().to_string(),
                    None => format!("duplicate_of_{}", stage.as_str()),
                },
                message: format!(
                    "{was}; its reason: outcomes --keys {}",
                    crate::show::escaped(&self.key)
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{IdempotencyKey, KeySource};
    use crate::outcome::{ErrorCode, Failure};

    fn at(topic: &str, partition: i32, offset: i64) -> SourceRef {
        SourceRef {
            topic: topic.into(),
            partition,
            offset,
        }
    }

    fn event(key: &str, stage: Stage, source: SourceRef) -> OutcomeEvent {
        let key = IdempotencyKey {
            value: key.into(),
            source: KeySource::Header,
        };
        OutcomeEvent::new(&key, stage, &source)
    }

    const READ: fn() -> SourceRef = || at("intent-outcomes", 2, 40);

    #[test]
    fn takes_only_events_of_its_key_and_its_own_place() {
        let ours = at("service-requests", 1, 7);
        let mut follow = Follow::new("k", ours.clone(), Target::Applied);
        // An older submission with the same key, and another key at our place.
        let mut older = event("k", Stage::Rejected, at("service-requests", 1, 3));
        older.error = Some(Failure::new(ErrorCode::PolicyDenied, "no"));
        assert_eq!(follow.observe(&older, &READ()), Step::Ignore);
        assert_eq!(
            follow.observe(&event("other", Stage::Applied, ours.clone()), &READ()),
            Step::Ignore
        );
        let received = event("k", Stage::Received, ours.clone());
        assert_eq!(follow.observe(&received, &READ()), Step::Progress);
        assert_eq!(
            follow.observe(&received, &READ()),
            Step::Ignore,
            "a re-publication is not shown twice"
        );
        assert_eq!(
            follow.observe(&event("k", Stage::Applied, ours), &READ()),
            Step::Succeeded(None)
        );
    }

    #[test]
    fn waits_for_deployed_when_asked_and_reports_failures_with_their_reason() {
        let ours = at("service-requests", 0, 1);
        let mut follow = Follow::new("k", ours.clone(), Target::Deployed);
        assert_eq!(
            follow.observe(&event("k", Stage::Applied, ours.clone()), &READ()),
            Step::Progress
        );
        let mut failed = event("k", Stage::Failed, ours);
        failed.error = Some(Failure::new(ErrorCode::ApplyFailed, "quota exceeded"));
        assert_eq!(
            follow.observe(&failed, &READ()),
            Step::Refused(Reason {
                stage: Stage::Failed,
                code: "apply_failed".into(),
                message: "quota exceeded".into()
            })
        );
    }

    #[test]
    fn a_duplicate_of_an_applied_request_succeeds_or_looks_back_for_its_deployment() {
        let ours = at("service-requests", 0, 9);
        let first = at("service-requests", 0, 4);
        let mut duplicate = event("k", Stage::Duplicate, ours.clone());
        duplicate.original = Some(crate::outcome::Original {
            stage: Stage::Applied,
            intent: None,
            source: first.clone(),
        });
        let mut applied = Follow::new("k", ours.clone(), Target::Applied);
        assert!(matches!(
            applied.observe(&duplicate, &READ()),
            Step::Succeeded(Some(note)) if note.contains("duplicate") && note.contains("@4")
        ));

        let mut deployed = Follow::new("k", ours, Target::Deployed);
        assert_eq!(
            deployed.observe(&duplicate, &READ()),
            Step::LookBack { partition: 2 }
        );
        // Re-read from the start: the original's own earlier stages are not this one's.
        assert_eq!(
            deployed.observe(&event("k", Stage::Received, first.clone()), &READ()),
            Step::Ignore
        );
        assert!(matches!(
            deployed.observe(&event("k", Stage::Deployed, first), &READ()),
            Step::Succeeded(Some(note)) if note.contains("deployed")
        ));
    }

    #[test]
    fn a_duplicate_of_a_rejected_request_is_refused() {
        let ours = at("service-requests", 0, 9);
        let mut duplicate = event("k", Stage::Duplicate, ours.clone());
        duplicate.original = Some(crate::outcome::Original {
            stage: Stage::Rejected,
            intent: None,
            source: at("service-requests", 0, 2),
        });
        let mut follow = Follow::new("k", ours, Target::Applied);
        let Step::Refused(reason) = follow.observe(&duplicate, &READ()) else {
            panic!("refused")
        };
        assert_eq!(reason.code, "duplicate_of_rejected");
        assert!(reason.message.contains("@2"), "{}", reason.message);
    }

    #[test]
    fn a_duplicate_of_a_request_in_progress_follows_the_earlier_one() {
        let ours = at("service-requests", 3, 9);
        let mut duplicate = event("k", Stage::Duplicate, ours.clone());
        duplicate.original = None;
        let mut follow = Follow::new("k", ours, Target::Applied);
        assert_eq!(follow.observe(&duplicate, &READ()), Step::Progress);
        // Not on our partition, or after us: not the original.
        assert_eq!(
            follow.observe(
                &event("k", Stage::Applied, at("service-requests", 2, 1)),
                &READ()
            ),
            Step::Ignore
        );
        assert_eq!(
            follow.observe(
                &event("k", Stage::Applied, at("service-requests", 3, 10)),
                &READ()
            ),
            Step::Ignore
        );
        assert!(matches!(
            follow.observe(
                &event("k", Stage::Applied, at("service-requests", 3, 5)),
                &READ()
            ),
            Step::Succeeded(Some(_))
        ));
    }
}
