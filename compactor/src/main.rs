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

    /// Run one cycle and exit (for scripts and tests).
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

async fn run(cli: Cli) -> Result<(), floe_broker::Error> {
    let store = floe_broker::store::open(&cli.store)?;
    let settings = LogSettings { new_cluster_commit_window_ms: cli.commit_window_ms, ..LogSettings::default() };
    let (cluster, log) = floe_broker::open(store, settings).await?;
    tracing::info!(cluster_id = %cluster.cluster_id, store = %cli.store, "compactor started");
    let mut compactor = Compactor::new(Arc::new(log), cli.settings);
    if cli.once {
        let report = compactor.run_once().await?;
        println!("{report:?}");
        return Ok(());
    }
    compactor.run(floe_broker::shutdown::signal()).await;
    Ok(())
}
