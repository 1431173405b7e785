//! The CPU floor: the work Floe cannot avoid for a produce request, done on
//! one core with nothing else in the way. The same request bodies the
//! `produce` scenario sends are parsed from JSON, their values copied into
//! records, and each request's records encoded as a segment batch (zstd and
//! CRC32C, as the agent's writer does). What the agent does beyond this
//! (HTTP, buffering, the commit, the store client) is its overhead; the
//! ratio of the agent's MiB per CPU-second to this floor says how much.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use bytes::Bytes;
use floe_broker::Record;
use floe_broker::segment::SegmentBuilder;
use serde::{Deserialize, Serialize};

use crate::load::{Bodies, Load};
use crate::procs::Err;
use crate::report::MIB;

#[derive(Clone, Debug, Serialize)]
pub struct CpuFloorResult {
    pub record_bytes: usize,
    pub records_per_request: usize,
    /// Payload (record values) MiB processed per second of one busy core.
    pub mib_per_cpu_s: f64,
    pub requests: u64,
}

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow)]
    records: Vec<InRecord<'a>>,
}

#[derive(Deserialize)]
struct InRecord<'a> {
    #[serde(borrow, default)]
    key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    value: Cow<'a, str>,
}

/// Distinct bodies prepared before the clock starts, cycled through: enough
/// that the CPU caches do not hold them all.
const BODIES_BYTES: usize = 64 << 20;

/// Parses, copies, compresses and checksums `load`'s produce bodies on this
/// thread for `duration`.
pub fn cpu_floor(load: &Load, seed: u64, duration: Duration) -> Result<CpuFloorResult, Err> {
    let mut maker = Bodies::new(load, seed);
    let mut bodies = Vec::new();
    let mut prepared = 0;
    while prepared < BODIES_BYTES {
        let body = maker.next(false);
        prepared += body.len();
        bodies.push(body);
    }
    let started = Instant::now();
    let (mut requests, mut payload) = (0u64, 0u64);
    for body in bodies.iter().cycle() {
        let parsed: Body<'_> = serde_json::from_slice(body)?;
        let records: Vec<Record> = parsed
            .records
            .iter()
            .map(|r| Record {
                key: r.key.as_ref().map(|k| Bytes::copy_from_slice(k.as_bytes())),
                value: Bytes::copy_from_slice(r.value.as_bytes()),
                timestamp: 0,
                headers: Vec::new(),
            })
            .collect();
        payload += records.iter().map(|r| r.value.len() as u64).sum::<u64>();
        let mut segment = SegmentBuilder::new();
        segment.add_batch("floor", 0, &records)?;
        std::hint::black_box(segment.finish_chunks()?);
        requests += 1;
        if started.elapsed() >= duration {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(CpuFloorResult {
        record_bytes: load.record_bytes,
        records_per_request: load.records_per_request,
        mib_per_cpu_s: payload as f64 / MIB / seconds,
        requests,
    })
}
