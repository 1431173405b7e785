//! Consumer groups, through the service: every request is checked here and
//! run on the group's coordinator (`crate::groups`); committed offsets are
//! read from the log by any agent.

use serde::Serialize;

use super::internal::Peer;
use super::{Agent, validate};
use crate::auth::{Action, Caller};
use crate::error::{Error, Result};
use crate::groups::{GroupReply, GroupRequest, MemberView};

/// A group as the console lists it.
#[derive(Clone, Debug, Serialize)]
pub struct GroupSummary {
    pub group: String,
    /// The agent coordinating it, while it has one.
    pub coordinator: Option<String>,
}

/// A group's coordinator, generation, members and committed offsets.
#[derive(Clone, Debug, Serialize)]
pub struct GroupDescription {
    pub group: String,
    pub coordinator: Option<String>,
    pub generation: u64,
    pub members: Vec<MemberView>,
    pub offsets: Vec<CommittedOffset>,
}

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
    /// request names; a fetch or a commit of positions carries the caller's
    /// consume scope to the coordinator, which refuses a member reading
    /// outside it before any position moves.
    pub async fn group(&self, caller: &Caller, group: &str, req: GroupRequest) -> Result<GroupReply> {
        caller.check(Action::Group(group))?;
        for topic in topics_named(&req) {
            caller.check(Action::Consume(topic))?;
        }
        validate::group_request(group, &req)?;
        self.groups.handle(group, req.scoped(caller.consume_scope())).await
    }

    /// Runs a request another agent forwarded to this one as the group's coordinator.
    pub async fn forwarded_group(&self, peer: Peer, group: &str, req: GroupRequest) -> Result<GroupReply> {
        validate::group_request(group, &req)?;
        self.groups.run_forwarded(peer.expected, group, req).await
    }

    /// The group's committed offsets, from the log.
    /// Groups with committed offsets or a coordinator, those the caller may use.
    pub async fn list_groups(&self, caller: &Caller) -> Result<Vec<GroupSummary>> {
        caller.check(Action::Authenticated)?;
        self.log.catch_up().await?;
        let state = self.log.state();
        let mut groups: std::collections::BTreeMap<&str, Option<String>> =
            state.group_offsets.keys().map(|g| (g.as_str(), None)).collect();
        groups.extend(state.group_coordinators().map(|(g, lease)| (g, Some(lease.url.clone()))));
        Ok(groups
            .into_iter()
            .filter(|(g, _)| caller.may(Action::Group(g)))
            .map(|(g, coordinator)| GroupSummary { group: g.to_owned(), coordinator })
            .collect())
    }

    /// The group as its coordinator sees it, with its committed offsets.
    pub async fn describe_group(&self, caller: &Caller, group: &str) -> Result<GroupDescription> {
        caller.check(Action::Group(group))?;
        validate::group_name(group)?;
        // Caught up first, so the coordinator looked for, the members and
        // the offsets all come from the same log position.
        self.log.catch_up().await?;
        let GroupReply::Described { generation, members } = self.groups.handle(group, GroupRequest::Describe).await?
        else {
            return Err(Error::internal("a group's coordinator answered a describe with something else"));
        };
        let offsets = self.committed(caller, group);
        // What members read is shown only for topics the caller may read,
        // and a member's id (which can act for it) only to a caller who may
        // read all it reads.
        let members = members
            .into_iter()
            .map(|m| {
                let readable = |t: &str| caller.may(Action::Consume(t));
                let all = m.topics.iter().all(|t| readable(t)) && m.assignments.iter().all(|a| readable(&a.topic));
                MemberView {
                    member_id: if all { m.member_id } else { String::new() },
                    topics: m.topics.into_iter().filter(|t| readable(t)).collect(),
                    assignments: m.assignments.into_iter().filter(|a| readable(&a.topic)).collect(),
                }
            })
            .collect();
        let coordinator = self.log.state().valid_lease(&floe_broker::state::group_lease(group)).map(|l| l.url.clone());
        Ok(GroupDescription { group: group.to_owned(), coordinator, generation, members, offsets })
    }

    /// Only for topics the caller may consume.
    pub async fn group_offsets(&self, caller: &Caller, group: &str) -> Result<Vec<CommittedOffset>> {
        caller.check(Action::Group(group))?;
        validate::group_name(group)?;
        self.log.catch_up().await?;
        Ok(self.committed(caller, group))
    }

    /// The group's committed offsets in topics the caller may consume, as
    /// applied here.
    fn committed(&self, caller: &Caller, group: &str) -> Vec<CommittedOffset> {
        let state = self.log.state();
        let Some(topics) = state.group_offsets.get(group) else { return Vec::new() };
        topics
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
            .collect()
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
        GroupRequest::Heartbeat { .. }
        | GroupRequest::Leave { .. }
        | GroupRequest::Fetch { .. }
        | GroupRequest::Describe => Vec::new(),
    }
}
