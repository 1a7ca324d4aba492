//! The integration tests of `orderly-lambda`: one test binary, a module per area.

mod handlers;
