//! Reading an Avro-framed record value: its writer schema found (the registry's, by id,
//! from the cache the worker filled; or the one of `schemas/` with its fingerprint),
//! resolved against the reader schema of `schemas/` it names (so writers may add fields
//! or drop optional ones), the datum read and turned into the JSON value the same
//! request would have been ([`super::value`]).
//!
//! Every way this can go wrong is the record's, and named precisely: an id the registry
//! does not know or no registry at all (`unknown_schema_id`), a fingerprint of no schema
//! here (`unknown_schema_fingerprint`), the outcome schema's fingerprint
//! (`unknown_message_type`), a value that ends early (`invalid_avro`, "truncated: ...",
//! with the byte counts), anything else apache-avro refuses (`invalid_avro`, its error).
//! A length in the datum is never trusted for an allocation beyond
//! [`MAX_ALLOCATION_BYTES`].

use std::io::Read;
use std::sync::Arc;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::Schema;

use super::frame::{self, Framed};
use super::registry::{Registry, RegistryError, SchemaAnswer};
use super::schemas::{self, Known};
use crate::outcome::{ErrorCode, Failure};

/// The most apache-avro allocates for one string, bytes, array or map of a datum: a
/// claimed length beyond it is refused before any allocation. Far above any record a
/// broker delivers (librdkafka's `message.max.bytes` defaults to 1 MB).
pub const MAX_ALLOCATION_BYTES: usize = 16 * 1024 * 1024;

/// Bounds apache-avro's allocations to [`MAX_ALLOCATION_BYTES`] for the whole process
/// (the first call wins; apache-avro would otherwise set its default of 512 MiB at its
/// first allocation). Called at start and before every read.
pub fn bound_allocations() -> usize {
    apache_avro::util::max_allocation_bytes(MAX_ALLOCATION_BYTES)
}

/// Where Confluent writer schemas come from while a record is decoded: the registry's
/// cache, or the answer of a fetch the worker just made for this record.
#[derive(Clone, Copy, Default)]
pub struct WriterSchemas<'a> {
    pub registry: Option<&'a Registry>,
    /// The answer the worker got for one id (a schema, or why there is none).
    pub fetched: Option<(u32, &'a SchemaAnswer)>,
}

impl WriterSchemas<'_> {
    fn by_id(&self, id: u32) -> Result<Arc<Schema>, RegistryError> {
        if let Some((fetched_id, answer)) = self.fetched {
            if fetched_id == id {
                return answer.clone();
            }
        }
        let Some(registry) = self.registry else {
            return Err(RegistryError::NotConfigured { id });
        };
        registry
            .cached(id)
            .ok_or_else(|| RegistryError::Unavailable {
                reason: format!("schema id {id} was not fetched"),
            })
    }
}

/// The JSON value of an Avro-framed payload; `None` when the payload is not
/// Avro-framed.
pub fn read(
    payload: &[u8],
    schemas: &WriterSchemas<'_>,
) -> Option<Result<serde_json::Value, Failure>> {
    let framed = match frame::detect(payload)? {
        Ok(framed) => framed,
        Err(failure) => return Some(Err(failure)),
    };
    Some(read_framed(payload.len(), framed, schemas))
}

fn read_framed(
    total: usize,
    framed: Framed<'_>,
    schemas: &WriterSchemas<'_>,
) -> Result<serde_json::Value, Failure> {
    // The registry's schema is held here while it is read; a built-in one is borrowed.
    let fetched: Arc<Schema>;
    let (writer, body, header): (&Schema, _, _) = match framed {
        Framed::Confluent { schema_id, body } => {
            fetched = schemas.by_id(schema_id).map_err(unresolved)?;
            (&fetched, body, frame::CONFLUENT_HEADER_BYTES)
        }
        Framed::SingleObject { fingerprint, body } => {
            let known = known_by_fingerprint(&fingerprint)?;
            (&known.schema, body, frame::SINGLE_OBJECT_HEADER_BYTES)
        }
    };
    let datum = read_datum(writer, body).map_err(|e| match e {
        DatumError::Truncated { read } => Failure::new(
            ErrorCode::InvalidAvro,
            format!(
                "truncated: the datum ends early: its {} bytes (of a {total}-byte value with a {header}-byte header) end after {read} were read",
                body.len()
            ),
        ),
        DatumError::Trailing { read, .. } => Failure::new(
            ErrorCode::InvalidAvro,
            format!(
                "{} bytes follow the {read}-byte datum (a {total}-byte value with a {header}-byte header)",
                body.len() - read
            ),
        ),
        DatumError::Avro(e) => Failure::new(
            ErrorCode::InvalidAvro,
            printable(&format!(
                "the datum cannot be read with writer schema {}: {e}",
                name_of(writer)
            )),
        ),
    })?;
    let (reader, resolved) = resolve(writer, datum)?;
    super::value::to_json(resolved).map_err(|e| {
        Failure::new(
            ErrorCode::InvalidAvro,
            printable(&format!("the datum read as {}: {e}", reader.file)),
        )
    })
}

