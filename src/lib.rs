//! nephoran-kafka-consumer: drives the Nephoran Intent Operator from Kafka.
//!
//! Service requests and network events are consumed by a group of workers, each message
//! flows one way through the stages below, and every message ends with a lifecycle
//! outcome event (and, if it cannot be acted upon, a dead letter):
//!
//! ```text
//! kafka::consumer -> decode -> dedup -> schedule -> validate -> translate -> validate -> policy -> apply -> kafka::publisher
//!                    (Kafka-agnostic: pipeline, dedup, schedule)  (request)           (shape)                 (outcome, dead letter)
//! worker: the loop that drives it and stores offsets once outcomes are acknowledged
//! ```
//!
//! Translators propose; [`policy`] decides, the same way for every translator, after
//! [`validate`] has checked that the intent is well formed and before anything is applied.

pub mod apply;
pub mod avro;
pub mod cli;
pub mod config;
pub mod cooldown;
pub mod crd;
pub mod decode;
pub mod dedup;
pub mod health;
pub mod hex;
pub mod intent;
pub mod kafka;
pub mod lease;
pub mod lifecycle;
pub mod message;
pub mod meters;
pub mod offsets;
pub mod outcome;
pub mod pipeline;
pub mod policy;
pub mod prometheus;
pub mod quantity;
pub mod replay;
pub mod request;
pub mod schedule;
pub mod show;
pub mod submit;
pub mod telemetry;
pub mod translate;
pub mod validate;
pub mod worker;
