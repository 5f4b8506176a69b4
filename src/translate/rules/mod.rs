//! The deterministic rule translator: plain-language service requests and KPI events become
//! NetworkIntent specs by fixed word rules, with no model and no guessing.
//!
//! Whatever it does not understand with confidence it refuses with an [`Untranslatable`]
//! reason that names the missing or ambiguous part, because a refused request can be
//! corrected and resent while a wrong NetworkIntent changes a live network. Bounds
//! (replica limits, DNS names, markup) are checked afterwards by [`crate::validate`].
//!
//! This file owns the public face, [`RuleTranslator`], and the dispatch by request kind.
//! The rules themselves live beside it, one concern per file:
//!
//! - `event.rs`: the network-event rule (a utilisation KPI above its threshold scales the
//!   network function out by one replica);
//! - `screen.rs`: the refusals no translator may pass, run before any model is asked
//!   ([`screen`]), and what the text states explicitly ([`Stated`]);
//! - `service.rs`: a service request read as a whole, and the order of its readings;
//! - `text.rs`: tokens and words of the request text, and which reading claimed which;
//! - `forbidden.rs`: Kubernetes objects, privileges, commands and instructions to a
//!   translator, refused whatever else the text asks;
//! - `action.rs`: deploy or scale, and the deletions, negations, two actions and
//!   unsupported actions that are refused; `timing.rs`: timed and scheduled requests,
//!   also refused;
//! - `components.rs`: network-function names; `namespace.rs`: the target namespace;
//!   `resources.rs`: cpu and memory amounts;
//! - `counts.rs`: replica counts and changes, read with `number.rs`;
//! - `qualifiers.rs`: priority, environment and network slice;
//! - `expect.rs` (tests only): the helpers the tests beside each rule share.

pub use namespace::field_namespace;
pub use screen::{screen, Stated};

use super::{Translation, Translator, Untranslatable};
use crate::intent::NetworkIntentSpec;
use crate::request::Request;

mod action;
mod components;
mod counts;
mod event;
#[cfg(test)]
mod expect;
mod forbidden;
mod namespace;
mod number;
mod qualifiers;
mod resources;
mod screen;
mod service;
mod text;
mod timing;

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
            Request::Service(service) => service::translate(service),
            Request::Event(event) => event::translate(event, self.max_replicas),
        }
    }
}

impl Translator for RuleTranslator {
    async fn translate(&self, request: &Request) -> Translation {
        Translation::rules(self.translate_sync(request))
    }
}

fn refuse<T>(reason: impl Into<String>) -> Result<T, Untranslatable> {
    Err(Untranslatable::new(reason))
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    use super::expect::{request, MAX};
    use super::*;
    use crate::translate::TranslatorKind;

    #[test]
    fn the_translator_trait_reports_rules_and_translates() {
        let translator = RuleTranslator::new(MAX);
        let request = Request::Service(request("Deploy AMF in namespace core5g"));
        let mut future = std::pin::pin!(translator.translate(&request));
        let mut cx = Context::from_waker(Waker::noop());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(translation) => {
                assert_eq!(translation.by, TranslatorKind::Rules);
                assert_eq!(translation.result, translator.translate_sync(&request));
            }
            Poll::Pending => panic!("rule translation never waits"),
        }
    }
}
