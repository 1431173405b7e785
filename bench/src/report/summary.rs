//! `floe-bench`'s JSON document: the run's settings and headline figures at
//! the top level, each scenario's detailed result below.

use crate::cpu_floor::CpuFloorResult;
use serde::Serialize;

use crate::cluster::Setup;
use crate::floor::FloorResult;
use crate::load::Load;
use crate::scenarios::{ConsumeResult, E2eResult, ProduceResult};

use super::price_table;

/// Each scenario's result; `None` (or empty) where it did not run.
#[derive(Clone, Debug, Default)]
pub struct Results {
    pub produce: Option<ProduceResult>,
    pub floor: Vec<FloorResult>,
    pub cpu_floor: Option<CpuFloorResult>,
    pub e2e: Option<E2eResult>,
    pub consume: Option<ConsumeResult>,
}

/// The JSON document: headline figures at the top level, details below.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub store_profile: String,
    pub flush_interval_ms: u64,
    pub flush_bytes: u64,
    pub producers: usize,
    pub record_bytes: usize,
    pub records_per_request: usize,
    pub partitions: u32,
    pub rate: Option<f64>,
    /// CPUs the agent was confined to (`--agent-cpus`), if any.
    pub agent_cpus: Option<String>,
    pub produce_mib_s: Option<f64>,
    pub produce_p50_ms: Option<f64>,
    pub produce_p99_ms: Option<f64>,
    pub e2e_p50_ms: Option<f64>,
    pub e2e_p99_ms: Option<f64>,
    /// Raw PUT bandwidth at 8 MiB objects (or the largest floor size).
    pub floor_put_mib_s: Option<f64>,
    /// produce_mib_s / floor_put_mib_s.
    pub produce_to_floor: Option<f64>,
    /// flush interval + PUT p99 (segment-sized) + create-only PUT p99 + 5 ms.
    pub p99_budget_ms: Option<f64>,
    pub agent_cpu_s_per_gib: Option<f64>,
    pub mib_s_per_agent_cpu_s: Option<f64>,
    /// The same bodies parsed, compressed and checksummed on one thread,
    /// per CPU-second: the mean of `cpu_floor_runs_mib_s`.
    pub cpu_floor_mib_s: Option<f64>,
    /// Each measurement of the CPU floor: before the load and after it when
    /// the agent is confined to CPUs (then on those), else after it.
    pub cpu_floor_runs_mib_s: Option<Vec<f64>>,
    /// mib_s_per_agent_cpu_s / cpu_floor_mib_s.
    pub agent_cpu_to_floor: Option<f64>,
    /// The share of the agent's CPU time spent compressing (0 to 1).
    pub agent_compression_share: Option<f64>,
    /// The same share of the CPU floor's.
    pub cpu_floor_compression_share: Option<f64>,
    /// agent_compression_share / cpu_floor_compression_share: the ratio
    /// with the agent's CPU time per MiB scaled by how much slower (or
    /// faster) its zstd ran than the floor's, the same code on the same
    /// bytes. What agent_cpu_to_floor would be were the machine as fast
    /// during the load as during the floor, if its speed moves all code
    /// alike (docs/benchmarks.md, decision 0027).
    pub agent_cpu_to_floor_at_equal_machine_speed: Option<f64>,
    /// The ratio were only the agent's zstd as fast as the floor's, the rest
    /// of its CPU time unchanged: r / (1 - a + f·r), for the ratio r and
    /// the agent's and the floor's compression shares a and f. At most the
    /// one above when the agent's zstd was the slower.
    pub agent_cpu_to_floor_at_equal_zstd_speed: Option<f64>,
    /// The CPU floor with its segments also written to the run's store.
    pub cpu_floor_with_store_mib_s: Option<f64>,
    /// mib_s_per_agent_cpu_s / cpu_floor_with_store_mib_s.
    pub agent_cpu_to_floor_with_store: Option<f64>,
    /// All object-store PUTs per GiB of payload written.
    pub put_per_gib: Option<f64>,
    /// Object-store GETs per GiB read by a fresh (cold) agent catching up;
    /// in `produce` alone, GETs per GiB written.
    pub get_per_gib: Option<f64>,
    /// Segment GETs on the writing agent per GiB its tail consumers read.
    pub tail_get_per_gib: Option<f64>,
    pub dollars_per_gib_written: Option<f64>,
    pub dollars_per_gib_read: Option<f64>,
    pub price_table: String,
    pub produce: Option<ProduceResult>,
    pub floor: Vec<FloorResult>,
    pub e2e: Option<E2eResult>,
    pub consume: Option<ConsumeResult>,
}

