//! A dead letter as `dlq replay` reads it: the error and source headers the worker added
//! ([`dlq_headers`]), and the original record (key, payload, headers) to re-publish, or
//! why it cannot be re-published as it was.
//!
//! Everything here was read from Kafka: the dead letter's copies are of hostile records,
//! and anyone who can write to the dead-letter topic can forge a whole letter. So every
//! header value is bounded and checked before use, and a letter that does not hold what
//! a faithful replay needs (its source, its payload, key and headers whole, header names
//! that can be produced) is reported, never guessed at.

use crate::kafka::publisher::dlq_headers;
use crate::message::{InboundMessage, SourceRef};

/// Longest `nephoran.error.code` or `nephoran.event.id` taken; a longer one is ignored.
const MAX_ID_BYTES: usize = 64;
/// Longest `nephoran.idempotency.key` taken (the worker's keys are at most 256 bytes).
const MAX_KEY_BYTES: usize = 1024;
/// Longest topic name Kafka allows.
const MAX_TOPIC_BYTES: usize = 249;

/// A dead letter read from the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    /// Where the letter is on the dead-letter topic.
    pub at: SourceRef,
    /// Its `nephoran.event.id`: the same for every copy of one dead letter.
    pub event_id: Option<String>,
    pub code: Option<String>,
    pub idempotency_key: Option<String>,
    /// Where the original record was (and is replayed to).
    pub source: Option<SourceRef>,
    pub record_key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// The original headers, in record order: the letter's, less the worker's own.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Why it cannot be replayed faithfully, when it cannot.
    pub unreplayable: Option<String>,
}

impl Letter {
    /// Reads a dead-letter record.
    pub fn read(record: InboundMessage) -> Self {
        let text = |name: &str, max: usize| {
            record
                .header(name)
                .filter(|v| v.len() <= max)
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(str::to_string)
        };
        let event_id = text(dlq_headers::EVENT_ID, MAX_ID_BYTES)
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_graphic()));
        let code = text(dlq_headers::ERROR_CODE, MAX_ID_BYTES);
        let idempotency_key = text(dlq_headers::IDEMPOTENCY_KEY, MAX_KEY_BYTES);
        let source = source_of(&record);
        let mut unreplayable = None;
        for (header, what) in [
            (dlq_headers::PAYLOAD_OMITTED, "the payload"),
            (dlq_headers::KEY_OMITTED, "the record key"),
            (dlq_headers::HEADERS_OMITTED, "original headers"),
        ] {
            if unreplayable.is_none() && record.header(header).is_some() {
                let note = text(header, usize::MAX).unwrap_or_default();
                unreplayable = Some(format!("{what} left out of the dead letter ({note})"));
            }
        }
        if source.is_none() && unreplayable.is_none() {
            unreplayable = Some(format!(
                "no usable {}, {} and {} headers: not a dead letter of this service",
                dlq_headers::SOURCE_TOPIC,
                dlq_headers::SOURCE_PARTITION,
                dlq_headers::SOURCE_OFFSET
            ));
        }
        let mut headers = Vec::new();
        for (index, (name, value)) in record.headers.iter().enumerate() {
            if name.starts_with(dlq_headers::PREFIX.as_bytes()) {
                continue;
            }
            match std::str::from_utf8(name) {
                Ok(name) if !name.chars().any(crate::decode::is_forbidden) => {
                    headers.push((name.to_string(), value.clone()));
                }
                _ => {
                    unreplayable.get_or_insert_with(|| {
                        format!(
                            "header #{index} (hex {}) has a name that is not printable UTF-8",
                            crate::hex::lower_hex(&name[..name.len().min(32)])
                        )
                    });
                }
            }
        }
        Self {
            at: record.source,
            event_id,
            code,
            idempotency_key,
            source,
            record_key: record.key,
            payload: record.payload,
            headers,
            unreplayable,
        }
    }

    /// What identifies the dead letter, whichever copy of it this is: its event id, or
    /// (a letter without one) its place on the dead-letter topic.
    pub fn identity(&self) -> String {
        match &self.event_id {
            Some(id) => id.clone(),
            None => crate::show::place(&self.at),
        }
    }
}

