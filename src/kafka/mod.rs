//! The Kafka edge: the only part of the service that knows about rdkafka.
//!
//! It turns consumed records into [`InboundMessage`](crate::message::InboundMessage)s,
//! publishes outcome events and dead letters, stores offsets once a message is done, and
//! creates topics for development. Client settings that the guarantees depend on are
//! fixed here and cannot be overridden by pass-through properties.

pub mod admin;
pub mod changelog;
pub mod consumer;
pub mod headers;
pub mod publisher;
pub mod tools;

use std::collections::BTreeMap;

use anyhow::Context;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

/// An admin client whose metadata requests never create the topic they ask about (with
/// the broker's default partitions and cleanup policy): topics are created on purpose.
fn admin_client(
    properties: &BTreeMap<String, String>,
) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    client_config(properties, &[("allow.auto.create.topics", "false")])
        .create()
        .context("could not create the Kafka admin client")
}

/// A client configuration from user properties with `fixed` settings applied on top.
fn client_config(properties: &BTreeMap<String, String>, fixed: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("client.id", "nephoran-kafka-consumer");
    for (key, value) in properties {
        config.set(key, value);
    }
    for (key, value) in fixed {
        config.set(*key, *value);
    }
    config
}
