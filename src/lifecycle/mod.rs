//! The lifecycle comes back: a kube-runtime watcher on the NetworkIntents this service
//! manages (label `app.kubernetes.io/managed-by=nephoran-kafka-consumer`, all namespaces)
//! publishes `deployed` when the operator sets the `Deployed` condition True and `failed`
//! when it sets the phase `Failed`, once per generation ([`transition`]).
//!
//! - **Once across restarts**: after the broker acknowledges an event, the watcher patches
//!   [`transition::REPORTED_ANNOTATION`] onto the object with its own field manager
//!   ([`FIELD_MANAGER`]); a metadata change does not bump a CRD's generation, so the
//!   record never makes a transition of its own. A crash between the acknowledgement and
//!   the patch publishes the event again, under the same event id.
//! - **Once across replicas**: each replica reports the intents whose source partition
//!   (the `nephoran.com/source-partition` annotation, on the topic of the
//!   `nephoran.com/source-topic` label) it holds in the worker's lease table
//!   ([`Ownership`]); an intent it does not own now is looked at again every
//!   [`Settings::recheck`], so a partition that moves brings its pending transitions with
//!   it. Why this and not a Lease: docs/architecture.md.
//! - **Survives the API server**: kube-runtime's watcher re-lists after `410 Gone` and
//!   reconnects with its default backoff; each error is logged and counted.
//!
//! Metrics: `lifecycle_events_total{stage}` (published), `lifecycle_watch_errors_total`
//! (watch errors, each followed by a backoff and a retry), `lifecycle_record_failures_total`
//! (events published whose record could not be patched; retried).

pub mod transition;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use tracing::{info, warn};

use crate::apply::SinkSpec;
use crate::avro::outcome::OutcomeEncoding;
use crate::decode::{IdempotencyKey, KeySource};
use crate::intent::{NetworkIntent, IDEMPOTENCY_KEY_ANNOTATION};
use crate::kafka::publisher::{Acknowledged, Publisher, Sends};
use crate::lease::Held;
use crate::message::SourceRef;
use crate::outcome::{ErrorCode, Failure, IntentRef, OutcomeEvent, Stage};
use transition::Transition;

/// The intents this service manages: the label [`NetworkIntent::for_key`] sets.
pub const SELECTOR: &str = "app.kubernetes.io/managed-by=nephoran-kafka-consumer";

/// Where the request an intent was made from was read: set by
/// [`NetworkIntent::received_from`] on every intent.
pub use crate::intent::{
    SOURCE_OFFSET_ANNOTATION, SOURCE_PARTITION_ANNOTATION, SOURCE_TOPIC_LABEL,
};
/// Kafka's longest topic name: a longer source topic is not one.
const MAX_TOPIC_BYTES: usize = 249;
/// Annotation holding how the key was found (`header`, `cloudevents`, `payload`,
/// `derived`); optional, `header` when absent.
pub const KEY_SOURCE_ANNOTATION: &str = "nephoran.com/key-source";
/// The field manager of the watcher's own patches (the reported record), apart from the
/// sink's, so that neither's apply takes the other's fields.
pub const FIELD_MANAGER: &str = "nephoran-kafka-consumer-lifecycle";

/// Which intents this replica reports.
#[derive(Clone)]
pub enum Ownership {
    /// Every intent: a single replica, or a test.
    All,
    /// The intents whose source partition is in the worker's lease table now.
    Partitions(Held),
}

impl Ownership {
    fn owns(&self, source: &SourceRef) -> bool {
        match self {
            Ownership::All => true,
            Ownership::Partitions(held) => held
                .get(&(source.topic.clone(), source.partition))
                .is_some_and(|lease| lease.is_held()),
        }
    }
}

/// What the watcher needs besides its clients.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How often intents with a transition due but not reported (not owned here, or the
    /// publish or the record failed) are looked at again.
    pub recheck: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            recheck: Duration::from_secs(5),
        }
    }
}

/// Publishes one outcome event at a time and waits for the broker's acknowledgement.
pub struct Reporter {
    publisher: Publisher<()>,
    acknowledged: Acknowledged<()>,
}

impl Reporter {
    /// A producer of its own (idempotent, `acks=all`) for the outcomes topic.
    pub fn new(
        properties: &BTreeMap<String, String>,
        outcomes_topic: &str,
    ) -> anyhow::Result<Self> {
        // The watcher sends no dead letters; the publisher wants a topic for them anyway.
        let (publisher, acknowledged) =
            Publisher::new(properties, outcomes_topic, outcomes_topic, None)?;
        Ok(Self {
            publisher,
            acknowledged,
        })
    }

