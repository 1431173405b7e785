//! floe-bench: named measurement scenarios against agents it starts itself on
//! a temporary local store. Scenarios so far: `metadata` (metadata PUTs per
//! second by cluster size, with and without the commit lease).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use floe_bench::metadata::{self, MetadataOptions};

#[derive(Parser)]
#[command(name = "floe-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
    /// Where floe-agent and floe-compactor are (default: beside this binary).
    #[arg(long, global = true)]
    bin_dir: Option<PathBuf>,
    /// Write the results as JSON here.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Scenario {
    /// Metadata PUTs per second for each cluster size, lease off and on.
    Metadata {
        /// Cluster sizes to measure.
        #[arg(long, value_delimiter = ',', default_value = "1,3,5")]
        agents: Vec<usize>,
        /// Seconds of load per measurement.
        #[arg(long, default_value_t = 20)]
        duration: u64,
        /// Closed-loop producers per agent.
        #[arg(long, default_value_t = 4)]
        producers_per_agent: usize,
        #[arg(long, default_value_t = 50)]
        flush_interval_ms: u64,
        /// Group-commit windows to measure with the lease on (off runs use 0).
        #[arg(long, value_delimiter = ',', default_value = "0,50")]
        group_commit_ms: Vec<u64>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let bin_dir = cli
        .bin_dir
        .or_else(|| std::env::current_exe().ok().and_then(|p| p.parent().map(PathBuf::from)))
        .unwrap_or_else(|| PathBuf::from("target/debug"));
    let Scenario::Metadata { agents, duration, producers_per_agent, flush_interval_ms, group_commit_ms } = cli.scenario;
    println!(
        "metadata: {duration} s per run, {producers_per_agent} producers per agent, flush every {flush_interval_ms} ms"
    );
    println!(
        "{:>6} {:>6} {:>8} {:>11} {:>10} {:>11} {:>15} {:>13}",
        "agents", "lease", "group ms", "requests/s", "entries/s", "log PUTs/s", "segment PUTs/s", "mean lat. ms"
    );
    let mut results = Vec::new();
    for n in agents {
        let runs = std::iter::once((false, 0)).chain(group_commit_ms.iter().map(|g| (true, *g)));
        for (lease, group) in runs {
            let dir = match tempfile::tempdir() {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("floe-bench: {e}");
                    return ExitCode::from(2);
                }
            };
            let opts = MetadataOptions {
                agents: n,
                commit_lease: lease,
                duration: Duration::from_secs(duration),
                producers_per_agent,
                flush_interval_ms,
                group_commit_ms: group,
                dir: dir.path().to_path_buf(),
                bin_dir: bin_dir.clone(),
            };
            match metadata::run(&opts).await {
                Ok(r) => {
                    println!(
                        "{:>6} {:>6} {:>8} {:>11.1} {:>10.1} {:>11.1} {:>15.1} {:>13.1}",
                        r.agents,
                        if r.commit_lease { "on" } else { "off" },
                        r.group_commit_ms,
                        r.requests_per_s,
                        r.entries_per_s,
                        r.log_puts_per_s,
                        r.segment_puts_per_s,
                        r.mean_latency_ms
                    );
                    results.push(r);
                }
                Err(e) => {
                    eprintln!("floe-bench: metadata with {n} agents, lease {lease}: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    }
    if let Some(path) = cli.json {
        let written =
            serde_json::to_vec_pretty(&results).map_err(std::io::Error::other).and_then(|b| std::fs::write(&path, b));
        if let Err(e) = written {
            eprintln!("floe-bench: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
