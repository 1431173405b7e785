//! Live tails: `GET …/records` with `Accept: text/event-stream` streams records
//! as they commit, as server-sent events. Each event's id is the next offset
//! to read, so a client that reconnects with `Last-Event-ID` resumes exactly
//! where it stopped. Comments keep idle connections alive.

use std::convert::Infallible;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, StreamExt};

use super::ApiError;
use super::encoding::Encoding;
use super::records::OutRecord;
use crate::budget::Held;
use crate::service::Tail;

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

/// Streams a tail whose start was already checked. After an error event, or
/// when the agent stops, the stream ends, and the client reconnects (to
/// another agent) with `Last-Event-ID`.
pub fn stream(tail: Tail, encoding: Encoding) -> Response {
    let events = stream::unfold(Some(tail), move |tail| async move {
        let mut tail = tail?;
        match tail.next().await {
            Ok(Some((records, held))) => Some(((events(&records, encoding), held), Some(tail))),
            Ok(None) => None,
            Err(e) => {
                let error = ApiError::from(e);
                let body = serde_json::json!({ "code": error.code, "message": error.message });
                Some(((vec![Event::default().event("error").data(body.to_string())], Held::default()), None))
            }
        }
    })
    // The records' memory is held until their last event is taken.
    .flat_map(|(batch, held): (Vec<Event>, Held)| {
        stream::iter(batch.into_iter().map(move |e| {
            let _kept = &held;
            Ok::<_, Infallible>(e)
        }))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response()
}

fn events(records: &[(u64, floe_broker::Record)], encoding: Encoding) -> Vec<Event> {
    records
        .iter()
        .map(|(offset, r)| {
            let data = serde_json::to_string(&OutRecord::new(*offset, r, encoding)).unwrap_or_default();
            Event::default().id((offset + 1).to_string()).data(data)
        })
        .collect()
}
