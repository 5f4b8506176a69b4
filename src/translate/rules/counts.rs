//! Replica counts and changes: "with 3 replicas", "to 5", "out by 2", "one more replica",
//! and the spec's scaling block made from them.
//!
//! A number is a replica count only in a position that says so (before a replica word or
//! a component, after "to", "by" or "replicas"); the phrasing decides between an absolute
//! count and a change. Counts the spec cannot carry are refused rather than approximated.
//! Two kinds of refusal are told apart ([`Problem`]): what no translator may read into
//! one count (a range, a count per component, two different counts, a negative or
//! fractional count, a change without a direction), which the screen refuses before any
//! model is asked, and what only the rules cannot read ("a dozen", bounds such as "at
//! least 3"), which a model may.

use std::sync::LazyLock;

use super::action::Action;
use super::number::{number, Number};
use super::text::{word_at, Phrases, Role, Text, Word};
use crate::intent::{Component, Scaling};
use crate::translate::Untranslatable;

#[rustfmt::skip]
const REPLICA_WORDS: &[&str] = &[
    "replica", "replicas", "instance", "instances", "copy", "copies", "pod", "pods",
];

/// Words that may follow "to 5" or "by 2" and leave the number a replica count; any other
/// noun ("to 5 clusters", "by 2 percent") means the number counts something else.
#[rustfmt::skip]
const AFTER_COUNT: &[&str] = &[
    "in", "on", "for", "and", "with", "within", "at", "please", "now", "immediately",
    "asap", "urgently", "then", "because", "as", "priority", "if", "so", "using", "the",
];

/// Words that, a little before a number, make it a bound ("at least 3", "max 5").
#[rustfmt::skip]
const BOUNDS: &[&str] = &[
    "max", "maximum", "min", "minimum", "least", "most", "than", "between", "upto",
];

/// Words that ask for autoscaling, where "between 2 and 8" is a pair of bounds (which a
/// model may map to minReplicas and maxReplicas) rather than a vague count.
#[rustfmt::skip]
const AUTOSCALING: &[&str] = &[
    "autoscale", "autoscaling", "autoscaler", "hpa", "autoscaled",
];

/// Words of the scaling verb that "out", "up", "in" and "down" may follow.
const SCALE_VERBS: &[&str] = &["scale", "scaled", "scaling", "rescale", "rescaled"];

/// Scaling verbs that say "up" by themselves.
#[rustfmt::skip]
static UP: LazyLock<Phrases> = LazyLock::new(|| Phrases::new(&[
    "scaleout", "scaleup", "upscale", "upscaled", "increase", "increased", "increasing",
    "grow", "grown", "bump", "bumped",
]));

/// Scaling verbs that say "down" by themselves.
#[rustfmt::skip]
static DOWN: LazyLock<Phrases> = LazyLock::new(|| Phrases::new(&[
    "scalein", "scaledown", "downscale", "downscaled", "reduce", "reduced", "reducing",
    "decrease", "decreased", "decreasing", "shrink", "shrunk",
]));

pub(super) fn is_replica_word(word: &str) -> bool {
    REPLICA_WORDS.contains(&word)
}

/// A replica change read from the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    To(u64),
    By(i64),
}

impl Change {
    fn describe(self) -> String {
        match self {
            Change::To(n) => format!("{n} replicas"),
            Change::By(d) => format!("a change of {d:+}"),
        }
    }
}

/// Why a count was not read.
#[derive(Debug)]
pub(super) enum Problem {
    /// No translator may read it into one count: the screen refuses it.
    Unsound(Untranslatable),
    /// The rules cannot read it; a model may ("a dozen", "at least 3").
    Unread(Untranslatable),
}

impl Problem {
    fn into_reason(self) -> Untranslatable {
        match self {
            Problem::Unsound(why) | Problem::Unread(why) => why,
        }
    }
}

fn unsound<T>(reason: impl Into<String>) -> Result<T, Problem> {
    Err(Problem::Unsound(Untranslatable::new(reason)))
}

fn unread<T>(reason: impl Into<String>) -> Result<T, Problem> {
    Err(Problem::Unread(Untranslatable::new(reason)))
}

/// Which way "by N" goes, read from the scaling words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Unknown,
    Up,
    Down,
    Both,
}

fn direction(words: &[Word]) -> Direction {
    let mut up = UP.find(words).is_some();
    let mut down = DOWN.find(words).is_some();
    for i in (0..words.len()).filter(|&i| SCALE_VERBS.iter().any(|v| word_at(words, i, v))) {
        // "scale out AMF", "scale AMF up", "scaled out"
        let near = |w: &str| (i + 1..i + 4).any(|j| word_at(words, j, w));
        up |= near("out") || near("up");
        down |= near("down") || scale_in_at(words, i);
    }
    match (up, down) {
        (true, true) => Direction::Both,
        (true, false) => Direction::Up,
        (false, true) => Direction::Down,
        (false, false) => Direction::Unknown,
    }
}

