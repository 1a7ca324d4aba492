//! # orderly-sqlite
//!
//! The embedded adapters: every port of `orderly-core` on one SQLite database (WAL mode) in
//! a data directory, so the one-machine Orderly needs nothing else installed.
//!
//! It owns the schema and its migrations ([`schema`]), the connection model ([`db`]: one
//! writer thread committing batches of operations, reader threads on their own
//! connections) and the port implementations ([`SqliteStore`]). The queue table is also
//! the transactional outbox: accepting an order inserts its processing message in the same
//! transaction as the order.
//!
//! It may depend on `orderly-core`, rusqlite and small utility crates; not on HTTP, AWS or
//! an async runtime (it uses only runtime-independent channels).

pub mod cache;
pub mod db;
pub mod owners;
mod processing;
pub mod schema;
mod store;
mod wake;
mod webhooks;

pub use db::Durability;
pub use store::{DB_FILE, ORDERS_QUEUE, SqliteOptions, SqliteStore};
