//! Translation: a decoded request becomes a NetworkIntent spec, or is refused with a reason.
//!
//! Translators never guess: what they cannot map with confidence is [`Untranslatable`].
//! Their output is validated afterwards ([`crate::validate`]) whatever translator made it.
//!
//! Two translators exist: the deterministic rules ([`rules`], the embedded default) and an
//! OpenAI-compatible LLM ([`llm`]) that falls back to the rules. [`Configured`] is the one
//! the configuration asks for.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, LlmArgs};
use crate::intent::NetworkIntentSpec;
use crate::request::Request;
use crate::validate::Limits;

pub mod llm;
pub mod rules;

pub use llm::LlmTranslator;
pub use rules::RuleTranslator;

/// Which translator produced an intent, as outcome events report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TranslatorKind {
    Rules,
    Llm,
}

impl TranslatorKind {
    /// The name outcome events use.
    pub fn as_str(self) -> &'static str {
        match self {
            TranslatorKind::Rules => "rules",
            TranslatorKind::Llm => "llm",
        }
    }
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

/// What a translator made of a request, and which translator made it (an LLM translator
/// may hand a request to the rules, and outcome events say which one decided).
#[derive(Debug, Clone, PartialEq)]
pub struct Translation {
    pub by: TranslatorKind,
    pub result: Result<NetworkIntentSpec, Untranslatable>,
}

impl Translation {
    pub fn rules(result: Result<NetworkIntentSpec, Untranslatable>) -> Self {
        Self {
            by: TranslatorKind::Rules,
            result,
        }
    }
}

/// Turns requests into intent specs. Implementations may be slow (an LLM call) and are
/// shared across concurrent messages.
pub trait Translator: Send + Sync {
    fn translate(&self, request: &Request) -> impl Future<Output = Translation> + Send;
}

/// The translator the settings ask for: an LLM backed by the rules when `LLM_ENDPOINT`
/// is set, the rules alone otherwise. A setting that cannot work is an error naming it.
pub fn configured(llm: &LlmArgs, limits: Limits) -> Result<Configured, ConfigError> {
    let rules = RuleTranslator::new(limits.max_replicas);
    Ok(
        match LlmTranslator::from_args(llm, rules.clone(), limits)? {
            Some(translator) => {
                tracing::info!(
                    endpoint = %shown(llm.llm_endpoint.as_deref().unwrap_or_default()),
                    model = llm.llm_model.as_deref().unwrap_or_default(),
                    "translating by LLM, with the rules as fallback"
                );
                Configured::Llm(Box::new(translator))
            }
            None => {
                tracing::info!("translating by rules (no LLM_ENDPOINT)");
                Configured::Rules(rules)
            }
        },
    )
}

/// An endpoint as it may be logged: without a password in it.
fn shown(endpoint: &str) -> String {
    reqwest::Url::parse(endpoint).map_or_else(|_| endpoint.to_string(), |url| llm::redacted(&url))
}

/// The translator the configuration asks for: the rules alone, or an LLM backed by them.
pub enum Configured {
    Rules(RuleTranslator),
    Llm(Box<LlmTranslator>),
}

impl Translator for Configured {
    async fn translate(&self, request: &Request) -> Translation {
        match self {
            Configured::Rules(rules) => rules.translate(request).await,
            Configured::Llm(llm) => llm.translate(request).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translator_names_match_serde() {
        for kind in [TranslatorKind::Rules, TranslatorKind::Llm] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }
}
