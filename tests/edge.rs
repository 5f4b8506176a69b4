//! The Kafka edge against the real broker: records written byte for byte as a hostile
//! producer would (header names that are not UTF-8 or hold a NUL, a 1 000 000-byte key,
//! a 360 KB payload of hostile JSON, a tombstone, a key with an escape sequence), each
//! followed by a good request on the same partition. Each bad one is `rejected` with its
//! code and gets a dead letter that fits and says what it left out; each good one is
//! applied; the worker keeps running and commits past all of them.
//!
//! The NUL-in-a-name case also guards the edge's reliance on librdkafka's header layout
//! (`src/kafka/headers.rs`): if an upgrade changes it, the full name is no longer read
//! and the assertion on the quoted name fails (and good records with headers would be
//! refused).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::raw::{produce_raw, RawHeader};
use common::{committed_and_end, header, Outcomes, TestTopics, TopicReader, Worker};
use nephoran_kafka_consumer::decode::KeySource;
use nephoran_kafka_consumer::outcome::{ErrorCode, OutcomeEvent, Stage};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientConfig, Message};

fn good(key: &str) -> Vec<u8> {
    serde_json::json!({"idempotency_key": key, "intent": "Deploy NRF in namespace core5g"})
        .to_string()
        .into_bytes()
}

fn named(name: &[u8], value: &[u8]) -> RawHeader {
    (name.to_vec(), Some(value.to_vec()))
}

/// A producer that may write records up to 2 MB (a 1 000 000-byte key among them).
fn large_producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", common::brokers())
        .set("message.max.bytes", "2000000")
        .create()
        .expect("producer")
}

/// One hostile record and what it must get.
struct Case {
    name: &'static str,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<RawHeader>,
    code: ErrorCode,
    /// Each must be in the rejection's message.
    says: &'static [&'static str],
    /// Checks its dead letter.
    letter: fn(&OwnedMessage),
}

