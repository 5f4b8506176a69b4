//! One key's dedup entry, and its encoding as a changelog record value.
//!
//! An entry is small on purpose (32 bytes beside its key): it holds what a `duplicate`
//! outcome must name, the fingerprint of the payload that claimed the key (so the same
//! key with another payload is a conflict, not a duplicate), and what the window and the
//! bound need, nothing more. The intent name is not stored, since it is a pure function
//! of the key; its namespace is interned by the partition's store (there are few).
//!
//! The changelog value is a fixed binary layout with a version byte, followed by the
//! namespace: cheap to restore by the million. Version 2 (31 bytes) adds the fingerprint;
//! version 1 values (23 bytes, written by earlier builds) are still read, with the
//! fingerprint unknown, which matches any payload (as those builds behaved).

use crate::decode::Fingerprint;
use crate::outcome::{ErrorCode, Stage};
use crate::request::MessageType;
use crate::translate::TranslatorKind;

/// What is known of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub state: State,
    /// Offset of the message whose processing this is (in this partition): the first to
    /// carry the key, or the one that processed it again after a `failed`. A message at
    /// this offset is a redelivery of that processing, with its event ids
    /// ([`crate::outcome::event_id`]), which need nothing else stored.
    pub offset: i64,
    /// When the attempt started (in progress) or ended (done), Unix seconds.
    pub since: u32,
    /// When the key was last seen, Unix seconds: what the window and the bound go by.
    pub last_seen: u32,
    /// The intent's namespace, as an index into the store's namespaces (0: none).
    pub namespace: u16,
    /// The fingerprint of the payload that claimed the key; `None` when unknown (an
    /// entry written by a build before fingerprints), which matches any payload.
    pub fingerprint: Option<Fingerprint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// An attempt started and has not ended; after a crash, the next one takes it over.
    InProgress,
    /// The message's processing ended with `stage` (applied, rejected or failed).
    Done(Outcome),
}

/// The terminal outcome a `duplicate` refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub stage: Stage,
    pub message_type: Option<MessageType>,
    pub translator: Option<TranslatorKind>,
    pub error: Option<ErrorCode>,
}

/// The version this build writes; it reads [`VERSION_1`] too.
const VERSION: u8 = 2;
const VERSION_1: u8 = 1;
/// Fixed part of a version 1 value: version, four codes, two reserved bytes, offset,
/// since, last seen.
const FIXED_LEN_V1: usize = 23;
/// Version 2 adds the fingerprint after the version 1 fields; byte 5 holds flags.
const FIXED_LEN: usize = FIXED_LEN_V1 + 8;
/// Flag: the fingerprint bytes hold a fingerprint (else it is unknown).
const FLAG_FINGERPRINT: u8 = 1;

/// Why a changelog value could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("changelog value of version {version} with {len} bytes; expected at least {min}")]
    Length { version: u8, len: usize, min: usize },
    #[error("changelog value with a namespace that is not UTF-8")]
    Namespace,
    #[error("changelog value of version {0}; this build reads versions {VERSION_1} and {VERSION}")]
    Version(u8),
    #[error("changelog value with an unknown {0} code {1}")]
    Code(&'static str, u8),
}

impl Entry {
    /// The changelog value of this entry, whose intent is in `namespace`.
    pub fn encode(&self, namespace: Option<&str>) -> Vec<u8> {
        let namespace = namespace.unwrap_or_default().as_bytes();
        let mut out = vec![0u8; FIXED_LEN + namespace.len()];
        out[0] = VERSION;
        match self.state {
            State::InProgress => {}
            State::Done(o) => {
                out[1] = stage_code(o.stage);
                out[2] = o.message_type.map_or(0, message_type_code);
                out[3] = o.translator.map_or(0, translator_code);
                out[4] = o.error.map_or(0, error_code);
            }
        }
        out[7..15].copy_from_slice(&self.offset.to_be_bytes());
        out[15..19].copy_from_slice(&self.since.to_be_bytes());
        out[19..23].copy_from_slice(&self.last_seen.to_be_bytes());
        if let Some(fingerprint) = self.fingerprint {
            out[5] |= FLAG_FINGERPRINT;
            out[FIXED_LEN_V1..FIXED_LEN].copy_from_slice(&fingerprint);
        }
        out[FIXED_LEN..].copy_from_slice(namespace);
        out
    }

