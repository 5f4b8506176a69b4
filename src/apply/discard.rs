//! The `discard` sink: drops every intent, for benchmarks and dry runs. It never fails.

use super::ApplyError;
use crate::intent::NetworkIntent;

#[derive(Debug, Default)]
pub struct DiscardSink;

impl DiscardSink {
    pub async fn apply(&self, _intent: &NetworkIntent) -> Result<(), ApplyError> {
        Ok(())
    }
}
