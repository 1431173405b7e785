//! floe-bench: named measurement scenarios against an agent it starts itself
//! on a temporary local store (or a running one, `--target`):
//! `floor` (the raw store), `produce`, `consume` (tail and catch-up), `e2e`
//! (produce to consume latency), `all` (the four in one run, one JSON), and
//! `metadata` (metadata PUTs per second by cluster size, lease off and on).

// The bench and the checker are clients of Floe: they use the machine's
// clock and randomness (clippy.toml keeps those out of Floe itself).
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use floe_bench::cluster::{Cluster, Setup};
use floe_bench::cpu_floor::{self, CpuFloorResult};
use floe_bench::floor::{self, FloorResult};
use floe_bench::load::{Keys, Load};
use floe_bench::metadata::{self, MetadataOptions};
use floe_bench::procs::Err;
use floe_bench::report::{self, Results, Summary, text};
use floe_bench::scenarios::{self, ConsumeResult, E2eResult, ProduceResult};
use floe_broker::latency::Profile;
use hdrhistogram::Histogram;

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

#[derive(Args, Clone, Debug)]
struct Common {
    /// Measure this running agent instead of starting one (no CPU figures;
    /// `floor` then needs `--store`).
    #[arg(long)]
    target: Option<String>,
    /// The store of the agent we start and of `floor` (`s3://bucket/prefix`
    /// with the usual `AWS_*` variables; default: a temporary local directory).
    #[arg(long)]
    store: Option<String>,
    /// Latency profile of the agent's store and of the floor: none, s3-standard, s3-express.
    #[arg(long, default_value = "none")]
    store_profile: Profile,
    #[arg(long, default_value_t = 250)]
    flush_interval_ms: u64,
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    flush_bytes: u64,
    /// Seconds of load per phase.
    #[arg(long, default_value_t = 15)]
    duration: u64,
    /// Concurrent producers (each one request in flight).
    #[arg(long, default_value_t = 8)]
    producers: usize,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    #[arg(long, default_value_t = 100)]
    records_per_request: usize,
    #[arg(long, default_value_t = 8)]
    partitions: u32,
    /// Record keys: none (sticky round-robin) or uniform:N.
    #[arg(long, default_value = "none")]
    keys: Keys,
    /// Produce requests per second over all producers (fixed rate, latency
    /// from each request's due time); default: as fast as answers come.
    #[arg(long)]
    rate: Option<f64>,
    /// Fixed rate for the `e2e` phase of `all` (requests per second).
    #[arg(long, default_value_t = 20.0)]
    e2e_rate: f64,
    /// Object sizes for `floor` in bytes (default: 8 MiB, plus the agent's
    /// mean segment size in `produce` and `all`).
    #[arg(long, value_delimiter = ',')]
    floor_bytes: Vec<u64>,
    /// Concurrent requests in `floor` (the agent's default --max-uploads).
    #[arg(long, default_value_t = 4)]
    floor_concurrency: usize,
    /// Seconds per floor measurement.
    #[arg(long, default_value_t = 3)]
    floor_seconds: u64,
    /// `floor`: also the CPU floor (the same request bodies parsed,
    /// compressed and checksummed on one thread, per CPU-second of it);
    /// `produce` and `all` always measure it.
    #[arg(long)]
    cpu: bool,
    /// Seed for record contents and store latency samples.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Start the agent with a spool (docs/spool.md), in the run's directory.
    #[arg(long)]
    spool: bool,
    /// The agent's --acks: committed (default) or local (needs --spool).
    #[arg(long)]
    acks: Option<String>,
    /// `AFTER_MS:FOR_MS`: the agent's store is unreachable for FOR_MS
    /// milliseconds from AFTER_MS after it starts; `produce` then reports
    /// when the spool drained.
    #[arg(long, value_parser = parse_outage)]
    store_outage: Option<(u64, u64)>,
    /// Write the latency distribution (produce, e2e) as an SVG chart here.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Confine the agents we start to these CPUs (`0`, `0-1`, as `taskset
    /// --cpu-list` reads them; Linux). Run the bench and the store on the
    /// others (`taskset -c 1 floe-bench …`) so that the agent's CPU figures
    /// are its own work, as the CPU floor's are. The CPU floor then runs on
    /// them as well, before the load and after (its figure is the mean).
    /// `consume`'s cold reader shares them with the writing agent.
    #[arg(long, conflicts_with = "target")]
    agent_cpus: Option<String>,
    /// `consume` and `all`: before the catch-up read, run `floe-compactor
    /// --once` on the store until a cycle merges nothing, so that the fresh
    /// agent reads a compacted bucket (the bench's agents run without a
    /// compactor).
    #[arg(long, conflicts_with = "target")]
    compact_first: bool,
}

