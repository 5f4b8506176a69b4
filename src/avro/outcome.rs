//! Outcome events as bytes: written in the format `OUTCOMES_FORMAT` asks for, and read
//! back whatever format each record is in.
//!
//! Written ([`OutcomeEncoding`]): JSON (the default), or Avro of
//! `schemas/outcome-event.avsc` framed either in the Confluent wire format (`0x00`, the
//! 4-byte big-endian id the registry gave the schema under `<outcomes topic>-value`) or,
//! without a registry, in Avro single-object encoding (`C3 01` and the schema's 8-byte
//! Rabin fingerprint). An event that does not fit the schema is a bug here (a stage or
//! error code missing from the `.avsc`): it is logged, counted in
//! `outcome_encoding_failures_total{stage}` and published as JSON with
//! `content-type: application/json` instead, so that no outcome is lost.
//!
//! Read ([`frame`], [`decode`]): the first bytes tell the format apart (JSON never
//! starts with `0x00` or `0xC3`), so a topic whose format was switched mid-stream reads
//! as one. The project's own readers (`outcomes`, `submit --wait`, the tests) use this;
//! subscribers use their own Avro and registry clients.

use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use tracing::error;

use super::frame::{self, Framed, CONFLUENT_MAGIC, SINGLE_OBJECT_MARKER};
use super::schemas::OUTCOME_EVENT;
use crate::outcome::OutcomeEvent;
/// `content-type` of a JSON outcome.
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// `content-type` of an Avro outcome (either framing).
pub const AVRO_CONTENT_TYPE: &str = "application/avro";

/// How outcome events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeEncoding {
    Json,
    /// Avro single-object encoding of the built-in outcome schema.
    SingleObject,
    /// The Confluent wire format, with the id the registry gave the outcome schema.
    Confluent {
        schema_id: u32,
    },
}

/// One encoded event and the `content-type` it is published with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub payload: Vec<u8>,
    pub content_type: &'static str,
}

impl OutcomeEncoding {
    /// `event` as bytes. Never fails: an event the Avro schema cannot hold is logged,
    /// counted, and written as JSON.
    pub fn encode(&self, event: &OutcomeEvent) -> Encoded {
        let prefix: Vec<u8> = match self {
            OutcomeEncoding::Json => return json(event),
            OutcomeEncoding::SingleObject => SINGLE_OBJECT_MARKER
                .iter()
                .chain(OUTCOME_EVENT.fingerprint.iter())
                .copied()
                .collect(),
            OutcomeEncoding::Confluent { schema_id } => std::iter::once(CONFLUENT_MAGIC)
                .chain(schema_id.to_be_bytes())
                .collect(),
        };
        match avro_datum(event) {
            Ok(datum) => {
                let mut payload = prefix;
                payload.extend_from_slice(&datum);
                Encoded {
                    payload,
                    content_type: AVRO_CONTENT_TYPE,
                }
            }
            Err(e) => {
                crate::meters::outcome_encoding_failures(event.stage.as_str()).increment(1);
                error!(
                    key = %event.idempotency_key, stage = event.stage.as_str(),
                    event_id = %event.event_id, error = %e,
                    "outcome event does not fit schemas/outcome-event.avsc (a bug: the schema \
                     lacks a value the service writes); published as JSON instead"
                );
                json(event)
            }
        }
    }

    /// What the startup log line says the format is.
    pub fn describe(&self) -> &'static str {
        match self {
            OutcomeEncoding::Json => "json",
            OutcomeEncoding::SingleObject => "avro single-object",
            OutcomeEncoding::Confluent { .. } => "avro confluent",
        }
    }
}

fn json(event: &OutcomeEvent) -> Encoded {
    Encoded {
        // Plain structs with string keys: serialisation cannot fail.
        payload: serde_json::to_vec(event).expect("outcome events serialise to JSON"),
        content_type: JSON_CONTENT_TYPE,
    }
}

/// The Avro binary encoding of `event` under the outcome schema, without framing.
pub fn avro_datum(event: &OutcomeEvent) -> Result<Vec<u8>, apache_avro::Error> {
    let schema = &OUTCOME_EVENT.schema;
    // Fields left out of the JSON (absent options) take the schema's defaults here.
    let value = apache_avro::to_value(event)?.resolve(schema)?;
    GenericDatumWriter::builder(schema)
        .build()?
        .write_value_to_vec(value)
}

