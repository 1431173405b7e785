//! The simulation is deterministic and passes a handful of seeds here; CI
//! runs 1,000 through `scripts/test` (see docs/simulation.md).

#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use floe_sim::{Settings, run};

#[test]
fn a_seed_replays_byte_for_byte() {
    let settings = Settings::default();
    let first = run(42, &settings).unwrap();
    assert_eq!(run(42, &settings).unwrap(), first);
    assert_ne!(run(43, &settings).unwrap().digest, first.digest, "another seed, another schedule");
    assert!(first.acknowledged > 0 && first.entries > 0);
}

#[test]
fn twenty_seeds_keep_every_invariant() {
    for seed in 1_000..1_020 {
        if let Err(v) = run(seed, &Settings::default()) {
            panic!("{v}");
        }
    }
}
