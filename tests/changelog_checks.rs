//! The dedup changelog is checked at start, against the real broker: a changelog that is
//! not compacted is refused naming it and the fix; a missing changelog of a group that has
//! committed offsets is refused unless `DEDUP_REBUILD` accepts an empty state; a new group
//! gets its changelog created.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{brokers, TestTopics, Worker};
use nephoran_kafka_consumer::apply::IntentSink;
use nephoran_kafka_consumer::dedup::changelog_topic;
use nephoran_kafka_consumer::health::Health;
use nephoran_kafka_consumer::kafka::changelog;
use nephoran_kafka_consumer::pipeline::Pipeline;
use nephoran_kafka_consumer::translate::RuleTranslator;
use nephoran_kafka_consumer::validate::Limits;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

fn properties() -> BTreeMap<String, String> {
    BTreeMap::from([("bootstrap.servers".to_string(), brokers())])
}

fn admin() -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers())
        // A metadata request for a missing topic must not create it.
        .set("allow.auto.create.topics", "false")
        .create()
        .unwrap()
}

fn exists(topic: &str) -> bool {
    let metadata = admin()
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
}

async fn ensure(topics: &TestTopics, rebuild: bool) -> anyhow::Result<()> {
    changelog::ensure_changelogs(
        &properties(),
        &topics.group,
        std::slice::from_ref(&topics.service_requests),
        1,
        rebuild,
    )
    .await
}

/// Commits offset 0 of partition 0 of `topic` for `group` as a plain consumer would.
fn commit_offset(group: &str, topic: &str) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(0))
        .unwrap();
    consumer.commit(&tpl, CommitMode::Sync).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changelog_that_is_not_compacted_is_refused_naming_it_and_the_fix() {
    let topics = TestTopics::create("clpolicy", 2).await;
    let name = changelog_topic(&topics.group, &topics.service_requests);
    let topic = NewTopic::new(&name, 2, TopicReplication::Fixed(1)).set("cleanup.policy", "delete");
    let created = admin()
        .create_topics([&topic], &AdminOptions::new())
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");

    let error = ensure(&topics, false).await.unwrap_err().to_string();
    assert!(error.contains(&name), "{error}");
    assert!(error.contains("cleanup.policy=\"delete\""), "{error}");
    assert!(
        error.contains("--add-config cleanup.policy=compact"),
        "{error}"
    );
    // DEDUP_REBUILD is about a missing changelog, not a deleting one.
    assert!(ensure(&topics, true).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_changelog_of_a_group_with_committed_offsets_needs_dedup_rebuild() {
    let topics = TestTopics::create("clrebuild", 2).await;
    let name = changelog_topic(&topics.group, &topics.service_requests);
    commit_offset(&topics.group, &topics.service_requests);

    let error = ensure(&topics, false).await.unwrap_err().to_string();
    assert!(error.contains(&name), "{error}");
    assert!(error.contains(&topics.group), "{error}");
    assert!(error.contains("DEDUP_REBUILD=true"), "{error}");
    assert!(!exists(&name), "refused, the changelog must not be created");

    ensure(&topics, true).await.unwrap();
    assert!(exists(&name));
    // Once it exists (compacted), the next start needs no override.
    ensure(&topics, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_group_starts_and_gets_a_compacted_changelog() {
    let topics = TestTopics::create("clnew", 2).await;
    let name = changelog_topic(&topics.group, &topics.service_requests);
    assert!(!exists(&name));
    ensure(&topics, false).await.unwrap();
    assert!(exists(&name));
    // The created changelog passes the compaction check on the next start.
    ensure(&topics, false).await.unwrap();
}

/// The worker itself runs the checks before it joins its group: with committed offsets
/// and no changelog it ends with the error; with `DEDUP_REBUILD` it starts.
#[tokio::test(flavor = "multi_thread")]
async fn the_worker_refuses_to_start_without_its_changelog_unless_told_to_rebuild() {
    let topics = TestTopics::create("clworker", 2).await;
    let name = changelog_topic(&topics.group, &topics.service_requests);
    commit_offset(&topics.group, &topics.service_requests);
    let dir = tempfile::tempdir().unwrap();

    let config = topics.config(dir.path());
    assert!(!config.dedup_rebuild, "DEDUP_REBUILD is off by default");
    let sink = IntentSink::start(config.intent_sink.clone(), config.kube.options())
        .await
        .unwrap();
    let (policy, _) = config.policy.policy(config.max_replicas).unwrap();
    let pipeline = Pipeline::new(
        RuleTranslator::new(config.max_replicas),
        sink,
        Limits::default(),
        policy,
    );
    let ended = tokio::time::timeout(
        Duration::from_secs(60),
        nephoran_kafka_consumer::worker::run(
            &config,
            pipeline,
            std::sync::Arc::new(Health::default()),
            std::future::pending::<()>(),
        ),
    )
    .await
    .expect("the worker refuses at start, before it would run");
    let error = format!("{:#}", ended.unwrap_err());
    assert!(error.contains(&name), "{error}");
    assert!(error.contains("DEDUP_REBUILD=true"), "{error}");

    let mut config = topics.config(dir.path());
    config.dedup_rebuild = true;
    let worker = Worker::start(config);
    worker.until_assigned().await;
    worker.stop().await;
    assert!(exists(&name));
}
