//! The dedup state of one input partition: idempotency key to [`Entry`], in memory.
//!
//! Filled from the partition's changelog when the partition is assigned, then kept up to
//! date by the worker, which writes every change to the changelog too. Memory is finite:
//! an entry not seen for the window is forgotten, and at the entry bound the entries seen
//! least recently are evicted first. Both return the keys they dropped, for the caller to
//! tombstone in the changelog.

use std::collections::HashMap;

use super::entry::{DecodeError, Entry, State};
use crate::decode::Fingerprint;
use crate::outcome::Stage;

/// How much a partition's state may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Seconds after its last sighting that a key stops deduplicating.
    pub window_secs: u32,
    /// Entries per partition; at the bound the least recently seen go first.
    pub max_entries: usize,
}

/// What the state says about a message's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Never seen (or seen longer ago than the window): process it.
    New,
    /// An attempt started and never ended (a crash): process it again, to the end.
    TakeOver(Entry),
    /// This very message (same offset) was completed but its offset not committed:
    /// publish its outcome again, do nothing else.
    Redelivery(Entry),
    /// The key's last processing (another message, same payload) ended `failed`: the
    /// cause may have been fixed since, so this message is a new processing of the key
    /// (new event ids). A `rejected` key is not retried: the same payload would be
    /// rejected again, so it is a [`Check::Duplicate`], unless it replays the key's dead
    /// letter ([`Check::Replay`]).
    Retry(Entry),
    /// Another message with this key and the same payload was completed: publish
    /// `duplicate`, nothing else.
    Duplicate(Entry),
    /// The key's last processing (another message, same payload) ended `rejected`, and
    /// this message replays that processing's dead letter ([`PartitionStore::check_replay`]):
    /// the cause may have been fixed since, so it is a new processing of the key, once
    /// (the new processing's dead letter, if any, has another id).
    Replay(Entry),
    /// The key was claimed by a message with another payload (completed or not): this
    /// one is `rejected` as a conflict, and the entry stays the claimant's.
    Conflict(Entry),
}

#[derive(Debug)]
pub struct PartitionStore {
    entries: HashMap<Box<str>, Entry>,
    /// Intent namespaces, interned: entry `namespace` n > 0 is `namespaces[n - 1]`.
    namespaces: Vec<Box<str>>,
    limits: Limits,
}

impl PartitionStore {
    pub fn new(limits: Limits) -> Self {
        Self {
            entries: HashMap::new(),
            namespaces: Vec::new(),
            limits,
        }
    }

    /// The namespace an entry's intent is in.
    pub fn namespace(&self, entry: &Entry) -> Option<&str> {
        let index = usize::from(entry.namespace).checked_sub(1)?;
        self.namespaces.get(index).map(|n| &**n)
    }

    /// The index of `namespace`, adding it if new. Namespaces are DNS labels that passed
    /// validation and are few; past 65 535 of them, new ones are not recorded (a
    /// `duplicate` then names the intent without its namespace).
    fn intern(&mut self, namespace: Option<&str>) -> u16 {
        let Some(namespace) = namespace else { return 0 };
        if let Some(i) = self.namespaces.iter().position(|n| &**n == namespace) {
            return u16::try_from(i + 1).unwrap_or(0);
        }
        match u16::try_from(self.namespaces.len() + 1) {
            Ok(index) => {
                self.namespaces.push(namespace.into());
                index
            }
            Err(_) => 0,
        }
    }

