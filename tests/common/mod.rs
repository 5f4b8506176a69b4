//! Fixtures for the integration tests: a real broker (started by `scripts/test`, address
//! in `KAFKA_BROKERS`), topics of their own per test, a producer, an outcome reader, a
//! worker running in-process, and the group's committed offsets.
#![allow(dead_code)] // each test binary uses its own subset

pub mod binary;
pub mod broker;
pub mod invariants;
pub mod kubeapi;
pub mod openai;
pub mod proxy;
pub mod raw;
pub mod recorder;
pub mod registry;
pub mod switched;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use clap::Parser;
use nephoran_kafka_consumer::apply::IntentSink;
use nephoran_kafka_consumer::config::Config;
use nephoran_kafka_consumer::health::Health;
use nephoran_kafka_consumer::kafka::admin;
use nephoran_kafka_consumer::outcome::OutcomeEvent;
use nephoran_kafka_consumer::pipeline::Pipeline;
use nephoran_kafka_consumer::request::Request;
use nephoran_kafka_consumer::translate::{self, RuleTranslator, Translation, Translator};
use nephoran_kafka_consumer::validate::Limits;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Upper bound on any wait in a test: a hang guard, never a speed assertion.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// Waits until `ready` holds, checking every 50 ms (a worker's health and metrics cannot
/// be awaited from outside); panics after [`PATIENCE`] naming `what`.
pub async fn until(what: &str, ready: impl Fn() -> bool) {
    let waited = tokio::time::timeout(PATIENCE, async {
        while !ready() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{what}: not within {PATIENCE:?}");
}

/// The NetworkIntent a `dir:` sink wrote under `dir` as `<namespace>/<name>.yaml`.
pub fn read_intent(
    dir: &Path,
    namespace: &str,
    name: &str,
) -> nephoran_kafka_consumer::intent::NetworkIntent {
    let path = dir.join(namespace).join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} should exist: {e}", path.display()));
    serde_yaml::from_str(&text).expect("intent YAML")
}

/// Group settings that make a new group join quickly on the test broker.
pub const FAST_GROUP: &[&str] = &["--kafka-config", "session.timeout.ms=6000"];

pub fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

fn client() -> ClientConfig {
    client_of(&brokers())
}

fn client_of(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    config
}

/// A test's own topics and group, named uniquely so tests run side by side.
#[derive(Debug, Clone)]
pub struct TestTopics {
    pub service_requests: String,
    pub network_events: String,
    pub outcomes: String,
    pub dlq: String,
    pub group: String,
    pub partitions: i32,
    /// The bootstrap servers of the cluster they are on.
    pub brokers: String,
}

impl TestTopics {
    pub async fn create(name: &str, partitions: i32) -> Self {
        Self::create_on(&brokers(), name, partitions).await
    }

    /// Topics on the cluster at `brokers` (a test's private broker).
    pub async fn create_on(brokers: &str, name: &str, partitions: i32) -> Self {
        let topics = Self::named_on(brokers, name, partitions);
        let properties = [("bootstrap.servers".to_string(), brokers.to_string())].into();
        admin::create_topics(&properties, &topics.all(), partitions, 1)
            .await
            .expect("create test topics (is the broker running? scripts/test starts it)");
        topics
    }

    /// Unique names on the cluster at `brokers`, without creating anything (for a cluster
    /// whose topics are made otherwise, such as librdkafka's mock cluster).
    pub fn named_on(brokers: &str, name: &str, partitions: i32) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{name}-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default()
        );
        Self {
            service_requests: format!("service-requests-{id}"),
            network_events: format!("network-events-{id}"),
            outcomes: format!("intent-outcomes-{id}"),
            dlq: format!("intent-dlq-{id}"),
            group: format!("group-{id}"),
            partitions,
            brokers: brokers.to_string(),
        }
    }

    pub fn all(&self) -> Vec<String> {
        vec![
            self.service_requests.clone(),
            self.network_events.clone(),
            self.outcomes.clone(),
            self.dlq.clone(),
        ]
    }

    pub fn inputs(&self) -> [&str; 2] {
        [&self.network_events, &self.service_requests]
    }

    /// Command-line arguments that point a worker at these topics.
    pub fn args(&self, sink_dir: &Path) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--brokers".into(),
            self.brokers.clone(),
            "--topics".into(),
            format!("{},{}", self.network_events, self.service_requests),
            "--outcomes-topic".into(),
            self.outcomes.clone(),
            "--dlq-topic".into(),
            self.dlq.clone(),
            "--group".into(),
            self.group.clone(),
            "--intent-sink".into(),
            format!("dir:{}", sink_dir.display()),
            "--metrics-addr".into(),
            "127.0.0.1:0".into(),
            "--shutdown-timeout".into(),
            "20s".into(),
            // Tests send many KPI events for one function; those about the closed-loop
            // cool-down set it.
            "--event-cooldown".into(),
            "0s".into(),
        ];
        args.extend(FAST_GROUP.iter().map(|s| s.to_string()));
        args
    }

    pub fn config(&self, sink_dir: &Path) -> Config {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: Config,
        }
        let args = std::iter::once("worker".to_string()).chain(self.args(sink_dir));
        Wrapper::try_parse_from(args).expect("test config").config
    }
}

