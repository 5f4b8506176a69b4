//! CloudEvents 1.0 as input, in both content modes of the Kafka protocol binding.
//!
//! Binary mode: the record value is the request and the attributes are `ce_` headers.
//! `ce_source` and `ce_id` together key the message (in [`super`]); here the mode as a
//! whole is checked: a record that declares `ce_specversion` must say `1.0` and carry
//! `ce_id`, `ce_source` and `ce_type`, each once and with a value, or it is
//! `invalid_schema` (naming the header). A record with half of the key pair and no
//! `ce_specversion` is caught by the key rules instead (`invalid_idempotency_key`).
//!
//! Structured mode (`content-type: application/cloudevents+json`): the record value is a
//! JSON envelope. `specversion` must be `"1.0"`; `id`, `source` and `type` non-empty
//! strings; `datacontenttype`, if given, JSON; and `data` the request, a JSON object,
//! which is then read exactly as a plain JSON payload is. `data_base64` is refused: a
//! request is JSON, so it belongs in `data` (one way to send it, one to check).
//! Each broken attribute is its own `invalid_schema` message; a value that is not JSON
//! at all is `invalid_json`.

use serde_json::{Map, Value};

use crate::message::InboundMessage;
use crate::outcome::{ErrorCode, Failure};

use super::{content_type, json_kind, quote, single_header};

/// The only CloudEvents specification version read.
pub const SPEC_VERSION: &str = "1.0";
/// Binary-mode attribute headers besides the key pair ([`super::CE_SOURCE_HEADER`],
/// [`super::CE_ID_HEADER`]).
pub const CE_SPECVERSION_HEADER: &str = "ce_specversion";
pub const CE_TYPE_HEADER: &str = "ce_type";

/// A structured-mode CloudEvent whose attributes passed: the key attributes, as
/// JSON strings (the key rules are applied where the key is chosen), and the request.
#[derive(Debug)]
pub struct Envelope {
    pub source: String,
    pub id: String,
    pub data: Value,
}

/// Checks a binary-mode CloudEvent's headers: nothing to check unless the record
/// declares `ce_specversion`.
pub fn check_binary(message: &InboundMessage) -> Result<(), Failure> {
    let bad = |why: String| Failure::new(ErrorCode::InvalidSchema, why);
    let Some(version) = single_header(message, CE_SPECVERSION_HEADER, ErrorCode::InvalidSchema)?
    else {
        return Ok(());
    };
    if version != SPEC_VERSION.as_bytes() {
        return Err(bad(format!(
            "header {CE_SPECVERSION_HEADER:?} is {}; only CloudEvents {SPEC_VERSION} is read",
            quote(version)
        )));
    }
    for name in [super::CE_ID_HEADER, super::CE_SOURCE_HEADER, CE_TYPE_HEADER] {
        match single_header(message, name, ErrorCode::InvalidSchema)? {
            Some(value) if !value.is_empty() => {}
            Some(_) => {
                return Err(bad(format!(
                "header {name:?} is empty; a CloudEvent (ce_specversion {SPEC_VERSION}) needs it"
            )))
            }
            None => {
                return Err(bad(format!(
                "header {name:?} is missing; a CloudEvent (ce_specversion {SPEC_VERSION}) needs it"
            )))
            }
        }
    }
    Ok(())
}

/// Reads a structured-mode CloudEvent's envelope.
pub fn envelope(payload: &[u8]) -> Result<Envelope, Failure> {
    let schema = |why: String| {
        Failure::new(
            ErrorCode::InvalidSchema,
            format!("the CloudEvent (structured mode) {why}"),
        )
    };
    if payload.is_empty() {
        return Err(Failure::new(
            ErrorCode::InvalidJson,
            "the payload is empty: a structured-mode CloudEvent is a JSON object",
        ));
    }
    let value: Value = serde_json::from_slice(payload).map_err(|e| {
        Failure::new(
            ErrorCode::InvalidJson,
            format!("the CloudEvent (structured mode) is not JSON: {e}"),
        )
    })?;
    let Value::Object(mut object) = value else {
        return Err(schema(format!(
            "is a JSON {}, not an object",
            json_kind(&value)
        )));
    };
    match object.get("specversion") {
        None => return Err(schema("has no \"specversion\"".to_string())),
        Some(Value::String(v)) if v == SPEC_VERSION => {}
        Some(Value::String(v)) => {
            return Err(schema(format!(
                "has \"specversion\" {}; only {SPEC_VERSION:?} is read",
                quote(v.as_bytes())
            )))
        }
        Some(other) => {
            return Err(schema(format!(
                "has a \"specversion\" that is a JSON {}, not the string {SPEC_VERSION:?}",
                json_kind(other)
            )))
        }
    }
    let id = attribute(&object, "id").map_err(schema)?;
    let source = attribute(&object, "source").map_err(schema)?;
    attribute(&object, "type").map_err(schema)?;
    match object.get("datacontenttype") {
        None => {}
        Some(Value::String(t)) if content_type::is_json(t) => {}
        Some(Value::String(t)) => {
            return Err(schema(format!(
                "has \"datacontenttype\" {}; the request must be JSON (application/json or a +json type)",
                quote(t.as_bytes())
            )))
        }
        Some(other) => {
            return Err(schema(format!(
                "has a \"datacontenttype\" that is a JSON {}, not a string",
                json_kind(other)
            )))
        }
    }
    if object.contains_key("data_base64") {
        return Err(schema(
            "carries \"data_base64\"; send the request as a JSON object in \"data\"".to_string(),
        ));
    }
    let data = match object.remove("data") {
        None => return Err(schema("has no \"data\" (the request)".to_string())),
        Some(data @ Value::Object(_)) => data,
        Some(other) => {
            return Err(schema(format!(
                "has \"data\" that is a JSON {}, not an object (the request)",
                json_kind(&other)
            )))
        }
    };
    Ok(Envelope { source, id, data })
}

