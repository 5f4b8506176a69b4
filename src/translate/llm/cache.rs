//! The response cache: a request whose text was translated before costs no second call.
//!
//! Keyed by the model and the text with its whitespace normalised (trimmed, runs
//! collapsed to one space) plus the requester's hints that shape the answer (namespace,
//! environment, priority, trimmed), hashed so that a key is 32 bytes whatever the text.
//! Nothing is case-folded: `500m cpu` (half a core) and `500M cpu` are different
//! requests, and Unicode lower-casing maps look-alikes together (the Kelvin sign in
//! `\u{212A}ube-system` lower-cases to `kube-system`). Only
//! accepted answers are kept. Bounded by entry count; at the bound the least recently
//! used entry goes. Hits and misses are counted in `llm_cache_hits_total` and
//! `llm_cache_misses_total`.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;
use metrics::Counter;

use crate::meters;
use sha2::{Digest, Sha256};

use crate::intent::NetworkIntentSpec;
use crate::request::ServiceRequest;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    pub fn of(request: &ServiceRequest, model: &str) -> Self {
        let mut hash = Sha256::new();
        for part in [
            model,
            request.target_namespace.as_deref().unwrap_or(""),
            request.target_environment.as_deref().unwrap_or(""),
            request.priority.as_deref().unwrap_or(""),
        ] {
            hash.update(part.trim().as_bytes());
            hash.update([0]);
        }
        for (i, word) in request.intent.split_whitespace().enumerate() {
            if i > 0 {
                hash.update(b" ");
            }
            hash.update(word.as_bytes());
        }
        Self(hash.finalize().into())
    }
}

pub struct AnswerCache {
    entries: Mutex<LruCache<CacheKey, NetworkIntentSpec>>,
    hits: Counter,
    misses: Counter,
}

impl AnswerCache {
    pub fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            entries: Mutex::new(LruCache::new(capacity)),
            hits: meters::llm_cache_hits(),
            misses: meters::llm_cache_misses(),
        }
    }

    pub fn get(&self, key: &CacheKey) -> Option<NetworkIntentSpec> {
        let found = self.lock().get(key).cloned();
        match found {
            Some(_) => self.hits.increment(1),
            None => self.misses.increment(1),
        }
        found
    }

    pub fn put(&self, key: CacheKey, spec: NetworkIntentSpec) {
        self.lock().put(key, spec);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<CacheKey, NetworkIntentSpec>> {
        // Entries are whole values: a panic elsewhere cannot leave one half-written.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::{Component, IntentType, Priority};

    fn request(text: &str) -> ServiceRequest {
        ServiceRequest::new(text)
    }

    fn spec(namespace: &str) -> NetworkIntentSpec {
        NetworkIntentSpec {
            intent: "x".into(),
            intent_type: IntentType::Deployment,
            priority: Priority::Medium,
            target_components: vec![Component::Amf],
            target_namespace: namespace.into(),
            target_environment: None,
            scaling: None,
            resources: None,
            network_slice: None,
            parameters: Default::default(),
        }
    }

    #[test]
    fn the_key_ignores_spacing_but_not_case_model_or_hints() {
        let key = |r: &ServiceRequest, m| CacheKey::of(r, m);
        let a = request("Deploy AMF  in core5g");
        assert_eq!(key(&a, "m"), key(&request(" Deploy AMF in\tcore5g\n"), "m"));
        assert_ne!(key(&a, "m"), key(&request("deploy amf in core5g"), "m"));
        assert_ne!(
            key(&request("Deploy AMF with 500m cpu"), "m"),
            key(&request("Deploy AMF with 500M cpu"), "m"),
            "half a core is not 500 mega-cores"
        );
        let mut kelvin = a.clone();
        kelvin.target_namespace = Some("\u{212A}ube-system".into());
        let mut kube = a.clone();
        kube.target_namespace = Some("kube-system".into());
        assert_ne!(key(&kelvin, "m"), key(&kube, "m"));
        assert_ne!(key(&a, "m"), key(&a, "other-model"));
        assert_ne!(key(&a, "m"), key(&request("Deploy SMF in core5g"), "m"));
        let mut hinted = a.clone();
        hinted.target_namespace = Some("ran".into());
        assert_ne!(key(&a, "m"), key(&hinted, "m"));
    }

    #[test]
    fn the_least_recently_used_entry_goes_at_the_bound() {
        let cache = AnswerCache::new(2);
        let [a, b, c] = ["a", "b", "c"].map(|t| CacheKey::of(&request(t), "m"));
        cache.put(a, spec("a"));
        cache.put(b, spec("b"));
        assert!(cache.get(&a).is_some()); // a is now the most recent
        cache.put(c, spec("c"));
        assert!(cache.get(&b).is_none());
        assert_eq!(cache.get(&a).unwrap().target_namespace, "a");
        assert_eq!(cache.get(&c).unwrap().target_namespace, "c");
    }
}