/// The outcome of a registry lookup that gave no schema, as the record's failure.
fn unresolved(e: RegistryError) -> Failure {
    let code = match e {
        RegistryError::UnknownId { .. } | RegistryError::NotConfigured { .. } => {
            ErrorCode::UnknownSchemaId
        }
        // Not reached from the worker, which fetches before it decodes.
        RegistryError::Unavailable { .. } => ErrorCode::UnknownSchemaId,
        RegistryError::Unusable { .. } | RegistryError::Refused { .. } => ErrorCode::InvalidAvro,
    };
    Failure::new(code, printable(&e.to_string()))
}

fn known_by_fingerprint(fingerprint: &[u8; 8]) -> Result<&'static Known, Failure> {
    let hex = crate::hex::lower_hex(fingerprint);
    match schemas::by_fingerprint(fingerprint) {
        None => Err(Failure::new(
            ErrorCode::UnknownSchemaFingerprint,
            format!(
                "no schema in schemas/ has the single-object fingerprint {hex} (the service reads {} {} and {} {})",
                schemas::SERVICE_REQUEST.file,
                crate::hex::lower_hex(&schemas::SERVICE_REQUEST.fingerprint),
                schemas::NETWORK_EVENT.file,
                crate::hex::lower_hex(&schemas::NETWORK_EVENT.fingerprint),
            ),
        )),
        Some(known) if std::ptr::eq(known, &*schemas::OUTCOME_EVENT) => Err(Failure::new(
            ErrorCode::UnknownMessageType,
            format!(
                "the single-object fingerprint {hex} is {}'s: an outcome event, not a request",
                known.file
            ),
        )),
        Some(known) => Ok(known),
    }
}

/// The datum resolved against the reader schema of `schemas/` the writer schema names
/// (`ServiceRequest`, `NetworkEvent`, namespace aside), or, when it names neither, the
/// first it resolves to: a field the reader does not know is dropped, one the writer
/// lacks takes the reader's default.
fn resolve(
    writer: &Schema,
    datum: apache_avro::types::Value,
) -> Result<(&'static Known, apache_avro::types::Value), Failure> {
    let readers = [&*schemas::SERVICE_REQUEST, &*schemas::NETWORK_EVENT];
    let name = writer.name().map(|n| n.name().to_owned());
    let named = readers.into_iter().find(|known| {
        name.as_deref()
            .is_some_and(|name| known.schema.name().is_some_and(|n| n.name() == name))
    });
    if let Some(reader) = named {
        return datum
            .resolve(&reader.schema)
            .map(|v| (reader, v))
            .map_err(|e| {
                Failure::new(
                    ErrorCode::InvalidAvro,
                    printable(&format!(
                        "the writer schema {} does not resolve to {}: {e}",
                        name_of(writer),
                        reader.file
                    )),
                )
            });
    }
    readers
        .into_iter()
        .find_map(|reader| {
            datum
                .clone()
                .resolve(&reader.schema)
                .ok()
                .map(|v| (reader, v))
        })
        .ok_or_else(|| {
            Failure::new(
                ErrorCode::InvalidAvro,
                printable(&format!(
                    "the writer schema {} resolves to neither ServiceRequest nor NetworkEvent",
                    name_of(writer)
                )),
            )
        })
}

