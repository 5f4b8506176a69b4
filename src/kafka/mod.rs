//! The Kafka edge: the only part of the service that knows about rdkafka.
//!
//! It turns consumed records into [`InboundMessage`](crate::message::InboundMessage)s,
//! publishes outcome events and dead letters, stores offsets once a message is done,
//! creates topics for development, and reads and re-publishes dead letters for
//! `dlq replay` ([`replay`]). Client settings that the guarantees depend on are
//! fixed here and cannot be overridden by pass-through properties ([`properties`] refuses
//! them, and their aliases, at start).

pub mod admin;
pub mod budgets;
pub mod changelog;
pub mod cloudevents;
pub mod consumer;
pub mod headers;
pub mod lag;
pub mod logs;
pub mod probe;
pub mod properties;
pub mod publisher;
pub mod queued;
pub mod replay;
pub mod tools;

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use tracing::warn;

use crate::health::{Client, Health};

/// An admin client whose metadata requests never create the topic they ask about (with
/// the broker's default partitions and cleanup policy): topics are created on purpose.
fn admin_client(
    properties: &BTreeMap<String, String>,
) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    client_config(properties, &[("allow.auto.create.topics", "false")])
        .create()
        .context("could not create the Kafka admin client")
}

/// A client configuration from user properties with `fixed` settings applied on top. A
/// fixed setting replaces the user's under any of its names: librdkafka applies the
/// entries in no fixed order, so an alias left beside it would win at random.
fn client_config(properties: &BTreeMap<String, String>, fixed: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("client.id", "nephoran-kafka-consumer");
    config.set_log_level(logs::LEVEL);
    for (key, value) in properties {
        config.set(key, value);
    }
    for (key, value) in fixed {
        for name in properties::names_of(key) {
            config.remove(name);
        }
        config.set(*key, *value);
    }
    config
}

/// A global error of a librdkafka client, from its error callback (the producer's) or a
/// poll (the consumer's): a fatal one or `AllBrokersDown` is told to `health`; all are
/// logged.
fn client_error(health: &Health, client: Client, error: &KafkaError, reason: &str) {
    let fatal = matches!(error, KafkaError::MessageConsumptionFatal(_))
        || error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal);
    if fatal {
        let reason = if reason.is_empty() {
            error.to_string()
        } else {
            format!("{error}: {reason}")
        };
        health.fatal(client, &reason);
    } else if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
        if !health.brokers_down.is_holding() {
            warn!(error = %error, reason, "librdkafka: all brokers are down");
        }
        health
            .brokers_down
            .holds_at(Instant::now(), "librdkafka reports all brokers down");
    } else {
        warn!(error = %error, reason, client = ?client, "librdkafka client error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_setting_replaces_the_users_under_every_name() {
        let user = BTreeMap::from([
            ("request.required.acks".to_string(), "1".to_string()),
            ("fetch.message.max.bytes".to_string(), "1024".to_string()),
            ("linger.ms".to_string(), "7".to_string()),
        ]);
        let config = client_config(
            &user,
            &[("acks", "all"), ("max.partition.fetch.bytes", "16777216")],
        );
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("request.required.acks"), None);
        assert_eq!(config.get("fetch.message.max.bytes"), None);
        assert_eq!(config.get("max.partition.fetch.bytes"), Some("16777216"));
        assert_eq!(config.get("linger.ms"), Some("7"));
    }

    #[test]
    fn client_errors_that_matter_reach_health() {
        let health = Health::default();
        health.rebalanced(1);
        let other = KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure);
        client_error(&health, Client::Producer, &other, "connection refused");
        assert!(!health.brokers_down.is_holding() && health.is_ready());

        let down = KafkaError::Global(RDKafkaErrorCode::AllBrokersDown);
        client_error(&health, Client::Producer, &down, "1/1 brokers are down");
        assert!(
            health.brokers_down.is_holding(),
            "counted from now, for the grace"
        );

        let fatal = KafkaError::MessageConsumptionFatal(RDKafkaErrorCode::Fatal);
        client_error(&health, Client::Consumer, &fatal, "");
        let reason = health.not_ready().expect("not ready at once");
        assert!(
            reason.starts_with("librdkafka fatal error in the consumer: "),
            "{reason}"
        );
    }
}
