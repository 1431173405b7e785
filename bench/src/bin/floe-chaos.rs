//! floe-chaos: starts agents on one local store, runs producers (half of them
//! idempotent, all retrying) and consumers against random agents, kills and
//! restarts agents with SIGKILL at random times, then drains every partition
//! through every agent and checks that nothing acknowledged was lost, nothing
//! was duplicated by an idempotent producer, offsets are dense, order is
//! kept, no consumer saw a record that is not in the final log, and all
//! agents agree. Exits 1 on any violation, printing the seed.

// The bench and the checker are clients of Floe: they use the machine's
// clock and randomness (clippy.toml keeps those out of Floe itself).
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use floe_bench::chaos::{self, ChaosOptions, Faults};

#[derive(Parser)]
#[command(name = "floe-chaos", version, about)]
struct Cli {
    /// How long producers and the killer run, in seconds.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    #[arg(long, default_value_t = 3)]
    agents: usize,
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    #[arg(long, default_value_t = 6)]
    producers: usize,
    #[arg(long, default_value_t = 3)]
    consumers: usize,
    /// Seed for every random choice (default: random; printed either way).
    #[arg(long)]
    seed: Option<u64>,
    /// Shortest pause between kills, in milliseconds.
    #[arg(long, default_value_t = 2_000)]
    kill_min_ms: u64,
    /// Longest pause between kills, in milliseconds.
    #[arg(long, default_value_t = 6_000)]
    kill_max_ms: u64,
    /// Fraction of agents' object-store requests that fail (0 = none).
    #[arg(long, default_value_t = 0.0)]
    store_faults: f64,
    /// Standalone compactors running at an aggressive interval.
    #[arg(long, default_value_t = 0)]
    compactors: usize,
    /// Agents take part in the commit lease (the holder is killed like any other).
    #[arg(long)]
    commit_lease: bool,
    /// Producers also send each request a second time at once, concurrently.
    #[arg(long)]
    immediate_retries: bool,
    /// Pause agents (SIGSTOP/SIGCONT) for longer than the lease and coordinator terms.
    #[arg(long)]
    pauses: bool,
    /// Run agents with clocks up to a second off, and now and then one two minutes fast.
    #[arg(long)]
    clock_skew: bool,
    /// Consumer groups commit offsets; watchers check none moves backwards.
    #[arg(long)]
    groups: bool,
    /// Agents spool flushes (a directory per slot, replayed by the agent
    /// restarted in it), and plain producers send half their requests with
    /// acks=local; each such record must be committed once, in order.
    #[arg(long)]
    spool: bool,
    /// Every fault class at once: --store-faults 0.01 (unless set),
    /// --compactors 2 (unless set), --commit-lease and the four above.
    #[arg(long)]
    mixed: bool,
    /// The store every agent and compactor uses, e.g. `s3://bucket/prefix`
    /// with the usual `AWS_*` variables (default: a local directory in the run directory).
    #[arg(long)]
    store: Option<String>,
    /// Where floe-agent and floe-compactor are (default: beside this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Keep the store and logs here instead of a temporary directory.
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let seed = cli.seed.unwrap_or_else(rand::random);
    let bin_dir = cli
        .bin_dir
        .or_else(|| std::env::current_exe().ok().and_then(|p| p.parent().map(PathBuf::from)))
        .unwrap_or_else(|| PathBuf::from("target/debug"));
    let temp = tempfile::tempdir();
    let dir = match (&cli.dir, &temp) {
        (Some(d), _) => d.clone(),
        (None, Ok(t)) => t.path().to_path_buf(),
        (None, Err(e)) => {
            eprintln!("floe-chaos: no temporary directory: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("floe-chaos: {}: {e}", dir.display());
        return ExitCode::from(2);
    }
    let faults = match cli.mixed {
        true => Faults { spool: cli.spool, ..Faults::all() },
        false => Faults {
            immediate_retries: cli.immediate_retries,
            pauses: cli.pauses,
            clock_skew: cli.clock_skew,
            groups: cli.groups,
            spool: cli.spool,
        },
    };
    let store_faults = if cli.mixed && cli.store_faults == 0.0 { 0.01 } else { cli.store_faults };
    let compactors = if cli.mixed && cli.compactors == 0 { 2 } else { cli.compactors };
    let commit_lease = cli.commit_lease || cli.mixed;
    let opts = ChaosOptions {
        duration: Duration::from_secs(cli.duration),
        agents: cli.agents.max(1),
        partitions: cli.partitions.max(1),
        producers: cli.producers,
        consumers: cli.consumers,
        seed,
        kill_every: (Duration::from_millis(cli.kill_min_ms), Duration::from_millis(cli.kill_max_ms)),
        store_faults: (store_faults > 0.0).then_some(store_faults),
        compactors,
        commit_lease,
        faults,
        store: cli.store.clone(),
        bin_dir,
        dir: dir.clone(),
    };
    println!(
        "floe-chaos: seed {seed}, {} s, {} agents, {} partitions, {} producers, {} consumers, store faults {}, {} compactors, commit lease {}, {:?}",
        cli.duration,
        opts.agents,
        opts.partitions,
        opts.producers,
        opts.consumers,
        store_faults,
        compactors,
        commit_lease,
        faults
    );
    let outcome = match chaos::run(opts).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("floe-chaos: the run could not complete: {e} (seed {seed}; logs in {})", dir.display());
            keep(cli.dir.is_none(), temp);
            return ExitCode::from(2);
        }
    };
    let r = &outcome.report;
    println!("kills: {}", outcome.kills);
    println!(
        "acknowledged records: {} committed + {} acks=local, records in the final log: {}",
        r.acked, r.acked_local, r.records_in_log
    );
    println!("requests refused: {}, given up after retries: {}", outcome.failed_requests, outcome.given_up_requests);
    println!("lost: {}", r.lost);
    println!("conflicting acks: {}", r.conflicting_acks);
    println!("duplicates (idempotent producers): {}", r.duplicates_idempotent);
    println!("duplicates (one plain attempt stored twice): {}", r.duplicates_plain);
    println!("holes: {}", r.holes);
    println!("order violations: {} (acks=local records: {})", r.order_violations, r.local_order_violations);
    println!("aborted reads: {}", r.aborted_reads);
    println!("phantom records: {}", r.phantoms);
    println!("disagreements between agents or consumers: {}", r.disagreements);
    println!(
        "committed group offsets moving backwards: {} (of {} changes watched)",
        r.group_offset_rewinds, outcome.group_offsets_seen
    );
    let panics: usize = outcome.panics.iter().map(|(_, n)| n).sum();
    println!("panics in the agents' and compactors' logs: {panics} {:?}", outcome.panics);
    println!("standalone compactors that ended before the run stopped them: {:?}", outcome.compactors_ended);
    if r.ok() && r.acked > 0 && panics == 0 && outcome.compactors_ended.is_empty() {
        println!("floe-chaos: PASS (seed {seed})");
        ExitCode::SUCCESS
    } else {
        println!("floe-chaos: FAIL (seed {seed}); reproduce with --seed {seed}; logs in {}", dir.display());
        keep(cli.dir.is_none(), temp);
        ExitCode::from(1)
    }
}

/// Keeps a temporary run directory for inspection after a failure.
fn keep(is_temp: bool, temp: std::io::Result<tempfile::TempDir>) {
    if let (true, Ok(t)) = (is_temp, temp) {
        let _ = t.keep();
    }
}
