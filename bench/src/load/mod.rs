//! Load generation: what to send (`Load`, `Keys`), when (`Schedule`), the
//! request bodies, the producers (`produce_load`) and the consumers
//! (`consume`).

mod bodies;
mod consume;
mod produce;
mod schedule;

use std::str::FromStr;
use std::time::Duration;

pub(crate) use bodies::Bodies;
pub use bodies::random_text;
pub use consume::{Consumed, Until, consume};
pub use produce::{Produced, produce_load};
pub use schedule::Schedule;

/// How records are keyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// No key: the agent's sticky round-robin partitioner.
    None,
    /// A key drawn uniformly from this many.
    Uniform(u64),
}

impl FromStr for Keys {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "none" => Ok(Keys::None),
            Some(("uniform", n)) => n.parse().map(Keys::Uniform).map_err(|e| format!("uniform:N: {e}")),
            _ => Err(format!("unknown key distribution {s:?}; expected none or uniform:N")),
        }
    }
}

/// The produce load.
#[derive(Clone, Debug)]
pub struct Load {
    pub producers: usize,
    pub record_bytes: usize,
    pub records_per_request: usize,
    pub partitions: u32,
    pub keys: Keys,
    /// Target produce requests per second over all producers; `None`: as fast
    /// as each producer's previous answer allows (closed loop).
    pub rate: Option<f64>,
    pub duration: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_distributions_parse() {
        assert_eq!("none".parse::<Keys>(), Ok(Keys::None));
        assert_eq!("uniform:5".parse::<Keys>(), Ok(Keys::Uniform(5)));
        assert!("uniform:x".parse::<Keys>().is_err());
        assert!("zipf".parse::<Keys>().is_err());
    }
}
