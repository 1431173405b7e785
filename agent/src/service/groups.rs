//! Consumer groups, through the service: every request is checked here and
//! run on the group's coordinator (`crate::groups`); committed offsets are
//! read from the log by any agent.

use serde::Serialize;

use super::internal::Peer;
use super::{Agent, validate};
use crate::auth::{Action, Caller};
use crate::error::Result;
use crate::groups::{GroupReply, GroupRequest};

/// A committed offset, with the partition's high watermark and the lag between them.
#[derive(Clone, Debug, Serialize)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub high_watermark: u64,
    pub lag: u64,
}

impl Agent {
    /// Runs a member's request on the group's coordinator, wherever it is.
    /// The caller needs the group, and consume rights on every topic the
    /// request names; records of a topic the caller may no longer read (a
    /// token reloaded meanwhile) are refused, not handed out.
    pub async fn group(&self, caller: &Caller, group: &str, req: GroupRequest) -> Result<GroupReply> {
        caller.check(Action::Group(group))?;
        for topic in topics_named(&req) {
            caller.check(Action::Consume(topic))?;
        }
        validate::group_request(group, &req)?;
        let reply = self.groups.handle(group, req).await?;
        if let GroupReply::Records { records } = &reply {
            for record in records {
                caller.check(Action::Consume(&record.topic))?;
            }
        }
        Ok(reply)
    }

    /// Runs a request another agent forwarded to this one as the group's coordinator.
    pub async fn forwarded_group(&self, peer: Peer, group: &str, req: GroupRequest) -> Result<GroupReply> {
        validate::group_request(group, &req)?;
        self.groups.run_forwarded(peer.expected, group, req).await
    }

    /// The group's committed offsets, from the log.
    /// Only for topics the caller may consume.
    pub async fn group_offsets(&self, caller: &Caller, group: &str) -> Result<Vec<CommittedOffset>> {
        caller.check(Action::Group(group))?;
        validate::group_name(group)?;
        self.log.catch_up().await?;
        let state = self.log.state();
        let Some(topics) = state.group_offsets.get(group) else { return Ok(Vec::new()) };
        Ok(topics
            .iter()
            .filter(|(topic, _)| caller.may(Action::Consume(topic)))
            .flat_map(|(topic, partitions)| partitions.iter().map(move |(p, o)| (topic, *p, *o)))
            .map(|(topic, partition, offset)| {
                let high_watermark = state.partition(topic, partition).map_or(0, |p| p.high_watermark);
                CommittedOffset {
                    topic: topic.clone(),
                    partition,
                    offset,
                    high_watermark,
                    lag: high_watermark.saturating_sub(offset),
                }
            })
            .collect())
    }
}

/// The topics a group request names.
fn topics_named(req: &GroupRequest) -> Vec<&str> {
    match req {
        GroupRequest::Join { topics, .. } | GroupRequest::Subscribe { topics, .. } => {
            topics.iter().map(String::as_str).collect()
        }
        GroupRequest::Seek { positions, .. } => positions.iter().map(|p| p.topic.as_str()).collect(),
        GroupRequest::Commit { offsets, .. } => offsets.iter().map(|o| o.topic.as_str()).collect(),
        GroupRequest::Heartbeat { .. } | GroupRequest::Leave { .. } | GroupRequest::Fetch { .. } => Vec::new(),
    }
}
