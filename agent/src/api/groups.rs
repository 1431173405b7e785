//! Consumer-group endpoints: each parses the member's request, runs it
//! through the service (on the group's coordinator) and renders the reply.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use floe_broker::entry::GroupOffset;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::encoding::Encoding;
use super::pieces::JsonPieces;
use super::records::OutRecord;
use super::{ApiError, body};
use crate::auth::Caller;
use crate::groups::{GroupRecord, GroupReply, GroupRequest, OffsetReset};
use crate::service::{Agent, CommittedOffset, GroupDescription, GroupSummary};

/// A fetched record as members see it: where it is from, then the record.
#[derive(Serialize)]
struct MemberRecord<'r> {
    topic: &'r str,
    partition: u32,
    #[serde(flatten)]
    record: OutRecord<'r>,
}

/// A member's fetch answer (written a piece at a time by `render`).
#[cfg(test)]
#[derive(Serialize)]
struct MemberRecords<'r> {
    records: Vec<MemberRecord<'r>>,
}

/// A reply as members see it.
fn render(reply: GroupReply, encoding: Encoding) -> Response {
    Json(match reply {
        GroupReply::Joined { member_id, generation, assignments } => {
            json!({ "member_id": member_id, "generation": generation, "assignments": assignments })
        }
        GroupReply::Heartbeat { generation, assignments, .. } => {
            json!({ "generation": generation, "assignments": assignments })
        }
        GroupReply::Records { records, held } => {
            // Straight to the answer's bytes, a piece at a time, as `MemberRecords`.
            let write = move |r: &GroupRecord, out: &mut Vec<u8>| {
                let record = OutRecord::new(r.offset, &r.record, encoding);
                serde_json::to_writer(out, &MemberRecord { topic: &r.topic, partition: r.partition, record })
            };
            return JsonPieces::new(r#"{"records":["#, records, "]}", held, write).into_response("application/json");
        }
        GroupReply::Left | GroupReply::Committed => json!({}),
        GroupReply::Described { generation, members } => json!({ "generation": generation, "members": members }),
    })
    .into_response()
}

async fn run(agent: &Agent, caller: &Caller, group: &str, req: GroupRequest) -> Result<Response, ApiError> {
    Ok(render(agent.group(caller, group, req).await?, Encoding::String))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    topics: Vec<String>,
    #[serde(default = "default_session")]
    session_timeout_ms: u64,
    #[serde(default)]
    auto_offset_reset: OffsetReset,
}

fn default_session() -> u64 {
    10_000
}

pub async fn join(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    raw: Body,
) -> Result<Response, ApiError> {
    let Path(group) = path?;
    let b: JoinBody = body::json(&body::read(raw, agent.max_request_bytes()).await?)?;
    let req = GroupRequest::Join {
        topics: b.topics,
        session_timeout_ms: b.session_timeout_ms,
        auto_offset_reset: b.auto_offset_reset,
        name: None,
    };
    run(&agent, &caller, &group, req).await
}

pub async fn heartbeat(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path((group, member_id)) = path?;
    run(&agent, &caller, &group, GroupRequest::Heartbeat { member_id }).await
}

pub async fn leave(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path((group, member_id)) = path?;
    run(&agent, &caller, &group, GroupRequest::Leave { member_id }).await
}

/// A member's fetch: the partition fetch's limits, without an offset (the
/// coordinator keeps the member's positions).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchQuery {
    #[serde(default = "super::records::default_max_records")]
    max_records: usize,
    #[serde(default = "super::records::default_max_bytes")]
    max_bytes: usize,
    #[serde(default)]
    timeout_ms: u64,
    #[serde(default = "super::records::default_encoding")]
    encoding: Encoding,
}

pub async fn records(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<FetchQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path((group, member_id)) = path?;
    let Query(q) = query?;
    let req = GroupRequest::Fetch {
        member_id,
        max_records: q.max_records,
        max_bytes: q.max_bytes,
        timeout_ms: q.timeout_ms,
        scope: Default::default(),
    };
    Ok(render(agent.group(&caller, &group, req).await?, q.encoding))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitBody {
    member_id: String,
    generation: u64,
    offsets: Vec<CommitOffset>,
}

/// One offset to commit: the next offset the group will read in the partition.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitOffset {
    topic: String,
    partition: u32,
    offset: u64,
}

