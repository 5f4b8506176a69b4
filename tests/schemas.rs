//! The schemas in `schemas/` agree with the types the service reads and writes: the same
//! field names, and a fully populated value of each type encodes under its schema and
//! decodes back unchanged. And they evolve safely (rules in `schemas/evolution.rs`): every
//! field documented, every optional field with a default, compatible both ways with every
//! released version kept in `tests/data/schemas/`, whose data reads with them.

use std::collections::{BTreeMap, HashMap};

use apache_avro::Schema;
use nephoran_kafka_consumer::decode::{IdempotencyKey, KeySource};
use nephoran_kafka_consumer::intent::ParamValue;
use nephoran_kafka_consumer::message::SourceRef;
use nephoran_kafka_consumer::outcome::{
    ErrorCode, Failure, IntentRef, Original, OutcomeEvent, Stage,
};
use nephoran_kafka_consumer::request::{MessageType, NetworkEvent, ServiceRequest};
use nephoran_kafka_consumer::translate::TranslatorKind;
use serde::de::DeserializeOwned;
use serde::Serialize;

#[path = "schemas/evolution.rs"]
mod evolution;

use evolution::{Fill, Version};

fn schema(file: &str) -> Schema {
    let path = format!("{}/schemas/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Schema::parse_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Field names of a record schema, recursively as `a`, `a.b`; named references are
/// followed through `named` (records defined earlier in the schema).
fn schema_fields<'a>(
    schema: &'a Schema,
    prefix: &str,
    named: &mut HashMap<String, &'a Schema>,
    out: &mut Vec<String>,
) {
    let schema = match schema {
        Schema::Ref { name } => match named.get(name.name()) {
            Some(s) => *s,
            None => return,
        },
        other => other,
    };
    let Schema::Record(record) = schema else {
        return;
    };
    named.insert(record.name.name().to_string(), schema);
    for field in &record.fields {
        let name = format!("{prefix}{}", field.name);
        out.push(name.clone());
        let inner = match &field.schema {
            Schema::Union(u) => u
                .variants()
                .iter()
                .find(|v| matches!(v, Schema::Record(_) | Schema::Ref { .. })),
            other => Some(other),
        };
        if let Some(inner) = inner {
            schema_fields(inner, &format!("{name}."), named, out);
        }
    }
}

/// Keys of a JSON object, recursively into nested objects (not into maps of parameters).
fn json_fields(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
    let Some(object) = value.as_object() else {
        return;
    };
    for (key, inner) in object {
        let name = format!("{prefix}{key}");
        out.push(name.clone());
        if key != "parameters" {
            json_fields(inner, &format!("{name}."), out);
        }
    }
}

fn assert_agrees<T>(file: &str, value: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let schema = schema(file);
    let mut expected = Vec::new();
    schema_fields(&schema, "", &mut HashMap::new(), &mut expected);
    let mut actual = Vec::new();
    json_fields(&serde_json::to_value(value).unwrap(), "", &mut actual);
    expected.sort();
    actual.sort();
    assert_eq!(expected, actual, "{file}: fields of the schema vs the type");

    let avro = apache_avro::to_value(value)
        .unwrap()
        .resolve(&schema)
        .unwrap_or_else(|e| panic!("{file}: the type does not fit the schema: {e}"));
    let bytes = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
        .build()
        .unwrap()
        .write_value_to_vec(avro)
        .unwrap();
    let back = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
        .build()
        .unwrap()
        .read_value(&mut bytes.as_slice())
        .unwrap();
    let back: T = apache_avro::from_value(&back).unwrap();
    assert_eq!(&back, value, "{file}: round trip through Avro");
}

fn enum_symbols(file: &str, name: &str) -> Vec<String> {
    fn find(schema: &Schema, name: &str) -> Option<Vec<String>> {
        match schema {
            Schema::Enum(e) if e.name.name() == name => Some(e.symbols.clone()),
            Schema::Record(r) => r.fields.iter().find_map(|f| find(&f.schema, name)),
            Schema::Union(u) => u.variants().iter().find_map(|v| find(v, name)),
            _ => None,
        }
    }
    find(&schema(file), name).unwrap_or_else(|| panic!("{file} has no enum {name}"))
}

fn names<T: Serialize>(values: &[T]) -> Vec<String> {
    values
        .iter()
        .map(|v| {
            serde_json::to_value(v)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn service_request_schema_agrees() {
    assert_agrees(
        "service-request.avsc",
        &ServiceRequest {
            idempotency_key: Some("order-1".into()),
            intent: "Deploy AMF with 3 replicas in namespace core5g".into(),
            target_namespace: Some("core5g".into()),
            target_environment: Some("production".into()),
            priority: Some("high".into()),
            requester: Some("oss-bss".into()),
            parameters: Some(BTreeMap::from([
                ("slice".to_string(), ParamValue::String("embb".into())),
                ("sst".to_string(), ParamValue::Int(1)),
                ("ratio".to_string(), ParamValue::Float(0.5)),
                ("ha".to_string(), ParamValue::Bool(true)),
            ])),
        },
    );
}

#[test]
fn network_event_schema_agrees() {
    assert_agrees(
        "network-event.avsc",
        &NetworkEvent {
            event_id: Some("ev-1".into()),
            event_type: "kpi_threshold_crossed".into(),
            source: Some("amf-1".into()),
            nf_type: Some("amf".into()),
            namespace: Some("core5g".into()),
            severity: Some("major".into()),
            metric: Some("cpu_utilization".into()),
            value: Some(92.0),
            threshold: Some(80.0),
            description: Some("CPU high".into()),
            timestamp: Some("2026-11-26T10:00:00Z".into()),
        },
    );
}

#[test]
fn outcome_event_schema_agrees() {
    let key = IdempotencyKey {
        value: "order-1".into(),
        source: KeySource::Payload,
    };
    let source = SourceRef {
        topic: "service-requests".into(),
        partition: 3,
        offset: 42,
    };
    let mut event = OutcomeEvent::new(&key, Stage::Failed, &source);
    event.message_type = Some(MessageType::ServiceRequest);
    event.intent = Some(IntentRef {
        name: "order-1-abcdef0123".into(),
        namespace: "core5g".into(),
    });
    event.translator = Some(TranslatorKind::Rules);
    event.error = Some(Failure::new(ErrorCode::ApplyFailed, "disk full"));
    event.original = Some(Original {
        stage: Stage::Applied,
        intent: event.intent.clone(),
        source: SourceRef {
            topic: "service-requests".into(),
            partition: 3,
            offset: 7,
        },
    });
    assert_agrees("outcome-event.avsc", &event);

    let file = "outcome-event.avsc";
    assert_eq!(enum_symbols(file, "Stage"), names(&Stage::ALL));
    assert_eq!(enum_symbols(file, "ErrorCode"), names(&ErrorCode::ALL));
    assert_eq!(
        enum_symbols(file, "KeySource"),
        names(&[
            KeySource::Header,
            KeySource::Cloudevents,
            KeySource::Payload,
            KeySource::Derived
        ])
    );
    assert_eq!(
        enum_symbols(file, "MessageType"),
        names(&[MessageType::ServiceRequest, MessageType::NetworkEvent])
    );
    assert_eq!(
        enum_symbols(file, "TranslatorKind"),
        names(&[TranslatorKind::Rules, TranslatorKind::Llm])
    );
}

// --- Evolution -------------------------------------------------------------------------

fn report(problems: &[String]) -> String {
    format!("\n  {}\n", problems.join("\n  "))
}

#[test]
fn every_field_is_documented_and_every_optional_field_has_a_default() {
    let current = evolution::current();
    assert_eq!(current.len(), 3, "schemas/ holds {:?}", current.keys());
    let problems: Vec<String> = current
        .iter()
        .flat_map(|(file, schema)| evolution::lint(file, schema))
        .collect();
    assert!(problems.is_empty(), "{}", report(&problems));
}

#[test]
fn schemas_are_compatible_both_ways_with_every_release() {
    let releases = evolution::releases();
    assert!(!releases.is_empty(), "no release under tests/data/schemas/");
    let current = evolution::current();
    let mut problems = Vec::new();
    for release in &releases {
        let released = evolution::schemas_in(&release.dir);
        assert!(
            !released.is_empty(),
            "{}: no schemas",
            release.dir.display()
        );
        for (file, old) in &released {
            let Some(new) = current.get(file) else {
                problems.push(format!(
                    "{file}: in {} but no longer in schemas/: its readers and writers are left without it",
                    release.label
                ));
                continue;
            };
            problems.extend(evolution::compatible(
                file,
                &Version {
                    label: &release.label,
                    schema: old,
                },
                &Version {
                    label: "schemas/",
                    schema: new,
                },
            ));
        }
    }
    assert!(problems.is_empty(), "{}", report(&problems));
}

/// What the service (or `outcomes`) makes of a value read with the current schema: its
/// Rust type.
fn decodes_as_the_type(file: &str, value: &apache_avro::types::Value) -> Result<(), String> {
    let result = match file {
        "service-request.avsc" => apache_avro::from_value::<ServiceRequest>(value).map(drop),
        "network-event.avsc" => apache_avro::from_value::<NetworkEvent>(value).map(drop),
        "outcome-event.avsc" => apache_avro::from_value::<OutcomeEvent>(value).map(drop),
        other => return Err(format!("{other}: no Rust type known for it: add it here")),
    };
    result.map_err(|e| format!("{file}: read with schemas/ but not as its Rust type: {e}"))
}

#[test]
fn data_written_with_a_release_reads_with_the_current_schema_and_back() {
    let current = evolution::current();
    let mut checked = 0;
    for release in evolution::releases() {
        for (file, old) in evolution::schemas_in(&release.dir) {
            let Some(new) = current.get(&file) else {
                continue; // reported by the compatibility test
            };
            let at = format!("{file} ({})", release.label);
            for fill in [Fill::Full, Fill::Least] {
                // Backward: old data, the current reader, then the service's type.
                let written = evolution::exemplar(&old, fill, new);
                let read = evolution::write_then_read(&old, new, written.clone())
                    .unwrap_or_else(|e| panic!("{at}: written with it, read with schemas/: {e}"));
                let lost = evolution::carried_over(&written, &read);
                assert!(lost.is_empty(), "{at}: old to new{}", report(&lost));
                decodes_as_the_type(&file, &read).unwrap_or_else(|e| panic!("{at}: {e}"));
            }
            for fill in [Fill::Full, Fill::Least] {
                // Forward: current data, a reader holding the release's schema.
                let written = evolution::exemplar(new, fill, &old);
                let read = evolution::write_then_read(new, &old, written.clone())
                    .unwrap_or_else(|e| panic!("{at}: written with schemas/, read with it: {e}"));
                let lost = evolution::carried_over(&written, &read);
                assert!(lost.is_empty(), "{at}: new to old{}", report(&lost));
            }
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} schemas round-tripped");
}

/// The current schema `file` as JSON, changed by `edit`, parsed.
fn variant(file: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Schema {
    let path = format!("{}/schemas/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    edit(&mut json);
    Schema::parse_str(&json.to_string()).unwrap_or_else(|e| panic!("variant of {file}: {e}"))
}

/// The field at `path` (`source.partition`) of a record schema in JSON form, through
/// nullable unions.
fn field<'a>(record: &'a mut serde_json::Value, path: &str) -> &'a mut serde_json::Value {
    let (name, rest) = path
        .split_once('.')
        .map_or((path, None), |(a, b)| (a, Some(b)));
    let fields = record["fields"].as_array_mut().unwrap();
    let at = fields
        .iter()
        .position(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no field {name}"));
    let found = &mut fields[at];
    match rest {
        None => found,
        Some(rest) => {
            let inner = &mut found["type"];
            let inner = if inner.is_array() {
                inner
                    .as_array_mut()
                    .unwrap()
                    .iter_mut()
                    .find(|v| v.is_object())
                    .unwrap()
            } else {
                inner
            };
            field(inner, rest)
        }
    }
}

fn fields(record: &mut serde_json::Value) -> &mut Vec<serde_json::Value> {
    record["fields"].as_array_mut().unwrap()
}

/// The check against `released`, with `changed` as the current schema.
fn check(file: &str, released: &Schema, changed: &Schema) -> Vec<String> {
    evolution::compatible(
        file,
        &Version {
            label: "released",
            schema: released,
        },
        &Version {
            label: "changed",
            schema: changed,
        },
    )
}

fn mentions(problems: &[String], all: &[&str]) -> bool {
    problems
        .iter()
        .any(|p| all.iter().all(|needle| p.contains(needle)))
}

#[test]
fn the_schemas_pass_against_themselves() {
    for (file, schema) in evolution::current() {
        assert_eq!(check(&file, &schema, &schema), Vec::<String>::new());
    }
}

#[test]
fn a_new_required_field_is_refused_naming_it() {
    let file = "service-request.avsc";
    let released = schema(file);
    let changed = variant(file, |s| {
        fields(s).push(serde_json::json!({"name": "region", "type": "string", "doc": "Where."}))
    });
    let problems = check(file, &released, &changed);
    assert!(
        mentions(
            &problems,
            &[
                "service-request.avsc",
                "a reader with changed cannot read what released writes",
                "field `region`"
            ]
        ),
        "{}",
        report(&problems)
    );
    // Adding it as optional, with its default, is fine both ways.
    let optional = variant(file, |s| {
        fields(s).push(
            serde_json::json!({"name": "region", "type": ["null", "string"],
            "default": null, "doc": "Where."}),
        )
    });
    assert_eq!(check(file, &released, &optional), Vec::<String>::new());
}

#[test]
fn a_changed_type_is_refused_naming_the_nested_field() {
    let file = "outcome-event.avsc";
    let released = schema(file);
    let changed = variant(file, |s| {
        field(s, "source.partition")["type"] = "string".into()
    });
    let problems = check(file, &released, &changed);
    assert!(
        mentions(
            &problems,
            &[
                "outcome-event.avsc",
                "field `source.partition`",
                "types differ"
            ]
        ),
        "{}",
        report(&problems)
    );
    // int to long is a promotion for new readers, but readers of the release hold int.
    let widened = variant(file, |s| {
        field(s, "source.partition")["type"] = "long".into()
    });
    let problems = check(file, &released, &widened);
    assert_eq!(problems.len(), 1, "{}", report(&problems));
    assert!(
        mentions(
            &problems,
            &[
                "a reader with released cannot read what changed writes",
                "field `source.partition`"
            ]
        ),
        "{}",
        report(&problems)
    );
}

#[test]
fn a_removed_required_field_is_refused_for_older_readers() {
    let file = "outcome-event.avsc";
    let released = schema(file);
    let changed = variant(file, |s| fields(s).retain(|f| f["name"] != "occurred_at"));
    let problems = check(file, &released, &changed);
    assert_eq!(problems.len(), 1, "{}", report(&problems));
    assert!(
        mentions(
            &problems,
            &[
                "a reader with released cannot read what changed writes",
                "field `occurred_at`",
                "without a default"
            ]
        ),
        "{}",
        report(&problems)
    );
}

#[test]
fn a_removed_default_is_refused_where_a_writer_lacks_the_field() {
    let file = "service-request.avsc";
    let without_priority = variant(file, |s| fields(s).retain(|f| f["name"] != "priority"));
    let no_default = variant(file, |s| {
        field(s, "priority")
            .as_object_mut()
            .unwrap()
            .remove("default");
    });
    let problems = check(file, &without_priority, &no_default);
    assert!(
        mentions(
            &problems,
            &[
                "a reader with changed cannot read what released writes",
                "field `priority`"
            ]
        ),
        "{}",
        report(&problems)
    );
    let lint = evolution::lint(file, &no_default);
    assert!(
        mentions(
            &lint,
            &[
                "service-request.avsc",
                "optional field `priority` has no default null"
            ]
        ),
        "{}",
        report(&lint)
    );
}

#[test]
fn an_undocumented_field_is_refused_naming_it() {
    let file = "outcome-event.avsc";
    let changed = variant(file, |s| {
        field(s, "source.offset")
            .as_object_mut()
            .unwrap()
            .remove("doc");
        field(s, "idempotency_key")["doc"] = " ".into();
    });
    let lint = evolution::lint(file, &changed);
    assert!(
        mentions(
            &lint,
            &["outcome-event.avsc", "field `source.offset` has no doc"]
        ),
        "{}",
        report(&lint)
    );
    assert!(
        mentions(&lint, &["field `idempotency_key` has no doc"]),
        "{}",
        report(&lint)
    );
    assert_eq!(lint.len(), 2, "{}", report(&lint));
}

#[test]
fn a_growing_enum_without_a_default_is_refused() {
    let file = "outcome-event.avsc";
    let changed = variant(file, |s| {
        field(s, "stage")["type"]
            .as_object_mut()
            .unwrap()
            .remove("default");
    });
    let lint = evolution::lint(file, &changed);
    assert!(
        mentions(&lint, &["enum Stage", "has no default"]),
        "{}",
        report(&lint)
    );
}

#[test]
fn a_new_symbol_in_a_closed_enum_is_refused_for_older_readers() {
    let file = "outcome-event.avsc";
    let released = schema(file);
    let changed = variant(file, |s| {
        field(s, "key_source")["type"]["symbols"]
            .as_array_mut()
            .unwrap()
            .push("replayed".into());
    });
    let problems = check(file, &released, &changed);
    assert_eq!(problems.len(), 1, "{}", report(&problems));
    assert!(
        mentions(
            &problems,
            &[
                "a reader with released cannot read what changed writes",
                "enum KeySource: changed writes [\"replayed\"], which released does not know"
            ]
        ),
        "{}",
        report(&problems)
    );
}

#[test]
fn a_new_stage_or_error_code_reads_as_the_default_in_an_older_reader() {
    let file = "outcome-event.avsc";
    let released = schema(file);
    let changed = variant(file, |s| {
        field(s, "stage")["type"]["symbols"]
            .as_array_mut()
            .unwrap()
            .push("replayed".into());
        field(s, "error.code")["type"]["symbols"]
            .as_array_mut()
            .unwrap()
            .push("a_future_code".into());
    });
    assert_eq!(check(file, &released, &changed), Vec::<String>::new());

    // Written with the new symbols (the last ones), read with the current schema.
    let written = evolution::exemplar(&changed, Fill::Full, &changed);
    let read = evolution::write_then_read(&changed, &released, written).unwrap();
    let event: OutcomeEvent = apache_avro::from_value(&read).unwrap();
    assert_eq!(event.stage, Stage::Received);
    assert_eq!(event.error.map(|e| e.code), Some(ErrorCode::InvalidRecord));
}

#[test]
fn error_codes_added_since_v0_1_0_pass_although_it_had_no_defaults() {
    // v0.1.0 published no Avro, so its missing enum defaults break no reader (KNOWN_GAPS);
    // the error codes added at the merge of issue 15 must not fail the build.
    let file = "outcome-event.avsc";
    let v010 = evolution::releases()
        .into_iter()
        .find(|r| r.label == "v0.1.0")
        .expect("the v0.1.0 fixture");
    let released = evolution::schemas_in(&v010.dir).remove(file).unwrap();
    let changed = variant(file, |s| {
        let codes = field(s, "error.code")["type"]["symbols"]
            .as_array_mut()
            .unwrap();
        for code in [
            "unknown_schema_id",
            "unknown_schema_fingerprint",
            "invalid_avro",
        ] {
            // Once merged, the schema has them already.
            if !codes.iter().any(|c| c == code) {
                codes.push(code.into());
            }
        }
    });
    let problems = evolution::compatible(
        file,
        &Version {
            label: "v0.1.0",
            schema: &released,
        },
        &Version {
            label: "changed",
            schema: &changed,
        },
    );
    assert_eq!(problems, Vec::<String>::new());
    // Another release than v0.1.0 gets no such pass.
    let problems = evolution::compatible(
        file,
        &Version {
            label: "v9.9.9",
            schema: &released,
        },
        &Version {
            label: "changed",
            schema: &changed,
        },
    );
    assert!(
        mentions(&problems, &["enum ErrorCode: changed writes"]),
        "{}",
        report(&problems)
    );
}
