//! The stages one message goes through, in order: decode, check the request, translate,
//! validate (shape), policy (what may be applied), the closed-loop cool-down, apply.
//!
//! Kafka-agnostic: a message comes in as an [`InboundMessage`], and what comes out is the
//! list of outcome events to publish and, for a message that cannot be acted upon, the
//! reason to put on its dead letter. Processing is split in two steps, [`Pipeline::receive`]
//! (cheap, synchronous: decode and the `received` event) and [`Pipeline::complete`] (the
//! slow part), so that `received` is published before translation starts and a scheduler
//! can sit between the two.
//!
//! A sink that is down does not end messages: a transient apply error is retried, with
//! backoff, for as long as the message's partition is held, and the sink's state
//! ([`SinkStatus`]) tells the worker to pause its partitions meanwhile. Only a permanent
//! error ends a message as `failed` (or `rejected`).

use std::sync::Arc;
use std::time::Duration;

use backoff::backoff::Backoff;
use backoff::ExponentialBackoff;
use metrics::Counter;

use crate::apply::{ApplyError, IntentSink, SinkStatus};
use crate::avro::read::WriterSchemas;
use crate::avro::registry::{Registry, SchemaAnswer};
use crate::cooldown::Cooldown;
use crate::decode::{decode_with, Fingerprint, IdempotencyKey, InputFormat};
use crate::intent::NetworkIntent;
use crate::lease::{Fenced, Lease};
use crate::message::{InboundMessage, SourceRef};
use crate::outcome::{ErrorCode, Failure, IntentRef, OutcomeEvent, Stage};
use crate::policy::Policy;
use crate::request::Request;
use crate::translate::Translator;
use crate::validate::{check_request, validate, Limits};

/// The first wait before an apply that failed transiently is tried again; it doubles
/// (with jitter) up to [`APPLY_RETRY_MAX_INTERVAL`].
pub const APPLY_RETRY_FIRST_INTERVAL: Duration = Duration::from_millis(100);

/// The longest wait between two tries of an apply while the sink is down. A message also
/// tries again as soon as another apply succeeds (the sink may be back), but not sooner
/// than [`APPLY_RETRY_FIRST_INTERVAL`] after its last try.
pub const APPLY_RETRY_MAX_INTERVAL: Duration = Duration::from_secs(30);

/// A decoded message waiting to be completed.
#[derive(Debug, Clone)]
pub struct Received {
    pub key: IdempotencyKey,
    pub source: SourceRef,
    pub request: Result<Request, Failure>,
    /// The payload's fingerprint, which the key is claimed with ([`crate::decode::Decoded`]).
    pub fingerprint: Fingerprint,
    /// False when the message must not claim its key in the dedup state.
    pub claims_key: bool,
}

/// What processing a message produced, in publication order.
#[derive(Debug, Clone)]
pub struct Completion {
    /// Stages after `received`; the last one is terminal.
    pub outcomes: Vec<OutcomeEvent>,
    /// Set when the message goes to the dead-letter topic, with the reason.
    pub dead_letter: Option<Failure>,
}

pub struct Pipeline<T> {
    translator: T,
    sink: IntentSink,
    /// Up or down, as the applies find it; the worker follows it.
    sink_status: SinkStatus,
    limits: Limits,
    policy: Policy,
    /// Closed-loop scale-outs fold within it; off unless [`Pipeline::with_event_cooldown`].
    cooldown: Cooldown,
    /// `messages_decoded_total`, one handle per format, in [`InputFormat::ALL`]'s order.
    decoded: [Counter; InputFormat::ALL.len()],
    /// Where Confluent-framed Avro records find their writer schemas; none without
    /// `SCHEMA_REGISTRY_URL` ([`Pipeline::with_registry`]).
    registry: Option<Arc<Registry>>,
}