fn name_of(schema: &Schema) -> String {
    match schema.name() {
        Some(name) => name.to_string(),
        None => format!(
            "(an unnamed {:?})",
            apache_avro::schema::SchemaKind::from(schema)
        ),
    }
}

/// Why a datum could not be read with its writer schema.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DatumError {
    /// The body ended after `read` bytes, before the datum did.
    #[error("truncated: the datum ends early, after {read} bytes")]
    Truncated { read: usize },
    /// The datum ended after `read` bytes, before the body did.
    #[error("{} bytes after the datum of {read} bytes", .len - .read)]
    Trailing { read: usize, len: usize },
    #[error("{0}")]
    Avro(apache_avro::Error),
}

/// The datum of `body`, read with its writer schema.
pub(crate) fn read_datum(
    writer: &Schema,
    body: &[u8],
) -> Result<apache_avro::types::Value, DatumError> {
    bound_allocations();
    let datum_reader = GenericDatumReader::builder(writer)
        .build()
        .map_err(DatumError::Avro)?;
    let mut counted = Counted {
        body,
        read: 0,
        ran_out: false,
    };
    let result = datum_reader.read_value(&mut counted);
    // apache-avro reads some values that end early as nulls rather than failing: the
    // reader knows whether it ran out, whatever came of it.
    if counted.ran_out {
        return Err(DatumError::Truncated { read: counted.read });
    }
    match result {
        Ok(_) if counted.read < body.len() => Err(DatumError::Trailing {
            read: counted.read,
            len: body.len(),
        }),
        Ok(value) => Ok(value),
        Err(e) => Err(DatumError::Avro(e)),
    }
}

/// The body as a reader that counts what was taken from it, and knows whether more was
/// asked for than it holds.
struct Counted<'a> {
    body: &'a [u8],
    read: usize,
    ran_out: bool,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let rest = self.body.get(self.read..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.read += n;
        self.ran_out |= n < buf.len();
        Ok(n)
    }
}

