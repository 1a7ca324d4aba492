//! The integration tests of `orderly-testkit`: one test binary, a module per area.

mod memory;
