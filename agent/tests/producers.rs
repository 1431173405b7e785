//! Idempotent producers over HTTP: retries return the original offsets and
//! write nothing (also through another agent), gaps and old epochs are refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use common::{AgentProc, Backend, code, fresh_store};
use serde_json::{Value, json};

fn request(id: u64, epoch: u64, sequence: u64, values: &[&str]) -> Value {
    let records: Vec<Value> = values.iter().map(|v| json!({"value": v, "partition": 0})).collect();
    json!({"records": records, "producer": {"id": id, "epoch": epoch, "sequence": sequence}})
}

#[tokio::test]
async fn retries_dedup_gaps_and_fencing() {
    retries_dedup_gaps_and_fencing_on(Backend::Dir).await;
}

#[tokio::test]
async fn s3_retries_dedup_gaps_and_fencing() {
    retries_dedup_gaps_and_fencing_on(Backend::S3).await;
}

async fn retries_dedup_gaps_and_fencing_on(backend: Backend) {
    let Some((store, env, _dir)) = fresh_store(backend) else { return };
    let a = AgentProc::start(&store, &env, &[]);
    let b = AgentProc::start(&store, &env, &[]);
    let (ca, cb) = (a.client(), b.client());
    ca.create_topic("t", 2).await;
    let (s, p) = ca.post("/v1/producers", &json!({})).await;
    assert_eq!((s, p.clone()), (200, json!({"producer_id": 0, "epoch": 0})));
    let (s, other) = cb.post("/v1/producers", &json!({})).await;
    assert_eq!((s, other["producer_id"].as_u64()), (200, Some(1)), "ids come from the log, unique across agents");

    let first = request(0, 0, 0, &["a", "b", "c"]);
    let (s, acked) = ca.post("/v1/topics/t/records", &first).await;
    assert_eq!(s, 200, "{acked}");
    let expected = json!({"offsets": [{"partition": 0, "offset": 0}, {"partition": 0, "offset": 1}, {"partition": 0, "offset": 2}]});
    assert_eq!(acked, expected);
    // The retry goes to the other agent: same offsets, nothing written twice.
    let (s, again) = cb.post("/v1/topics/t/records", &first).await;
    assert_eq!((s, again), (200, expected));
    let (s, next) = cb.post("/v1/topics/t/records", &request(0, 0, 3, &["d"])).await;
    assert_eq!((s, next["offsets"][0]["offset"].as_u64()), (200, Some(3)));
    let (s, gap) = ca.post("/v1/topics/t/records", &request(0, 0, 9, &["x"])).await;
    assert_eq!((s, code(&gap), gap["error"]["expected_sequence"].as_u64()), (409, "out_of_order_sequence", Some(4)));
    let values: Vec<String> =
        ca.read_all("t", 0, 0).await.iter().map(|r| r["value"].as_str().unwrap().to_owned()).collect();
    assert_eq!(values, vec!["a", "b", "c", "d"]);

    let (s, bumped) = cb.post("/v1/producers", &json!({"producer_id": 0})).await;
    assert_eq!((s, bumped), (200, json!({"producer_id": 0, "epoch": 1})));
    let (s, fenced) = ca.post("/v1/topics/t/records", &request(0, 0, 4, &["late"])).await;
    assert_eq!((s, code(&fenced)), (409, "producer_fenced"));
    let (s, fresh) = ca.post("/v1/topics/t/records", &request(0, 1, 0, &["new epoch"])).await;
    assert_eq!((s, fresh["offsets"][0]["offset"].as_u64()), (200, Some(4)));

    let (s, unknown) = ca.post("/v1/topics/t/records", &request(99, 0, 0, &["x"])).await;
    assert_eq!((s, code(&unknown)), (404, "producer_not_found"));
    let (s, unknown) = ca.post("/v1/producers", &json!({"producer_id": 99})).await;
    assert_eq!((s, code(&unknown)), (404, "producer_not_found"));
    let two = json!({"records": [{"value": "x", "partition": 0}, {"value": "y", "partition": 1}],
                     "producer": {"id": 1, "epoch": 0, "sequence": 0}});
    let (s, spread) = ca.post("/v1/topics/t/records", &two).await;
    assert_eq!((s, code(&spread)), (400, "invalid_request"));
}
