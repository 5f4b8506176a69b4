//! The schema registry client: writer schemas by id, fetched once and kept in a bounded
//! cache, and the registration of the outcome schema.
//!
//! The REST calls are schema_registry_converter's; what this module adds is the one
//! decision the worker needs from every answer: the registry does not know the id (the
//! record's fault: it is rejected), the schema it returned cannot be used (also the
//! record's), or the registry could not answer (not the record's fault: the caller
//! retries and its partition waits).

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use apache_avro::Schema;
use lru::LruCache;
use schema_registry_converter::async_impl::schema_registry::{
    get_schema_by_id, post_schema, SrSettings,
};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};

use crate::config::{ConfigError, RegistryArgs};

/// Why a writer schema could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The registry answered that it has no schema with this id.
    #[error("the schema registry has no schema with id {id}")]
    UnknownId { id: u32 },
    /// No registry is configured, so no id can be resolved.
    #[error("schema id {id} cannot be resolved: no SCHEMA_REGISTRY_URL is set")]
    NotConfigured { id: u32 },
    /// The registry returned a schema this service cannot read with: not Avro, or not a
    /// valid Avro schema.
    #[error("schema id {id} in the schema registry is not usable: {reason}")]
    Unusable { id: u32, reason: String },
    /// The registry could not be reached or failed to answer (refused connection, timeout,
    /// a 5xx, refused credentials): worth retrying, and never the record's fault.
    #[error("the schema registry did not answer: {reason}")]
    Unavailable { reason: String },
    /// The registry refused a schema to register (e.g. incompatible with the subject's
    /// latest version).
    #[error("the schema registry refused the schema for {subject}: {reason}")]
    Refused { subject: String, reason: String },
}

impl RegistryError {
    /// True when the registry could not answer: the caller retries and waits, rather than
    /// blaming the record.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, RegistryError::Unavailable { .. })
    }
}

/// The registry's answer for one schema id: the writer schema, or why there is none.
pub type SchemaAnswer = Result<Arc<Schema>, RegistryError>;

