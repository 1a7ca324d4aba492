//! The integration tests of `orderly-http`: one test binary, a module per area.

mod openapi;
