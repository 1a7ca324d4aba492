//! Who to wake after a write: each queue's long-polling consumers, and the outbox relay
//! for new events, separately. A write wakes only those waiting on what it wrote, so a
//! busy `orders` queue does not send every other consumer round the writer with an empty
//! receive.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub(crate) struct Wakers {
    queues: Mutex<HashMap<String, Arc<Notify>>>,
    events: Arc<Notify>,
}

impl Wakers {
    /// What a consumer of `queue` waits on.
    pub(crate) fn queue(&self, queue: &str) -> Arc<Notify> {
        let mut map = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get(queue) {
            return n.clone();
        }
        let n = Arc::new(Notify::new());
        map.insert(queue.to_owned(), n.clone());
        n
    }

    /// What the outbox relay waits on.
    pub(crate) fn events(&self) -> Arc<Notify> {
        self.events.clone()
    }

    /// A message was written to `queue`.
    pub(crate) fn wake_queue(&self, queue: &str) {
        let map = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get(queue) {
            n.notify_waiters();
        }
    }

    /// An event was recorded.
    pub(crate) fn wake_events(&self) {
        self.events.notify_waiters();
    }

    /// Messages may have been written to any queue (a dead-letter replay).
    pub(crate) fn wake_all(&self) {
        let map = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        for n in map.values() {
            n.notify_waiters();
        }
        self.events.notify_waiters();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn woken(n: &Arc<Notify>, act: impl FnOnce()) -> bool {
        let notified = n.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        act();
        tokio::time::timeout(Duration::from_millis(50), notified)
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_write_wakes_only_its_own_queue() {
        let w = Wakers::default();
        let orders = w.queue("orders");
        let fulfilment = w.queue("fulfilment");
        assert!(woken(&orders, || w.wake_queue("orders")).await);
        assert!(!woken(&fulfilment, || w.wake_queue("orders")).await);
        assert!(!woken(&w.events(), || w.wake_queue("orders")).await);
        assert!(woken(&w.events(), || w.wake_events()).await);
        assert!(!woken(&orders, || w.wake_events()).await);
        assert!(woken(&fulfilment, || w.wake_all()).await);
        assert!(
            Arc::ptr_eq(&orders, &w.queue("orders")),
            "one waker per queue"
        );
    }
}
