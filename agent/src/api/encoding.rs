//! How keys, values and header values travel in JSON: as text, as JSON, or as
//! base64 bytes. Records are bytes in Floe; these are only the API's ways of
//! writing them down (docs/decisions/0012-record-encodings.md).

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

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

/// A key, value or header value as a request body holds it: its JSON text,
/// borrowed from the body. Never parsed into a `serde_json::Value`: a tree
/// of small values takes 16 to 32 times their text (`0,` is a 32-byte
/// node), where a request's parse may take only as much as its body.
///
/// Checked as a `Value` parse checks it (see [`Check`]): serde_json's pass
/// over a raw value only finds where it ends.
#[derive(Clone, Copy, Debug)]
pub struct Raw<'a> {
    json: &'a RawValue,
    /// The text of a string without escapes, found once when read: it is
    /// asked for more than once, and each look is a scan of the value
    /// (`memchr`'s, which is vectorised; `str::contains` was 1.4% of a produce).
    plain: Option<&'a str>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let json = <&RawValue>::deserialize(d)?;
        let plain = json
            .get()
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .filter(|t| memchr::memchr(b'\\', t.as_bytes()).is_none());
        // A string without escapes was checked whole on the way (UTF-8, no control characters).
        if plain.is_none() {
            // Said without the position inside the value: the body's reader adds the body's.
            Check::value(json.get()).map_err(|e| {
                let (text, at) = (e.to_string(), format!(" at line {} column {}", e.line(), e.column()));
                serde::de::Error::custom(text.strip_suffix(&at).unwrap_or(&text))
            })?;
        }
        Ok(Raw { json, plain })
    }
}

/// Levels of arrays and objects a key, value or header value may nest.
/// serde_json reads at most 127, counting the levels around a value: a
/// fetch answer puts a key or value three deep (`{"records":[{"value":`;
/// header values are written as strings), so deeper values would make the
/// whole answer unreadable to it.
pub const MAX_JSON_DEPTH: usize = 124;

/// A JSON value read and thrown away, checked as a `Value` parse checks it
/// (numbers in range, `\u` escapes that are characters) and at most
/// `MAX_JSON_DEPTH` levels deep, without holding any of it.
#[derive(Clone, Copy)]
struct Check {
    /// Levels it may still open.
    levels: usize,
}

impl Check {
    fn value(text: &str) -> serde_json::Result<()> {
        let mut de = serde_json::Deserializer::from_str(text);
        serde::de::DeserializeSeed::deserialize(Check { levels: MAX_JSON_DEPTH }, &mut de)?;
        de.end()
    }

