//! Request extractors whose failures are [`ApiError`]s with clear messages.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use orderly_core::input::NumberTexts;
use serde_json::Value;

use crate::{ApiError, AppState};

/// A request body parsed as JSON (any JSON value; handlers check its shape).
///
/// - a `Content-Type` other than JSON: 415 (a missing one is read as JSON);
/// - a body over `max_body_bytes`: 413;
/// - an empty body or malformed JSON: 400 naming the line and column.
#[derive(Debug)]
pub struct JsonBody(pub Value);

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// 415 unless the request's `Content-Type`, if it has one, is JSON.
fn check_json_type(req: &Request) -> Result<(), ApiError> {
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        if !is_json(ct) {
            return Err(ApiError::UnsupportedMediaType {
                message: format!("the body must be application/json, not {ct:?}"),
            });
        }
    }
    Ok(())
}

/// The whole body, or 413 (as an [`ApiError`]) when it is larger than `limit` (checked on
/// the declared length first, then as it arrives); 400 when it cannot be read.
pub(crate) async fn read_limited(
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let inner = e.into_inner();
        if inner
            .downcast_ref::<http_body_util::LengthLimitError>()
            .is_some()
        {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::BadRequest {
                code: "bad_body",
                message: format!("the request body could not be read: {inner}"),
                details: vec![],
            }
        }
    })
}

/// The raw bytes of an optional JSON body (the handler parses them): none or only white
/// space is fine; otherwise a `Content-Type` other than JSON is 415. Over `max_body_bytes`:
/// 413, as a JSON error like every other.
#[derive(Debug)]
pub struct OptionalJsonBytes(pub Bytes);

impl FromRequest<AppState> for OptionalJsonBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<OptionalJsonBytes, ApiError> {
        let typed = check_json_type(&req);
        let (parts, body) = req.into_parts();
        let bytes = read_limited(&parts.headers, body, state.config.max_body_bytes).await?;
        if !bytes.iter().all(u8::is_ascii_whitespace) {
            typed?;
        }
        Ok(OptionalJsonBytes(bytes))
    }
}

/// The JSON body's bytes, parsed: 415, 413 and 400 as for [`JsonBody`].
async fn read_json(req: Request, state: &AppState) -> Result<(Bytes, Value), ApiError> {
    check_json_type(&req)?;
    let (parts, body) = req.into_parts();
    let bytes = read_limited(&parts.headers, body, state.config.max_body_bytes).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_field("body", "is empty; send a JSON object"));
    }
    let value = serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest {
        code: "malformed_json",
        message: format!("the request body is not valid JSON: {e}"),
        details: vec![orderly_core::FieldError::new(
            "body",
            format!("is not valid JSON: {e}"),
        )],
    })?;
    Ok((bytes, value))
}

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<JsonBody, ApiError> {
        read_json(req, state).await.map(|(_, v)| JsonBody(v))
    }
}

/// A JSON body that may carry amounts: the parsed value and the text of its top-level
/// numbers, so money is read from the digits the client sent, never through a float.
#[derive(Debug)]
pub struct AmountsBody(pub Value, pub NumberTexts);

impl FromRequest<AppState> for AmountsBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<AmountsBody, ApiError> {
        let (bytes, value) = read_json(req, state).await?;
        // The text is needed only where a top-level field is a number (most orders carry no
        // `totalAmount`): no second pass over the body otherwise.
        let has_number = value
            .as_object()
            .is_some_and(|o| o.values().any(Value::is_number));
        let numbers = if has_number {
            NumberTexts::of(&bytes)
        } else {
            NumberTexts::default()
        };
        Ok(AmountsBody(value, numbers))
    }
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn json_media_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("Application/JSON"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }
}
