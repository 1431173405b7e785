//! Produce and fetch records: JSON (or NDJSON) in, JSON (or server-sent events) out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::api::layers::BodyReservation;
use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use floe_broker::Record;
use floe_broker::segment::ProducerStamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::encoding::{self, Encoded, Encoding, Raw};
use super::pieces::JsonPieces;
use super::texts::{Decoded, Piece, pack};
use super::{ApiError, body, tail};
use crate::auth::Caller;
use crate::service::{Acks, Agent, FetchRequest, Fetched, FlushId, NewRecord, Receipt, RecordOffset};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProduceBody<'a> {
    #[serde(borrow, deserialize_with = "crate::api::body::bounded_list")]
    records: Vec<InRecord<'a>>,
    #[serde(default)]
    producer: Option<ProducerRef>,
}

/// An idempotent producer's stamp on a request: `sequence` is the sequence of
/// the request's first record in its (single) partition.
#[derive(Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct ProducerRef {
    id: u64,
    epoch: u32,
    sequence: u64,
}

/// Unknown fields are refused: a misspelt field, or a `producer` on an NDJSON
/// line (idempotence is per request, in the JSON body), must not be ignored.
/// Keys, values and header values stay JSON text in the body (`Raw`); plain
/// strings among them are copied, once, into the request's one buffer (`pack`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InRecord<'a> {
    #[serde(default, borrow)]
    key: Option<Raw<'a>>,
    #[serde(borrow)]
    value: Raw<'a>,
    #[serde(default)]
    partition: Option<u32>,
    #[serde(default, borrow, deserialize_with = "crate::api::body::bounded_headers")]
    headers: Vec<(String, Raw<'a>)>,
    #[serde(default)]
    timestamp: Option<i64>,
    /// Overrides the request's `key_encoding` for this record.
    #[serde(default)]
    key_encoding: Option<Encoding>,
    /// Overrides the request's `value_encoding` for this record (and its header values).
    #[serde(default)]
    value_encoding: Option<Encoding>,
}

impl body::RecordHeaders for InRecord<'_> {
    fn header_count(&self) -> usize {
        self.headers.len()
    }
}

/// Query parameters of a produce: the request's encodings, and for an
/// `application/octet-stream` body (one record, the body its value) the
/// record's key and partition.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProduceQuery {
    #[serde(default)]
    key_encoding: Option<Encoding>,
    #[serde(default)]
    value_encoding: Option<Encoding>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    partition: Option<u32>,
    /// `committed` or `local`; the agent's `--acks` when absent.
    #[serde(default)]
    acks: Option<Acks>,
}

/// On an octet-stream produce, each `floe-header-NAME: value` HTTP header
/// becomes the record header NAME.
const HEADER_PREFIX: &str = "floe-header-";

impl<'a> InRecord<'a> {
    fn decode(self, index: usize, q: &ProduceQuery) -> Result<Decoded<'a>, ApiError> {
        let key_encoding = self.key_encoding.or(q.key_encoding);
        let value_encoding = self.value_encoding.or(q.value_encoding);
        // Header values are text, or base64 along with a base64 value.
        let header_encoding = (value_encoding == Some(Encoding::Base64)).then_some(Encoding::Base64);
        let at = |e: ApiError| e.with("record_index", index);
        Ok(Decoded {
            key: self.key.map(|k| Piece::decode("key", k, key_encoding)).transpose().map_err(at)?,
            value: Piece::decode("value", self.value, value_encoding).map_err(at)?,
            partition: self.partition,
            headers: self
                .headers
                .into_iter()
                .map(|(name, v)| Ok((name, encoding::decode("header value", v, header_encoding)?)))
                .collect::<Result<_, ApiError>>()
                .map_err(at)?,
            timestamp: self.timestamp,
        })
    }
}

