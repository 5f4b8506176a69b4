//! Which message runs next: in parallel across keys, in order within a key.
//!
//! LLM calls take seconds, so a partition is never worked one message at a time. Messages
//! queue in lanes, one lane per (partition, ordering key); a lane runs one message at a
//! time, in arrival order, and lanes run side by side up to `max_in_flight` at once. The
//! ordering key is the record's Kafka key, or its idempotency key when it has none (see
//! [`ordering_key`]). Lanes take turns in the order they became ready, so a busy key does
//! not starve the others.
//!
//! Kafka-agnostic and synchronous: the worker pushes what it consumed, takes what may
//! start, and says when a started message is finished. Bounds: at most `max_in_flight`
//! messages started and not finished; how many wait is bounded by the worker, which
//! pauses a partition that has too many messages outstanding.

use std::collections::{HashMap, VecDeque};

/// A consumed partition: topic and partition number.
pub type PartitionId = (String, i32);

/// One lane: the messages of one ordering key of one partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lane {
    pub partition: PartitionId,
    pub key: Box<[u8]>,
}

#[derive(Debug)]
struct LaneState<T> {
    running: bool,
    waiting: VecDeque<T>,
}

/// The key messages are ordered by: the record key, else the idempotency key. Producers
/// are asked to use the idempotency key as the record key, so both usually agree; a
/// producer that keys by something else (a cell, a slice) gets that key's order.
pub fn ordering_key(record_key: Option<&[u8]>, idempotency_key: &str) -> Box<[u8]> {
    record_key.unwrap_or(idempotency_key.as_bytes()).into()
}

#[derive(Debug)]
pub struct Scheduler<T> {
    max_in_flight: usize,
    in_flight: usize,
    lanes: HashMap<Lane, LaneState<T>>,
    /// Lanes whose next message may start, oldest first. May name lanes since dropped.
    ready: VecDeque<Lane>,
    /// Messages waiting (not started), per partition.
    waiting: HashMap<PartitionId, usize>,
}