/// A worker running in this process, stopped by [`Worker::stop`].
pub struct Worker {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
    pub health: Arc<Health>,
}

impl Worker {
    /// A worker with the translator and the policy its configuration asks for (the rules,
    /// or an LLM).
    pub fn start(config: Config) -> Self {
        let translator = translate::configured(&config.llm, Limits::default()).expect("translator");
        Self::start_with(config, translator)
    }

    pub fn start_with<T: Translator + 'static>(config: Config, translator: T) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let health = Arc::new(Health::default());
        let worker_health = health.clone();
        let (policy, _) = config
            .policy
            .policy(config.max_replicas)
            .expect("test policy settings");
        let task = tokio::spawn(async move {
            let sink = IntentSink::start(config.intent_sink.clone(), config.kube.options()).await?;
            let pipeline = Pipeline::new(translator, sink, Limits::default(), policy)
                .with_event_cooldown(config.event_cooldown);
            let shutdown = async {
                let _ = stopped.await;
            };
            nephoran_kafka_consumer::worker::run(&config, pipeline, worker_health, shutdown).await
        });
        Self {
            stop: Some(stop),
            task,
            health,
        }
    }

    /// Waits until the worker has partitions (its group has finished a rebalance).
    pub async fn until_assigned(&self) {
        tokio::time::timeout(PATIENCE, async {
            while self.health.assigned() == 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the worker gets partitions within the patience");
    }

    /// Asks the worker to shut down gracefully and waits until it has left the group.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(PATIENCE, &mut self.task)
            .await
            .expect("worker stops within the patience")
            .expect("worker task")
            .expect("worker ends without error");
    }
}

pub fn producer() -> FutureProducer {
    producer_on(&brokers())
}

pub fn producer_on(brokers: &str) -> FutureProducer {
    client_of(brokers)
        .set("enable.idempotence", "true")
        .create()
        .expect("producer")
}

/// Produces one message and waits for its acknowledgement.
pub async fn produce(
    producer: &FutureProducer,
    topic: &str,
    key: Option<&str>,
    payload: &[u8],
    headers: &[(&str, &str)],
) {
    let mut owned = OwnedHeaders::new();
    for (k, v) in headers {
        owned = owned.insert(Header {
            key: k,
            value: Some(*v),
        });
    }
    let mut record = FutureRecord::to(topic).payload(payload).headers(owned);
    if let Some(key) = key {
        record = record.key(key);
    }
    producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(e, _)| e)
        .expect("produce");
}

/// Produces many keyed messages at once (not one round trip each) and returns each
/// partition's end offset from the delivery reports: the development broker's high
/// watermark undercounts batched writes.
pub async fn produce_all(
    producer: &FutureProducer,
    topic: &str,
    partitions: i32,
    messages: impl IntoIterator<Item = (String, Vec<u8>)>,
) -> Vec<i64> {
    let mut deliveries = Vec::new();
    for (key, payload) in messages {
        let record = FutureRecord::to(topic).key(&key).payload(&payload);
        deliveries.push(
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("enqueue"),
        );
    }
    let mut ends = vec![0; partitions as usize];
    for delivery in deliveries {
        let delivery = delivery
            .await
            .expect("delivery")
            .map_err(|(e, _)| e)
            .expect("produce");
        let end = &mut ends[delivery.partition as usize];
        *end = (*end).max(delivery.offset + 1);
    }
    ends
}

