//! What a request asks to do: deploy or scale, and nothing else.
//!
//! Deletions (stopping included) and negations are refused even when a supported action
//! is also named, since "deploy AMF and delete SMF" must not half-happen; so are two
//! kinds of action in one text ("scale the AMF and add an SMF", "deploy AMF and restart
//! SMF"). These refusals are part of the screen. Actions the rules do not implement
//! ("upgrade") are refused by the rules only: a model may read them. Past participles
//! ("AMF deployed with 3 replicas", "scaled to 8") read as the action when no verb does.

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
    "terminating", "termination", "undeploy", "undeployed", "undeploying", "uninstall",
    "uninstalled", "uninstalling", "decommission", "decommissioned", "decommissioning",
    "deprovision", "deprovisioned", "deprovisioning", "unprovision", "teardown",
    "tear down", "tearing down", "torn down", "kill", "killed", "killing", "purge",
    "purged", "erase", "erased", "wipe", "wiped", "drop", "dropped", "dropping", "nuke",
    "nuked", "retire", "retired", "retiring", "scrap", "scrapped", "evict", "get rid",
    "dispose",
]));

/// Stopping a network function is a deletion in all but name.
#[rustfmt::skip]
static STOPPING: LazyLock<Phrases> = LazyLock::new(|| Phrases::new(&[
    "stop", "stopped", "stopping", "shut down", "shutdown", "shutting down", "switch off",
    "turn off", "power off", "take down", "take offline", "disable", "disabled",
    "disabling", "deactivate", "deactivated", "halt", "halted", "pause", "paused",
    "suspend", "suspended",
]));

/// A negation can flip any part of the sentence; rules cannot tell which, so they refuse.
#[rustfmt::skip]
static NEGATION: LazyLock<Phrases> = LazyLock::new(|| Phrases::new(&[
    "not", "no", "never", "dont", "doesnt", "didnt", "cant", "cannot", "wont", "shouldnt",
    "mustnt", "neednt", "isnt", "arent", "without", "except", "excluding", "nor",
    "neither", "instead", "rather than", "avoid",
]));

/// Actions the rules do not implement; named so the refusal can say which one was asked.
#[rustfmt::skip]
static UNSUPPORTED_ACTIONS: LazyLock<Phrases> = LazyLock::new(|| Phrases::new(&[
    "upgrade", "upgrading", "update", "updating", "downgrade", "restart", "restarting",
    "reboot", "migrate", "migrating", "rollback", "roll back", "revert", "undo", "patch",
    "optimise", "optimize", "optimising", "optimizing", "reconfigure", "configure",
    "replace", "move", "cancel", "autoscale", "heal",
]));

/// Deployment verbs; "deployment" itself is a noun ("scale the AMF deployment").
#[rustfmt::skip]
static DEPLOY: LazyLock<Phrases> = LazyLock::new(|| Phrases::new(&[
    "deploy", "deploying", "install", "installing", "create", "creating", "provision",
    "provisioning", "instantiate", "instantiating", "launch", "launching", "roll out",
    "rolling out", "rollout", "set up", "setup", "spin up", "spinning up", "bring up",
    "bringing up", "stand up", "standing up", "onboard", "onboarding",
]));

/// Past participles of the deployment verbs: "AMF deployed with 3 replicas". Read as
/// the action only when no verb is: in "scale the deployed AMF" they describe.
#[rustfmt::skip]
static DEPLOYED: LazyLock<Phrases> = LazyLock::new(|| Phrases::new(&[
    "deployed", "installed", "created", "provisioned", "instantiated", "launched",
    "rolled out", "spun up", "brought up", "stood up", "onboarded",
]));

/// Scaling verbs; "set ... replicas" and "add ... replica" are read separately.
#[rustfmt::skip]
static SCALE: LazyLock<Phrases> = LazyLock::new(|| Phrases::new(&[
    "scale", "scaling", "rescale", "resize", "scaleout", "scaleup", "scalein", "scaledown",
    "upscale", "downscale", "increase", "increasing", "reduce", "reducing", "decrease",
    "decreasing", "grow", "shrink", "bump",
]));

