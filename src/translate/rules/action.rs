//! What a request asks to do: deploy or scale, and nothing else.
//!
//! Deletions, negations and actions the rules do not implement are refused even when a
//! supported action is also named, since "deploy AMF and delete SMF" must not
//! half-happen; a request that both deploys and scales is refused as two requests in one.

use std::sync::LazyLock;

use super::counts::is_replica_word;
use super::number::{number, Number};
use super::refuse;
use super::text::{free_word, word_at, Phrases, Role, Word};
use crate::translate::Untranslatable;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Deploy,
    Scale,
}

/// Deletion never translates, whatever else the text asks.
#[rustfmt::skip]
static DELETION: LazyLock<Phrases> = LazyLock::new(|| Phrases::new(&[
    "delete", "deletes", "deleted", "deleting", "deletion", "remove", "removes", "removed",
    "removing", "removal", "destroy", "destroyed", "destroying", "terminate", "terminated",
    "terminating", "termination", "undeploy", "undeploying", "uninstall", "uninstalling",
    "decommission", "decommissioning", "deprovision", "teardown", "tear down", "kill",
    "purge", "erase", "wipe", "drop", "dropping",
]));

/// A negation can flip any part of the sentence; rules cannot tell which, so they refuse.
#[rustfmt::skip]
static NEGATION: LazyLock<Phrases> = LazyLock::new(|| Phrases::new(&[
    "not", "no", "never", "dont", "doesnt", "didnt", "cant", "cannot", "wont", "shouldnt",
    "without", "except", "excluding", "nor",
]));

/// Actions the rules do not implement; named so the refusal can say which one was asked.
#[rustfmt::skip]
static UNSUPPORTED_ACTIONS: LazyLock<Phrases> = LazyLock::new(|| Phrases::new(&[
    "upgrade", "upgrading", "update", "updating", "downgrade", "restart", "restarting",
    "reboot", "migrate", "migrating", "rollback", "roll back", "revert", "undo", "patch",
    "optimise", "optimize", "optimising", "optimizing", "reconfigure", "configure", "stop",
    "stopping", "pause", "suspend", "replace", "move", "cancel", "autoscale", "heal",
]));

/// Deployment verbs; "deployment" itself is a noun ("scale the AMF deployment").
#[rustfmt::skip]
static DEPLOY: LazyLock<Phrases> = LazyLock::new(|| Phrases::new(&[
    "deploy", "deploying", "install", "installing", "create", "creating", "provision",
    "provisioning", "instantiate", "instantiating", "launch", "launching", "roll out",
    "rolling out", "rollout", "set up", "setup", "spin up", "spinning up", "bring up",
    "bringing up", "stand up", "standing up",
]));

/// Scaling verbs; "set ... replicas" and "add ... replica" are read separately.
#[rustfmt::skip]
static SCALE: LazyLock<Phrases> = LazyLock::new(|| Phrases::new(&[
    "scale", "scaling", "rescale", "resize", "scaleout", "scaleup", "scalein", "scaledown",
    "increase", "increasing", "reduce", "reducing", "decrease", "decreasing", "grow",
    "shrink",
]));

/// Refuses deletions, negations and actions the rules do not implement, even when a
/// supported action is also named: "deploy AMF and delete SMF" must not half-happen.
pub(super) fn refuse_unsupported_requests(words: &[Word]) -> Result<(), Untranslatable> {
    if let Some(word) = DELETION.find(words) {
        return refuse(format!(
            "the text asks to '{word}': deletion is never done from a request"
        ));
    }
    if let Some(word) = NEGATION.find(words) {
        return refuse(format!(
            "the text contains the negation '{word}', which rules cannot safely interpret"
        ));
    }
    if let Some(word) = UNSUPPORTED_ACTIONS.find(words) {
        return refuse(format!(
            "the text asks to '{word}', which is not a supported action (deploy or scale)"
        ));
    }
    Ok(())
}

pub(super) fn action(words: &[Word]) -> Result<Action, Untranslatable> {
    let deploy = DEPLOY.find(words);
    let mut scale = SCALE.find(words);
    if deploy.is_none() && scale.is_none() {
        // "set"/"add" are scaling verbs only in a request that deploys nothing: in
        // "deploy AMF and set replicas to 3" they just give the count.
        scale = set_replicas(words).or_else(|| add_replicas(words));
    }
    match (deploy, scale) {
        (Some(d), Some(s)) => refuse(format!(
            "the text asks both to deploy ('{d}') and to scale ('{s}'): send them as two requests"
        )),
        (Some(_), None) => Ok(Action::Deploy),
        (None, Some(_)) => Ok(Action::Scale),
        (None, None) => refuse("no supported action (deploy or scale) in the intent text"),
    }
}

/// "set AMF replicas to 5" and "set the AMF and SMF to 5" scale ("set up" deploys and is
/// matched before this).
fn set_replicas(words: &[Word]) -> Option<&'static str> {
    let sets: Vec<usize> = (0..words.len())
        .filter(|&i| word_at(words, i, "set") && !word_at(words, i + 1, "up"))
        .collect();
    let has_replicas = words.iter().any(|w| w.is_free() && is_replica_word(w.text));
    if !sets.is_empty() && has_replicas {
        return Some("set replicas");
    }
    sets.into_iter()
        .any(|i| set_components_to_number(words, i))
        .then_some("set to a count")
}

