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
        for name in state.leases.keys() {
            let Some(lease) = state.valid_lease(name) else { continue };
            let role = match name.strip_prefix("group/") {
                Some(group) if !caller.may(Action::Group(group)) => continue,
                Some(group) => format!("coordinator of group {group}"),
                None if name == COMMIT_LEASE => "commit lease".to_owned(),
                None => format!("lease {name}"),
            };
            agents.entry(lease.url.clone()).or_default().push(role);
        }
        Ok(ClusterInfo {
            cluster_id: self.cluster_id(),
            store: self.may_see_everything(caller).then(|| self.settings.store.clone()),
            applied,
            this_agent: self.url.clone(),
            agents: agents.into_iter().map(|(url, roles)| AgentInfo { url, roles }).collect(),
        })
    }
}
