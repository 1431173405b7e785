//! How many connections the agent holds open at once.
//!
//! Each connection takes a file descriptor, and so does every file the
//! local store writes and every connection to the object store or another
//! agent. Without a bound, a client opening connections (idle ones, or
//! long-polls) until the process's open-file limit is reached would make
//! every write fail, other clients' included; with one, further clients
//! wait in the listen backlog instead.
//!
//! The last eighth of the slots (at most [`MAX_RESERVE`]; none under 8) is
//! kept for the agent's own traffic: other agents' forwards (`/internal/…`),
//! health checks and metrics scrapes. A connection on one of those is
//! answered 503 `overloaded` and closed if it asks for anything else, so
//! clients filling their slots cannot by that stall the agents' forwards to
//! each other, nor fail a load balancer's health check.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Slots kept for other agents, health checks and scrapes, at most.
const MAX_RESERVE: usize = 64;

/// The slots connections take, and how many are open.
pub struct Connections {
    clients: Arc<Semaphore>,
    reserve: Arc<Semaphore>,
    open: Arc<AtomicUsize>,
    limit: usize,
}

/// One connection's slot, given back when dropped.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    /// The count of open connections, once this slot's is accepted.
    open: Option<Arc<AtomicUsize>>,
    /// A slot of the reserve: only other agents, health checks and scrapes are served.
    pub reserved: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(open) = &self.open {
            open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Connections {
    pub fn new(limit: usize) -> Self {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        let reserve = (limit / 8).min(MAX_RESERVE);
        Self {
            clients: Arc::new(Semaphore::new(limit - reserve)),
            reserve: Arc::new(Semaphore::new(reserve)),
            open: Arc::new(AtomicUsize::new(0)),
            limit,
        }
    }

    /// A free slot, a client's if there is one, else one of the reserve.
    pub fn try_take(&self) -> Option<Slot> {
        match self.clients.clone().try_acquire_owned() {
            Ok(permit) => Some(self.slot(permit, false)),
            Err(_) => self.reserve.clone().try_acquire_owned().ok().map(|permit| self.slot(permit, true)),
        }
    }

    /// Waits for a slot, whichever frees first.
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is taken unless it returns.
    pub async fn take(&self) -> Slot {
        tokio::select! {
            biased;
            Ok(permit) = self.clients.clone().acquire_owned() => self.slot(permit, false),
            Ok(permit) = self.reserve.clone().acquire_owned() => self.slot(permit, true),
            else => std::future::pending().await,
        }
    }

    fn slot(&self, permit: OwnedSemaphorePermit, reserved: bool) -> Slot {
        Slot { _permit: permit, open: None, reserved }
    }

    /// `slot`, now a connection's: counted as open, and exchanged for a
    /// client's slot if it is one of the reserve and a client's has freed
    /// since it was taken.
    pub fn accepted(&self, mut slot: Slot) -> Slot {
        if slot.reserved
            && let Ok(permit) = self.clients.clone().try_acquire_owned()
        {
            slot = self.slot(permit, false);
        }
        self.open.fetch_add(1, Ordering::Relaxed);
        slot.open = Some(self.open.clone());
        slot
    }

    /// Connections open, on slots of either kind.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// Whether a request on a reserved slot is served: other agents', health
/// checks' and metrics scrapes'.
pub fn for_the_reserve(path: &str) -> bool {
    path.starts_with("/internal/") || matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// Half of the open-file limit is left for everything else.
const SHARE_OF_OPEN_FILES: u64 = 2;
/// Beyond this, connections are bounded by memory (each holds hyper's
/// buffers) more than by descriptors: twice `--max-concurrent-requests`'s
/// default, so long-polls meet that bound first.
const MAX_DEFAULT: usize = 8192;

/// The default `--max-connections` for an open-file limit (`None`: unknown).
pub fn default_max(open_files: Option<u64>) -> usize {
    open_files
        .map_or(MAX_DEFAULT, |limit| usize::try_from(limit / SHARE_OF_OPEN_FILES).unwrap_or(usize::MAX))
        .clamp(1, MAX_DEFAULT)
}

/// The process's soft open-file limit (`ulimit -n`); `None` when it cannot
/// be read, or has none.
pub fn open_file_limit() -> Option<u64> {
    let (soft, _hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).ok()?;
    (soft != nix::sys::resource::RLIM_INFINITY).then_some(soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eighth_of_the_slots_is_kept_for_agents_and_health_checks() {
        let c = Connections::new(16);
        let taken: Vec<Slot> = std::iter::from_fn(|| c.try_take().map(|s| c.accepted(s))).collect();
        assert_eq!(taken.len(), 16);
        assert_eq!(taken.iter().filter(|s| s.reserved).count(), 2);
        assert!(taken[..14].iter().all(|s| !s.reserved), "clients' slots first");
        assert_eq!(c.open(), 16);
        drop(taken);
        assert_eq!(c.open(), 0, "given back");
        let waiting = c.try_take().into_iter().collect::<Vec<_>>();
        assert_eq!(c.open(), 0, "a slot taken for the next accept is not a connection");
        drop(waiting);
        let clients: Vec<Slot> = (0..14).filter_map(|_| c.try_take()).collect();
        let reserved = c.try_take().expect("a reserved slot");
        assert!(reserved.reserved);
        drop(clients);
        assert!(!c.accepted(reserved).reserved, "exchanged for a client's slot freed meanwhile");
        assert_eq!(Connections::new(1).try_take().map(|s| s.reserved), Some(false), "one slot: a client's");
        let big = Connections::new(8192);
        let all: Vec<Slot> = std::iter::from_fn(|| big.try_take()).collect();
        assert_eq!(all.iter().filter(|s| s.reserved).count(), MAX_RESERVE);
        assert!(for_the_reserve("/internal/v1/commit") && for_the_reserve("/readyz") && for_the_reserve("/metrics"));
        assert!(!for_the_reserve("/v1/topics/t/records"));
    }

    #[test]
    fn half_the_open_file_limit_within_bounds() {
        assert_eq!(default_max(Some(1024)), 512);
        assert_eq!(default_max(Some(256)), 128);
        assert_eq!(default_max(Some(1)), 1, "at least one");
        assert_eq!(default_max(Some(65_536)), MAX_DEFAULT);
        assert_eq!(default_max(None), MAX_DEFAULT, "no limit known");
    }
}