/// "scale in AMF", "scale-in the SMF": "in" right after "scale", unless it opens the
/// namespace phrase ("scale in namespace x", "scale in the core5g namespace").
fn scale_in_at(words: &[Word], scale: usize) -> bool {
    if !word_at(words, scale + 1, "in") {
        return false;
    }
    let next = if word_at(words, scale + 2, "the") {
        scale + 3
    } else {
        scale + 2
    };
    words.get(next).is_none_or(|w| w.role != Role::Namespace)
}

/// Reads the replica count or change and turns it into the spec's scaling block.
pub(super) fn scaling(
    text: &Text,
    words: &[Word],
    action: Action,
) -> Result<Option<Scaling>, Untranslatable> {
    let change = replica_change(text, action, direction(words)).map_err(Problem::into_reason)?;
    match (action, change) {
        (_, Some(Change::To(n))) => Ok(Some(Scaling {
            replicas: Some(replicas(n)?),
            ..Scaling::default()
        })),
        (Action::Scale, Some(Change::By(d))) => Ok(Some(Scaling {
            scale_by: Some(scale_by(d)?),
            ..Scaling::default()
        })),
        (Action::Deploy, Some(Change::By(d))) => Err(Untranslatable::new(format!(
            "a deployment cannot change replicas by {d:+}: give a replica count"
        ))),
        (Action::Deploy, None) => Ok(None),
        (Action::Scale, None) => Err(Untranslatable::new(
            "scaling needs a replica count: say 'to 3 replicas' or 'out by 1'",
        )),
    }
}

pub(super) fn replicas(n: u64) -> Result<u32, Untranslatable> {
    u32::try_from(n).map_err(|_| Untranslatable::new(format!("the replica count {n} is too large")))
}

pub(super) fn scale_by(d: i64) -> Result<i32, Untranslatable> {
    i32::try_from(d)
        .map_err(|_| Untranslatable::new(format!("the replica change {d:+} is too large")))
}

/// What the screen makes of the counts in a text: `Err` for what no translator may read
/// into one count; otherwise the one count or change the text states, or `None` when it
/// states none the rules can read with certainty.
///
/// `components` are the tokens naming each component; `deploying` says whether the text
/// deploys (where "up to 5" is a bound, not a target).
pub(super) fn screen(
    text: &Text,
    words: &[Word],
    components: &[(usize, Component)],
    deploying: bool,
) -> Result<Option<Change>, Untranslatable> {
    let autoscaling = words
        .iter()
        .any(|w| w.is_free() && AUTOSCALING.contains(&w.text));
    refuse_ranges(text, autoscaling)?;
    refuse_counts_per_component(text, components)?;
    let action = if deploying {
        Action::Deploy
    } else {
        Action::Scale
    };
    match replica_change(text, action, direction(words)) {
        Ok(change) => Ok(change),
        Err(Problem::Unsound(why)) => Err(why),
        Err(Problem::Unread(_)) => Ok(None),
    }
}

/// Every replica count or change phrased in the text; more than one distinct reading is
/// ambiguous ("scale AMF to 3, by 2").
fn replica_change(
    text: &Text,
    action: Action,
    direction: Direction,
) -> Result<Option<Change>, Problem> {
    let mut changes: Vec<Change> = Vec::new();
    // Bounds are looked for after the readings, so that a reading no translator may pass
    // ("-3 replicas", "2.5 replicas") is reported as such even beside one.
    let mut unread_problem = None;
    for i in 0..text.len() {
        let found = match reading_at(text, i, direction) {
            Ok(found) => found,
            Err(Problem::Unread(why)) => {
                unread_problem.get_or_insert(why);
                None
            }
            Err(unsound) => return Err(unsound),
        };
        if let Some(change) = found {
            if !changes.contains(&change) {
                changes.push(change);
            }
        }
    }
    if let [a, b, ..] = changes.as_slice() {
        return unsound(format!(
            "ambiguous replica count: the text says both {} and {}",
            a.describe(),
            b.describe()
        ));
    }
    if let Some(why) = unread_problem {
        return Err(Problem::Unread(why));
    }
    refuse_bounds(text, action)?;
    Ok(changes.first().copied())
}

/// The count or change phrased at token `i`, if any.
fn reading_at(text: &Text, i: usize, direction: Direction) -> Result<Option<Change>, Problem> {
    Ok(counted_noun(text, i)?
        .or(replicas_then_number(text, i)?)
        .or(to_number(text, i)?)
        .or(by_number(text, i, direction)?)
        .or(times_number(text, i)?))
}

