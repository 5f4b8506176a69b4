//! Topic creation, for the quick start, tests and development clusters.
//!
//! Production topics are usually owned by the platform team; the worker never creates
//! its input topics itself.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::types::RDKafkaErrorCode;
use tracing::info;

/// Creates each topic with `partitions` partitions; topics that exist are left alone.
pub async fn create_topics(
    properties: &BTreeMap<String, String>,
    topics: &[String],
    partitions: i32,
    replication: i32,
) -> anyhow::Result<()> {
    let admin = super::admin_client(properties)?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(replication)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .context("could not reach the brokers to create topics")?;
    for result in results {
        match result {
            Ok(topic) => info!(%topic, partitions, "topic created"),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                info!(%topic, "topic already exists")
            }
            Err((topic, code)) => bail!("could not create topic {topic}: {code}"),
        }
    }
    Ok(())
}

/// Creates `topic` compacted (`cleanup.policy=compact`) with `partitions` partitions
/// (`replication` -1: the broker's default) unless it exists. Returns whether it created
/// it.
pub async fn create_compacted(
    properties: &BTreeMap<String, String>,
    topic: &str,
    partitions: i32,
    replication: i32,
) -> anyhow::Result<bool> {
    let admin = super::admin_client(properties)?;
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication))
        .set("cleanup.policy", "compact");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics([&new_topic], &options)
        .await
        .with_context(|| format!("could not reach the brokers to create {topic:?}"))?;
    match results.into_iter().next() {
        Some(Ok(topic)) => {
            info!(%topic, partitions, "compacted topic created");
            Ok(true)
        }
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(false),
        Some(Err((topic, code))) => bail!("could not create topic {topic}: {code}"),
        None => bail!("the brokers did not answer the creation of {topic:?}"),
    }
}
