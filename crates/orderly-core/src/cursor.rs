//! Opaque page cursors for stores that order by an insertion sequence number.
//!
//! A cursor is `base64url("o1:" + seq)`: clients must treat it as opaque; the prefix lets a
//! later format be told apart.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::StoreError;

/// The cursor that resumes a listing after (older than) sequence number `seq`.
pub fn encode_seq(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("o1:{seq}"))
}

/// The sequence number inside a cursor made by [`encode_seq`].
pub fn decode_seq(cursor: &str) -> Result<i64, StoreError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| StoreError::InvalidCursor)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| StoreError::InvalidCursor)?;
    text.strip_prefix("o1:")
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n > 0)
        .ok_or(StoreError::InvalidCursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects_garbage() {
        assert_eq!(decode_seq(&encode_seq(42)), Ok(42));
        for bad in ["", "!!", "bzE6", "o1:5", &URL_SAFE_NO_PAD.encode("o1:-3")] {
            assert_eq!(decode_seq(bad), Err(StoreError::InvalidCursor), "{bad}");
        }
    }
}