/// A number in a replica position that is not a whole count stops translation.
fn whole(value: Number, token: &str) -> Result<Option<u64>, Problem> {
    match value {
        Number::Whole(n) => Ok(Some(n)),
        Number::Negative => unsound(format!("the replica count '{token}' is negative")),
        Number::Fraction => unsound(format!("the replica count '{token}' is not a whole number")),
        Number::Range => unsound(format!(
            "the replica count '{token}' is a range or a ratio, not one count: give the \
             exact count"
        )),
        Number::Unreadable => unread(format!(
            "the replica count '{token}' is not one the rules read: write it in plain digits"
        )),
        Number::NotNumeric => Ok(None),
    }
}

/// "at least 3", "max 5 replicas", "between 2 and 4" (with autoscaling), and "up to 5"
/// in a deployment are bounds (autoscaling limits), which the rules do not map: refuse
/// rather than read a count.
fn refuse_bounds(text: &Text, action: Action) -> Result<(), Problem> {
    for at in 0..text.len() {
        let Some(word) = text.free(at) else {
            continue;
        };
        let up_to = word == "up" && text.free(at + 1) == Some("to") && action == Action::Deploy;
        if !(BOUNDS.contains(&word) || up_to) {
            continue;
        }
        let number_at = (at + 1..at + 4).find(|&j| {
            text.free(j)
                .is_some_and(|w| matches!(number(w), Number::Whole(_)))
        });
        if let Some(end) = number_at {
            let phrase: Vec<&str> = (at..=end).filter_map(|j| text.free(j)).collect();
            return unread(format!(
                "replica bounds ('{}') are not supported: give an exact count",
                phrase.join(" ")
            ));
        }
    }
    Ok(())
}

fn is_whole(word: Option<&str>) -> bool {
    word.is_some_and(|w| matches!(number(w), Number::Whole(_)))
}

/// True when the token at `at` is a replica word or a component, or ends the phrase: a
/// number before it counts replicas.
fn counts_replicas_before(text: &Text, at: usize) -> bool {
    text.role(at) == Some(Role::Component)
        || text.free(at).is_some_and(is_replica_word)
        || ends_count(text, at.wrapping_sub(1))
}

/// "3-5 replicas", "3 to 5 replicas", "3 or 4 AMFs", "3 - 5 pods", "between 3 and 5":
/// a range, which no translator may read as one count. With autoscaling asked for,
/// "between 2 and 8" is a pair of bounds instead (see [`refuse_bounds`]).
fn refuse_ranges(text: &Text, autoscaling: bool) -> Result<(), Untranslatable> {
    let refuse_range = |from: usize, to: usize| {
        let mut phrase = String::new();
        for j in from..=to {
            if j > from {
                phrase.push(' ');
                if let Some(mark) = text.mark_before(j) {
                    phrase.push(mark);
                    phrase.push(' ');
                }
            }
            phrase.push_str(text.free(j).unwrap_or_default());
        }
        Err(Untranslatable::new(format!(
            "the text gives a range of replicas ('{phrase}'), not one count: give the exact \
             count"
        )))
    };
    for at in 0..text.len() {
        let Some(word) = text.free(at) else {
            continue;
        };
        if word == "between" && !autoscaling {
            let first = (at + 1..at + 3).find(|&j| is_whole(text.free(j)));
            if let Some(first) = first {
                if text.free(first + 1) == Some("and") && is_whole(text.free(first + 2)) {
                    return refuse_range(at, first + 2);
                }
            }
        }
        if !is_whole(Some(word)) || text.free_before(at, 1) == Some("from") {
            continue;
        }
        // "3 to 5", "3 or 4" (and not "from 3 to 5", a change)
        if matches!(text.free(at + 1), Some("to" | "or"))
            && is_whole(text.free(at + 2))
            && counts_replicas_before(text, at + 3)
        {
            return refuse_range(at, at + 2);
        }
        // "3 - 5", "3 \u{2013} 5", "3~5": two numbers joined by a dash
        let dash = text
            .mark_before(at + 1)
            .is_some_and(|m| m == '-' || m == '~' || super::text::is_dash(m));
        if dash && is_whole(text.free(at + 1)) && counts_replicas_before(text, at + 2) {
            return refuse_range(at, at + 1);
        }
    }
    Ok(())
}

