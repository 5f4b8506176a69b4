//! The `dir:` sink: one YAML file per intent, `<dir>/<namespace>/<name>.yaml`, for GitOps
//! (`kubectl apply -R -f <dir>`, or a repository that Argo CD syncs). Writing goes through
//! a temporary file and a rename, so a reader never sees half a file and applying the same
//! intent twice leaves one file with the same content.
//!
//! It never overwrites another request's intent: before writing, it reads the file already
//! there (at most [`MAX_EXISTING_BYTES`]; it may hold anything) and writes only if its
//! `nephoran.com/idempotency-key` annotation is this intent's key (and, when both record
//! one, its payload fingerprint is this intent's). Anything else (another key, another
//! payload, no annotation, not YAML, too large, not a regular file) is an
//! [`ApplyError::Conflict`], which is permanent: retrying cannot change whose it is.
//! A directory that cannot be written is an [`ApplyError::Io`], which may heal.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{check_claim, ApplyError, Holder};
use crate::intent::{NetworkIntent, IDEMPOTENCY_KEY_ANNOTATION, PAYLOAD_FINGERPRINT_ANNOTATION};

/// The most of an existing intent file read to learn whose it is; a larger file is not
/// one this service wrote, and is not overwritten.
pub const MAX_EXISTING_BYTES: u64 = 1024 * 1024;

/// Writes intents under one directory.
#[derive(Debug)]
pub struct DirSink {
    dir: PathBuf,
    /// Makes temporary file names unique when two tasks write the same intent at once.
    writes: AtomicU64,
}

impl DirSink {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            writes: AtomicU64::new(0),
        }
    }

    /// Writes one intent's file; writing the same intent again changes nothing.
    pub async fn apply(&self, intent: &NetworkIntent) -> Result<(), ApplyError> {
        let yaml = serde_yaml::to_string(intent)?;
        let path = intent_path(&self.dir, intent);
        check_holder(&path, intent).await?;
        let n = self.writes.fetch_add(1, Ordering::Relaxed);
        write_atomically(&self.dir, intent, yaml.as_bytes(), n).await
    }
}

/// The file an intent is written to under a `dir:` sink.
pub fn intent_path(dir: &Path, intent: &NetworkIntent) -> PathBuf {
    dir.join(intent.namespace())
        .join(format!("{}.yaml", intent.name()))
}

