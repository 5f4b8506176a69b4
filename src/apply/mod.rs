//! Applying: a validated NetworkIntent is handed to where it takes effect, the sink
//! configured by `INTENT_SINK`. One file per sink: [`dir`] (YAML files for GitOps),
//! [`kube`] (server-side apply to the Kubernetes API server), [`stdout`] (YAML documents
//! on standard output), [`discard`] (nothing, for benchmarks).
//! Every sink is idempotent: applying the same intent again changes nothing.
//!
//! A sink never overwrites another request's intent ([`ApplyError::Conflict`]).
//!
//! Every error says whether trying again may help ([`Transience`]): a transient error (a
//! directory that cannot be written, an API server that does not answer) is retried by
//! the pipeline for as long as the message's partition is held, and the partition waits;
//! a permanent one (a conflict, an intent that cannot be serialised) ends the message as
//! `failed` (or `rejected`, for another payload's claim on the key) at once.
//!
//! Adding a sink: a file with its type and an `async fn apply(&self, &NetworkIntent) ->
//! Result<(), ApplyError>`, a [`SinkSpec`] variant that parses its `INTENT_SINK` form, and
//! an arm in [`IntentSink::start`] and [`IntentSink::apply`].

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::intent::{NetworkIntent, IDEMPOTENCY_KEY_ANNOTATION, PAYLOAD_FINGERPRINT_ANNOTATION};
use crate::outcome::ErrorCode;

pub mod dir;
pub mod discard;
pub mod kube;
pub mod status;
pub mod stdout;

pub use dir::{intent_path, DirSink, MAX_EXISTING_BYTES};
pub use discard::DiscardSink;
pub use kube::{KubeOptions, KubeSink, KubeStartError};
pub use status::SinkStatus;
pub use stdout::StdoutSink;

/// The most of another key quoted in a conflict (characters, before escaping).
const MAX_SHOWN_KEY_CHARS: usize = 128;

/// Where intents go, as configured by `INTENT_SINK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    Dir(PathBuf),
    Stdout,
    /// Drops every intent: for benchmarks and dry runs.
    Discard,
    /// Server-side apply to the cluster of the in-cluster configuration or `KUBECONFIG`.
    Kube,
}

impl FromStr for SinkSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some(("dir", path)) if !path.trim().is_empty() => Ok(Self::Dir(PathBuf::from(path))),
            Some(("dir", _)) => Err("dir: needs a path, e.g. dir:./intents".into()),
            None if s == "stdout" => Ok(Self::Stdout),
            None if s == "discard" => Ok(Self::Discard),
            None if s == "kube" => Ok(Self::Kube),
            _ => Err(format!(
                "{s:?} is not a sink: use dir:<path>, kube, stdout or discard"
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
            Self::Kube => f.write_str("kube"),
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
    /// The intent's place is taken by something that is not this request's intent.
    #[error("conflict: {path} {holder}; not overwritten")]
    Conflict { path: PathBuf, holder: Holder },
    /// Another field manager owns fields the intent sets (a server-side apply conflict).
    #[error(
        "conflict with another field manager ({managers}) at {what}: {message}; not applied \
         (KUBE_FORCE_APPLY=true takes the fields over)",
        managers = managers.join(", ")
    )]
    FieldConflict {
        what: String,
        /// The other managers, as the API server named them (escaped).
        managers: Vec<String>,
        /// The API server's message, bounded and escaped.
        message: String,
    },
    /// The intent's namespace does not exist in the cluster.
    #[error(
        "the namespace {namespace:?} does not exist; not created (CREATE_NAMESPACES=true \
         creates it)"
    )]
    NamespaceNotFound { namespace: String },
    /// The API server refused the request and will refuse it again (403, 422, 400, ...).
    #[error("the Kubernetes API server refused {what}: {code} {reason}: {message}")]
    Refused {
        what: String,
        code: u16,
        reason: String,
        /// The API server's message, bounded and escaped.
        message: String,
    },
    /// The API server did not answer, or asked to come back later (429, 5xx, timeouts).
    #[error("the Kubernetes API server is unavailable ({what}): {message}")]
    Unavailable { what: String, message: String },
}

/// Whether an error may heal by itself, so the message should wait for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transience {
    /// Trying again later may succeed: the sink is down, not the message wrong.
    Transient,
    /// Trying again cannot change the answer: the message ends with it.
    Permanent,
}

