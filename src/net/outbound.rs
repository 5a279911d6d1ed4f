//! The outbound queue of one WebSocket: every frame the node sends on it except protocol
//! control frames (answers, stream pushes, lagged notices) waits here, bounded in bytes.
//!
//! A frame keeps its bytes reserved until the socket has taken it, so the queue and the frame
//! being written together never hold more than the budget — except one frame larger than the
//! whole budget, which is admitted into an empty queue only (a 7 MB `listWorkers` answer must
//! still go out). Room is handed out first come, first served, so a large answer is not starved
//! by a stream of small pushes. A producer that waits `write_timeout` for room marks the queue
//! stalled, and the connection closes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::ws::Message;
use tokio::sync::{Notify, Semaphore, TryAcquireError};

/// The connection has ended (or is ending): nothing more will be sent on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// Why [`Outbound::try_send`] did not queue a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrySendError {
    /// No room now; the caller follows its lag policy.
    Full,
    /// The connection is gone.
    Closed,
}

/// The producer side, cloned into every request task and subscription of the connection.
#[derive(Clone)]
pub struct Outbound(Arc<Shared>);

struct Shared {
    /// One permit per byte of budget.
    room: Semaphore,
    /// The budget in permits (`outbound_bytes`, at most `u32::MAX`).
    budget: u32,
    frames: Mutex<VecDeque<Queued>>,
    /// Wakes the connection task: a frame was queued, a producer stalled, or a request slot of
    /// the connection was freed. One notifier for all three keeps an idle connection small.
    wake: Notify,
    /// Set when a producer has waited `write_timeout` for room.
    stalled: AtomicBool,
    write_timeout: Duration,
}

/// A queued frame with its reserved bytes; dropping it (once written) returns them.
pub struct Queued {
    pub message: Message,
    pub reservation: Reservation,
}

/// Bytes of the budget held by one frame until the socket has taken it.
pub struct Reservation {
    shared: Arc<Shared>,
    permits: u32,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.shared.room.add_permits(self.permits as usize);
    }
}

/// The payload bytes of a frame, which is what the queue and the write batches count.
pub fn payload_len(message: &Message) -> usize {
    match message {
        Message::Text(text) => text.len(),
        Message::Binary(data) => data.len(),
        Message::Ping(data) | Message::Pong(data) => data.len(),
        Message::Close(_) => 0,
    }
}

impl Outbound {
    /// A queue of at most `budget_bytes`, whose frames must leave within `write_timeout`.
    pub fn new(budget_bytes: usize, write_timeout: Duration) -> Self {
        let budget = u32::try_from(budget_bytes).unwrap_or(u32::MAX).max(1);
        Outbound(Arc::new(Shared {
            room: Semaphore::new(budget as usize),
            budget,
            frames: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            stalled: AtomicBool::new(false),
            write_timeout,
        }))
    }

    /// Permits a frame takes: its length, or the whole budget for a frame at least that large
    /// (which then needs the queue empty).
    fn cost(&self, message: &Message) -> u32 {
        u32::try_from(payload_len(message))
            .unwrap_or(u32::MAX)
            .min(self.0.budget)
    }

