//! `floe-sim`: runs seeds of the deterministic simulation and stops at the
//! first that breaks an invariant, printing the command that replays it.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Floe's deterministic simulation of the storage core")]
struct Cli {
    /// Run this one seed (replay).
    #[arg(long)]
    seed: Option<u64>,
    /// Otherwise run this many seeds …
    #[arg(long, default_value_t = 1_000)]
    seeds: u64,
    /// … starting at this one.
    #[arg(long, default_value_t = 0)]
    first: u64,
    #[arg(long, default_value_t = floe_sim::Settings::default().writers)]
    writers: usize,
    #[arg(long, default_value_t = floe_sim::Settings::default().requests)]
    requests: usize,
    #[arg(long, default_value_t = floe_sim::Settings::default().fault_rate)]
    fault_rate: f64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = floe_sim::Settings {
        writers: cli.writers,
        requests: cli.requests,
        fault_rate: cli.fault_rate,
        ..floe_sim::Settings::default()
    };
    let seeds = match cli.seed {
        Some(s) => s..s + 1,
        None => cli.first..cli.first + cli.seeds,
    };
    // A panic where the agent would abort (applying a log entry) ends the
    // process before a failure is reported: name the seed to replay first.
    static SEED: AtomicU64 = AtomicU64::new(0);
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        eprintln!("floe-sim: {}", floe_sim::Violation::new(SEED.load(Ordering::Relaxed), "panicked"));
    }));
    let started = Instant::now();
    let (mut runs, mut acked, mut entries) = (0u64, 0usize, 0u64);
    for seed in seeds {
        SEED.store(seed, Ordering::Relaxed);
        match floe_sim::run(seed, &settings) {
            Ok(o) => {
                runs += 1;
                acked += o.acknowledged;
                entries += o.entries;
                if cli.seed.is_some() {
                    println!(
                        "seed {seed}: ok, digest {:016x}, {} acknowledged, {} entries",
                        o.digest, o.acknowledged, o.entries
                    );
                }
            }
            Err(v) => {
                eprintln!("floe-sim: FAIL after {runs} passing seeds\n{v}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "floe-sim: {runs} seeds passed in {:.1} s ({acked} acknowledged writes, {entries} log entries)",
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
