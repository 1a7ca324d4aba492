//! Adapters that fail on purpose, to drive the failure paths of the saga in tests.

use std::sync::Arc;

use async_trait::async_trait;
use orderly_core::model::{Order, OrderFilter, Page};
use orderly_core::ports::{NewOrder, OrderStore, StepRecord, Transition, TransitionOutcome};
use orderly_core::{DomainEvent, OrderId, OrderStatus, StoreError};

/// An order store whose `ConfirmOrder` transition is refused (as if confirmation failed):
/// the order is answered as it is, unchanged. Everything else goes to the inner store.
#[derive(Debug)]
pub struct RefuseConfirm<S>(pub Arc<S>);

#[async_trait]
impl<S: OrderStore + 'static> OrderStore for RefuseConfirm<S> {
    async fn create(&self, new: NewOrder) -> Result<(), StoreError> {
        self.0.create(new).await
    }
    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.0.get(id).await
    }
    async fn list(
        &self,
        f: &OrderFilter,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        self.0.list(f, limit, cursor).await
    }
    async fn transition(&self, t: Transition) -> Result<TransitionOutcome, StoreError> {
        if t.to == OrderStatus::Confirmed {
            return Ok(match self.0.get(t.order_id).await? {
                Some(current) => TransitionOutcome::Stale(current),
                None => TransitionOutcome::NotFound,
            });
        }
        self.0.transition(t).await
    }
    async fn events(&self, id: OrderId) -> Result<Vec<DomainEvent>, StoreError> {
        self.0.events(id).await
    }
    async fn append_event(
        &self,
        e: DomainEvent,
        step: Option<StepRecord>,
    ) -> Result<bool, StoreError> {
        self.0.append_event(e, step).await
    }
}
