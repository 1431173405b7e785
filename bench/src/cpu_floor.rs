//! The CPU floor: the work Floe cannot avoid for a produce request, done on
//! one thread, per second of that thread's CPU time. With the agent
//! confined (`--agent-cpus`), on the agent's CPUs, before its load and
//! after (the figure is their mean). The same request bodies the
//! `produce` scenario sends are parsed from JSON, their values copied into
//! records, and each request's records encoded as a segment batch (zstd and
//! CRC32C, as the agent's writer does). What the agent does beyond this
//! (HTTP, buffering, the commit, the store client) is its overhead; the
//! ratio of the agent's MiB per CPU-second to this floor says how much.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use floe_broker::Record;
use floe_broker::segment::SegmentBuilder;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::load::{Bodies, Load};
use crate::procs::Err;
use crate::report::{MIB, cpu_seconds};

#[derive(Clone, Debug, Serialize)]
pub struct CpuFloorResult {
    pub record_bytes: usize,
    pub records_per_request: usize,
    /// Payload (record values) MiB processed per second of one busy core:
    /// the mean of `runs_mib_per_cpu_s`.
    pub mib_per_cpu_s: f64,
    /// Each measurement: with the agent confined to CPUs, one before its
    /// load and one after, on those CPUs; otherwise one after, anywhere.
    pub runs_mib_per_cpu_s: Vec<f64>,
    /// The CPUs the floor ran on, when confined (as `--agent-cpus`).
    pub cpus: Option<String>,
    /// The share of the floor's CPU time spent compressing (0 to 1), the
    /// mean of its runs' (none where compression cannot be timed).
    pub compression_share: Option<f64>,
    pub runs_compression_share: Vec<f64>,
    pub requests: u64,
    /// The same work with its segments also written to the run's store:
    /// MiB per CPU-second of the process ([`cpu_floor_with_store`]).
    pub with_store_mib_per_cpu_s: Option<f64>,
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

/// Parses, copies, compresses and checksums `bodies` (of `load`, from
/// [`bodies`]) on this thread for `duration`; confined to `cpus` (as
/// `taskset --cpu-list` reads them) while it runs, when given.
pub fn cpu_floor(bodies: &[Bytes], load: &Load, duration: Duration, cpus: Option<&str>) -> Result<CpuFloorResult, Err> {
    let mut f = on_cpus(cpus, || measure(bodies, load, duration))??;
    f.cpus = cpus.map(str::to_owned);
    Ok(f)
}

/// Adds a later measurement of the same floor: the figure becomes the mean
/// of all of them, so that one taken while the machine was slower or faster
/// than during the agent's load weighs half.
pub fn add_run(f: &mut CpuFloorResult, later: &CpuFloorResult) {
    let mean = |runs: &[f64]| runs.iter().sum::<f64>() / runs.len() as f64;
    f.runs_mib_per_cpu_s.extend(&later.runs_mib_per_cpu_s);
    f.runs_compression_share.extend(&later.runs_compression_share);
    f.requests += later.requests;
    f.mib_per_cpu_s = mean(&f.runs_mib_per_cpu_s);
    f.compression_share = (!f.runs_compression_share.is_empty()).then(|| mean(&f.runs_compression_share));
}

fn measure(bodies: &[Bytes], load: &Load, duration: Duration) -> Result<CpuFloorResult, Err> {
    let (started, cpu_start) = (Instant::now(), thread_cpu_seconds());
    let compressing_start = floe_broker::segment::thread_compression_cpu_micros();
    let (mut requests, mut payload) = (0u64, 0u64);
    for body in bodies.iter().cycle() {
        let mut segment = SegmentBuilder::new();
        payload += encode(body, &mut segment)?.0;
        std::hint::black_box(segment.finish_chunks()?);
        requests += 1;
        if started.elapsed() >= duration {
            break;
        }
    }
    // The thread's own CPU time where there is one: not the time it waited
    // for the CPU (another process on it, or the hypervisor where the
    // kernel accounts steal time).
    let seconds = cpu_start.zip(thread_cpu_seconds()).map_or_else(|| started.elapsed().as_secs_f64(), |(a, b)| b - a);
    let mib_per_cpu_s = payload as f64 / MIB / seconds.max(1e-9);
    // This thread's compressions only, over this thread's CPU time.
    let compressing = compressing_start.zip(floe_broker::segment::thread_compression_cpu_micros()).map(|(a, b)| b - a);
    let share = compressing.filter(|_| cpu_start.is_some()).map(|us| us as f64 / 1e6 / seconds.max(1e-9));
    Ok(CpuFloorResult {
        record_bytes: load.record_bytes,
        records_per_request: load.records_per_request,
        mib_per_cpu_s,
        runs_mib_per_cpu_s: vec![mib_per_cpu_s],
        cpus: None,
        compression_share: share,
        runs_compression_share: share.into_iter().collect(),
        requests,
        with_store_mib_per_cpu_s: None,
    })
}

/// The CPUs of a list as `taskset --cpu-list` reads it: `0`, `0-1`,
/// `0,2-3`, `0-6:2` (every second CPU from 0 to 6).
pub fn cpu_list(list: &str) -> Result<Vec<usize>, Err> {
    let bad = || format!("not a CPU list: {list:?} (taskset's form: 0, 0-1, 0,2-3 or 0-6:2; CPUs below 1024)");
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim) {
        let (range, stride) = part.split_once(':').unwrap_or((part, "1"));
        let (first, last) = range.split_once('-').unwrap_or((range, range));
        let number = |n: &str| n.trim().parse::<usize>().map_err(|_| bad());
        let (first, last, stride) = (number(first)?, number(last)?, number(stride)?);
        if first > last || last >= CPU_SETSIZE || stride == 0 {
            return Err(bad().into());
        }
        cpus.extend((first..=last).step_by(stride));
    }
    Ok(cpus)
}