    /// Writes its events as `encoding` says, as the worker's are (JSON by default).
    pub fn with_outcome_encoding(mut self, encoding: OutcomeEncoding) -> Self {
        self.publisher.set_outcome_encoding(encoding);
        self
    }

    async fn publish(&mut self, event: &OutcomeEvent) -> anyhow::Result<()> {
        let sends = Sends::new(());
        self.publisher.outcome(&sends, event).await?;
        self.publisher.seal(sends);
        // One send at a time: what comes back is this one.
        let back = self
            .acknowledged
            .recv()
            .await
            .ok_or_else(|| anyhow::anyhow!("the outcome producer is gone"))?;
        back.result()?;
        Ok(())
    }
}

/// Whether the sink makes intents the watcher can follow: only objects on a Kubernetes
/// API server have a status. Exhaustive on purpose: a new sink must say.
pub fn follows(sink: &SinkSpec) -> bool {
    match sink {
        SinkSpec::Kube => true,
        SinkSpec::Dir(_) | SinkSpec::Stdout | SinkSpec::Discard => false,
    }
}

/// A watcher running beside the worker.
pub struct Handle {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Handle {
    /// Starts the watcher for the worker when its sink is one it [`follows`]: a client
    /// in-cluster or from `KUBECONFIG`, a producer of its own writing events as
    /// `encoding` says, and the intents of the partitions in `held` (the worker's lease
    /// table). `None` for other sinks.
    pub async fn for_worker(
        sink: &SinkSpec,
        properties: &BTreeMap<String, String>,
        outcomes_topic: &str,
        encoding: OutcomeEncoding,
        held: Held,
    ) -> anyhow::Result<Option<Self>> {
        if !follows(sink) {
            return Ok(None);
        }
        let client = Client::try_default()
            .await
            .map_err(|e| anyhow::anyhow!("lifecycle watcher: no Kubernetes client: {e}"))?;
        let reporter = Reporter::new(properties, outcomes_topic)?.with_outcome_encoding(encoding);
        Ok(Some(Self::spawn(
            client,
            reporter,
            Ownership::Partitions(held),
            Settings::default(),
        )))
    }

    /// Runs [`run`] on a task of its own until [`Handle::stop`].
    pub fn spawn(
        client: Client,
        reporter: Reporter,
        ownership: Ownership,
        settings: Settings,
    ) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(run(client, reporter, ownership, settings, async {
            let _ = stopped.await;
        }));
        Self { stop, task }
    }

    /// Stops the watcher and waits for it: an event being published is finished first.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task
            .await
            .map_err(|e| anyhow::anyhow!("lifecycle watcher task: {e}"))?
    }
}

/// Why an intent's transition cannot be reported at all (logged once per object version).
#[derive(Debug, thiserror::Error)]
#[error("NetworkIntent {namespace}/{name}: {what}")]
struct Unreportable {
    namespace: String,
    name: String,
    what: String,
}

/// Watches until `shutdown` resolves. Errors of the watch are retried with backoff; only
/// a failure to start returns.
pub async fn run(
    client: Client,
    mut reporter: Reporter,
    ownership: Ownership,
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let api: Api<NetworkIntent> = Api::all(client.clone());
    let config = watcher::Config::default().labels(SELECTOR);
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    let mut shutdown = std::pin::pin!(shutdown);
    // Intents with a transition due and not reported, by namespace and name: the latest
    // version seen. Bounded by the managed intents: a deleted one is dropped, and a
    // re-list (after 410 Gone, or a reconnect) starts it afresh.
    let mut pending: HashMap<(String, String), Arc<NetworkIntent>> = HashMap::new();
    let mut recheck = tokio::time::interval(settings.recheck);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    info!(selector = SELECTOR, "lifecycle watcher started");
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            next = events.next() => match next {
                None => return Ok(()),
                Some(Err(error)) => {
                    crate::meters::lifecycle_watch_errors().increment(1);
                    warn!(%error, "lifecycle watch failed; retrying with backoff");
                }
                Some(Ok(watcher::Event::Init)) => {
                    // The list that follows brings every current object again.
                    pending.clear();
                }
                Some(Ok(watcher::Event::InitDone)) => {}
                Some(Ok(watcher::Event::Delete(intent))) => {
                    pending.remove(&(intent.namespace().to_string(), intent.name().to_string()));
                }
                Some(Ok(watcher::Event::Apply(intent) | watcher::Event::InitApply(intent))) => {
                    let intent = Arc::new(intent);
                    let id = (intent.namespace().to_string(), intent.name().to_string());
                    pending.remove(&id);
                    if !report(&client, &mut reporter, &ownership, &intent).await {
                        pending.insert(id, intent);
                    }
                }
            },
            _ = recheck.tick() => {
                let due: Vec<_> = pending.drain().collect();
                for (id, intent) in due {
                    if !report(&client, &mut reporter, &ownership, &intent).await {
                        pending.insert(id, intent);
                    }
                }
            }
        }
    }
}