impl<T: Translator> Pipeline<T> {
    pub fn new(translator: T, sink: IntentSink, limits: Limits, policy: Policy) -> Self {
        Self {
            translator,
            sink,
            sink_status: SinkStatus::default(),
            limits,
            policy,
            cooldown: Cooldown::default(),
            decoded: InputFormat::ALL.map(crate::meters::messages_decoded),
            registry: None,
        }
    }

    /// Reads Confluent-framed Avro records with writer schemas from `registry`.
    pub fn with_registry(mut self, registry: Option<Arc<Registry>>) -> Self {
        self.registry = registry;
        self
    }

    /// The schema registry, if one is configured.
    pub fn registry(&self) -> Option<&Arc<Registry>> {
        self.registry.as_ref()
    }

    /// The schema id `message` needs fetched from the registry before it is received
    /// ([`crate::decode::needs_writer_schema`]).
    pub fn needs_writer_schema(&self, message: &InboundMessage) -> Option<u32> {
        crate::decode::needs_writer_schema(message, self.registry.as_deref())
    }

    /// Whether the sink is up, as the applies find it.
    pub fn sink_status(&self) -> &SinkStatus {
        &self.sink_status
    }

    /// Folds closed-loop scale-outs of one network function within `period` into the
    /// first (`EVENT_COOLDOWN`; zero: off). See [`crate::cooldown`].
    pub fn with_event_cooldown(mut self, period: Duration) -> Self {
        self.cooldown = Cooldown::new(period, crate::cooldown::DEFAULT_MAX_TARGETS);
        self
    }

    /// Decodes a message and makes its `received` event.
    pub fn receive(&self, message: &InboundMessage) -> (Received, OutcomeEvent) {
        self.receive_fetched(message, None)
    }

    /// [`Pipeline::receive`], with the registry's answer for one schema id just fetched
    /// (a schema, or why there is none) for a Confluent-framed record that waited for it.
    pub fn receive_fetched(
        &self,
        message: &InboundMessage,
        fetched: Option<(u32, &SchemaAnswer)>,
    ) -> (Received, OutcomeEvent) {
        let schemas = WriterSchemas {
            registry: self.registry.as_deref(),
            fetched,
        };
        let decoded = decode_with(message, &schemas);
        if let Some(format) = decoded.format {
            let at = InputFormat::ALL.iter().position(|&f| f == format);
            if let Some(counter) = at.and_then(|at| self.decoded.get(at)) {
                counter.increment(1);
            }
        }
        let mut event = OutcomeEvent::new(&decoded.key, Stage::Received, &message.source);
        event.message_type = decoded.request.as_ref().ok().map(Request::message_type);
        let received = Received {
            key: decoded.key,
            source: message.source.clone(),
            request: decoded.request,
            fingerprint: decoded.fingerprint,
            claims_key: decoded.claims_key,
        };
        (received, event)
    }