/// The original record's place, from the source headers; `None` unless all three are
/// there and sound.
fn source_of(record: &InboundMessage) -> Option<SourceRef> {
    let text = |name| std::str::from_utf8(record.header(name)?).ok();
    let topic = text(dlq_headers::SOURCE_TOPIC)?;
    let valid_topic = !topic.is_empty()
        && topic.len() <= MAX_TOPIC_BYTES
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    let partition: i32 = text(dlq_headers::SOURCE_PARTITION)?.parse().ok()?;
    let offset: i64 = text(dlq_headers::SOURCE_OFFSET)?.parse().ok()?;
    (valid_topic && partition >= 0 && offset >= 0).then(|| SourceRef {
        topic: topic.to_string(),
        partition,
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(headers: &[(&[u8], &[u8])]) -> InboundMessage {
        InboundMessage {
            source: SourceRef {
                topic: "intent-dlq".into(),
                partition: 1,
                offset: 4,
            },
            key: Some(b"order-9".to_vec()),
            payload: Some(b"{}".to_vec()),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_vec(), Some(v.to_vec())))
                .collect(),
            timestamp_ms: None,
        }
    }

    const ADDED: [(&[u8], &[u8]); 7] = [
        (b"nephoran.error.code", b"policy_denied"),
        (b"nephoran.error.message", b"denied"),
        (b"nephoran.source.topic", b"service-requests"),
        (b"nephoran.source.partition", b"2"),
        (b"nephoran.source.offset", b"7"),
        (b"nephoran.idempotency.key", b"order-9"),
        (
            b"nephoran.event.id",
            b"0b6c2a4e-1f7d-8a3e-9c11-5d2f0e8b7a66",
        ),
    ];

    #[test]
    fn a_whole_letter_gives_back_its_original_record() {
        let mut headers = ADDED.to_vec();
        headers.push((b"idempotency-key", b"order-9"));
        headers.push((b"trace", b"1"));
        let letter = Letter::read(record(&headers));
        assert_eq!(letter.unreplayable, None);
        assert_eq!(
            letter.source,
            Some(SourceRef {
                topic: "service-requests".into(),
                partition: 2,
                offset: 7
            })
        );
        assert_eq!(letter.code.as_deref(), Some("policy_denied"));
        assert_eq!(letter.idempotency_key.as_deref(), Some("order-9"));
        assert_eq!(letter.identity(), "0b6c2a4e-1f7d-8a3e-9c11-5d2f0e8b7a66");
        let names: Vec<&str> = letter.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["idempotency-key", "trace"],
            "the worker's own are gone"
        );
        assert_eq!(letter.record_key.as_deref(), Some(&b"order-9"[..]));
        assert_eq!(letter.payload.as_deref(), Some(&b"{}"[..]));
    }

    #[test]
    fn a_letter_with_parts_left_out_is_not_replayable_and_says_which() {
        for (note, says) in [
            (&b"nephoran.payload.omitted"[..], "the payload left out"),
            (b"nephoran.key.omitted", "the record key left out"),
            (b"nephoran.headers.omitted", "original headers left out"),
        ] {
            let mut headers = ADDED.to_vec();
            headers.push((note, b"it is at service-requests[2]@7"));
            let letter = Letter::read(record(&headers));
            let why = letter.unreplayable.expect("not replayable");
            assert!(
                why.contains(says) && why.contains("service-requests[2]@7"),
                "{why}"
            );
        }
    }

    #[test]
    fn forged_or_broken_headers_are_not_trusted() {
        // No source: nothing to replay to.
        let letter = Letter::read(record(&ADDED[..3]));
        assert!(letter.unreplayable.unwrap().contains("not a dead letter"));
        // A source topic Kafka could not have, a negative offset.
        for (name, value) in [
            (&b"nephoran.source.topic"[..], &b"../etc"[..]),
            (b"nephoran.source.offset", b"-1"),
            (b"nephoran.source.partition", b"two"),
        ] {
            let mut headers = ADDED.to_vec();
            headers.retain(|(n, _)| *n != name);
            headers.insert(0, (name, value));
            assert_eq!(Letter::read(record(&headers)).source, None, "{value:?}");
        }
        // A header name that could not be produced again.
        let mut headers = ADDED.to_vec();
        headers.push((b"bad\0name", b"v"));
        let why = Letter::read(record(&headers)).unreplayable.unwrap();
        assert!(why.contains("header #7"), "{why}");
        // An event id that is not one: the letter is known by its place.
        let mut headers = ADDED.to_vec();
        headers[6] = (b"nephoran.event.id", b"two words");
        let letter = Letter::read(record(&headers));
        assert_eq!(letter.event_id, None);
        assert_eq!(letter.identity(), "intent-dlq[1]@4");
    }
}