/// Succeeds when `path` is free or holds `intent`'s own request (the same idempotency
/// key): writing then creates it, or changes nothing that another request owns.
async fn check_holder(path: &Path, intent: &NetworkIntent) -> Result<(), ApplyError> {
    let conflict = |holder| ApplyError::Conflict {
        path: path.to_path_buf(),
        holder,
    };
    let unreadable = |why: String| conflict(Holder::Unreadable(why));
    // Not followed: a symbolic link, a FIFO or a device is nothing this service wrote,
    // and opening one could block or read without end.
    match tokio::fs::symlink_metadata(path).await {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        // Nothing is known to be there: the directory cannot be read (a component is not
        // a directory, permissions), which may heal.
        Err(source) => {
            return Err(ApplyError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
        Ok(meta) if !meta.is_file() => return Err(unreadable("not a regular file".into())),
        Ok(_) => {}
    }
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| unreadable(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_EXISTING_BYTES + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| unreadable(e.to_string()))?;
    if bytes.len() as u64 > MAX_EXISTING_BYTES {
        return Err(unreadable(format!(
            "larger than {MAX_EXISTING_BYTES} bytes"
        )));
    }
    let document: serde_yaml::Value =
        serde_yaml::from_slice(&bytes).map_err(|_| unreadable("not YAML".into()))?;
    let annotation = |key| {
        document
            .get("metadata")
            .and_then(|m| m.get("annotations"))
            .and_then(|a| a.get(key))
    };
    let held_key = match annotation(IDEMPOTENCY_KEY_ANNOTATION) {
        None => None,
        Some(key) => Some(
            key.as_str()
                .ok_or_else(|| unreadable("not a string".into()))?,
        ),
    };
    // A fingerprint that is not a string is not this payload's.
    let held_fingerprint =
        annotation(PAYLOAD_FINGERPRINT_ANNOTATION).map(|f| f.as_str().unwrap_or("not a string"));
    check_claim(held_key, held_fingerprint, intent).map_err(conflict)
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
    let tmp = parent.join(format!(".{}.{}-{n}.tmp", intent.name(), std::process::id()));
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
        intent_of("order-1")
    }

    fn intent_of(key: &str) -> NetworkIntent {
        NetworkIntent::for_key(
            key,
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

    #[tokio::test]
    async fn writing_twice_leaves_one_identical_file() {
        let dir = tempfile::tempdir().unwrap();
        let sink = DirSink::new(dir.path().to_path_buf());
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
    async fn an_unwritable_directory_is_a_clear_transient_error_that_heals() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let sink = DirSink::new(blocker.clone());
        let err = sink.apply(&intent()).await.unwrap_err();
        assert!(err.is_transient(), "a directory may become writable: {err}");
        assert!(!err.is_key_conflict());
        let message = err.to_string();
        assert!(
            message.contains(&blocker.display().to_string()),
            "{message}"
        );
        // Healed: the same sink writes.
        std::fs::remove_file(&blocker).unwrap();
        sink.apply(&intent()).await.unwrap();
        assert!(intent_path(&blocker, &intent()).is_file());
    }

    /// An intent of key `key` that lands where `intent()` does: as if two keys had the
    /// same name (a file from elsewhere, or names of an older build).
    fn squatter(key: &str) -> NetworkIntent {
        let mut other = intent_of(key);
        other.metadata.name = intent().metadata.name;
        other
    }

    #[tokio::test]
    async fn only_the_payload_that_claimed_a_key_overwrites_its_intent() {
        let dir = tempfile::tempdir().unwrap();
        let sink = DirSink::new(dir.path().to_path_buf());
        let path = intent_path(dir.path(), &intent());
        let first = intent().claimed_by(&[1; 8]);
        sink.apply(&first).await.unwrap();
        // The same payload again (a redelivery, a re-send after the dedup window).
        sink.apply(&first).await.unwrap();
        // Another payload under the same key, seen on another partition.
        let mut other = intent().claimed_by(&[2; 8]);
        other.spec.target_components = vec![Component::Smf];
        let err = sink.apply(&other).await.unwrap_err();
        assert!(!err.is_transient());
        assert!(err.is_key_conflict());
        let message = err.to_string();
        assert!(
            message.contains("claimed by another payload (fingerprint 0101010101010101)"),
            "{message}"
        );
        let kept: NetworkIntent = serde_yaml::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(kept, first, "the first payload's intent stands");
        // A file from before fingerprints were recorded belongs to whoever has the key.
        sink.apply(&intent()).await.unwrap();
        sink.apply(&other).await.unwrap();
    }

    #[tokio::test]
    async fn an_intent_of_another_key_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let sink = DirSink::new(dir.path().to_path_buf());
        let path = intent_path(dir.path(), &intent());
        let hostile = "victim\u{1b}[31m\"\n".to_string() + &"x".repeat(500);
        sink.apply(&squatter(&hostile)).await.unwrap();
        let before = std::fs::read(&path).unwrap();

        let err = sink.apply(&intent()).await.unwrap_err();
        assert!(!err.is_transient(), "a conflict is not retried");
        let message = err.to_string();
        assert!(message.starts_with("conflict: "), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(
            message.contains(r#"another idempotency key, "victim\u{1b}[31m\"\u{a}xxx"#),
            "{message}"
        );
        assert!(message.len() < 400, "the other key is bounded: {message}");
        assert!(!message.chars().any(char::is_control), "{message}");
        assert_eq!(std::fs::read(&path).unwrap(), before, "untouched");

        // the same key overwrites, as before (idempotent)
        let mut changed = squatter(&hostile);
        changed.spec.intent = "Deploy AMF again".into();
        sink.apply(&changed).await.unwrap();
        let back: NetworkIntent = serde_yaml::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back, changed);
    }

    #[tokio::test]
    async fn a_file_whose_owner_cannot_be_read_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let sink = DirSink::new(dir.path().to_path_buf());
        let path = intent_path(dir.path(), &intent());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let big = vec![b'a'; MAX_EXISTING_BYTES as usize + 1];
        let no_annotation = serde_yaml::to_string(&intent())
            .unwrap()
            .replace(IDEMPOTENCY_KEY_ANNOTATION, "nephoran.com/other");
        let cases: [(&[u8], &str); 5] = [
            (b"\xff\xfe not yaml: [", "not YAML"),
            (b"just a string", "no such annotation"),
            (no_annotation.as_bytes(), "no such annotation"),
            (
                b"metadata:\n  annotations:\n    nephoran.com/idempotency-key: [1]\n",
                "not a string",
            ),
            (&big, "larger than"),
        ];
        for (content, why) in cases {
            std::fs::write(&path, content).unwrap();
            let err = sink.apply(&intent()).await.unwrap_err();
            assert!(!err.is_transient());
            let message = err.to_string();
            assert!(
                message.contains("cannot be read") && message.contains(why),
                "{why}: {message}"
            );
            assert_eq!(std::fs::read(&path).unwrap(), content, "{why}: untouched");
        }
        // a directory (or a link, a FIFO) in its place
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let message = sink.apply(&intent()).await.unwrap_err().to_string();
        assert!(message.contains("not a regular file"), "{message}");
        std::fs::remove_dir(&path).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        let message = sink.apply(&intent()).await.unwrap_err().to_string();
        assert!(message.contains("not a regular file"), "{message}");
    }
}