    /// Checks, translates, validates, judges by the policy, holds closed-loop scale-outs to
    /// the cool-down and applies a received message.
    /// Nothing is applied once `lease` has ended (the partition was handed over during the
    /// translation), and a translation still running then is dropped; so is an apply
    /// waiting for a sink that is down.
    pub async fn complete(&self, received: &Received, lease: &Lease) -> Result<Completion, Fenced> {
        let Received {
            key,
            source,
            request,
            ..
        } = received;
        let event = |stage| OutcomeEvent::new(key, stage, source);
        let request = match request {
            Ok(request) => request,
            Err(failure) => return Ok(rejected(event(Stage::Rejected), failure.clone())),
        };
        let message_type = Some(request.message_type());
        // What the producer wrote, before any translator reads (or folds) it.
        if let Err(invalid) = check_request(request, &self.limits) {
            let mut rejection = event(Stage::Rejected);
            rejection.message_type = message_type;
            return Ok(rejected(
                rejection,
                Failure::new(ErrorCode::InvalidIntent, invalid.to_string()),
            ));
        }

        // A translation still waiting when the partition is handed over is dropped.
        let translation = tokio::select! {
            // The translation first: one that is ready at once never looks at the lease.
            biased;
            translation = self.translator.translate(request) => translation,
            () = lease.ended() => return Err(Fenced),
        };
        let translator = Some(translation.by);
        let spec = match translation.result {
            Ok(spec) => spec,
            Err(e) => {
                let mut rejection = event(Stage::Rejected);
                rejection.message_type = message_type;
                rejection.translator = translator;
                return Ok(rejected(
                    rejection,
                    Failure::new(ErrorCode::Untranslatable, e.reason),
                ));
            }
        };
        let intent = NetworkIntent::for_key(&key.value, spec)
            .claimed_by(&received.fingerprint)
            .received_from(source);
        let intent_ref = IntentRef {
            name: intent.name().to_string(),
            namespace: intent.namespace().to_string(),
        };
        let described = |stage| {
            let mut e = event(stage);
            e.message_type = message_type;
            e.translator = translator;
            e.intent = Some(intent_ref.clone());
            e
        };
        if let Err(invalid) = validate(&intent, &self.limits) {
            return Ok(rejected(
                described(Stage::Rejected),
                Failure::new(ErrorCode::InvalidIntent, invalid.to_string()),
            ));
        }
        // The policy reads the intent alone, whichever translator made it.
        if let Err(denial) = self.policy.check(&intent.spec) {
            return Ok(rejected(
                described(Stage::Rejected),
                Failure::new(ErrorCode::PolicyDenied, denial.to_string()),
            ));
        }
        let translated = described(Stage::Translated);
        if !lease.is_held() {
            return Err(Fenced);
        }
        // A closed-loop scale-out of a function already scaled out within the cool-down
        // is not applied: it folds into the first (`original` names it).
        let cooldown = match self.cooldown.claim(request, &intent, source) {
            Ok(ticket) => ticket,
            Err(into) => {
                let mut folded = described(Stage::Duplicate);
                folded.intent = None;
                folded.original = Some(into);
                return Ok(Completion {
                    outcomes: vec![folded],
                    dead_letter: None,
                });
            }
        };
        Ok(match self.apply_while_held(&intent, source, lease).await? {
            Ok(()) => {
                cooldown.applied();
                Completion {
                    outcomes: vec![translated, described(Stage::Applied)],
                    dead_letter: None,
                }
            }
            // Another payload claimed this key (on another partition, or before its dedup
            // entry expired): the producer's conflict, not a failure of the service.
            Err(e) if e.is_key_conflict() => rejected(
                described(Stage::Rejected),
                Failure::new(ErrorCode::IdempotencyKeyConflict, e.to_string()),
            ),
            Err(e) => {
                let failure = Failure::new(e.code(), e.to_string());
                let mut failed = described(Stage::Failed);
                failed.error = Some(failure.clone());
                let mut completion = rejected(failed, failure);
                completion.outcomes.insert(0, translated);
                completion
            }
        })
    }