#[derive(Subcommand)]
enum Scenario {
    /// Raw store PUT, create-only PUT and ranged GET: MiB/s and latency.
    Floor(Common),
    /// Producers against one agent: MiB/s, latency, requests and dollars per GiB, CPU per GiB; then the floor.
    Produce(Common),
    /// Tail consumers beside the producers, then a fresh agent catching up from offset 0.
    Consume(Common),
    /// Produce to consume latency from send times written in the records.
    E2e(Common),
    /// produce + floor + e2e + consume in one run, one JSON with every headline figure.
    All(Common),
    /// Producers while the agent's RSS is sampled, then idle: peak and idle
    /// RSS against buffer + cache + 128 MiB, and idle GETs per second.
    Memory {
        #[command(flatten)]
        common: Common,
        /// Seconds of idling after the load.
        #[arg(long, default_value_t = 10)]
        idle_seconds: u64,
    },
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
        .clone()
        .or_else(|| std::env::current_exe().ok().and_then(|p| p.parent().map(PathBuf::from)))
        .unwrap_or_else(|| PathBuf::from("target/debug"));
    let outcome = match cli.scenario {
        Scenario::Metadata { agents, duration, producers_per_agent, flush_interval_ms, group_commit_ms } => {
            run_metadata(agents, duration, producers_per_agent, flush_interval_ms, group_commit_ms, &bin_dir, cli.json)
                .await
        }
        Scenario::Memory { common, idle_seconds } => run_memory(common, idle_seconds, &bin_dir, cli.json).await,
        Scenario::Floor(c) => run(Which::Floor, c, &bin_dir, cli.json).await,
        Scenario::Produce(c) => run(Which::Produce, c, &bin_dir, cli.json).await,
        Scenario::Consume(c) => run(Which::Consume, c, &bin_dir, cli.json).await,
        Scenario::E2e(c) => run(Which::E2e, c, &bin_dir, cli.json).await,
        Scenario::All(c) => run(Which::All, c, &bin_dir, cli.json).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floe-bench: {e}");
            ExitCode::from(2)
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Which {
    Floor,
    Produce,
    Consume,
    E2e,
    All,
}

impl Which {
    /// The scenario's name, as on the command line.
    fn name(self) -> &'static str {
        match self {
            Which::Floor => "floor",
            Which::Produce => "produce",
            Which::Consume => "consume",
            Which::E2e => "e2e",
            Which::All => "all",
        }
    }
}

fn write_file(path: &PathBuf, bytes: &[u8]) -> Result<(), Err> {
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()).into())
}

impl Common {
    fn setup(&self, dir: &Path, bin_dir: &Path) -> Setup {
        Setup {
            target: self.target.clone(),
            dir: dir.to_path_buf(),
            bin_dir: bin_dir.to_path_buf(),
            store: self.store.clone(),
            profile: self.store_profile,
            flush_interval_ms: self.flush_interval_ms,
            flush_bytes: self.flush_bytes,
            seed: self.seed,
            spool: self.spool,
            acks: self.acks.clone(),
            outage: self.store_outage,
            agent_cpus: self.agent_cpus.clone(),
        }
    }