/// A registry client with a bounded cache of writer schemas by id.
pub struct Registry {
    settings: SrSettings,
    /// Writer schemas by id. Ids are immutable in a registry, so an entry never goes
    /// stale; at the bound the least recently used is dropped and fetched again when
    /// next needed. Unknown ids are not cached: the schema may be registered later.
    cache: Mutex<LruCache<u32, Arc<Schema>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// The client the settings describe; `None` without `SCHEMA_REGISTRY_URL`.
    pub fn from_args(args: &RegistryArgs) -> Result<Option<Registry>, ConfigError> {
        const SETTING: &str = "SCHEMA_REGISTRY_URL (--schema-registry-url)";
        let Some(url) = &args.schema_registry_url else {
            return Ok(None);
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| ConfigError {
            setting: SETTING,
            problem: format!("`{url}` is not a URL: {e}"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ConfigError {
                setting: SETTING,
                problem: format!("`{url}` is not an http or https URL"),
            });
        }
        let mut builder = SrSettings::new_builder(url.trim_end_matches('/').to_owned());
        builder.set_timeout(args.schema_registry_timeout);
        if let Some((user, password)) = args.basic_auth()? {
            builder.set_basic_authorization(&user, Some(password.expose()));
        }
        let settings = builder.build().map_err(|e| ConfigError {
            setting: SETTING,
            problem: format!("cannot build the registry client: {}", e.error),
        })?;
        let bound = NonZeroUsize::new(args.schema_registry_cache_schemas as usize)
            .unwrap_or(NonZeroUsize::MIN);
        Ok(Some(Registry {
            settings,
            cache: Mutex::new(LruCache::new(bound)),
        }))
    }

    /// How many writer schemas the cache holds.
    pub fn cached_schemas(&self) -> usize {
        self.cache.lock().map_or(0, |cache| cache.len())
    }

    /// The writer schema with this id, from the cache if it holds it.
    pub fn cached(&self, id: u32) -> Option<Arc<Schema>> {
        self.cache.lock().ok()?.get(&id).cloned()
    }

    /// The writer schema with this id: from the cache, else fetched (one attempt; the
    /// caller decides how to retry an [`RegistryError::Unavailable`]).
    pub async fn writer_schema(&self, id: u32) -> Result<Arc<Schema>, RegistryError> {
        if let Some(schema) = self.cached(id) {
            return Ok(schema);
        }
        let registered = get_schema_by_id(id, &self.settings)
            .await
            .map_err(|e| classify(id, &e))?;
        if registered.schema_type != SchemaType::Avro {
            return Err(RegistryError::Unusable {
                id,
                reason: format!("it is a {:?} schema, not Avro", registered.schema_type),
            });
        }
        let schema =
            Schema::parse_str(&registered.schema).map_err(|e| RegistryError::Unusable {
                id,
                reason: format!("not a valid Avro schema: {e}"),
            })?;
        let schema = Arc::new(schema);
        if let Ok(mut cache) = self.cache.lock() {
            cache.put(id, schema.clone());
        }
        Ok(schema)
    }

    /// Registers `schema` under `subject` (or finds it registered) and returns its id.
    pub async fn register(&self, subject: &str, schema: &Schema) -> Result<u32, RegistryError> {
        let supplied = SuppliedSchema::new(None, SchemaType::Avro, schema.canonical_form());
        post_schema(&self.settings, subject.to_owned(), supplied)
            .await
            .map(|registered| registered.id)
            .map_err(|e| {
                if answered(&e).is_some_and(|status| (400..500).contains(&status)) {
                    RegistryError::Refused {
                        subject: subject.to_owned(),
                        reason: describe(&e),
                    }
                } else {
                    RegistryError::Unavailable {
                        reason: describe(&e),
                    }
                }
            })
    }
}

/// The HTTP status the registry answered with, when it answered with an error status.
fn answered(e: &SRCError) -> Option<u16> {
    // schema_registry_converter names the status only in its message:
    // "HTTP request to schema registry failed with status 404 Not Found".
    let rest = e.error.split("failed with status ").nth(1)?;
    rest.get(..3)?.parse().ok()
}

fn describe(e: &SRCError) -> String {
    match &e.cause {
        Some(cause) => format!("{}: {cause}", e.error),
        None => e.error.clone(),
    }
}

/// Only a 404 blames the id; every other failure (no answer, 5xx, 401/403 for refused
/// credentials, an answer that is not the registry's JSON) is the registry's.
fn classify(id: u32, e: &SRCError) -> RegistryError {
    match answered(e) {
        Some(404) => RegistryError::UnknownId { id },
        _ => RegistryError::Unavailable {
            reason: describe(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_404_blames_the_id() {
        let not_found = SRCError::new(
            "HTTP request to schema registry failed with status 404 Not Found",
            Some("Schema not found".into()),
            false,
        );
        assert_eq!(classify(7, &not_found), RegistryError::UnknownId { id: 7 });
        for error in [
            "HTTP request to schema registry failed with status 503 Service Unavailable",
            "HTTP request to schema registry failed with status 401 Unauthorized",
            "error sending request",
        ] {
            let e = SRCError::new(error, None, true);
            assert!(classify(7, &e).is_unavailable(), "{error}");
        }
    }

    #[test]
    fn a_url_that_is_not_http_is_refused_at_start() {
        let mut args = RegistryArgs {
            schema_registry_url: Some("ftp://registry".into()),
            schema_registry_basic_auth_file: None,
            schema_registry_timeout: std::time::Duration::from_secs(1),
            schema_registry_cache_schemas: 10,
        };
        let error = Registry::from_args(&args).expect_err("refused");
        assert!(error.problem.contains("not an http"), "{error}");
        args.schema_registry_url = Some("http://127.0.0.1:1".into());
        assert!(Registry::from_args(&args).expect("built").is_some());
        args.schema_registry_url = None;
        assert!(Registry::from_args(&args).expect("built").is_none());
    }
}
