//! The integration tests of `orderly-worker`: one test binary, a module per area.

mod loops;
mod saga;