    /// Applies `intent`, waiting out a sink that is down: a transient error is tried
    /// again, with backoff, for as long as `lease` is held (`Err(Fenced)` once it ends:
    /// the next owner applies it), the message counted meanwhile as waiting for the sink
    /// in `source`'s partition; a permanent error is the answer. The lease is checked
    /// before every attempt: a partition handed over while an attempt was under way (a
    /// slow API server) gets no further attempt from this worker.
    async fn apply_while_held(
        &self,
        intent: &NetworkIntent,
        source: &SourceRef,
        lease: &Lease,
    ) -> Result<Result<(), ApplyError>, Fenced> {
        let status = &self.sink_status;
        let mut backoff = ExponentialBackoff {
            initial_interval: APPLY_RETRY_FIRST_INTERVAL,
            max_interval: APPLY_RETRY_MAX_INTERVAL,
            max_elapsed_time: None,
            ..ExponentialBackoff::default()
        };
        let mut successes = status.successes();
        // Held while this message waits for the sink; dropped with the future if fenced.
        let mut waiting = None;
        loop {
            if !lease.is_held() {
                return Err(Fenced);
            }
            match self.sink.apply(intent).await {
                Ok(()) => {
                    status.succeeded();
                    return Ok(Ok(()));
                }
                Err(e) => {
                    status.failed(&e, intent.name());
                    if !e.is_transient() {
                        return Ok(Err(e));
                    }
                    if waiting.is_none() {
                        let partition = (source.topic.clone(), source.partition);
                        waiting = Some(status.wait(&partition, &e));
                    }
                }
            }
            successes.borrow_and_update();
            let wait = backoff.next_backoff().unwrap_or(APPLY_RETRY_MAX_INTERVAL);
            let first = APPLY_RETRY_FIRST_INTERVAL.min(wait);
            let waited = async {
                tokio::time::sleep(first).await;
                tokio::select! {
                    () = tokio::time::sleep(wait - first) => {}
                    // Another apply succeeded: the sink may be back.
                    _ = successes.changed() => {}
                }
            };
            tokio::select! {
                () = waited => {}
                () = lease.ended() => return Err(Fenced),
            }
        }
    }
}