/// A count given for one component and not for another: "3 replicas of AMF and 2 of
/// SMF", "2 AMFs and 3 SMFs", "scale AMF to 3 and SMF to 5", "deploy SMF and two UPFs".
/// One intent carries one count for all its components, so the rules would apply a
/// count that was not asked for to some of them.
fn refuse_counts_per_component(
    text: &Text,
    components: &[(usize, Component)],
) -> Result<(), Untranslatable> {
    let component_at = |i: usize| {
        components
            .iter()
            .find(|(token, _)| *token == i)
            .map(|(_, c)| *c)
    };
    // The component a count at `i` is bound to, and whether the binding is strong (the
    // count stands before the component, which leaves no doubt that it is only this one).
    let bound = |i: usize| -> Option<(Component, bool)> {
        // "3 AMFs", "3 AMF replicas"
        if let Some(c) = component_at(i + 1) {
            return Some((c, true));
        }
        // "3 replicas of [the] AMF", "2 of [the] SMF"
        let mut at = i + 1;
        if text.free(at).is_some_and(is_replica_word) {
            at += 1;
        }
        if text.free(at) == Some("of") {
            at += 1;
            if text.free(at) == Some("the") {
                at += 1;
            }
            if let Some(c) = component_at(at) {
                return Some((c, true));
            }
        }
        // "AMF to 3", "AMF with 3 replicas", "AMF replicas to 3"
        if matches!(text.free_before(i, 1), Some("to" | "with" | "at")) {
            let mut before = i.checked_sub(2)?;
            if text.free(before).is_some_and(is_replica_word) {
                before = before.checked_sub(1)?;
            }
            return component_at(before).map(|c| (c, false));
        }
        None
    };
    // (component, count, strong, where the count is)
    let mut counts: Vec<(Component, u64, bool, usize)> = Vec::new();
    for i in 0..text.len() {
        let Some(Number::Whole(n)) = text.free(i).map(number) else {
            continue;
        };
        if let Some((component, strong)) = bound(i) {
            counts.push((component, n, strong, i));
        }
    }
    let differ = counts
        .iter()
        .any(|(c, n, _, _)| counts.iter().any(|(d, m, _, _)| c != d && n != m));
    if differ {
        let shown: Vec<String> = counts
            .iter()
            .map(|(c, n, _, _)| format!("{}: {n}", c.as_str()))
            .collect();
        return Err(Untranslatable::new(format!(
            "the text gives a count per component ({}): one intent carries one count for \
             all its components; send one request per component",
            shown.join(", ")
        )));
    }
    // A count for one component beside a component without one: a count before its
    // component ("3 AMF replicas and an SMF") is that one's alone, and so is a count
    // after it that another component follows ("AMF with 3 replicas and SMF"). A count
    // after a list ("AMF and SMF with 3 replicas") is the list's.
    let uncounted = |after: Option<usize>| {
        components.iter().find(|(token, c)| {
            after.is_none_or(|at| *token > at) && !counts.iter().any(|(d, ..)| d == c)
        })
    };
    for (counted, n, strong, at) in &counts {
        let other = if *strong {
            uncounted(None)
        } else {
            uncounted(Some(*at))
        };
        if let Some((_, other)) = other {
            return Err(Untranslatable::new(format!(
                "the count {n} is given for {} but not for {}: one intent carries one count \
                 for all its components; send one request per component, or give the count \
                 for all of them",
                counted.as_str(),
                other.as_str()
            )));
        }
    }
    Ok(())
}

/// "3 replicas", "3 AMF instances", "two UPFs", "one more replica", "add a replica",
/// "a single instance", "2 fewer replicas", "3x AMF": a number in front of a countable
/// noun.
fn counted_noun(text: &Text, noun: usize) -> Result<Option<Change>, Problem> {
    let is_replica = text.free(noun).is_some_and(is_replica_word);
    if !is_replica && text.role(noun) != Some(Role::Component) {
        return Ok(None);
    }
    let mut at = noun;
    if is_replica && at > 0 && text.role(at - 1) == Some(Role::Component) {
        at -= 1;
    }
    let modifier = text.free_before(at, 1).and_then(|w| match w {
        "more" | "extra" | "additional" => Some(1),
        "fewer" | "less" => Some(-1),
        _ => None,
    });
    if modifier.is_some() {
        at -= 1;
    }
    let Some(count_at) = at.checked_sub(1) else {
        return Ok(None);
    };
    let Some(word) = text.free(count_at) else {
        return Ok(None);
    };
    let added = text.free_before(count_at, 1) == Some("add");
    if text.free_before(count_at, 1) == Some("by") {
        return Ok(None); // "by 2 replicas" is read by `by_number`
    }
    let n = match word {
        "single" => 1,
        "another" => return Ok(Some(Change::By(1))),
        "a" | "an" if modifier.is_some() || added => 1,
        _ => match times(word) {
            Some(n) => n,
            None => match whole(number(word), word)? {
                Some(n) => n,
                None => return Ok(None),
            },
        },
    };
    if text.free(noun + 1) == Some("per") {
        // "one replica per zone" is a topology rule, not a count the spec can carry.
        return unsound(format!(
            "'{word} ... per ...' counts per location, which is not supported: give a total"
        ));
    }
    let delta = i64::try_from(n).unwrap_or(i64::MAX);
    Ok(Some(match modifier {
        Some(sign) => Change::By(sign * delta),
        None if added => Change::By(delta),
        None => Change::To(n),
    }))
}

