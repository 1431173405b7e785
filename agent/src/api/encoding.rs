//! How keys, values and header values travel in JSON: as text, as JSON, or as
//! base64 bytes. Records are bytes in Floe; these are only the API's ways of
//! writing them down (docs/decisions/0012-record-encodings.md).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ApiError;

/// An encoding a client names for produce (`key_encoding`, `value_encoding`)
/// or fetch (`encoding`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// A JSON string, stored as its UTF-8 text.
    String,
    /// Any JSON value, stored as its compact JSON text.
    Json,
    /// A base64 (standard alphabet, padded) string, stored as the bytes it encodes.
    Base64,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Json => "json",
            Self::Base64 => "base64",
        }
    }
}

/// The bytes a produced key, value or header value stands for. Without an
/// encoding a string is its text and any other JSON value its JSON text, so
/// `{"value":"hi"}` and `{"value":{"a":1}}` both do what they look like.
/// Takes `v` by value: a string's bytes become the record's without a copy.
pub fn decode(field: &str, v: Value, encoding: Option<Encoding>) -> Result<Bytes, ApiError> {
    match (encoding, v) {
        (None | Some(Encoding::String), Value::String(s)) => Ok(Bytes::from(s)),
        (Some(Encoding::String), _) => Err(invalid(field, "must be a string (encoding \"string\")")),
        (None | Some(Encoding::Json), v) => Ok(Bytes::from(v.to_string())),
        (Some(Encoding::Base64), Value::String(s)) => {
            BASE64.decode(&s).map(Bytes::from).map_err(|e| invalid(field, &format!("is not valid base64: {e}")))
        }
        (Some(Encoding::Base64), _) => Err(invalid(field, "must be a base64 string (encoding \"base64\")")),
    }
}

fn invalid(field: &str, what: &str) -> ApiError {
    ApiError::bad_request("invalid_encoding", format!("{field} {what}")).with("field", field)
}

/// Bytes written down in `wanted`, or in the nearest encoding that can hold
/// them (JSON → text → base64), which is then returned too: a topic may
/// hold records of every kind, and one odd record must not fail a fetch.
pub fn encode(bytes: &[u8], wanted: Encoding) -> (Value, Encoding) {
    if wanted == Encoding::Json
        && let Ok(v) = serde_json::from_slice::<Value>(bytes)
    {
        return (v, Encoding::Json);
    }
    if wanted != Encoding::Base64
        && let Ok(s) = std::str::from_utf8(bytes)
    {
        return (Value::String(s.to_owned()), Encoding::String);
    }
    (Value::String(BASE64.encode(bytes)), Encoding::Base64)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_byte_string_round_trips_through_base64() {
        for bytes in [&b""[..], b"\0", b"\xff\xfe", b"plain", b"{\"a\":1}"] {
            let (v, used) = encode(bytes, Encoding::Base64);
            assert_eq!(used, Encoding::Base64);
            assert_eq!(decode("value", v.clone(), Some(Encoding::Base64)).unwrap(), bytes);
        }
    }

    #[test]
    fn without_an_encoding_strings_are_text_and_other_json_is_json_text() {
        assert_eq!(decode("value", json!("hi"), None).unwrap(), "hi");
        assert_eq!(decode("value", json!({"a": 1}), None).unwrap(), "{\"a\":1}");
        assert_eq!(decode("value", json!("hi"), Some(Encoding::Json)).unwrap(), "\"hi\"");
        assert!(decode("value", json!(1), Some(Encoding::String)).is_err());
        assert!(decode("value", json!("not base64!"), Some(Encoding::Base64)).is_err());
    }

    #[test]
    fn a_record_that_cannot_be_written_as_asked_falls_back_and_says_so() {
        assert_eq!(encode(b"{\"a\":1}", Encoding::Json), (json!({"a": 1}), Encoding::Json));
        assert_eq!(encode(b"not json", Encoding::Json), (json!("not json"), Encoding::String));
        assert_eq!(encode(b"\xff", Encoding::String), (json!("/w=="), Encoding::Base64));
    }
}
