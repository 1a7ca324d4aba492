//! The integration tests of `orderly-auth`: one test binary, a module per area.

mod jwt;
