//! `floe-bench`'s text output: a header naming the run, each scenario's
//! figures as it finishes, and the summary table. Each function returns
//! whole lines, newline included.

use std::fmt::Write;

use crate::cluster::Setup;
use crate::floor::FloorResult;
use crate::load::Load;
use crate::scenarios::{ConsumeResult, E2eResult, ProduceResult};

use super::MIB;
use super::summary::Summary;

/// `writeln!` into a `String` cannot fail.
macro_rules! push_line {
    ($out:expr, $($arg:tt)*) => {
        let _ = writeln!($out, $($arg)*);
    };
}

/// The run's settings, before anything runs.
pub fn header(scenario: &str, setup: &Setup, load: &Load) -> String {
    let mut out = String::new();
    push_line!(
        out,
        "{}: profile {}, flush {} ms / {:.1} MiB, {} producers × {} records of {} B per request, {} partitions, keys {:?}, {}",
        scenario,
        setup.profile,
        setup.flush_interval_ms,
        setup.flush_bytes as f64 / MIB,
        load.producers,
        load.records_per_request,
        load.record_bytes,
        load.partitions,
        load.keys,
        rate(load.rate, "requests/s fixed rate")
    );
    if let Some(cpus) = &setup.agent_cpus {
        push_line!(out, "agent confined to CPUs {cpus}");
    }
    out
}

/// A fixed rate, or "closed loop" without one.
fn rate(rate: Option<f64>, unit: &str) -> String {
    rate.map_or("closed loop".to_owned(), |r| format!("{r} {unit}"))
}

pub fn produce(r: &ProduceResult) -> String {
    let mut out = String::new();
    push_line!(
        out,
        "produce: {:.1} MiB/s payload ({:.0} requests/s, {} records, {} errors of which {} 503) over {:.1} s{}",
        r.mib_s,
        r.requests_per_s,
        r.records,
        r.errors,
        r.overloaded,
        r.seconds,
        if r.fixed_rate { ", latency from due times" } else { "" }
    );
    push_line!(out, "  latency          {}", r.latency);
    if let Some(s) = r.spool_drained_s {
        push_line!(out, "  spool            caught up {s:.1} s after the store came back (oldest flush < 1 s old)");
    }
    push_line!(
        out,
        "  segments         {} PUTs, mean {:.2} MiB, {:.1} MiB/s stored; {} log PUTs",
        r.segment_puts,
        r.mean_segment_bytes as f64 / MIB,
        r.segment_mib_s,
        r.log_puts
    );
    let g = &r.requests_per_gib;
    push_line!(
        out,
        "  per GiB written  {:.0} PUT, {:.0} GET, {:.0} LIST, {:.0} DELETE = ${:.4}",
        g.put,
        g.get,
        g.list,
        g.delete,
        g.dollars
    );
    if let (Some(cpu), Some(per_gib), Some(rate)) = (r.agent_cpu_seconds, r.agent_cpu_s_per_gib, r.mib_s_per_cpu_s) {
        push_line!(out, "  agent CPU        {cpu:.2} s = {per_gib:.1} s per GiB = {rate:.1} MiB per CPU-second");
    }
    out
}

pub fn floor(f: &FloorResult) -> String {
    let mut out = String::new();
    push_line!(
        out,
        "floor: {:.2} MiB objects, {} at a time: PUT {:.1} MiB/s, GET {:.1} MiB/s",
        f.object_bytes as f64 / MIB,
        f.concurrency,
        f.put_mib_s,
        f.get_mib_s
    );
    push_line!(out, "  PUT              {}", f.put);
    push_line!(out, "  create-only PUT  {}", f.conditional_put);
    push_line!(out, "  ranged GET       {}", f.get);
    out
}

pub fn e2e(r: &E2eResult) -> String {
    let mut out = String::new();
    push_line!(
        out,
        "e2e: {} records produced, {} consumed ({})",
        r.produced_records,
        r.consumed_records,
        rate(r.rate, "requests/s")
    );
    push_line!(out, "  produce latency  {}", r.produce);
    push_line!(out, "  e2e latency      {}", r.e2e);
    out
}

pub fn consume(r: &ConsumeResult) -> String {
    let mut out = String::new();
    push_line!(
        out,
        "consume (tail, on the writing agent): {:.1} MiB/s, {} of {} records, {:.0} segment GETs per GiB read ({:.0} with log polling)",
        r.tail_mib_s,
        r.tail_records,
        r.tail_produced_records,
        r.tail_segment_get_per_gib,
        r.tail_get_per_gib
    );
    if let Some(c) = &r.compaction {
        push_line!(
            out,
            "compacted before the catch-up: {} batches in {} merge runs, {} compactor cycles; {}",
            c.merged_batches,
            c.merged_runs,
            c.cycles,
            if c.segment_gets == 0 {
                "its segment GETs not reported".to_owned()
            } else {
                format!(
                    "{} segment GETs for {:.1} MiB read ({:.0} per GiB read)",
                    c.segment_gets,
                    c.segment_get_bytes as f64 / MIB,
                    c.segment_gets as f64 / (c.segment_get_bytes as f64 / MIB / 1024.0)
                )
            }
        );
    }
    push_line!(
        out,
        "consume (catch-up, fresh agent): {:.1} MiB/s over {:.1} MiB, {:.1} GETs per GiB, ${:.5} per GiB{}",
        r.catchup_mib_s,
        r.catchup_bytes as f64 / MIB,
        r.catchup_get_per_gib,
        r.catchup_dollars_per_gib,
        r.catchup_agent_cpu_s_per_gib.map_or(String::new(), |c| format!(", {c:.1} agent CPU s per GiB"))
    );
    out
}

/// Figures as `1.0 and 2.0` (one decimal): what a mean was taken of.
fn runs_text(runs: &[f64]) -> String {
    runs.iter().map(|r| format!("{r:.1}")).collect::<Vec<_>>().join(" and ")
}

/// The headline figures as a table, after a blank line.
pub fn summary(s: &Summary) -> String {
    let f = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
    let mut out = String::new();
    push_line!(out, "\nsummary ({}, profile {}, flush {} ms)", s.scenario, s.store_profile, s.flush_interval_ms);
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
        ("CPU floor, MiB per core-s", f(s.cpu_floor_mib_s)),
        ("CPU floor runs", s.cpu_floor_runs_mib_s.as_ref().map_or("-".to_owned(), |runs| runs_text(runs))),
        ("agent CPU / CPU floor", f(s.agent_cpu_to_floor)),
        ("zstd share of agent CPU", f(s.agent_compression_share)),
        ("zstd share of floor CPU", f(s.cpu_floor_compression_share)),
        ("ratio, machine speed equal", f(s.agent_cpu_to_floor_at_equal_machine_speed)),
        ("ratio, zstd speed equal", f(s.agent_cpu_to_floor_at_equal_zstd_speed)),
        ("CPU floor + store writes", f(s.cpu_floor_with_store_mib_s)),
        ("agent CPU / that floor", f(s.agent_cpu_to_floor_with_store)),
        ("PUTs per GiB written", f(s.put_per_gib)),
        ("GETs per GiB read", f(s.get_per_gib)),
        ("tail segment GETs per GiB", f(s.tail_get_per_gib)),
        ("$ per GiB written", f(s.dollars_per_gib_written)),
        ("$ per GiB read", f(s.dollars_per_gib_read)),
    ];
    for (k, v) in rows {
        push_line!(out, "  {k:<26} {v:>10}");
    }
    push_line!(out, "  {}", s.price_table);
    out
}
