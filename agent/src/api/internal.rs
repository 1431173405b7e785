//! Agent-to-agent endpoints, not part of the public API: an agent holding the
//! commit lease accepts other agents' entries here, and a group's coordinator
//! runs requests forwarded by other agents. Credentials are checked before
//! the body is read (`crate::peers`).

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use floe_broker::Committed;

use super::pieces::JsonPieces;
use super::{ApiError, body};
use crate::budget::Held;
use crate::committer::ForwardedOps;
use crate::groups::{GroupRecord, GroupReply, GroupRequest};
use crate::peers::{CLUSTER_HEADER, HOLDER_HEADER, PeerCall};
use crate::service::{Agent, Peer};

fn verify(agent: &Agent, headers: &HeaderMap) -> Result<Peer, ApiError> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let call = PeerCall {
        authorization: value(header::AUTHORIZATION.as_str()),
        cluster: value(CLUSTER_HEADER),
        expected_holder: value(HOLDER_HEADER),
    };
    Ok(agent.verify_peer(&call)?)
}

/// `POST /internal/v1/commit`: a follower's flushes, for the lease holder to group-commit.
pub async fn commit(
    State(agent): State<Arc<Agent>>,
    headers: HeaderMap,
    raw: Body,
) -> Result<Json<Committed>, ApiError> {
    let peer = verify(&agent, &headers)?;
    let req: ForwardedOps = body::json(&body::read(raw, agent.max_request_bytes()).await?)?;
    Ok(Json(agent.forwarded_commit(peer, req.ops).await?))
}

/// `POST /internal/v2/groups/{g}`: run a forwarded request here, as
/// coordinator. The coordinator's answer, reply or error, travels typed.
pub async fn group(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    raw: Body,
) -> Result<Response, ApiError> {
    let peer = verify(&agent, &headers)?;
    let Path(group) = path?;
    let req: GroupRequest = body::json(&body::read(raw, agent.max_request_bytes()).await?)?;
    Ok(match agent.forwarded_group(peer, &group, req).await {
        Ok(GroupReply::Records { records, held }) => records_reply(records, held),
        other => Json(other).into_response(),
    })
}

/// A member fetch's reply as `Json` writes `Ok(GroupReply::Records)`, a
/// piece at a time, holding the records until it is sent.
fn records_reply(records: Vec<GroupRecord>, held: Held) -> Response {
    let write = |r: &GroupRecord, out: &mut Vec<u8>| serde_json::to_writer(out, r);
    JsonPieces::new(r#"{"Ok":{"reply":"records","records":["#, records, "]}}", held, write)
        .into_response("application/json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::groups::tests::assorted_group_records;
    use crate::api::records::tests::answer_text;

    /// A coordinator's reply to a forwarded member fetch, written a piece
    /// at a time, is what `Json` wrote of the whole, byte for byte.
    #[tokio::test]
    async fn a_forwarded_member_fetch_reply_in_pieces_is_what_json_writes() {
        for n in [0, 1, 300] {
            let records = assorted_group_records(n);
            let whole: Result<GroupReply, crate::error::Error> =
                Ok(GroupReply::Records { records: records.clone(), held: Held::default() });
            let want = serde_json::to_string(&whole).unwrap();
            assert_eq!(answer_text(records_reply(records, Held::default())).await, want, "{n} records");
        }
    }
}
