//! Translation: a decoded request becomes a NetworkIntent spec, or is refused with a reason.
//!
//! Translators never guess: what they cannot map with confidence is [`Untranslatable`].
//! Their output is validated afterwards ([`crate::validate`]) whatever translator made it.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::intent::NetworkIntentSpec;
use crate::request::Request;

pub mod rules;

pub use rules::RuleTranslator;

/// Which translator produced an intent, as outcome events report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TranslatorKind {
    Rules,
    Llm,
}

/// Why a request could not be turned into an intent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Untranslatable {
    pub reason: String,
}

impl Untranslatable {
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// Turns requests into intent specs. Implementations may be slow (an LLM call) and are
/// shared across concurrent messages.
pub trait Translator: Send + Sync {
    fn kind(&self) -> TranslatorKind;

    fn translate(
        &self,
        request: &Request,
    ) -> impl Future<Output = Result<NetworkIntentSpec, Untranslatable>> + Send;
}
