//! The integration tests of `orderly-core`: one test binary, a module per area.

mod parsers_prop;
mod service;
mod webhooks;
