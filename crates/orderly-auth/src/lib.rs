//! # orderly-auth
//!
//! Who is calling and how much they may call: the [`Principal`] a request acts as, API
//! keys (generated, hashed, checked in constant time), JWT verification (Cognito RS256 with
//! a cached JWKS, HS256 for development) and per-credential token-bucket rate limits.
//!
//! It may depend on `orderly-core` (for `UserId` and the `ApiKeys` port), hashing and JWT
//! crates; never on axum, a store or AWS. The HTTP layer turns its answers into 401, 403
//! and 429 responses.

pub mod jwt;
pub mod keys;
pub mod limit;
pub mod principal;

pub use principal::{Principal, Role};
