//! A memory budget in bytes that requests take from before they allocate,
//! and give back when what they took is dropped.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Clone, Debug)]
pub struct MemoryBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

/// Bytes taken from a [`MemoryBudget`], given back when dropped.
#[derive(Debug, Default)]
pub struct Held(Option<OwnedSemaphorePermit>);

impl MemoryBudget {
    pub fn new(total: usize) -> Self {
        let total = total.clamp(1, u32::MAX as usize);
        Self { bytes: Arc::new(Semaphore::new(total)), total }
    }

    /// Takes `bytes`, waiting while others hold the budget; never more than
    /// the whole budget, so any one request can go ahead. Takers wait in
    /// turn. A taker holds one `Held` at a time and waits holding nothing,
    /// so no two can wait for each other.
    ///
    /// # Cancel safety
    /// Cancel safe, as `Semaphore::acquire_many_owned`.
    pub async fn take(&self, bytes: usize) -> Held {
        let n = bytes.min(self.total) as u32;
        if n == 0 {
            return Held(None);
        }
        // Never closed: the error cannot happen.
        Held(self.bytes.clone().acquire_many_owned(n).await.ok())
    }

    /// Takes what it can of `bytes` now, without waiting: for memory
    /// already allocated, which waiting would not free.
    pub fn take_now(&self, bytes: usize) -> Held {
        let n = bytes.min(self.bytes.available_permits()).min(self.total) as u32;
        Held(self.bytes.clone().try_acquire_many_owned(n).ok().filter(|_| n > 0))
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.total - self.bytes.available_permits().min(self.total)
    }

    pub fn total(&self) -> usize {
        self.total
    }
}

impl Held {
    pub fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |p| p.num_permits())
    }

    /// Gives back what is held beyond `bytes`.
    pub fn shrink_to(&mut self, bytes: usize) {
        let Some(permit) = self.0.as_mut() else { return };
        let extra = permit.num_permits().saturating_sub(bytes);
        if extra > 0 {
            drop(permit.split(extra));
        }
        if bytes == 0 {
            self.0 = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn what_is_taken_is_held_until_dropped_and_shrinks() {
        let budget = MemoryBudget::new(100);
        let mut a = budget.take(60).await;
        assert_eq!((a.bytes(), budget.held()), (60, 60));
        a.shrink_to(25);
        assert_eq!((a.bytes(), budget.held()), (25, 25));
        let b = budget.take(75).await;
        assert_eq!(budget.held(), 100);
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.take(50).await.bytes() }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "waits while the budget is held");
        drop((a, b));
        assert_eq!(waiting.await.unwrap(), 50);
        assert_eq!(budget.held(), 0);
    }

    #[tokio::test]
    async fn taking_now_takes_what_is_left_without_waiting() {
        let budget = MemoryBudget::new(100);
        let a = budget.take(70).await;
        let b = budget.take_now(50);
        assert_eq!((b.bytes(), budget.held()), (30, 100));
        assert_eq!(budget.take_now(10).bytes(), 0, "nothing left");
        drop((a, b));
        assert_eq!(budget.take_now(10).bytes(), 10);
    }

    #[tokio::test]
    async fn a_request_larger_than_the_budget_takes_all_of_it() {
        let budget = MemoryBudget::new(10);
        let all = budget.take(usize::MAX).await;
        assert_eq!((all.bytes(), budget.held()), (10, 10));
        let mut none = budget.take(0).await;
        none.shrink_to(0);
        assert_eq!(none.bytes(), 0);
    }
}
