//! The two Avro framings a record's value may have, told apart by its first bytes:
//! the Confluent wire format (`0x00`, a 4-byte big-endian schema id, the datum) and Avro
//! single-object encoding (`C3 01`, the 8-byte little-endian Rabin fingerprint of the
//! writer schema, the datum). JSON never starts with either (`0x00` is not text, and a
//! JSON text cannot start with the UTF-8 lead byte `C3`), so anything else is left to
//! the JSON reader.

use crate::outcome::{ErrorCode, Failure};

/// The first byte of the Confluent wire format.
pub const CONFLUENT_MAGIC: u8 = 0x00;
/// Bytes before the datum in the Confluent wire format: magic byte and schema id.
pub const CONFLUENT_HEADER_BYTES: usize = 5;
/// The first two bytes of single-object encoding.
pub const SINGLE_OBJECT_MARKER: [u8; 2] = [0xC3, 0x01];
/// Bytes before the datum in single-object encoding: marker and fingerprint.
pub const SINGLE_OBJECT_HEADER_BYTES: usize = 10;

/// An Avro-framed value: where its writer schema is found, and the datum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framed<'a> {
    /// Confluent wire format: the writer schema is the registry's `schema_id`.
    Confluent { schema_id: u32, body: &'a [u8] },
    /// Single-object encoding: the writer schema is the one of `schemas/` with this
    /// Rabin fingerprint (as written: little-endian).
    SingleObject {
        fingerprint: [u8; 8],
        body: &'a [u8],
    },
}

/// The framing of `payload`: `None` when it is not Avro-framed (JSON, or anything else
/// the JSON reader judges), a failure when it starts like a framing but is shorter than
/// its header.
pub fn detect(payload: &[u8]) -> Option<Result<Framed<'_>, Failure>> {
    let truncated = |what: &str, header: usize| {
        Err(Failure::new(
            ErrorCode::InvalidAvro,
            format!(
                "truncated: the value starts like {what} but is {} bytes long, shorter than its {header}-byte header",
                payload.len()
            ),
        ))
    };
    if payload.first() == Some(&CONFLUENT_MAGIC) {
        let Some((header, body)) = payload.split_first_chunk::<CONFLUENT_HEADER_BYTES>() else {
            return Some(truncated(
                "the Confluent wire format (magic byte 0x00)",
                CONFLUENT_HEADER_BYTES,
            ));
        };
        let schema_id = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        return Some(Ok(Framed::Confluent { schema_id, body }));
    }
    if payload.starts_with(&SINGLE_OBJECT_MARKER) {
        let Some((header, body)) = payload.split_first_chunk::<SINGLE_OBJECT_HEADER_BYTES>() else {
            return Some(truncated(
                "Avro single-object encoding (C3 01)",
                SINGLE_OBJECT_HEADER_BYTES,
            ));
        };
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&header[2..]);
        return Some(Ok(Framed::SingleObject { fingerprint, body }));
    }
    None
}

/// The schema id of a Confluent-framed payload, if it is one.
pub fn confluent_schema_id(payload: &[u8]) -> Option<u32> {
    match detect(payload)? {
        Ok(Framed::Confluent { schema_id, .. }) => Some(schema_id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_confluent_wire_format_is_told_by_its_magic_byte() {
        let payload = [0x00, 0x00, 0x00, 0x01, 0x02, 0xAA, 0xBB];
        assert_eq!(
            detect(&payload),
            Some(Ok(Framed::Confluent {
                schema_id: 258,
                body: &[0xAA, 0xBB]
            }))
        );
        assert_eq!(confluent_schema_id(&payload), Some(258));
        // A header with no datum is a frame; the datum reader judges the empty body.
        assert!(matches!(
            detect(&payload[..5]),
            Some(Ok(Framed::Confluent { body: &[], .. }))
        ));
    }

    #[test]
    fn single_object_encoding_is_told_by_its_marker() {
        let payload = [0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0x02];
        assert_eq!(
            detect(&payload),
            Some(Ok(Framed::SingleObject {
                fingerprint: [1, 2, 3, 4, 5, 6, 7, 8],
                body: &[0x02]
            }))
        );
        assert_eq!(confluent_schema_id(&payload), None);
    }

    #[test]
    fn a_frame_shorter_than_its_header_is_truncated_with_its_length() {
        for cut in 1..CONFLUENT_HEADER_BYTES {
            let failure = detect(&[0u8; 4][..cut])
                .expect("framed")
                .expect_err("truncated");
            assert_eq!(failure.code, ErrorCode::InvalidAvro);
            assert!(
                failure.message.starts_with("truncated:"),
                "{}",
                failure.message
            );
            assert!(failure.message.contains(&format!("{cut} bytes long")));
            assert!(failure.message.contains("5-byte header"));
        }
        for cut in 2..SINGLE_OBJECT_HEADER_BYTES {
            let payload = [0xC3, 0x01, 0, 0, 0, 0, 0, 0, 0];
            let failure = detect(&payload[..cut])
                .expect("framed")
                .expect_err("truncated");
            assert!(
                failure.message.contains("10-byte header"),
                "{}",
                failure.message
            );
        }
    }

    #[test]
    fn json_and_other_bytes_are_not_framed() {
        for payload in [
            &b"{\"intent\":\"x\"}"[..],
            b"",
            b" {}",
            &[0xC3],
            &[0xC3, 0xA9],
            &[0x01, 0x00],
        ] {
            assert_eq!(detect(payload), None, "{payload:?}");
        }
    }
}