impl Transience {
    /// The `kind` label of `sink_errors_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Permanent => "permanent",
        }
    }
}

impl ApplyError {
    /// Whether trying again may succeed. I/O errors may heal (a directory made writable,
    /// a disk freed, a volume remounted), except those about the intent's own path (an
    /// invalid file name), which the same intent meets again; a conflict or an intent
    /// that cannot be serialised stays as it is.
    pub fn transience(&self) -> Transience {
        match self {
            Self::Io { source, .. } if !about_the_path(source.kind()) => Transience::Transient,
            Self::Unavailable { .. } => Transience::Transient,
            Self::Io { .. }
            | Self::Serialise(_)
            | Self::Conflict { .. }
            | Self::FieldConflict { .. }
            | Self::NamespaceNotFound { .. }
            | Self::Refused { .. } => Transience::Permanent,
        }
    }

    /// The outcome's error code when this error ends a message.
    pub fn code(&self) -> ErrorCode {
        match self {
            _ if self.is_key_conflict() => ErrorCode::IdempotencyKeyConflict,
            Self::NamespaceNotFound { .. } => ErrorCode::NamespaceNotFound,
            _ => ErrorCode::ApplyFailed,
        }
    }

    pub fn is_transient(&self) -> bool {
        self.transience() == Transience::Transient
    }

    /// Whether the intent's place holds the same key claimed by another payload.
    pub fn is_key_conflict(&self) -> bool {
        matches!(
            self,
            Self::Conflict {
                holder: Holder::OtherPayload(_),
                ..
            }
        )
    }
}

/// I/O errors that describe the path asked for rather than the state of the file system.
fn about_the_path(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind;
    matches!(kind, ErrorKind::InvalidInput | ErrorKind::InvalidFilename)
}

/// What holds an intent's place instead of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// The intent of another idempotency key (escaped and bounded).
    OtherKey(String),
    /// The intent of the same key, claimed by another payload (its fingerprint, hex).
    OtherPayload(String),
    /// A file whose idempotency-key annotation cannot be read, and why.
    Unreadable(String),
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OtherKey(key) => write!(
                f,
                "holds the intent of another idempotency key, \"{}\"",
                shown(key)
            ),
            Self::OtherPayload(fingerprint) => write!(
                f,
                "holds the intent of the same idempotency key claimed by another payload \
                 (fingerprint {}): idempotency_key_conflict",
                shown(fingerprint)
            ),
            Self::Unreadable(why) => write!(
                f,
                "exists and its {IDEMPOTENCY_KEY_ANNOTATION} annotation cannot be read ({why})"
            ),
        }
    }
}

/// Whether an intent's place, holding `held_key` and `held_fingerprint` (its annotations),
/// may take `intent`: only when it holds the same idempotency key and, when both record
/// one, the same payload fingerprint. A place without a fingerprint (written before it was
/// recorded) belongs to whoever has the key. Shared by the sinks that read what is there.
pub(crate) fn check_claim(
    held_key: Option<&str>,
    held_fingerprint: Option<&str>,
    intent: &NetworkIntent,
) -> Result<(), Holder> {
    let Some(held_key) = held_key else {
        return Err(Holder::Unreadable("no such annotation".into()));
    };
    if intent.annotation(IDEMPOTENCY_KEY_ANNOTATION) != Some(held_key) {
        return Err(Holder::OtherKey(held_key.to_string()));
    }
    match (
        held_fingerprint,
        intent.annotation(PAYLOAD_FINGERPRINT_ANNOTATION),
    ) {
        (Some(held), Some(own)) if held != own => Err(Holder::OtherPayload(held.to_string())),
        _ => Ok(()),
    }
}

/// A key from a file, as it may be quoted: see [`escaped`].
fn shown(key: &str) -> String {
    escaped(key, MAX_SHOWN_KEY_CHARS)
}

/// Text from outside (a file, an API server), as it may be quoted: at most `max`
/// characters (then `…`), anything but printable ASCII and space escaped, so it can
/// forge neither log lines nor markup.
pub(crate) fn escaped(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' ' => out.push(c),
            c if c.is_ascii_graphic() => out.push(c),
            c => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
        }
    }
    out
}