/// How a record on the outcomes topic is framed, told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing<'a> {
    Json(&'a [u8]),
    SingleObject {
        fingerprint: [u8; 8],
        body: &'a [u8],
    },
    Confluent {
        schema_id: u32,
        body: &'a [u8],
    },
}

/// Why a record could not be read as an outcome event; one line, for a warning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Undecodable {
    #[error("an empty record")]
    Empty,
    #[error("cut short: {0}")]
    Truncated(String),
    #[error("not an outcome event in JSON: {0}")]
    Json(String),
    #[error(
        "single-object Avro with fingerprint {fingerprint}, not that of schemas/outcome-event.avsc"
    )]
    UnknownFingerprint { fingerprint: String },
    #[error("Confluent-framed Avro with schema id {schema_id}: {reason}")]
    WriterSchema { schema_id: u32, reason: String },
    #[error("Avro that does not decode as an outcome event: {0}")]
    Avro(String),
}

/// How `record` is framed: the framings of Avro input ([`frame::detect`]), else JSON.
pub fn frame(record: &[u8]) -> Result<Framing<'_>, Undecodable> {
    if record.is_empty() {
        return Err(Undecodable::Empty);
    }
    match frame::detect(record) {
        None => Ok(Framing::Json(record)),
        Some(Err(failure)) => Err(Undecodable::Truncated(failure.message)),
        Some(Ok(Framed::Confluent { schema_id, body })) => {
            Ok(Framing::Confluent { schema_id, body })
        }
        Some(Ok(Framed::SingleObject { fingerprint, body })) => {
            Ok(Framing::SingleObject { fingerprint, body })
        }
    }
}

/// Reads an outcome event from a framed record. `writer_schema` is the schema registered
/// under the record's id, for a Confluent-framed record (the caller fetches it, see
/// [`Framing::Confluent`]); it is read through the built-in outcome schema, so an
/// evolved writer still reads.
pub fn decode(
    framing: Framing<'_>,
    writer_schema: Option<&Schema>,
) -> Result<OutcomeEvent, Undecodable> {
    match framing {
        Framing::Json(bytes) => {
            serde_json::from_slice(bytes).map_err(|e| Undecodable::Json(e.to_string()))
        }
        Framing::SingleObject { fingerprint, body } => {
            if fingerprint != OUTCOME_EVENT.fingerprint {
                return Err(Undecodable::UnknownFingerprint {
                    fingerprint: crate::hex::lower_hex(&fingerprint),
                });
            }
            read_avro(&OUTCOME_EVENT.schema, body)
        }
        Framing::Confluent { schema_id, body } => {
            let Some(writer) = writer_schema else {
                return Err(Undecodable::WriterSchema {
                    schema_id,
                    reason: "no writer schema (is SCHEMA_REGISTRY_URL set?)".into(),
                });
            };
            read_avro(writer, body)
        }
    }
}