impl<T> Scheduler<T> {
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            max_in_flight: max_in_flight.max(1),
            in_flight: 0,
            lanes: HashMap::new(),
            ready: VecDeque::new(),
            waiting: HashMap::new(),
        }
    }

    /// Queues a message behind the earlier ones of its lane.
    pub fn push(&mut self, lane: Lane, message: T) {
        *self.waiting.entry(lane.partition.clone()).or_default() += 1;
        let state = self.lanes.entry(lane.clone()).or_insert_with(|| LaneState {
            running: false,
            waiting: VecDeque::new(),
        });
        let idle = !state.running && state.waiting.is_empty();
        state.waiting.push_back(message);
        if idle {
            self.ready.push_back(lane);
        }
    }

    /// The next message that may start, if any may: its lane is not running one and
    /// fewer than `max_in_flight` are running. The caller must call [`Self::finished`]
    /// with the returned lane once the message is done.
    pub fn start_next(&mut self) -> Option<(Lane, T)> {
        while self.in_flight < self.max_in_flight {
            let lane = self.ready.pop_front()?;
            let Some(state) = self.lanes.get_mut(&lane) else {
                continue; // dropped since it became ready
            };
            if state.running {
                continue;
            }
            let Some(message) = state.waiting.pop_front() else {
                continue;
            };
            state.running = true;
            self.in_flight += 1;
            if let Some(n) = self.waiting.get_mut(&lane.partition) {
                *n = n.saturating_sub(1);
            }
            return Some((lane, message));
        }
        None
    }

    /// A started message is done: its lane's next message may start. A lane forgotten
    /// meanwhile ([`Self::forget_partition`]) is ignored.
    pub fn finished(&mut self, lane: &Lane) {
        let Some(state) = self.lanes.get_mut(lane) else {
            return;
        };
        if !state.running {
            return;
        }
        state.running = false;
        self.in_flight -= 1;
        if state.waiting.is_empty() {
            self.lanes.remove(lane);
        } else {
            self.ready.push_back(lane.clone());
        }
    }

    /// Drops the messages of a partition that have not started, returning how many;
    /// started ones still finish normally.
    pub fn drop_waiting(&mut self, partition: &PartitionId) -> usize {
        let mut dropped = 0;
        self.lanes.retain(|lane, state| {
            if &lane.partition != partition {
                return true;
            }
            dropped += state.waiting.len();
            state.waiting.clear();
            state.running
        });
        self.waiting.remove(partition);
        dropped
    }

    /// Forgets a partition entirely: waiting messages are dropped and started ones will
    /// not be reported as finished (their slots are released now).
    pub fn forget_partition(&mut self, partition: &PartitionId) {
        self.drop_waiting(partition);
        let before = self.lanes.len();
        self.lanes.retain(|lane, _| &lane.partition != partition);
        // Every lane left after `drop_waiting` was running.
        self.in_flight -= before - self.lanes.len();
    }

    /// Messages started and not finished.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Messages waiting to start, in all partitions.
    pub fn waiting(&self) -> usize {
        self.waiting.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(partition: i32, key: &str) -> Lane {
        Lane {
            partition: ("t".into(), partition),
            key: key.as_bytes().into(),
        }
    }

    fn drain<T>(s: &mut Scheduler<T>) -> Vec<(Lane, T)> {
        std::iter::from_fn(|| s.start_next()).collect()
    }

    #[test]
    fn different_keys_run_together_and_one_key_runs_in_order() {
        let mut s = Scheduler::new(10);
        s.push(lane(0, "a"), 1);
        s.push(lane(0, "a"), 2);
        s.push(lane(0, "b"), 3);
        s.push(lane(1, "a"), 4);
        let started: Vec<i32> = drain(&mut s).into_iter().map(|(_, m)| m).collect();
        assert_eq!(started, [1, 3, 4], "a's second waits for its first");
        assert_eq!(s.in_flight(), 3);
        assert_eq!(s.waiting(), 1);
        s.finished(&lane(0, "b"));
        assert!(s.start_next().is_none(), "b finishing does not release a");
        s.finished(&lane(0, "a"));
        assert_eq!(s.start_next(), Some((lane(0, "a"), 2)));
        s.finished(&lane(0, "a"));
        s.finished(&lane(1, "a"));
        assert_eq!(s.in_flight(), 0);
        assert!(s.lanes.is_empty(), "idle lanes are not kept");
    }

    #[test]
    fn at_most_max_in_flight_run() {
        let mut s = Scheduler::new(2);
        for k in ["a", "b", "c", "d"] {
            s.push(lane(0, k), k);
        }
        assert_eq!(drain(&mut s).len(), 2);
        s.finished(&lane(0, "a"));
        let next = drain(&mut s);
        assert_eq!(next, [(lane(0, "c"), "c")], "lanes take turns in order");
    }

    #[test]
    fn a_busy_key_does_not_starve_others() {
        let mut s = Scheduler::new(1);
        for i in 0..3 {
            s.push(lane(0, "busy"), i);
        }
        s.push(lane(0, "quiet"), 10);
        assert_eq!(s.start_next(), Some((lane(0, "busy"), 0)));
        s.finished(&lane(0, "busy"));
        assert_eq!(s.start_next(), Some((lane(0, "quiet"), 10)));
    }

    #[test]
    fn dropping_a_partition_keeps_started_work_and_forgetting_releases_it() {
        let mut s = Scheduler::new(10);
        s.push(lane(0, "a"), 1);
        s.push(lane(0, "a"), 2);
        s.push(lane(0, "b"), 3);
        s.push(lane(1, "a"), 4);
        assert_eq!(s.start_next(), Some((lane(0, "a"), 1)));
        assert_eq!(s.drop_waiting(&("t".into(), 0)), 2);
        assert_eq!(s.waiting(), 1, "partition 1 untouched");
        assert_eq!(s.start_next(), Some((lane(1, "a"), 4)));
        assert!(s.start_next().is_none());
        assert_eq!(s.in_flight(), 2);
        s.forget_partition(&("t".into(), 0));
        assert_eq!(s.in_flight(), 1, "the started message's slot is released");
        s.finished(&lane(0, "a"));
        assert_eq!(s.in_flight(), 1, "a forgotten lane's finish is ignored");
        s.finished(&lane(1, "a"));
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn the_record_key_orders_and_the_idempotency_key_stands_in() {
        assert_eq!(&*ordering_key(Some(b"cell-7"), "req-1"), b"cell-7");
        assert_eq!(&*ordering_key(None, "req-1"), b"req-1");
    }
}
