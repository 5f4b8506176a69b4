//! The deterministic rule translator: plain-language service requests and KPI events become
//! NetworkIntent specs by fixed word rules, with no model and no guessing.
//!
//! It owns the reading of request text (action, components, replica counts, namespace,
//! priority, environment, slice, resources) and the one network-event rule (a utilisation
//! KPI above its threshold scales the network function out by one replica). Whatever it
//! does not understand with confidence it refuses with an [`Untranslatable`] reason that
//! names the missing or ambiguous part, because a refused request can be corrected and
//! resent while a wrong NetworkIntent changes a live network. Bounds (replica limits,
//! DNS names, markup) are checked afterwards by [`crate::validate`].
//!
//! The text is scanned as tokens (split on whitespace and punctuation, hyphens kept) and
//! as words (tokens split on hyphens, so "near-RT RIC" and "near rt ric" read alike).
//! Tokens that belong to the namespace phrase, a component name or a resource quantity
//! are claimed by that reading, so "namespace delete-test" is not a deletion and "cu-up"
//! is not a direction.

use std::collections::BTreeMap;

use super::{Translator, TranslatorKind, Untranslatable};
use crate::intent::{
    Component, IntentType, NetworkIntentSpec, NetworkSlice, Priority, Resources, Scaling, SliceType,
};
use crate::request::{NetworkEvent, Request, ServiceRequest};

/// Translates requests by fixed rules; see the module documentation.
#[derive(Debug, Clone)]
pub struct RuleTranslator {
    /// Cap put on every event-driven scale-out, so a storm of events cannot grow a
    /// network function without bound.
    max_replicas: u32,
}

impl RuleTranslator {
    pub fn new(max_replicas: u32) -> Self {
        Self { max_replicas }
    }

    /// Translates one request, or says why it cannot.
    pub fn translate_sync(&self, request: &Request) -> Result<NetworkIntentSpec, Untranslatable> {
        match request {
            Request::Service(service) => translate_service(service),
            Request::Event(event) => self.translate_event(event),
        }
    }

    fn translate_event(&self, event: &NetworkEvent) -> Result<NetworkIntentSpec, Untranslatable> {
        let kpi = KpiCrossing::read(event)?;
        let scaling = Scaling {
            scale_by: Some(1),
            max_replicas: Some(self.max_replicas),
            ..Scaling::default()
        };
        Ok(NetworkIntentSpec {
            intent: kpi.describe(event),
            intent_type: IntentType::Scaling,
            priority: priority_of_severity(event.severity.as_deref()),
            target_components: vec![kpi.component],
            target_namespace: kpi.namespace,
            target_environment: None,
            scaling: Some(scaling),
            resources: None,
            network_slice: None,
            parameters: BTreeMap::new(),
        })
    }
}

impl Translator for RuleTranslator {
    fn kind(&self) -> TranslatorKind {
        TranslatorKind::Rules
    }

    async fn translate(&self, request: &Request) -> Result<NetworkIntentSpec, Untranslatable> {
        self.translate_sync(request)
    }
}

fn refuse<T>(reason: impl Into<String>) -> Result<T, Untranslatable> {
    Err(Untranslatable::new(reason))
}

// ---------------------------------------------------------------------------------------
// Service requests
// ---------------------------------------------------------------------------------------

fn translate_service(request: &ServiceRequest) -> Result<NetworkIntentSpec, Untranslatable> {
    let intent = request.intent.trim();
    if intent.is_empty() {
        return refuse("the intent text is empty");
    }
    // Claims come first so that later readings skip what they took; their errors are
    // reported afterwards, in the order a reader would fix them.
    let mut text = Text::new(intent);
    let namespaces_in_text = text.claim_namespaces();
    let components = text.claim_components();
    let resources = text.claim_resources();
    let words = text.words();

    refuse_unsupported_requests(&words)?;
    refuse_timing(&text)?;
    let action = action(&words)?;
    let target_components = components.into_result()?;
    let scaling = scaling(&text, &words, action)?;
    let target_namespace = namespace(&namespaces_in_text, request.target_namespace.as_deref())?;
    let priority = priority(request.priority.as_deref(), &words)?;
    let target_environment = environment(request.target_environment.as_deref(), &words)?;
    let network_slice = slice(&words)?.map(|slice_type| NetworkSlice { slice_type });

    Ok(NetworkIntentSpec {
        intent: intent.to_string(),
        intent_type: match action {
            Action::Deploy => IntentType::Deployment,
            Action::Scale => IntentType::Scaling,
        },
        priority,
        target_components,
        target_namespace,
        target_environment,
        scaling,
        resources: resources?,
        network_slice,
        parameters: request.parameters.clone().unwrap_or_default(),
    })
}

// --- text scanning ----------------------------------------------------------------------

/// What a token has been recognised as; only `Free` tokens are read for words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Free,
    Namespace,
    Component,
    /// A network-function name that is not an allowlisted component (MME, "cu"): it
    /// never counts as one, not even as the noun of a count ("3 MMEs").
    OtherFunction,
    Resource,
}

#[derive(Debug, Clone)]
struct Token {
    /// As written (resource quantities are case-sensitive: `1Gi`, not `1gi`).
    raw: String,
    lower: String,
    /// Punctuation follows, so a number here ends its phrase ("scale to 5. It is urgent").
    ends_clause: bool,
    role: Role,
}

/// A hyphen-separated part of a token, e.g. `cu` and `up` of `cu-up`.
#[derive(Debug, Clone)]
struct Word {
    text: String,
    token: usize,
    role: Role,
}

impl Word {
    fn is_free(&self) -> bool {
        self.role == Role::Free
    }
}

#[derive(Debug)]
struct Text {
    tokens: Vec<Token>,
}

impl Text {
    fn new(text: &str) -> Self {
        let mut tokens = Vec::new();
        let mut current = String::new();
        for c in text.chars() {
            if c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | '%') {
                current.push(c);
            } else if matches!(c, '\'' | '\u{2019}') {
                // Apostrophes join: "don't" reads as "dont", one negation word.
            } else {
                push_token(&mut tokens, &mut current);
                if matches!(c, ',' | ';' | ':' | '!' | '?') {
                    if let Some(last) = tokens.last_mut() {
                        last.ends_clause = true;
                    }
                }
            }
        }
        push_token(&mut tokens, &mut current);
        Self { tokens }
    }

    /// The lower-cased token at `i` if it exists and no reading has claimed it.
    fn free(&self, i: usize) -> Option<&str> {
        self.tokens
            .get(i)
            .filter(|t| t.role == Role::Free)
            .map(|t| t.lower.as_str())
    }

    /// Like [`Self::free`], for a position computed by subtraction that may underflow.
    fn free_before(&self, i: usize, back: usize) -> Option<&str> {
        i.checked_sub(back).and_then(|j| self.free(j))
    }

    fn role(&self, i: usize) -> Option<Role> {
        self.tokens.get(i).map(|t| t.role)
    }

    fn words(&self) -> Vec<Word> {
        let mut words = Vec::new();
        for (i, token) in self.tokens.iter().enumerate() {
            for part in token.lower.split('-').filter(|p| !p.is_empty()) {
                words.push(Word {
                    text: part.to_string(),
                    token: i,
                    role: token.role,
                });
            }
        }
        words
    }

    fn claim(&mut self, i: usize, role: Role) {
        if let Some(token) = self.tokens.get_mut(i) {
            token.role = role;
        }
    }
}

fn push_token(tokens: &mut Vec<Token>, current: &mut String) {
    let raw = std::mem::take(current);
    // A trailing '.' ends a sentence ("in namespace core5g."); a leading '-' is kept so
    // that "-3 replicas" reads as a negative count rather than as 3.
    let trimmed = raw.trim_end_matches(['.', '-']).trim_start_matches('.');
    if trimmed.is_empty() {
        return;
    }
    tokens.push(Token {
        raw: trimmed.to_string(),
        lower: trimmed.to_lowercase(),
        ends_clause: raw.trim_end_matches('-').ends_with('.'),
        role: Role::Free,
    });
}

/// True when the free words starting at `at` are `phrase` (words separated by spaces).
fn phrase_at(words: &[Word], at: usize, phrase: &str) -> bool {
    phrase.split(' ').enumerate().all(|(k, expected)| {
        words
            .get(at + k)
            .is_some_and(|w| w.is_free() && w.text == expected)
    })
}

