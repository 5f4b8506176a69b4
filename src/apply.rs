//! Applying: a validated NetworkIntent is handed to where it takes effect.
//!
//! `dir:` writes one YAML file per intent, `<dir>/<namespace>/<name>.yaml`, for GitOps
//! (`kubectl apply -R -f <dir>`, or a repository that Argo CD syncs). Writing goes through
//! a temporary file and a rename, so a reader never sees half a file and applying the same
//! intent twice leaves one file with the same content. `stdout` prints each intent as a
//! YAML document. Both are idempotent, like the server-side apply that comes later.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::AsyncWriteExt;

use crate::intent::NetworkIntent;

/// Where intents go, as configured by `INTENT_SINK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    Dir(PathBuf),
    Stdout,
    /// Drops every intent: for benchmarks and dry runs.
    Discard,
}

impl FromStr for SinkSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some(("dir", path)) if !path.trim().is_empty() => Ok(Self::Dir(PathBuf::from(path))),
            Some(("dir", _)) => Err("dir: needs a path, e.g. dir:./intents".into()),
            None if s == "stdout" => Ok(Self::Stdout),
            None if s == "discard" => Ok(Self::Discard),
            _ => Err(format!(
                "{s:?} is not a sink: use dir:<path>, stdout or discard"
            )),
        }
    }
}

impl fmt::Display for SinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dir(path) => write!(f, "dir:{}", path.display()),
            Self::Stdout => f.write_str("stdout"),
            Self::Discard => f.write_str("discard"),
        }
    }
}

/// Why an intent could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("could not serialise the intent: {0}")]
    Serialise(#[from] serde_yaml::Error),
    #[error("could not write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The configured sink.
#[derive(Debug)]
pub struct IntentSink {
    spec: SinkSpec,
    /// Makes temporary file names unique when two tasks write the same intent at once.
    writes: AtomicU64,
}

impl IntentSink {
    pub fn new(spec: SinkSpec) -> Self {
        Self {
            spec,
            writes: AtomicU64::new(0),
        }
    }

    /// Applies one intent; calling it again with the same intent changes nothing.
    pub async fn apply(&self, intent: &NetworkIntent) -> Result<(), ApplyError> {
        match &self.spec {
            SinkSpec::Dir(dir) => {
                let yaml = serde_yaml::to_string(intent)?;
                let n = self.writes.fetch_add(1, Ordering::Relaxed);
                write_atomically(dir, intent, yaml.as_bytes(), n).await
            }
            SinkSpec::Stdout => {
                let yaml = serde_yaml::to_string(intent)?;
                let mut out = tokio::io::stdout();
                let doc = format!("---\n{yaml}");
                out.write_all(doc.as_bytes())
                    .await
                    .map_err(|source| ApplyError::Io {
                        path: PathBuf::from("<stdout>"),
                        source,
                    })?;
                out.flush().await.map_err(|source| ApplyError::Io {
                    path: PathBuf::from("<stdout>"),
                    source,
                })
            }
            SinkSpec::Discard => Ok(()),
        }
    }
}

/// The file an intent is written to under a `dir:` sink.
pub fn intent_path(dir: &Path, intent: &NetworkIntent) -> PathBuf {
    dir.join(&intent.metadata.namespace)
        .join(format!("{}.yaml", intent.metadata.name))
}

async fn write_atomically(
    dir: &Path,
    intent: &NetworkIntent,
    bytes: &[u8],
    n: u64,
) -> Result<(), ApplyError> {
    let path = intent_path(dir, intent);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ApplyError::Io { path, source }
    };
    let parent = path.parent().unwrap_or(dir);
    tokio::fs::create_dir_all(parent)
        .await
        .map_err(io(parent))?;
    // A dot-file is skipped by `kubectl apply -R`, so a crash mid-write leaves no stray YAML.
    let tmp = parent.join(format!(
        ".{}.{}-{n}.tmp",
        intent.metadata.name,
        std::process::id()
    ));
    let result = async {
        let mut file = tokio::fs::File::create(&tmp).await.map_err(io(&tmp))?;
        file.write_all(bytes).await.map_err(io(&tmp))?;
        // Durable before the offset is committed: the outcome says "applied".
        file.sync_all().await.map_err(io(&tmp))?;
        tokio::fs::rename(&tmp, &path).await.map_err(io(&path))
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::{Component, IntentType, NetworkIntentSpec, Priority};
    use std::collections::BTreeMap;

    fn intent() -> NetworkIntent {
        NetworkIntent::new(
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
                parameters: BTreeMap::new(),
            },
        )
    }

    #[test]
    fn parses_sink_specs() {
        assert_eq!(
            "dir:./intents".parse::<SinkSpec>().unwrap(),
            SinkSpec::Dir("./intents".into())
        );
        assert_eq!("stdout".parse::<SinkSpec>().unwrap(), SinkSpec::Stdout);
        assert!("dir:".parse::<SinkSpec>().is_err());
        assert!("kube".parse::<SinkSpec>().unwrap_err().contains("kube"));
    }

    #[tokio::test]
    async fn writing_twice_leaves_one_identical_file() {
        let dir = tempfile::tempdir().unwrap();
        let sink = IntentSink::new(SinkSpec::Dir(dir.path().to_path_buf()));
        sink.apply(&intent()).await.unwrap();
        let path = intent_path(dir.path(), &intent());
        let first = std::fs::read(&path).unwrap();
        sink.apply(&intent()).await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), first);
        let files: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        let back: NetworkIntent = serde_yaml::from_slice(&first).unwrap();
        assert_eq!(back, intent());
    }

    #[tokio::test]
    async fn an_unwritable_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let sink = IntentSink::new(SinkSpec::Dir(blocker.clone()));
        let err = sink.apply(&intent()).await.unwrap_err().to_string();
        assert!(err.contains(&blocker.display().to_string()), "{err}");
    }
}
