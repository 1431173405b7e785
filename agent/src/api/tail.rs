//! Live tails: `GET …/records` with `Accept: text/event-stream` streams records
//! as they commit, as server-sent events. Each event's id is the next offset
//! to read, so a client that reconnects with `Last-Event-ID` resumes exactly
//! where it stopped. Comments keep idle connections alive.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, StreamExt};

use super::ApiError;
use super::records::OutRecord;
use crate::app::Agent;
use crate::reader::FetchRequest;

/// How long one internal long-poll waits before polling again.
const POLL: Duration = Duration::from_secs(10);
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().starts_with("text/event-stream")))
}

pub fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers.get("last-event-id")?.to_str().ok()?.trim().parse().ok()
}

/// Validates the start (errors are ordinary JSON answers), then streams.
pub async fn stream(agent: Arc<Agent>, req: FetchRequest) -> Result<Response, ApiError> {
    let first = agent.reader.fetch(&FetchRequest { timeout: Duration::ZERO, ..req.clone() }).await?;
    let first_events = events(&first.records);
    let next = first.next_offset;
    // The state is `None` once an error was sent: the stream then ends, and
    // the client reconnects with Last-Event-ID.
    let rest = stream::unfold(Some((agent, FetchRequest { offset: next, timeout: POLL, ..req })), |state| async move {
        let (agent, mut req) = state?;
        match agent.reader.fetch(&req).await {
            Ok(fetched) => {
                req.offset = fetched.next_offset;
                Some((events(&fetched.records), Some((agent, req))))
            }
            Err(e) => {
                let error = ApiError::from(e);
                let body = serde_json::json!({ "code": error.code, "message": error.message });
                Some((vec![Event::default().event("error").data(body.to_string())], None))
            }
        }
    });
    let all = stream::iter(vec![first_events])
        .chain(rest)
        .flat_map(|batch| stream::iter(batch.into_iter().map(Ok::<_, Infallible>)));
    Ok(Sse::new(all).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response())
}

fn events(records: &[(u64, floe_broker::Record)]) -> Vec<Event> {
    records
        .iter()
        .map(|(offset, r)| {
            let data = serde_json::to_string(&OutRecord::new(*offset, r)).unwrap_or_default();
            Event::default().id((offset + 1).to_string()).data(data)
        })
        .collect()
}
