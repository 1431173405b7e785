//! floe-bench: named measurement scenarios against an agent it starts itself
//! on a temporary local store (or a running one, `--target`):
//! `floor` (the raw store), `produce`, `consume` (tail and catch-up), `e2e`
//! (produce to consume latency), `all` (the four in one run, one JSON), and
//! `metadata` (metadata PUTs per second by cluster size, lease off and on).

// The bench and the checker are clients of Floe: they use the machine's
// clock and randomness (clippy.toml keeps those out of Floe itself).
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use floe_bench::cluster::{Cluster, Setup};
use floe_bench::floor::{self, FloorResult};
use floe_bench::load::{Keys, Load};
use floe_bench::metadata::{self, MetadataOptions};
use floe_bench::procs::Err;
use floe_bench::report::{self, MIB};
use floe_bench::scenarios::{self, ConsumeResult, E2eResult, ProduceResult};
use floe_broker::latency::Profile;
use serde::Serialize;

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
    /// Seed for record contents and store latency samples.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the latency distribution (produce, e2e) as an SVG chart here.
    #[arg(long)]
    svg: Option<PathBuf>,
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

/// The JSON document: headline figures at the top level, details below.
#[derive(Default, Serialize)]
struct Summary {
    scenario: String,
    store_profile: String,
    flush_interval_ms: u64,
    flush_bytes: u64,
    producers: usize,
    record_bytes: usize,
    records_per_request: usize,
    partitions: u32,
    rate: Option<f64>,
    produce_mib_s: Option<f64>,
    produce_p50_ms: Option<f64>,
    produce_p99_ms: Option<f64>,
    e2e_p50_ms: Option<f64>,
    e2e_p99_ms: Option<f64>,
    /// Raw PUT bandwidth at 8 MiB objects (or the largest floor size).
    floor_put_mib_s: Option<f64>,
    /// produce_mib_s / floor_put_mib_s.
    produce_to_floor: Option<f64>,
    /// flush interval + PUT p99 (segment-sized) + create-only PUT p99 + 5 ms.
    p99_budget_ms: Option<f64>,
    agent_cpu_s_per_gib: Option<f64>,
    mib_s_per_agent_cpu_s: Option<f64>,
    /// All object-store PUTs per GiB of payload written.
    put_per_gib: Option<f64>,
    /// Object-store GETs per GiB read by a fresh (cold) agent catching up;
    /// in `produce` alone, GETs per GiB written.
    get_per_gib: Option<f64>,
    /// Segment GETs on the writing agent per GiB its tail consumers read.
    tail_get_per_gib: Option<f64>,
    dollars_per_gib_written: Option<f64>,
    dollars_per_gib_read: Option<f64>,
    price_table: String,
    produce: Option<ProduceResult>,
    floor: Vec<FloorResult>,
    e2e: Option<E2eResult>,
    consume: Option<ConsumeResult>,
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

fn write_file(path: &PathBuf, bytes: &[u8]) -> Result<(), Err> {
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()).into())
}

