//! The local event bus: each subscription is a durable queue, so a slow or failing
//! subscriber retries and dead-letters on its own without holding up the others.

use std::sync::Arc;

use async_trait::async_trait;
use orderly_core::events::Route;
use orderly_core::ports::{EventBus, Queue};
use orderly_core::{DomainEvent, StoreError};

/// Publishes each event to the queue of every route whose pattern matches it.
#[derive(Clone)]
pub struct QueueBus {
    queue: Arc<dyn Queue>,
    routes: Vec<Route>,
}

impl std::fmt::Debug for QueueBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueBus")
            .field("routes", &self.routes)
            .finish()
    }
}

impl QueueBus {
    pub fn new(queue: Arc<dyn Queue>, routes: Vec<Route>) -> QueueBus {
        QueueBus { queue, routes }
    }
}

#[async_trait]
impl EventBus for QueueBus {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), StoreError> {
        let bodies: Vec<String> = events.iter().map(DomainEvent::to_json).collect();
        // All sends at once, so the store commits them together instead of one commit
        // (and one disk sync) per message. They are issued in event order.
        let sends = events.iter().zip(&bodies).flat_map(|(e, body)| {
            self.routes
                .iter()
                .filter(|r| r.pattern.matches(e))
                .map(move |r| self.queue.send(r.target, body, std::time::Duration::ZERO))
        });
        futures::future::try_join_all(sends).await?;
        Ok(())
    }
}