fn cases() -> Vec<Case> {
    // A string the schema refuses, which serde quotes (escaped, so longer) in its error.
    let hostile = format!(
        r#"{{"idempotency_key":"hostile-1","intent":"Deploy AMF","parameters":"{}"}}"#,
        r#"\u001b\"\\"#.repeat(36_000)
    );
    vec![
        Case {
            name: "header name FF FE 78",
            key: Some(b"k".to_vec()),
            value: Some(good("fffe78-1")),
            headers: vec![named(b"trace", b"t"), named(&[0xFF, 0xFE, b'x'], b"v")],
            code: ErrorCode::InvalidRecord,
            says: &["header #1", "hex fffe78", "not UTF-8"],
            letter: |m| {
                let note =
                    header(m, "nephoran.headers.omitted").expect("says a header was left out");
                assert!(note.contains("#1 (hex fffe78)"), "{note}");
                assert_eq!(
                    header(m, "trace").as_deref(),
                    Some("t"),
                    "the readable ones are copied"
                );
                assert!(m.payload().is_some_and(|p| p.starts_with(b"{")));
            },
        },
        Case {
            name: "header name idempotency-key NUL x",
            key: None,
            value: Some(good("nul-1")),
            headers: vec![named(b"idempotency-key\0x", b"forged")],
            code: ErrorCode::InvalidRecord,
            // The full name, past its NUL: read through librdkafka's layout.
            says: &[
                "header #0",
                r#""idempotency-key\x00x""#,
                "a NUL U+0000 at byte 15",
            ],
            letter: |m| {
                let note =
                    header(m, "nephoran.headers.omitted").expect("says a header was left out");
                assert!(
                    note.contains(&format!("hex {}", hex(b"idempotency-key\0x"))),
                    "{note}"
                );
            },
        },
        Case {
            name: "1 000 000-byte key on not json",
            key: Some(vec![b'k'; 1_000_000]),
            value: Some(b"not json".to_vec()),
            headers: vec![named(b"trace", b"t")],
            code: ErrorCode::InvalidRecord,
            says: &["record key is 1000000 bytes", "limit is 4096"],
            letter: |m| {
                assert_eq!(m.key(), None, "the key is left out");
                let note = header(m, "nephoran.key.omitted").expect("and the letter says so");
                assert!(note.contains("1000000 bytes"), "{note}");
                assert!(
                    header(m, "nephoran.payload.omitted").is_some(),
                    "the payload went first"
                );
                assert_eq!(header(m, "trace").as_deref(), Some("t"), "the headers fit");
            },
        },
        Case {
            name: "360 KB of hostile JSON",
            key: Some(b"hostile".to_vec()),
            value: Some(hostile.into_bytes()),
            headers: vec![],
            code: ErrorCode::InvalidSchema,
            says: &["not a valid service request", "invalid type: string"],
            letter: |m| {
                // It fits: a full copy, with the error message bounded.
                assert!(m.payload().is_some_and(|p| p.len() > 360_000));
                assert_eq!(m.key(), Some(&b"hostile"[..]));
                let message = header(m, "nephoran.error.message").expect("the reason");
                assert!(message.len() <= 1024, "{} bytes", message.len());
                assert!(header(m, "nephoran.payload.omitted").is_none());
            },
        },
        Case {
            name: "tombstone",
            key: Some(b"tomb".to_vec()),
            value: None,
            headers: vec![named(b"idempotency-key", b"tomb-1")],
            code: ErrorCode::InvalidRecord,
            says: &["no value", "tombstone"],
            letter: |m| {
                assert_eq!(m.payload(), None);
                assert_eq!(m.key(), Some(&b"tomb"[..]));
                assert!(
                    header(m, "nephoran.payload.omitted").is_none(),
                    "nothing was left out"
                );
            },
        },
        Case {
            name: "key with an escape sequence",
            key: None,
            value: Some(good("other")),
            headers: vec![named(b"idempotency-key", b"evil\x1b[2J\nINFO forged")],
            code: ErrorCode::InvalidIdempotencyKey,
            says: &["control character U+001B", r"evil\x1b[2J"],
            letter: |m| {
                let key = header(m, "nephoran.idempotency.key").expect("a correlation key");
                assert!(key.starts_with("sha256:"), "{key}");
            },
        },
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_records_are_rejected_with_a_dead_letter_and_the_partition_moves_on() {
    let topics = TestTopics::create("edge", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = large_producer();
    let t = &topics.service_requests;
    let cases = cases();
    // offset -> (case, the good request after it)
    let mut at = HashMap::new();
    for (i, case) in cases.iter().enumerate() {
        let offset = produce_raw(
            &producer,
            t,
            0,
            case.key.as_deref(),
            case.value.as_deref(),
            &case.headers,
        )
        .await;
        let after = format!("good-{i}");
        // Good requests carry an ordinary header, read the ordinary way.
        let next = produce_raw(
            &producer,
            t,
            0,
            Some(after.as_bytes()),
            Some(&good(&after)),
            &[named(b"trace", b"t")],
        )
        .await;
        assert_eq!(next, offset + 1);
        at.insert(offset, (case, after));
    }

    let worker = Worker::start(topics.config(dir.path()));
    let mut outcomes = Outcomes::new(&topics);
    outcomes.until_terminal_messages(2 * cases.len()).await;
    let by_offset: HashMap<i64, &OutcomeEvent> = outcomes
        .in_order
        .iter()
        .filter(|e| e.stage.is_terminal())
        .map(|e| (e.source.offset, e))
        .collect();
    for (offset, (case, after)) in &at {
        let rejected = by_offset[offset];
        assert_eq!(rejected.stage, Stage::Rejected, "{}", case.name);
        let error = rejected.error.as_ref().expect("a rejection says why");
        assert_eq!(error.code, case.code, "{}: {}", case.name, error.message);
        for needle in case.says {
            assert!(
                error.message.contains(needle),
                "{}: {needle:?} not in {:?}",
                case.name,
                error.message
            );
        }
        assert!(
            !rejected.idempotency_key.chars().any(char::is_control),
            "{}: a printable key",
            case.name
        );
        if case.code == ErrorCode::InvalidRecord || case.code == ErrorCode::InvalidIdempotencyKey {
            assert_eq!(rejected.key_source, KeySource::Derived, "{}", case.name);
        }
        let next = by_offset[&(offset + 1)];
        assert_eq!(next.idempotency_key, *after);
        assert_eq!(
            next.stage,
            Stage::Applied,
            "{}: the next one is applied",
            case.name
        );
    }

    // One dead letter per bad record, each saying where it came from.
    let dlq = TopicReader::new(&topics.dlq, 1);
    let mut letters = HashMap::new();
    while letters.len() < cases.len() {
        let letter = dlq.next(common::PATIENCE).await.expect("a dead letter");
        let offset: i64 = header(&letter, "nephoran.source.offset")
            .and_then(|o| o.parse().ok())
            .expect("the source offset");
        letters.insert(offset, letter);
    }
    assert!(dlq.next(Duration::from_secs(2)).await.is_none(), "no more");
    for (offset, (case, _)) in &at {
        let letter = &letters[offset];
        assert_eq!(
            header(letter, "nephoran.error.code").as_deref(),
            Some(case.code.as_str()),
            "{}",
            case.name
        );
        assert_eq!(
            header(letter, "nephoran.source.topic").as_deref(),
            Some(t.as_str())
        );
        (case.letter)(letter);
    }

    // Still running: a request produced now is applied too.
    let last = produce_raw(&producer, t, 0, None, Some(&good("last-1")), &[]).await;
    outcomes.until_terminal(["last-1"]).await;
    assert_eq!(outcomes.terminal("last-1")[0].stage, Stage::Applied);
    worker.stop().await;
    assert_eq!(
        committed_and_end(&topics.group, t, 1),
        [(last + 1, last + 1)]
    );
}

/// A dead letter that cannot be written is followed by a minimal one, and when that
/// fails too the message is still done: neither failure is the message's (which would
/// stop the worker), both are settled by the publisher.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_that_cannot_be_written_never_fails_the_message() {
    use nephoran_kafka_consumer::kafka::publisher::{Acknowledged, Publisher, Sends};
    use nephoran_kafka_consumer::message::{InboundMessage, SourceRef};
    use nephoran_kafka_consumer::outcome::Failure;

    let topics = TestTopics::create("dlq-fails", 1).await;
    let message = InboundMessage {
        source: SourceRef {
            topic: topics.service_requests.clone(),
            partition: 0,
            offset: 3,
        },
        key: Some(b"k".to_vec()),
        payload: Some(b"not json".to_vec()),
        headers: vec![named(b"trace", b"t")],
        timestamp_ms: None,
    };
    async fn next(acks: &mut Acknowledged<()>) -> std::sync::Arc<Sends<()>> {
        tokio::time::timeout(common::PATIENCE, acks.recv())
            .await
            .expect("the sends come back")
            .expect("the channel is open")
    }

    // Delivery fails (the dead-letter topic does not exist, and is not created): the
    // minimal letter follows, fails the same way, and the message is done.
    let properties = [
        ("bootstrap.servers".to_string(), common::brokers()),
        ("message.timeout.ms".to_string(), "3000".to_string()),
    ]
    .into();
    let missing = format!("{}-missing", topics.dlq);
    let (publisher, mut acks) =
        Publisher::<()>::new(&properties, &topics.outcomes, &missing, None).expect("producer");
    let sends = Sends::new(());
    let failure = Failure::new(ErrorCode::InvalidJson, "the payload is not JSON");
    publisher
        .dead_letter(&sends, &message, "k", &failure, "id")
        .await;
    publisher.seal(sends);
    let back = next(&mut acks).await;
    assert!(
        back.result().is_ok(),
        "a dead letter's failure is not the message's"
    );
    assert!(
        publisher.settle_dead_letter(&back).await,
        "the minimal letter is sent"
    );
    let back = next(&mut acks).await;
    assert!(back.result().is_ok());
    assert!(
        !publisher.settle_dead_letter(&back).await,
        "given up, logged and counted: the message is done"
    );

    // Not even enqueued (the error headers alone exceed message.max.bytes): the same.
    let properties = [
        ("bootstrap.servers".to_string(), common::brokers()),
        ("message.max.bytes".to_string(), "1000".to_string()),
    ]
    .into();
    let (publisher, mut acks) =
        Publisher::<()>::new(&properties, &topics.outcomes, &topics.dlq, None).expect("producer");
    let sends = Sends::new(());
    let failure = Failure::new(ErrorCode::InvalidJson, "x".repeat(2000));
    publisher
        .dead_letter(&sends, &message, "k", &failure, "id")
        .await;
    publisher.seal(sends);
    let back = next(&mut acks).await;
    assert!(back.result().is_ok());
    assert!(!publisher.settle_dead_letter(&back).await);
}
