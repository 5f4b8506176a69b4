//! What `dlq replay` remembers, so that it never replays a dead letter twice: one record
//! per dead letter in the compacted topic `<DLQ_TOPIC>.replayed`, keyed by the letter's
//! identity ([`super::letter::Letter::identity`]), kept in Kafka rather than on a local
//! disk because the command runs from anywhere.
//!
//! A letter is marked `replaying` (acknowledged) before it is re-published, and
//! `replayed` (with where it went) after. A crash between the two leaves it `replaying`:
//! in doubt, it may or may not have been re-published. The next run replays it again;
//! the worker processes a dead letter's replay at most once (see
//! [`crate::dedup::REPLAY_OF_HEADER`]), so a second copy is answered `duplicate`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Keys longer than this are not ours (an identity is an event id or a place on the
/// dead-letter topic) and are not kept.
const MAX_IDENTITY_BYTES: usize = 512;

/// The topic that remembers the replays of dead letters from `dlq_topic`.
pub fn topic_of(dlq_topic: &str) -> String {
    format!("{dlq_topic}.replayed")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// About to be re-published; not known to be.
    Replaying,
    /// Re-published, and acknowledged.
    Replayed,
}

/// The value of a record of the remembered set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub state: State,
    /// Where the dead letter is, `topic[partition]@offset`.
    pub dead_letter: String,
    /// Where its original was (and where it is replayed to).
    pub source: String,
    /// Where the replay landed, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// When the mark was written, RFC 3339.
    pub at: String,
}

impl Mark {
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings: serialisation cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// What a previous run did with a dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Marked `replaying` and never `replayed`: a run stopped in between.
    InDoubt,
    /// Re-published (to this place, when the mark says).
    Replayed { to: Option<String> },
}

/// Every dead letter a run has marked, read from the remembered set: about 100 bytes per
/// letter ever replayed (the topic is compacted: one record per letter).
#[derive(Debug, Default)]
pub struct Remembered {
    seen: HashMap<Box<str>, Seen>,
}

impl Remembered {
    /// Applies one record of the remembered set, in topic order: a mark sets what is known
    /// of its letter, a tombstone forgets it (an operator's way to allow a replay again).
    /// A value that is not a mark counts as replayed: never twice wins over a guess.
    pub fn restore(&mut self, key: Option<&[u8]>, value: Option<&[u8]>) {
        let Some(identity) = key
            .filter(|k| k.len() <= MAX_IDENTITY_BYTES)
            .and_then(|k| std::str::from_utf8(k).ok())
        else {
            return;
        };
        let Some(value) = value else {
            self.seen.remove(identity);
            return;
        };
        let seen = match serde_json::from_slice::<Mark>(value) {
            Ok(Mark {
                state: State::Replaying,
                ..
            }) => Seen::InDoubt,
            Ok(Mark { to, .. }) => Seen::Replayed {
                to: to.filter(|to| to.len() <= MAX_IDENTITY_BYTES),
            },
            Err(_) => Seen::Replayed { to: None },
        };
        self.seen.insert(identity.into(), seen);
    }

    pub fn get(&self, identity: &str) -> Option<&Seen> {
        self.seen.get(identity)
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(state: State, to: Option<&str>) -> Vec<u8> {
        Mark {
            state,
            dead_letter: "intent-dlq[0]@3".into(),
            source: "service-requests[1]@9".into(),
            to: to.map(str::to_string),
            at: "2026-11-29T21:00:00.000Z".into(),
        }
        .to_json()
    }

    #[test]
    fn the_last_mark_of_a_letter_says_what_was_done() {
        let mut r = Remembered::default();
        r.restore(Some(b"id-1"), Some(&mark(State::Replaying, None)));
        assert_eq!(r.get("id-1"), Some(&Seen::InDoubt));
        r.restore(
            Some(b"id-1"),
            Some(&mark(State::Replayed, Some("service-requests[1]@12"))),
        );
        assert_eq!(
            r.get("id-1"),
            Some(&Seen::Replayed {
                to: Some("service-requests[1]@12".into())
            })
        );
        // A tombstone forgets it; a value that is not a mark counts as replayed.
        r.restore(Some(b"id-1"), None);
        assert_eq!(r.get("id-1"), None);
        r.restore(Some(b"id-2"), Some(b"garbage"));
        assert_eq!(r.get("id-2"), Some(&Seen::Replayed { to: None }));
        // Keys that cannot be an identity are not kept.
        r.restore(None, Some(&mark(State::Replayed, None)));
        r.restore(Some(&[0xff]), Some(&mark(State::Replayed, None)));
        r.restore(Some(&[b'k'; 513]), Some(&mark(State::Replayed, None)));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn a_mark_reads_back_as_written() {
        let written = mark(State::Replayed, Some("t[0]@1"));
        let text = String::from_utf8(written.clone()).unwrap();
        assert!(text.contains(r#""state":"replayed""#), "{text}");
        let back: Mark = serde_json::from_slice(&written).unwrap();
        assert_eq!(back.to.as_deref(), Some("t[0]@1"));
        assert_eq!(topic_of("intent-dlq"), "intent-dlq.replayed");
    }
}