/// A required string attribute; empty is missing (CloudEvents: "MUST be a non-empty
/// string").
fn attribute(object: &Map<String, Value>, name: &str) -> Result<String, String> {
    match object.get(name) {
        None => Err(format!("has no {name:?}")),
        Some(Value::String(v)) if v.is_empty() => Err(format!("has an empty {name:?}")),
        Some(Value::String(v)) => Ok(v.clone()),
        Some(other) => Err(format!(
            "has {name:?} that is a JSON {}, not a string",
            json_kind(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        json!({
            "specversion": "1.0",
            "id": "42",
            "source": "/oss/orders",
            "type": "com.example.order",
            "datacontenttype": "application/json",
            "data": {"intent": "Deploy AMF"}
        })
    }

    fn refused(value: &Value, code: ErrorCode, needle: &str) {
        let failure = envelope(value.to_string().as_bytes()).expect_err(needle);
        assert_eq!(failure.code, code, "{}", failure.message);
        assert!(
            failure.message.contains(needle),
            "{needle:?} not in {:?}",
            failure.message
        );
    }

    fn without(name: &str) -> Value {
        let mut e = event();
        e.as_object_mut().map(|o| o.remove(name));
        e
    }

    fn with(name: &str, value: Value) -> Value {
        let mut e = event();
        e[name] = value;
        e
    }

    #[test]
    fn a_good_envelope_gives_its_key_attributes_and_data() {
        let e = envelope(event().to_string().as_bytes()).expect("a good envelope");
        assert_eq!((e.source.as_str(), e.id.as_str()), ("/oss/orders", "42"));
        assert_eq!(e.data, json!({"intent": "Deploy AMF"}));
        // datacontenttype is optional, and any JSON type will do.
        assert!(envelope(without("datacontenttype").to_string().as_bytes()).is_ok());
        let e = with(
            "datacontenttype",
            json!("application/vnd.x+json; charset=utf-8"),
        );
        assert!(envelope(e.to_string().as_bytes()).is_ok());
    }

    #[test]
    fn each_broken_attribute_is_named() {
        refused(
            &without("specversion"),
            ErrorCode::InvalidSchema,
            "no \"specversion\"",
        );
        refused(
            &with("specversion", json!("0.3")),
            ErrorCode::InvalidSchema,
            "\"0.3\"",
        );
        refused(
            &with("specversion", json!(1.0)),
            ErrorCode::InvalidSchema,
            "a JSON number",
        );
        for name in ["id", "source", "type"] {
            refused(
                &without(name),
                ErrorCode::InvalidSchema,
                &format!("no {name:?}"),
            );
            refused(
                &with(name, json!("")),
                ErrorCode::InvalidSchema,
                &format!("empty {name:?}"),
            );
            refused(
                &with(name, json!(7)),
                ErrorCode::InvalidSchema,
                &format!("{name:?} that is a JSON number"),
            );
        }
        refused(&without("data"), ErrorCode::InvalidSchema, "no \"data\"");
        refused(
            &with("data", json!("{\"intent\":\"x\"}")),
            ErrorCode::InvalidSchema,
            "\"data\" that is a JSON string",
        );
        refused(
            &with("data", json!([1])),
            ErrorCode::InvalidSchema,
            "\"data\" that is a JSON array",
        );
        refused(
            &with("data", Value::Null),
            ErrorCode::InvalidSchema,
            "\"data\" that is a JSON null",
        );
        refused(
            &with("datacontenttype", json!("application/avro")),
            ErrorCode::InvalidSchema,
            "datacontenttype",
        );
        refused(
            &with("datacontenttype", json!(true)),
            ErrorCode::InvalidSchema,
            "datacontenttype",
        );
        refused(
            &with("data_base64", json!("e30=")),
            ErrorCode::InvalidSchema,
            "data_base64",
        );
        refused(&json!([event()]), ErrorCode::InvalidSchema, "a JSON array");
    }

    #[test]
    fn a_value_that_is_not_json_is_invalid_json() {
        for bytes in [&b""[..], b"not json", b"{\"specversion\":", &[0xFF, 0xFE]] {
            let failure = envelope(bytes).expect_err("not JSON");
            assert_eq!(failure.code, ErrorCode::InvalidJson, "{}", failure.message);
        }
    }

    #[test]
    fn a_hostile_specversion_is_quoted_printably() {
        let failure = envelope(
            with("specversion", json!("1.0\u{1b}[2J"))
                .to_string()
                .as_bytes(),
        )
        .expect_err("refused");
        assert!(
            !failure.message.chars().any(char::is_control),
            "{}",
            failure.message
        );
        assert!(failure.message.contains(r"\x1b"), "{}", failure.message);
    }
}
