//! The Confluent REST Proxy v3 face: what a REST Proxy client sends works
//! unchanged (docs/migrating-from-rest-proxy.md).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::AgentProc;
use serde_json::{Value, json};

fn agent() -> (AgentProc, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (AgentProc::start(&format!("file://{}", dir.path().display()), &[], &["--compactor", "off"]), dir)
}

/// Splits concatenated JSON (Kafka REST's streaming answers).
fn concatenated(body: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(body).into_iter::<Value>().map(Result::unwrap).collect()
}

#[tokio::test]
async fn clusters_topics_and_partitions_read_as_kafka_rest_writes_them() {
    let (a, _dir) = agent();
    let c = a.client();
    let (s, clusters) = c.get("/v3/clusters").await;
    assert_eq!((s, clusters["kind"].as_str()), (200, Some("KafkaClusterList")), "{clusters}");
    let id = clusters["data"][0]["cluster_id"].as_str().unwrap().to_owned();
    // Any id in a path names this cluster, as Kafka REST outside Confluent Cloud.
    let (s, cluster) = c.get("/v3/clusters/any-id").await;
    assert_eq!((s, cluster["cluster_id"].as_str()), (200, Some(id.as_str())));
    assert!(cluster["topics"]["related"].as_str().unwrap().ends_with(&format!("/v3/clusters/{id}/topics")));

    let create = json!({"topic_name": "orders", "partitions_count": 3, "replication_factor": 3,
        "configs": [{"name": "retention.ms", "value": "60000"}]});
    let (s, dry) =
        c.post(&format!("/v3/clusters/{id}/topics"), &json!({"topic_name": "dry", "validate_only": true})).await;
    assert_eq!((s, dry["topic_name"].as_str()), (200, Some("dry")), "{dry}");
    let (s, topic) = c.post(&format!("/v3/clusters/{id}/topics"), &create).await;
    assert_eq!((s, topic["kind"].as_str(), topic["partitions_count"].as_u64()), (201, Some("KafkaTopic"), Some(3)));
    let (s, again) = c.post(&format!("/v3/clusters/{id}/topics"), &create).await;
    assert_eq!((s, again["error_code"].as_u64()), (400, Some(40002)), "{again}");
    let (s, unsupported) = c
        .post(
            &format!("/v3/clusters/{id}/topics"),
            &json!({"topic_name": "x", "configs": [{"name": "cleanup.policy", "value": "compact"}]}),
        )
        .await;
    assert_eq!((s, unsupported["error_code"].as_u64()), (400, Some(40002)), "{unsupported}");

    let (_, list) = c.get(&format!("/v3/clusters/{id}/topics")).await;
    let names: Vec<&str> = list["data"].as_array().unwrap().iter().map(|t| t["topic_name"].as_str().unwrap()).collect();
    assert_eq!(names, ["orders"], "the dry run created nothing");
    let (s, native) = c.get("/v1/topics/orders").await;
    assert_eq!((s, native["retention_ms"].as_i64()), (200, Some(60_000)));

    let (_, partitions) = c.get(&format!("/v3/clusters/{id}/topics/orders/partitions")).await;
    let ids: Vec<u64> =
        partitions["data"].as_array().unwrap().iter().map(|p| p["partition_id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [0, 1, 2]);
    let (s, p) = c.get(&format!("/v3/clusters/{id}/topics/orders/partitions/2")).await;
    assert_eq!((s, p["kind"].as_str()), (200, Some("KafkaPartition")));
    for path in ["topics/orders/partitions/3", "topics/nope", "topics/nope/partitions"] {
        let (s, e) = c.get(&format!("/v3/clusters/{id}/{path}")).await;
        assert_eq!((s, e["error_code"].as_u64()), (404, Some(40403)), "{path}: {e}");
    }
    let (s, e) = c.get("/v3/no/such/route").await;
    assert_eq!((s, e["error_code"].as_u64()), (404, Some(404)));
}

#[tokio::test]
async fn records_produce_one_report_each_in_order() {
    let (a, _dir) = agent();
    let c = a.client();
    c.create_topic("t", 2).await;
    let url = format!("{}/v3/clusters/x/topics/t/records", c.base);
    let raw: &[u8] = b"\x00\xff\xfebinary";
    let records = [
        json!({"partition_id": 1, "key": {"type": "BINARY", "data": BASE64.encode(b"k\0")},
               "value": {"type": "BINARY", "data": BASE64.encode(raw)},
               "headers": [{"name": "h", "value": BASE64.encode(b"\xff")}], "timestamp": "2021-02-05T19:14:42Z"}),
        json!({"partition_id": 1, "value": {"type": "JSON", "data": {"foo": "bar"}}}),
        json!({"partition_id": 1, "value": {"type": "BINARY", "data": "not base64!"}}),
        json!({"partition_id": 7, "value": {"type": "STRING", "data": "no such partition"}}),
        json!({"partition_id": 1, "value": {"type": "STRING", "data": "last"}}),
    ];
    // Streaming mode: concatenated JSON objects in one body.
    let body: String = records.iter().map(Value::to_string).collect();
    let r = c.http.post(&url).header("content-type", "application/json").body(body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let reports = concatenated(&r.text().await.unwrap());
    let codes: Vec<u64> = reports.iter().map(|r| r["error_code"].as_u64().unwrap()).collect();
    assert_eq!(codes, [200, 200, 400, 40403, 200], "{reports:?}");
    let offsets: Vec<u64> = [0, 1, 4].iter().map(|&i| reports[i]["offset"].as_u64().unwrap()).collect();
    assert_eq!(offsets, [0, 1, 2], "in request order");
    assert_eq!(reports[0]["value"], json!({"type": "BINARY", "size": raw.len()}));
    assert_eq!(reports[1]["value"], json!({"type": "JSON", "size": 13}));

    let (_, fetched) = c.get("/v1/topics/t/partitions/1/records?encoding=base64").await;
    let r0 = &fetched["records"][0];
    assert_eq!(BASE64.decode(r0["value"].as_str().unwrap()).unwrap(), raw);
    assert_eq!(BASE64.decode(r0["key"].as_str().unwrap()).unwrap(), b"k\0");
    assert_eq!(BASE64.decode(r0["headers"]["h"].as_str().unwrap()).unwrap(), b"\xff");
    assert_eq!(r0["timestamp"].as_i64(), Some(1_612_552_482_000));
    let (_, as_json) = c.get("/v1/topics/t/partitions/1/records?offset=1&encoding=json").await;
    assert_eq!(as_json["records"][0]["value"], json!({"foo": "bar"}));
    assert_eq!(fetched["records"].as_array().unwrap().len(), 3, "refused records were not written");

    // Many refused records in one body are each answered, in one pass.
    let mut body: String =
        (0..2_000).map(|_| json!({"partition_id": 99, "value": {"type": "STRING", "data": "x"}}).to_string()).collect();
    body.push_str(&records[4].to_string());
    let r = c.http.post(&url).header("content-type", "application/json").body(body).send().await.unwrap();
    let reports = concatenated(&r.text().await.unwrap());
    let refused = reports.iter().filter(|r| r["error_code"] == json!(40403)).count();
    assert_eq!((reports.len(), refused, &reports[2_000]["error_code"]), (2_001, 2_000, &json!(200)));

    // The whole request fails for an unknown topic, for bodies that are not JSON, or answers nobody reads.
    let (s, e) = c.post("/v3/clusters/x/topics/nope/records", &records[4]).await;
    assert_eq!((s, e["error_code"].as_u64()), (404, Some(40403)));
    let r = c.http.post(&url).header("content-type", "text/plain").body("x").send().await.unwrap();
    assert_eq!(r.status(), 415);
    let r = c.http.post(&url).header("accept", "text/html").json(&records[4]).send().await.unwrap();
    assert_eq!(r.status(), 406);
}

/// Record headers are bounded per request (100,000 over all records, as on
/// the native face): parsed, each takes several times its body bytes.
#[tokio::test]
async fn a_stream_body_over_the_header_limit_is_refused_whole() {
    let (a, _dir) = agent();
    let c = a.client();
    c.create_topic("t", 1).await;
    let url = format!("{}/v3/clusters/x/topics/t/records", c.base);
    let record = |headers: usize| {
        let headers: Vec<Value> = (0..headers).map(|_| json!({"name": "h", "value": ""})).collect();
        json!({"value": {"type": "STRING", "data": "x"}, "headers": headers}).to_string()
    };
    let r = c.http.post(&url).header("content-type", "application/json").body(record(100_001)).send().await.unwrap();
    assert_eq!(r.status(), 400, "one record over the limit");
    for (body, case) in [
        ([record(60_000), record(40_001)].concat(), "two records over the limit between them"),
        ([record(0), record(100_001), record(0)].concat(), "a record before one over the limit"),
    ] {
        let r = c.http.post(&url).header("content-type", "application/json").body(body).send().await.unwrap();
        assert_eq!(r.status(), 400, "{case}");
        assert!(r.text().await.unwrap().contains("record headers in one request"), "{case}");
    }
    let (_, fetched) = c.get("/v1/topics/t/partitions/0/records").await;
    assert_eq!(fetched["records"], json!([]), "nothing was written");
    let r = c.http.post(&url).header("content-type", "application/json").body(record(100_000)).send().await.unwrap();
    assert_eq!(r.status(), 200, "at the limit");
}