/// "set [the] AMF [and the SMF] to 5": only components between "set" and "to", so that
/// "set the log level to 5" names no count.
fn set_components_to_number(words: &[Word], set: usize) -> bool {
    let mut at = set + 1;
    let mut components = 0;
    while let Some(word) = words.get(at) {
        if word.role == Role::Component {
            components += 1;
        } else if !(word_at(words, at, "the") || word_at(words, at, "and")) {
            break;
        }
        at += 1;
    }
    components > 0
        && word_at(words, at, "to")
        && free_word(words, Some(at + 1)).is_some_and(|n| matches!(number(n), Number::Whole(_)))
}

/// "add a replica", "add 2 more AMF replicas" scale; "add an AMF" is not understood.
fn add_replicas(words: &[Word]) -> Option<&'static str> {
    (0..words.len())
        .filter(|&i| word_at(words, i, "add"))
        .any(|i| (i + 1..i + 5).any(|j| free_word(words, Some(j)).is_some_and(is_replica_word)))
        .then_some("add replicas")
}

#[cfg(test)]
mod tests {
    use super::super::expect::*;
    use crate::intent::Component::*;

    #[test]
    fn every_deploy_verb_deploys() {
        for text in [
            "Install SMF in namespace core5g",
            "create an SMF in namespace core5g",
            "Provision SMF in namespace core5g",
            "Instantiate the SMF in namespace core5g",
            "Launch SMF in namespace core5g",
            "Roll out SMF in namespace core5g",
            "Please set up SMF in namespace core5g",
            "Spin up an SMF in namespace core5g",
            "spin-up SMF in namespace core5g",
            "Bring up an SMF in namespace core5g",
            "Stand up the SMF in namespace core5g",
        ] {
            check(text, deploy(&[Smf], "core5g"));
        }
    }

    #[test]
    fn every_scale_verb_scales_to_a_count() {
        for text in [
            "Scale AMF to 5 in namespace core5g",
            "Scale up AMF to 5 replicas in namespace core5g",
            "scale-out AMF to 5 in namespace core5g",
            "Increase AMF replicas to 5 in namespace core5g",
            "Reduce AMF to 5 replicas in namespace core5g",
            "Decrease the AMF to 5 instances in namespace core5g",
            "Resize AMF to 5 in namespace core5g",
            "Set AMF replicas to 5 in namespace core5g",
            "Set AMF to 5 in namespace core5g",
            "Set the AMF to five replicas in namespace core5g",
            "grow AMF from 3 to 5 replicas in namespace core5g",
            "shrink AMF to five copies in namespace core5g",
            "Scale AMF up to 5 in namespace core5g",
        ] {
            check(text, scale(&[Amf], "core5g").replicas(5));
        }
    }

    #[test]
    fn set_scales_only_components_to_a_count() {
        check(
            "Set the AMF and the SMF to 3 in namespace core5g",
            scale(&[Amf, Smf], "core5g").replicas(3),
        );
        // something other than a component is being set: no count, no action
        assert_refused(
            "Set the AMF log level to 5 in namespace core5g",
            &["no supported action"],
        );
        assert_refused(
            "Set AMF to debug in namespace core5g",
            &["no supported action"],
        );
    }

    #[test]
    fn deletion_never_translates() {
        for text in [
            "delete amf in namespace core5g",
            "Delete the AMF",
            "Remove SMF from namespace core5g",
            "Deploy AMF and delete SMF in namespace core5g",
            "Tear down the UPF in namespace core5g",
            "terminate all AMF instances in namespace core5g",
            "uninstall amf in namespace core5g",
        ] {
            let reason = refused(text);
            assert!(reason.contains("deletion"), "{text:?}: {reason}");
        }
    }

    #[test]
    fn unsupported_actions_are_refused() {
        assert_refused("hello world", &["no supported action", "deploy or scale"]);
        assert_refused("AMF in namespace core5g", &["no supported action"]);
        assert_refused(
            "Optimise AMF in namespace core5g",
            &["optimise", "not a supported action"],
        );
        assert_refused("Upgrade AMF to 2.1 in namespace core5g", &["upgrade"]);
        assert_refused("Restart SMF in namespace core5g", &["restart"]);
        assert_refused("Add an AMF in namespace core5g", &["no supported action"]);
    }

    #[test]
    fn negations_are_refused() {
        assert_refused(
            "Don't deploy AMF in namespace core5g",
            &["negation", "dont"],
        );
        assert_refused(
            "Deploy AMF but not SMF in namespace core5g",
            &["negation", "not"],
        );
        assert_refused("Deploy AMF without SMF in namespace core5g", &["without"]);
    }

    #[test]
    fn deploy_and_scale_together_are_refused() {
        assert_refused(
            "Deploy AMF and scale SMF to 3 in namespace core5g",
            &["both", "deploy", "scale"],
        );
    }
}
