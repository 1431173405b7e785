//! Idempotent producers: ids and epochs handed out by the log itself.

use floe_broker::entry::Op;
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