/// Reads a whole topic from the beginning, without a group.
pub struct TopicReader {
    consumer: StreamConsumer,
}

impl TopicReader {
    pub fn new(topic: &str, partitions: i32) -> Self {
        Self::new_on(&brokers(), topic, partitions)
    }

    pub fn new_on(brokers: &str, topic: &str, partitions: i32) -> Self {
        let consumer: StreamConsumer = client_of(brokers)
            .set("group.id", format!("reader-{topic}"))
            .set("enable.auto.commit", "false")
            .create()
            .expect("reader");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .expect("tpl");
        }
        consumer.assign(&tpl).expect("assign");
        Self { consumer }
    }

    /// The next message, or None when nothing arrives for `quiet`.
    pub async fn next(&self, quiet: Duration) -> Option<OwnedMessage> {
        match tokio::time::timeout(quiet, self.consumer.recv()).await {
            Ok(record) => Some(record.expect("read").detach()),
            Err(_) => None,
        }
    }
}

/// Outcome events read from the outcomes topic, grouped by idempotency key. Each record
/// is read in its own format (JSON, single-object Avro, Confluent-framed Avro with the
/// writer schema from the registry given to [`Outcomes::with_registry`]).
pub struct Outcomes {
    reader: TopicReader,
    registry: Option<nephoran_kafka_consumer::avro::registry::Registry>,
    pub by_key: HashMap<String, Vec<OutcomeEvent>>,
    /// Every event in the order read (publication order, for a one-partition topic).
    pub in_order: Vec<OutcomeEvent>,
    /// The (topic, partition, offset) of every message with a terminal event.
    terminal: HashSet<(String, i32, i64)>,
}

impl Outcomes {
    pub fn new(topics: &TestTopics) -> Self {
        Self {
            reader: TopicReader::new_on(&topics.brokers, &topics.outcomes, topics.partitions),
            registry: None,
            by_key: HashMap::new(),
            in_order: Vec::new(),
            terminal: HashSet::new(),
        }
    }