/// The configured sink.
#[derive(Debug)]
pub enum IntentSink {
    Dir(DirSink),
    Stdout(StdoutSink),
    Discard(DiscardSink),
    Kube(KubeSink),
}

impl IntentSink {
    /// The sink `spec` names, ready to apply: for `kube`, a client configured in-cluster
    /// or from `KUBECONFIG` with `kube`'s settings (an error when there is no usable
    /// configuration); the others need nothing.
    pub async fn start(spec: SinkSpec, kube: KubeOptions) -> Result<Self, KubeStartError> {
        Ok(match spec {
            SinkSpec::Kube => Self::Kube(KubeSink::connect(kube).await?),
            SinkSpec::Dir(dir) => Self::Dir(DirSink::new(dir)),
            SinkSpec::Stdout => Self::Stdout(StdoutSink),
            SinkSpec::Discard => Self::Discard(DiscardSink),
        })
    }

    /// A `dir:` sink (tests, tools).
    pub fn dir(dir: PathBuf) -> Self {
        Self::Dir(DirSink::new(dir))
    }

    /// A sink that drops every intent (benchmarks).
    pub fn discard() -> Self {
        Self::Discard(DiscardSink)
    }

    /// Applies one intent; calling it again with the same intent changes nothing.
    pub async fn apply(&self, intent: &NetworkIntent) -> Result<(), ApplyError> {
        match self {
            Self::Dir(sink) => sink.apply(intent).await,
            Self::Stdout(sink) => sink.apply(intent).await,
            Self::Discard(sink) => sink.apply(intent).await,
            Self::Kube(sink) => sink.apply(intent).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sink_specs() {
        assert_eq!(
            "dir:./intents".parse::<SinkSpec>().unwrap(),
            SinkSpec::Dir("./intents".into())
        );
        assert_eq!("stdout".parse::<SinkSpec>().unwrap(), SinkSpec::Stdout);
        assert!("dir:".parse::<SinkSpec>().is_err());
        assert_eq!("kube".parse::<SinkSpec>().unwrap(), SinkSpec::Kube);
        assert_eq!(SinkSpec::Kube.to_string(), "kube");
        assert!("kube:x".parse::<SinkSpec>().unwrap_err().contains("kube"));
    }

    fn io(kind: std::io::ErrorKind) -> ApplyError {
        ApplyError::Io {
            path: "/intents/core5g/x.yaml".into(),
            source: std::io::Error::from(kind),
        }
    }

    fn conflict(holder: Holder) -> ApplyError {
        ApplyError::Conflict {
            path: "/intents/core5g/x.yaml".into(),
            holder,
        }
    }

    #[test]
    fn a_sink_that_may_heal_is_transient_and_a_wrong_intent_is_permanent() {
        use std::io::ErrorKind;
        for kind in [
            ErrorKind::PermissionDenied,
            ErrorKind::NotADirectory,
            ErrorKind::ReadOnlyFilesystem,
            ErrorKind::StorageFull,
            ErrorKind::NotFound,
            ErrorKind::TimedOut,
            ErrorKind::Other,
        ] {
            let err = io(kind);
            assert_eq!(err.transience(), Transience::Transient, "{kind:?}");
            assert!(err.is_transient() && !err.is_key_conflict(), "{kind:?}");
        }
        for kind in [ErrorKind::InvalidInput, ErrorKind::InvalidFilename] {
            assert_eq!(io(kind).transience(), Transience::Permanent, "{kind:?}");
        }
        let holders = [
            Holder::OtherKey("k".into()),
            Holder::OtherPayload("0101".into()),
            Holder::Unreadable("not YAML".into()),
        ];
        for holder in holders {
            let key_conflict = matches!(holder, Holder::OtherPayload(_));
            let err = conflict(holder);
            assert_eq!(err.transience(), Transience::Permanent, "{err}");
            assert_eq!(err.is_key_conflict(), key_conflict, "{err}");
        }
        let unserialisable =
            ApplyError::Serialise(<serde_yaml::Error as serde::ser::Error>::custom("no"));
        assert_eq!(unserialisable.transience(), Transience::Permanent);
        assert_eq!(Transience::Transient.as_str(), "transient");
        assert_eq!(Transience::Permanent.as_str(), "permanent");
    }
}