fn read_avro(writer: &Schema, body: &[u8]) -> Result<OutcomeEvent, Undecodable> {
    let datum =
        super::read::read_datum(writer, body).map_err(|e| Undecodable::Avro(e.to_string()))?;
    let value = datum
        .resolve(&OUTCOME_EVENT.schema)
        .map_err(|e| Undecodable::Avro(e.to_string()))?;
    apache_avro::from_value(&value).map_err(|e| Undecodable::Avro(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{IdempotencyKey, KeySource};
    use crate::message::SourceRef;
    use crate::outcome::{ErrorCode, Failure, IntentRef, Original, Stage};

    fn event(stage: Stage) -> OutcomeEvent {
        let key = IdempotencyKey {
            value: "order-1".into(),
            source: KeySource::Header,
        };
        let source = SourceRef {
            topic: "service-requests".into(),
            partition: 2,
            offset: 17,
        };
        OutcomeEvent::new(&key, stage, &source)
    }

    fn full() -> OutcomeEvent {
        let mut event = event(Stage::Duplicate);
        event.message_type = Some(crate::request::MessageType::ServiceRequest);
        event.intent = Some(IntentRef {
            name: "n".into(),
            namespace: "ns".into(),
        });
        event.translator = Some(crate::translate::TranslatorKind::Llm);
        event.error = Some(Failure::new(ErrorCode::PolicyDenied, "no"));
        event.original = Some(Original {
            stage: Stage::Applied,
            intent: None,
            source: event.source.clone(),
        });
        event
    }

    fn round_trip(encoding: OutcomeEncoding, event: &OutcomeEvent) -> OutcomeEvent {
        let encoded = encoding.encode(event);
        let framing = frame(&encoded.payload).expect("framed");
        decode(framing, Some(&OUTCOME_EVENT.schema)).expect("decoded")
    }

    #[test]
    fn every_encoding_reads_back_the_same_event() {
        for encoding in [
            OutcomeEncoding::Json,
            OutcomeEncoding::SingleObject,
            OutcomeEncoding::Confluent { schema_id: 7 },
        ] {
            for event in [event(Stage::Received), full()] {
                assert_eq!(round_trip(encoding, &event), event, "{encoding:?}");
            }
        }
    }

    #[test]
    fn the_framing_and_content_type_are_those_asked_for() {
        let event = event(Stage::Applied);
        let json = OutcomeEncoding::Json.encode(&event);
        assert_eq!(json.content_type, "application/json");
        assert_eq!(json.payload.first(), Some(&b'{'));

        let single = OutcomeEncoding::SingleObject.encode(&event);
        assert_eq!(single.content_type, "application/avro");
        assert_eq!(&single.payload[..2], &[0xC3, 0x01]);
        assert_eq!(&single.payload[2..10], &OUTCOME_EVENT.fingerprint);

        let confluent = OutcomeEncoding::Confluent {
            schema_id: 0x0102_0304,
        }
        .encode(&event);
        assert_eq!(confluent.content_type, "application/avro");
        assert_eq!(&confluent.payload[..5], &[0, 1, 2, 3, 4]);
        assert_eq!(
            &confluent.payload[5..],
            &avro_datum(&event).expect("datum")[..]
        );
    }

    #[test]
    fn records_that_are_not_outcomes_are_told_apart_without_a_panic() {
        let single = OutcomeEncoding::SingleObject.encode(&full()).payload;
        let confluent = OutcomeEncoding::Confluent { schema_id: 1 }
            .encode(&full())
            .payload;
        assert_eq!(frame(b""), Err(Undecodable::Empty));
        assert!(matches!(frame(&[0, 0, 1]), Err(Undecodable::Truncated(_))));
        assert!(matches!(
            frame(&[0xC3, 0x01, 1]),
            Err(Undecodable::Truncated(_))
        ));
        // 0xC3 not followed by 0x01 is not single-object (nor JSON).
        let framing = frame(&[0xC3, 0x02, 0, 0, 0, 0, 0, 0, 0, 0]).expect("framed");
        assert!(matches!(decode(framing, None), Err(Undecodable::Json(_))));
        let mut other = single.clone();
        other[2] ^= 1;
        assert!(matches!(
            decode(frame(&other).expect("framed"), None),
            Err(Undecodable::UnknownFingerprint { .. })
        ));
        assert!(matches!(
            decode(frame(&confluent).expect("framed"), None),
            Err(Undecodable::WriterSchema { schema_id: 1, .. })
        ));
        // Every cut of a valid record, and a trailing byte, is an error, not a panic.
        for record in [&single, &confluent] {
            for end in 0..record.len() {
                if let Ok(framing) = frame(&record[..end]) {
                    assert!(
                        decode(framing, Some(&OUTCOME_EVENT.schema)).is_err(),
                        "cut at {end}"
                    );
                }
            }
            let mut longer = record.clone();
            longer.push(0);
            assert!(decode(frame(&longer).expect("framed"), Some(&OUTCOME_EVENT.schema)).is_err());
        }
        assert!(matches!(
            decode(frame(b"{\"not\":1}").expect("framed"), None),
            Err(Undecodable::Json(_))
        ));
    }

    #[test]
    fn a_writer_schema_that_is_not_an_outcome_is_refused() {
        let record = OutcomeEncoding::Confluent { schema_id: 3 }
            .encode(&full())
            .payload;
        let framing = frame(&record).expect("framed");
        let other = &crate::avro::schemas::SERVICE_REQUEST.schema;
        assert!(matches!(
            decode(framing, Some(other)),
            Err(Undecodable::Avro(_))
        ));
    }
}
