//! The cluster as one agent sees it: its id, its store, its log position, and
//! the agents that hold leases (the commit lease, group coordinators).

use std::collections::BTreeMap;

use serde::Serialize;

use super::Agent;
use crate::auth::{Action, Caller};
use crate::committer::COMMIT_LEASE;
use crate::error::Result;

#[derive(Clone, Debug, Serialize)]
pub struct ClusterInfo {
    pub cluster_id: String,
    /// Shown to admins only (with tokens on).
    pub store: Option<String>,
    pub applied: u64,
    /// Where other agents reach this one.
    pub this_agent: String,
    /// Agents seen holding a lease that has not expired, with what they hold.
    pub agents: Vec<AgentInfo>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AgentInfo {
    pub url: String,
    pub roles: Vec<String>,
}

impl Agent {
    pub async fn cluster_info(&self, caller: &Caller) -> Result<ClusterInfo> {
        caller.check(Action::Authenticated)?;
        let applied = self.log.catch_up().await?;
        let state = self.log.state();
        let mut agents: BTreeMap<String, Vec<String>> = BTreeMap::new();
        agents.entry(self.url.clone()).or_default();
        if let Some(lease) = state.valid_lease(COMMIT_LEASE) {
            agents.entry(lease.url.clone()).or_default().push("commit lease".to_owned());
        }
        for (group, lease) in state.group_coordinators().filter(|(g, _)| caller.may(Action::Group(g))) {
            agents.entry(lease.url.clone()).or_default().push(format!("coordinator of group {group}"));
        }
        Ok(ClusterInfo {
            cluster_id: self.cluster_id(),
            store: caller.may(Action::Admin).then(|| self.settings.store.clone()),
            applied,
            this_agent: self.url.clone(),
            agents: agents.into_iter().map(|(url, roles)| AgentInfo { url, roles }).collect(),
        })
    }
}