/// The CPUs an affinity mask can name (glibc's `CPU_SETSIZE`).
const CPU_SETSIZE: usize = 1024;

/// This thread's CPU time so far, in seconds (Linux).
fn thread_cpu_seconds() -> Option<f64> {
    floe_broker::cpu_time::thread_ns().map(|ns| ns as f64 * 1e-9)
}

/// Runs `work` on this thread confined to `cpus`, then lets the thread run
/// where it could before (it may be a pool's, reused), even if `work`
/// panics.
#[cfg(target_os = "linux")]
fn on_cpus<T>(cpus: Option<&str>, work: impl FnOnce() -> T) -> Result<T, Err> {
    use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
    use nix::unistd::Pid;

    /// Puts the thread's affinity back when dropped.
    struct Restore(CpuSet);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = sched_setaffinity(Pid::from_raw(0), &self.0);
        }
    }

    let Some(cpus) = cpus else { return Ok(work()) };
    let mut set = CpuSet::new();
    for cpu in cpu_list(cpus)? {
        set.set(cpu).map_err(|e| format!("CPU {cpu} of {cpus:?}: {e}"))?;
    }
    let this_thread = Pid::from_raw(0);
    let before = sched_getaffinity(this_thread).map_err(|e| format!("this thread's CPUs: {e}"))?;
    sched_setaffinity(this_thread, &set).map_err(|e| format!("cannot run on CPUs {cpus:?}: {e}"))?;
    let _restore = Restore(before);
    Ok(work())
}

#[cfg(not(target_os = "linux"))]
fn on_cpus<T>(_cpus: Option<&str>, work: impl FnOnce() -> T) -> Result<T, Err> {
    Ok(work())
}

/// The CPU floor plus writing its segments to `store`, as the agent's
/// flushes do: the same bodies, encoded a batch per request into segments of
/// about `segment_bytes`, each uploaded with one PUT, one at a time. MiB of
/// payload per CPU-second of this process (so the store client's and the
/// kernel's work for the writes count, wherever they run); `None` where
/// there is no CPU figure (not Linux). The objects are deleted afterwards.
pub async fn cpu_floor_with_store(
    bodies: Arc<Vec<Bytes>>,
    duration: Duration,
    store: Arc<dyn ObjectStore>,
    segment_bytes: u64,
) -> Result<Option<f64>, Err> {
    let me = std::process::id();
    let Some(cpu_start) = cpu_seconds(me) else {
        return Ok(None);
    };
    let prefix = Path::from(format!("floor-cpu/{}", crate::clock::now_micros()));
    let written = write_segments(bodies, duration, &store, segment_bytes, &prefix).await;
    let cpu = cpu_seconds(me).map(|now| now - cpu_start);
    // Deleted whether or not every PUT succeeded: the run's store is the user's.
    let keys = store.list(Some(&prefix)).map(|m| m.map(|m| m.location)).boxed();
    let _ = store.delete_stream(keys).collect::<Vec<_>>().await;
    let payload = written?;
    Ok(cpu.filter(|&s| s > 0.0).map(|s| payload as f64 / MIB / s))
}

