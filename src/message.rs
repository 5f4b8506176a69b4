//! The message as the pipeline sees it: bytes, headers and where it came from.
//!
//! The Kafka edge ([`crate::kafka`]) copies each consumed record into an
//! [`InboundMessage`]; nothing past that edge knows about rdkafka. Header names stay
//! bytes, as Kafka defines them: a producer may send names that are not UTF-8 or that
//! hold a NUL, and [`crate::decode`] is where such a record is judged, not the edge.

use serde::{Deserialize, Serialize};

/// One header as it was on the record: name bytes and a value, if it has one.
pub type RawHeader = (Vec<u8>, Option<Vec<u8>>);

/// One consumed record, detached from the client that read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    pub source: SourceRef,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// Headers in record order, names as bytes; a header may have no value.
    pub headers: Vec<RawHeader>,
    /// The record's Kafka timestamp (ms since the epoch), if it has one: what consumer
    /// lag in seconds is measured from.
    pub timestamp_ms: Option<i64>,
}

impl InboundMessage {
    /// Bytes this message holds in memory, as the buffer budgets count them: key,
    /// payload, header names and values, and a fixed cost per header and per message for
    /// the allocations around them (measured on a 64-bit target).
    pub fn size(&self) -> usize {
        const PER_MESSAGE: usize = std::mem::size_of::<InboundMessage>() + 64;
        const PER_HEADER: usize = std::mem::size_of::<RawHeader>();
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| PER_HEADER + name.len() + value.as_ref().map_or(0, Vec::len))
            .sum();
        PER_MESSAGE
            + self.source.topic.len()
            + self.key.as_ref().map_or(0, Vec::len)
            + self.payload.as_ref().map_or(0, Vec::len)
            + headers
    }

    /// The value of the first header whose name is exactly `name` (byte for byte), if
    /// it has one.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers_named(name).next().flatten()
    }

    /// Every header whose name is exactly `name`, in record order: its value, if any.
    pub fn headers_named<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = Option<&'a [u8]>> + use<'a, 'n> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.as_slice() == name.as_bytes())
            .map(|(_, v)| v.as_deref())
    }
}

/// Where a message came from: enough to find it again with any Kafka tool.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourceRef {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_match_byte_for_byte() {
        let message = InboundMessage {
            source: SourceRef {
                topic: "t".into(),
                partition: 0,
                offset: 0,
            },
            key: None,
            payload: None,
            headers: vec![
                (b"idempotency-key\0x".to_vec(), Some(b"forged".to_vec())),
                (b"Idempotency-Key".to_vec(), Some(b"cased".to_vec())),
                (b"idempotency-key".to_vec(), None),
                (b"idempotency-key".to_vec(), Some(b"real".to_vec())),
            ],
            timestamp_ms: None,
        };
        // The first exact match has no value: no value, not the next one's.
        assert_eq!(message.header("idempotency-key"), None);
        assert_eq!(
            message.headers_named("idempotency-key").collect::<Vec<_>>(),
            [None, Some(&b"real"[..])]
        );
        assert_eq!(message.header("Idempotency-Key"), Some(&b"cased"[..]));
    }
}