    fn frames(&self) -> MutexGuard<'_, VecDeque<Queued>> {
        self.0
            .frames
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, message: Message, permits: u32) -> Result<(), Closed> {
        let reservation = Reservation {
            shared: self.0.clone(),
            permits,
        };
        {
            // Checked under the lock: `close` clears the queue under it too.
            let mut frames = self.frames();
            if self.0.room.is_closed() {
                return Err(Closed);
            }
            frames.push_back(Queued { message, reservation });
        }
        self.wake();
        Ok(())
    }

    /// Queues `message`, waiting for room at most `write_timeout`; past that the queue is
    /// marked stalled (the connection closes) and `Closed` is returned.
    pub async fn send(&self, message: Message) -> Result<(), Closed> {
        let permits = self.cost(&message);
        match tokio::time::timeout(self.0.write_timeout, self.0.room.acquire_many(permits)).await {
            Ok(Ok(permit)) => permit.forget(),
            Ok(Err(_)) => return Err(Closed),
            Err(_) => {
                self.0.stalled.store(true, Ordering::Release);
                self.wake();
                return Err(Closed);
            }
        }
        self.push(message, permits)
    }

    /// Queues `message` if there is room now.
    pub fn try_send(&self, message: Message) -> Result<(), TrySendError> {
        let permits = self.cost(&message);
        match self.0.room.try_acquire_many(permits) {
            Ok(permit) => permit.forget(),
            Err(TryAcquireError::NoPermits) => return Err(TrySendError::Full),
            Err(TryAcquireError::Closed) => return Err(TrySendError::Closed),
        }
        self.push(message, permits).map_err(|Closed| TrySendError::Closed)
    }

    /// The next frame to write, if any.
    pub fn pop(&self) -> Option<Queued> {
        self.frames().pop_front()
    }

    /// Whether a producer has waited `write_timeout` for room.
    pub fn stalled(&self) -> bool {
        self.0.stalled.load(Ordering::Acquire)
    }

    /// Wakes the connection task (or the next `woken().await`, if it is not waiting yet).
    pub fn wake(&self) {
        self.0.wake.notify_one();
    }

    /// Waits for a `wake`: the connection task then looks at the queue, the stall flag and its
    /// request slots again.
    pub async fn woken(&self) {
        self.0.wake.notified().await
    }

    /// Ends the queue: waiting and later producers get `Closed`, queued frames are freed.
    pub fn close(&self) {
        self.0.room.close();
        let dropped = std::mem::take(&mut *self.frames());
        drop(dropped);
    }

    /// Bytes reserved now (queued plus being written), for tests.
    pub fn reserved_bytes(&self) -> usize {
        (self.0.budget as usize).saturating_sub(self.0.room.available_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(len: usize) -> Message {
        Message::Text("x".repeat(len).into())
    }

    #[tokio::test]
    async fn bytes_stay_reserved_until_the_written_frame_is_dropped() {
        let queue = Outbound::new(100, Duration::from_secs(1));
        queue.try_send(text(60)).unwrap();
        assert_eq!(queue.try_send(text(60)), Err(TrySendError::Full));
        let written = queue.pop().unwrap();
        assert_eq!(queue.reserved_bytes(), 60);
        assert_eq!(queue.try_send(text(60)), Err(TrySendError::Full));
        drop(written);
        queue.try_send(text(60)).unwrap();
    }

    #[tokio::test]
    async fn a_frame_larger_than_the_budget_goes_into_an_empty_queue_only() {
        let queue = Outbound::new(100, Duration::from_secs(1));
        queue.try_send(text(1)).unwrap();
        assert_eq!(queue.try_send(text(500)), Err(TrySendError::Full));
        drop(queue.pop());
        queue.try_send(text(500)).unwrap();
        assert_eq!(queue.pop().unwrap().message, text(500));
    }

    #[tokio::test]
    async fn a_producer_that_waits_the_write_timeout_marks_the_queue_stalled() {
        let queue = Outbound::new(100, Duration::from_millis(50));
        queue.try_send(text(100)).unwrap();
        // The wake-up for that frame.
        tokio::time::timeout(Duration::from_millis(1), queue.woken())
            .await
            .unwrap();
        let started = tokio::time::Instant::now();
        assert_eq!(queue.send(text(1)).await, Err(Closed));
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(queue.stalled());
        // The connection task is told.
        tokio::time::timeout(Duration::from_millis(1), queue.woken())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn room_goes_to_waiting_producers_in_order() {
        let queue = Outbound::new(100, Duration::from_secs(5));
        queue.try_send(text(100)).unwrap();
        let big = tokio::spawn({
            let queue = queue.clone();
            async move { queue.send(text(90)).await }
        });
        tokio::task::yield_now().await;
        drop(queue.pop());
        // The waiting 90-byte frame gets the room; a small frame cannot jump ahead of it.
        big.await.unwrap().unwrap();
        assert_eq!(queue.try_send(text(20)), Err(TrySendError::Full));
    }

    #[tokio::test]
    async fn close_wakes_waiting_producers() {
        let queue = Outbound::new(100, Duration::from_secs(5));
        queue.try_send(text(100)).unwrap();
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move { queue.send(text(1)).await }
        });
        tokio::task::yield_now().await;
        queue.close();
        assert_eq!(waiting.await.unwrap(), Err(Closed));
        assert_eq!(queue.try_send(text(1)), Err(TrySendError::Closed));
        assert_eq!(queue.reserved_bytes(), 0);
    }
}