impl From<CommitOffset> for GroupOffset {
    fn from(o: CommitOffset) -> Self {
        GroupOffset { topic: o.topic, partition: o.partition, offset: o.offset, topic_id: None }
    }
}

pub async fn commit(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    raw: Body,
) -> Result<Response, ApiError> {
    let Path(group) = path?;
    let b: CommitBody = body::json(&body::read(raw, agent.max_request_bytes()).await?)?;
    run(
        &agent,
        &caller,
        &group,
        GroupRequest::Commit {
            member_id: b.member_id,
            generation: Some(b.generation),
            offsets: b.offsets.into_iter().map(GroupOffset::from).collect(),
            scope: Default::default(),
        },
    )
    .await
}

#[derive(Serialize)]
pub struct GroupOffsets {
    group: String,
    offsets: Vec<CommittedOffset>,
}

/// Committed offsets and lag per partition, from the log (any agent answers).
pub async fn offsets(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<GroupOffsets>, ApiError> {
    let Path(group) = path?;
    let offsets = agent.group_offsets(&caller, &group).await?;
    Ok(Json(GroupOffsets { group, offsets }))
}

#[derive(Serialize)]
pub struct GroupList {
    groups: Vec<GroupSummary>,
}

/// Groups with committed offsets or a coordinator.
pub async fn list(State(agent): State<Arc<Agent>>, caller: Caller) -> Result<Json<GroupList>, ApiError> {
    Ok(Json(GroupList { groups: agent.list_groups(&caller).await? }))
}

/// A group's coordinator, generation, members and committed offsets.
pub async fn describe(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<GroupDescription>, ApiError> {
    let Path(group) = path?;
    Ok(Json(agent.describe_group(&caller, &group).await?))
}

#[cfg(test)]
pub(crate) mod tests {
    use bytes::Bytes;
    use floe_broker::Record;

    use super::*;
    use crate::api::records::tests::{answer_text, assorted_records};

    /// [`assorted_records`] as a member's, from two topics.
    pub(crate) fn assorted_group_records(n: usize) -> Vec<GroupRecord> {
        assorted_records(n)
            .into_iter()
            .map(|(offset, record)| GroupRecord { topic: format!("t{}", offset % 2), partition: 3, offset, record })
            .collect()
    }

    /// A member's fetch answer written a piece at a time is what
    /// serde_json wrote of the whole, byte for byte.
    #[tokio::test]
    async fn a_member_fetch_answer_in_pieces_is_what_serde_json_writes() {
        for n in [0, 1, 300] {
            let records = assorted_group_records(n);
            let whole = MemberRecords {
                records: records
                    .iter()
                    .map(|r| MemberRecord {
                        topic: &r.topic,
                        partition: r.partition,
                        record: OutRecord::new(r.offset, &r.record, Encoding::String),
                    })
                    .collect(),
            };
            let want = serde_json::to_string(&whole).unwrap();
            let answer = render(GroupReply::Records { records, held: Default::default() }, Encoding::String);
            assert_eq!(answer_text(answer).await, want, "{n} records");
        }
    }

    /// Stored JSON goes into a member's answer as JSON, through the
    /// flattened record, and its headers beside it.
    #[test]
    fn a_member_record_holds_stored_json_as_json() {
        let record = Record {
            key: Some(Bytes::from_static(b"\"k\"")),
            value: Bytes::from_static(br#"{"a": [1, 2]}"#),
            timestamp: 5,
            headers: vec![("h".to_owned(), Bytes::from_static(b"v"))],
        };
        let out = MemberRecord { topic: "t", partition: 2, record: OutRecord::new(7, &record, Encoding::Json) };
        let text = serde_json::to_string(&out).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            json!({"topic": "t", "partition": 2, "offset": 7, "key": "k", "value": {"a": [1, 2]}, "timestamp": 5, "headers": {"h": "v"}})
        );
    }
}