/// An `application/octet-stream` body: one record whose value is the body.
fn octet_stream_record(headers: &HeaderMap, body: Bytes, q: &ProduceQuery) -> Result<NewRecord, ApiError> {
    let key = q.key.as_deref().map(|k| encoding::decode_text("key", k, q.key_encoding)).transpose()?;
    let record_headers = headers
        .iter()
        .filter_map(|(name, v)| Some((name.as_str().strip_prefix(HEADER_PREFIX)?.to_owned(), v)))
        .map(|(name, v)| (name, Bytes::copy_from_slice(v.as_bytes())))
        .collect();
    Ok(NewRecord { key, value: body, partition: q.partition, headers: record_headers, timestamp: None })
}

const NDJSON: &str = "application/x-ndjson";
const OCTET_STREAM: &str = "application/octet-stream";

/// `acks=local`'s answer: synced to the agent's spool, to be committed.
#[derive(Serialize)]
struct Spooled {
    acks: Acks,
    flush: FlushId,
}

/// A committed produce's answer, `{"offsets":[{"partition":P,"offset":O},…]}`,
/// written as serde_json writes it. By hand because it is one object per
/// record: serde_json checks each field name for characters to escape and
/// grows its buffer by doubling, 2% of a produce's CPU for 1 KiB records
/// (docs/benchmarks.md). Reserved once, at its largest size.
fn offsets_json(offsets: &[RecordOffset]) -> Vec<u8> {
    const LONGEST: usize = r#"{"partition":4294967295,"offset":18446744073709551615},"#.len();
    let mut out = Vec::with_capacity(r#"{"offsets":[]}"#.len() + offsets.len() * LONGEST);
    out.extend_from_slice(br#"{"offsets":["#);
    let mut number = itoa::Buffer::new();
    for (i, o) in offsets.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"partition":"#);
        out.extend_from_slice(number.format(o.partition).as_bytes());
        out.extend_from_slice(br#","offset":"#);
        out.extend_from_slice(number.format(o.offset).as_bytes());
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}

/// A produce request's records and producer, from its headers, query and body.
pub(super) fn parse_produce(
    headers: &HeaderMap,
    q: &ProduceQuery,
    bytes: Bytes,
) -> Result<(Vec<NewRecord>, Option<ProducerStamp>), ApiError> {
    if body::media_type(headers) == OCTET_STREAM {
        return Ok((vec![octet_stream_record(headers, bytes, q)?], None));
    }
    if q.key.is_some() || q.partition.is_some() {
        return Err(ApiError::bad_request(
            "invalid_query",
            "key and partition go in the query only with an application/octet-stream body",
        ));
    }
    let (records, producer) = parse_records(headers, &bytes)?;
    let decoded = records.into_iter().enumerate().map(|(i, r)| r.decode(i, q)).collect::<Result<_, _>>()?;
    Ok((pack(decoded, &bytes), producer.map(|p| ProducerStamp { id: p.id, epoch: p.epoch, sequence: p.sequence })))
}

/// NDJSON when the request says so; JSON otherwise (curl's `-d` labels JSON as a form).
fn parse_records<'a>(
    headers: &HeaderMap,
    bytes: &'a [u8],
) -> Result<(Vec<InRecord<'a>>, Option<ProducerRef>), ApiError> {
    if body::media_type(headers) != NDJSON {
        let body = body::json::<ProduceBody>(bytes)?;
        return Ok((body.records, body.producer));
    }
    let lines = bytes.split(|b| *b == b'\n').filter(|line| !line.iter().all(u8::is_ascii_whitespace)).count();
    if lines > body::MAX_RECORDS_PER_REQUEST {
        return Err(ApiError::bad_request(
            "too_many_records",
            format!("more than {} records in one request", body::MAX_RECORDS_PER_REQUEST),
        ));
    }
    let mut headers = 0;
    let records = bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(i, line)| {
            let invalid =
                |e: String| ApiError::bad_request("invalid_json", format!("line {}: {e}", i + 1)).with("line", i + 1);
            let record: InRecord = body::object(line).map_err(|e| invalid(e.to_string()))?;
            body::count_headers(&mut headers, &record).map_err(invalid)?;
            Ok(record)
        })
        .collect::<Result<_, ApiError>>()?;
    Ok((records, None))
}

/// Where an acknowledgement's time went, as `Server-Timing` (milliseconds;
/// browsers' developer tools show it): `buffer` (waiting for the flush),
/// `upload` (the segment PUT), `commit` (the create-only log entry, whose
/// position is the description).
fn server_timing(r: &Receipt) -> HeaderValue {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let value = format!(
        "buffer;dur={:.1}, upload;dur={:.1}, commit;dur={:.1};desc=\"log {}\"",
        ms(r.buffer),
        ms(r.upload),
        ms(r.commit),
        r.seq
    );
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("commit"))
}