/// Publishes the transitions due on `intent` and records them. `false` when some are
/// left for later (not owned here, or a failure to retry).
async fn report(
    client: &Client,
    reporter: &mut Reporter,
    ownership: &Ownership,
    intent: &NetworkIntent,
) -> bool {
    let due = transition::due(intent);
    if due.is_empty() {
        return true;
    }
    let about = match about(intent) {
        Ok(about) => about,
        Err(error) => {
            // Not made by the sink (or edited): nothing to match it with downstream.
            warn!(%error, "lifecycle transition not reported");
            return true;
        }
    };
    if !ownership.owns(&about.source) {
        return false;
    }
    let mut current = intent.clone();
    for transition in due {
        let event = event(intent, &about, transition);
        if let Err(error) = reporter.publish(&event).await {
            warn!(%error, namespace = intent.namespace(), name = intent.name(), stage = transition.stage.as_str(), "lifecycle event not published; retrying");
            return false;
        }
        crate::meters::lifecycle_events(transition.stage.as_str()).increment(1);
        info!(
            namespace = intent.namespace(),
            name = intent.name(),
            stage = transition.stage.as_str(),
            generation = transition.generation,
            event_id = %event.event_id,
            "lifecycle event published"
        );
        let value = transition::recorded(&current, transition);
        if let Err(error) = record(client, intent, &value).await {
            crate::meters::lifecycle_record_failures().increment(1);
            warn!(%error, namespace = intent.namespace(), name = intent.name(), "lifecycle record not patched; the event may be published again (same event id)");
            return false;
        }
        current
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(transition::REPORTED_ANNOTATION.to_string(), value);
    }
    true
}

/// Patches the reported record onto the object (a merge patch of one annotation).
async fn record(client: &Client, intent: &NetworkIntent, value: &str) -> kube::Result<()> {
    let api: Api<NetworkIntent> = Api::namespaced(client.clone(), intent.namespace());
    let patch = serde_json::json!({
        "metadata": {"annotations": {transition::REPORTED_ANNOTATION: value}}
    });
    api.patch(
        intent.name(),
        &PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        },
        &Patch::Merge(&patch),
    )
    .await
    .map(drop)
    .or_else(|error| match &error {
        // Deleted since: nothing left to record, nor to report again.
        kube::Error::Api(status) if status.is_not_found() => Ok(()),
        _ => Err(error),
    })
}

/// What an event about the intent needs from its metadata.
struct About {
    key: IdempotencyKey,
    source: SourceRef,
}

fn about(intent: &NetworkIntent) -> Result<About, Unreportable> {
    let missing = |what: &str| Unreportable {
        namespace: intent.namespace().to_string(),
        name: intent.name().to_string(),
        what: what.to_string(),
    };
    let key = intent
        .annotation(IDEMPOTENCY_KEY_ANNOTATION)
        .filter(|k| !k.is_empty() && k.len() <= crate::decode::MAX_KEY_BYTES)
        .ok_or_else(|| missing("no usable idempotency-key annotation"))?;
    // A topic that is not a valid label value (over 63 characters, say) has no label;
    // an annotation of the same name, if the sink sets one, names it then.
    let topic = intent
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SOURCE_TOPIC_LABEL))
        .map(String::as_str)
        .or_else(|| intent.annotation(SOURCE_TOPIC_LABEL))
        .filter(|t| !t.is_empty() && t.len() <= MAX_TOPIC_BYTES)
        .ok_or_else(|| missing("no source-topic label or annotation"))?;
    let partition = intent
        .annotation(SOURCE_PARTITION_ANNOTATION)
        .and_then(|p| p.parse::<i32>().ok())
        .filter(|p| *p >= 0)
        .ok_or_else(|| missing("no usable source-partition annotation"))?;
    let offset = intent
        .annotation(SOURCE_OFFSET_ANNOTATION)
        .and_then(|o| o.parse::<i64>().ok())
        .filter(|o| *o >= 0)
        .ok_or_else(|| missing("no usable source-offset annotation"))?;
    let key_source = match intent.annotation(KEY_SOURCE_ANNOTATION) {
        Some("cloudevents") => KeySource::Cloudevents,
        Some("payload") => KeySource::Payload,
        Some("derived") => KeySource::Derived,
        _ => KeySource::Header,
    };
    Ok(About {
        key: IdempotencyKey {
            value: key.to_string(),
            source: key_source,
        },
        source: SourceRef {
            topic: topic.to_string(),
            partition,
            offset,
        },
    })
}

