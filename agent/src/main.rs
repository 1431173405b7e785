// An allocator that gives freed memory back to the system: with glibc's, an
// agent that once held a burst of large requests kept its peak RSS while
// idle (measured: docs/decisions/0016-allocator.md). Its options are
// compiled in: .cargo/config.toml.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, CommandFactory, Parser, Subcommand};
use floe_agent::{Agent, AgentArgs};
use tracing_subscriber::EnvFilter;

/// Floe agent: a Kafka-shaped HTTP log broker whose only state is an object store.
#[derive(Parser)]
#[command(name = "floe-agent", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    agent: AgentArgs,
    /// Delay every object-store request by a sample from this latency profile
    /// (none, s3-standard, s3-express; see docs/benchmarks.md). For benchmarks.
    #[arg(long, env = "FLOE_STORE_PROFILE", default_value = "none")]
    store_profile: floe_broker::latency::Profile,
    /// Seed for the profile's delays (default: random).
    #[arg(long, env = "FLOE_STORE_PROFILE_SEED")]
    store_profile_seed: Option<u64>,
    /// Settings from a TOML file (keys: the flags' names with underscores);
    /// flags and FLOE_* variables win over it.
    #[arg(long, env = "FLOE_CONFIG")]
    config: Option<String>,
    /// Print the effective settings (flags, environment, file, defaults) as
    /// TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// Log lines as text for people, or as JSON objects for collectors.
    #[arg(long, env = "FLOE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Race create-only PUTs against the store and report whether it is safe for Floe.
    CheckStore(CheckStoreArgs),
    /// Clients' bearer tokens (see --auth-tokens).
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a new random token: prints the token on stdout (give it to the
    /// client) and, on stderr, the entry to add to the tokens file (it holds
    /// only the token's hash).
    New(NewTokenArgs),
}

#[derive(Args)]
struct NewTokenArgs {
    /// The token's name in the tokens file and in the agent's logs.
    #[arg(long)]
    name: String,
    /// May do everything: create, change and delete topics, and all below.
    #[arg(long)]
    admin: bool,
    /// Topics it may produce to: names, `prefix*`, or `*` (repeatable).
    #[arg(long)]
    produce: Vec<String>,
    /// Topics it may consume from (repeatable).
    #[arg(long)]
    consume: Vec<String>,
    /// Consumer groups it may use (repeatable).
    #[arg(long)]
    group: Vec<String>,
}

#[derive(Args)]
struct CheckStoreArgs {
    /// The store to check (same forms as the agent's --store).
    #[arg(long, env = "FLOE_STORE", default_value = "file://./floe-data")]
    store: String,
    /// Races to run; each must have exactly one winner.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Concurrent create-only PUTs per race.
    #[arg(long, default_value_t = 16)]
    writers: usize,
}

/// The command line with `--config`'s settings added (not for subcommands,
/// which take their own few flags).
fn arguments() -> Result<Vec<std::ffi::OsString>, String> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let subcommand = args.get(1).and_then(|a| a.to_str()).is_some_and(|a| !a.starts_with('-'));
    match floe_agent::config_file::path(&args) {
        Some(path) if !subcommand => floe_agent::config_file::apply(&Cli::command(), args, &path),
        _ => Ok(args),
    }
}

