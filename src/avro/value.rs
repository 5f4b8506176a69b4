//! An Avro value, read through a reader schema of `schemas/`, as the JSON value the same
//! request would have been: records become objects (a null field left out, as a JSON
//! producer leaves it out), unions their branch, maps objects, enums their symbol.
//!
//! The result goes through the same shape rules as a JSON payload ([`crate::decode`]),
//! so an Avro request and its JSON twin become the same [`crate::request::Request`].

use apache_avro::types::Value;
use serde_json::{Map, Number, Value as Json};

/// Deepest nesting converted; the reader schemas are two levels deep, so this is only
/// a guard against a writer schema that recurses.
const MAX_DEPTH: usize = 32;

/// The JSON value of `value`; an error names the Avro type that has no JSON twin here
/// (bytes, fixed, a non-finite number, ...), which a reader schema of `schemas/` never
/// yields.
pub fn to_json(value: Value) -> Result<Json, String> {
    convert(value, 0)
}

fn convert(value: Value, depth: usize) -> Result<Json, String> {
    if depth > MAX_DEPTH {
        return Err(format!("the value nests deeper than {MAX_DEPTH} levels"));
    }
    let float = |f: f64| {
        Number::from_f64(f)
            .map(Json::Number)
            .ok_or_else(|| format!("the number {f} is not finite"))
    };
    Ok(match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(b),
        Value::Int(i) => Json::from(i),
        Value::Long(i) => Json::from(i),
        Value::Float(f) => float(f64::from(f))?,
        Value::Double(f) => float(f)?,
        Value::String(s) | Value::Enum(_, s) => Json::String(s),
        Value::Union(_, inner) => convert(*inner, depth)?,
        Value::Array(items) => Json::Array(
            items
                .into_iter()
                .map(|v| convert(v, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Map(entries) => {
            let mut object = Map::new();
            for (k, v) in entries {
                object.insert(k, convert(v, depth + 1)?);
            }
            Json::Object(object)
        }
        Value::Record(fields) => {
            let mut object = Map::new();
            for (name, v) in fields {
                let v = convert(v, depth + 1)?;
                if !v.is_null() {
                    object.insert(name, v);
                }
            }
            Json::Object(object)
        }
        other => {
            return Err(format!(
                "an Avro {:?} value has no JSON form in a request",
                apache_avro::types::ValueKind::from(&other)
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn records_become_objects_without_their_null_fields() {
        let value = Value::Record(vec![
            (
                "idempotency_key".into(),
                Value::Union(0, Box::new(Value::Null)),
            ),
            ("intent".into(), Value::String("Deploy AMF".into())),
            (
                "parameters".into(),
                Value::Union(
                    1,
                    Box::new(Value::Map(HashMap::from([
                        ("replicas".into(), Value::Union(1, Box::new(Value::Long(3)))),
                        ("ha".into(), Value::Union(0, Box::new(Value::Boolean(true)))),
                        ("cpu".into(), Value::Union(2, Box::new(Value::Double(0.5)))),
                        (
                            "zone".into(),
                            Value::Union(3, Box::new(Value::String("a".into()))),
                        ),
                    ]))),
                ),
            ),
        ]);
        assert_eq!(
            to_json(value),
            Ok(serde_json::json!({
                "intent": "Deploy AMF",
                "parameters": {"replicas": 3, "ha": true, "cpu": 0.5, "zone": "a"}
            }))
        );
    }

    #[test]
    fn values_without_a_json_form_are_refused_not_guessed() {
        assert!(to_json(Value::Double(f64::NAN))
            .unwrap_err()
            .contains("not finite"));
        assert!(to_json(Value::Bytes(vec![1]))
            .unwrap_err()
            .contains("Bytes"));
        assert_eq!(
            to_json(Value::Enum(1, "high".into())),
            Ok(Json::from("high"))
        );
        let mut deep = Value::Null;
        for _ in 0..100 {
            deep = Value::Array(vec![deep]);
        }
        assert!(to_json(deep).unwrap_err().contains("deeper"));
    }
}
