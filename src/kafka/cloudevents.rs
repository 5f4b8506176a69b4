//! CloudEvents binary-mode headers on outcome events.
//!
//! Subscribers on the estate's event mesh route and filter by CloudEvents attributes
//! without parsing payloads, so every outcome record carries them as `ce_`-prefixed
//! headers (the CloudEvents Kafka protocol binding, binary content mode: the record value
//! is the event's data, unchanged). The attributes are derived from the event alone, so a
//! redelivered message republishes the same headers as it does the same `event_id`.

use crate::outcome::OutcomeEvent;

/// The CloudEvents specification version every outcome declares.
pub const SPEC_VERSION: &str = "1.0";
/// What `ce_source` starts with: this service; the input's topic and partition follow.
pub const SOURCE_PREFIX: &str = "/nephoran-kafka-consumer";
/// What `ce_type` starts with; the stage (`applied`, `dead_lettered`, …) follows.
pub const TYPE_PREFIX: &str = "com.nephoran.intent.";

/// Header names (the Kafka binding's `ce_` prefix, and `content-type` for the data).
pub mod names {
    pub const SPEC_VERSION: &str = "ce_specversion";
    pub const ID: &str = "ce_id";
    pub const SOURCE: &str = "ce_source";
    pub const TYPE: &str = "ce_type";
    pub const TIME: &str = "ce_time";
    pub const CONTENT_TYPE: &str = "content-type";
}

/// The headers of `event`'s record, in this order: `content-type` (as before), then the
/// CloudEvents attributes. `ce_source` is `/nephoran-kafka-consumer/<topic>/<partition>`
/// of the message the event is about ((source, id) stays unique as CloudEvents asks,
/// since `event_id` already is). Kafka topic names are ASCII letters, digits, `.`, `_`
/// and `-`, which a URI path takes as they are; any other byte (a `deployed` event's
/// topic is read back from the cluster) is percent-encoded, so the header is always a
/// valid URI reference.
pub fn headers(event: &OutcomeEvent) -> Vec<(&'static str, String)> {
    headers_with(event, "application/json")
}

/// [`headers`] for a record whose value is in `content_type` (`application/avro` for
/// Avro outcomes, [`crate::avro::outcome`]).
pub fn headers_with(event: &OutcomeEvent, content_type: &str) -> Vec<(&'static str, String)> {
    vec![
        (names::CONTENT_TYPE, content_type.to_string()),
        (names::SPEC_VERSION, SPEC_VERSION.to_string()),
        (names::ID, event.event_id.clone()),
        (
            names::SOURCE,
            format!(
                "{SOURCE_PREFIX}/{}/{}",
                path_segment(&event.source.topic),
                event.source.partition
            ),
        ),
        (
            names::TYPE,
            format!("{TYPE_PREFIX}{}", event.stage.as_str()),
        ),
        (names::TIME, event.occurred_at.clone()),
    ]
}

/// `text` as one URI path segment: bytes other than ASCII letters, digits, `.`, `_`, `-`
/// percent-encoded.
fn path_segment(text: &str) -> String {
    use std::fmt::Write;
    let mut segment = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-') {
            segment.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(segment, "%{byte:02X}");
        }
    }
    segment
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{IdempotencyKey, KeySource};
    use crate::message::SourceRef;
    use crate::outcome::Stage;

    fn event(stage: Stage) -> OutcomeEvent {
        let key = IdempotencyKey {
            value: "order-1".into(),
            source: KeySource::Payload,
        };
        let source = SourceRef {
            topic: "service-requests".into(),
            partition: 2,
            offset: 17,
        };
        OutcomeEvent::new(&key, stage, &source)
    }

    #[test]
    fn an_outcome_carries_the_cloudevents_attributes_and_its_content_type() {
        let event = event(Stage::Applied);
        assert_eq!(
            headers(&event),
            [
                ("content-type", "application/json".to_string()),
                ("ce_specversion", "1.0".to_string()),
                ("ce_id", event.event_id.clone()),
                (
                    "ce_source",
                    "/nephoran-kafka-consumer/service-requests/2".to_string()
                ),
                ("ce_type", "com.nephoran.intent.applied".to_string()),
                ("ce_time", event.occurred_at.clone()),
            ]
        );
        // ce_time is RFC 3339, as CloudEvents requires.
        assert!(humantime::parse_rfc3339(&event.occurred_at).is_ok());
    }

    #[test]
    fn a_topic_a_uri_path_would_misread_is_percent_encoded() {
        let mut event = event(Stage::Deployed);
        event.source.topic = "a/b c%\u{e9}".into();
        let headers = headers(&event);
        assert_eq!(
            headers[3],
            (
                "ce_source",
                "/nephoran-kafka-consumer/a%2Fb%20c%25%C3%A9/2".to_string()
            )
        );
    }

    #[test]
    fn every_stage_has_its_own_type() {
        let types: std::collections::HashSet<String> = Stage::ALL
            .iter()
            .map(|&stage| {
                let headers = headers(&event(stage));
                let (_, ce_type) = headers
                    .iter()
                    .find(|(name, _)| *name == names::TYPE)
                    .expect("a ce_type");
                assert_eq!(*ce_type, format!("com.nephoran.intent.{}", stage.as_str()));
                ce_type.clone()
            })
            .collect();
        assert_eq!(types.len(), Stage::ALL.len());
    }
}