impl Summary {
    /// The summary of `scenario` run with `setup` and `load`: every headline
    /// figure is derived here from the detailed results.
    pub fn new(scenario: &str, setup: &Setup, load: &Load, results: Results) -> Self {
        let Results { produce, floor, cpu_floor, e2e, consume } = results;
        let per_cpu_s = produce.as_ref().and_then(|p| p.mib_s_per_cpu_s);
        let cpu_floor_mib_s = cpu_floor.as_ref().map(|f| f.mib_per_cpu_s);
        let with_store_mib_s = cpu_floor.as_ref().and_then(|f| f.with_store_mib_per_cpu_s);
        let agent_share = produce.as_ref().and_then(|p| p.agent_compression_share).filter(|s| *s > 0.0);
        let ratio = per_cpu_s.zip(cpu_floor_mib_s).map(|(agent, floor)| agent / floor);
        let floor_share = cpu_floor.as_ref().and_then(|f| f.compression_share).filter(|s| *s > 0.0);
        let produce_latency = produce.as_ref().map(|p| p.latency).or(e2e.as_ref().map(|e| e.produce));
        let per_gib_written = produce.as_ref().map(|p| p.requests_per_gib);
        let biggest = floor.iter().max_by_key(|f| f.object_bytes);
        let (produce_to_floor, p99_budget_ms) = match (&produce, biggest) {
            (Some(p), Some(f)) => {
                // The segment-sized floor when there is one, else the biggest.
                let seg = floor.iter().find(|f| f.object_bytes == p.mean_segment_bytes).unwrap_or(f);
                let budget = setup.flush_interval_ms as f64 + seg.put.p99_ms + seg.conditional_put.p99_ms + 5.0;
                (Some(p.mib_s / f.put_mib_s), Some(budget))
            }
            _ => (None, None),
        };
        Self {
            scenario: scenario.to_owned(),
            store_profile: setup.profile.to_string(),
            flush_interval_ms: setup.flush_interval_ms,
            flush_bytes: setup.flush_bytes,
            agent_cpus: setup.agent_cpus.clone(),
            producers: load.producers,
            record_bytes: load.record_bytes,
            records_per_request: load.records_per_request,
            partitions: load.partitions,
            rate: load.rate,
            produce_mib_s: produce.as_ref().map(|p| p.mib_s),
            produce_p50_ms: produce_latency.map(|l| l.p50_ms),
            produce_p99_ms: produce_latency.map(|l| l.p99_ms),
            e2e_p50_ms: e2e.as_ref().map(|e| e.e2e.p50_ms),
            e2e_p99_ms: e2e.as_ref().map(|e| e.e2e.p99_ms),
            floor_put_mib_s: biggest.map(|f| f.put_mib_s),
            produce_to_floor,
            p99_budget_ms,
            agent_cpu_s_per_gib: produce.as_ref().and_then(|p| p.agent_cpu_s_per_gib),
            mib_s_per_agent_cpu_s: per_cpu_s,
            cpu_floor_mib_s,
            cpu_floor_runs_mib_s: cpu_floor.as_ref().map(|f| f.runs_mib_per_cpu_s.clone()),
            agent_cpu_to_floor: ratio,
            agent_compression_share: agent_share,
            cpu_floor_compression_share: floor_share,
            agent_cpu_to_floor_at_equal_machine_speed: agent_share.zip(floor_share).map(|(a, f)| a / f),
            agent_cpu_to_floor_at_equal_zstd_speed: ratio
                .zip(agent_share.zip(floor_share))
                .map(|(r, (a, f))| r / (1.0 - a + f * r)),
            cpu_floor_with_store_mib_s: with_store_mib_s,
            agent_cpu_to_floor_with_store: per_cpu_s.zip(with_store_mib_s).map(|(agent, floor)| agent / floor),
            put_per_gib: per_gib_written.map(|g| g.put),
            get_per_gib: consume.as_ref().map(|c| c.catchup_get_per_gib).or(per_gib_written.map(|g| g.get)),
            tail_get_per_gib: consume.as_ref().map(|c| c.tail_segment_get_per_gib),
            dollars_per_gib_written: per_gib_written.map(|g| g.dollars),
            dollars_per_gib_read: consume.as_ref().map(|c| c.catchup_dollars_per_gib),
            price_table: price_table(),
            produce,
            floor,
            e2e,
            consume,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use floe_broker::latency::Profile;

    use super::*;
    use crate::load::Keys;
    use crate::report::{Latency, PerGib, Stats, text};

    fn setup() -> Setup {
        Setup {
            target: None,
            dir: PathBuf::new(),
            bin_dir: PathBuf::new(),
            store: None,
            profile: Profile::None,
            flush_interval_ms: 50,
            flush_bytes: 1 << 20,
            seed: 1,
            spool: false,
            acks: None,
            outage: None,
            agent_cpus: None,
        }
    }

    fn load() -> Load {
        Load {
            producers: 2,
            record_bytes: 100,
            records_per_request: 10,
            partitions: 2,
            keys: Keys::None,
            rate: Some(20.0),
            duration: Duration::from_secs(1),
        }
    }

    fn latency(p50_ms: f64, p99_ms: f64) -> Latency {
        Latency { count: 10, p50_ms, p99_ms, ..Latency::default() }
    }

    fn floor(object_bytes: u64, put_mib_s: f64, put_p99_ms: f64) -> FloorResult {
        FloorResult {
            object_bytes,
            concurrency: 4,
            put_mib_s,
            put: latency(1.0, put_p99_ms),
            conditional_put: latency(1.0, 3.0),
            get_mib_s: 100.0,
            get: latency(1.0, 2.0),
        }
    }

    fn produce() -> ProduceResult {
        ProduceResult {
            seconds: 1.0,
            requests: 10,
            errors: 0,
            overloaded: 0,
            records: 100,
            payload_bytes: 10_000,
            mib_s: 20.0,
            requests_per_s: 10.0,
            latency: latency(60.0, 70.0),
            fixed_rate: false,
            segment_mib_s: 1.0,
            segment_puts: 2,
            mean_segment_bytes: 1000,
            log_puts: 2,
            requests_per_gib: PerGib { put: 7.0, get: 1.0, list: 0.0, delete: 0.0, dollars: 0.5 },
            agent_cpu_seconds: Some(1.0),
            agent_cpu_s_per_gib: Some(2.0),
            mib_s_per_cpu_s: Some(3.0),
            agent_compression_share: Some(0.5),
            store: Stats::default(),
            spool_drained_s: None,
        }
    }

    #[test]
    fn produce_and_floor_give_the_ratio_and_the_budget() {
        let results = Results {
            produce: Some(produce()),
            floor: vec![floor(1000, 10.0, 20.0), floor(8 << 20, 80.0, 40.0)],
            ..Results::default()
        };
        let s = Summary::new("produce", &setup(), &load(), results);
        assert_eq!(s.produce_mib_s, Some(20.0));
        assert_eq!((s.produce_p50_ms, s.produce_p99_ms), (Some(60.0), Some(70.0)));
        // The biggest floor for the ratio, the segment-sized one for the budget.
        assert_eq!(s.floor_put_mib_s, Some(80.0));
        assert_eq!(s.produce_to_floor, Some(0.25));
        assert_eq!(s.p99_budget_ms, Some(50.0 + 20.0 + 3.0 + 5.0));
        assert_eq!((s.put_per_gib, s.get_per_gib, s.dollars_per_gib_written), (Some(7.0), Some(1.0), Some(0.5)));
        assert_eq!((s.e2e_p99_ms, s.tail_get_per_gib, s.dollars_per_gib_read), (None, None, None));
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["scenario"], "produce");
        assert_eq!(v["store_profile"], "none");
        assert_eq!(v["floor"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_cpu_floor_measured_twice_reports_both_runs_and_their_mean() {
        let mut floor = CpuFloorResult {
            record_bytes: 1024,
            records_per_request: 100,
            mib_per_cpu_s: 500.0,
            runs_mib_per_cpu_s: vec![500.0],
            cpus: Some("0".to_owned()),
            compression_share: Some(0.8),
            runs_compression_share: vec![0.8],
            requests: 10,
            with_store_mib_per_cpu_s: None,
        };
        let later =
            CpuFloorResult { runs_mib_per_cpu_s: vec![400.0], runs_compression_share: vec![0.6], ..floor.clone() };
        crate::cpu_floor::add_run(&mut floor, &later);
        let results = Results { produce: Some(produce()), cpu_floor: Some(floor), ..Results::default() };
        let s = Summary::new("produce", &setup(), &load(), results);
        assert_eq!(s.cpu_floor_mib_s, Some(450.0));
        assert_eq!(s.cpu_floor_runs_mib_s, Some(vec![500.0, 400.0]));
        // Compression is half the agent's CPU and 0.7 of the floor's (the
        // mean of its runs): at equal machine speed, 0.5 / 0.7; were only
        // zstd as fast, the agent's CPU per MiB would be the floor's zstd
        // time plus its own other half: r / (1 - 0.5 + 0.7 r).
        assert_eq!((s.agent_compression_share, s.cpu_floor_compression_share), (Some(0.5), Some(0.7)));
        assert!((s.agent_cpu_to_floor_at_equal_machine_speed.unwrap() - 0.5 / 0.7).abs() < 1e-12);
        let r = s.agent_cpu_to_floor.unwrap();
        assert!((s.agent_cpu_to_floor_at_equal_zstd_speed.unwrap() - r / (0.5 + 0.7 * r)).abs() < 1e-12);
        let table = text::summary(&s);
        assert!(table.contains(&format!("  ratio, machine speed equal {:>10.2}\n", 0.5 / 0.7)), "{table}");
        assert!(table.contains("  CPU floor, MiB per core-s      450.00\n"), "{table}");
        assert!(table.contains("  CPU floor runs             500.0 and 400.0\n"), "{table}");
    }

    #[test]
    fn e2e_alone_reports_its_own_produce_latency() {
        let e2e = E2eResult {
            rate: Some(20.0),
            produced_records: 10,
            consumed_records: 10,
            produce: latency(5.0, 9.0),
            e2e: latency(6.0, 11.0),
        };
        let s = Summary::new("e2e", &setup(), &load(), Results { e2e: Some(e2e), ..Results::default() });
        assert_eq!((s.produce_p50_ms, s.produce_p99_ms), (Some(5.0), Some(9.0)));
        assert_eq!((s.e2e_p50_ms, s.e2e_p99_ms), (Some(6.0), Some(11.0)));
        assert_eq!((s.produce_mib_s, s.floor_put_mib_s, s.p99_budget_ms), (None, None, None));
        assert!(
            text::e2e(s.e2e.as_ref().unwrap()).starts_with("e2e: 10 records produced, 10 consumed (20 requests/s)\n")
        );
        // Every row of the table, figures missing as "-".
        let table = text::summary(&s);
        assert!(table.starts_with("\nsummary (e2e, profile none, flush 50 ms)\n"));
        assert_eq!(table.lines().count(), 1 + 1 + 24 + 1);
        assert!(table.contains("  CPU floor runs                      -\n"));
        assert!(table.contains("  e2e p99 ms                      11.00\n"));
        assert!(table.contains("  produce MiB/s                       -\n"));
    }
}