    fn open<E: serde::de::Error>(self) -> Result<Check, E> {
        let levels = self
            .levels
            .checked_sub(1)
            .ok_or_else(|| E::custom(format!("JSON nested more than {MAX_JSON_DEPTH} levels deep")))?;
        Ok(Check { levels })
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Check {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Check {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.open()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.open()?;
        while map.next_key_seed(inner)?.is_some() {
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

impl<'a> Raw<'a> {
    /// A string without escapes: its text, as the body holds it.
    pub fn plain_str(self) -> Option<&'a str> {
        self.plain
    }

    /// The string it is, if it is one (escapes resolved).
    pub fn string(self) -> Option<Cow<'a, str>> {
        if let Some(text) = self.plain_str() {
            return Some(Cow::Borrowed(text));
        }
        let text = self.json.get();
        if !text.starts_with('"') {
            return None;
        }
        serde_json::from_str(text).ok().map(Cow::Owned)
    }

    /// Its JSON text as written, without the whitespace between tokens:
    /// the client's key order, numbers and escapes are kept.
    pub fn compact(self) -> Bytes {
        let text = self.json.get().as_bytes();
        let mut out = Vec::with_capacity(text.len());
        let (mut in_string, mut escaped) = (false, false);
        for &b in text {
            if escaped {
                escaped = false;
            } else if in_string {
                escaped = b == b'\\';
                in_string = b != b'"';
            } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                continue;
            } else {
                in_string = b == b'"';
            }
            out.push(b);
        }
        Bytes::from(out)
    }
}

/// The bytes a produced key, value or header value stands for. Without an
/// encoding a string is its text and any other JSON value its JSON text, so
/// `{"value":"hi"}` and `{"value":{"a":1}}` both do what they look like.
pub fn decode(field: &str, v: Raw<'_>, encoding: Option<Encoding>) -> Result<Bytes, ApiError> {
    if encoding == Some(Encoding::Json) {
        return Ok(v.compact());
    }
    match (encoding, v.string()) {
        (Some(Encoding::Base64), Some(text)) => decode_base64(field, &text),
        (Some(Encoding::Base64), None) => Err(invalid(field, "must be a base64 string (encoding \"base64\")")),
        (_, Some(text)) => Ok(Bytes::from(text.into_owned())),
        (Some(Encoding::String), None) => Err(invalid(field, "must be a string (encoding \"string\")")),
        (_, None) => Ok(v.compact()),
    }
}

/// [`decode`] for a key or value given as text outside the JSON (a query
/// parameter): what the JSON string holding `text` would stand for.
pub fn decode_text(field: &str, text: &str, encoding: Option<Encoding>) -> Result<Bytes, ApiError> {
    match encoding {
        None | Some(Encoding::String) => Ok(Bytes::copy_from_slice(text.as_bytes())),
        Some(Encoding::Json) => Ok(Bytes::from(Value::from(text).to_string())),
        Some(Encoding::Base64) => decode_base64(field, text),
    }
}

fn decode_base64(field: &str, text: &str) -> Result<Bytes, ApiError> {
    BASE64.decode(text).map(Bytes::from).map_err(|e| invalid(field, &format!("is not valid base64: {e}")))
}

fn invalid(field: &str, what: &str) -> ApiError {
    ApiError::bad_request("invalid_encoding", format!("{field} {what}")).with("field", field)
}

/// A key, value or header value written down for an answer, borrowing the
/// record's bytes where it can: JSON as it is stored, or a string.
#[derive(Debug)]
pub enum Encoded<'b> {
    Json(&'b RawValue),
    Text(&'b str),
    Base64(String),
}

impl Serialize for Encoded<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Json(raw) => raw.serialize(s),
            Self::Text(text) => s.serialize_str(text),
            Self::Base64(text) => s.serialize_str(text),
        }
    }
}