pub async fn produce(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ProduceQuery>, QueryRejection>,
    headers: HeaderMap,
    reservation: Option<Extension<BodyReservation>>,
    raw: Body,
) -> Result<Response, ApiError> {
    let Path(topic) = path?;
    let Query(q) = query?;
    // Refused before the body is read (the service checks again).
    caller.check(crate::auth::Action::Produce(&topic))?;
    let bytes = body::read(raw, agent.max_request_bytes()).await?;
    let (records, stamp) = parse_produce(&headers, &q, bytes)?;
    let acks = q.acks.unwrap_or(agent.default_acks());
    let produced = agent.produce(&caller, &topic, records, stamp, acks, BodyReservation::releaser(reservation)).await?;
    let mut response = match produced.flush {
        Some(flush) => Json(Spooled { acks: Acks::Local, flush }).into_response(),
        None => {
            ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], offsets_json(&produced.offsets))
                .into_response()
        }
    };
    if let Some(receipt) = produced.receipt {
        response.headers_mut().insert("server-timing", server_timing(&receipt));
    }
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchQuery {
    #[serde(default)]
    offset: u64,
    #[serde(default = "default_max_records")]
    max_records: usize,
    #[serde(default = "default_max_bytes")]
    max_bytes: usize,
    #[serde(default)]
    timeout_ms: u64,
    #[serde(default = "default_encoding")]
    encoding: Encoding,
}

pub fn default_encoding() -> Encoding {
    Encoding::String
}

pub fn default_max_records() -> usize {
    500
}

pub fn default_max_bytes() -> usize {
    1 << 20
}

/// A record as fetched: key, value and header values in the encoding asked
/// for, or where one cannot be written so, in the encoding named beside it.
/// It borrows the record's bytes.
#[derive(Serialize)]
pub struct OutRecord<'r> {
    offset: u64,
    key: Option<Encoded<'r>>,
    value: Encoded<'r>,
    timestamp: i64,
    headers: BTreeMap<&'r str, Encoded<'r>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_encoding: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_encoding: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers_encoding: Option<&'static str>,
}

/// A fetch's answer (written by [`fetch_answer`]).
#[cfg(test)]
#[derive(Serialize)]
pub struct FetchResponse<'r> {
    records: Vec<OutRecord<'r>>,
    next_offset: u64,
    high_watermark: u64,
    log_start_offset: u64,
}

impl<'r> OutRecord<'r> {
    pub fn new(offset: u64, r: &'r Record, wanted: Encoding) -> Self {
        // Names the encoding used where it is not the one asked for.
        let differs = |used: Encoding| (used != wanted).then_some(used.name());
        let key = r.key.as_ref().map(|k| encoding::encode(k, wanted));
        let (value, value_used) = encoding::encode(&r.value, wanted);
        // Header values are text unless base64 is asked for or one is not UTF-8.
        let header_text = wanted != Encoding::Base64 && r.headers.iter().all(|(_, v)| std::str::from_utf8(v).is_ok());
        let header_encoding = if header_text { Encoding::String } else { Encoding::Base64 };
        let headers = r.headers.iter().map(|(k, v)| (k.as_str(), encoding::encode(v, header_encoding).0)).collect();
        Self {
            offset,
            key_encoding: key.as_ref().and_then(|(_, used)| differs(*used)),
            key: key.map(|(v, _)| v),
            value,
            value_encoding: differs(value_used),
            timestamp: r.timestamp,
            headers,
            headers_encoding: (!r.headers.is_empty() && !header_text && wanted != Encoding::Base64).then_some("base64"),
        }
    }
}

