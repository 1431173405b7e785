//! `check-store`: races create-only PUTs from many tasks against a store and
//! reports whether exactly one wins every round. Floe is only safe on a store
//! where it does (see docs/deploy.md, "Which S3-compatible stores are safe").

use std::sync::Arc;

use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt, PutMode};
use ulid::Ulid;

use crate::keys;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaceRound {
    pub winners: usize,
    pub errors: Vec<String>,
    /// The stored object is the one written by the (single) winner.
    pub winner_kept: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaceReport {
    pub writers: usize,
    pub rounds: Vec<RaceRound>,
}

impl RaceReport {
    /// Exactly one winner in every round, and the stored object is its.
    pub fn safe(&self) -> bool {
        self.rounds.iter().all(|r| r.winners == 1 && r.winner_kept && r.errors.is_empty())
    }
}

/// Runs `rounds` races of `writers` concurrent create-only PUTs on fresh probe keys.
#[allow(clippy::disallowed_methods)] // a store check's scratch keys, not the log's
pub async fn race_create_only(store: Arc<dyn ObjectStore>, rounds: usize, writers: usize) -> RaceReport {
    let mut report = RaceReport { writers, rounds: Vec::with_capacity(rounds) };
    for _ in 0..rounds {
        let key = keys::probe(Ulid::new());
        let tasks: Vec<_> = (0..writers)
            .map(|i| {
                let (store, key) = (store.clone(), key.clone());
                tokio::spawn(async move {
                    let body = Bytes::from(format!("writer {i}"));
                    (i, store.put_opts(&key, body.into(), PutMode::Create.into()).await)
                })
            })
            .collect();
        let mut round = RaceRound { winners: 0, errors: Vec::new(), winner_kept: false };
        let mut winner = None;
        for t in tasks {
            match t.await {
                Ok((i, Ok(_))) => {
                    round.winners += 1;
                    winner = Some(i);
                }
                Ok((_, Err(object_store::Error::AlreadyExists { .. }))) => {}
                Ok((_, Err(e))) => round.errors.push(e.to_string()),
                Err(e) => round.errors.push(e.to_string()),
            }
        }
        if let (1, Some(i)) = (round.winners, winner) {
            round.winner_kept = match store.get(&key).await {
                Ok(got) => got.bytes().await.is_ok_and(|b| b == format!("writer {i}")),
                Err(e) => {
                    round.errors.push(e.to_string());
                    false
                }
            };
        }
        if let Err(e) = store.delete(&key).await {
            tracing::debug!(%key, error = %e, "could not delete race probe key");
        }
        report.rounds.push(round);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{Fault, FaultyStore, OpKind};
    use object_store::memory::InMemory;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_that_ignores_create_only_is_unsafe() {
        let faulty = Arc::new(FaultyStore::new(Arc::new(InMemory::new())));
        faulty.inject(OpKind::Put, "", Fault::IgnoreCreateMode, None);
        let report = race_create_only(faulty, 3, 8).await;
        assert!(!report.safe());
        assert!(report.rounds.iter().all(|r| r.winners == 8), "{report:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_memory_is_safe() {
        let report = race_create_only(Arc::new(InMemory::new()), 3, 8).await;
        assert!(report.safe(), "{report:?}");
    }
}
