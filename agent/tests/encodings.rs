//! Keys and values are bytes: any bytes go in and come back unchanged, through
//! base64 in JSON (native and Confluent v3 `BINARY`) and through a raw
//! `application/octet-stream` body; JSON
//! values are taken as JSON (docs/api.md, "Keys, values and encodings").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{AgentProc, code};
use futures::StreamExt;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

const COUNT: usize = 10_000;

/// Random byte strings, with the awkward ones first: empty, NUL, invalid UTF-8.
fn byte_strings(seed: u64) -> Vec<Vec<u8>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = vec![Vec::new(), vec![0], vec![0xff, 0xfe, 0xfd], b"\xc3\x28".to_vec(), b"{\"json\":true}".to_vec()];
    while out.len() < COUNT {
        let len = rng.random_range(0..200);
        out.push((0..len).map(|_| rng.random()).collect());
    }
    out
}

async fn fetch_all(c: &common::Client, topic: &str, encoding: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let path = format!(
            "/v1/topics/{topic}/partitions/0/records?offset={}&max_records=1000&encoding={encoding}",
            out.len()
        );
        let (status, body) = c.get(&path).await;
        assert_eq!(status, 200, "{body}");
        let records = body["records"].as_array().unwrap();
        if records.is_empty() {
            return out;
        }
        out.extend(records.iter().cloned());
    }
}

/// An agent on a fresh directory with one single-partition topic.
async fn agent_with_topic(topic: &str) -> (AgentProc, common::Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let a = AgentProc::start(&format!("file://{}", dir.path().display()), &[], &["--compactor", "off"]);
    let c = a.client();
    c.create_topic(topic, 1).await;
    (a, c, dir)
}

fn decoded(records: &[Value]) -> Vec<Vec<u8>> {
    records.iter().map(|r| BASE64.decode(r["value"].as_str().unwrap()).unwrap()).collect()
}

#[tokio::test]
async fn any_bytes_round_trip_through_base64_json() {
    let (_a, c, _dir) = agent_with_topic("b").await;
    let values = byte_strings(1);
    for chunk in values.chunks(500) {
        let records: Vec<Value> =
            chunk.iter().map(|v| json!({"value": BASE64.encode(v), "key": BASE64.encode(v), "partition": 0})).collect();
        let (status, body) = c
            .post("/v1/topics/b/records?value_encoding=base64&key_encoding=base64", &json!({ "records": records }))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let back = fetch_all(&c, "b", "base64").await;
    assert_eq!(decoded(&back), values, "values");
    let keys: Vec<Vec<u8>> = back.iter().map(|r| BASE64.decode(r["key"].as_str().unwrap()).unwrap()).collect();
    assert_eq!(keys, values, "keys");
}

#[tokio::test]
async fn any_bytes_round_trip_through_confluent_v3_binary() {
    let (_a, c, _dir) = agent_with_topic("v").await;
    let values = byte_strings(3);
    for chunk in values.chunks(1000) {
        // Streaming mode: concatenated records, one delivery report each.
        let body: String = chunk
            .iter()
            .map(|v| json!({"partition_id": 0, "value": {"type": "BINARY", "data": BASE64.encode(v)}}).to_string())
            .collect();
        let url = format!("{}/v3/clusters/any/topics/v/records", c.base);
        let r = c.http.post(url).header("content-type", "application/json").body(body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        let reports: Vec<Value> = serde_json::Deserializer::from_str(&text).into_iter().map(Result::unwrap).collect();
        assert_eq!(reports.len(), chunk.len());
        assert!(reports.iter().all(|r| r["error_code"] == json!(200)), "{text}");
    }
    assert_eq!(decoded(&fetch_all(&c, "v", "base64").await), values);
}

#[tokio::test]
async fn any_bytes_round_trip_through_octet_stream_bodies() {
    let (_a, c, _dir) = agent_with_topic("o").await;
    let values = byte_strings(2);
    // Concurrent requests share flushes; offsets say where each value went.
    let placed: Vec<(u64, usize)> = futures::stream::iter(values.iter().enumerate())
        .map(|(i, v)| {
            let c = c.clone();
            let v = v.clone();
            async move {
                let r = c
                    .http
                    .post(format!("{}/v1/topics/o/records?partition=0&key=k{i}", c.base))
                    .header("content-type", "application/octet-stream")
                    .header("floe-header-origin", "octets")
                    .body(v)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let body: Value = r.json().await.unwrap();
                (body["offsets"][0]["offset"].as_u64().unwrap(), i)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let back = fetch_all(&c, "o", "base64").await;
    assert_eq!(back.len(), COUNT);
    let got = decoded(&back);
    for (offset, i) in placed {
        let r = &back[offset as usize];
        assert_eq!(got[offset as usize], values[i], "record {i} at offset {offset}");
        assert_eq!(r["key"], json!(BASE64.encode(format!("k{i}"))));
        assert_eq!(r["headers"]["origin"], json!(BASE64.encode("octets")));
    }
}

#[tokio::test]
async fn json_values_are_taken_as_json_and_odd_records_fall_back_visibly() {
    let (_a, c, _dir) = agent_with_topic("j").await;
    let records = json!([
        {"value": {"foo": "bar"}, "key": 7},
        {"value": "plain text"},
        {"value": "/w==", "value_encoding": "base64"},
    ]);
    c.produce("j", records).await;
    let as_json = fetch_all(&c, "j", "json").await;
    assert_eq!(as_json[0]["value"], json!({"foo": "bar"}));
    assert_eq!(as_json[0]["key"], json!(7));
    assert_eq!((&as_json[1]["value"], &as_json[1]["value_encoding"]), (&json!("plain text"), &json!("string")));
    assert_eq!((&as_json[2]["value"], &as_json[2]["value_encoding"]), (&json!("/w=="), &json!("base64")));
    let as_text = fetch_all(&c, "j", "string").await;
    assert_eq!(as_text[0]["value"], json!("{\"foo\":\"bar\"}"));
    assert!(as_text[0].get("value_encoding").is_none(), "no marker where the encoding asked for was used");
    assert_eq!(as_text[2]["value_encoding"], json!("base64"), "invalid UTF-8 cannot be text");

    // Refused, and nothing written: a wrong type for an explicit encoding, bad base64.
    for (query, body) in [
        ("value_encoding=string", json!({"records": [{"value": 5}]})),
        ("value_encoding=base64", json!({"records": [{"value": "ok"}, {"value": "not base64!"}]})),
    ] {
        let (status, b) = c.post(&format!("/v1/topics/j/records?{query}"), &body).await;
        assert_eq!((status, code(&b)), (400, "invalid_encoding"), "{query}: {b}");
    }
    assert_eq!(fetch_all(&c, "j", "base64").await.len(), 3);
}