pub async fn fetch(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    path: Result<Path<(String, u32)>, PathRejection>,
    query: Result<Query<FetchQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path((topic, partition)) = path?;
    let Query(q) = query?;
    let mut req = FetchRequest {
        topic,
        partition,
        offset: q.offset,
        max_records: q.max_records,
        max_bytes: q.max_bytes,
        timeout: Duration::from_millis(q.timeout_ms),
    };
    if tail::wants_stream(&headers) {
        // Resuming: the last event id is the next offset to read.
        if let Some(resume) = tail::last_event_id(&headers) {
            req.offset = resume;
        }
        return Ok(tail::stream(agent.tail(&caller, req).await?, q.encoding));
    }
    Ok(fetch_answer(agent.fetch(&caller, &req).await?, q.encoding))
}

/// A fetch's answer, as [`FetchResponse`] would be serialized, written a
/// piece at a time; it holds the records' memory until it is sent.
fn fetch_answer(fetched: Fetched, encoding: Encoding) -> Response {
    let Fetched { records, next_offset, high_watermark, log_start_offset, held } = fetched;
    let rest = format!(
        r#"],"next_offset":{next_offset},"high_watermark":{high_watermark},"log_start_offset":{log_start_offset}}}"#
    );
    let write = move |(offset, r): &(u64, Record), out: &mut Vec<u8>| {
        serde_json::to_writer(out, &OutRecord::new(*offset, r, encoding))
    };
    JsonPieces::new(r#"{"records":["#, records, rest, held, write).into_response("application/json")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeQuery {
    /// Milliseconds since the Unix epoch.
    timestamp: i64,
}

/// `GET …/partitions/{p}/offsets?timestamp=MS`: where to start reading from a time.
pub async fn offset_for_time(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    path: Result<Path<(String, u32)>, PathRejection>,
    query: Result<Query<TimeQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path((topic, partition)) = path?;
    let Query(q) = query?;
    let offset = agent.offset_for_time(&caller, &topic, partition, q.timestamp).await?;
    Ok(Json(serde_json::json!({ "offset": offset })))
}

#[cfg(test)]
pub(crate) mod tests {
    use http_body_util::BodyExt;

    use super::*;

    /// What an answer's body says, read to its end.
    pub(crate) async fn answer_text(answer: Response) -> String {
        String::from_utf8(answer.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    /// Records of every shape an answer writes: text, binary, JSON, keys, headers.
    pub(crate) fn assorted_records(n: usize) -> Vec<(u64, Record)> {
        (0..n)
            .map(|i| {
                let value = match i % 3 {
                    0 => Bytes::from(format!("text {i} \"quoted\" {}", "x".repeat(i * 700))),
                    1 => Bytes::from(vec![0xff, 0, i as u8]),
                    _ => Bytes::from(format!(r#"{{"n": {i}}}"#)),
                };
                let key = (i % 2 == 0).then(|| Bytes::from(format!("k{i}")));
                let headers = [("h".to_owned(), Bytes::from_static(b"v")), ("b".to_owned(), Bytes::from(vec![0xfe]))];
                (1_000 + i as u64, Record { key, value, timestamp: i as i64, headers: headers[..i % 3].to_vec() })
            })
            .collect()
    }

    /// A fetch answer written a piece at a time is what serde_json wrote of
    /// the whole, byte for byte, in every encoding.
    #[tokio::test]
    async fn a_fetch_answer_in_pieces_is_what_serde_json_writes() {
        for n in [0, 1, 7, 300] {
            for encoding in [Encoding::String, Encoding::Base64, Encoding::Json] {
                let records = assorted_records(n);
                let whole = FetchResponse {
                    records: records.iter().map(|(o, r)| OutRecord::new(*o, r, encoding)).collect(),
                    next_offset: 1_000 + n as u64,
                    high_watermark: 5_000,
                    log_start_offset: 3,
                };
                let want = serde_json::to_string(&whole).unwrap();
                let fetched = Fetched {
                    records: records.clone(),
                    next_offset: 1_000 + n as u64,
                    high_watermark: 5_000,
                    log_start_offset: 3,
                    held: Default::default(),
                };
                assert_eq!(answer_text(fetch_answer(fetched, encoding)).await, want, "{n} records, {encoding:?}");
            }
        }
    }

    /// The hand-written answer is serde_json's, byte for byte.
    #[test]
    fn a_committed_answer_is_what_serde_json_writes() {
        #[derive(Serialize)]
        struct Committed<'a> {
            offsets: &'a [RecordOffset],
        }
        let cases: [&[RecordOffset]; 3] = [
            &[],
            &[RecordOffset { partition: 0, offset: 0 }],
            &[
                RecordOffset { partition: 7, offset: 41 },
                RecordOffset { partition: u32::MAX, offset: u64::MAX },
                RecordOffset { partition: 10, offset: 1_000_000_007 },
            ],
        ];
        for offsets in cases {
            let written = String::from_utf8(offsets_json(offsets)).unwrap();
            assert_eq!(written, serde_json::to_string(&Committed { offsets }).unwrap());
        }
    }

    /// A produce keeps its body's reservation until the write buffer holds
    /// its records: while it waits for the log (here, to learn a topic
    /// another agent made, over a store slow to answer) its parsed records
    /// count against the request budget, so such waits cannot pile up
    /// uncounted records (a store outage, a burst to a new topic).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_produce_waiting_for_the_log_holds_its_reservation() {
        use floe_broker::fault::{Fault, FaultyStore, OpKind};

        let settings = || crate::config::try_args(&["--log-poll-ms", "3600000", "--compactor", "off"]).unwrap();
        let shared: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let slow = Arc::new(FaultyStore::new(shared.clone()));
        let waiting = Agent::start(settings(), slow.clone(), "http://127.0.0.1:1").await.unwrap();
        let other = Agent::start(settings(), shared, "http://127.0.0.1:2").await.unwrap();
        let (waiting_url, other_url) = (serve(waiting.clone()).await, serve(other).await);
        let http = reqwest::Client::new();
        let created = http.post(format!("{other_url}/v1/topics")).json(&serde_json::json!({"name": "t"})).send().await;
        assert_eq!(created.unwrap().status(), 201);

        // The waiting agent learns of the topic only by reading the log, slowly.
        slow.inject(OpKind::Get, "log/", Fault::Delay(Duration::from_millis(1500)), None);
        let body = serde_json::json!({"records": [{"value": "after a wait"}]});
        let produce = tokio::spawn(http.post(format!("{waiting_url}/v1/topics/t/records")).json(&body).send());
        let mut held = 0;
        while !produce.is_finished() {
            held = held.max(waiting.bodies_held());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let answered = produce.await.unwrap().unwrap();
        assert_eq!(answered.status(), 200);
        assert!(held > 0, "the parsed records were counted while the produce waited for the log");
        assert_eq!(waiting.bodies_held(), 0, "and given back once buffered");
    }

    /// Serves `agent` on a loopback port; its URL.
    async fn serve(agent: Arc<Agent>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(crate::api::serve(agent, listener, None, std::future::pending()));
        url
    }

    /// A panic in a flush's upload (a bug, here injected by the store as
    /// the segment is written) answers the produce 500 `internal`, an
    /// outcome unknown to the client, and the agent goes on serving.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_in_an_upload_answers_500_internal_and_the_agent_goes_on() {
        use floe_broker::fault::{Fault, OpKind};

        let (agent, store) = crate::testing::agent_on_a_faulty_store(&["--compactor", "off"]).await;
        let url = serve(agent).await;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let created = http.post(format!("{url}/v1/topics")).json(&serde_json::json!({"name": "t"})).send().await;
        assert_eq!(created.unwrap().status(), 201);
        store.inject(OpKind::Put, "segments/", Fault::Panic, Some(1));
        let produce = || {
            let body = serde_json::json!({"records": [{"value": "x"}]});
            http.post(format!("{url}/v1/topics/t/records")).json(&body).send()
        };
        let answered = produce().await.unwrap();
        assert_eq!(answered.status(), 500);
        let error: serde_json::Value = answered.json().await.unwrap();
        assert_eq!(error["error"]["code"], "internal", "{error}");
        assert_eq!(produce().await.unwrap().status(), 200, "the next produce is written");
    }

    fn parse(body: &str) -> Vec<NewRecord> {
        parse_produce(&HeaderMap::new(), &ProduceQuery::default(), Bytes::copy_from_slice(body.as_bytes())).unwrap().0
    }

    #[test]
    fn plain_texts_are_copied_into_one_buffer_and_the_rest_decoded_as_before() {
        let records = parse(
            r#"{"records": [
                {"key": "k1", "value": "first"},
                {"value": "second"},
                {"key": "k\"3", "value": "caf\u00e9 \n"},
                {"key": 7, "value": { "a" : [1, 2] }},
                {"value": null}
            ]}"#,
        );
        let texts = |r: &NewRecord| (r.key.clone(), r.value.clone());
        assert_eq!(texts(&records[0]), (Some(Bytes::from("k1")), Bytes::from("first")));
        assert_eq!(texts(&records[1]), (None, Bytes::from("second")));
        assert_eq!(texts(&records[2]), (Some(Bytes::from("k\"3")), Bytes::from("café \n")));
        assert_eq!(texts(&records[3]), (Some(Bytes::from("7")), Bytes::from(r#"{"a":[1,2]}"#)));
        assert_eq!(texts(&records[4]), (None, Bytes::from("null")));
        // The plain texts sit end to end in one allocation.
        let k1 = records[0].key.as_ref().unwrap();
        let end = |b: &Bytes| b.as_ptr().wrapping_add(b.len());
        assert_eq!(end(k1), records[0].value.as_ptr());
        assert_eq!(end(&records[0].value), records[1].value.as_ptr());
    }

    #[test]
    fn a_plain_text_in_another_encoding_is_decoded_in_it() {
        let q = |query: &str| {
            let uri: axum::http::Uri = format!("/?{query}").parse().unwrap();
            Query::<ProduceQuery>::try_from_uri(&uri).unwrap().0
        };
        let body = || Bytes::from_static(br#"{"records": [{"value": "aGk="}]}"#);
        let value = |query: &str| parse_produce(&HeaderMap::new(), &q(query), body()).unwrap().0[0].value.clone();
        assert_eq!(value("value_encoding=json"), "\"aGk=\"");
        assert_eq!(value("value_encoding=base64"), "hi");
        assert_eq!(value("value_encoding=string"), "aGk=");
    }

    /// A body of many small JSON values (a key, value or header value
    /// `[0,0,…]`) is parsed into about its own size: the admission layer
    /// reserves twice the body, for the body and what it becomes. Parsed
    /// into a tree, each `0,` was a 32-byte node: a 16 MiB body took half a
    /// GiB.
    #[test]
    fn small_json_values_are_not_expanded_while_a_body_is_parsed() {
        let n = 256 * 1024;
        let array = format!("[{}0]", "0,".repeat(n));
        for body in [
            format!(r#"{{"records":[{{"value":{array}}}]}}"#),
            format!(r#"{{"records":[{{"key":{array},"value":"v"}}]}}"#),
            format!(r#"{{"records":[{{"value":"v","headers":{{"h":{array}}}}}]}}"#),
        ] {
            let body = Bytes::from(body);
            let parse = || parse_produce(&HeaderMap::new(), &ProduceQuery::default(), body.clone()).unwrap().0;
            let (records, allocated) = crate::test_alloc::allocated_during(parse);
            let r = &records[0];
            let lens =
                [r.value.len(), r.key.as_ref().map_or(0, Bytes::len), r.headers.first().map_or(0, |h| h.1.len())];
            assert_eq!(lens.iter().max(), Some(&array.len()), "the array's compact text is kept");
            let most = body.len() as u64 + (64 << 10);
            assert!(allocated <= most, "parsing {} bytes allocated {allocated}", body.len());
        }
    }

    /// Parsed, a header takes some twenty times the six body bytes it can
    /// be written in: a request may hold `MAX_HEADERS_PER_REQUEST` of them,
    /// in one record or over many, in JSON or NDJSON.
    #[test]
    fn a_request_holds_a_bounded_number_of_record_headers() {
        let headers = |n: usize| (0..n).map(|i| format!(r#""{i}":"""#)).collect::<Vec<_>>().join(",");
        let max = body::MAX_HEADERS_PER_REQUEST;
        let json = |records: &[String]| {
            let records: Vec<String> =
                records.iter().map(|h| format!(r#"{{"value":"v","headers":{{{h}}}}}"#)).collect();
            format!(r#"{{"records":[{}]}}"#, records.join(","))
        };
        let ndjson = |records: &[String]| {
            records.iter().map(|h| format!(r#"{{"value":"v","headers":{{{h}}}}}"#)).collect::<Vec<_>>().join("\n")
        };
        let mut nd = HeaderMap::new();
        nd.insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
        let parse =
            |headers: &HeaderMap, body: String| parse_produce(headers, &ProduceQuery::default(), Bytes::from(body));
        let (half, rest) = (headers(max / 2), headers(max - max / 2));
        for (at_most, over) in [
            (vec![headers(max)], vec![headers(max + 1)]),
            (vec![half.clone(), rest.clone()], vec![half.clone(), rest.clone(), headers(1)]),
        ] {
            assert_eq!(parse(&HeaderMap::new(), json(&at_most)).unwrap().0.len(), at_most.len());
            assert_eq!(parse(&nd, ndjson(&at_most)).unwrap().0.len(), at_most.len());
            for e in [parse(&HeaderMap::new(), json(&over)).err(), parse(&nd, ndjson(&over)).err()] {
                let e = e.expect("refused");
                assert_eq!((e.status, e.code), (axum::http::StatusCode::BAD_REQUEST, "invalid_json"));
                assert!(e.message.contains("record headers in one request"), "{}", e.message);
            }
        }
    }

    /// What a JSON reader refuses is refused at produce (and so never
    /// stored to break a fetch): numbers out of range, lone surrogates,
    /// nesting a fetch answer would take past serde_json's 128 levels.
    #[test]
    fn json_values_no_reader_could_read_back_are_refused() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let deep = nested(encoding::MAX_JSON_DEPTH + 1);
        for bad in ["[1e400]", r#""\ud800""#, &deep] {
            for body in [
                format!(r#"{{"records":[{{"value":{bad}}}]}}"#),
                format!(r#"{{"records":[{{"key":{bad},"value":"v"}}]}}"#),
                format!(r#"{{"records":[{{"value":"v","headers":{{"h":{bad}}}}}]}}"#),
            ] {
                let e = parse_produce(&HeaderMap::new(), &ProduceQuery::default(), Bytes::from(body)).err();
                let e = e.unwrap_or_else(|| panic!("{bad} was taken"));
                assert_eq!((e.status, e.code), (axum::http::StatusCode::BAD_REQUEST, "invalid_json"));
                assert_eq!(e.message.matches(" at line ").count(), 1, "one position, the body's: {}", e.message);
            }
        }
        // At the limit, in the deepest place a fetch answer puts it, serde_json reads it back.
        let fine = nested(encoding::MAX_JSON_DEPTH);
        let body = format!(r#"{{"records":[{{"key":{fine},"value":{fine},"headers":{{"h":{fine}}}}}]}}"#);
        let records = parse(&body);
        let r = &records[0];
        let record = Record { key: r.key.clone(), value: r.value.clone(), timestamp: 0, headers: r.headers.clone() };
        let answer = FetchResponse {
            records: vec![OutRecord::new(0, &record, Encoding::Json)],
            next_offset: 1,
            high_watermark: 1,
            log_start_offset: 0,
        };
        let text = serde_json::to_string(&answer).unwrap();
        // One level more, and serde_json could not read the answer at all.
        let deeper = text.replacen(&fine, &nested(encoding::MAX_JSON_DEPTH + 1), 1);
        assert!(serde_json::from_str::<Value>(&deeper).is_err(), "the limit is the deepest readable");
        let read: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (read["records"][0]["key"].to_string(), read["records"][0]["value"].to_string()),
            (fine.clone(), fine)
        );
    }

    /// Headers given as an object are kept as a map would keep them: by
    /// name, the last of a repeated name.
    #[test]
    fn repeated_header_names_keep_the_last() {
        // Enough of them that the sort is not an insertion sort, repeats far apart.
        let given: Vec<(String, String)> = (0..60).map(|i| (format!("n{}", i % 7), format!("v{i}"))).collect();
        let fields: Vec<String> = given.iter().map(|(n, v)| format!(r#""{n}":"{v}""#)).collect();
        let records = parse(&format!(r#"{{"records":[{{"value":"v","headers":{{{}}}}}]}}"#, fields.join(",")));
        let expected: BTreeMap<String, String> = given.into_iter().collect();
        let headers: Vec<(String, String)> =
            records[0].headers.iter().map(|(n, v)| (n.clone(), String::from_utf8(v.to_vec()).unwrap())).collect();
        assert_eq!(headers, expected.into_iter().collect::<Vec<_>>());
        let object = format!("{{{}}}", fields.join(","));
        let kept: Vec<(String, Raw)> = body::bounded_headers(&mut serde_json::Deserializer::from_str(&object)).unwrap();
        assert_eq!(kept.capacity(), 7, "only the kept headers stay held");
    }

    /// Whether `part` lies in `whole`'s memory.
    fn inside(whole: &Bytes, part: &Bytes) -> bool {
        super::super::texts::within(whole, part).is_some()
    }

    #[test]
    fn texts_that_are_nearly_all_of_the_body_stay_in_it_and_others_are_copied_out() {
        let big = "v".repeat(1000);
        let parse_in = |body: String| {
            let body = Bytes::from(body);
            let records = parse_produce(&HeaderMap::new(), &ProduceQuery::default(), body.clone()).unwrap().0;
            (body, records)
        };
        // 1,000-byte values with a key: the JSON around them is under 1/16.
        let (body, records) =
            parse_in(format!(r#"{{"records":[{{"key":"k1","value":"{big}"}},{{"value":"{big}"}}]}}"#));
        assert_eq!(records[0].value, big.as_bytes());
        assert_eq!(records[0].key.as_deref(), Some(&b"k1"[..]));
        assert!(records.iter().all(|r| inside(&body, &r.value)), "not copied");
        // Small values, or padding between them: copied, nothing of the body kept.
        let (body, records) = parse_in(r#"{"records":[{"value":"a"},{"value":"b"}]}"#.to_owned());
        assert_eq!(records[1].value, &b"b"[..]);
        assert!(!records.iter().any(|r| inside(&body, &r.value)));
        let padded = format!(r#"{{"records":[{{"value":"{big}"}}{}]}}"#, " ".repeat(200));
        let (body, records) = parse_in(padded);
        assert_eq!(records[0].value, big.as_bytes());
        assert!(!inside(&body, &records[0].value), "200 bytes of padding is over 1/16 of 1,000");
    }

    #[test]
    fn texts_stay_in_the_body_up_to_a_sixteenth_of_json_around_them() {
        let parse_as = |media: &str, body: String| {
            let mut headers = HeaderMap::new();
            headers.insert("content-type", HeaderValue::from_str(media).unwrap());
            let body = Bytes::from(body);
            (body.clone(), parse_produce(&headers, &ProduceQuery::default(), body).unwrap().0)
        };
        let one = |n: usize| format!(r#"{{"records":[{{"value":"{}"}}]}}"#, "v".repeat(n));
        // 26 bytes of JSON around the value: kept for 416 bytes (26 = 416 / 16), copied for 415.
        let (body, records) = parse_as("application/json", one(416));
        assert!(inside(&body, &records[0].value));
        let (body, records) = parse_as("application/json", one(415));
        assert!(!inside(&body, &records[0].value));
        // NDJSON, keys, and a decoded value beside plain texts: the plain
        // texts (keys too) are slices, the decoded value bytes of its own.
        let big = "v".repeat(1000);
        let lines = format!("{{\"key\":\"k\",\"value\":\"{big}\"}}\n{{\"value\":\"a\\nb\"}}\n");
        let (body, records) = parse_as("application/x-ndjson", lines);
        assert!(inside(&body, &records[0].value) && inside(&body, records[0].key.as_ref().unwrap()));
        assert_eq!((records[0].value.len(), records[1].value.clone()), (1000, Bytes::from_static(b"a\nb")));
        assert!(!inside(&body, &records[1].value));
    }
}
