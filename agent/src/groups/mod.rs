//! Consumer groups. Offsets are durable in the metadata log; membership lives
//! in memory on the group's coordinator, the agent holding the lease
//! `group/{g}` in the log.
//!
//! - `protocol`: what a coordinator does with a request (membership,
//!   generations, assignment, positions, offset commits over the applied state).
//! - `routing`: where a request runs (lease lookup, claiming the lease,
//!   forwarding to the coordinator, one tenure's state at a time).
//!
//! Requests and replies are typed and serializable: they travel between
//! agents as they are. Rendering them for clients is the API's job.

pub mod assign;
pub mod membership;
mod protocol;
mod routing;

use bytes::Bytes;
use floe_broker::Record;
use floe_broker::entry::GroupOffset;
use serde::{Deserialize, Serialize};

use crate::budget::Held;

pub use crate::auth::ConsumeScope;
pub use membership::OffsetReset;
pub use routing::Groups;

/// A group request, as a face receives it and as agents forward it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GroupRequest {
    /// A new member. With `name`, the member id is that name (a Kafka REST
    /// consumer instance, named by its client), it may join with no topics
    /// yet, and a second join of the name is refused.
    Join {
        topics: Vec<String>,
        session_timeout_ms: u64,
        auto_offset_reset: OffsetReset,
        #[serde(default)]
        name: Option<String>,
    },
    Heartbeat {
        member_id: String,
    },
    Leave {
        member_id: String,
    },
    /// Replaces the member's topics (none: unsubscribed) and rebalances.
    Subscribe {
        member_id: String,
        topics: Vec<String>,
    },
    /// Moves the member's read positions in partitions assigned to it.
    Seek {
        member_id: String,
        positions: Vec<Seek>,
    },
    Fetch {
        member_id: String,
        max_records: usize,
        max_bytes: usize,
        timeout_ms: u64,
        /// What the caller may read: a member with a partition outside it is
        /// refused before any position moves. Set by the service.
        #[serde(default)]
        scope: ConsumeScope,
    },
    /// Commits `offsets` (the next offset to read in each partition). Without
    /// a generation, in the group's current one; with no offsets and no
    /// generation, the member's read positions.
    Commit {
        member_id: String,
        generation: Option<u64>,
        offsets: Vec<GroupOffset>,
        /// What the caller may read: committing positions outside it is
        /// refused. Set by the service.
        #[serde(default)]
        scope: ConsumeScope,
    },
    /// The group's generation and members, as its coordinator sees them
    /// (for the console and operators; touches nothing).
    Describe,
}

/// Where a seek moves a member's position in one partition.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Seek {
    pub topic: String,
    pub partition: u32,
    pub to: SeekTo,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeekTo {
    Offset(u64),
    Beginning,
    End,
}

impl GroupRequest {
    /// The request with `scope` as the caller's reach, where it matters.
    pub fn scoped(mut self, to: ConsumeScope) -> Self {
        if let Self::Fetch { scope, .. } | Self::Commit { scope, .. } = &mut self {
            *scope = to;
        }
        self
    }

    /// The member a request speaks for (a join has none yet).
    pub fn member_id(&self) -> Option<&str> {
        match self {
            Self::Join { .. } | Self::Describe => None,
            Self::Heartbeat { member_id }
            | Self::Leave { member_id }
            | Self::Subscribe { member_id, .. }
            | Self::Seek { member_id, .. }
            | Self::Fetch { member_id, .. }
            | Self::Commit { member_id, .. } => Some(member_id),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

/// What the coordinator answered.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum GroupReply {
    Joined {
        member_id: String,
        generation: u64,
        assignments: Vec<TopicPartition>,
    },
    /// The member's view of the group; also the answer to a subscribe or a seek.
    Heartbeat {
        generation: u64,
        assignments: Vec<TopicPartition>,
        #[serde(default)]
        topics: Vec<String>,
    },
    Left,
    Records {
        records: Vec<GroupRecord>,
        /// The records' bytes in the fetch-memory budget, on the agent
        /// that read them, until the answer is sent.
        #[serde(skip)]
        held: Held,
    },
    Committed,
    Described {
        generation: u64,
        members: Vec<MemberView>,
    },
}

/// A member as `Describe` shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberView {
    pub member_id: String,
    pub topics: Vec<String>,
    pub assignments: Vec<TopicPartition>,
}

/// A record handed to a member, with where it came from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupRecord {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    #[serde(with = "wire_record")]
    pub record: Record,
}

impl GroupRecord {
    /// What it holds in an answer: the record's bytes (as `max_bytes`
    /// counts them), its topic's name and itself.
    pub fn held_bytes(&self) -> usize {
        self.record.size() + self.topic.len() + std::mem::size_of::<Self>()
    }
}

/// Records between agents: keys, values and header values as base64, so any
/// bytes survive the trip.
mod wire_record {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::de::Error as _;

    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Wire {
        key: Option<String>,
        value: String,
        timestamp: i64,
        headers: Vec<(String, String)>,
    }

    pub fn serialize<S: serde::Serializer>(r: &Record, s: S) -> Result<S::Ok, S::Error> {
        let wire = Wire {
            key: r.key.as_ref().map(|k| STANDARD.encode(k)),
            value: STANDARD.encode(&r.value),
            timestamp: r.timestamp,
            headers: r.headers.iter().map(|(k, v)| (k.clone(), STANDARD.encode(v))).collect(),
        };
        wire.serialize(s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Record, D::Error> {
        let wire = Wire::deserialize(d)?;
        let bytes = |s: &str| STANDARD.decode(s).map(Bytes::from).map_err(D::Error::custom);
        Ok(Record {
            key: wire.key.as_deref().map(bytes).transpose()?,
            value: bytes(&wire.value)?,
            timestamp: wire.timestamp,
            headers: wire.headers.iter().map(|(k, v)| Ok((k.clone(), bytes(v)?))).collect::<Result<_, D::Error>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_cross_the_wire_byte_for_byte() {
        let record = Record {
            key: Some(Bytes::from_static(&[0xff, 0])),
            value: Bytes::from_static(b"\x80value"),
            timestamp: 5,
            headers: vec![("h".into(), Bytes::from_static(&[0xfe]))],
        };
        let reply = GroupReply::Records {
            records: vec![GroupRecord { topic: "t".into(), partition: 1, offset: 9, record: record.clone() }],
            held: Held::default(),
        };
        let json = serde_json::to_string(&reply).expect("serializes");
        let GroupReply::Records { records, .. } = serde_json::from_str(&json).expect("deserializes") else {
            panic!("not records: {json}");
        };
        assert_eq!(records[0].record, record);
    }
}