    fn load(&self) -> Load {
        Load {
            producers: self.producers.max(1),
            record_bytes: self.record_bytes.max(1),
            records_per_request: self.records_per_request.max(1),
            partitions: self.partitions.max(1),
            keys: self.keys,
            rate: self.rate,
            duration: Duration::from_secs(self.duration.max(1)),
        }
    }
}

/// Runs `which` (each of its scenarios in turn, printing each as it ends),
/// then prints the summary and writes the JSON and the chart.
async fn run(which: Which, c: Common, bin_dir: &Path, json: Option<PathBuf>) -> Result<(), Err> {
    let dir = tempfile::tempdir()?;
    let mut setup = c.setup(dir.path(), bin_dir);
    if which == Which::Floor {
        // No agent is started: nothing to confine, nothing to report.
        setup.agent_cpus = None;
    }
    if let Some(cpus) = &setup.agent_cpus {
        // Refused now, not after the load: the CPU floor runs on them too.
        cpu_floor::cpu_list(cpus)?;
    }
    let load = c.load();
    print!("{}", text::header(which.name(), &setup, &load));
    let cluster = if which == Which::Floor { None } else { Some(Cluster::start(&setup).await?) };
    let store_url = c
        .store
        .clone()
        .or_else(|| cluster.as_ref().and_then(Cluster::store_url))
        .unwrap_or_else(|| format!("file://{}", dir.path().join("store").display()));
    if which == Which::Floor {
        std::fs::create_dir_all(dir.path().join("store"))?;
    }
    let mut results = Results::default();
    let mut chart = Chart::default();

    // With the agent confined, the CPU floor runs on its CPUs, before its
    // load and after: this VM's speed drifts by up to ±17% within minutes.
    let confined = setup.agent_cpus.clone().filter(|_| matches!(which, Which::Produce | Which::All));
    let mut floor_before = None;
    if let (Some(cpus), Some(_)) = (&confined, &cluster) {
        floor_before = Some(cpu_floor_alone(&c, &load, Some(cpus.clone()), None).await?);
    }
    if let (Some(cluster), Which::Produce | Which::All) = (&cluster, which) {
        let (r, hist) = run_produce(cluster, &load, c.seed).await?;
        chart.produce = Some(hist);
        results.produce = Some(r);
    }
    if matches!(which, Which::Floor | Which::Produce | Which::All) {
        let sizes = floor::sizes(&c.floor_bytes, results.produce.as_ref().map(|p| p.mean_segment_bytes));
        results.floor = run_floor(&c, &store_url, sizes).await?;
    }
    if matches!(which, Which::Produce | Which::All) || (which == Which::Floor && c.cpu) {
        let segment_bytes = results.produce.as_ref().map_or(c.flush_bytes, |p| p.mean_segment_bytes);
        results.cpu_floor = Some(run_cpu_floor(&c, &load, &store_url, segment_bytes, floor_before, confined).await?);
    }
    if let (Some(cluster), Which::E2e | Which::All) = (&cluster, which) {
        let e2e_load = if which == Which::All { Load { rate: Some(c.e2e_rate), ..load.clone() } } else { load.clone() };
        let (r, produce_hist, e2e_hist) = run_e2e(cluster, &e2e_load, c.seed.wrapping_add(1000)).await?;
        // The produce scenario's latencies when it ran, else these.
        chart.produce.get_or_insert(produce_hist);
        chart.e2e = Some(e2e_hist);
        results.e2e = Some(r);
    }
    if let (Some(cluster), Which::Consume | Which::All) = (&cluster, which) {
        results.consume = Some(run_consume(cluster, &load, c.seed.wrapping_add(2000), c.compact_first).await?);
    }
    if let Some(cluster) = cluster {
        cluster.stop().await;
    }

    let summary = Summary::new(which.name(), &setup, &load, results);
    print!("{}", text::summary(&summary));
    if let Some(path) = json {
        write_file(&path, &serde_json::to_vec_pretty(&summary)?)?;
    }
    if let Some(path) = &c.svg {
        write_file(path, chart.svg(&setup, &load)?.as_bytes())?;
    }
    Ok(())
}

