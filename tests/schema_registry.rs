//! The registry client (`src/avro/registry.rs`) against the registry test server: ids
//! resolved once and cached, an unknown id blamed on the record, a registry that is down
//! never blamed on it, the outcome schema registered (and registered again: same id),
//! basic authentication from its file.

mod common;

use common::registry::Registry as TestRegistry;
use nephoran_kafka_consumer::avro::registry::{Registry, RegistryError};
use nephoran_kafka_consumer::avro::schemas;
use nephoran_kafka_consumer::config::RegistryArgs;

fn client(url: String, cache: u32) -> Registry {
    client_with(url, cache, None)
}

fn client_with(url: String, cache: u32, auth_file: Option<std::path::PathBuf>) -> Registry {
    let args = RegistryArgs {
        schema_registry_url: Some(url),
        schema_registry_basic_auth_file: auth_file,
        schema_registry_timeout: std::time::Duration::from_secs(5),
        schema_registry_cache_schemas: cache,
    };
    Registry::from_args(&args)
        .expect("valid settings")
        .expect("a registry is set")
}

#[tokio::test]
async fn writer_schemas_are_fetched_once_and_unknown_ids_blamed_on_the_record() {
    let server = TestRegistry::start().await;
    let text = schemas::SERVICE_REQUEST.schema.canonical_form();
    let id = server.register("service-requests-value", &text);
    let registry = client(server.url(), 10);

    let first = registry.writer_schema(id).await.expect("fetched");
    assert_eq!(first.canonical_form(), text);
    let again = registry.writer_schema(id).await.expect("cached");
    assert_eq!(again.canonical_form(), text);
    assert_eq!(
        server.by_id_requests(),
        1,
        "the second lookup came from the cache"
    );

    let unknown = registry.writer_schema(id + 100).await.expect_err("unknown");
    assert_eq!(unknown, RegistryError::UnknownId { id: id + 100 });
}

#[tokio::test]
async fn the_cache_is_bounded_by_its_setting() {
    let server = TestRegistry::start().await;
    let a = server.register("a-value", &schemas::SERVICE_REQUEST.schema.canonical_form());
    let b = server.register("b-value", &schemas::NETWORK_EVENT.schema.canonical_form());
    let registry = client(server.url(), 1);
    registry.writer_schema(a).await.expect("a");
    registry.writer_schema(b).await.expect("b");
    assert!(
        registry.cached(a).is_none(),
        "a was dropped for b at the bound of 1"
    );
    registry.writer_schema(a).await.expect("a again");
    assert_eq!(server.by_id_requests(), 3);
}

#[tokio::test]
async fn a_registry_that_is_down_is_unavailable_not_an_unknown_id() {
    let server = TestRegistry::start().await;
    let id = server.register("x-value", &schemas::SERVICE_REQUEST.schema.canonical_form());
    let registry = client(server.url(), 10);
    server.down();
    let error = registry.writer_schema(id).await.expect_err("down");
    assert!(error.is_unavailable(), "{error}");
    server.up();
    registry
        .writer_schema(id)
        .await
        .expect("fetched once the registry is back");
}

#[tokio::test]
async fn the_outcome_schema_registers_under_its_subject_once() {
    let server = TestRegistry::start().await;
    let registry = client(server.url(), 10);
    let schema = &schemas::OUTCOME_EVENT.schema;
    let id = registry
        .register("intent-outcomes-value", schema)
        .await
        .expect("registered");
    let again = registry
        .register("intent-outcomes-value", schema)
        .await
        .expect("registered again");
    assert_eq!(id, again);
    assert_eq!(server.versions("intent-outcomes-value"), vec![id]);
    // A schema the latest version's data cannot be read with is refused.
    let incompatible = apache_avro::Schema::parse_str(
        r#"{"type":"record","name":"OutcomeEvent","namespace":"com.nephoran.kafka",
            "fields":[{"name":"required_new","type":"string"}]}"#,
    )
    .expect("schema");
    let refused = registry
        .register("intent-outcomes-value", &incompatible)
        .await
        .expect_err("incompatible");
    assert!(
        matches!(refused, RegistryError::Refused { .. }),
        "{refused}"
    );
}

#[tokio::test]
async fn basic_auth_from_the_file_is_sent_and_refused_credentials_are_not_the_records_fault() {
    let server = TestRegistry::start_with_basic_auth("svc-nephoran", "s3cr:et").await;
    let id = server.register("x-value", &schemas::SERVICE_REQUEST.schema.canonical_form());
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("auth");
    // The password may hold a colon: only the first one separates the user.
    std::fs::write(&good, "svc-nephoran:s3cr:et\n").unwrap();
    let registry = client_with(server.url(), 10, Some(good));
    registry.writer_schema(id).await.expect("authenticated");

    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "svc-nephoran:nope").unwrap();
    let registry = client_with(server.url(), 10, Some(wrong));
    let error = registry.writer_schema(id).await.expect_err("401");
    assert!(
        error.is_unavailable(),
        "the record waits, the operator fixes the secret: {error}"
    );
    let unauthenticated = client(server.url(), 10);
    assert!(unauthenticated
        .writer_schema(id)
        .await
        .expect_err("401")
        .is_unavailable());
}

#[test]
fn a_basic_auth_file_without_a_user_and_password_is_refused_at_start_without_quoting_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth");
    std::fs::write(&path, "just-a-secret").unwrap();
    let args = RegistryArgs {
        schema_registry_url: Some("http://127.0.0.1:1".into()),
        schema_registry_basic_auth_file: Some(path),
        schema_registry_timeout: std::time::Duration::from_secs(1),
        schema_registry_cache_schemas: 10,
    };
    let error = Registry::from_args(&args).expect_err("refused").to_string();
    assert!(error.contains("SCHEMA_REGISTRY_BASIC_AUTH_FILE"), "{error}");
    assert!(error.contains("user:password"), "{error}");
    assert!(
        !error.contains("just-a-secret"),
        "the file's content is never quoted: {error}"
    );
}
