use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use floe_broker::LogSettings;
use floe_compactor::{Compactor, CompactorSettings};
use tracing_subscriber::EnvFilter;

/// Floe compactor: merges small segments, enforces retention, writes
/// snapshots and collects garbage in a Floe bucket. Safe to run beside agents
/// and other compactors.
#[derive(Parser)]
#[command(name = "floe-compactor", version, about)]
struct Cli {
    /// Object store: file://./dir, file:///abs/dir, or s3://bucket[/prefix]
    /// (S3 settings from the usual AWS_* variables).
    #[arg(long, env = "FLOE_STORE", default_value = "file://./floe-data")]
    store: String,

    /// Run one cycle, print what it did as one line of JSON, and exit (for
    /// scripts and tests).
    #[arg(long)]
    once: bool,

    /// Commit window recorded in the bucket if this process creates the cluster.
    #[arg(long, env = "FLOE_COMMIT_WINDOW_MS", default_value_t = floe_broker::state::DEFAULT_COMMIT_WINDOW_MS)]
    commit_window_ms: u64,

    #[command(flatten)]
    settings: CompactorSettings,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("FLOE_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floe-compactor: {e}");
            ExitCode::from(2)
        }
    }
}

/// How long a cycle in progress may go on after SIGTERM or SIGINT.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

async fn run(cli: Cli) -> Result<(), floe_broker::Error> {
    // Counted, so that `--once` can say what its cycle cost in requests.
    let metered = Arc::new(floe_broker::metered::MeteredStore::new(floe_broker::store::open(&cli.store)?));
    let store: Arc<dyn object_store::ObjectStore> = metered.clone();
    floe_broker::store::sweep_leftovers(&cli.store, floe_broker::clock::now_ms());
    let settings = LogSettings { new_cluster_commit_window_ms: cli.commit_window_ms, ..LogSettings::default() };
    let (cluster, log) = floe_broker::open(store, settings).await?;
    tracing::info!(cluster_id = %cluster.cluster_id, store = %cli.store, "compactor started");
    let mut compactor = Compactor::new(Arc::new(log), cli.settings);
    if cli.once {
        let before = metered.stats();
        let report = compactor.run_once().await?;
        let requests = metered.stats().segments.zip(before.segments, u64::saturating_sub);
        // One line of JSON, for scripts (floe-bench's `--compact-first` reads
        // it): the cycle, and its requests for segments (`segment_requests`).
        let line = serde_json::to_value(&report).and_then(|mut line| {
            line["segment_requests"] = serde_json::to_value(requests)?;
            serde_json::to_string(&line)
        });
        match line {
            Ok(line) => println!("{line}"),
            Err(e) => return Err(floe_broker::Error::encode("cycle report", e)),
        }
        return Ok(());
    }
    // On a signal the cycle in progress may finish, for a while: a cycle
    // cut short is safe (its merged segment is collected later), only wasted.
    let stop = futures::FutureExt::shared(floe_broker::shutdown::signal());
    let deadline = async {
        stop.clone().await;
        tokio::time::sleep(STOP_GRACE).await;
        tracing::warn!(grace = ?STOP_GRACE, "the compaction cycle did not finish in time; stopping it");
    };
    tokio::select! {
        () = compactor.run(stop.clone()) => {}
        () = deadline => {}
    }
    Ok(())
}