    /// Reads a changelog value: the entry (its `namespace` index unset) and the namespace.
    pub fn decode(bytes: &[u8]) -> Result<(Self, Option<&str>), DecodeError> {
        let version = *bytes.first().ok_or(DecodeError::Length {
            version: 0,
            len: 0,
            min: FIXED_LEN_V1,
        })?;
        let fixed = match version {
            VERSION => FIXED_LEN,
            VERSION_1 => FIXED_LEN_V1,
            other => return Err(DecodeError::Version(other)),
        };
        if bytes.len() < fixed {
            return Err(DecodeError::Length {
                version,
                len: bytes.len(),
                min: fixed,
            });
        }
        let namespace = std::str::from_utf8(&bytes[fixed..]).map_err(|_| DecodeError::Namespace)?;
        let namespace = (!namespace.is_empty()).then_some(namespace);
        let fingerprint = (version == VERSION && bytes[5] & FLAG_FINGERPRINT != 0).then(|| {
            let mut fingerprint = Fingerprint::default();
            fingerprint.copy_from_slice(&bytes[FIXED_LEN_V1..FIXED_LEN]);
            fingerprint
        });
        let word = |range: std::ops::Range<usize>| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[range]);
            u32::from_be_bytes(b)
        };
        let mut offset = [0u8; 8];
        offset.copy_from_slice(&bytes[7..15]);
        let state = match bytes[1] {
            0 => State::InProgress,
            code => State::Done(Outcome {
                stage: stage_from(code).ok_or(DecodeError::Code("stage", code))?,
                message_type: optional(bytes[2], message_type_from, "message type")?,
                translator: optional(bytes[3], translator_from, "translator")?,
                error: optional(bytes[4], error_from, "error")?,
            }),
        };
        let entry = Self {
            state,
            offset: i64::from_be_bytes(offset),
            since: word(15..19),
            last_seen: word(19..23),
            namespace: 0,
            fingerprint,
        };
        Ok((entry, namespace))
    }
}

fn optional<T>(
    code: u8,
    from: fn(u8) -> Option<T>,
    what: &'static str,
) -> Result<Option<T>, DecodeError> {
    match code {
        0 => Ok(None),
        code => from(code).map(Some).ok_or(DecodeError::Code(what, code)),
    }
}

// Wire codes: fixed forever (the changelog outlives builds); 0 means "none".
const STAGES: [(Stage, u8); 5] = [
    (Stage::Applied, 1),
    (Stage::Rejected, 2),
    (Stage::Failed, 3),
    (Stage::Deployed, 4),
    // A closed-loop event folded into an earlier scale-out ([`crate::cooldown`]).
    (Stage::Duplicate, 5),
];
const ERRORS: [(ErrorCode, u8); 16] = [
    (ErrorCode::InvalidJson, 1),
    (ErrorCode::InvalidSchema, 2),
    (ErrorCode::UnknownMessageType, 3),
    (ErrorCode::EmptyIntent, 4),
    (ErrorCode::InvalidIdempotencyKey, 5),
    (ErrorCode::Untranslatable, 6),
    (ErrorCode::InvalidIntent, 7),
    (ErrorCode::ApplyFailed, 8),
    (ErrorCode::InvalidRecord, 9),
    (ErrorCode::PolicyDenied, 10),
    (ErrorCode::IdempotencyKeyConflict, 11),
    (ErrorCode::NamespaceNotFound, 12),
    (ErrorCode::DeployFailed, 13),
    (ErrorCode::UnknownSchemaId, 14),
    (ErrorCode::UnknownSchemaFingerprint, 15),
    (ErrorCode::InvalidAvro, 16),
];