/// Bytes written down in `wanted`, or in the nearest encoding that can hold
/// them (JSON → text → base64), which is then returned too: a topic may
/// hold records of every kind, and one odd record must not fail a fetch.
/// JSON is checked, not parsed into a tree (see [`Raw`]).
pub fn encode(bytes: &[u8], wanted: Encoding) -> (Encoded<'_>, Encoding) {
    if wanted == Encoding::Json
        && let Ok(raw) = serde_json::from_slice::<Raw<'_>>(bytes)
    {
        return (Encoded::Json(raw.json), Encoding::Json);
    }
    if wanted != Encoding::Base64
        && let Ok(text) = std::str::from_utf8(bytes)
    {
        return (Encoded::Text(text), Encoding::String);
    }
    (Encoded::Base64(BASE64.encode(bytes)), Encoding::Base64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Raw<'_> {
        serde_json::from_str(json).unwrap()
    }

    fn written(bytes: &[u8], wanted: Encoding) -> (String, Encoding) {
        let (encoded, used) = encode(bytes, wanted);
        (serde_json::to_string(&encoded).unwrap(), used)
    }

    #[test]
    fn every_byte_string_round_trips_through_base64() {
        for bytes in [&b""[..], b"\0", b"\xff\xfe", b"plain", b"{\"a\":1}"] {
            let (text, used) = written(bytes, Encoding::Base64);
            assert_eq!(used, Encoding::Base64);
            assert_eq!(decode("value", raw(&text), Some(Encoding::Base64)).unwrap(), bytes);
        }
    }

    #[test]
    fn without_an_encoding_strings_are_text_and_other_json_is_json_text() {
        assert_eq!(decode("value", raw(r#""hi""#), None).unwrap(), "hi");
        assert_eq!(decode("value", raw(r#""caf\u00e9\n""#), None).unwrap(), "café\n");
        assert_eq!(decode("value", raw(r#"{"a": 1}"#), None).unwrap(), "{\"a\":1}");
        assert_eq!(decode("value", raw(r#""hi""#), Some(Encoding::Json)).unwrap(), "\"hi\"");
        assert!(decode("value", raw("1"), Some(Encoding::String)).is_err());
        assert!(decode("value", raw(r#""not base64!""#), Some(Encoding::Base64)).is_err());
        assert!(decode("value", raw("[1]"), Some(Encoding::Base64)).is_err());
        assert_eq!(decode_text("key", "k", Some(Encoding::Json)).unwrap(), "\"k\"");
    }

    /// JSON is kept as the client wrote it, but for the whitespace between
    /// tokens: key order, numbers (however large) and escapes stay.
    #[test]
    fn json_is_kept_as_written_without_the_whitespace_between_tokens() {
        let text = "{ \"b\" : [1.0e3, 123456789012345678901234567890],\n\t\"a\":\"x \\\" \\u0041\\\\\" , \"c\": null }";
        let expected = "{\"b\":[1.0e3,123456789012345678901234567890],\"a\":\"x \\\" \\u0041\\\\\",\"c\":null}";
        assert_eq!(decode("value", raw(text), None).unwrap(), expected);
        assert_eq!(decode("value", raw(text), Some(Encoding::Json)).unwrap(), expected);
        // The same value, read back: what was stored is what is given.
        assert_eq!(written(expected.as_bytes(), Encoding::Json), (expected.to_owned(), Encoding::Json));
    }

    /// A fetch of JSON records checks them, and does not build a tree of
    /// each (16 to 32 times the record for an array of small numbers).
    #[test]
    fn json_records_are_checked_not_parsed_into_a_tree_to_be_written_down() {
        let array = format!("[{}0]", "0,".repeat(1 << 18));
        let ((encoded, used), allocated) =
            crate::test_alloc::allocated_during(|| encode(array.as_bytes(), Encoding::Json));
        assert_eq!(used, Encoding::Json);
        assert!(matches!(encoded, Encoded::Json(raw) if raw.get() == array));
        assert!(allocated < 4096, "writing down {} bytes allocated {allocated}", array.len());
    }

    /// A value is checked as a `Value` parse checks it, though never parsed
    /// into one: produce refuses what a JSON reader could not read back,
    /// and a stored record that is no such JSON is given as text.
    #[test]
    fn json_no_reader_could_read_back_is_refused_and_falls_back_to_text() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let deep = nested(MAX_JSON_DEPTH + 1);
        for bad in ["[1e400]", "-1e400", r#"{"a":"\ud800"}"#, r#""\ud800""#, deep.as_str()] {
            assert!(serde_json::from_str::<Raw<'_>>(bad).is_err(), "{bad} was taken");
            assert_eq!(written(bad.as_bytes(), Encoding::Json).1, Encoding::String, "{bad}");
        }
        let fine = nested(MAX_JSON_DEPTH);
        for good in ["[1e300, 123456789012345678901234567890]", r#""\ud83d\ude00""#, fine.as_str()] {
            assert!(serde_json::from_str::<Raw<'_>>(good).is_ok(), "{good} was refused");
            assert_eq!(written(good.as_bytes(), Encoding::Json), (good.to_owned(), Encoding::Json));
        }
    }

    #[test]
    fn a_record_that_cannot_be_written_as_asked_falls_back_and_says_so() {
        assert_eq!(written(b"{\"a\":1}", Encoding::Json), ("{\"a\":1}".to_owned(), Encoding::Json));
        assert_eq!(written(b"not json", Encoding::Json), ("\"not json\"".to_owned(), Encoding::String));
        assert_eq!(written(b"\xff", Encoding::String), ("\"/w==\"".to_owned(), Encoding::Base64));
    }
}
