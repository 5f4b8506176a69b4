//! The schemas in `schemas/`, built into the binary: the reader schemas of the two
//! requests and the writer schema of outcome events, each with its single-object
//! fingerprint.
//!
//! Built in rather than read at start, so a deployment cannot run with schemas that
//! differ from the types they describe (tests/schemas.rs checks each against its type).

use std::sync::LazyLock;

use apache_avro::rabin::Rabin;
use apache_avro::Schema;

/// One schema of `schemas/`.
#[derive(Debug)]
pub struct Known {
    /// Its file in `schemas/`, for messages.
    pub file: &'static str,
    pub schema: Schema,
    /// The Rabin (CRC-64-AVRO) fingerprint of its canonical form, as single-object
    /// encoding writes it after `C3 01` (little-endian).
    pub fingerprint: [u8; 8],
}

impl Known {
    fn parse(file: &'static str, text: &'static str) -> Known {
        // The files are part of the build and checked by tests: a parse error is a bug
        // in this repository, not input.
        let schema = Schema::parse_str(text)
            .unwrap_or_else(|e| panic!("schemas/{file} is not a valid Avro schema: {e}"));
        let digest = schema.fingerprint::<Rabin>().bytes;
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&digest[..8]);
        Known {
            file,
            schema,
            fingerprint,
        }
    }
}

pub static SERVICE_REQUEST: LazyLock<Known> = LazyLock::new(|| {
    Known::parse(
        "service-request.avsc",
        include_str!("../../schemas/service-request.avsc"),
    )
});

pub static NETWORK_EVENT: LazyLock<Known> = LazyLock::new(|| {
    Known::parse(
        "network-event.avsc",
        include_str!("../../schemas/network-event.avsc"),
    )
});

pub static OUTCOME_EVENT: LazyLock<Known> = LazyLock::new(|| {
    Known::parse(
        "outcome-event.avsc",
        include_str!("../../schemas/outcome-event.avsc"),
    )
});

/// The schema of `schemas/` whose fingerprint this is, if any.
pub fn by_fingerprint(fingerprint: &[u8; 8]) -> Option<&'static Known> {
    [&*SERVICE_REQUEST, &*NETWORK_EVENT, &*OUTCOME_EVENT]
        .into_iter()
        .find(|known| &known.fingerprint == fingerprint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_parses_and_is_found_by_its_fingerprint() {
        for known in [&*SERVICE_REQUEST, &*NETWORK_EVENT, &*OUTCOME_EVENT] {
            let found = by_fingerprint(&known.fingerprint).expect("found");
            assert_eq!(found.file, known.file);
        }
        assert!(by_fingerprint(&[0; 8]).is_none());
    }

    #[test]
    fn the_fingerprint_is_the_one_single_object_encoding_writes() {
        use apache_avro::headers::{HeaderBuilder, RabinFingerprintHeader};
        let header = RabinFingerprintHeader::from_schema(&SERVICE_REQUEST.schema).build_header();
        assert_eq!(&header[..2], &[0xC3, 0x01]);
        assert_eq!(&header[2..], &SERVICE_REQUEST.fingerprint);
    }
}
