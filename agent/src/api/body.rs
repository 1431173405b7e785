//! Reading and parsing request bodies, with JSON errors for every failure.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use serde::Deserialize;

use super::ApiError;

/// The whole body, at most `limit` bytes, in one buffer sized from its
/// `Content-Length` (or, chunked, cut back to its size at the end): each
/// chunk is copied in as it arrives and let go, so a large body is held
/// once, not as its chunks and their concatenation.
///
/// The buffer is made once the first bytes are there: the first read takes
/// the body's share of the request budget (`layers::ReadBody`), and waiting
/// for it must not hold a buffer of the body's size.
pub async fn read(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = usize::try_from(axum::body::HttpBody::size_hint(&body).lower()).unwrap_or(usize::MAX);
    let mut body = http_body_util::Limited::new(body, limit);
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.map_err(read_error(limit))?.into_data() {
            if buf.capacity() == 0 {
                buf.reserve(declared.min(limit).max(data.len()));
            }
            buf.extend_from_slice(&data);
        }
    }
    if buf.capacity() == buf.len() {
        return Ok(buf.freeze());
    }
    // A chunked body grew its buffer by doubling: cut back to its size, so
    // what keeps a slice of it (a produce's records) holds no more than that.
    let mut exact = Vec::from(buf);
    exact.shrink_to_fit();
    Ok(Bytes::from(exact))
}

fn read_error(limit: usize) -> impl Fn(Box<dyn std::error::Error + Send + Sync>) -> ApiError {
    move |e| {
        let mut causes = std::iter::successors(Some(&*e as &(dyn std::error::Error + 'static)), |c| c.source());
        if causes.any(|c| c.is::<super::layers::BodyTimedOut>()) {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request body did not arrive in time; the connection is closed",
            );
        }
        if e.is::<http_body_util::LengthLimitError>() {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                format!("the request body exceeds {limit} bytes"),
            )
            .with("max_request_bytes", limit)
        } else {
            ApiError::bad_request("invalid_body", format!("cannot read the request body: {e}"))
        }
    }
}

/// A JSON object as `T` (a struct). Only an object: see `ObjectOnly`.
pub fn json<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, ApiError> {
    object(bytes).map_err(|e| ApiError::bad_request("invalid_json", format!("invalid JSON body: {e}")))
}

/// `bytes` (one JSON object, and nothing after it but whitespace) as `T`.
pub fn object<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = T::deserialize(ObjectOnly(&mut de))?;
    de.end()?;
    Ok(value)
}

/// Reads a struct only from a JSON object. Serde's derived structs also
/// accept an array of their fields in order (`["orders", 3]` for a topic),
/// which no client means and which would bypass the refusal of unknown
/// fields; a map is what every request body is.
struct ObjectOnly<D>(D);

impl<'de, D: serde::Deserializer<'de>> serde::Deserializer<'de> for ObjectOnly<D> {
    type Error = D::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(visitor)
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// `ObjectOnly` for one element of a list.
struct ObjectSeed<T>(std::marker::PhantomData<T>);

impl<'de, T: serde::Deserialize<'de>> serde::de::DeserializeSeed<'de> for ObjectSeed<T> {
    type Value = T;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        T::deserialize(ObjectOnly(d))
    }
}

/// The body's media type, without parameters, lower-cased; JSON when absent.
pub fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map_or_else(|| "application/json".to_owned(), |v| v.trim().to_ascii_lowercase())
}

/// Most records one produce request may hold. Checked while parsing, so a
/// body of tiny records cannot make the agent allocate far more than the
/// body's own size.
pub const MAX_RECORDS_PER_REQUEST: usize = 100_000;

/// Most record headers one produce request may hold, over all its records.
/// Parsed, a header is a map entry and its strings, about a hundred bytes,
/// for as few as six bytes of the body (`"a":"",`): without a bound a body of
/// headers would make the agent hold twenty times its size.
pub const MAX_HEADERS_PER_REQUEST: usize = 100_000;

/// A parsed record's count towards `MAX_HEADERS_PER_REQUEST`.
pub trait RecordHeaders {
    fn header_count(&self) -> usize;
}

fn too_many_headers() -> String {
    format!("more than {MAX_HEADERS_PER_REQUEST} record headers in one request")
}

/// Checks a request's running header count after one more record.
pub fn count_headers(total: &mut usize, record: &impl RecordHeaders) -> Result<(), String> {
    *total += record.header_count();
    if *total > MAX_HEADERS_PER_REQUEST {
        return Err(too_many_headers());
    }
    Ok(())
}

/// Deserializes a list of at most `MAX_RECORDS_PER_REQUEST` objects holding
/// at most `MAX_HEADERS_PER_REQUEST` headers between them, failing at the
/// first one over (use with `#[serde(deserialize_with = ...)]`).
pub fn bounded_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + RecordHeaders,
{
    struct Bounded<T>(std::marker::PhantomData<T>);
    impl<'de, T: serde::Deserialize<'de> + RecordHeaders> serde::de::Visitor<'de> for Bounded<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a list of at most {MAX_RECORDS_PER_REQUEST} records")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
            let mut headers = 0;
            while let Some(item) = seq.next_element_seed(ObjectSeed(std::marker::PhantomData))? {
                if out.len() == MAX_RECORDS_PER_REQUEST {
                    return Err(serde::de::Error::custom(format!(
                        "more than {MAX_RECORDS_PER_REQUEST} records in one request"
                    )));
                }
                count_headers(&mut headers, &item).map_err(serde::de::Error::custom)?;
                out.push(item);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Bounded(std::marker::PhantomData))
}