fn stage_code(stage: Stage) -> u8 {
    STAGES
        .iter()
        .find(|(s, _)| *s == stage)
        .map_or(1, |(_, c)| *c)
}
fn stage_from(code: u8) -> Option<Stage> {
    STAGES.iter().find(|(_, c)| *c == code).map(|(s, _)| *s)
}
fn error_code(error: ErrorCode) -> u8 {
    ERRORS
        .iter()
        .find(|(e, _)| *e == error)
        .map_or(0, |(_, c)| *c)
}
fn error_from(code: u8) -> Option<ErrorCode> {
    ERRORS.iter().find(|(_, c)| *c == code).map(|(e, _)| *e)
}
fn message_type_code(t: MessageType) -> u8 {
    match t {
        MessageType::ServiceRequest => 1,
        MessageType::NetworkEvent => 2,
    }
}
fn message_type_from(code: u8) -> Option<MessageType> {
    match code {
        1 => Some(MessageType::ServiceRequest),
        2 => Some(MessageType::NetworkEvent),
        _ => None,
    }
}
fn translator_code(t: TranslatorKind) -> u8 {
    match t {
        TranslatorKind::Rules => 1,
        TranslatorKind::Llm => 2,
    }
}
fn translator_from(code: u8) -> Option<TranslatorKind> {
    match code {
        1 => Some(TranslatorKind::Rules),
        2 => Some(TranslatorKind::Llm),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> [Entry; 4] {
        [
            Entry {
                state: State::InProgress,
                offset: 0,
                since: 1,
                last_seen: 2,
                namespace: 0,
                fingerprint: Some([1, 2, 3, 4, 5, 6, 7, 8]),
            },
            Entry {
                state: State::Done(Outcome {
                    stage: Stage::Applied,
                    message_type: Some(MessageType::NetworkEvent),
                    translator: Some(TranslatorKind::Llm),
                    error: None,
                }),
                offset: i64::MAX,
                since: u32::MAX,
                last_seen: 7,
                namespace: 0,
                fingerprint: Some([0; 8]),
            },
            Entry {
                state: State::Done(Outcome {
                    stage: Stage::Rejected,
                    message_type: None,
                    translator: None,
                    error: Some(ErrorCode::ApplyFailed),
                }),
                offset: 42,
                since: 3,
                last_seen: 4,
                namespace: 0,
                fingerprint: None,
            },
            Entry {
                state: State::Done(Outcome {
                    stage: Stage::Duplicate,
                    message_type: Some(MessageType::NetworkEvent),
                    translator: Some(TranslatorKind::Rules),
                    error: None,
                }),
                offset: 43,
                since: 5,
                last_seen: 6,
                namespace: 0,
                fingerprint: Some([0xff; 8]),
            },
        ]
    }

    #[test]
    fn entries_round_trip() {
        for entry in entries() {
            assert_eq!(Entry::decode(&entry.encode(None)), Ok((entry, None)));
            assert_eq!(
                Entry::decode(&entry.encode(Some("core5g"))),
                Ok((entry, Some("core5g")))
            );
        }
        // every error code has a wire code of its own
        for error in ErrorCode::ALL {
            assert_eq!(error_from(error_code(error)), Some(error), "{error:?}");
        }
        // and so does every terminal stage
        for stage in Stage::ALL.into_iter().filter(|s| s.is_terminal()) {
            assert_eq!(stage_from(stage_code(stage)), Some(stage), "{stage:?}");
        }
    }

    /// A version 1 value, byte for byte as the build before fingerprints wrote it.
    fn version_1(entry: &Entry, namespace: &str) -> Vec<u8> {
        let mut out = vec![0u8; FIXED_LEN_V1];
        out[0] = 1;
        if let State::Done(o) = entry.state {
            out[1] = stage_code(o.stage);
            out[2] = o.message_type.map_or(0, message_type_code);
            out[3] = o.translator.map_or(0, translator_code);
            out[4] = o.error.map_or(0, error_code);
        }
        out[7..15].copy_from_slice(&entry.offset.to_be_bytes());
        out[15..19].copy_from_slice(&entry.since.to_be_bytes());
        out[19..23].copy_from_slice(&entry.last_seen.to_be_bytes());
        out.extend_from_slice(namespace.as_bytes());
        out
    }

    #[test]
    fn version_1_values_are_read_with_an_unknown_fingerprint() {
        for entry in entries() {
            let old = version_1(&entry, "core5g");
            let expected = Entry {
                fingerprint: None,
                ..entry
            };
            assert_eq!(Entry::decode(&old), Ok((expected, Some("core5g"))));
            let old = version_1(&entry, "");
            assert_eq!(Entry::decode(&old), Ok((expected, None)));
        }
        // A literal one, in case the helper above drifts with the encoder.
        let literal = [
            1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 10, 0, 0, 0, 11, b'n', b's',
        ];
        let (entry, namespace) = Entry::decode(&literal).unwrap();
        assert_eq!(namespace, Some("ns"));
        assert_eq!((entry.offset, entry.since, entry.last_seen), (9, 10, 11));
        assert_eq!(entry.fingerprint, None);
        assert!(matches!(entry.state, State::Done(o) if o.stage == Stage::Applied));
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        assert!(matches!(
            Entry::decode(&[]),
            Err(DecodeError::Length { len: 0, .. })
        ));
        assert_eq!(
            Entry::decode(&[1, 2, 3]),
            Err(DecodeError::Length {
                version: 1,
                len: 3,
                min: FIXED_LEN_V1
            })
        );
        // a version 2 value cut after the version 1 fields
        let mut bytes = [0u8; FIXED_LEN_V1];
        bytes[0] = VERSION;
        assert_eq!(
            Entry::decode(&bytes),
            Err(DecodeError::Length {
                version: 2,
                len: FIXED_LEN_V1,
                min: FIXED_LEN
            })
        );
        let mut bytes = [0u8; FIXED_LEN];
        assert_eq!(Entry::decode(&bytes), Err(DecodeError::Version(0)));
        bytes[0] = 3;
        assert_eq!(Entry::decode(&bytes), Err(DecodeError::Version(3)));
        bytes[0] = VERSION;
        bytes[1] = 99;
        assert_eq!(Entry::decode(&bytes), Err(DecodeError::Code("stage", 99)));
        bytes[1] = 0;
        let mut with_namespace = bytes.to_vec();
        with_namespace.extend_from_slice(&[0xff, 0xfe]);
        assert_eq!(Entry::decode(&with_namespace), Err(DecodeError::Namespace));
    }

    #[test]
    fn an_entry_is_small() {
        assert!(std::mem::size_of::<Entry>() <= 32);
    }
}