async fn run_produce(cluster: &Cluster, load: &Load, seed: u64) -> Result<(ProduceResult, Histogram<u64>), Err> {
    let (r, hist) = scenarios::produce(cluster, load, seed).await?;
    print!("{}", text::produce(&r));
    if r.requests == 0 {
        return Err("produce: no request succeeded".into());
    }
    Ok((r, hist))
}

async fn run_floor(c: &Common, store_url: &str, sizes: Vec<u64>) -> Result<Vec<FloorResult>, Err> {
    let mut results = Vec::new();
    for size in sizes {
        eprintln!("floor: {size} B objects, {} at a time, {} s per operation", c.floor_concurrency, c.floor_seconds);
        let duration = Duration::from_secs(c.floor_seconds.max(1));
        let f = floor::floor(store_url, c.store_profile, c.seed, size, c.floor_concurrency, duration).await?;
        print!("{}", text::floor(&f));
        if f.put_mib_s <= 0.0 {
            return Err("floor: zero PUT throughput".into());
        }
        results.push(f);
    }
    Ok(results)
}

/// The CPU floor on `cpus` (anywhere when `None`), with the bodies it used
/// (`bodies`, or made here).
async fn cpu_floor_alone(
    c: &Common,
    load: &Load,
    cpus: Option<String>,
    bodies: Option<Arc<Vec<Bytes>>>,
) -> Result<(Arc<Vec<Bytes>>, CpuFloorResult), Err> {
    let (seed, duration) = (c.seed, Duration::from_secs(c.floor_seconds.max(1)));
    let on = cpus.as_deref().map_or_else(|| "one core".to_owned(), |cpus| format!("CPUs {cpus}"));
    eprintln!("CPU floor: parse, compress and checksum produce bodies on {on} for {} s", duration.as_secs());
    let work = load.clone();
    let (bodies, f) = tokio::task::spawn_blocking(move || {
        let bodies = bodies.unwrap_or_else(|| Arc::new(cpu_floor::bodies(&work, seed)));
        cpu_floor::cpu_floor(&bodies, &work, duration, cpus.as_deref()).map(|f| (bodies, f))
    })
    .await
    .map_err(|e| format!("CPU floor: {e}"))??;
    println!(
        "CPU floor: {:.1} MiB of payload per CPU-second on {on} ({} requests of {} × {} B records)",
        f.mib_per_cpu_s, f.requests, f.records_per_request, f.record_bytes
    );
    Ok((bodies, f))
}

/// The CPU floor after the load (averaged with `before`, the one measured
/// before it, if any), then the floor with the store.
async fn run_cpu_floor(
    c: &Common,
    load: &Load,
    store_url: &str,
    segment_bytes: u64,
    before: Option<(Arc<Vec<Bytes>>, CpuFloorResult)>,
    cpus: Option<String>,
) -> Result<CpuFloorResult, Err> {
    let duration = Duration::from_secs(c.floor_seconds.max(1));
    let (bodies, mut f) = match before {
        Some((bodies, mut f)) => {
            let (_, after) = cpu_floor_alone(c, load, cpus, Some(bodies.clone())).await?;
            cpu_floor::add_run(&mut f, &after);
            println!("CPU floor: {:.1} MiB per CPU-second, the mean of before and after the load", f.mib_per_cpu_s);
            (bodies, f)
        }
        None => cpu_floor_alone(c, load, cpus, None).await?,
    };
    eprintln!(
        "CPU floor with the store: the same, in {segment_bytes} B segments written to the store, for {} s",
        duration.as_secs()
    );
    let store = floe_broker::store::open(store_url)?;
    f.with_store_mib_per_cpu_s = cpu_floor::cpu_floor_with_store(bodies, duration, store, segment_bytes).await?;
    if let Some(m) = f.with_store_mib_per_cpu_s {
        println!("CPU floor with the store: {m:.1} MiB of payload per CPU-second");
    }
    Ok(f)
}

