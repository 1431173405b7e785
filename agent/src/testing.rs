//! Helpers for the crate's own tests.

use std::sync::Arc;

use floe_broker::fault::FaultyStore;

use crate::Agent;

/// An agent started with `args` on an empty in-memory bucket behind a
/// `FaultyStore`, for a test to inject faults into; and that store.
pub async fn agent_on_a_faulty_store(args: &[&str]) -> (Arc<Agent>, Arc<FaultyStore>) {
    let store = Arc::new(FaultyStore::new(Arc::new(object_store::memory::InMemory::new())));
    let settings = crate::config::try_args(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let agent = Agent::start(settings, store.clone(), "http://127.0.0.1:1").await.unwrap_or_else(|e| panic!("{e}"));
    (agent, store)
}
