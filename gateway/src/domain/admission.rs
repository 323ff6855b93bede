//! Per-model admission: a bounded number of generations run, a bounded number wait.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Admission control for one model.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_queue: usize,
}

/// Refused because the queue is full.
#[derive(Debug, PartialEq, Eq)]
pub struct QueueFull;

impl Admission {
    /// `max_concurrent` run at once, up to `max_queue` more wait.
    pub fn new(max_concurrent: usize, max_queue: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_concurrent)),
            waiting: AtomicUsize::new(0),
            max_queue,
        }
    }

    /// Requests waiting for a slot.
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Waits for a slot; refuses at once when the queue is full. The permit frees the slot
    /// when dropped, which is when the answer stream ends or is dropped.
    pub async fn admit(&self) -> Result<OwnedSemaphorePermit, QueueFull> {
        if let Ok(p) = self.slots.clone().try_acquire_owned() {
            return Ok(p);
        }
        let prev = self.waiting.fetch_add(1, Ordering::SeqCst);
        if prev >= self.max_queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(QueueFull);
        }
        // Decrement even if the caller gives up while waiting (future dropped).
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _w = Waiting(&self.waiting);
        Ok(self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("admission semaphore is never closed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queues_then_refuses() {
        let a = Arc::new(Admission::new(1, 1));
        let p1 = a.admit().await.unwrap();
        let a2 = a.clone();
        let waiter = tokio::spawn(async move { a2.admit().await.map(|_| ()) });
        while a.queue_depth() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(a.admit().await.unwrap_err(), QueueFull);
        drop(p1);
        waiter.await.unwrap().unwrap();
        assert_eq!(a.queue_depth(), 0);
    }

    #[tokio::test]
    async fn abandoned_waiter_leaves_the_queue() {
        let a = Admission::new(1, 4);
        let _p = a.admit().await.unwrap();
        let fut = a.admit();
        let r = tokio::time::timeout(std::time::Duration::from_millis(20), fut).await;
        assert!(r.is_err());
        assert_eq!(a.queue_depth(), 0);
    }
}
