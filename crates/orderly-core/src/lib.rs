//! # orderly-core
//!
//! The domain of Orderly, independent of how it is stored, served or run.
//!
//! It owns:
//! - the value types, parsed once at the edge and trusted afterwards ([`types`],
//!   [`money`]): order and product ids, quantities, e-mail addresses, money in minor units;
//! - orders, products and events as the API shows them ([`model`], [`events`]);
//! - the order state machine ([`status`]);
//! - the request bodies, declared once as Rust types from which their parsers (every field
//!   error at once), JSON Schemas and API Gateway model are derived ([`input`], [`shape`]),
//!   and the error classes use cases return ([`error`]);
//! - the ports, the traits every adapter implements ([`ports`]) (the in-memory reference
//!   adapters live beside the contract suites, in `orderly-testkit`);
//! - the use cases ([`service`]).
//!
//! It may depend on serde, chrono, uuid and other pure libraries. It must not depend on
//! an async runtime, SQL, HTTP or AWS: those live in the adapter crates
//! (`orderly-sqlite`, `orderly-aws`, `orderly-http`, `orderly-worker`).

pub mod access;
pub mod actions;
pub mod cursor;
pub mod egress;
pub mod error;
pub mod events;
pub mod execution;
pub mod idempotency;
pub mod input;
pub mod metrics;
pub mod model;
pub mod money;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod payment;
pub mod ports;
pub mod saga;
pub mod service;
pub mod shape;
pub mod status;
pub mod types;
pub mod webhooks;

pub use error::{Error, FieldError, StoreError};
pub use events::{DomainEvent, EventType};
pub use model::{Order, OrderFilter, OrderItem, Page, Product, ProductSpec, Timestamp};
pub use money::Money;
pub use service::{Orderly, Placed, Ports, SagaPorts, Settings};
pub use status::OrderStatus;
pub use types::{Email, IdempotencyKey, OrderId, ProductId, Qty, UserId};
