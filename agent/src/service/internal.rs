//! Agent-to-agent operations: the commit lease holder group-commits other
//! agents' flushes. Every call is checked for this cluster's credentials
//! (`crate::peers`), and what it carries is validated as a client's request
//! would be.

use floe_broker::Committed;
use floe_broker::entry::Op;
use floe_broker::segment::BatchMeta;

use super::{Agent, validate};
use crate::error::{Error, Invalid, Result};
use crate::peers::PeerCall;

/// An agent of this cluster, verified: only `Agent::verify_peer` makes one,
/// so an internal operation cannot be reached without credentials.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    /// The lease holder the caller expects this agent to be.
    pub(super) expected: ulid::Ulid,
}

impl Agent {
    /// Checks an agent-to-agent call's credentials (before its body is read).
    pub fn verify_peer(&self, call: &PeerCall<'_>) -> Result<Peer> {
        Ok(Peer { expected: self.peers.verify(call)? })
    }

    /// Commits a follower's flushes, if this agent holds the commit lease
    /// the follower expects it to.
    pub async fn forwarded_commit(&self, peer: Peer, ops: Vec<Op>) -> Result<Committed> {
        let expected = peer.expected;
        ops.iter().try_for_each(forwarded_op)?;
        Ok(self.committer.commit_for_follower(expected, ops).await?)
    }
}

/// Followers forward only their flushes: appends of well-formed batches.
fn forwarded_op(op: &Op) -> Result<()> {
    let Op::Append { batches, .. } = op else {
        return Err(Error::invalid(Invalid::Op, "agents forward only appends of their own flushes"));
    };
    if batches.is_empty() {
        return Err(Error::invalid(Invalid::Op, "an append holds at least one batch"));
    }
    batches.iter().try_for_each(batch)
}

fn batch(b: &BatchMeta) -> Result<()> {
    validate::topic_name(&b.topic)?;
    if b.topic_id.is_none() {
        return Err(Error::invalid(Invalid::Op, "a forwarded batch names its topic's incarnation"));
    }
    if b.records == 0 || b.len == 0 || b.max_timestamp < 0 {
        return Err(Error::invalid(Invalid::Op, "a batch holds records, bytes and a non-negative timestamp"));
    }
    Ok(())
}
