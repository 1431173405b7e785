//! Keys and values as a produce body holds them, and the one buffer a
//! request's plain texts are copied into: one allocation per request, not
//! one per key and value.

use bytes::Bytes;

use super::ApiError;
use super::encoding::{self, Encoding, Raw};
use crate::one_buffer::OneBuffer;
use crate::service::NewRecord;

/// A record's key or value, decoded: a plain text still in the body, or bytes.
pub(super) enum Piece<'a> {
    Text(&'a str),
    Bytes(Bytes),
}

impl<'a> Piece<'a> {
    pub(super) fn decode(field: &str, value: Raw<'a>, encoding: Option<Encoding>) -> Result<Self, ApiError> {
        match (value.plain_str(), encoding) {
            (Some(text), None | Some(Encoding::String)) => Ok(Self::Text(text)),
            _ => encoding::decode(field, value, encoding).map(Self::Bytes),
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