/// Ends a message with `terminal` (rejected or failed) followed by `dead_lettered`: the
/// message goes to the dead-letter topic with `failure` as its reason.
fn rejected(mut terminal: OutcomeEvent, failure: Failure) -> Completion {
    terminal.error = Some(failure.clone());
    let mut dead_lettered = terminal.clone();
    dead_lettered.stage = Stage::DeadLettered;
    dead_lettered.event_id = crate::outcome::event_id(
        &terminal.idempotency_key,
        Stage::DeadLettered,
        &terminal.source,
    );
    Completion {
        outcomes: vec![terminal, dead_lettered],
        dead_letter: Some(failure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::RuleTranslator;
    use std::sync::Arc;

    fn pipeline(sink_dir: &std::path::Path) -> Pipeline<RuleTranslator> {
        Pipeline::new(
            RuleTranslator::new(100),
            IntentSink::dir(sink_dir.to_path_buf()),
            Limits::default(),
            Policy::default(),
        )
    }

    fn received(pipeline: &Pipeline<RuleTranslator>, key: &str) -> Received {
        let payload = serde_json::json!({
            "idempotency_key": key,
            "intent": "Deploy AMF with 2 replicas in namespace core5g",
        });
        let message = InboundMessage {
            source: SourceRef {
                topic: "service-requests".into(),
                partition: 3,
                offset: 7,
            },
            key: None,
            payload: Some(payload.to_string().into_bytes()),
            headers: Vec::new(),
            timestamp_ms: None,
        };
        pipeline.receive(&message).0
    }

    fn stages(completion: &Completion) -> Vec<&'static str> {
        completion
            .outcomes
            .iter()
            .map(|e| e.stage.as_str())
            .collect()
    }

    /// Waits until `n` messages of the test's partition wait for the sink.
    async fn until_waiting(pipeline: &Pipeline<RuleTranslator>, n: usize) {
        let partition = ("service-requests".to_string(), 3);
        let mut state = pipeline.sink_status().subscribe();
        let waited = state.wait_for(|s| s.waiting_in(&partition) == n).await;
        assert!(waited.is_ok());
    }

    #[tokio::test]
    async fn a_sink_that_is_down_is_waited_for_until_it_heals() {
        let dir = tempfile::tempdir().unwrap();
        let sink_dir = dir.path().join("intents");
        std::fs::write(&sink_dir, b"not a directory").unwrap();
        let pipeline = Arc::new(pipeline(&sink_dir));
        let lease = Lease::new(1);
        let message = received(&pipeline, "order-1");
        let task = tokio::spawn({
            let (pipeline, lease) = (pipeline.clone(), lease.clone());
            async move { pipeline.complete(&message, &lease).await }
        });
        until_waiting(&pipeline, 1).await;
        assert!(!pipeline.sink_status().is_up());
        let reason = pipeline.sink_status().subscribe().borrow().reason.clone();
        assert!(
            reason.is_some_and(|r| r.contains(&sink_dir.display().to_string())),
            "the reason names the path"
        );

        std::fs::remove_file(&sink_dir).unwrap();
        let completion = task.await.unwrap().expect("not fenced");
        assert_eq!(stages(&completion), ["translated", "applied"]);
        assert!(completion.dead_letter.is_none());
        assert!(pipeline.sink_status().is_up(), "up once it was applied");
    }

    #[tokio::test]
    async fn a_message_waiting_for_the_sink_is_fenced_when_its_lease_ends() {
        let dir = tempfile::tempdir().unwrap();
        let sink_dir = dir.path().join("intents");
        std::fs::write(&sink_dir, b"not a directory").unwrap();
        let pipeline = Arc::new(pipeline(&sink_dir));
        let lease = Lease::new(1);
        let message = received(&pipeline, "order-1");
        let task = tokio::spawn({
            let (pipeline, lease) = (pipeline.clone(), lease.clone());
            async move { pipeline.complete(&message, &lease).await }
        });
        until_waiting(&pipeline, 1).await;
        lease.end();
        assert_eq!(task.await.unwrap().unwrap_err(), Fenced);
        assert!(pipeline.sink_status().is_up(), "nothing waits any more");
        assert!(std::fs::read(&sink_dir).is_ok_and(|b| b == b"not a directory"));
    }

    #[tokio::test]
    async fn the_lease_is_checked_before_every_apply_attempt_even_the_first() {
        use crate::intent::{Component, IntentType, NetworkIntentSpec, Priority};
        let dir = tempfile::tempdir().unwrap();
        let pipeline = pipeline(dir.path());
        let intent = NetworkIntent::for_key(
            "order-1",
            NetworkIntentSpec {
                intent: "Deploy AMF".into(),
                intent_type: IntentType::Deployment,
                priority: Priority::Medium,
                target_components: vec![Component::Amf],
                target_namespace: "core5g".into(),
                target_environment: None,
                scaling: None,
                resources: None,
                network_slice: None,
                parameters: std::collections::BTreeMap::new(),
            },
        );
        let source = SourceRef {
            topic: "service-requests".into(),
            partition: 3,
            offset: 7,
        };
        // Handed over between the check before the cool-down and the apply: the sink is
        // healthy, yet nothing is applied.
        let lease = Lease::new(1);
        lease.end();
        let fenced = pipeline.apply_while_held(&intent, &source, &lease).await;
        assert_eq!(fenced.unwrap_err(), Fenced);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing applied"
        );

        let held = Lease::new(2);
        let applied = pipeline.apply_while_held(&intent, &source, &held).await;
        assert!(matches!(applied, Ok(Ok(()))));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn a_permanent_error_ends_the_message_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let pipeline = pipeline(dir.path());
        // Another request's intent where this one's goes.
        let other = received(&pipeline, "order-2");
        pipeline.complete(&other, &Lease::new(1)).await.unwrap();
        let message = received(&pipeline, "order-1");
        let in_place = |key| {
            let name = crate::intent::intent_name(key);
            dir.path().join("core5g").join(format!("{name}.yaml"))
        };
        std::fs::copy(in_place("order-2"), in_place("order-1")).unwrap();

        let completion = pipeline.complete(&message, &Lease::new(1)).await.unwrap();
        assert_eq!(
            stages(&completion),
            ["translated", "failed", "dead_lettered"]
        );
        let failure = completion.dead_letter.expect("a dead letter");
        assert_eq!(failure.code, ErrorCode::ApplyFailed);
        assert!(failure.message.starts_with("conflict: "), "{failure:?}");
        assert!(
            pipeline.sink_status().is_up(),
            "a conflict says nothing of the sink"
        );
    }
}
