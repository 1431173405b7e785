//! Keys and values as a produce body holds them, and where a request's
//! plain texts are kept: as slices of the body when they are nearly all of
//! it, or else copied into one buffer (one allocation per request, not one
//! per key and value).

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

    /// The bytes; a text from where `texts` keeps it.
    fn into_bytes(self, texts: &mut Texts) -> Bytes {
        match self {
            Self::Text(text) => texts.take(text.as_bytes()),
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

/// The records, their texts either left in the body or copied out of it.
///
/// Left in it (each a slice of `body`, no copy) when they are nearly all of
/// it: the JSON around them then holds at most 1/16 more than the records'
/// own bytes, which is what the budgets count. Otherwise (small records,
/// padding, headers, escapes) they are copied into one buffer sized to hold
/// exactly them, one allocation per request instead of one per key and
/// value, and nothing of the body's JSON is kept. (The writer keeps a
/// request's records no longer than its answer: decision 0026.)
pub(super) fn pack(decoded: Vec<Decoded<'_>>, body: &Bytes) -> Vec<NewRecord> {
    let texts = || decoded.iter().flat_map(|d| d.key.iter().chain([&d.value])).filter_map(Piece::text);
    let total: usize = texts().map(<[u8]>::len).sum();
    debug_assert!(total <= body.len(), "plain texts are read from the body");
    let mut texts = if body.len().saturating_sub(total) <= total / 16 {
        Texts::InBody(body.clone())
    } else {
        Texts::Copied(OneBuffer::new(texts()))
    };
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

/// Where a request's plain texts are kept.
enum Texts {
    /// In the body, as parsed from it.
    InBody(Bytes),
    /// In one buffer, in order.
    Copied(OneBuffer),
}

impl Texts {
    fn take(&mut self, text: &[u8]) -> Bytes {
        match self {
            // A text is always part of the body; were it not, a copy.
            Self::InBody(body) => within(body, text).map_or_else(|| Bytes::copy_from_slice(text), |r| body.slice(r)),
            Self::Copied(buf) => buf.take(text.len()),
        }
    }
}

/// Where `part` lies in `whole`, if it is part of it.
pub(super) fn within(whole: &[u8], part: &[u8]) -> Option<std::ops::Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= whole.len()).then_some(start..end)
}