async fn run(which: Which, c: Common, bin_dir: &std::path::Path, json: Option<PathBuf>) -> Result<(), Err> {
    let dir = tempfile::tempdir()?;
    let setup = Setup {
        target: c.target.clone(),
        dir: dir.path().to_path_buf(),
        bin_dir: bin_dir.to_path_buf(),
        store: c.store.clone(),
        profile: c.store_profile,
        flush_interval_ms: c.flush_interval_ms,
        flush_bytes: c.flush_bytes,
        seed: c.seed,
    };
    let load = Load {
        producers: c.producers.max(1),
        record_bytes: c.record_bytes.max(1),
        records_per_request: c.records_per_request.max(1),
        partitions: c.partitions.max(1),
        keys: c.keys,
        rate: c.rate,
        duration: Duration::from_secs(c.duration.max(1)),
    };
    let mut s = Summary {
        scenario: format!("{which:?}").to_lowercase(),
        store_profile: c.store_profile.to_string(),
        flush_interval_ms: c.flush_interval_ms,
        flush_bytes: c.flush_bytes,
        producers: load.producers,
        record_bytes: load.record_bytes,
        records_per_request: load.records_per_request,
        partitions: load.partitions,
        rate: load.rate,
        price_table: report::price_table(),
        ..Summary::default()
    };
    println!(
        "{}: profile {}, flush {} ms / {:.1} MiB, {} producers × {} records of {} B per request, {} partitions, keys {:?}, {}",
        s.scenario,
        c.store_profile,
        c.flush_interval_ms,
        c.flush_bytes as f64 / MIB,
        load.producers,
        load.records_per_request,
        load.record_bytes,
        load.partitions,
        load.keys,
        load.rate.map_or("closed loop".to_owned(), |r| format!("{r} requests/s fixed rate"))
    );
    let needs_agent = which != Which::Floor || c.store.is_none();
    let cluster = if needs_agent && (which != Which::Floor) { Some(Cluster::start(&setup).await?) } else { None };
    let store_url = c
        .store
        .clone()
        .or_else(|| cluster.as_ref().and_then(Cluster::store_url))
        .unwrap_or_else(|| format!("file://{}", dir.path().join("store").display()));
    if which == Which::Floor {
        std::fs::create_dir_all(dir.path().join("store"))?;
    }
    let mut produce_hist = None;
    let mut e2e_hist = None;

    if let (Some(cluster), Which::Produce | Which::All) = (&cluster, which) {
        let (r, hist) = scenarios::produce(cluster, &load, c.seed).await?;
        print_produce(&r);
        if r.requests == 0 {
            return Err("produce: no request succeeded".into());
        }
        s.produce_mib_s = Some(r.mib_s);
        s.produce_p50_ms = Some(r.latency.p50_ms);
        s.produce_p99_ms = Some(r.latency.p99_ms);
        s.agent_cpu_s_per_gib = r.agent_cpu_s_per_gib;
        s.mib_s_per_agent_cpu_s = r.mib_s_per_cpu_s;
        s.put_per_gib = Some(r.requests_per_gib.put);
        s.get_per_gib = Some(r.requests_per_gib.get);
        s.dollars_per_gib_written = Some(r.requests_per_gib.dollars);
        produce_hist = Some(hist);
        s.produce = Some(r);
    }

    if matches!(which, Which::Floor | Which::Produce | Which::All) {
        let mut sizes = c.floor_bytes.clone();
        if sizes.is_empty() {
            if let Some(p) = &s.produce
                && p.mean_segment_bytes > 0
                && p.mean_segment_bytes != 8 * 1024 * 1024
            {
                sizes.push(p.mean_segment_bytes);
            }
            sizes.push(8 * 1024 * 1024);
        }
        for size in sizes {
            eprintln!(
                "floor: {size} B objects, {} at a time, {} s per operation",
                c.floor_concurrency, c.floor_seconds
            );
            let f = floor::floor(
                &store_url,
                c.store_profile,
                c.seed,
                size,
                c.floor_concurrency,
                Duration::from_secs(c.floor_seconds.max(1)),
            )
            .await?;
            print_floor(&f);
            if f.put_mib_s <= 0.0 {
                return Err("floor: zero PUT throughput".into());
            }
            s.floor.push(f);
        }
        let biggest = s.floor.iter().max_by_key(|f| f.object_bytes);
        s.floor_put_mib_s = biggest.map(|f| f.put_mib_s);
        if let (Some(p), Some(f)) = (&s.produce, biggest) {
            s.produce_to_floor = Some(p.mib_s / f.put_mib_s);
            // The segment-sized floor when there is one, else the biggest.
            let seg = s.floor.iter().find(|f| f.object_bytes == p.mean_segment_bytes).unwrap_or(f);
            s.p99_budget_ms = Some(c.flush_interval_ms as f64 + seg.put.p99_ms + seg.conditional_put.p99_ms + 5.0);
        }
    }

    if let (Some(cluster), Which::E2e | Which::All) = (&cluster, which) {
        let e2e_load = if which == Which::All { Load { rate: Some(c.e2e_rate), ..load.clone() } } else { load.clone() };
        let (r, ph, eh) = scenarios::e2e(cluster, &e2e_load, c.seed.wrapping_add(1000)).await?;
        println!(
            "e2e: {} records produced, {} consumed ({})",
            r.produced_records,
            r.consumed_records,
            e2e_load.rate.map_or("closed loop".to_owned(), |r| format!("{r} requests/s"))
        );
        println!("  produce latency  {}", r.produce);
        println!("  e2e latency      {}", r.e2e);
        if r.consumed_records == 0 {
            return Err("e2e: nothing consumed".into());
        }
        s.e2e_p50_ms = Some(r.e2e.p50_ms);
        s.e2e_p99_ms = Some(r.e2e.p99_ms);
        if which == Which::E2e {
            s.produce_p50_ms = Some(r.produce.p50_ms);
            s.produce_p99_ms = Some(r.produce.p99_ms);
            produce_hist = Some(ph);
        }
        e2e_hist = Some(eh);
        s.e2e = Some(r);
    }

    if let (Some(cluster), Which::Consume | Which::All) = (&cluster, which) {
        let r = scenarios::consume_scenario(cluster, &load, c.seed.wrapping_add(2000)).await?;
        println!(
            "consume (tail, on the writing agent): {:.1} MiB/s, {} of {} records, {:.0} segment GETs per GiB read ({:.0} with log polling)",
            r.tail_mib_s, r.tail_records, r.tail_produced_records, r.tail_segment_get_per_gib, r.tail_get_per_gib
        );
        println!(
            "consume (catch-up, fresh agent): {:.1} MiB/s over {:.1} MiB, {:.1} GETs per GiB, ${:.5} per GiB{}",
            r.catchup_mib_s,
            r.catchup_bytes as f64 / MIB,
            r.catchup_get_per_gib,
            r.catchup_dollars_per_gib,
            r.catchup_agent_cpu_s_per_gib.map_or(String::new(), |c| format!(", {c:.1} agent CPU s per GiB"))
        );
        if r.tail_records == 0 || r.catchup_bytes == 0 {
            return Err("consume: nothing consumed".into());
        }
        s.get_per_gib = Some(r.catchup_get_per_gib);
        s.tail_get_per_gib = Some(r.tail_segment_get_per_gib);
        s.dollars_per_gib_read = Some(r.catchup_dollars_per_gib);
        s.consume = Some(r);
    }
    if let Some(cluster) = cluster {
        cluster.stop().await;
    }

    print_summary(&s);
    if let Some(path) = json {
        write_file(&path, &serde_json::to_vec_pretty(&s)?)?;
    }
    if let Some(path) = &c.svg {
        let title = format!(
            "Floe latency: profile {}, flush {} ms, {} B records",
            c.store_profile, c.flush_interval_ms, load.record_bytes
        );
        let mut series = Vec::new();
        if let Some(h) = &produce_hist {
            series.push(("produce", h));
        }
        if let Some(h) = &e2e_hist {
            series.push(("produce→consume", h));
        }
        write_file(path, report::latency_svg(&title, &series).as_bytes())?;
    }
    Ok(())
}

