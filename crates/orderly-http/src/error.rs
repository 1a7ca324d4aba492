//! The one error type of the API and its JSON body:
//! `{"error": "<code>", "message": "<sentence>", "details": [{"field", "reason"}]}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orderly_core::{Error, FieldError, StoreError};
use serde::Serialize;

/// Everything a handler can answer instead of success.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the request is malformed (bad JSON, a bad path id or query parameter) or some
    /// fields are invalid; `details` names each field.
    BadRequest {
        code: &'static str,
        message: String,
        details: Vec<FieldError>,
    },
    /// 401 with `WWW-Authenticate`: no credential, or one that is malformed, unknown,
    /// revoked, expired or wrongly signed.
    Unauthorized {
        message: String,
        challenge: &'static str,
    },
    /// 403: the caller is known but their role may not do this.
    Forbidden { message: String },
    /// 404: no such order, product or route (also another customer's order, so that ids
    /// cannot be probed).
    NotFound { message: String },
    /// 405: the route exists but not with this method.
    MethodNotAllowed { message: String },
    /// 409: the resource's state forbids the request, or a request with the same
    /// idempotency key is still in flight.
    Conflict { code: &'static str, message: String },
    /// 408 with `Connection: close`: the request body did not arrive within the body read
    /// timeout. Nothing was done; the client may send the request again.
    RequestTimeout { message: String },
    /// 413: the body is larger than the configured limit.
    PayloadTooLarge { limit: usize },
    /// 415: the body is not `application/json`.
    UnsupportedMediaType { message: String },
    /// 422: well formed but refused by a business rule (unknown product, wrong total, an
    /// idempotency key reused with another payload).
    Unprocessable {
        code: &'static str,
        message: String,
        details: Vec<FieldError>,
    },
    /// 429 with `Retry-After`: the caller's (or the server's) request rate limit is
    /// reached. Nothing was done; retrying after the delay is safe.
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// 503 with `Retry-After`: too many requests in flight, or one took longer than the
    /// request timeout. A timed-out request may still complete; retry with the same
    /// `Idempotency-Key`.
    Overloaded { message: String },
    /// 503 with `Retry-After`: the store is busy or not ready; retrying is safe.
    Unavailable { message: String },
    /// 501: this backend does not offer the feature (webhooks on the AWS backend).
    NotImplemented { message: String },
    /// 500: a bug or an infrastructure failure. Logged with its cause; the client sees a
    /// generic sentence only.
    Internal { cause: String },
}

/// The body of every error response (the `ErrorBody` schema of the OpenAPI document).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorBody)]
pub(crate) struct Body<'a> {
    /// A stable, machine-readable code such as `validation_failed`, `not_found`,
    /// `unauthorized`, `forbidden`, `rate_limited` or `unavailable`.
    #[schema(example = "validation_failed")]
    error: &'a str,
    /// A sentence for people; its wording may change.
    #[schema(example = "items[0].qty must be at least 1")]
    message: &'a str,
    /// For validation errors, each field that was wrong; otherwise empty.
    details: &'a [FieldError],
}

impl ApiError {
    pub fn bad_field(field: &str, reason: impl Into<String>) -> ApiError {
        Error::invalid_field(field, reason).into()
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded { .. } | ApiError::Unavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::NotImplemented { .. } => StatusCode::NOT_IMPLEMENTED,
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::Invalid { message, details } => ApiError::BadRequest {
                code: "validation_failed",
                message,
                details,
            },
            Error::Unprocessable {
                code,
                message,
                details,
            } => ApiError::Unprocessable {
                code,
                message,
                details,
            },
            Error::NotFound { .. } => ApiError::NotFound {
                message: e.to_string(),
            },
            Error::Conflict { code, message } => ApiError::Conflict { code, message },
            Error::Store(s) => s.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::InvalidCursor => ApiError::bad_field("cursor", "is not a valid cursor"),
            StoreError::Unavailable(m) => ApiError::Unavailable { message: m },
            StoreError::Backend(m) => ApiError::Internal { cause: m },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let too_large;
        let (code, message, details): (&str, &str, &[FieldError]) = match &self {
            ApiError::BadRequest {
                code,
                message,
                details,
            }
            | ApiError::Unprocessable {
                code,
                message,
                details,
            } => (code, message, details),
            ApiError::Unauthorized { message, .. } => ("unauthorized", message, &[]),
            ApiError::Forbidden { message } => ("forbidden", message, &[]),
            ApiError::TooManyRequests { message, .. } => ("rate_limited", message, &[]),
            ApiError::Overloaded { message } => ("overloaded", message, &[]),
            ApiError::RequestTimeout { message } => ("request_timeout", message, &[]),
            ApiError::NotFound { message } => ("not_found", message, &[]),
            ApiError::MethodNotAllowed { message } => ("method_not_allowed", message, &[]),
            ApiError::Conflict { code, message } => (code, message, &[]),
            ApiError::PayloadTooLarge { limit } => {
                too_large = format!("the request body is larger than {limit} bytes");
                ("payload_too_large", &too_large, &[])
            }
            ApiError::UnsupportedMediaType { message } => ("unsupported_media_type", message, &[]),
            ApiError::NotImplemented { message } => ("not_implemented", message, &[]),
            ApiError::Unavailable { message } => {
                tracing::warn!(cause = %message, "store unavailable");
                (
                    "unavailable",
                    "the service is briefly unavailable; retry shortly",
                    &[],
                )
            }
            ApiError::Internal { cause } => {
                tracing::error!(%cause, "internal error");
                (
                    "internal",
                    "an internal error occurred; it has been logged",
                    &[],
                )
            }
        };
        let body = Body {
            error: code,
            message,
            details,
        };
        let mut resp = (status, axum::Json(body)).into_response();
        match &self {
            ApiError::Unavailable { .. } | ApiError::Overloaded { .. } => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::TooManyRequests {
                retry_after_secs, ..
            } => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            ApiError::Unauthorized { challenge, .. } => {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
            }
            ApiError::RequestTimeout { .. } => {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        resp
    }
}
