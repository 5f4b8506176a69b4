//! The message as the pipeline sees it: bytes, headers and where it came from.
//!
//! The Kafka edge ([`crate::kafka`]) copies each consumed record into an
//! [`InboundMessage`]; nothing past that edge knows about rdkafka.

use serde::{Deserialize, Serialize};

/// One consumed record, detached from the client that read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    pub source: SourceRef,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// Headers in record order; a header may have no value.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl InboundMessage {
    /// The value of the first header called `name`, if it has one.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// Where a message came from: enough to find it again with any Kafka tool.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourceRef {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}
