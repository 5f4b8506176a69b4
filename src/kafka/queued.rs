//! The bytes of consumed messages on their way from the poll thread to the worker,
//! bounded.
//!
//! The hand-off queue holds at most [`super::consumer::EVENT_QUEUE`] events, but a message
//! may be as large as `message.max.bytes`: counted only in events, a queue of 1 MB
//! records would hold 256 MB before the worker's byte budgets (`PARTITION_BUFFER_BYTES`,
//! `BUFFER_BYTES`) see any of it. So the poll thread reserves a message's bytes before
//! handing it over, waiting while the queue holds [`QUEUE_BYTES`] (a larger message goes
//! alone into an empty queue), and the bytes are given back when the worker takes the
//! message (its [`Slot`] is dropped).

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

/// Bytes of messages the hand-off queue holds at most (but one message of any size).
pub const QUEUE_BYTES: usize = 8 << 20;

/// How often a waiting poll thread checks whether it should give up.
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// The bytes in the hand-off queue.
#[derive(Debug, Default)]
pub struct QueuedBytes {
    bytes: Mutex<usize>,
    room: Condvar,
}

/// A message's bytes in the queue, given back when it is dropped.
pub struct Slot {
    queue: Arc<QueuedBytes>,
    bytes: usize,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("bytes", &self.bytes).finish()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut queued = self.queue.lock();
        *queued = queued.saturating_sub(self.bytes);
        self.queue.room.notify_one();
    }
}

impl QueuedBytes {
    /// Reserves `bytes` for a message, waiting while they do not fit in [`QUEUE_BYTES`]
    /// (a message that fits nowhere waits for an empty queue). `None` when `give_up`
    /// says to stop waiting (the thread is stopping, the worker is gone).
    pub fn reserve(self: &Arc<Self>, bytes: usize, give_up: impl Fn() -> bool) -> Option<Slot> {
        let mut queued = self.lock();
        while *queued > 0 && queued.saturating_add(bytes) > QUEUE_BYTES {
            if give_up() {
                return None;
            }
            queued = self
                .room
                .wait_timeout(queued, CHECK_EVERY)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *queued += bytes;
        Some(Slot {
            queue: self.clone(),
            bytes,
        })
    }

    /// Bytes in the queue now.
    pub fn bytes(&self) -> usize {
        *self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, usize> {
        // One addition or subtraction per hold: a panic elsewhere leaves it whole.
        self.bytes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_wait_for_room_and_a_large_one_goes_alone() {
        let queue = Arc::new(QueuedBytes::default());
        let first = queue.reserve(QUEUE_BYTES / 2, || false);
        let second = queue.reserve(QUEUE_BYTES / 2, || false);
        assert_eq!(queue.bytes(), QUEUE_BYTES);
        assert!(
            queue.reserve(1, || true).is_none(),
            "full: the caller gives up rather than wait"
        );
        drop(first);
        drop(second);
        assert_eq!(queue.bytes(), 0);
        let huge = queue.reserve(3 * QUEUE_BYTES, || false);
        assert!(huge.is_some(), "an empty queue takes a message of any size");
        assert!(queue.reserve(1, || true).is_none(), "and nothing beside it");
        drop(huge);
        assert_eq!(queue.bytes(), 0);
    }

    #[test]
    fn a_waiting_thread_goes_on_when_the_worker_takes_a_message() {
        let queue = Arc::new(QueuedBytes::default());
        let taken = queue.reserve(QUEUE_BYTES, || false);
        let waiter = {
            let queue = queue.clone();
            std::thread::spawn(move || queue.reserve(10, || false).map(|slot| slot.bytes))
        };
        drop(taken);
        assert_eq!(waiter.join().ok().flatten(), Some(10));
        assert_eq!(
            queue.bytes(),
            0,
            "the waiter's slot was dropped with its thread"
        );
    }
}