/// The first of `phrases` found anywhere in the free words.
fn find_phrase(words: &[Word], phrases: &[&'static str]) -> Option<&'static str> {
    (0..words.len()).find_map(|at| phrases.iter().find(|p| phrase_at(words, at, p)).copied())
}

fn free_word(words: &[Word], i: Option<usize>) -> Option<&str> {
    i.and_then(|i| words.get(i))
        .filter(|w| w.is_free())
        .map(|w| w.text.as_str())
}

// --- action -----------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Deploy,
    Scale,
}

/// Deletion never translates, whatever else the text asks.
#[rustfmt::skip]
const DELETION: &[&str] = &[
    "delete", "deletes", "deleted", "deleting", "deletion", "remove", "removes", "removed",
    "removing", "removal", "destroy", "destroyed", "destroying", "terminate", "terminated",
    "terminating", "termination", "undeploy", "undeploying", "uninstall", "uninstalling",
    "decommission", "decommissioning", "deprovision", "teardown", "tear down", "kill",
    "purge", "erase", "wipe", "drop", "dropping",
];

/// A negation can flip any part of the sentence; rules cannot tell which, so they refuse.
#[rustfmt::skip]
const NEGATION: &[&str] = &[
    "not", "no", "never", "dont", "doesnt", "didnt", "cant", "cannot", "wont", "shouldnt",
    "without", "except", "excluding", "nor",
];

/// Actions the rules do not implement; named so the refusal can say which one was asked.
#[rustfmt::skip]
const UNSUPPORTED_ACTIONS: &[&str] = &[
    "upgrade", "upgrading", "update", "updating", "downgrade", "restart", "restarting",
    "reboot", "migrate", "migrating", "rollback", "roll back", "revert", "undo", "patch",
    "optimise", "optimize", "optimising", "optimizing", "reconfigure", "configure", "stop",
    "stopping", "pause", "suspend", "replace", "move", "cancel", "autoscale", "heal",
];

/// Deployment verbs; "deployment" itself is a noun ("scale the AMF deployment").
#[rustfmt::skip]
const DEPLOY: &[&str] = &[
    "deploy", "deploying", "install", "installing", "create", "creating", "provision",
    "provisioning", "instantiate", "instantiating", "launch", "launching", "roll out",
    "rolling out", "rollout", "set up", "setup", "spin up", "spinning up",
];

/// Scaling verbs; "set ... replicas" and "add ... replica" are read separately.
#[rustfmt::skip]
const SCALE: &[&str] = &[
    "scale", "scaling", "rescale", "resize", "scaleout", "scaleup", "scalein", "scaledown",
    "increase", "increasing", "reduce", "reducing", "decrease", "decreasing", "grow",
    "shrink",
];

/// Refuses deletions, negations and actions the rules do not implement, even when a
/// supported action is also named: "deploy AMF and delete SMF" must not half-happen.
fn refuse_unsupported_requests(words: &[Word]) -> Result<(), Untranslatable> {
    if let Some(word) = find_phrase(words, DELETION) {
        return refuse(format!(
            "the text asks to '{word}': deletion is never done from a request"
        ));
    }
    if let Some(word) = find_phrase(words, NEGATION) {
        return refuse(format!(
            "the text contains the negation '{word}', which rules cannot safely interpret"
        ));
    }
    if let Some(word) = find_phrase(words, UNSUPPORTED_ACTIONS) {
        return refuse(format!(
            "the text asks to '{word}', which is not a supported action (deploy or scale)"
        ));
    }
    Ok(())
}

/// Time-limited or scheduled requests ("for 3 hours", "at 18:00", "tomorrow") would be
/// applied at once and for good, which is not what was asked: refuse them.
fn refuse_timing(text: &Text) -> Result<(), Untranslatable> {
    #[rustfmt::skip]
    const WORDS: &[&str] = &[
        "temporarily", "temporary", "until", "till", "tomorrow", "tonight", "later",
        "schedule", "scheduled", "midnight", "noon", "overnight", "weekend",
    ];
    #[rustfmt::skip]
    const UNITS: &[&str] = &[
        "second", "seconds", "sec", "secs", "minute", "minutes", "min", "mins", "hour",
        "hours", "hr", "hrs", "h", "day", "days", "week", "weeks", "month", "months",
    ];
    let digit_led = |w: &str| w.starts_with(|c: char| c.is_ascii_digit());
    for at in 0..text.tokens.len() {
        let Some(word) = text.free(at) else {
            continue;
        };
        let next = text.free(at + 1);
        let duration = matches!(word, "for" | "in" | "within" | "after")
            && next.is_some_and(|n| matches!(number(n), Number::Whole(_)))
            && text.free(at + 2).is_some_and(|u| UNITS.contains(&u));
        let timed = WORDS.contains(&word)
            || duration
            || (word == "at" && next.is_some_and(digit_led))
            || (word == "on" && next.is_some_and(|n| digit_led(n) && n.contains('-')));
        if timed {
            let len = match (duration, WORDS.contains(&word)) {
                (true, _) => 3,
                (false, true) => 1,
                (false, false) => 2,
            };
            let phrase: Vec<&str> = (at..at + len).filter_map(|j| text.free(j)).collect();
            let phrase = phrase.join(" ");
            return refuse(format!(
                "timed or scheduled requests ('{phrase}') are not supported: send the request \
                 when it should take effect"
            ));
        }
    }
    Ok(())
}

fn action(words: &[Word]) -> Result<Action, Untranslatable> {
    let deploy = find_phrase(words, DEPLOY);
    let mut scale = find_phrase(words, SCALE);
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

/// "set AMF replicas to 5" scales ("set up" deploys and is matched before this).
fn set_replicas(words: &[Word]) -> Option<&'static str> {
    let has_set =
        (0..words.len()).any(|i| phrase_at(words, i, "set") && !phrase_at(words, i + 1, "up"));
    let has_replicas = words
        .iter()
        .any(|w| w.is_free() && is_replica_word(&w.text));
    (has_set && has_replicas).then_some("set replicas")
}

/// "add a replica", "add 2 more AMF replicas" scale; "add an AMF" is not understood.
fn add_replicas(words: &[Word]) -> Option<&'static str> {
    (0..words.len())
        .filter(|&i| phrase_at(words, i, "add"))
        .any(|i| (i + 1..i + 5).any(|j| free_word(words, Some(j)).is_some_and(is_replica_word)))
        .then_some("add replicas")
}

