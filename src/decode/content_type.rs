//! The record's `content-type` header: what its producer says the value is.
//!
//! A record without one is read by its bytes (JSON today; Avro is recognised by its own
//! framing). One that names a type says how to read it: `application/cloudevents+json`
//! is a structured-mode CloudEvent ([`super::cloudevents`]); JSON (`application/json`
//! or any `+json` type) and the Avro types are read by their bytes as before. Any other
//! type (`text/plain`, `application/xml`, a batch of CloudEvents) is refused as
//! `invalid_record` rather than guessed at; so is a header that is unreadable (no value,
//! not UTF-8) or given twice. Such a record claims no key: its bytes may be a good
//! request that a corrected re-send, under the right type, must not find already taken.
//!
//! Media types compare case-insensitively on the type and subtype (RFC 9110); parameters
//! such as `; charset=utf-8` are allowed and ignored.

use crate::message::InboundMessage;
use crate::outcome::{ErrorCode, Failure};

use super::quote;

/// The header the Kafka protocol binding of CloudEvents (and everyone else) uses.
pub const CONTENT_TYPE_HEADER: &str = "content-type";

/// The structured-mode CloudEvents media type.
pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";
/// The batched CloudEvents media type, which this service does not read.
const CLOUDEVENTS_BATCH_JSON: &str = "application/cloudevents-batch+json";
/// The Avro media types in use (Apache Avro's own, Confluent's and the older one).
const AVRO_TYPES: [&str; 3] = [
    "application/avro",
    "avro/binary",
    "application/vnd.apache.avro+binary",
];

/// How a record's value is to be read, as its content type says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    /// JSON: `application/json` or a `+json` type.
    Json,
    /// A structured-mode CloudEvent: `application/cloudevents+json`.
    CloudEventsJson,
    /// Avro, framed as its bytes say (Confluent or single-object encoding).
    Avro,
}

/// The media type the record's `content-type` header names, if it has that header.
pub fn of_record(message: &InboundMessage) -> Result<Option<MediaType>, Failure> {
    let refuse = |why: String| {
        Failure::new(
            ErrorCode::InvalidRecord,
            format!("header {CONTENT_TYPE_HEADER:?} {why}"),
        )
    };
    let Some(value) = super::single_header(message, CONTENT_TYPE_HEADER, ErrorCode::InvalidRecord)?
    else {
        return Ok(None);
    };
    let text = std::str::from_utf8(value).map_err(|e| {
        refuse(format!(
            "is not UTF-8 (invalid byte at {}): {}",
            e.valid_up_to(),
            quote(value)
        ))
    })?;
    let essence = essence(text);
    if essence == CLOUDEVENTS_BATCH_JSON {
        return Err(refuse(format!(
            "is {}: batched CloudEvents are not read; send one event per record",
            quote(value)
        )));
    }
    classify(&essence).map(Some).ok_or_else(|| {
        refuse(format!(
            "is {}, a type this service does not read: JSON (application/json, +json), \
             {CLOUDEVENTS_JSON}, or Avro ({})",
            quote(value),
            AVRO_TYPES.join(", ")
        ))
    })
}

/// Whether `text` names JSON: `application/json` or a `+json` type, with any parameters.
/// (What a structured CloudEvent's `datacontenttype` must say.)
pub fn is_json(text: &str) -> bool {
    matches!(
        classify(&essence(text)),
        Some(MediaType::Json | MediaType::CloudEventsJson)
    )
}

/// The type and subtype, lowercased, without parameters or surrounding blanks.
fn essence(text: &str) -> String {
    let before_parameters = text.split(';').next().unwrap_or_default();
    before_parameters
        .trim_matches([' ', '\t'])
        .to_ascii_lowercase()
}

fn classify(essence: &str) -> Option<MediaType> {
    if essence == CLOUDEVENTS_JSON {
        return Some(MediaType::CloudEventsJson);
    }
    if AVRO_TYPES.contains(&essence) {
        return Some(MediaType::Avro);
    }
    let (kind, subtype) = essence.split_once('/')?;
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    if !token(kind) || !token(subtype) {
        return None;
    }
    let json = essence == "application/json"
        || subtype
            .strip_suffix("+json")
            .is_some_and(|stem| !stem.is_empty());
    json.then_some(MediaType::Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(headers: Vec<(&str, Option<&[u8]>)>) -> InboundMessage {
        InboundMessage {
            source: crate::message::SourceRef {
                topic: "t".into(),
                partition: 0,
                offset: 0,
            },
            key: None,
            payload: Some(b"{}".to_vec()),
            headers: headers
                .into_iter()
                .map(|(n, v)| (n.as_bytes().to_vec(), v.map(<[u8]>::to_vec)))
                .collect(),
            timestamp_ms: None,
        }
    }

    fn of(value: &str) -> Result<Option<MediaType>, Failure> {
        of_record(&record(vec![("content-type", Some(value.as_bytes()))]))
    }

    #[test]
    fn reads_the_types_it_knows_whatever_their_case_and_parameters() {
        for (value, expected) in [
            ("application/json", MediaType::Json),
            ("Application/JSON; charset=utf-8", MediaType::Json),
            ("application/vnd.oss.order+json", MediaType::Json),
            ("application/cloudevents+json", MediaType::CloudEventsJson),
            (
                " APPLICATION/CloudEvents+JSON ;charset=UTF-8",
                MediaType::CloudEventsJson,
            ),
            ("application/avro", MediaType::Avro),
            ("avro/binary", MediaType::Avro),
            ("application/vnd.apache.avro+binary", MediaType::Avro),
        ] {
            assert_eq!(of(value), Ok(Some(expected)), "{value}");
        }
        assert_eq!(of_record(&record(vec![])), Ok(None));
        // Another header's name is not this one.
        assert_eq!(
            of_record(&record(vec![("Content-Type", Some(b"text/plain"))])),
            Ok(None)
        );
    }

    #[test]
    fn refuses_other_types_and_unreadable_headers_as_invalid_records() {
        for (value, needle) in [
            ("text/plain", "does not read"),
            ("application/xml", "does not read"),
            ("+json", "does not read"),
            ("application/+json", "does not read"),
            ("application/json x/y", "does not read"),
            ("", "does not read"),
            ("application/cloudevents-batch+json", "batched"),
        ] {
            let failure = of(value).expect_err(value);
            assert_eq!(failure.code, ErrorCode::InvalidRecord);
            assert!(failure.message.contains(needle), "{}", failure.message);
            assert!(failure.message.contains("content-type"));
        }
        let failure = of_record(&record(vec![("content-type", None)])).expect_err("null");
        assert!(failure.message.contains("no value"), "{}", failure.message);
        let failure =
            of_record(&record(vec![("content-type", Some(&[b'a', 0xFF]))])).expect_err("utf-8");
        assert!(failure.message.contains("not UTF-8"), "{}", failure.message);
        let failure = of_record(&record(vec![
            ("content-type", Some(b"application/json")),
            ("content-type", Some(b"application/json")),
        ]))
        .expect_err("twice");
        assert!(failure.message.contains("2 times"), "{}", failure.message);
    }

    #[test]
    fn json_is_application_json_or_a_json_suffix() {
        assert!(is_json("application/json"));
        assert!(is_json("application/problem+json; charset=utf-8"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/avro"));
        assert!(!is_json("json"));
    }
}
