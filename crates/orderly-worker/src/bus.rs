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
        // Every send of the batch in one call, in event order: the embedded store writes
        // them in one operation of one commit.
        let mut messages: Vec<(&str, String)> = Vec::new();
        for e in events {
            let mut body = None;
            for r in self.routes.iter().filter(|r| r.pattern.matches(e)) {
                let b = body.get_or_insert_with(|| e.to_json()).clone();
                messages.push((r.target, b));
            }
        }
        self.queue.send_many(&messages).await
    }
}
