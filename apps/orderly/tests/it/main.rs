//! The integration tests of `orderly`: one test binary, a module per area.

mod api;
mod aws;
mod bench;
mod common;
mod crash;
mod dashboard;
mod egress;
mod hostile;
mod openapi_conformance;
mod ops;
mod process;
mod processing;
mod security;
mod webhooks;