fn print_produce(r: &ProduceResult) {
    println!(
        "produce: {:.1} MiB/s payload ({:.0} requests/s, {} records, {} errors) over {:.1} s{}",
        r.mib_s,
        r.requests_per_s,
        r.records,
        r.errors,
        r.seconds,
        if r.fixed_rate { ", latency from due times" } else { "" }
    );
    println!("  latency          {}", r.latency);
    println!(
        "  segments         {} PUTs, mean {:.2} MiB, {:.1} MiB/s stored; {} log PUTs",
        r.segment_puts,
        r.mean_segment_bytes as f64 / MIB,
        r.segment_mib_s,
        r.log_puts
    );
    let g = &r.requests_per_gib;
    println!(
        "  per GiB written  {:.0} PUT, {:.0} GET, {:.0} LIST, {:.0} DELETE = ${:.4}",
        g.put, g.get, g.list, g.delete, g.dollars
    );
    if let (Some(cpu), Some(per_gib), Some(rate)) = (r.agent_cpu_seconds, r.agent_cpu_s_per_gib, r.mib_s_per_cpu_s) {
        println!("  agent CPU        {cpu:.2} s = {per_gib:.1} s per GiB = {rate:.1} MiB per CPU-second");
    }
}

fn print_floor(f: &FloorResult) {
    println!(
        "floor: {:.2} MiB objects, {} at a time: PUT {:.1} MiB/s, GET {:.1} MiB/s",
        f.object_bytes as f64 / MIB,
        f.concurrency,
        f.put_mib_s,
        f.get_mib_s
    );
    println!("  PUT              {}", f.put);
    println!("  create-only PUT  {}", f.conditional_put);
    println!("  ranged GET       {}", f.get);
}

fn print_summary(s: &Summary) {
    let f = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
    println!("\nsummary ({}, profile {}, flush {} ms)", s.scenario, s.store_profile, s.flush_interval_ms);
    let rows = [
        ("produce MiB/s", f(s.produce_mib_s)),
        ("floor PUT MiB/s (8 MiB)", f(s.floor_put_mib_s)),
        ("produce / floor", f(s.produce_to_floor)),
        ("produce p50 ms", f(s.produce_p50_ms)),
        ("produce p99 ms", f(s.produce_p99_ms)),
        ("p99 budget ms", f(s.p99_budget_ms)),
        ("e2e p50 ms", f(s.e2e_p50_ms)),
        ("e2e p99 ms", f(s.e2e_p99_ms)),
        ("agent CPU s per GiB", f(s.agent_cpu_s_per_gib)),
        ("MiB per agent CPU-s", f(s.mib_s_per_agent_cpu_s)),
        ("PUTs per GiB written", f(s.put_per_gib)),
        ("GETs per GiB read", f(s.get_per_gib)),
        ("tail segment GETs per GiB", f(s.tail_get_per_gib)),
        ("$ per GiB written", f(s.dollars_per_gib_written)),
        ("$ per GiB read", f(s.dollars_per_gib_read)),
    ];
    for (k, v) in rows {
        println!("  {k:<26} {v:>10}");
    }
    println!("  {}", s.price_table);
}

async fn run_metadata(
    agents: Vec<usize>,
    duration: u64,
    producers_per_agent: usize,
    flush_interval_ms: u64,
    group_commit_ms: Vec<u64>,
    bin_dir: &std::path::Path,
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