/// "3x" or "x3": a count written as a multiplier.
fn times(word: &str) -> Option<u64> {
    let digits = word.strip_suffix('x').or_else(|| word.strip_prefix('x'))?;
    match number(digits) {
        Number::Whole(n) if digits.bytes().all(|b| b.is_ascii_digit()) => Some(n),
        _ => None,
    }
}

/// "AMF x3", "AMF x 3", "AMF \u{d7}3": a multiplier after a component.
fn times_number(text: &Text, at: usize) -> Result<Option<Change>, Problem> {
    let Some(word) = text.free(at) else {
        return Ok(None);
    };
    let after_component = |i: usize| i > 0 && text.role(i - 1) == Some(Role::Component);
    if after_component(at) {
        if let Some(n) = times(word).filter(|_| word.starts_with('x')) {
            return Ok(Some(Change::To(n)));
        }
        if text.mark_before(at) == Some('\u{d7}') {
            return Ok(whole(number(word), word)?.map(Change::To));
        }
    }
    if word == "x" && after_component(at) {
        if let Some(next) = text.free(at + 1) {
            return Ok(whole(number(next), next)?.map(Change::To));
        }
    }
    Ok(None)
}

/// "replicas 3", "replicas: 3", "replica count 3", "replica count of 3".
fn replicas_then_number(text: &Text, noun: usize) -> Result<Option<Change>, Problem> {
    if !text.free(noun).is_some_and(is_replica_word) {
        return Ok(None);
    }
    let mut at = noun + 1;
    for filler in ["count", "of"] {
        if text.free(at) == Some(filler) {
            at += 1;
        }
    }
    let Some(word) = text.free(at) else {
        return Ok(None);
    };
    // "replicas 3 cpus" would be a different phrase; only a count that ends here counts.
    if !ends_count(text, at) {
        return Ok(None);
    }
    Ok(whole(number(word), word)?.map(Change::To))
}

/// True when the number at `at` is not followed by a noun that would make it count
/// something other than replicas.
fn ends_count(text: &Text, at: usize) -> bool {
    // The next token, if there is one and it is free.
    let next = text.free(at + 1);
    at < text.len()
        && (text.ends_clause(at)
            || next.is_none_or(|next| is_replica_word(next) || AFTER_COUNT.contains(&next)))
}

/// "to 5", "to 5 replicas", "up to 5" (a bound in a deployment, see [`refuse_bounds`]).
fn to_number(text: &Text, to: usize) -> Result<Option<Change>, Problem> {
    if text.free(to) != Some("to") {
        return Ok(None);
    }
    let Some(word) = text.free(to + 1) else {
        return Ok(None);
    };
    let value = number(word);
    if value == Number::NotNumeric || !ends_count(text, to + 1) {
        return Ok(None);
    }
    let Some(n) = whole(value, word)? else {
        return Ok(None);
    };
    Ok(Some(Change::To(n)))
}

