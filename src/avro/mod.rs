//! Avro: the schemas in `schemas/` as the service reads and writes them, and the
//! Confluent-compatible schema registry that writer schemas come from.
//!
//! Avro records arrive in two framings, told apart by their first bytes (JSON never
//! starts with either): the Confluent wire format (`0x00` and a 4-byte big-endian schema
//! id, the writer schema fetched from the registry) and Avro single-object encoding
//! (`C3 01` and the 8-byte Rabin fingerprint of a schema in `schemas/`).

pub mod frame;
pub mod read;
pub mod registry;
pub mod schemas;
pub mod value;