/// Past participles of the scaling verbs: "AMF scaled to 8". Read as the action only
/// when no verb is.
#[rustfmt::skip]
static SCALED: LazyLock<Phrases> = LazyLock::new(|| Phrases::new(&[
    "scaled", "rescaled", "resized", "upscaled", "downscaled", "increased", "reduced",
    "decreased", "grown", "shrunk", "bumped",
]));

/// Refuses deletions, stopping and negations, even when a supported action is also
/// named: "deploy AMF and delete SMF" must not half-happen. Part of the screen.
pub(super) fn refuse_deletion_and_negation(words: &[Word]) -> Result<(), Untranslatable> {
    if let Some(word) = DELETION.find(words) {
        return refuse(format!(
            "the text asks to '{word}': deletion is never done from a request"
        ));
    }
    if let Some(word) = STOPPING.find(words) {
        return refuse(format!(
            "the text asks to '{word}': stopping a network function is a deletion in all \
             but name, and deletion is never done from a request"
        ));
    }
    if let Some(word) = NEGATION.find(words) {
        return refuse(format!(
            "the text contains the negation '{word}', which rules cannot safely interpret"
        ));
    }
    Ok(())
}

/// Refuses actions the rules do not implement ("upgrade", "restart"). Not part of the
/// screen: a model may read them as a maintenance or optimisation intent.
pub(super) fn refuse_unsupported_actions(words: &[Word]) -> Result<(), Untranslatable> {
    if let Some(word) = UNSUPPORTED_ACTIONS.find(words) {
        return refuse(format!(
            "the text asks to '{word}', which is not a supported action (deploy or scale)"
        ));
    }
    Ok(())
}

/// The verbs of the actions a text asks for, one per kind of action, in the order:
/// deploy, scale, add a component, another action. Participles count only when no verb
/// of either kind is written.
fn actions(words: &[Word]) -> Vec<(&'static str, &'static str)> {
    let mut deploy = DEPLOY.find(words);
    let mut scale = SCALE.find(words);
    if deploy.is_none() && scale.is_none() {
        deploy = DEPLOYED.find(words);
        scale = SCALED.find(words);
    }
    let mut adds_replicas = false;
    if deploy.is_none() && scale.is_none() {
        // "set"/"add" are scaling verbs only in a request that deploys nothing: in
        // "deploy AMF and set replicas to 3" they just give the count.
        scale = set_replicas(words);
        if scale.is_none() {
            scale = add_replicas(words);
            adds_replicas = scale.is_some();
        }
    }
    let mut found = Vec::new();
    if let Some(d) = deploy {
        found.push(("deploy", d));
    }
    if let Some(s) = scale {
        found.push(("scale", s));
    }
    // "add an SMF": a component added, which is neither of the above.
    if add_component(words) && !adds_replicas {
        found.push(("add", "add"));
    }
    if let Some(other) = UNSUPPORTED_ACTIONS.find(words) {
        found.push(("other", other));
    }
    found
}

/// Refuses a text that asks for two kinds of action ("scale the AMF and add an SMF",
/// "deploy AMF and restart SMF"): one intent carries one action, and doing one of them
/// would report the other done. Part of the screen.
pub(super) fn refuse_two_actions(words: &[Word]) -> Result<(), Untranslatable> {
    match actions(words).as_slice() {
        [("deploy", d), ("scale", s), ..] => refuse(format!(
            "the text asks both to deploy ('{d}') and to scale ('{s}'): send them as two requests"
        )),
        [(_, a), (_, b), ..] => refuse(format!(
            "the text asks for two actions ('{a}' and '{b}'): one intent carries one \
             action; send them as two requests"
        )),
        _ => Ok(()),
    }
}

