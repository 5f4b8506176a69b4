//! The `stdout` sink: each intent printed as a YAML document (`---` first), for a pipe
//! into `kubectl apply -f -` or a look at what the worker would apply. Printing the same
//! intent twice prints the same document twice, which `kubectl apply` takes as one.

use std::path::PathBuf;

use tokio::io::AsyncWriteExt;

use super::ApplyError;
use crate::intent::NetworkIntent;

/// Prints intents on the process's standard output.
#[derive(Debug, Default)]
pub struct StdoutSink;

impl StdoutSink {
    pub async fn apply(&self, intent: &NetworkIntent) -> Result<(), ApplyError> {
        let yaml = serde_yaml::to_string(intent)?;
        let io = |source| ApplyError::Io {
            path: PathBuf::from("<stdout>"),
            source,
        };
        let mut out = tokio::io::stdout();
        let doc = format!("---\n{yaml}");
        out.write_all(doc.as_bytes()).await.map_err(io)?;
        out.flush().await.map_err(io)
    }
}