/// The floor's segments written under `prefix` for about `duration` (at
/// least one): the payload bytes they held.
async fn write_segments(
    bodies: Arc<Vec<Bytes>>,
    duration: Duration,
    store: &Arc<dyn ObjectStore>,
    segment_bytes: u64,
    prefix: &Path,
) -> Result<u64, Err> {
    let started = Instant::now();
    let (mut payload, mut next, mut n) = (0u64, 0usize, 0u64);
    while n == 0 || started.elapsed() < duration {
        let work = bodies.clone();
        let (chunks, bytes, after) = tokio::task::spawn_blocking(move || {
            let (mut segment, mut len, mut bytes, mut at) = (SegmentBuilder::new(), 0u64, 0u64, next);
            while len < segment_bytes.max(1) {
                let (payload, batch) = encode(&work[at % work.len()], &mut segment)?;
                (bytes, len) = (bytes + payload, len + batch);
                at += 1;
            }
            Ok::<_, Err>((segment.finish_chunks()?.0, bytes, at))
        })
        .await
        .map_err(|e| format!("CPU floor: {e}"))??;
        store.put(&Path::from(format!("{prefix}/{n}.seg")), PutPayload::from_iter(chunks)).await?;
        (payload, next, n) = (payload + bytes, after, n + 1);
    }
    Ok(payload)
}

/// The floors' request bodies, made once before either clock starts.
pub fn bodies(load: &Load, seed: u64) -> Vec<Bytes> {
    let mut maker = Bodies::new(load, seed);
    let mut bodies = Vec::new();
    let mut prepared = 0;
    while prepared < BODIES_BYTES {
        let body = maker.next(false);
        prepared += body.len();
        bodies.push(body);
    }
    bodies
}

