//! Deleting a topic: its records go, and a topic created later under the
//! same name starts empty (docs/decisions/0013-topic-incarnations.md).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use common::{AgentProc, code};
use serde_json::json;

#[tokio::test]
async fn a_deleted_topic_leaves_nothing_in_a_new_one_of_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let a = AgentProc::start(&format!("file://{}", dir.path().display()), &[], &["--compactor", "off"]);
    let c = a.client();
    c.create_topic("t", 1).await;
    c.produce("t", json!([{"value": "old-0", "partition": 0}, {"value": "old-1", "partition": 0}])).await;
    let (s, joined) = c.post("/v1/groups/g/members", &json!({"topics": ["t"]})).await;
    assert_eq!(s, 200, "{joined}");
    let commit = json!({"member_id": joined["member_id"], "generation": joined["generation"],
        "offsets": [{"topic": "t", "partition": 0, "offset": 2}]});
    assert_eq!(c.post("/v1/groups/g/offsets", &commit).await.0, 200);

    let r = c.http.delete(format!("{}/v1/topics/t", c.base)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let (s, b) = c.get("/v1/topics/t").await;
    assert_eq!((s, code(&b)), (404, "topic_not_found"));
    let (s, b) = c.post("/v1/topics/t/records", &json!({"records": [{"value": "x"}]})).await;
    assert_eq!((s, code(&b)), (404, "topic_not_found"));
    let r = c.http.delete(format!("{}/v1/topics/t", c.base)).send().await.unwrap();
    assert_eq!(r.status(), 404, "deleting twice");

    c.create_topic("t", 1).await;
    assert!(c.read_all("t", 0, 0).await.is_empty(), "the new topic starts empty");
    assert_eq!(c.produce("t", json!([{"value": "new-0", "partition": 0}])).await, vec![(0, 0)]);
    let values: Vec<_> = c.read_all("t", 0, 0).await.iter().map(|r| r["value"].clone()).collect();
    assert_eq!(values, vec![json!("new-0")]);
    let (_, offsets) = c.get("/v1/groups/g/offsets").await;
    assert_eq!(offsets["offsets"], json!([]), "the group's offset in the old topic is gone");

    // Through Kafka REST v3 as well.
    let r = c.http.delete(format!("{}/v3/clusters/any/topics/t", c.base)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let (s, b) = c.get("/v3/clusters/any/topics/t").await;
    assert_eq!((s, b["error_code"].as_u64()), (404, Some(40403)));
}
