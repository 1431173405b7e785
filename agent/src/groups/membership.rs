//! One group's membership, as held in memory by its coordinator agent:
//! members, generation, assignments, and each member's read positions.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::assign;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OffsetReset {
    #[default]
    Earliest,
    Latest,
    None,
}

pub struct Member {
    pub topics: Vec<String>,
    pub session_timeout: Duration,
    pub reset: OffsetReset,
    pub last_seen: Instant,
    pub assignments: Vec<(String, u32)>,
    /// Next offset to hand out, per assigned partition (absent: from the
    /// committed offset, else the reset policy).
    pub positions: BTreeMap<(String, u32), Position>,
    /// Which assigned partition a fetch starts with, so all get their turn.
    pub next_partition: usize,
}

/// A member's next offset in a partition, in one incarnation of its topic
/// (`Topic::id`): a position in a deleted topic means nothing in a new one
/// of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub offset: u64,
    pub topic_id: u64,
}

#[derive(Default)]
pub struct GroupState {
    pub generation: u64,
    pub members: BTreeMap<String, Member>,
}

impl GroupState {
    /// Recomputes every member's assignments under a new generation. Positions
    /// survive for partitions a member keeps.
    pub fn rebalance(&mut self, partitions: &BTreeMap<String, u32>) {
        self.generation += 1;
        let subscriptions = self.members.iter().map(|(id, m)| (id.clone(), m.topics.clone())).collect();
        let plan = assign::round_robin(&subscriptions, partitions);
        for (id, member) in &mut self.members {
            let assigned = plan.get(id).cloned().unwrap_or_default();
            member.positions.retain(|tp, _| assigned.contains(tp));
            member.assignments = assigned;
            member.next_partition = 0;
        }
    }

    /// Removes members whose session expired; `true` if any was removed.
    pub fn expire(&mut self, now: Instant) -> bool {
        let before = self.members.len();
        self.members.retain(|_, m| now.duration_since(m.last_seen) < m.session_timeout);
        self.members.len() != before
    }
}
