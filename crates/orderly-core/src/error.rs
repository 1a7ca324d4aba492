//! The errors use cases return. Each variant says which class of failure it is; the HTTP
//! layer maps classes to statuses, the worker maps them to retry decisions.

use serde::Serialize;

/// One thing wrong with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// Where, as a path into the request: `items[1].qty`, `userId`, `cursor`, `orderId`.
    pub field: String,
    /// What was wrong, as a phrase that completes the field name.
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A failure of the storage or another adapter behind a port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The cursor a client passed back was not one this store made.
    #[error("the cursor is not valid")]
    InvalidCursor,
    /// Busy, timed out or unreachable: trying again later may succeed.
    #[error("store temporarily unavailable: {0}")]
    Unavailable(String),
    /// A failure that will not go away by retrying.
    #[error("store failure: {0}")]
    Backend(String),
}

impl StoreError {
    /// Whether the same call may succeed if repeated later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// What a use case can answer instead of a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request is malformed or some fields are invalid.
    #[error("{message}")]
    Invalid {
        message: String,
        details: Vec<FieldError>,
    },
    /// Well formed, but a business rule refuses it (unknown product, wrong total, an
    /// idempotency key reused with another payload).
    #[error("{message}")]
    Unprocessable {
        code: &'static str,
        message: String,
        details: Vec<FieldError>,
    },
    /// No such resource.
    #[error("{what} {id} was not found")]
    NotFound { what: &'static str, id: String },
    /// The resource's current state forbids the request (or a concurrent request holds it).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// An adapter failed; details are for the logs, not for clients.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    pub fn invalid(details: Vec<FieldError>) -> Error {
        let message = match details.as_slice() {
            [one] => format!("{} {}", one.field, one.reason),
            _ => format!("{} fields are invalid", details.len()),
        };
        Error::Invalid { message, details }
    }

    pub fn invalid_field(field: &str, reason: impl Into<String>) -> Error {
        Error::invalid(vec![FieldError::new(field, reason)])
    }
}
