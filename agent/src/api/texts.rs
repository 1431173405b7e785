//! Keys and values as a produce body holds them, and the one buffer a
//! request's plain texts are copied into: one allocation per request, not
//! one per key and value.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::ApiError;
use super::encoding::{self, Encoding};
use crate::one_buffer::OneBuffer;
use crate::service::NewRecord;

/// A key or value as it appears in the body: a JSON string without
/// escapes, as its text in the body; anything else, parsed.
pub(super) enum Field<'a> {
    Text(&'a str),
    Json(Value),
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor(std::marker::PhantomData))
    }
}

/// serde_json hands a string over borrowed exactly when it has no escapes.
struct FieldVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> serde::de::Visitor<'de> for FieldVisitor<'a> {
    type Value = Field<'a>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Field<'a>, E> {
        Ok(Field::Text(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Field<'a>, E> {
        Ok(Field::Json(Value::from(v)))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Field<'a>, E> {
        Ok(Field::Json(Value::from(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Field<'a>, E> {
        Ok(Field::Json(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Field<'a>, E> {
        Ok(Field::Json(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Field<'a>, E> {
        Ok(Field::Json(Value::from(v)))
    }
    fn visit_unit<E>(self) -> Result<Field<'a>, E> {
        Ok(Field::Json(Value::Null))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Field<'a>, A::Error> {
        Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq)).map(Field::Json)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Field<'a>, A::Error> {
        Value::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Field::Json)
    }
}

/// A record's key or value, decoded: a plain text still in the body, or bytes.
pub(super) enum Piece<'a> {
    Text(&'a str),
    Bytes(Bytes),
}

impl<'a> Piece<'a> {
    pub(super) fn decode(field: &str, value: Field<'a>, encoding: Option<Encoding>) -> Result<Self, ApiError> {
        match (value, encoding) {
            (Field::Text(text), None | Some(Encoding::String)) => Ok(Self::Text(text)),
            (Field::Text(text), encoding) => encoding::decode(field, Value::from(text), encoding).map(Self::Bytes),
            (Field::Json(value), encoding) => encoding::decode(field, value, encoding).map(Self::Bytes),
        }
    }

    fn text(&self) -> Option<&'a [u8]> {
        match self {
            Self::Text(text) => Some(text.as_bytes()),
            Self::Bytes(_) => None,
        }
    }

    /// The bytes; a text as the next slice of `texts`, which holds them in order.
    fn into_bytes(self, texts: &mut OneBuffer) -> Bytes {
        match self {
            Self::Text(text) => texts.take(text.len()),
            Self::Bytes(bytes) => bytes,
        }
    }
}

/// A record decoded but for its texts, which are still in the body.
pub(super) struct Decoded<'a> {
    pub key: Option<Piece<'a>>,
    pub value: Piece<'a>,
    pub partition: Option<u32>,
    pub headers: Vec<(String, Bytes)>,
    pub timestamp: Option<i64>,
}

/// The records, their texts copied out of the body into one buffer sized
/// to hold exactly them: one allocation per request instead of one per
/// key and value, and nothing of the body's JSON kept. (The writer gives
/// each partition's records their own buffer when a request spans several.)
pub(super) fn pack(decoded: Vec<Decoded<'_>>) -> Vec<NewRecord> {
    let mut texts = OneBuffer::new(decoded.iter().flat_map(|d| d.key.iter().chain([&d.value])).filter_map(Piece::text));
    decoded
        .into_iter()
        .map(|d| NewRecord {
            key: d.key.map(|k| k.into_bytes(&mut texts)),
            value: d.value.into_bytes(&mut texts),
            partition: d.partition,
            headers: d.headers,
            timestamp: d.timestamp,
        })
        .collect()
}