/// An error text with control characters escaped: apache-avro quotes datum bytes.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() || crate::decode::is_forbidden(c) {
                c.escape_unicode().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::writer::datum::GenericDatumWriter;

    const EXTRA_FIELD: &str = r#"{"type":"record","name":"ServiceRequest","namespace":"com.example.oss",
        "fields":[
          {"name":"idempotency_key","type":["null","string"],"default":null},
          {"name":"intent","type":"string"},
          {"name":"ticket","type":"string"},
          {"name":"target_namespace","type":["null","string"],"default":null}]}"#;

    /// The datum of `json` (a request as JSON) written with `schema`.
    fn datum(schema: &Schema, json: serde_json::Value) -> Vec<u8> {
        let value = avro_value(json)
            .resolve(schema)
            .expect("a value of the schema");
        GenericDatumWriter::builder(schema)
            .build()
            .and_then(|w| w.write_value_to_vec(value))
            .expect("written")
    }

    /// `json` as an Avro value (objects as maps: resolving makes them records).
    fn avro_value(json: serde_json::Value) -> apache_avro::types::Value {
        use apache_avro::types::Value;
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Boolean(b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Long(i),
                None => Value::Double(n.as_f64().unwrap_or_default()),
            },
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(items) => {
                Value::Array(items.into_iter().map(avro_value).collect())
            }
            serde_json::Value::Object(o) => {
                Value::Map(o.into_iter().map(|(k, v)| (k, avro_value(v))).collect())
            }
        }
    }

    fn single_object(known: &Known, json: serde_json::Value) -> Vec<u8> {
        let mut payload = vec![0xC3, 0x01];
        payload.extend_from_slice(&known.fingerprint);
        payload.extend(datum(&known.schema, json));
        payload
    }

    fn confluent(id: u32, schema: &Schema, json: serde_json::Value) -> Vec<u8> {
        let mut payload = vec![0];
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend(datum(schema, json));
        payload
    }

    fn fetched(id: u32, answer: &SchemaAnswer) -> WriterSchemas<'_> {
        WriterSchemas {
            registry: None,
            fetched: Some((id, answer)),
        }
    }

    fn request() -> serde_json::Value {
        serde_json::json!({
            "idempotency_key": "order-1",
            "intent": "Deploy AMF in namespace core5g",
            "target_namespace": "core5g",
            "parameters": {"replicas": 3}
        })
    }

    fn failure(payload: &[u8], schemas: &WriterSchemas<'_>) -> Failure {
        read(payload, schemas)
            .expect("Avro-framed")
            .expect_err("refused")
    }

    #[test]
    fn single_object_and_confluent_read_as_the_json_they_were_written_from() {
        let payload = single_object(&schemas::SERVICE_REQUEST, request());
        let json = read(&payload, &WriterSchemas::default()).expect("framed");
        assert_eq!(json, Ok(request()));
        let answer = Ok(Arc::new(schemas::SERVICE_REQUEST.schema.clone()));
        let payload = confluent(7, &schemas::SERVICE_REQUEST.schema, request());
        assert_eq!(read(&payload, &fetched(7, &answer)), Some(Ok(request())));
        let event = serde_json::json!({"event_id": "ev-1", "event_type": "alarm", "value": 92.5});
        let payload = single_object(&schemas::NETWORK_EVENT, event.clone());
        assert_eq!(read(&payload, &WriterSchemas::default()), Some(Ok(event)));
        assert_eq!(read(b"{\"intent\":\"x\"}", &WriterSchemas::default()), None);
    }

    #[test]
    fn a_writer_with_an_extra_field_or_without_an_optional_one_is_read() {
        let writer = Schema::parse_str(EXTRA_FIELD).expect("schema");
        let answer = Ok(Arc::new(writer.clone()));
        let json =
            serde_json::json!({"idempotency_key": "k", "intent": "Deploy UPF", "ticket": "T-1"});
        let payload = confluent(9, &writer, json);
        assert_eq!(
            read(&payload, &fetched(9, &answer)),
            Some(Ok(
                serde_json::json!({"idempotency_key": "k", "intent": "Deploy UPF"})
            ))
        );
        // Known by its shape when its name is another: it resolves to NetworkEvent only.
        let minimal = Schema::parse_str(
            r#"{"type":"record","name":"Alarm","fields":[{"name":"event_type","type":"string"}]}"#,
        )
        .expect("schema");
        let answer = Ok(Arc::new(minimal.clone()));
        let payload = confluent(10, &minimal, serde_json::json!({"event_type": "alarm"}));
        assert_eq!(
            read(&payload, &fetched(10, &answer)),
            Some(Ok(serde_json::json!({"event_type": "alarm"})))
        );
    }

    #[test]
    fn a_writer_that_resolves_to_no_request_is_invalid_avro_by_its_name() {
        let other = Schema::parse_str(
            r#"{"type":"record","name":"Invoice","namespace":"billing","fields":[{"name":"amount","type":"long"}]}"#,
        )
        .expect("schema");
        let answer = Ok(Arc::new(other.clone()));
        let payload = confluent(3, &other, serde_json::json!({"amount": 5}));
        let failure = failure(&payload, &fetched(3, &answer));
        assert_eq!(failure.code, ErrorCode::InvalidAvro);
        assert!(
            failure.message.contains("billing.Invoice"),
            "{}",
            failure.message
        );
    }

    #[test]
    fn unknown_ids_and_fingerprints_get_their_codes() {
        let payload = confluent(42, &schemas::SERVICE_REQUEST.schema, request());
        let failure1 = failure(&payload, &WriterSchemas::default());
        assert_eq!(failure1.code, ErrorCode::UnknownSchemaId);
        assert!(
            failure1.message.contains("SCHEMA_REGISTRY_URL"),
            "{}",
            failure1.message
        );
        let answer = Err(RegistryError::UnknownId { id: 42 });
        let failure2 = failure(&payload, &fetched(42, &answer));
        assert_eq!(failure2.code, ErrorCode::UnknownSchemaId);
        assert!(failure2.message.contains("id 42"), "{}", failure2.message);
        let answer = Err(RegistryError::Unusable {
            id: 42,
            reason: "it is a Protobuf schema, not Avro".into(),
        });
        assert_eq!(
            failure(&payload, &fetched(42, &answer)).code,
            ErrorCode::InvalidAvro
        );

        let mut payload = single_object(&schemas::SERVICE_REQUEST, request());
        payload[2..10].copy_from_slice(&[0xDE, 0xAD, 0xBE, 0xEF, 0, 1, 2, 3]);
        let unknown = failure(&payload, &WriterSchemas::default());
        assert_eq!(unknown.code, ErrorCode::UnknownSchemaFingerprint);
        assert!(
            unknown.message.contains("deadbeef00010203"),
            "{}",
            unknown.message
        );
        payload[2..10].copy_from_slice(&schemas::OUTCOME_EVENT.fingerprint);
        let outcome = failure(&payload, &WriterSchemas::default());
        assert_eq!(outcome.code, ErrorCode::UnknownMessageType);
    }

    #[test]
    fn every_cut_of_a_valid_datum_is_truncated_with_its_byte_counts() {
        let payload = single_object(&schemas::SERVICE_REQUEST, request());
        for cut in frame::SINGLE_OBJECT_HEADER_BYTES..payload.len() {
            let failure = failure(&payload[..cut], &WriterSchemas::default());
            assert_eq!(failure.code, ErrorCode::InvalidAvro, "cut at {cut}");
            assert!(
                failure
                    .message
                    .starts_with("truncated: the datum ends early"),
                "cut at {cut}: {}",
                failure.message
            );
            assert!(
                failure.message.contains(&format!("a {cut}-byte value")),
                "{}",
                failure.message
            );
        }
        let answer = Ok(Arc::new(schemas::SERVICE_REQUEST.schema.clone()));
        let payload = confluent(1, &schemas::SERVICE_REQUEST.schema, request());
        for cut in frame::CONFLUENT_HEADER_BYTES..payload.len() {
            let failure = failure(&payload[..cut], &fetched(1, &answer));
            assert!(
                failure.message.starts_with("truncated:"),
                "{}",
                failure.message
            );
        }
    }

    #[test]
    fn bytes_after_the_datum_are_refused() {
        let mut payload = single_object(&schemas::SERVICE_REQUEST, request());
        payload.extend_from_slice(b"xyz");
        let failure = failure(&payload, &WriterSchemas::default());
        assert_eq!(failure.code, ErrorCode::InvalidAvro);
        assert!(
            failure.message.starts_with("3 bytes follow"),
            "{}",
            failure.message
        );
    }

    #[test]
    fn a_hostile_length_is_refused_before_it_is_allocated() {
        assert_eq!(bound_allocations(), MAX_ALLOCATION_BYTES);
        // idempotency_key: union branch 1 (string), then a string claiming 100 MB, 2 GB
        // and the largest long.
        for claimed in [100_000_000i64, 2_000_000_000, i64::MAX / 2] {
            let mut payload = vec![0xC3, 0x01];
            payload.extend_from_slice(&schemas::SERVICE_REQUEST.fingerprint);
            payload.push(0x02);
            let mut zigzag = ((claimed << 1) ^ (claimed >> 63)) as u64;
            loop {
                let byte = (zigzag & 0x7F) as u8;
                zigzag >>= 7;
                if zigzag == 0 {
                    payload.push(byte);
                    break;
                }
                payload.push(byte | 0x80);
            }
            payload.extend_from_slice(b"short");
            let failure = failure(&payload, &WriterSchemas::default());
            assert_eq!(failure.code, ErrorCode::InvalidAvro, "{claimed}");
            assert!(
                !failure.message.starts_with("truncated"),
                "{}",
                failure.message
            );
        }
        // A map claiming a billion entries.
        let mut payload = single_object(
            &schemas::SERVICE_REQUEST,
            serde_json::json!({"intent": "x"}),
        );
        payload.pop(); // parameters: null
        payload.push(0x02); // parameters: the map branch
        payload.extend_from_slice(&[0x80, 0xA8, 0xD6, 0xB9, 0x07]); // 1e9 entries
        let failure = failure(&payload, &WriterSchemas::default());
        assert_eq!(failure.code, ErrorCode::InvalidAvro);
    }
}