/// The outcome event of `transition`: id from the key, stage and generation; `failed`
/// carries the status message, escaped and bounded, as `deploy_failed`.
fn event(intent: &NetworkIntent, about: &About, transition: Transition) -> OutcomeEvent {
    let mut event = OutcomeEvent::new(&about.key, transition.stage, &about.source);
    event.event_id = crate::outcome::generation_event_id(
        &about.key.value,
        transition.stage,
        transition.generation,
    );
    event.intent = Some(IntentRef {
        name: intent.name().to_string(),
        namespace: intent.namespace().to_string(),
    });
    if transition.stage == Stage::Failed {
        let message = intent
            .status
            .as_ref()
            .and_then(|s| s.message.as_deref())
            .unwrap_or("the operator set phase Failed without a message");
        event.error = Some(Failure::new(
            ErrorCode::DeployFailed,
            crate::show::escaped(message),
        ));
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(annotations: &[(&str, &str)], topic: Option<&str>) -> NetworkIntent {
        let spec = serde_json::from_value(serde_json::json!({
            "intent": "deploy amf",
            "intentType": "deployment",
            "priority": "medium",
            "targetNamespace": "ran",
            "targetComponents": ["amf"],
        }))
        .unwrap();
        let mut intent = NetworkIntent::for_key("k1", spec);
        let meta = &mut intent.metadata;
        for (k, v) in annotations {
            meta.annotations
                .get_or_insert_default()
                .insert(k.to_string(), v.to_string());
        }
        if let Some(topic) = topic {
            meta.labels
                .get_or_insert_default()
                .insert(SOURCE_TOPIC_LABEL.into(), topic.into());
        }
        intent
    }

    #[test]
    fn the_selector_matches_the_label_intents_get() {
        let labels = intent(&[], None).metadata.labels.unwrap();
        let (label, value) = SELECTOR.split_once('=').unwrap();
        assert_eq!(labels.get(label).map(String::as_str), Some(value));
    }

    #[test]
    fn a_topic_too_long_for_a_label_may_come_as_an_annotation() {
        let long = "t".repeat(100);
        let intent = intent(
            &[
                (SOURCE_TOPIC_LABEL, &long),
                (SOURCE_PARTITION_ANNOTATION, "0"),
                (SOURCE_OFFSET_ANNOTATION, "1"),
            ],
            None,
        );
        assert_eq!(about(&intent).unwrap().source.topic, long);
    }

    #[test]
    fn the_source_comes_from_the_sinks_annotations() {
        let good = intent(
            &[
                (SOURCE_PARTITION_ANNOTATION, "3"),
                (SOURCE_OFFSET_ANNOTATION, "42"),
                (KEY_SOURCE_ANNOTATION, "derived"),
            ],
            Some("service-requests"),
        );
        let about = about(&good).unwrap();
        assert_eq!(about.key.value, "k1");
        assert_eq!(about.key.source, KeySource::Derived);
        assert_eq!(
            about.source,
            SourceRef {
                topic: "service-requests".into(),
                partition: 3,
                offset: 42
            }
        );
    }

    #[test]
    fn unusable_source_annotations_are_errors_not_panics() {
        for (partition, offset, topic) in [
            ("-1", "1", Some("t")),
            ("x", "1", Some("t")),
            ("99999999999", "1", Some("t")),
            ("1", "-5", Some("t")),
            ("1", "1", None),
            ("1", "1", Some("")),
        ] {
            let bad = intent(
                &[
                    (SOURCE_PARTITION_ANNOTATION, partition),
                    (SOURCE_OFFSET_ANNOTATION, offset),
                ],
                topic,
            );
            let error = about(&bad).err().expect("refused").to_string();
            assert!(error.starts_with("NetworkIntent ran/"), "{error}");
        }
    }

    #[test]
    fn a_failed_event_escapes_and_bounds_the_status_message() {
        let mut failed = intent(
            &[
                (SOURCE_PARTITION_ANNOTATION, "0"),
                (SOURCE_OFFSET_ANNOTATION, "1"),
            ],
            Some("t"),
        );
        failed.status = Some(crate::intent::NetworkIntentStatus {
            message: Some(format!("bad\u{1b}[2J{}", "x".repeat(5000))),
            ..Default::default()
        });
        let transition = Transition {
            stage: Stage::Failed,
            generation: 4,
        };
        let event = event(&failed, &about(&failed).unwrap(), transition);
        let error = event.error.unwrap();
        assert_eq!(error.code, ErrorCode::DeployFailed);
        assert!(error.message.starts_with("bad\\u{1b}[2J"));
        assert!(error.message.len() <= crate::outcome::MAX_FAILURE_MESSAGE_BYTES);
        assert_eq!(
            event.event_id,
            crate::outcome::generation_event_id("k1", Stage::Failed, 4)
        );
    }
}