    /// Makes room for `additional` entries at once (a restore knows roughly how many).
    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional);
    }

    /// A key's entry as it stands, without counting as a sighting.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Applies one changelog record while restoring: a value sets the key's entry, a
    /// tombstone (no value) removes it. Bounds are applied afterwards by [`Self::trim`].
    pub fn restore(&mut self, key: &str, value: Option<&[u8]>) -> Result<(), DecodeError> {
        match value {
            Some(bytes) => {
                let (mut entry, namespace) = Entry::decode(bytes)?;
                entry.namespace = self.intern(namespace);
                self.entries.insert(key.into(), entry);
            }
            None => {
                self.entries.remove(key);
            }
        }
        Ok(())
    }

    /// Looks up the key of the message at `offset` whose payload has `fingerprint`, at
    /// `now`; a duplicate refreshes the key's last sighting (a conflict does not: it is
    /// not a sighting of the claimant's request).
    pub fn check(&mut self, key: &str, offset: i64, fingerprint: Fingerprint, now: u32) -> Check {
        let window = self.limits.window_secs;
        let Some(entry) = self.entries.get_mut(key) else {
            return Check::New;
        };
        if now.saturating_sub(entry.last_seen) > window {
            self.entries.remove(key);
            return Check::New;
        }
        // The same offset is the same record, whatever the fingerprint says.
        let same_payload =
            entry.offset == offset || entry.fingerprint.is_none_or(|f| f == fingerprint);
        match entry.state {
            _ if !same_payload => Check::Conflict(*entry),
            State::InProgress => Check::TakeOver(*entry),
            State::Done(_) if entry.offset == offset => Check::Redelivery(*entry),
            State::Done(o) if o.stage == Stage::Failed => Check::Retry(*entry),
            State::Done(_) => {
                entry.last_seen = now;
                Check::Duplicate(*entry)
            }
        }
    }

    /// [`Self::check`] for a message that claims to replay the dead letter of the key's
    /// last processing: `replays(entry)` says whether its claim names the dead letter of
    /// the processing `entry` records. Only a `rejected` entry is replayed this way (a
    /// `failed` one is retried by any re-send, [`Check::Retry`]; an applied one never is),
    /// and only with the same payload (another is still a conflict).
    pub fn check_replay(
        &mut self,
        key: &str,
        offset: i64,
        fingerprint: Fingerprint,
        now: u32,
        replays: impl FnOnce(&Entry) -> bool,
    ) -> Check {
        match self.check(key, offset, fingerprint, now) {
            Check::Duplicate(entry)
                if matches!(entry.state, State::Done(o) if o.stage == Stage::Rejected)
                    && replays(&entry) =>
            {
                Check::Replay(entry)
            }
            other => other,
        }
    }

    /// Sets a key's entry, whose intent is in `namespace`. Returns the keys evicted to
    /// stay within the bound.
    pub fn insert(
        &mut self,
        key: &str,
        mut entry: Entry,
        namespace: Option<&str>,
    ) -> Vec<Box<str>> {
        entry.namespace = self.intern(namespace);
        if let Some(existing) = self.entries.get_mut(key) {
            *existing = entry;
            return Vec::new();
        }
        let mut evicted = Vec::new();
        if self.entries.len() >= self.limits.max_entries {
            // Evict 1% at a time, so a full partition pays for the scan rarely.
            let over = self.entries.len() + 1 - self.limits.max_entries;
            evicted = self.evict_oldest(over.max(self.limits.max_entries / 100));
        }
        self.entries.insert(key.into(), entry);
        evicted
    }

    /// Drops entries older than the window, then the oldest beyond the bound. Returns the
    /// dropped keys, windowed ones first, and how many of them were windowed.
    pub fn trim(&mut self, now: u32) -> (Vec<Box<str>>, usize) {
        let window = self.limits.window_secs;
        let mut dropped: Vec<Box<str>> = self
            .entries
            .extract_if(|_, e| now.saturating_sub(e.last_seen) > window)
            .map(|(k, _)| k)
            .collect();
        let expired = dropped.len();
        if self.entries.len() > self.limits.max_entries {
            let over = self.entries.len() - self.limits.max_entries;
            dropped.extend(self.evict_oldest(over));
        }
        (dropped, expired)
    }

    /// Removes the `n` least recently seen entries; ties go by offset, oldest first.
    fn evict_oldest(&mut self, n: usize) -> Vec<Box<str>> {
        if n == 0 || self.entries.is_empty() {
            return Vec::new();
        }
        let mut ages: Vec<(u32, i64)> = self
            .entries
            .values()
            .map(|e| (e.last_seen, e.offset))
            .collect();
        let n = n.min(ages.len());
        let (_, cutoff, _) = ages.select_nth_unstable(n - 1);
        let cutoff = *cutoff;
        self.entries
            .extract_if(|_, e| (e.last_seen, e.offset) <= cutoff)
            .map(|(k, _)| k)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::entry::Outcome;
    use crate::outcome::ErrorCode;

    fn done(offset: i64, at: u32) -> Entry {
        Entry {
            state: State::Done(Outcome {
                stage: Stage::Applied,
                message_type: None,
                translator: None,
                error: None,
            }),
            offset,
            since: at,
            last_seen: at,
            namespace: 0,
            fingerprint: Some(PAYLOAD),
        }
    }

    const PAYLOAD: Fingerprint = [7; 8];
    const OTHER: Fingerprint = [8; 8];

    fn store(max_entries: usize) -> PartitionStore {
        PartitionStore::new(Limits {
            window_secs: 100,
            max_entries,
        })
    }

    #[test]
    fn checks_follow_the_entry() {
        let mut s = store(10);
        assert_eq!(s.check("k", 5, PAYLOAD, 1000), Check::New);
        let started = Entry {
            state: State::InProgress,
            ..done(5, 1000)
        };
        s.insert("k", started, None);
        assert_eq!(s.check("k", 5, PAYLOAD, 1001), Check::TakeOver(started));
        s.insert("k", done(5, 1002), Some("core5g"));
        let Check::Redelivery(entry) = s.check("k", 5, PAYLOAD, 1003) else {
            panic!("the same message again is a redelivery")
        };
        assert_eq!(s.namespace(&entry), Some("core5g"));
        let Check::Duplicate(original) = s.check("k", 9, PAYLOAD, 1050) else {
            panic!("a second message with the key is a duplicate")
        };
        assert_eq!(original.offset, 5);
        // the duplicate refreshed the sighting: still within the window 100 s later
        assert!(matches!(
            s.check("k", 10, PAYLOAD, 1149),
            Check::Duplicate(_)
        ));
        // and past the window the key is new again
        assert_eq!(s.check("k", 11, PAYLOAD, 1250), Check::New);
        assert!(s.is_empty());
    }

    #[test]
    fn a_failed_key_is_retried_and_a_rejected_one_is_not() {
        let mut s = store(10);
        let ended = |stage, error| Entry {
            state: State::Done(Outcome {
                stage,
                message_type: None,
                translator: None,
                error: Some(error),
            }),
            ..done(5, 1000)
        };
        let failed = ended(Stage::Failed, ErrorCode::ApplyFailed);
        s.insert("f", failed, None);
        // its own redelivery is still a redelivery (same processing, same events)
        assert_eq!(s.check("f", 5, PAYLOAD, 1001), Check::Redelivery(failed));
        // the payload sent again is a new processing
        assert_eq!(s.check("f", 9, PAYLOAD, 1001), Check::Retry(failed));
        // another payload under the failed key is still a conflict
        assert_eq!(s.check("f", 9, OTHER, 1001), Check::Conflict(failed));
        let rejected = ended(Stage::Rejected, ErrorCode::PolicyDenied);
        s.insert("r", rejected, None);
        assert!(matches!(
            s.check("r", 9, PAYLOAD, 1001),
            Check::Duplicate(_)
        ));
    }

    #[test]
    fn a_replay_reprocesses_a_rejected_key_once_and_nothing_else() {
        let mut s = store(10);
        let ended = |stage, error, offset| Entry {
            state: State::Done(Outcome {
                stage,
                message_type: None,
                translator: None,
                error,
            }),
            ..done(offset, 1000)
        };
        // Names the dead letter of the processing at offset 5 only.
        let of_5 = |e: &Entry| e.offset == 5;
        let rejected = ended(Stage::Rejected, Some(ErrorCode::PolicyDenied), 5);
        s.insert("r", rejected, None);
        assert_eq!(
            s.check_replay("r", 9, PAYLOAD, 1001, of_5),
            Check::Replay(Entry {
                last_seen: 1001,
                ..rejected
            })
        );
        // Another payload is still a conflict; its own redelivery still a redelivery.
        assert!(matches!(
            s.check_replay("r", 9, OTHER, 1001, of_5),
            Check::Conflict(_)
        ));
        assert!(matches!(
            s.check_replay("r", 5, PAYLOAD, 1001, of_5),
            Check::Redelivery(_)
        ));
        // Once the replay's processing is the entry (offset 9), the same claim names a
        // dead letter of an earlier processing: a duplicate.
        s.insert(
            "r",
            ended(Stage::Rejected, Some(ErrorCode::PolicyDenied), 9),
            None,
        );
        assert!(matches!(
            s.check_replay("r", 10, PAYLOAD, 1002, of_5),
            Check::Duplicate(_)
        ));
        // Never an applied key, whatever the claim; a failed one is retried anyway.
        s.insert("a", ended(Stage::Applied, None, 5), None);
        assert!(matches!(
            s.check_replay("a", 9, PAYLOAD, 1001, |_| true),
            Check::Duplicate(_)
        ));
        s.insert(
            "f",
            ended(Stage::Failed, Some(ErrorCode::ApplyFailed), 5),
            None,
        );
        assert!(matches!(
            s.check_replay("f", 9, PAYLOAD, 1001, |_| false),
            Check::Retry(_)
        ));
        // A claim that names no dead letter of the key changes nothing.
        assert!(matches!(
            s.check_replay("r", 11, PAYLOAD, 1003, |_| false),
            Check::Duplicate(_)
        ));
    }

    #[test]
    fn another_payload_under_a_claimed_key_is_a_conflict() {
        let mut s = store(10);
        let started = Entry {
            state: State::InProgress,
            ..done(5, 1000)
        };
        s.insert("k", started, None);
        // an attempt in flight (or crashed) is the claimant too
        assert_eq!(s.check("k", 6, OTHER, 1001), Check::Conflict(started));
        s.insert("k", done(5, 1002), None);
        let Check::Conflict(claimant) = s.check("k", 9, OTHER, 1050) else {
            panic!("another payload under the key is a conflict")
        };
        assert_eq!((claimant.offset, claimant.last_seen), (5, 1002));
        // the conflict changed nothing: the claimant's payload is still a duplicate, and
        // the window still counts from the claimant's last sighting
        assert!(matches!(
            s.check("k", 10, PAYLOAD, 1051),
            Check::Duplicate(_)
        ));
        assert!(matches!(s.check("k", 5, OTHER, 1052), Check::Redelivery(_)));
        // an entry from before fingerprints matches any payload
        let old = Entry {
            fingerprint: None,
            ..done(20, 1000)
        };
        s.insert("old", old, None);
        assert!(matches!(
            s.check("old", 21, OTHER, 1001),
            Check::Duplicate(_)
        ));
    }

    #[test]
    fn the_bound_evicts_the_least_recently_seen_first() {
        let mut s = store(100);
        for i in 0..100 {
            assert!(s.insert(&format!("k{i}"), done(i, 1000), None).is_empty());
        }
        // seeing k0 again makes it the most recent
        assert!(matches!(
            s.check("k0", 1000, PAYLOAD, 1001),
            Check::Duplicate(_)
        ));
        let evicted = s.insert("new", done(100, 1002), None);
        assert_eq!(evicted.len(), 1, "1% of the bound");
        assert_eq!(&*evicted[0], "k1", "oldest sighting, lowest offset");
        assert_eq!(s.len(), 100);
        assert!(
            matches!(s.check("k0", 1001, PAYLOAD, 1003), Check::Duplicate(_)),
            "k0 kept"
        );
    }

    #[test]
    fn trim_applies_the_window_then_the_bound() {
        let mut s = store(3);
        for i in 0..6 {
            s.restore(
                &format!("k{i}"),
                Some(&done(i, 1000 + i as u32).encode(None)),
            )
            .unwrap();
        }
        s.restore("k5", None).unwrap();
        assert_eq!(s.len(), 5);
        // at 1101, k0 (1000) is past the window of 100 s
        let (dropped, expired) = s.trim(1101);
        assert_eq!(expired, 1);
        let mut dropped: Vec<_> = dropped.iter().map(|k| k.to_string()).collect();
        dropped.sort();
        assert_eq!(dropped, ["k0", "k1"]);
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn a_corrupt_changelog_value_is_an_error() {
        let mut s = store(3);
        assert!(s.restore("k", Some(b"garbage")).is_err());
        assert!(s.is_empty());
    }
}