async fn run_e2e(
    cluster: &Cluster,
    load: &Load,
    seed: u64,
) -> Result<(E2eResult, Histogram<u64>, Histogram<u64>), Err> {
    let (r, produce_hist, e2e_hist) = scenarios::e2e(cluster, load, seed).await?;
    print!("{}", text::e2e(&r));
    if r.consumed_records == 0 {
        return Err("e2e: nothing consumed".into());
    }
    Ok((r, produce_hist, e2e_hist))
}

async fn run_consume(cluster: &Cluster, load: &Load, seed: u64, compact_first: bool) -> Result<ConsumeResult, Err> {
    let r = scenarios::consume_scenario(cluster, load, seed, compact_first).await?;
    print!("{}", text::consume(&r));
    if r.tail_records == 0 || r.catchup_bytes == 0 {
        return Err("consume: nothing consumed".into());
    }
    Ok(r)
}

/// The latencies `--svg` charts.
#[derive(Default)]
struct Chart {
    produce: Option<Histogram<u64>>,
    e2e: Option<Histogram<u64>>,
}

impl Chart {
    fn svg(&self, setup: &Setup, load: &Load) -> Result<String, Err> {
        let title = format!(
            "Floe latency: profile {}, flush {} ms, {} B records",
            setup.profile, setup.flush_interval_ms, load.record_bytes
        );
        let named = [("produce", &self.produce), ("produce→consume", &self.e2e)];
        let series: Vec<_> = named.into_iter().filter_map(|(name, h)| h.as_ref().map(|h| (name, h))).collect();
        report::latency_svg(&title, &series)
    }
}

async fn run_metadata(
    agents: Vec<usize>,
    duration: u64,
    producers_per_agent: usize,
    flush_interval_ms: u64,
    group_commit_ms: Vec<u64>,
    bin_dir: &Path,
    json: Option<PathBuf>,
) -> Result<(), Err> {
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
            let dir = tempfile::tempdir()?;
            let opts = MetadataOptions {
                agents: n,
                commit_lease: lease,
                duration: Duration::from_secs(duration),
                producers_per_agent,
                flush_interval_ms,
                group_commit_ms: group,
                dir: dir.path().to_path_buf(),
                bin_dir: bin_dir.to_path_buf(),
            };
            let r = metadata::run(&opts).await.map_err(|e| format!("metadata with {n} agents, lease {lease}: {e}"))?;
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
    }
    if let Some(path) = json {
        write_file(&path, &serde_json::to_vec_pretty(&results)?)?;
    }
    Ok(())
}

/// `memory`: its own agent (so the RSS is of this run alone), then the text and JSON.
async fn run_memory(c: Common, idle_seconds: u64, bin_dir: &Path, json: Option<PathBuf>) -> Result<(), Err> {
    let dir = tempfile::tempdir()?;
    let setup = c.setup(dir.path(), bin_dir);
    let load = c.load();
    print!("{}", text::header("memory", &setup, &load));
    let cluster = Cluster::start(&setup).await?;
    let idle = Duration::from_secs(idle_seconds.max(1));
    let r = scenarios::memory::memory_scenario(&cluster, &load, idle, c.seed).await;
    cluster.stop().await;
    let r = r?;
    print!("{}", scenarios::memory::text(&r));
    if let Some(path) = json {
        write_file(&path, &serde_json::to_vec_pretty(&r)?)?;
    }
    Ok(())
}

fn parse_outage(s: &str) -> Result<(u64, u64), String> {
    let (after, length) = s.split_once(':').ok_or("expected AFTER_MS:FOR_MS")?;
    let ms = |v: &str| v.trim().parse::<u64>().map_err(|e| format!("{v:?}: {e}"));
    Ok((ms(after)?, ms(length)?))
}
