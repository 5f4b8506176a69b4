//! The screen: what no translator may act on, refused before any is asked, and what the
//! text states explicitly, which any translator's answer must agree with.
//!
//! The rules' refusals split in two. Some are about the rules alone: a text without a
//! verb they know, or a count written as "a dozen", may still be read by a model. The
//! others hold for any reader, and are the screen: objects, privileges and commands the
//! service never carries out, instructions to a translator, deletion and stopping,
//! negation, timing, two actions in one text, ambiguous names and network functions the
//! service does not manage (alone, or beside known ones), two namespaces, amounts that
//! cannot be read, and counts no translator may read into one (ranges, a count per
//! component, two different counts, negative or fractional counts). The LLM translator
//! runs the screen first: a text it refuses costs no call.
//!
//! What passes the screen comes with [`Stated`]: the namespace, components, count and
//! resources the text names, as the rules read them.

use super::action::{deploys, other_action_only, refuse_deletion_and_negation, refuse_two_actions};
use super::components::ComponentScan;
use super::counts::{self, Change};
use super::forbidden::refuse_forbidden;
use super::namespace::stated_namespace;
use super::refuse;
use super::text::{Text, Word};
use super::timing::refuse_timing;
use crate::intent::{Component, Resources};
use crate::request::ServiceRequest;
use crate::translate::Untranslatable;

/// What a text states explicitly, as the rules read it. A model's answer must agree
/// with every part that is known (see `translate::llm`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stated {
    /// The namespace the text names, or the request's `target_namespace` (they agree,
    /// or the screen refuses), lower-cased in ASCII only.
    pub namespace: Option<String>,
    /// The components the text names, in order; empty when it names none the rules know.
    pub components: Vec<Component>,
    /// The replica count the text gives ("with 3 replicas", "to 5").
    pub replicas: Option<u32>,
    /// The replica change the text gives ("out by 2" is +2).
    pub scale_by: Option<i32>,
    /// The cpu and memory amounts the text gives. The screen refuses every amount it
    /// cannot read, so `None` means the text gives none.
    pub resources: Option<Resources>,
    /// The text writes a zero ("0", "zero"): only then may an answer carry 0 replicas.
    pub says_zero: bool,
}

/// A service request's text read once: tokens claimed by the readings that claim them.
pub(super) struct Reading {
    pub(super) intent: String,
    pub(super) text: Text,
    pub(super) namespaces: Vec<String>,
    pub(super) components: ComponentScan,
    pub(super) resources: Result<Option<Resources>, Untranslatable>,
}

impl Reading {
    /// Reads the request's text; an empty text is refused.
    pub(super) fn of(request: &ServiceRequest) -> Result<Self, Untranslatable> {
        let intent = request.intent.trim();
        if intent.is_empty() {
            return refuse("the intent text is empty");
        }
        let mut text = Text::new(intent);
        let mut namespaces = text.claim_namespaces();
        let components = text.claim_components();
        for name in text.claim_bare_namespaces() {
            if !namespaces.contains(&name) {
                namespaces.push(name);
            }
        }
        let resources = text.claim_resources();
        Ok(Self {
            intent: intent.to_string(),
            text,
            namespaces,
            components,
            resources,
        })
    }

    /// Runs the screen over the reading (`words` are its text's words); see the module
    /// documentation. Refusals come in the order a reader would fix them.
    pub(super) fn screen(
        &self,
        words: &[Word],
        field_namespace: Option<&str>,
    ) -> Result<Stated, Untranslatable> {
        refuse_forbidden(words)?;
        refuse_deletion_and_negation(words)?;
        refuse_timing(&self.text)?;
        refuse_two_actions(words)?;
        self.components.screen()?;
        self.refuse_unknown_functions()?;
        let namespace = stated_namespace(&self.namespaces, field_namespace)?;
        let resources = self.resources.clone()?;
        // The numbers of an action the rules do not implement ("upgrade to 2.1") are
        // not replica counts; a model may read that action, and the rules refuse it.
        let change = if other_action_only(words) {
            None
        } else {
            counts::screen(&self.text, words, self.components.tokens(), deploys(words))?
        };
        let says_zero = (0..self.text.len())
            .filter_map(|i| self.text.raw_token(i))
            .any(|raw| raw == "0" || raw.eq_ignore_ascii_case("zero"));
        Ok(Stated {
            namespace,
            components: self.components.found().to_vec(),
            replicas: match change {
                Some(Change::To(n)) => u32::try_from(n).ok(),
                _ => None,
            },
            scale_by: match change {
                Some(Change::By(d)) => i32::try_from(d).ok(),
                _ => None,
            },
            resources,
            says_zero,
        })
    }

    /// A function name the tables do not know, beside one they do: reading only the
    /// known one would carry out part of the request.
    fn refuse_unknown_functions(&self) -> Result<(), Untranslatable> {
        let found = self.components.found();
        if found.is_empty() {
            return Ok(());
        }
        let Some(name) = self.text.unknown_functions().into_iter().next() else {
            return Ok(());
        };
        let known: Vec<&str> = found.iter().map(|c| c.as_str()).collect();
        let all: Vec<&str> = Component::ALL.iter().map(|c| c.as_str()).collect();
        refuse(format!(
            "the text names '{name}', which is not a network function this service knows, \
             beside {}: doing only part of the request is not done; known: {}",
            known.join(", "),
            all.join(", ")
        ))
    }
}

/// Screens a service request before any translator reads it: `Err` with the reason for
/// a text no translator may act on, else what the text states explicitly.
pub fn screen(request: &ServiceRequest) -> Result<Stated, Untranslatable> {
    let reading = Reading::of(request)?;
    let words = reading.text.words();
    reading.screen(&words, request.target_namespace.as_deref())
}