    /// Reads events until every key in `keys` has a terminal stage.
    pub async fn until_terminal<'a>(&mut self, keys: impl IntoIterator<Item = &'a str>) {
        let keys: Vec<&str> = keys.into_iter().collect();
        let done = |by_key: &HashMap<String, Vec<OutcomeEvent>>| {
            keys.iter().all(|k| {
                by_key
                    .get(*k)
                    .is_some_and(|events| events.iter().any(|e| e.stage.is_terminal()))
            })
        };
        while !done(&self.by_key) {
            let Some(message) = self.reader.next(PATIENCE).await else {
                let missing: Vec<_> = keys
                    .iter()
                    .filter(|k| {
                        !self
                            .by_key
                            .get(**k)
                            .is_some_and(|e| e.iter().any(|e| e.stage.is_terminal()))
                    })
                    .take(10)
                    .collect();
                panic!("no terminal outcome for {missing:?} within {PATIENCE:?}");
            };
            self.push(&message).await;
        }
    }

    /// Reads events until `done` says so.
    pub async fn until(&mut self, done: impl Fn(&Self) -> bool) {
        while !done(self) {
            let Some(message) = self.reader.next(PATIENCE).await else {
                panic!("the outcomes awaited did not arrive within {PATIENCE:?}");
            };
            self.push(&message).await;
        }
    }

    /// Reads events until `n` distinct messages have a terminal stage.
    pub async fn until_terminal_messages(&mut self, n: usize) {
        while self.terminal_messages().len() < n {
            let Some(message) = self.reader.next(PATIENCE).await else {
                panic!(
                    "{} of {n} messages have a terminal outcome after {PATIENCE:?}",
                    self.terminal_messages().len()
                );
            };
            self.push(&message).await;
        }
    }

    /// Reads events until `n` distinct messages have a terminal stage, or until nothing
    /// arrives for [`PATIENCE`]: then `Err` with how many had one.
    pub async fn try_until_terminal_messages(&mut self, n: usize) -> Result<(), usize> {
        while self.terminal_messages().len() < n {
            let Some(message) = self.reader.next(PATIENCE).await else {
                return Err(self.terminal_messages().len());
            };
            self.push(&message).await;
        }
        Ok(())
    }

    /// The (topic, partition, offset) of every message with a terminal event.
    pub fn terminal_messages(&self) -> &HashSet<(String, i32, i64)> {
        &self.terminal
    }

    /// Events of `stage`, over all keys.
    pub fn count(&self, stage: &str) -> usize {
        self.by_key
            .values()
            .flatten()
            .filter(|e| e.stage.as_str() == stage)
            .count()
    }

    /// Reads whatever else arrives until the topic has been quiet for `quiet`.
    pub async fn drain(&mut self, quiet: Duration) {
        while let Some(message) = self.reader.next(quiet).await {
            self.push(&message).await;
        }
    }

    /// Reads Confluent-framed outcomes with writer schemas from the registry at `url`.
    pub fn with_registry(topics: &TestTopics, url: &str) -> Self {
        let args = nephoran_kafka_consumer::config::RegistryArgs {
            schema_registry_url: Some(url.to_string()),
            schema_registry_basic_auth_file: None,
            schema_registry_timeout: Duration::from_secs(10),
            schema_registry_cache_schemas: 10,
        };
        Self {
            registry: nephoran_kafka_consumer::avro::registry::Registry::from_args(&args)
                .expect("registry settings"),
            ..Self::new(topics)
        }
    }

    async fn push(&mut self, message: &OwnedMessage) {
        use nephoran_kafka_consumer::avro::outcome::{decode, frame, Framing};
        let framing = frame(message.payload().expect("payload")).expect("an outcome record");
        let writer = match (framing, &self.registry) {
            (Framing::Confluent { schema_id, .. }, Some(registry)) => Some(
                registry
                    .writer_schema(schema_id)
                    .await
                    .expect("the outcome's writer schema"),
            ),
            _ => None,
        };
        let event: OutcomeEvent = decode(framing, writer.as_deref()).expect("an outcome event");
        assert_eq!(
            message.key(),
            Some(event.idempotency_key.as_bytes()),
            "outcomes are keyed by idempotency key"
        );
        if event.stage.is_terminal() {
            let source = &event.source;
            self.terminal
                .insert((source.topic.clone(), source.partition, source.offset));
        }
        self.in_order.push(event.clone());
        self.by_key
            .entry(event.idempotency_key.clone())
            .or_default()
            .push(event);
    }

    pub fn stages(&self, key: &str) -> Vec<&'static str> {
        self.by_key
            .get(key)
            .map(|events| events.iter().map(|e| e.stage.as_str()).collect())
            .unwrap_or_default()
    }

    pub fn terminal(&self, key: &str) -> Vec<&OutcomeEvent> {
        self.by_key
            .get(key)
            .map(|events| events.iter().filter(|e| e.stage.is_terminal()).collect())
            .unwrap_or_default()
    }
}

/// The group's committed offset and the log end offset of each partition of `topic`.
pub fn committed_and_end(group: &str, topic: &str, partitions: i32) -> Vec<(i64, i64)> {
    committed_and_end_on(&brokers(), group, topic, partitions)
}

