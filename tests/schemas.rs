//! The schemas in `schemas/` agree with the types the service reads and writes: the same
//! field names, and a fully populated value of each type encodes under its schema and
//! decodes back unchanged.

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