/// One request's body parsed, its values copied into records, and encoded as
/// one batch of `segment`: the payload bytes it held, and the batch's.
fn encode(body: &[u8], segment: &mut SegmentBuilder) -> Result<(u64, u64), Err> {
    let parsed: Body<'_> = serde_json::from_slice(body)?;
    // Stamped as the agent stamps a record sent without a timestamp: with
    // the time it arrived, once per request. zstd's speed depends on the
    // fixed fields between values (docs/benchmarks.md, "2026-12-07 (fourth)").
    let now = i64::try_from(crate::clock::now_micros() / 1000).unwrap_or(i64::MAX);
    let records: Vec<Record> = parsed
        .records
        .iter()
        .map(|r| Record {
            key: r.key.as_ref().map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: Bytes::copy_from_slice(r.value.as_bytes()),
            timestamp: now,
            headers: Vec::new(),
        })
        .collect();
    let batch = segment.add_batch("floor", 0, &records)?.len;
    Ok((records.iter().map(|r| r.value.len() as u64).sum(), u64::from(batch)))
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;

    use super::*;
    use crate::load::Keys;

    fn load() -> Load {
        Load {
            producers: 1,
            record_bytes: 1024,
            records_per_request: 100,
            partitions: 1,
            keys: Keys::None,
            rate: None,
            duration: Duration::from_secs(1),
        }
    }

    /// The floor's records carry the time they were encoded, as the
    /// agent's carry the time they arrived: zstd's speed depends on it.
    #[test]
    fn the_floor_stamps_records_with_the_time_as_the_agent_does() {
        let body = crate::load::Bodies::new(&load(), 1).next(false);
        let before = i64::try_from(crate::clock::now_micros() / 1000).unwrap();
        let mut segment = SegmentBuilder::new();
        encode(&body, &mut segment).unwrap();
        let after = i64::try_from(crate::clock::now_micros() / 1000).unwrap();
        let (chunks, index) = segment.finish_chunks().unwrap();
        let batch = &chunks.concat()[index[0].pos as usize..][..index[0].len as usize];
        let records = floe_broker::segment::decode_batch(batch).unwrap();
        assert_eq!(records.len(), 100);
        assert!(records.iter().all(|r| (before..=after).contains(&r.timestamp)), "{}", records[0].timestamp);
        assert!(records.iter().all(|r| r.timestamp == records[0].timestamp), "one time per request");
    }

    #[test]
    fn cpu_lists_are_read_as_taskset_reads_them() {
        assert_eq!(cpu_list("0").unwrap(), vec![0]);
        assert_eq!(cpu_list("0-2").unwrap(), vec![0, 1, 2]);
        assert_eq!(cpu_list("1, 3-4").unwrap(), vec![1, 3, 4]);
        assert_eq!(cpu_list("0-6:2,9").unwrap(), vec![0, 2, 4, 6, 9]);
        for bad in ["", "a", "2-1", "0-", "-1", "5000", "0-4:0", "0-4:x"] {
            assert!(cpu_list(bad).is_err(), "{bad:?}");
        }
    }

    /// A confined floor runs on the CPUs given, and the thread may run
    /// wherever it could before once it ends; a second run's figure is
    /// averaged with the first.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_confined_floor_runs_on_its_cpus_and_lets_the_thread_go() {
        use nix::sched::sched_getaffinity;
        use nix::unistd::{Pid, gettid};
        let before = sched_getaffinity(Pid::from_raw(0)).unwrap();
        let Some(cpu) = (0..1024).find(|c| before.is_set(*c).unwrap_or(false)) else { return };
        let during = on_cpus(Some(&cpu.to_string()), || {
            let set = sched_getaffinity(gettid()).unwrap();
            (0..1024).filter(|c| set.is_set(*c).unwrap_or(false)).collect::<Vec<_>>()
        })
        .unwrap();
        assert_eq!(during, vec![cpu]);
        assert_eq!(sched_getaffinity(Pid::from_raw(0)).unwrap(), before);
        // A panic in the work lets the thread go too.
        let panicked = std::panic::catch_unwind(|| on_cpus(Some(&cpu.to_string()), || panic!("in the floor")));
        assert!(panicked.is_err());
        assert_eq!(sched_getaffinity(Pid::from_raw(0)).unwrap(), before);

        let mut maker = crate::load::Bodies::new(&load(), 1);
        let bodies: Vec<Bytes> = (0..4).map(|_| maker.next(false)).collect();
        let mut f = cpu_floor(&bodies, &load(), Duration::from_millis(20), Some(&cpu.to_string())).unwrap();
        assert!(f.requests > 0 && f.mib_per_cpu_s > 0.0, "{f:?}");
        // It compressed, and timed that (the first compression is timed).
        assert!(f.compression_share.is_some_and(|s| s > 0.0), "{f:?}");
        assert_eq!(f.cpus.as_deref(), Some(cpu.to_string().as_str()));
        let mut later = f.clone();
        later.runs_mib_per_cpu_s = vec![f.mib_per_cpu_s * 3.0];
        let first = f.mib_per_cpu_s;
        add_run(&mut f, &later);
        assert_eq!(f.runs_mib_per_cpu_s.len(), 2);
        assert!((f.mib_per_cpu_s - 2.0 * first).abs() < 1e-9 * first.max(1.0));
    }

    #[tokio::test]
    async fn the_floor_with_a_store_writes_segments_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = floe_broker::store::open(&format!("file://{}", dir.path().display())).unwrap();
        let bodies = Arc::new(bodies(&load(), 1));
        let figure = cpu_floor_with_store(bodies, Duration::from_millis(50), store.clone(), 256 << 10).await.unwrap();
        if cfg!(target_os = "linux") {
            assert!(figure.is_some_and(|m| m > 0.0), "{figure:?}");
        }
        let left: Vec<_> = store.list(None).try_collect().await.unwrap();
        assert!(left.is_empty(), "{} objects left", left.len());
    }

    #[tokio::test]
    async fn a_failed_write_still_leaves_the_store_clean() {
        use floe_broker::fault::{Fault, FaultyStore, OpKind};
        let dir = tempfile::tempdir().unwrap();
        let inner = floe_broker::store::open(&format!("file://{}", dir.path().display())).unwrap();
        let faulty = FaultyStore::new(inner.clone());
        // The first segment lands and its PUT is reported failed.
        faulty.inject(OpKind::Put, "floor-cpu/", Fault::LandThenFail, Some(1));
        let bodies = Arc::new(bodies(&load(), 1));
        let result = cpu_floor_with_store(bodies, Duration::from_millis(50), Arc::new(faulty), 256 << 10).await;
        if cfg!(target_os = "linux") {
            assert!(result.is_err());
        }
        let left: Vec<_> = inner.list(None).try_collect().await.unwrap();
        assert!(left.is_empty(), "{} objects left", left.len());
    }
}