// --- components -------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Meaning {
    Is(Component),
    /// A network function the service does not manage; only mentioned in refusals.
    Unsupported(&'static str),
    /// A name that could mean more than one allowlisted component.
    Ambiguous(&'static str),
}

use Meaning::{Ambiguous, Is, Unsupported};

/// Names as they may be written. A space may be any word break; a hyphen must be one
/// hyphenated token ("cu-up"), because "scale the cu up" is a direction, not the CU-UP.
const ALIASES: &[(&str, Meaning)] = &[
    ("amf", Is(Component::Amf)),
    ("smf", Is(Component::Smf)),
    ("upf", Is(Component::Upf)),
    ("nrf", Is(Component::Nrf)),
    ("udm", Is(Component::Udm)),
    ("udr", Is(Component::Udr)),
    ("pcf", Is(Component::Pcf)),
    ("ausf", Is(Component::Ausf)),
    ("nssf", Is(Component::Nssf)),
    ("nef", Is(Component::Nef)),
    ("near rt ric", Is(Component::NearRtRic)),
    ("near real time ric", Is(Component::NearRtRic)),
    ("nearrt ric", Is(Component::NearRtRic)),
    ("nearrtric", Is(Component::NearRtRic)),
    ("ric", Is(Component::NearRtRic)),
    ("xapp", Is(Component::Xapp)),
    ("o-du", Is(Component::ODu)),
    ("odu", Is(Component::ODu)),
    ("du", Is(Component::ODu)),
    ("distributed unit", Is(Component::ODu)),
    ("o-cu-cp", Is(Component::OCuCp)),
    ("cu-cp", Is(Component::OCuCp)),
    ("cucp", Is(Component::OCuCp)),
    ("ocucp", Is(Component::OCuCp)),
    ("o-cu-up", Is(Component::OCuUp)),
    ("cu-up", Is(Component::OCuUp)),
    ("cuup", Is(Component::OCuUp)),
    ("ocuup", Is(Component::OCuUp)),
    // Whole names that must not fall back to a shorter alias ("ric", "du"), or that
    // name a family rather than one component.
    ("non rt ric", Unsupported("non-RT RIC")),
    ("nonrt ric", Unsupported("non-RT RIC")),
    ("non real time ric", Unsupported("non-RT RIC")),
    ("o-cu", Ambiguous("o-cu")),
    ("cu", Ambiguous("cu")),
    ("central unit", Ambiguous("central unit")),
    ("o-ru", Unsupported("o-ru")),
    ("ru", Unsupported("ru")),
    ("mme", Unsupported("mme")),
    ("hss", Unsupported("hss")),
    ("sgw", Unsupported("sgw")),
    ("pgw", Unsupported("pgw")),
    ("nwdaf", Unsupported("nwdaf")),
    ("chf", Unsupported("chf")),
    ("scp", Unsupported("scp")),
    ("sepp", Unsupported("sepp")),
    ("bsf", Unsupported("bsf")),
    ("smsf", Unsupported("smsf")),
    ("smo", Unsupported("smo")),
    ("gnb", Unsupported("gnb")),
];

/// What the component scan found; turned into a result once earlier errors are reported.
#[derive(Debug, Default)]
struct ComponentScan {
    found: Vec<Component>,
    unsupported: Vec<&'static str>,
    ambiguous: Vec<&'static str>,
}

impl ComponentScan {
    fn into_result(self) -> Result<Vec<Component>, Untranslatable> {
        if let Some(name) = self.ambiguous.first() {
            return refuse(format!(
                "'{name}' is ambiguous: say o-cu-cp (control plane) or o-cu-up (user plane)"
            ));
        }
        if !self.found.is_empty() {
            return Ok(self.found);
        }
        let known: Vec<&str> = Component::ALL.iter().map(|c| c.as_str()).collect();
        let mentioned = if self.unsupported.is_empty() {
            String::new()
        } else {
            format!(" ({} is not supported)", self.unsupported.join(", "))
        };
        refuse(format!(
            "no known network function named{mentioned}; known: {}",
            known.join(", ")
        ))
    }
}

impl Text {
    /// Finds every component named in the free text, in order of appearance, and claims
    /// the tokens it was named with.
    fn claim_components(&mut self) -> ComponentScan {
        let words = self.words();
        let mut scan = ComponentScan::default();
        let mut at = 0;
        while at < words.len() {
            let Some((len, meaning)) = longest_alias_at(&words, at) else {
                at += 1;
                continue;
            };
            let role = match meaning {
                Meaning::Is(_) => Role::Component,
                _ => Role::OtherFunction,
            };
            for word in &words[at..at + len] {
                self.claim(word.token, role);
            }
            match meaning {
                Meaning::Is(c) if !scan.found.contains(&c) => scan.found.push(c),
                Meaning::Is(_) => {}
                Meaning::Unsupported(name) => scan.unsupported.push(name),
                Meaning::Ambiguous(name) => scan.ambiguous.push(name),
            }
            at += len;
        }
        scan
    }
}

/// The longest alias written at `at`, as (number of words, meaning).
fn longest_alias_at(words: &[Word], at: usize) -> Option<(usize, Meaning)> {
    ALIASES
        .iter()
        .filter_map(|(alias, meaning)| alias_len_at(words, at, alias).map(|n| (n, *meaning)))
        .max_by_key(|(n, _)| *n)
}

fn alias_len_at(words: &[Word], at: usize, alias: &str) -> Option<usize> {
    let parts: Vec<&str> = alias.split([' ', '-']).collect();
    let candidate = words.get(at..at + parts.len())?;
    let last = parts.len() - 1;
    let one_token = candidate.iter().all(|w| w.token == candidate[0].token);
    let matches = candidate
        .iter()
        .zip(&parts)
        .enumerate()
        .all(|(k, (w, part))| {
            // A plural ("two UPFs") names the same component.
            let plural = k == last && w.text.strip_suffix('s') == Some(*part);
            w.is_free() && (w.text == *part || plural)
        });
    (matches && (one_token || !alias.contains('-'))).then_some(parts.len())
}

// --- replica counts ---------------------------------------------------------------------

#[rustfmt::skip]
const REPLICA_WORDS: &[&str] = &[
    "replica", "replicas", "instance", "instances", "copy", "copies", "pod", "pods",
];

#[rustfmt::skip]
const NUMBER_WORDS: &[&str] = &[
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen", "twenty",
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

fn is_replica_word(word: &str) -> bool {
    REPLICA_WORDS.contains(&word)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Number {
    Whole(u64),
    Negative,
    Fraction,
    /// Written as a number the rules do not read ("twenty-one", "thirty", "a dozen").
    Unreadable,
    NotNumeric,
}

fn number(word: &str) -> Number {
    #[rustfmt::skip]
    const LARGER: &[&str] = &[
        "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety", "hundred", "thousand",
        "dozen",
    ];
    if let Some(n) = NUMBER_WORDS.iter().position(|w| *w == word) {
        return Number::Whole(n as u64);
    }
    let number_word = |w: &str| NUMBER_WORDS.contains(&w) || LARGER.contains(&w);
    if LARGER.contains(&word) || (word.contains('-') && word.split('-').all(number_word)) {
        return Number::Unreadable;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let decimal = |s: &str| {
        s.split_once('.')
            .is_some_and(|(a, b)| digits(a) && digits(b))
    };
    if digits(word) {
        // Too many digits for u64 is still a huge number, refused below as too large.
        return Number::Whole(word.parse().unwrap_or(u64::MAX));
    }
    match word.strip_prefix('-') {
        Some(rest) if digits(rest) || decimal(rest) => Number::Negative,
        _ if decimal(word) => Number::Fraction,
        _ => Number::NotNumeric,
    }
}

/// A replica change read from the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
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

/// Which way "by N" goes, read from the scaling words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Unknown,
    Up,
    Down,
    Both,
}

fn direction(words: &[Word]) -> Direction {
    #[rustfmt::skip]
    const UP: &[&str] = &[
        "scaleout", "scaleup", "increase", "increasing", "grow",
    ];
    #[rustfmt::skip]
    const DOWN: &[&str] = &[
        "scalein", "scaledown", "reduce", "reducing", "decrease", "decreasing", "shrink",
    ];
    let mut up = find_phrase(words, UP).is_some();
    let mut down = find_phrase(words, DOWN).is_some();
    for i in (0..words.len()).filter(|&i| phrase_at(words, i, "scale")) {
        // "scale out AMF", "scale AMF up"
        let near = |w: &str| (i + 1..i + 4).any(|j| phrase_at(words, j, w));
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
    if !phrase_at(words, scale + 1, "in") {
        return false;
    }
    let next = if phrase_at(words, scale + 2, "the") {
        scale + 3
    } else {
        scale + 2
    };
    words.get(next).is_none_or(|w| w.role != Role::Namespace)
}

/// Reads the replica count or change and turns it into the spec's scaling block.
fn scaling(text: &Text, words: &[Word], action: Action) -> Result<Option<Scaling>, Untranslatable> {
    let change = replica_change(text, action, direction(words))?;
    match (action, change) {
        (_, Some(Change::To(n))) => {
            let replicas = u32::try_from(n)
                .or_else(|_| refuse(format!("the replica count {n} is too large")))?;
            Ok(Some(Scaling {
                replicas: Some(replicas),
                ..Scaling::default()
            }))
        }
        (Action::Scale, Some(Change::By(d))) => {
            let scale_by = i32::try_from(d)
                .or_else(|_| refuse(format!("the replica change {d:+} is too large")))?;
            Ok(Some(Scaling {
                scale_by: Some(scale_by),
                ..Scaling::default()
            }))
        }
        (Action::Deploy, Some(Change::By(d))) => refuse(format!(
            "a deployment cannot change replicas by {d:+}: give a replica count"
        )),
        (Action::Deploy, None) => Ok(None),
        (Action::Scale, None) => {
            refuse("scaling needs a replica count: say 'to 3 replicas' or 'out by 1'")
        }
    }
}

/// Every replica count or change phrased in the text; more than one distinct reading is
/// ambiguous ("scale AMF to 3 and SMF to 5").
fn replica_change(
    text: &Text,
    action: Action,
    direction: Direction,
) -> Result<Option<Change>, Untranslatable> {
    refuse_bounds(text, action)?;
    let mut changes: Vec<Change> = Vec::new();
    for i in 0..text.tokens.len() {
        let found = counted_noun(text, i)?
            .or(replicas_then_number(text, i)?)
            .or(to_number(text, i)?)
            .or(by_number(text, i, direction)?);
        if let Some(change) = found {
            if !changes.contains(&change) {
                changes.push(change);
            }
        }
    }
    match changes.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        [a, b, ..] => refuse(format!(
            "ambiguous replica count: the text says both {} and {}",
            a.describe(),
            b.describe()
        )),
    }
}

/// A number in a replica position that is not a whole count stops translation.
fn whole(value: Number, token: &str) -> Result<Option<u64>, Untranslatable> {
    match value {
        Number::Whole(n) => Ok(Some(n)),
        Number::Negative => refuse(format!("the replica count '{token}' is negative")),
        Number::Fraction => refuse(format!("the replica count '{token}' is not a whole number")),
        Number::Unreadable => refuse(format!(
            "the replica count '{token}' is not one the rules read: write it in digits"
        )),
        Number::NotNumeric => Ok(None),
    }
}

/// "at least 3", "max 5 replicas", "between 2 and 4", and "up to 5" in a deployment are
/// bounds (autoscaling limits), which the rules do not map: refuse rather than read a count.
fn refuse_bounds(text: &Text, action: Action) -> Result<(), Untranslatable> {
    for at in 0..text.tokens.len() {
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
            return refuse(format!(
                "replica bounds ('{}') are not supported: give an exact count",
                phrase.join(" ")
            ));
        }
    }
    Ok(())
}

/// "3 replicas", "3 AMF instances", "two UPFs", "one more replica", "add a replica",
/// "a single instance", "2 fewer replicas": a number in front of a countable noun.
fn counted_noun(text: &Text, noun: usize) -> Result<Option<Change>, Untranslatable> {
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
        _ => match whole(number(word), word)? {
            Some(n) => n,
            None => return Ok(None),
        },
    };
    if text.free(noun + 1) == Some("per") {
        // "one replica per zone" is a topology rule, not a count the spec can carry.
        return refuse(format!(
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

/// "replicas 3", "replicas: 3", "replica count 3", "replica count of 3".
fn replicas_then_number(text: &Text, noun: usize) -> Result<Option<Change>, Untranslatable> {
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
    let Some(token) = text.tokens.get(at) else {
        return false;
    };
    token.ends_clause
        || match text.tokens.get(at + 1) {
            None => true,
            Some(next) if next.role != Role::Free => true,
            Some(next) => {
                is_replica_word(&next.lower) || AFTER_COUNT.contains(&next.lower.as_str())
            }
        }
}

/// "to 5", "to 5 replicas", "up to 5" (a bound in a deployment, see [`refuse_bounds`]).
fn to_number(text: &Text, to: usize) -> Result<Option<Change>, Untranslatable> {
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
fn by_number(
    text: &Text,
    by: usize,
    direction: Direction,
) -> Result<Option<Change>, Untranslatable> {
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
        Direction::Unknown => refuse(format!(
            "'by {word}' needs a direction: say scale out/up or scale in/down"
        )),
        Direction::Both => refuse(format!(
            "'by {word}' is ambiguous: the text says both up and down"
        )),
    }
}

// --- resources --------------------------------------------------------------------------

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

/// Looks like an attempt at a quantity ("1GB", "512mb"): digits, then letters.
fn looks_like_quantity(raw: &str) -> bool {
    let rest = raw.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    rest.len() < raw.len() && rest.chars().all(|c| c.is_ascii_alphabetic())
}

impl Text {
    /// "500m cpu", "cpu 500m", "2 cpus", "1Gi memory", "memory: 1Gi", "1Gi of ram".
    fn claim_resources(&mut self) -> Result<Option<Resources>, Untranslatable> {
        let mut resources = Resources::default();
        for at in 0..self.tokens.len() {
            let Some(kind) = self.free(at).and_then(ResourceKind::of) else {
                continue;
            };
            let Some(value_at) = self.quantity_near(at, kind)? else {
                continue;
            };
            let value = self.tokens[value_at].raw.clone();
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

    /// The free token next to a resource keyword holding its quantity (before it first).
    fn quantity_near(
        &self,
        at: usize,
        kind: ResourceKind,
    ) -> Result<Option<usize>, Untranslatable> {
        let before = if self.free_before(at, 1) == Some("of") {
            at.checked_sub(2)
        } else {
            at.checked_sub(1)
        };
        // "cpu 3 replicas": a number followed by a replica word is the count, not the cpu.
        let after = Some(at + 1).filter(|&i| !self.free(i + 1).is_some_and(is_replica_word));
        let candidates = [before, after];
        let free_raw = |i: usize| {
            self.free(i)
                .and_then(|_| self.tokens.get(i))
                .map(|t| t.raw.as_str())
        };
        for i in candidates.into_iter().flatten() {
            if free_raw(i).is_some_and(|raw| kind.accepts(raw)) {
                return Ok(Some(i));
            }
        }
        for i in candidates.into_iter().flatten() {
            if let Some(raw) = free_raw(i).filter(|raw| looks_like_quantity(raw)) {
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

// --- namespace --------------------------------------------------------------------------

/// Words that cannot be a namespace name, so "namespace with ..." or "in the same
/// namespace" takes none.
#[rustfmt::skip]
const NOT_A_NAME: &[&str] = &[
    "the", "a", "an", "and", "or", "with", "for", "in", "on", "to", "into", "of", "using",
    "at", "as", "by", "that", "which", "is", "it", "its", "please", "now", "this", "named",
    "called", "same", "own", "new", "existing", "other", "another", "different", "one",
    "each", "every", "all", "any", "some", "my", "our", "your", "their", "target", "right",
    "correct",
];

impl Text {
    /// "in namespace X", "namespace X", "namespace: X", "namespace named X", "ns X",
    /// "in the X namespace": every mention, lower-cased, with its tokens claimed.
    fn claim_namespaces(&mut self) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        for at in 0..self.tokens.len() {
            let Some(keyword) = self.free(at) else {
                continue;
            };
            if keyword != "namespace" && keyword != "ns" {
                continue;
            }
            let Some(value_at) = self.namespace_value(at, keyword == "namespace") else {
                continue;
            };
            let value = self.tokens[value_at].lower.clone();
            self.claim(at, Role::Namespace);
            self.claim(value_at, Role::Namespace);
            if !found.contains(&value) {
                found.push(value);
            }
        }
        found
    }

    fn namespace_value(&self, keyword: usize, may_precede: bool) -> Option<usize> {
        let name_at = |i: usize| self.free(i).is_some_and(|w| !NOT_A_NAME.contains(&w));
        let mut after = keyword + 1;
        if matches!(self.free(after), Some("named" | "called")) {
            after += 1;
        }
        if name_at(after) {
            return Some(after);
        }
        // "in the core5g namespace"; not for "ns", which also follows numbers ("5 ns").
        let before = keyword.checked_sub(1)?;
        let preposition = self.free_before(keyword, 2)?;
        (may_precede && name_at(before) && ["the", "in", "into", "to", "on"].contains(&preposition))
            .then_some(before)
    }
}

fn namespace(in_text: &[String], field: Option<&str>) -> Result<String, Untranslatable> {
    let field = field
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_lowercase);
    match (in_text, field) {
        ([a, b, ..], _) => refuse(format!("the text names two namespaces, '{a}' and '{b}'")),
        ([text], Some(field)) if *text != field => refuse(format!(
            "namespace conflict: the text says '{text}' but target_namespace is '{field}'"
        )),
        ([text], _) => Ok(text.clone()),
        ([], Some(field)) => Ok(field),
        ([], None) => refuse("no target namespace: say 'in namespace X' or set target_namespace"),
    }
}

// --- priority, environment, slice -------------------------------------------------------

/// The structured field, when present, wins over the text (as for the environment); only
/// the namespace refuses a disagreement, since it decides where the change lands.
fn priority(field: Option<&str>, words: &[Word]) -> Result<Priority, Untranslatable> {
    match field.map(str::trim).filter(|f| !f.is_empty()) {
        Some(value) => Priority::parse(value).ok_or_else(|| {
            Untranslatable::new(format!(
                "priority '{value}' is not one of low, medium, high, critical"
            ))
        }),
        None => Ok(priority_in_text(words)?.unwrap_or(Priority::Medium)),
    }
}

/// "urgent", "critical", "emergency", "asap", "high priority", "priority: low", ...
fn priority_in_text(words: &[Word]) -> Result<Option<Priority>, Untranslatable> {
    let mut found: Vec<(Priority, String)> = Vec::new();
    for (i, word) in words.iter().enumerate().filter(|(_, w)| w.is_free()) {
        let reading = match word.text.as_str() {
            "urgent" | "urgently" | "critical" | "emergency" | "asap" => {
                Some((Priority::Critical, word.text.clone()))
            }
            "priority" => {
                let before = free_word(words, i.checked_sub(1));
                let after = free_word(words, Some(i + 1));
                before
                    .and_then(|w| Priority::parse(w).map(|p| (p, format!("{w} priority"))))
                    .or_else(|| {
                        after.and_then(|w| Priority::parse(w).map(|p| (p, format!("priority {w}"))))
                    })
            }
            _ => None,
        };
        if let Some((p, phrase)) = reading {
            if let Some((_, other)) = found.iter().find(|(q, _)| *q != p) {
                return refuse(format!(
                    "conflicting priorities in the text: '{other}' and '{phrase}'"
                ));
            }
            found.push((p, phrase));
        }
    }
    Ok(found.first().map(|(p, _)| *p))
}

fn environment(field: Option<&str>, words: &[Word]) -> Result<Option<String>, Untranslatable> {
    match field.map(str::trim).filter(|f| !f.is_empty()) {
        Some(value) => Ok(Some(value.to_lowercase())),
        None => Ok(environment_in_text(words)?.map(str::to_string)),
    }
}

/// "for production", "in staging", "production environment", "in the dev environment":
/// only clearly phrased, since "production-grade" or "test traffic" name no environment.
fn environment_in_text(words: &[Word]) -> Result<Option<&'static str>, Untranslatable> {
    const PREPOSITIONS: &[&str] = &["in", "for", "to", "into"];
    let mut found: Option<&'static str> = None;
    for (i, word) in words.iter().enumerate().filter(|(_, w)| w.is_free()) {
        let canonical = match word.text.as_str() {
            "production" | "prod" => "production",
            "staging" => "staging",
            "development" | "dev" => "development",
            "test" => "test",
            _ => continue,
        };
        let before = free_word(words, i.checked_sub(1));
        let before_the = free_word(words, i.checked_sub(2));
        let after = free_word(words, Some(i + 1));
        let phrased = before.is_some_and(|w| PREPOSITIONS.contains(&w) || w == "environment")
            || (before == Some("the") && before_the.is_some_and(|w| PREPOSITIONS.contains(&w)))
            || matches!(after, Some("environment" | "env"));
        if !phrased {
            continue;
        }
        match found {
            Some(other) if other != canonical => {
                return refuse(format!(
                    "conflicting environments in the text: '{other}' and '{canonical}'"
                ))
            }
            _ => found = Some(canonical),
        }
    }
    Ok(found)
}

fn slice(words: &[Word]) -> Result<Option<SliceType>, Untranslatable> {
    let mut found: Option<(SliceType, &str)> = None;
    for word in words.iter().filter(|w| w.is_free()) {
        let slice = match word.text.as_str() {
            "embb" => SliceType::Embb,
            "urllc" => SliceType::Urllc,
            "mmtc" => SliceType::Mmtc,
            _ => continue,
        };
        match found {
            Some((other, name)) if other != slice => {
                return refuse(format!(
                    "two slice types in the text: '{name}' and '{}'",
                    word.text
                ))
            }
            _ => found = Some((slice, word.text.as_str())),
        }
    }
    Ok(found.map(|(s, _)| s))
}

// ---------------------------------------------------------------------------------------
// Network events
// ---------------------------------------------------------------------------------------

const KPI_THRESHOLD_CROSSED: &str = "kpi_threshold_crossed";

/// A utilisation KPI above its threshold, the one event that scales out.
#[derive(Debug)]
struct KpiCrossing {
    component: Component,
    namespace: String,
    metric: String,
    value: f64,
    threshold: f64,
}

impl KpiCrossing {
    fn read(event: &NetworkEvent) -> Result<Self, Untranslatable> {
        let kind = event.event_type.trim();
        if !kind.eq_ignore_ascii_case(KPI_THRESHOLD_CROSSED) {
            return refuse(format!(
                "no rule for network events of type '{}'",
                shown(kind)
            ));
        }
        let metric = required(event.metric.as_deref(), "metric")?;
        let value = event
            .value
            .ok_or_else(|| Untranslatable::new("the network event has no 'value'"))?;
        let threshold = event
            .threshold
            .ok_or_else(|| Untranslatable::new("the network event has no 'threshold'"))?;
        let nf_type = required(event.nf_type.as_deref(), "nf_type")?;
        let namespace = required(event.namespace.as_deref(), "namespace")?;

        if !is_utilisation(metric) {
            return refuse(format!(
                "metric '{}' is not a utilisation metric; only utilisation crossings scale out",
                shown(metric)
            ));
        }
        if !value.is_finite() || !threshold.is_finite() {
            return refuse("the event's value or threshold is not a finite number");
        }
        if value <= threshold {
            return refuse(format!(
                "{} {value} is not above the threshold {threshold}",
                shown(metric)
            ));
        }
        let component = Component::from_name(nf_type).ok_or_else(|| {
            Untranslatable::new(format!(
                "nf_type '{}' is not a supported network function",
                shown(nf_type)
            ))
        })?;
        Ok(Self {
            component,
            namespace: namespace.to_lowercase(),
            metric: metric.to_string(),
            value,
            threshold,
        })
    }

    /// The generated intent text. Event strings that are not plainly safe are left out,
    /// since the text must carry no markup (validation refuses it) and stays readable.
    fn describe(&self, event: &NetworkEvent) -> String {
        let mut text = format!("Scale out {}", self.component);
        if let Some(ns) = clean(&self.namespace) {
            text.push_str(&format!(" in {ns}"));
        }
        let metric = clean(&self.metric).unwrap_or("utilisation");
        text.push_str(&format!(
            " by one replica: {metric} {} is above the threshold {}",
            self.value, self.threshold
        ));
        let id = event.event_id.as_deref().and_then(clean);
        let source = event.source.as_deref().and_then(clean);
        match (id, source) {
            (Some(id), Some(source)) => text.push_str(&format!(" (event {id} from {source})")),
            (Some(id), None) => text.push_str(&format!(" (event {id})")),
            (None, Some(source)) => text.push_str(&format!(" (from {source})")),
            (None, None) => {}
        }
        text
    }
}

fn required<'a>(value: Option<&'a str>, field: &str) -> Result<&'a str, Untranslatable> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => Ok(v),
        None => refuse(format!("the network event has no '{field}'")),
    }
}

fn is_utilisation(metric: &str) -> bool {
    let metric = metric.to_ascii_lowercase();
    metric.contains("utilization") || metric.contains("utilisation") || metric == "load"
}

fn priority_of_severity(severity: Option<&str>) -> Priority {
    match severity.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        Some("critical") => Priority::Critical,
        Some("major") => Priority::High,
        Some("minor" | "warning") => Priority::Low,
        _ => Priority::Medium,
    }
}

const MAX_SHOWN: usize = 64;

/// An event string fit to quote in generated text: short and plain, or nothing.
fn clean(s: &str) -> Option<&str> {
    let s = s.trim();
    let plain = s
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/' | '@'));
    (plain && !s.is_empty() && s.chars().count() <= MAX_SHOWN).then_some(s)
}

/// An event string as quoted in a refusal: anything not plain becomes '?', and it is cut
/// short, so reasons stay readable whatever the producer sent.
fn shown(s: &str) -> String {
    s.chars()
        .take(MAX_SHOWN)
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/' | '@' | ' ') {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::NetworkIntent;
    use crate::validate::{has_markup, validate, Limits};
    use Component::*;

    const MAX: u32 = 10;

    fn request(text: &str) -> ServiceRequest {
        ServiceRequest {
            idempotency_key: None,
            intent: text.to_string(),
            target_namespace: None,
            target_environment: None,
            priority: None,
            requester: None,
            parameters: None,
        }
    }

    fn translate(request: ServiceRequest) -> Result<NetworkIntentSpec, Untranslatable> {
        RuleTranslator::new(MAX).translate_sync(&Request::Service(request))
    }

    /// The reason a text is refused; fails the test if it translates.
    fn refused(text: &str) -> String {
        match translate(request(text)) {
            Ok(spec) => panic!("{text:?} should be refused, got {spec:?}"),
            Err(e) => e.reason,
        }
    }

    fn assert_refused(text: &str, mentions: &[&str]) {
        let reason = refused(text);
        for m in mentions {
            assert!(
                reason.to_lowercase().contains(&m.to_lowercase()),
                "{text:?}: reason {reason:?} should mention {m:?}"
            );
        }
    }

    /// What a translated request must say, field by field.
    #[derive(Debug, Clone, Copy)]
    struct Expect {
        kind: IntentType,
        components: &'static [Component],
        replicas: Option<u32>,
        scale_by: Option<i32>,
        namespace: &'static str,
        priority: Priority,
        slice: Option<SliceType>,
    }

    fn deploy(components: &'static [Component], namespace: &'static str) -> Expect {
        Expect {
            kind: IntentType::Deployment,
            components,
            replicas: None,
            scale_by: None,
            namespace,
            priority: Priority::Medium,
            slice: None,
        }
    }

    fn scale(components: &'static [Component], namespace: &'static str) -> Expect {
        Expect {
            kind: IntentType::Scaling,
            ..deploy(components, namespace)
        }
    }

    impl Expect {
        fn replicas(self, n: u32) -> Self {
            Self {
                replicas: Some(n),
                ..self
            }
        }
        fn by(self, d: i32) -> Self {
            Self {
                scale_by: Some(d),
                ..self
            }
        }
        fn priority(self, priority: Priority) -> Self {
            Self { priority, ..self }
        }
        fn slice(self, slice: SliceType) -> Self {
            Self {
                slice: Some(slice),
                ..self
            }
        }
    }

    fn assert_spec(what: &str, spec: &NetworkIntentSpec, expect: Expect) {
        assert_eq!(spec.intent_type, expect.kind, "{what}: intent type");
        assert_eq!(
            spec.target_components, expect.components,
            "{what}: components"
        );
        let scaling = spec.scaling.clone().unwrap_or_default();
        assert_eq!(scaling.replicas, expect.replicas, "{what}: replicas");
        assert_eq!(scaling.scale_by, expect.scale_by, "{what}: scale_by");
        assert_eq!(spec.target_namespace, expect.namespace, "{what}: namespace");
        assert_eq!(spec.priority, expect.priority, "{what}: priority");
        assert_eq!(
            spec.network_slice.as_ref().map(|s| s.slice_type),
            expect.slice,
            "{what}: slice"
        );
        if expect.replicas.is_none() && expect.scale_by.is_none() {
            assert_eq!(spec.scaling, None, "{what}: no scaling block");
        }
    }

    /// Translates `req`, checks every field, and checks validation accepts the result.
    fn check_request(req: ServiceRequest, expect: Expect) -> NetworkIntentSpec {
        let what = req.intent.clone();
        let spec = translate(req).unwrap_or_else(|e| panic!("{what:?} refused: {e}"));
        assert_spec(&what, &spec, expect);
        let intent = NetworkIntent::new("test-key", spec.clone());
        validate(&intent, &Limits::default())
            .unwrap_or_else(|e| panic!("{what:?} produced an invalid intent: {e}"));
        spec
    }

    fn check(text: &str, expect: Expect) -> NetworkIntentSpec {
        check_request(request(text), expect)
    }

    // --- actions ----------------------------------------------------------------------

    #[test]
    fn deploy_amf_with_three_replicas() {
        let spec = check(
            "Deploy AMF with 3 replicas in namespace core5g",
            deploy(&[Amf], "core5g").replicas(3),
        );
        assert_eq!(
            spec.intent,
            "Deploy AMF with 3 replicas in namespace core5g"
        );
        assert_eq!(spec.target_environment, None);
        assert_eq!(spec.resources, None);
        assert!(spec.parameters.is_empty());
    }

    #[test]
    fn deploy_without_count_has_no_scaling() {
        check("Deploy AMF in namespace core5g", deploy(&[Amf], "core5g"));
    }

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
            "grow AMF from 3 to 5 replicas in namespace core5g",
            "shrink AMF to five copies in namespace core5g",
            "Scale AMF up to 5 in namespace core5g",
        ] {
            check(text, scale(&[Amf], "core5g").replicas(5));
        }
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

    #[test]
    fn empty_text_is_refused() {
        assert_refused("", &["the intent text is empty"]);
        assert_refused("   \n\t ", &["the intent text is empty"]);
    }

    // --- components -------------------------------------------------------------------

    #[test]
    fn several_components_in_order_without_duplicates() {
        check(
            "Deploy AMF and SMF in namespace core5g",
            deploy(&[Amf, Smf], "core5g"),
        );
        check(
            "deploy amf, smf and upf in namespace core5g",
            deploy(&[Amf, Smf, Upf], "core5g"),
        );
        check(
            "Deploy UPF, then AMF, then the upf again in namespace core5g",
            deploy(&[Upf, Amf], "core5g"),
        );
        check(
            "Deploy NRF, UDM, UDR, PCF, AUSF, NSSF and NEF in namespace core5g",
            deploy(&[Nrf, Udm, Udr, Pcf, Ausf, Nssf, Nef], "core5g"),
        );
    }

    #[test]
    fn ran_aliases_name_their_component() {
        let cases: &[(&str, Component)] = &[
            ("near-rt ric", NearRtRic),
            ("Near RT RIC", NearRtRic),
            ("nearrt-ric", NearRtRic),
            ("near-RT-RIC", NearRtRic),
            ("RIC", NearRtRic),
            ("xApp", Xapp),
            ("XAPP", Xapp),
            ("O-DU", ODu),
            ("odu", ODu),
            ("distributed unit", ODu),
            ("DU", ODu),
            ("o-cu-cp", OCuCp),
            ("CU-CP", OCuCp),
            ("cucp", OCuCp),
            ("O-CU-UP", OCuUp),
            ("cu-up", OCuUp),
            ("cuup", OCuUp),
        ];
        for (name, component) in cases {
            let text = format!("Deploy the {name} in namespace ran");
            let spec = translate(request(&text)).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(spec.target_components, vec![*component], "{text}");
            assert_eq!(spec.intent_type, IntentType::Deployment, "{text}");
            assert_eq!(spec.target_namespace, "ran", "{text}");
        }
    }

    #[test]
    fn du_is_only_a_whole_word() {
        check(
            "Deploy AMF during maintenance in namespace core5g",
            deploy(&[Amf], "core5g"),
        );
        check(
            "Deploy the O-DU and the O-CU-CP in namespace ran",
            deploy(&[ODu, OCuCp], "ran"),
        );
    }

    #[test]
    fn plurals_name_the_component() {
        check(
            "Deploy two UPFs in namespace core5g",
            deploy(&[Upf], "core5g").replicas(2),
        );
        check("Deploy xApps in namespace ric", deploy(&[Xapp], "ric"));
    }

    #[test]
    fn unknown_nf_beside_a_known_one_is_ignored() {
        check(
            "Deploy AMF and MME in namespace core5g",
            deploy(&[Amf], "core5g"),
        );
        check(
            "Deploy AMF and the FOOBAR function in namespace core5g",
            deploy(&[Amf], "core5g"),
        );
        // an unsupported function is not the noun of a count either
        check(
            "Deploy AMF and 3 MMEs in namespace core5g",
            deploy(&[Amf], "core5g"),
        );
    }

    #[test]
    fn no_known_component_is_refused_with_the_list() {
        assert_refused(
            "Deploy something in namespace core5g",
            &[
                "no known network function",
                "amf",
                "smf",
                "near-rt-ric",
                "o-cu-up",
            ],
        );
        assert_refused(
            "Deploy MME in namespace core5g",
            &["no known network function", "mme", "not supported"],
        );
        // the non-RT RIC is not the near-RT RIC
        assert_refused(
            "Deploy the non-RT RIC in namespace smo",
            &["non-RT RIC", "not supported"],
        );
    }

    #[test]
    fn a_bare_cu_is_ambiguous() {
        assert_refused(
            "Deploy the CU in namespace ran",
            &["'cu'", "o-cu-cp", "o-cu-up"],
        );
        assert_refused(
            "Deploy AMF and O-CU in namespace ran",
            &["o-cu", "ambiguous"],
        );
    }

    #[test]
    fn component_names_are_not_directions() {
        // "up" in "cu-up" must not read as "scale up"
        assert_refused("Scale the cu-up by 2 in namespace ran", &["direction"]);
        check(
            "Scale out the cu-up by 2 in namespace ran",
            scale(&[OCuUp], "ran").by(2),
        );
    }

    // --- counts -----------------------------------------------------------------------

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
    fn number_words_zero_to_twenty() {
        for (n, word) in NUMBER_WORDS.iter().enumerate() {
            let text = format!("Scale SMF to {word} replicas in namespace core5g");
            check(&text, scale(&[Smf], "core5g").replicas(n as u32));
        }
        check(
            "Deploy a single AMF instance in namespace core5g",
            deploy(&[Amf], "core5g").replicas(1),
        );
        check(
            "Deploy AMF as a single replica in namespace core5g",
            deploy(&[Amf], "core5g").replicas(1),
        );
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
            &["ambiguous", "3 replicas", "5 replicas"],
        );
        assert_refused(
            "Deploy AMF with 3 replicas and SMF with 2 replicas in namespace core5g",
            &["ambiguous"],
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
        // a large but representable count is parsed; validation refuses it
        let spec = translate(request("Deploy AMF with 500 replicas in namespace core5g"))
            .expect("500 is parsed");
        assert_eq!(spec.scaling.as_ref().and_then(|s| s.replicas), Some(500));
        let err = validate(&NetworkIntent::new("k", spec), &Limits::default())
            .expect_err("validation refuses 500");
        assert_eq!(err.field, "spec.scaling.replicas");
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
    fn timed_and_scheduled_requests_are_refused() {
        for (text, phrase) in [
            (
                "Scale AMF to 5 for 3 hours in namespace core5g",
                "'for 3 hours'",
            ),
            ("Scale AMF to 4 at 18:00 in namespace core5g", "'at 18'"),
            ("Scale AMF to 4 at 5pm in namespace core5g", "'at 5pm'"),
            ("Deploy AMF in 5 min in namespace core5g", "'in 5 min'"),
            (
                "Deploy AMF on 2024-05-01 in namespace core5g",
                "'on 2024-05-01'",
            ),
            ("Deploy AMF tomorrow in namespace core5g", "'tomorrow"),
            (
                "Temporarily scale AMF to 5 in namespace core5g",
                "'temporarily",
            ),
        ] {
            let reason = refused(text);
            assert!(reason.contains("timed or scheduled"), "{text}: {reason}");
            assert!(reason.contains(phrase), "{text}: {reason}");
        }
        // numbers of other things are not durations
        check(
            "Deploy AMF with 2 replicas for 2 tenants in namespace core5g",
            deploy(&[Amf], "core5g").replicas(2),
        );
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

    // --- namespace --------------------------------------------------------------------

    #[test]
    fn namespace_phrasings() {
        for text in [
            "Deploy AMF in namespace core5g",
            "Deploy AMF namespace core5g",
            "Deploy AMF in the core5g namespace",
            "Deploy AMF ns core5g",
            "Deploy AMF, namespace: core5g",
            "Deploy AMF namespace=core5g",
            "Deploy AMF into namespace Core5G.",
            "Deploy AMF in a namespace named core5g",
            "Deploy AMF in namespace core5g, in the core5g namespace",
        ] {
            check(text, deploy(&[Amf], "core5g"));
        }
    }

    #[test]
    fn namespace_from_the_field() {
        let mut req = request("Deploy AMF");
        req.target_namespace = Some(" Core5G ".into());
        check_request(req, deploy(&[Amf], "core5g"));
        let mut req = request("Deploy AMF in namespace core5g");
        req.target_namespace = Some("core5g".into());
        check_request(req, deploy(&[Amf], "core5g"));
    }

    #[test]
    fn missing_namespace_is_refused() {
        assert_refused(
            "Deploy AMF",
            &["no target namespace", "in namespace X", "target_namespace"],
        );
        let mut req = request("Deploy AMF");
        req.target_namespace = Some("  ".into());
        assert!(translate(req).is_err());
    }

    #[test]
    fn conflicting_namespaces_are_refused() {
        let mut req = request("Deploy AMF in namespace core5g");
        req.target_namespace = Some("edge".into());
        let reason = translate(req).expect_err("conflict").reason;
        assert!(
            reason.contains("core5g") && reason.contains("edge"),
            "{reason}"
        );
        assert_refused(
            "Deploy AMF in namespace core5g and SMF in namespace edge",
            &["two namespaces", "core5g", "edge"],
        );
    }

    #[test]
    fn the_namespace_name_is_not_read_as_anything_else() {
        check(
            "Deploy AMF in namespace delete-me",
            deploy(&[Amf], "delete-me"),
        );
        check("Deploy SMF in the upf namespace", deploy(&[Smf], "upf"));
        let spec = check(
            "Deploy AMF in namespace production",
            deploy(&[Amf], "production"),
        );
        assert_eq!(spec.target_environment, None);
        check("Deploy AMF in namespace urgent", deploy(&[Amf], "urgent"));
        // "in the same namespace" names none
        assert_refused("Deploy AMF in the same namespace", &["no target namespace"]);
    }

    // --- priority, environment, slice, resources -------------------------------------

    #[test]
    fn priority_from_the_field() {
        let mut req = request("Deploy AMF in namespace core5g, low priority");
        req.priority = Some("High".into());
        check_request(req, deploy(&[Amf], "core5g").priority(Priority::High));
        let mut req = request("Deploy AMF in namespace core5g");
        req.priority = Some("whenever".into());
        let reason = translate(req).expect_err("bad priority").reason;
        assert!(reason.contains("'whenever'"), "{reason}");
    }

    #[test]
    fn priority_from_the_text() {
        let cases: &[(&str, Priority)] = &[
            ("Urgent: deploy AMF in namespace core5g", Priority::Critical),
            ("Deploy AMF in namespace core5g ASAP", Priority::Critical),
            (
                "Emergency: deploy AMF in namespace core5g",
                Priority::Critical,
            ),
            (
                "Deploy AMF in namespace core5g, critical",
                Priority::Critical,
            ),
            (
                "Deploy AMF in namespace core5g, high priority",
                Priority::High,
            ),
            (
                "High-priority: deploy AMF in namespace core5g",
                Priority::High,
            ),
            (
                "Deploy AMF in namespace core5g with priority: high",
                Priority::High,
            ),
            (
                "Deploy AMF in namespace core5g, low priority",
                Priority::Low,
            ),
            (
                "low-priority deploy of AMF in namespace core5g",
                Priority::Low,
            ),
            ("Deploy AMF in namespace core5g", Priority::Medium),
        ];
        for (text, priority) in cases {
            check(text, deploy(&[Amf], "core5g").priority(*priority));
        }
        assert_refused(
            "Urgent: deploy AMF in namespace core5g, low priority",
            &["conflicting priorities", "urgent", "low priority"],
        );
    }

    #[test]
    fn environment_only_when_clearly_phrased() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "Deploy AMF in namespace core5g for production",
                Some("production"),
            ),
            (
                "Deploy AMF in production, namespace core5g",
                Some("production"),
            ),
            (
                "Deploy AMF in the production environment, ns core5g",
                Some("production"),
            ),
            ("Deploy AMF in staging, namespace core5g", Some("staging")),
            (
                "Deploy AMF to the dev environment, namespace core5g",
                Some("development"),
            ),
            (
                "Deploy AMF in namespace core5g in development",
                Some("development"),
            ),
            (
                "Deploy AMF in the test environment, namespace core5g",
                Some("test"),
            ),
            (
                "Deploy AMF; namespace: core5g; environment: staging",
                Some("staging"),
            ),
            ("Deploy production-grade AMF in namespace core5g", None),
            ("Deploy AMF in namespace core5g to carry test traffic", None),
        ];
        for (text, env) in cases {
            let spec = check(text, deploy(&[Amf], "core5g"));
            assert_eq!(spec.target_environment.as_deref(), *env, "{text}");
        }
        let mut req = request("Deploy AMF in namespace core5g for production");
        req.target_environment = Some("Staging".into());
        let spec = check_request(req, deploy(&[Amf], "core5g"));
        assert_eq!(spec.target_environment.as_deref(), Some("staging"));
        assert_refused(
            "Deploy AMF in staging and in production, namespace core5g",
            &["conflicting environments"],
        );
    }

    #[test]
    fn slice_types() {
        check(
            "Deploy UPF for the eMBB slice in namespace core5g",
            deploy(&[Upf], "core5g").slice(SliceType::Embb),
        );
        check(
            "Deploy a URLLC UPF in namespace core5g",
            deploy(&[Upf], "core5g").slice(SliceType::Urllc),
        );
        check(
            "Scale SMF to 4 for mMTC in namespace core5g",
            scale(&[Smf], "core5g").replicas(4).slice(SliceType::Mmtc),
        );
        check(
            "Deploy UPF for embbx in namespace core5g",
            deploy(&[Upf], "core5g"),
        );
        assert_refused(
            "Deploy UPF for eMBB and URLLC in namespace core5g",
            &["two slice types", "embb", "urllc"],
        );
    }

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
    fn text_is_trimmed_and_parameters_copied() {
        let mut req = request("  Deploy AMF in namespace core5g \n");
        let parameters = BTreeMap::from([
            (
                "plmn".to_string(),
                crate::intent::ParamValue::String("00101".into()),
            ),
            ("tac".to_string(), crate::intent::ParamValue::Int(7)),
        ]);
        req.parameters = Some(parameters.clone());
        let spec = check_request(req, deploy(&[Amf], "core5g"));
        assert_eq!(spec.intent, "Deploy AMF in namespace core5g");
        assert_eq!(spec.parameters, parameters);
    }

    #[test]
    fn a_full_request() {
        check(
            "Urgent: scale the Near-RT RIC and xApp to 4 replicas for URLLC in the ric namespace",
            scale(&[NearRtRic, Xapp], "ric")
                .replicas(4)
                .priority(Priority::Critical)
                .slice(SliceType::Urllc),
        );
        assert_refused(
            "Scale the Near-RT RIC? No - scale the xApp to 4 in the ric namespace",
            &["negation", "no"],
        );
    }

    // --- network events ---------------------------------------------------------------

    fn kpi() -> NetworkEvent {
        NetworkEvent {
            event_id: Some("ev-1".into()),
            event_type: "kpi_threshold_crossed".into(),
            source: Some("amf-1".into()),
            nf_type: Some("amf".into()),
            namespace: Some("core5g".into()),
            severity: Some("major".into()),
            metric: Some("cpu_utilization".into()),
            value: Some(92.0),
            threshold: Some(80.0),
            description: Some("AMF CPU high".into()),
            timestamp: Some("2024-01-01T00:00:00Z".into()),
        }
    }

    fn translate_event(event: NetworkEvent) -> Result<NetworkIntentSpec, Untranslatable> {
        RuleTranslator::new(MAX).translate_sync(&Request::Event(event))
    }

    fn event_refused(event: NetworkEvent, mentions: &[&str]) {
        let reason = translate_event(event.clone())
            .expect_err(&format!("{event:?} should be refused"))
            .reason;
        for m in mentions {
            assert!(reason.contains(m), "reason {reason:?} should mention {m:?}");
        }
    }

    #[test]
    fn kpi_crossing_scales_out_by_one() {
        let spec = translate_event(kpi()).expect("translates");
        assert_spec(
            "kpi",
            &spec,
            scale(&[Amf], "core5g").by(1).priority(Priority::High),
        );
        assert_eq!(
            spec.scaling,
            Some(Scaling {
                scale_by: Some(1),
                max_replicas: Some(MAX),
                ..Scaling::default()
            })
        );
        assert_eq!(
            spec.intent,
            "Scale out amf in core5g by one replica: cpu_utilization 92 is above the \
             threshold 80 (event ev-1 from amf-1)"
        );
        assert_eq!(spec.target_environment, None);
        validate(&NetworkIntent::new("ev-1", spec), &Limits::default()).expect("valid");
    }

    #[test]
    fn kpi_utilisation_metrics() {
        for (metric, nf, component) in [
            ("memory_utilisation", "SMF", Smf),
            ("load", "upf", Upf),
            ("Cell_PRB_Utilization", "o-du", ODu),
            ("cpu_utilization", "near-rt-ric", NearRtRic),
        ] {
            let mut event = kpi();
            event.metric = Some(metric.into());
            event.nf_type = Some(nf.into());
            event.value = Some(80.5);
            let spec = translate_event(event).unwrap_or_else(|e| panic!("{metric}: {e}"));
            assert_eq!(spec.target_components, vec![component], "{metric}");
            assert_eq!(spec.intent_type, IntentType::Scaling, "{metric}");
            assert!(
                spec.intent.contains("80.5 is above the threshold 80"),
                "{}",
                spec.intent
            );
        }
    }

    #[test]
    fn severity_sets_priority() {
        for (severity, priority) in [
            (Some("critical"), Priority::Critical),
            (Some("CRITICAL"), Priority::Critical),
            (Some("major"), Priority::High),
            (Some("minor"), Priority::Low),
            (Some("warning"), Priority::Low),
            (Some("info"), Priority::Medium),
            (None, Priority::Medium),
        ] {
            let mut event = kpi();
            event.severity = severity.map(String::from);
            let spec = translate_event(event).expect("translates");
            assert_eq!(spec.priority, priority, "{severity:?}");
        }
    }

    #[test]
    fn events_of_other_types_are_refused() {
        let mut event = kpi();
        event.event_type = "alarm".into();
        event_refused(event, &["no rule for network events of type 'alarm'"]);
    }

    #[test]
    fn kpi_on_other_metrics_is_refused() {
        let mut event = kpi();
        event.metric = Some("latency_ms".into());
        event_refused(event, &["'latency_ms'", "not a utilisation metric"]);
    }

    #[test]
    fn kpi_not_above_threshold_is_refused() {
        for value in [80.0, 12.0] {
            let mut event = kpi();
            event.value = Some(value);
            event_refused(event, &["not above the threshold 80"]);
        }
    }

    #[test]
    fn kpi_missing_fields_are_named() {
        type Strip = fn(&mut NetworkEvent);
        let cases: [(Strip, &str); 6] = [
            (|e| e.metric = None, "'metric'"),
            (|e| e.value = None, "'value'"),
            (|e| e.threshold = None, "'threshold'"),
            (|e| e.nf_type = None, "'nf_type'"),
            (|e| e.namespace = None, "'namespace'"),
            (|e| e.namespace = Some("  ".into()), "'namespace'"),
        ];
        for (strip, field) in cases {
            let mut event = kpi();
            strip(&mut event);
            event_refused(event, &["has no", field]);
        }
    }

    #[test]
    fn kpi_for_an_unknown_nf_is_refused() {
        let mut event = kpi();
        event.nf_type = Some("mme".into());
        event_refused(
            event,
            &["nf_type 'mme'", "not a supported network function"],
        );
    }

    #[test]
    fn generated_text_carries_no_markup() {
        let mut event = kpi();
        event.event_id = Some("<script>alert(1)</script>".into());
        event.source = Some("{{ .Values.evil }}".into());
        event.metric = Some("cpu_utilization`rm`".into());
        let spec = translate_event(event).expect("translates");
        assert!(!has_markup(&spec.intent), "{}", spec.intent);
        for bad in ['<', '>', '`'] {
            assert!(!spec.intent.contains(bad), "{}", spec.intent);
        }
        assert!(!spec.intent.contains("{{") && !spec.intent.contains("${"));
        assert_eq!(
            spec.intent,
            "Scale out amf in core5g by one replica: utilisation 92 is above the threshold 80"
        );

        let mut event = kpi();
        event.namespace = Some("${NS}".into());
        event.event_id = None;
        let spec = translate_event(event).expect("translates; validation refuses the namespace");
        assert!(!has_markup(&spec.intent), "{}", spec.intent);
        assert!(spec.intent.ends_with("(from amf-1)"), "{}", spec.intent);
    }

    #[test]
    fn refusals_quote_event_strings_safely() {
        let mut event = kpi();
        event.event_type = "<b>alarm</b>".into();
        let reason = translate_event(event).expect_err("refused").reason;
        assert!(!has_markup(&reason), "{reason}");
    }

    #[test]
    fn the_translator_trait_reports_rules_and_translates() {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};

        let translator = RuleTranslator::new(MAX);
        assert_eq!(translator.kind(), TranslatorKind::Rules);
        let request = Request::Service(request("Deploy AMF in namespace core5g"));
        let mut future = std::pin::pin!(translator.translate(&request));
        let mut cx = Context::from_waker(Waker::noop());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(result) => assert_eq!(result, translator.translate_sync(&request)),
            Poll::Pending => panic!("rule translation never waits"),
        }
    }
}