/// jemalloc's figures, refreshed (they are cached until the epoch advances).
#[cfg(feature = "jemalloc")]
fn jemalloc_stats() -> Option<floe_agent::service::AllocatorStats> {
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().ok()?;
    Some(floe_agent::service::AllocatorStats {
        allocated_bytes: stats::allocated::read().ok()? as u64,
        resident_bytes: stats::resident::read().ok()? as u64,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    #[cfg(feature = "jemalloc")]
    floe_agent::service::report_allocator(jemalloc_stats);
    let cli = match arguments() {
        Ok(args) => Cli::parse_from(args),
        Err(e) => {
            eprintln!("floe-agent: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.print_config {
        // The settings hold no secrets: credentials come from AWS_* variables.
        return match toml::to_string(&cli.agent) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("floe-agent: cannot print the settings: {e}");
                ExitCode::from(2)
            }
        };
    }
    let logs = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("FLOE_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let outcome = match cli.command {
        Some(Command::CheckStore(args)) => check_store(args).await,
        Some(Command::Token(TokenCommand::New(args))) => Ok(new_token(args)),
        None => run(cli.agent, cli.store_profile, cli.store_profile_seed).await.map(|()| ExitCode::SUCCESS),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("floe-agent: {e}");
            ExitCode::from(2)
        }
    }
}

#[allow(clippy::disallowed_methods)] // the binary wires the machine's randomness into test-only store wrappers
async fn run(
    args: AgentArgs,
    profile: floe_broker::latency::Profile,
    profile_seed: Option<u64>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut store = floe_broker::store::open(&args.store)?;
    floe_broker::store::sweep_leftovers(&args.store, floe_broker::clock::now_ms());
    if profile != floe_broker::latency::Profile::None {
        tracing::warn!(%profile, "delaying object-store requests (benchmarking only)");
        store = floe_broker::latency::LatencyStore::wrap(store, profile, profile_seed.unwrap_or_else(rand::random));
    }
    if let Some(rate) = args.inject_store_faults {
        tracing::warn!(rate, "injecting object-store faults (testing only)");
        let seed = rand::random();
        store = Arc::new(floe_broker::fault::FaultyStore::new(store).with_random_faults(rate, seed));
    }
    if let Some((after, length)) = args.test_store_outage {
        tracing::warn!(
            after_ms = after,
            for_ms = length,
            "the object store will be unreachable for a while (testing only)"
        );
        let faulty = floe_broker::fault::FaultyStore::new(store);
        let start = floe_broker::clock::now_ms() + after;
        faulty.unavailable_between(start, start + length);
        store = Arc::new(faulty);
    }
    // Refuse an unusable advertise URL or certificate before binding anything.
    args.advertised_url(args.listen)?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(floe_agent::api::Tls::load(cert, key)?)),
        _ => None,
    };
    let listener = floe_agent::api::bind(args.listen)?;
    let addr = listener.local_addr()?;
    tracing::info!(store = %args.store, "opening bucket");
    let advertised = args.advertised_url(addr)?;
    // From here a SIGHUP (a certificate or token rotation reaching an agent
    // still opening its bucket) must not kill it: taking the signal over now
    // replaces the default action; the server reloads on later ones.
    #[cfg(unix)]
    drop(tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()));
    let agent = Agent::start(args, store, &advertised).await?;
    // Scripts and tests wait for this line on stdout.
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("floe-agent listening on {scheme}://{addr}");
    floe_agent::api::serve(agent, listener, tls, floe_broker::shutdown::signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

#[allow(clippy::disallowed_methods)] // a token's secret is the machine's randomness, not an injected one
fn new_token(args: NewTokenArgs) -> ExitCode {
    let secret: [u8; 32] = rand::random();
    let (token, entry) =
        floe_agent::auth::new_token(&secret, &args.name, args.admin, &args.produce, &args.consume, &args.group);
    println!("{token}");
    eprint!("# add to the tokens file (--auth-tokens), then send the agents SIGHUP:\n{entry}");
    ExitCode::SUCCESS
}

/// Exit status 0: safe; 1: unsafe; 2 (from `main`): the check could not run.
async fn check_store(args: CheckStoreArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let store = floe_broker::store::open(&args.store)?;
    let report = floe_broker::conformance::race_create_only(store, args.rounds.max(1), args.writers.max(2)).await;
    for (i, round) in report.rounds.iter().enumerate() {
        let errors =
            if round.errors.is_empty() { String::new() } else { format!(", errors: {}", round.errors.join("; ")) };
        println!("round {:>3}: {} of {} create-only PUTs won{errors}", i + 1, round.winners, report.writers);
    }
    if report.safe() {
        println!("{}: safe: exactly one create-only PUT won each of {} rounds", args.store, report.rounds.len());
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "{}: unsafe: this store does not honour If-None-Match: * under concurrency; Floe must not run on it",
            args.store
        );
        Ok(ExitCode::from(1))
    }
}
