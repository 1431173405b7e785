//! Every object key Floe reads or writes is built (and parsed) here, so the
//! bucket layout lives in exactly one place.

use object_store::path::Path;
use ulid::Ulid;

const CLUSTER: &str = "cluster";
const SEGMENTS: &str = "segments";
const LOG: &str = "log";
const SNAPSHOTS: &str = "snapshots";
const PROBES: &str = "probes";
const SECRET: &str = "secret";
const SEGMENT_SUFFIX: &str = ".seg";

/// `cluster`: the cluster id and format version, created once.
pub fn cluster() -> Path {
    Path::from(CLUSTER)
}

/// `segments/{ulid}.seg`: one flush of one agent.
pub fn segment(id: Ulid) -> Path {
    Path::from(format!("{SEGMENTS}/{id}{SEGMENT_SUFFIX}"))
}

/// `log/{seq:020}`: one commit entry; zero-padded so listing order is log order.
pub fn log_entry(seq: u64) -> Path {
    Path::from(format!("{LOG}/{seq:020}"))
}

/// `snapshots/{seq:020}`: the full state as of log position `seq`.
pub fn snapshot(seq: u64) -> Path {
    Path::from(format!("{SNAPSHOTS}/{seq:020}"))
}

/// `secret`: the token agents of this cluster present to each other on
/// agent-to-agent routes, created once; whoever can read the bucket is the cluster.
pub fn secret() -> Path {
    Path::from(SECRET)
}

/// `probes/{ulid}`: scratch keys for the start-up safety probe.
pub fn probe(id: Ulid) -> Path {
    Path::from(format!("{PROBES}/{id}"))
}

pub fn segments_prefix() -> Path {
    Path::from(SEGMENTS)
}

pub fn log_prefix() -> Path {
    Path::from(LOG)
}

pub fn snapshots_prefix() -> Path {
    Path::from(SNAPSHOTS)
}

/// The sequence number of a `log/…` key, if it is one.
pub fn parse_log_seq(path: &Path) -> Option<u64> {
    parse_seq(path, LOG)
}

/// The sequence number of a `snapshots/…` key, if it is one.
pub fn parse_snapshot_seq(path: &Path) -> Option<u64> {
    parse_seq(path, SNAPSHOTS)
}

/// The id of a `segments/….seg` key, if it is one.
pub fn parse_segment_id(path: &Path) -> Option<Ulid> {
    let name = path.as_ref().strip_prefix(SEGMENTS)?.strip_prefix('/')?;
    Ulid::from_string(name.strip_suffix(SEGMENT_SUFFIX)?).ok()
}

fn parse_seq(path: &Path, prefix: &str) -> Option<u64> {
    let name = path.as_ref().strip_prefix(prefix)?.strip_prefix('/')?;
    if name.len() != 20 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_design() {
        let id = Ulid::from_string("01ARZ3NDEKTSV4RRFFQ69G5FAV").unwrap();
        assert_eq!(cluster().as_ref(), "cluster");
        assert_eq!(segment(id).as_ref(), "segments/01ARZ3NDEKTSV4RRFFQ69G5FAV.seg");
        assert_eq!(log_entry(42).as_ref(), "log/00000000000000000042");
        assert_eq!(snapshot(7).as_ref(), "snapshots/00000000000000000007");
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // tests
    fn keys_round_trip() {
        let id = Ulid::new();
        assert_eq!(parse_segment_id(&segment(id)), Some(id));
        assert_eq!(parse_log_seq(&log_entry(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_snapshot_seq(&snapshot(9)), Some(9));
        assert_eq!(parse_log_seq(&snapshot(9)), None);
        assert_eq!(parse_log_seq(&Path::from("log/12")), None);
    }

    #[test]
    fn log_keys_sort_in_log_order() {
        let mut keys: Vec<String> = [10u64, 9, 100, 1].iter().map(|s| log_entry(*s).to_string()).collect();
        keys.sort();
        let seqs: Vec<u64> = keys.iter().map(|k| parse_log_seq(&Path::from(k.as_str())).unwrap()).collect();
        assert_eq!(seqs, vec![1, 9, 10, 100]);
    }
}