/// One record's headers from an object, at most `MAX_HEADERS_PER_REQUEST`
/// of them, failing at the first one over: sorted by name, the last of a
/// repeated name kept (as a map would; answers write them as an object). A
/// list, not a map: a map's node is ~450 bytes even for one header.
pub fn bounded_headers<'de, D, V>(d: D) -> Result<Vec<(String, V)>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: serde::Deserialize<'de>,
{
    struct Bounded<V>(std::marker::PhantomData<V>);
    impl<'de, V: serde::Deserialize<'de>> serde::de::Visitor<'de> for Bounded<V> {
        type Value = Vec<(String, V)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "an object of at most {MAX_HEADERS_PER_REQUEST} headers")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
            while let Some(entry) = map.next_entry::<String, V>()? {
                if out.len() == MAX_HEADERS_PER_REQUEST {
                    return Err(serde::de::Error::custom(too_many_headers()));
                }
                out.push(entry);
            }
            // Stable: of a repeated name, the last given is last in its run,
            // and moves into the slot kept for the run.
            out.sort_by(|a: &(String, V), b| a.0.cmp(&b.0));
            out.dedup_by(|later, kept| {
                let same = later.0 == kept.0;
                if same {
                    std::mem::swap(later, kept);
                }
                same
            });
            // Only what is kept stays held: the request's limit counts it.
            out.shrink_to_fit();
            Ok(out)
        }
    }
    d.deserialize_map(Bounded(std::marker::PhantomData))
}

/// One record's headers from a list, kept up to `MAX_HEADERS_PER_REQUEST`
/// and read past it without being kept: `over` then says so, and the
/// request is refused whole (`count_headers`) instead of failing as JSON
/// where it stands (which, in a stream of records, would write those before).
pub struct HeaderList<T> {
    pub items: Vec<T>,
    pub over: bool,
}

impl<T> Default for HeaderList<T> {
    fn default() -> Self {
        Self { items: Vec::new(), over: false }
    }
}

impl<T> HeaderList<T> {
    /// Its count towards `MAX_HEADERS_PER_REQUEST` (past it, when over).
    pub fn count(&self) -> usize {
        if self.over { MAX_HEADERS_PER_REQUEST + 1 } else { self.items.len() }
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for HeaderList<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Capped<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Capped<T> {
            type Value = HeaderList<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of headers")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<HeaderList<T>, A::Error> {
                let mut list =
                    HeaderList { items: Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64)), over: false };
                while list.items.len() < MAX_HEADERS_PER_REQUEST {
                    match seq.next_element()? {
                        Some(item) => list.items.push(item),
                        None => return Ok(list),
                    }
                }
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    list.over = true;
                }
                Ok(list)
            }
        }
        d.deserialize_seq(Capped(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of `sizes` chunks with no declared length, as a chunked
    /// request arrives.
    fn chunked(sizes: &[usize]) -> Body {
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            sizes.iter().map(|n| Ok(Bytes::from(vec![b'x'; *n]))).collect();
        Body::from_stream(futures::stream::iter(chunks))
    }

    /// A body that declares `0` bytes and has none of them yet (its memory
    /// not yet reserved, say).
    struct Waiting(u64);

    impl http_body::Body for Waiting {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
            std::task::Poll::Pending
        }

        fn size_hint(&self) -> http_body::SizeHint {
            http_body::SizeHint::with_exact(self.0)
        }
    }

    /// The buffer for a body is made once its first bytes are there: the
    /// first read is what takes the body's memory reservation, which the
    /// buffer must not come before (ten requests waiting for their turn
    /// would otherwise each hold a buffer of their full size).
    #[test]
    fn no_buffer_is_made_before_the_body_starts_to_arrive() {
        use futures::FutureExt;
        let declared = 16 << 20;
        let (read, allocated) =
            crate::test_alloc::allocated_during(|| read(Body::new(Waiting(declared)), 16 << 20).now_or_never());
        assert!(read.is_none(), "still waiting");
        assert!(allocated < 64 << 10, "{allocated} bytes allocated while waiting for a {declared}-byte body");
    }

    #[tokio::test]
    async fn a_chunked_body_over_the_limit_is_refused_as_too_large() {
        let e = read(chunked(&[600, 600]), 1000).await.unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::PAYLOAD_TOO_LARGE, "request_too_large"));
    }

    #[tokio::test]
    async fn a_chunked_body_within_the_limit_is_read_whole() {
        let body = read(chunked(&[600, 400]), 1000).await.unwrap();
        assert_eq!(body.len(), 1000);
    }

    /// A produce's records may be slices of its body: the body must hold no
    /// more than its size, whose share the budgets count.
    #[tokio::test]
    async fn a_chunked_body_holds_no_more_memory_than_its_size() {
        let body = read(chunked(&[600, 400, 100]), 2000).await.unwrap();
        let held = Vec::from(body);
        assert_eq!((held.len(), held.capacity()), (1100, 1100));
    }
}
