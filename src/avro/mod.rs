//! Avro: the schemas in `schemas/` as the service reads and writes them, and the
//! Confluent-compatible schema registry that writer schemas come from.
//!
//! Avro records arrive in two framings, told apart by their first bytes (JSON never
//! starts with either): the Confluent wire format (`0x00` and a 4-byte big-endian schema
//! id, the writer schema fetched from the registry) and Avro single-object encoding
//! (`C3 01` and the 8-byte Rabin fingerprint of a schema in `schemas/`).
//!
//! Reading: [`frame`] tells the framings apart, [`read`] finds the writer schema, reads
//! the datum and resolves it against the reader schema, and [`value`] turns the result
//! into the JSON value the same request would have been, for [`crate::decode`]'s shape
//! rules. Fetching a writer schema the cache lacks is the worker's ([`crate::worker`]): a
//! record waits for it rather than being decoded without it. Writing: outcome events go
//! out in either framing, or JSON, as `OUTCOMES_FORMAT` says ([`outcome`],
//! [`registration`]).

pub mod frame;
pub mod outcome;
pub mod read;
pub mod registration;
pub mod registry;
pub mod schemas;
pub mod value;