/// [`committed_and_end`] on the cluster at `brokers`.
pub fn committed_and_end_on(
    brokers: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Vec<(i64, i64)> {
    let consumer: BaseConsumer = client_of(brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("offset consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    (0..partitions)
        .map(|p| {
            let committed = match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            };
            let (_, end) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks");
            (committed, end)
        })
        .collect()
}

/// The value of header `name` as text.
pub fn header(message: &OwnedMessage, name: &str) -> Option<String> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The rule translator, counting its calls per idempotency key (the payload's).
#[derive(Clone)]
pub struct CountingTranslator {
    inner: RuleTranslator,
    pub calls: Arc<Mutex<HashMap<String, usize>>>,
}

impl CountingTranslator {
    pub fn new() -> Self {
        Self {
            inner: RuleTranslator::new(100),
            calls: Arc::default(),
        }
    }

    pub fn calls(&self) -> HashMap<String, usize> {
        self.calls.lock().expect("calls").clone()
    }
}

impl Translator for CountingTranslator {
    async fn translate(&self, request: &Request) -> Translation {
        let key = request.payload_key().unwrap_or("(none)").to_string();
        *self.calls.lock().expect("calls").entry(key).or_default() += 1;
        Translation::rules(self.inner.translate_sync(request))
    }
}

/// Number of intent files under `dir`.
pub fn intent_files(dir: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            n += intent_files(&path);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            n += 1;
        }
    }
    n
}

/// A translator for scheduling tests: the rule translator, slowed down. Requests whose
/// idempotency key starts with a held prefix wait until [`SlowTranslator::release`];
/// others sleep a pseudo-random time up to `max_delay`. Records every call.
#[derive(Clone)]
pub struct SlowTranslator {
    inner: RuleTranslator,
    held_prefix: Option<String>,
    released: tokio::sync::watch::Receiver<bool>,
    release: Arc<tokio::sync::watch::Sender<bool>>,
    max_delay: Duration,
    pub log: Arc<Mutex<TranslationLog>>,
}

/// What a [`SlowTranslator`] saw.
#[derive(Debug, Default)]
pub struct TranslationLog {
    /// (idempotency key, started) in call order; `started` is false for the end.
    pub calls: Vec<(String, bool)>,
    pub running: usize,
    pub most_running: usize,
}

impl SlowTranslator {
    pub fn new(max_delay: Duration, held_prefix: Option<&str>) -> Self {
        let (release, released) = tokio::sync::watch::channel(false);
        Self {
            inner: RuleTranslator::new(100),
            held_prefix: held_prefix.map(str::to_string),
            released,
            release: Arc::new(release),
            max_delay,
            log: Arc::default(),
        }
    }

    /// Lets every held request (and every later one) through.
    pub fn release(&self) {
        self.release.send_replace(true);
    }

    /// Keys whose translation started, in order.
    pub fn started(&self) -> Vec<String> {
        let log = self.log.lock().expect("log");
        log.calls
            .iter()
            .filter(|(_, started)| *started)
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub fn most_running(&self) -> usize {
        self.log.lock().expect("log").most_running
    }

    fn note(&self, key: &str, started: bool) {
        let mut log = self.log.lock().expect("log");
        log.calls.push((key.to_string(), started));
        if started {
            log.running += 1;
            log.most_running = log.most_running.max(log.running);
        } else {
            log.running -= 1;
        }
    }
}

impl Translator for SlowTranslator {
    async fn translate(&self, request: &Request) -> Translation {
        let key = request.payload_key().unwrap_or("(none)").to_string();
        self.note(&key, true);
        if self
            .held_prefix
            .as_deref()
            .is_some_and(|prefix| key.starts_with(prefix))
        {
            let mut released = self.released.clone();
            let _ = released.wait_for(|released| *released).await;
        } else if !self.max_delay.is_zero() {
            use std::hash::{BuildHasher, RandomState};
            let random = RandomState::new().hash_one(&key);
            let delay = random % self.max_delay.as_millis().max(1) as u64;
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        self.note(&key, false);
        Translation::rules(self.inner.translate_sync(request))
    }
}

/// Waits until the group's committed offset of `topic[partition]` satisfies `wanted`,
/// polling (a commit cannot be awaited from outside the group); returns it.
pub async fn committed_offset(
    group: &str,
    topic: &str,
    partition: i32,
    wanted: impl Fn(i64) -> bool,
) -> i64 {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let group = group.to_string();
        let topic_name = topic.to_string();
        let committed = tokio::task::spawn_blocking(move || {
            committed_and_end(&group, &topic_name, partition + 1)[partition as usize].0
        })
        .await
        .expect("committed offsets");
        if wanted(committed) {
            return committed;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "committed offset of {topic}[{partition}] is still {committed} after {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A local port free now (another process may take it before it is used).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
