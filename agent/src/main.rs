use std::process::ExitCode;

use clap::Parser;
use floe_agent::{Agent, AgentArgs};
use tracing_subscriber::EnvFilter;

/// Floe agent: a Kafka-shaped HTTP log broker whose only state is an object store.
#[derive(Parser)]
#[command(name = "floe-agent", version, about)]
struct Cli {
    #[command(flatten)]
    agent: AgentArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("FLOE_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli.agent).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("floe-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: AgentArgs) -> Result<(), Box<dyn std::error::Error>> {
    let store = floe_broker::store::open(&args.store)?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(store = %args.store, "opening bucket");
    let agent = Agent::start(args, store).await?;
    // Scripts and tests wait for this line on stdout.
    println!("floe-agent listening on http://{addr}");
    agent.serve(listener, shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}