/// The action of a text the screen let through (so it names at most one).
pub(super) fn action(words: &[Word]) -> Result<Action, Untranslatable> {
    match actions(words).first() {
        Some(("deploy", _)) => Ok(Action::Deploy),
        Some(("scale", _)) => Ok(Action::Scale),
        _ => refuse("no supported action (deploy or scale) in the intent text"),
    }
}

/// True when the only action the text names is one the rules do not implement
/// ("upgrade AMF to 2.1"): its numbers are not replica counts.
pub(super) fn other_action_only(words: &[Word]) -> bool {
    matches!(actions(words).as_slice(), [("other", _)])
}

/// True when the text deploys (for the screen's reading of "up to 5" as a bound).
pub(super) fn deploys(words: &[Word]) -> bool {
    actions(words)
        .first()
        .is_some_and(|(kind, _)| *kind == "deploy")
}

/// "add an SMF", "add 2 UPFs": "add" followed closely by a component rather than a
/// replica word.
fn add_component(words: &[Word]) -> bool {
    (0..words.len())
        .filter(|&i| word_at(words, i, "add"))
        .any(|i| {
            let next: Vec<&Word> = words.iter().skip(i + 1).take(4).collect();
            let component = next.iter().position(|w| w.role == Role::Component);
            let replica = next
                .iter()
                .position(|w| w.is_free() && is_replica_word(w.text));
            match (component, replica) {
                // "add AMF replicas" adds replicas; "add an AMF with 2 replicas" an AMF
                (Some(c), Some(r)) => r > c + 1,
                (Some(_), None) => true,
                (None, _) => false,
            }
        })
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
    fn stopping_is_refused_as_a_deletion() {
        for text in [
            "Stop the AMF in namespace core5g",
            "Shut down the SMF in namespace core5g",
            "Turn off the UPF in namespace core5g",
            "Disable the NRF in namespace core5g",
            "Suspend the AMF in namespace core5g",
        ] {
            let reason = refused(text);
            assert!(reason.contains("stopping"), "{text:?}: {reason}");
        }
        for text in [
            "Decommission the AMF in namespace core5g",
            "Get rid of the SMF in namespace core5g",
            "The AMF should be torn down in namespace core5g",
            "Retire the UPF in namespace core5g",
        ] {
            let reason = refused(text);
            assert!(reason.contains("deletion"), "{text:?}: {reason}");
        }
    }

    #[test]
    fn two_actions_are_refused() {
        for (text, words) in [
            (
                "Scale the AMF to 3 and add an SMF in namespace core5g",
                &["two actions", "'scale'", "'add'"][..],
            ),
            (
                "Scale the AMF and add an SMF in namespace core5g",
                &["two actions"],
            ),
            (
                "Deploy AMF and restart SMF in namespace core5g",
                &["two actions", "'deploy'", "'restart'"],
            ),
            (
                "AMF deployed and scaled to 3 in namespace core5g",
                &["both", "'deployed'", "'scaled'"],
            ),
        ] {
            assert_refused(text, words);
        }
        // a participle beside a verb describes; "to add" a replica is how it scales
        check(
            "Scale the deployed AMF to 5 in namespace core5g",
            scale(&[Amf], "core5g").replicas(5),
        );
        check(
            "Scale AMF to add another replica in namespace core5g",
            scale(&[Amf], "core5g").by(1),
        );
        check(
            "Deploy the installed AMF with 2 replicas in namespace core5g",
            deploy(&[Amf], "core5g").replicas(2),
        );
    }

    #[test]
    fn past_participles_read_as_the_action() {
        check(
            "AMF deployed with 3 replicas in namespace core5g",
            deploy(&[Amf], "core5g").replicas(3),
        );
        check(
            "I need the SMF installed in namespace core5g",
            deploy(&[Smf], "core5g"),
        );
        check(
            "UPF scaled to 8 in namespace core5g",
            scale(&[Upf], "core5g").replicas(8),
        );
    }

    #[test]
    fn deploy_and_scale_together_are_refused() {
        assert_refused(
            "Deploy AMF and scale SMF to 3 in namespace core5g",
            &["both", "deploy", "scale"],
        );
    }
}
