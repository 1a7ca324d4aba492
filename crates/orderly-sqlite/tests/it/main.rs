//! The integration tests of `orderly-sqlite`: one test binary, a module per area.

mod cache;
mod contract;
