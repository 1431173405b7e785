//! Idempotent producers: ids and epochs handed out by the log itself.

use floe_broker::entry::{FlushId, Op};
use floe_broker::state::OpOutcome;
use serde::Serialize;

use super::Agent;
use crate::auth::{Action, Caller};
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, Serialize)]
pub struct ProducerId {
    pub producer_id: u64,
    pub epoch: u32,
}

impl Agent {
    /// A new producer (`None`), or a new epoch of `producer_id` that fences the old one.
    pub async fn init_producer(&self, caller: &Caller, producer_id: Option<u64>) -> Result<ProducerId> {
        // Producer ids are for producing: a token that may produce nowhere
        // may neither get one nor fence one (a new epoch fences the old).
        caller.check(Action::ProduceAny)?;
        match Error::commit_one(&self.log, Op::InitProducer { producer_id }).await? {
            (_, OpOutcome::ProducerReady { id, epoch }) => Ok(ProducerId { producer_id: id, epoch }),
            _ => Err(Error::ProducerNotFound { producer_id: producer_id.unwrap_or_default() }),
        }
    }
}

/// Whether a flush answered with `acks=local` has been committed.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct FlushStatus {
    pub spool: ulid::Ulid,
    pub seq: u64,
    /// True once the log holds the flush's records (or its spool moved past
    /// it: a flush whose spool file was lost is never committed later).
    pub committed: bool,
}

impl Agent {
    /// Looks a spooled flush up in the log, after catching up with it: the
    /// flush may have been committed through another agent's lease, or
    /// replayed by the agent that took over the spool's disk.
    pub async fn flush_status(&self, caller: &Caller, flush: FlushId) -> Result<FlushStatus> {
        caller.check(Action::ProduceAny)?;
        self.log.catch_up().await?;
        let committed = self.log.state().flush_committed(flush);
        Ok(FlushStatus { spool: flush.spool, seq: flush.seq, committed })
    }
}
