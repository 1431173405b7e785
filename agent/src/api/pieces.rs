//! Fetch answers written a piece at a time, as the client takes them.
//!
//! An answer of records was a JSON document built whole before its first
//! byte went out: for a 64 MiB fetch, the records, and then a buffer grown
//! by doubling to hold their JSON, up to four times the records at once
//! (docs/memory.md, "2026-12-07: fetch answers in a budget of their own").
//! Written a piece at a time, an answer holds its records (in the
//! fetch-memory budget) and one piece of about [`PIECE`] (or one record's
//! JSON, if larger).

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use http_body::Frame;

use crate::budget::Held;

/// About how much JSON is written at a time.
const PIECE: usize = 64 << 10;

/// `{prefix}` items joined by commas `{suffix}`, each item written by `write`.
pub struct JsonPieces<T, F> {
    prefix: Option<Vec<u8>>,
    items: std::vec::IntoIter<T>,
    write: F,
    /// `None` once written: the answer is complete.
    suffix: Option<Vec<u8>>,
    first: bool,
    /// Given back when the answer is dropped: sent, or its client gone.
    _held: Held,
}

impl<T, F> JsonPieces<T, F>
where
    T: Send + Unpin + 'static,
    F: FnMut(&T, &mut Vec<u8>) -> serde_json::Result<()> + Send + Unpin + 'static,
{
    pub fn new(prefix: impl Into<Vec<u8>>, items: Vec<T>, suffix: impl Into<Vec<u8>>, held: Held, write: F) -> Self {
        let (prefix, suffix) = (Some(prefix.into()), Some(suffix.into()));
        Self { prefix, items: items.into_iter(), write, suffix, first: true, _held: held }
    }

    /// A `200 OK` answer of `content_type`, written as the client reads it.
    pub fn into_response(self, content_type: &'static str) -> Response {
        let mut response = Response::new(Body::new(self));
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }

    fn next_piece(&mut self) -> serde_json::Result<Option<Bytes>> {
        let Some(suffix) = self.suffix.take() else { return Ok(None) };
        // Grown as written: an answer of a few records stays small.
        let mut piece = self.prefix.take().unwrap_or_default();
        while piece.len() < PIECE {
            let Some(item) = self.items.next() else {
                piece.extend_from_slice(&suffix);
                return Ok(Some(Bytes::from(piece)));
            };
            if !std::mem::take(&mut self.first) {
                piece.push(b',');
            }
            (self.write)(&item, &mut piece)?;
        }
        self.suffix = Some(suffix);
        Ok(Some(Bytes::from(piece)))
    }
}

impl<T, F> http_body::Body for JsonPieces<T, F>
where
    T: Send + Unpin + 'static,
    F: FnMut(&T, &mut Vec<u8>) -> serde_json::Result<()> + Send + Unpin + 'static,
{
    type Data = Bytes;
    type Error = serde_json::Error;

    fn poll_frame(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.get_mut().next_piece().transpose().map(|piece| piece.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.suffix.is_none()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn written(
        pieces: JsonPieces<u32, impl FnMut(&u32, &mut Vec<u8>) -> serde_json::Result<()> + Send + Unpin + 'static>,
    ) -> (String, usize) {
        let mut body = Body::new(pieces);
        let (mut all, mut n) = (Vec::new(), 0);
        while let Some(frame) = body.frame().await {
            all.extend_from_slice(&frame.unwrap().into_data().unwrap());
            n += 1;
        }
        (String::from_utf8(all).unwrap(), n)
    }

    #[tokio::test]
    async fn items_are_joined_between_the_prefix_and_the_suffix_in_pieces() {
        let write = |n: &u32, out: &mut Vec<u8>| serde_json::to_writer(out, &"x".repeat(*n as usize));
        let none = JsonPieces::new("{\"a\":[", Vec::new(), "]}", Held::default(), write);
        assert_eq!(written(none).await, ("{\"a\":[]}".to_owned(), 1));
        let items = vec![40_000u32, 40_000, 1, 100_000];
        let want = format!(
            "[{}]",
            items.iter().map(|n| format!("\"{}\"", "x".repeat(*n as usize))).collect::<Vec<_>>().join(",")
        );
        let (text, pieces) = written(JsonPieces::new("[", items, "]", Held::default(), write)).await;
        assert_eq!(text, want);
        assert_eq!(pieces, 3, "a piece ends once it holds {PIECE} bytes");
    }
}