/// "by 2" after "scale out/up" (+2) or "scale in/down" (-2).
fn by_number(text: &Text, by: usize, direction: Direction) -> Result<Option<Change>, Problem> {
    if text.free(by) != Some("by") {
        return Ok(None);
    }
    let Some(word) = text.free(by + 1) else {
        return Ok(None);
    };
    let value = number(word);
    if value == Number::NotNumeric || !ends_count(text, by + 1) {
        return Ok(None);
    }
    let Some(n) = whole(value, word)? else {
        return Ok(None);
    };
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    match direction {
        Direction::Up => Ok(Some(Change::By(n))),
        Direction::Down => Ok(Some(Change::By(-n))),
        Direction::Unknown => unsound(format!(
            "'by {word}' needs a direction: say scale out/up or scale in/down"
        )),
        Direction::Both => unsound(format!(
            "'by {word}' is ambiguous: the text says both up and down"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::expect::*;
    use crate::intent::Component::*;
    use crate::intent::{NetworkIntent, Priority};
    use crate::validate::{validate, Limits};

    #[test]
    fn deploy_without_count_has_no_scaling() {
        check("Deploy AMF in namespace core5g", deploy(&[Amf], "core5g"));
    }

    #[test]
    fn count_phrasings() {
        for text in [
            "Deploy AMF with 3 replicas in namespace core5g",
            "Deploy 3 replicas of AMF in namespace core5g",
            "Deploy AMF, 3 instances, in namespace core5g",
            "Deploy 3 copies of AMF in namespace core5g",
            "Deploy 3 AMF replicas in namespace core5g",
            "Deploy AMF with replicas: 3 in namespace core5g",
            "Deploy AMF with three replicas in namespace core5g",
            "Deploy three AMFs in namespace core5g",
        ] {
            check(text, deploy(&[Amf], "core5g").replicas(3));
        }
    }

    #[test]
    fn a_couple_is_not_a_count() {
        check(
            "Deploy AMF with a couple of replicas in namespace core5g",
            deploy(&[Amf], "core5g"),
        );
        assert_refused(
            "Scale AMF to a couple of replicas in namespace core5g",
            &["scaling needs a replica count"],
        );
    }

    #[test]
    fn scale_by_needs_and_takes_a_direction() {
        check(
            "Scale out AMF by 2 in namespace core5g",
            scale(&[Amf], "core5g").by(2),
        );
        check(
            "Scale AMF up by two in namespace core5g",
            scale(&[Amf], "core5g").by(2),
        );
        check(
            "Scale in AMF by 2 in namespace core5g",
            scale(&[Amf], "core5g").by(-2),
        );
        check(
            "Scale the AMF down by 2 replicas in namespace core5g",
            scale(&[Amf], "core5g").by(-2),
        );
        check(
            "Increase UPF by 4 in namespace core5g",
            scale(&[Upf], "core5g").by(4),
        );
        check(
            "Shrink UPF by one in namespace core5g",
            scale(&[Upf], "core5g").by(-1),
        );
        check(
            "Scale in the AMF by 2 in namespace core5g",
            scale(&[Amf], "core5g").by(-2),
        );
        check(
            "Scale-in the SMF by one in namespace core5g",
            scale(&[Smf], "core5g").by(-1),
        );
        check(
            "Scale out by 2 the AMF in namespace core5g",
            scale(&[Amf], "core5g").by(2),
        );
        // here "in" opens the namespace phrase: no direction
        assert_refused("Scale in the core5g namespace the AMF by 2", &["direction"]);
        assert_refused(
            "Scale AMF by 2 in namespace core5g",
            &["'by 2'", "direction"],
        );
        assert_refused(
            "Scale up AMF and scale down SMF by 2 in namespace core5g",
            &["'by 2'", "up and down"],
        );
    }

    #[test]
    fn one_more_replica_is_plus_one() {
        for text in [
            "Scale AMF: one more replica, in namespace core5g",
            "Scale AMF with an extra replica in namespace core5g",
            "Add a replica to the AMF in namespace core5g",
            "Add one more AMF replica in namespace core5g",
            "Scale AMF to add another replica in namespace core5g",
        ] {
            check(text, scale(&[Amf], "core5g").by(1));
        }
        check(
            "Add 2 more replicas to SMF in namespace core5g",
            scale(&[Smf], "core5g").by(2),
        );
        check(
            "Scale SMF with two fewer replicas in namespace core5g",
            scale(&[Smf], "core5g").by(-2),
        );
    }

    #[test]
    fn scaling_without_a_count_is_refused() {
        assert_refused(
            "Scale out AMF in namespace core5g",
            &["scaling needs a replica count"],
        );
        assert_refused(
            "Scale AMF to 5 clusters in namespace core5g",
            &["scaling needs a replica count"],
        );
        assert_refused(
            "Scale up AMF by 50% in namespace core5g",
            &["scaling needs a replica count"],
        );
        assert_refused(
            "Scale up AMF by 50 percent in namespace core5g",
            &["scaling needs a replica count"],
        );
    }

    #[test]
    fn two_different_counts_are_ambiguous() {
        assert_refused(
            "Scale AMF to 3 and SMF to 5 in namespace core5g",
            &["count per component", "amf: 3", "smf: 5"],
        );
        assert_refused(
            "Deploy AMF with 3 replicas and SMF with 2 replicas in namespace core5g",
            &["count per component"],
        );
        assert_refused(
            "Scale out AMF to 5, by 2 in namespace core5g",
            &["ambiguous"],
        );
        // the same count said twice is not ambiguous
        check(
            "Scale AMF to 3 and SMF to 3 in namespace core5g",
            scale(&[Amf, Smf], "core5g").replicas(3),
        );
    }

    #[test]
    fn negative_fractional_and_huge_counts() {
        assert_refused(
            "Deploy AMF with -3 replicas in namespace core5g",
            &["'-3'", "negative"],
        );
        assert_refused("Scale AMF to -3 in namespace core5g", &["negative"]);
        assert_refused(
            "Deploy AMF with 2.5 replicas in namespace core5g",
            &["'2.5'", "whole number"],
        );
        assert_refused(
            "Deploy AMF with 99999999999 replicas in namespace core5g",
            &["too large"],
        );
        // numbers written in words beyond twenty are refused, not silently dropped
        assert_refused(
            "Deploy AMF with twenty-one replicas in namespace core5g",
            &["'twenty-one'", "digits"],
        );
        assert_refused(
            "Scale AMF to thirty in namespace core5g",
            &["'thirty'", "digits"],
        );
        assert_refused(
            "Deploy a dozen AMF replicas in namespace core5g",
            &["'dozen'"],
        );
        // a large but representable count is parsed; the policy denies it
        let spec = translate(request("Deploy AMF with 500 replicas in namespace core5g"))
            .expect("500 is parsed");
        assert_eq!(spec.scaling.as_ref().and_then(|s| s.replicas), Some(500));
        validate(
            &NetworkIntent::for_key("k", spec.clone()),
            &Limits::default(),
        )
        .expect("well formed");
        let denial = crate::policy::Policy::default()
            .check(&spec)
            .expect_err("the policy denies 500");
        assert_eq!(denial.field, "spec.scaling.replicas");
    }

    #[test]
    fn separators_and_leading_dots_do_not_change_a_count() {
        // These used to read as 1, 0 and 5 replicas: "1,500" split into 1 and 500, and
        // ".5" lost its dot.
        assert_refused(
            "Scale AMF to 1,500 in namespace core5g",
            &["'1,500'", "plain digits"],
        );
        assert_refused(
            "Deploy AMF with 1,000 replicas in namespace core5g",
            &["'1,000'", "plain digits"],
        );
        assert_refused(
            "Scale AMF to 3,4 in namespace core5g",
            &["'3,4'", "plain digits"],
        );
        assert_refused(
            "Scale AMF to .5 replicas in namespace core5g",
            &["'.5'", "whole number"],
        );
        // a comma followed by a space still ends the count
        check(
            "Scale AMF to 3, 4 minutes from now, namespace core5g",
            scale(&[Amf], "core5g").replicas(3),
        );
    }

    #[test]
    fn bounds_are_not_counts() {
        assert_refused(
            "Deploy AMF with up to 5 replicas in namespace core5g",
            &["bounds", "'up to 5'"],
        );
        assert_refused(
            "Deploy AMF with at least 3 replicas in namespace core5g",
            &["bounds", "'least 3'"],
        );
        assert_refused(
            "Scale AMF to a maximum of 8 replicas in namespace core5g",
            &["bounds", "maximum"],
        );
        assert_refused(
            "Scale AMF to at most 3 in namespace core5g",
            &["bounds", "most 3"],
        );
        assert_refused(
            "Deploy AMF with between 2 and 4 replicas in namespace core5g",
            &["range", "'between 2 and 4'"],
        );
        // with autoscaling asked for, "between" gives bounds
        assert_refused(
            "Deploy AMF with autoscaling between 2 and 4 replicas in namespace core5g",
            &["bounds", "between 2"],
        );
        // in a scaling request "up to" is the target, not a bound
        check(
            "Scale AMF up to 3 in namespace core5g",
            scale(&[Amf], "core5g").replicas(3),
        );
    }

    #[test]
    fn counts_per_location_are_refused() {
        assert_refused(
            "Deploy AMF with one replica per zone in namespace core5g",
            &["per location"],
        );
        assert_refused(
            "Deploy one AMF per node in namespace core5g",
            &["per location"],
        );
        // "each" means every named component gets the count, which the spec says anyway
        check(
            "Deploy AMF, SMF and UPF with 2 replicas each in namespace core5g",
            deploy(&[Amf, Smf, Upf], "core5g").replicas(2),
        );
    }

    #[test]
    fn ranges_are_refused_not_read_as_one_end() {
        for (text, phrase) in [
            ("Deploy AMF with 3-5 replicas in namespace core5g", "'3-5'"),
            (
                "Deploy AMF with 3\u{2013}5 replicas in namespace core5g",
                "'3-5'",
            ),
            ("Deploy AMF with 3/5 replicas in namespace core5g", "'3/5'"),
            (
                "Deploy AMF with 3..5 replicas in namespace core5g",
                "'3..5'",
            ),
            (
                "Deploy AMF with 3 - 5 replicas in namespace core5g",
                "'3 - 5'",
            ),
            (
                "Deploy AMF with 3 \u{2013} 5 replicas in namespace core5g",
                "'3 \u{2013} 5'",
            ),
            (
                "Deploy AMF with 3 to 5 replicas in namespace core5g",
                "'3 to 5'",
            ),
            (
                "Scale AMF to 3 or 4 replicas in namespace core5g",
                "'3 or 4'",
            ),
            ("Deploy 2 to 4 AMFs in namespace core5g", "'2 to 4'"),
            (
                "Scale AMF to between 3 and 5 in namespace core5g",
                "'between 3 and 5'",
            ),
            ("Scale AMF to 3-5 in namespace core5g", "'3-5'"),
        ] {
            let reason = refused(text);
            assert!(reason.contains("range"), "{text}: {reason}");
            assert!(reason.contains(phrase), "{text}: {reason}");
        }
        // from one count to another is a change, and an arrow gives the target
        check(
            "Scale AMF from 3 to 5 replicas in namespace core5g",
            scale(&[Amf], "core5g").replicas(5),
        );
        check(
            "Scale AMF to 3 replicas, 4 minutes from now, in namespace core5g",
            scale(&[Amf], "core5g").replicas(3),
        );
    }

    #[test]
    fn counts_per_component_are_refused() {
        for (text, mentions) in [
            (
                "Deploy 3 replicas of AMF and 2 of SMF in namespace core5g",
                &["amf: 3", "smf: 2"][..],
            ),
            (
                "Deploy 2 AMFs and 3 SMFs in namespace core5g",
                &["amf: 2", "smf: 3"],
            ),
            (
                "Scale AMF to 3 and SMF to 5 in namespace core5g",
                &["amf: 3", "smf: 5"],
            ),
            (
                "Deploy AMF with 3 replicas and SMF with 2 replicas in namespace core5g",
                &["amf: 3", "smf: 2"],
            ),
            (
                "Scale the AMF replicas to 4 and the SMF to 2 in namespace core5g",
                &["amf: 4"],
            ),
        ] {
            let reason = refused(text);
            assert!(reason.contains("count per component"), "{text}: {reason}");
            for m in mentions {
                assert!(reason.contains(m), "{text}: {reason}");
            }
        }
        // a count for one component, beside one without
        assert_refused(
            "Deploy 3 AMF replicas and an SMF in namespace core5g",
            &["count 3", "amf", "not for smf"],
        );
        assert_refused(
            "Deploy AMF with 3 replicas and SMF in namespace core5g",
            &["count 3", "amf", "not for smf"],
        );
        assert_refused(
            "Scale AMF to 3 and also the SMF in namespace core5g",
            &["count 3", "amf", "not for smf"],
        );
        // a count after the list is the list's
        check(
            "Deploy AMF and SMF with 3 replicas in namespace core5g",
            deploy(&[Amf, Smf], "core5g").replicas(3),
        );
        // one count for all, or the same count for each
        check(
            "Deploy 3 replicas of AMF and 3 of SMF in namespace core5g",
            deploy(&[Amf, Smf], "core5g").replicas(3),
        );
        check(
            "Scale AMF and SMF to 4 in namespace core5g",
            scale(&[Amf, Smf], "core5g").replicas(4),
        );
    }

    #[test]
    fn multipliers_and_participles() {
        for text in [
            "Deploy AMF x3 in namespace core5g",
            "Deploy AMF x 3 in namespace core5g",
            "Deploy 3x AMF in namespace core5g",
            "Deploy AMF \u{d7}3 in namespace core5g",
            "AMF deployed with 3 replicas in namespace core5g",
        ] {
            check(text, deploy(&[Amf], "core5g").replicas(3));
        }
        for text in [
            "AMF scaled to 8 in namespace core5g",
            "Have the AMF scaled up to 8 replicas in namespace core5g",
            "Bump the AMF to 8 replicas in namespace core5g",
            "AMF replicas increased to 8 in namespace core5g",
        ] {
            check(text, scale(&[Amf], "core5g").replicas(8));
        }
        for (text, by) in [
            ("Scaling out the AMF by 2 in namespace core5g", 2),
            ("AMF scaled out by 2 in namespace core5g", 2),
            ("Have the AMF scaled in by 1 in namespace core5g", -1),
            ("Downscale the AMF by 1 in namespace core5g", -1),
        ] {
            check(text, scale(&[Amf], "core5g").by(by));
        }
    }

    #[test]
    fn a_deployment_cannot_take_a_relative_change() {
        assert_refused(
            "Deploy AMF with one more replica in namespace core5g",
            &["deployment", "+1"],
        );
    }

    #[test]
    fn a_count_ends_at_punctuation() {
        check(
            "Scale AMF to 5. It is urgent, namespace core5g",
            scale(&[Amf], "core5g")
                .replicas(5)
                .priority(Priority::Critical),
        );
    }
}
