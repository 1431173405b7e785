//! The components a node is built from, as opposed to its settings: where
//! time and randomness come from. Production uses the machine's; tests, the
//! chaos checker and the simulation inject their own (a skewed clock, one
//! seed for every random choice).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use ulid::Ulid;

use crate::clock::{Clock, SystemClock};

/// A source of random bits.
pub trait Random: Send + Sync + fmt::Debug {
    fn next_u64(&self) -> u64;
}

/// The thread's random generator.
#[derive(Debug, Default)]
pub struct ThreadRandom;

impl Random for ThreadRandom {
    #[allow(clippy::disallowed_methods)] // the machine's randomness, behind ThreadRandom
    fn next_u64(&self) -> u64 {
        rand::random()
    }
}

/// Every draw from one seed: the same seed gives the same sequence.
#[derive(Debug)]
pub struct SeededRandom(Mutex<StdRng>);

impl SeededRandom {
    pub fn new(seed: u64) -> Self {
        Self(Mutex::new(StdRng::seed_from_u64(seed)))
    }
}

impl Random for SeededRandom {
    fn next_u64(&self) -> u64 {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).random()
    }
}

#[derive(Clone, Debug)]
pub struct Components {
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
}

impl Default for Components {
    /// The machine's clock and random generator.
    fn default() -> Self {
        Self { clock: Arc::new(SystemClock), random: Arc::new(ThreadRandom) }
    }
}

impl Components {
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// A fresh ULID stamped with this node's time (commit ids, segment names).
    pub fn ulid(&self) -> Ulid {
        let bits = (u128::from(self.random.next_u64()) << 64) | u128::from(self.random.next_u64());
        Ulid::from_parts(self.now_ms(), bits)
    }

    /// `d` scaled by a random factor in [0.5, 1.5): spreads out retries.
    pub fn jitter(&self, d: Duration) -> Duration {
        let unit = (self.random.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        d.mul_f64(0.5 + unit)
    }
}
