//! The checker's judge: given what producers were told, what consumers saw,
//! and the final log, count every violation of the queue invariants.

use std::collections::{BTreeMap, HashMap, HashSet};

/// A record a producer was told is at `(partition, offset)`.
#[derive(Clone, Debug)]
pub struct Ack {
    pub producer: usize,
    pub partition: u32,
    pub offset: u64,
    pub value: String,
}

/// A record acknowledged with `acks=local` by the agent owning `spool`.
#[derive(Clone, Debug)]
pub struct LocalAck {
    pub partition: u32,
    pub value: String,
    pub spool: String,
}

/// A record a consumer was given.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Seen {
    pub partition: u32,
    pub offset: u64,
    pub value: String,
}

/// Each partition's records in the order fetches returned them, with offsets.
pub type FinalLog = Vec<Vec<(u64, String)>>;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub acked: usize,
    pub records_in_log: usize,
    /// Acknowledged records missing from their acknowledged offset.
    pub lost: usize,
    /// Offsets acknowledged to two different values.
    pub conflicting_acks: usize,
    /// Values at two offsets, from idempotent producers (must be 0).
    pub duplicates_idempotent: usize,
    /// Values at two offsets from plain producers: each attempt has values
    /// of its own, so this is one attempt stored twice (must be 0).
    pub duplicates_plain: usize,
    /// Offsets missing between a partition's first and last record.
    pub holes: usize,
    /// A producer's records out of its send order within a partition.
    pub order_violations: usize,
    /// Records a consumer saw that are not at that offset in the final log.
    pub aborted_reads: usize,
    /// Records in the log that no producer ever sent.
    pub phantoms: usize,
    /// (partition, offset) pairs on which agents (or consumers) disagreed.
    pub disagreements: usize,
    /// Times a watcher saw a consumer group's committed offset move backwards.
    pub group_offset_rewinds: usize,
    /// Records acknowledged with `acks=local` (counted in `lost` when absent).
    pub acked_local: usize,
    /// `acks=local` records in the log out of their producer's send order.
    pub local_order_violations: usize,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.lost == 0
            && self.conflicting_acks == 0
            && self.duplicates_idempotent == 0
            && self.duplicates_plain == 0
            && self.holes == 0
            && self.order_violations == 0
            && self.aborted_reads == 0
            && self.phantoms == 0
            && self.disagreements == 0
            && self.group_offset_rewinds == 0
            && self.local_order_violations == 0
    }
}

/// Values are `p{producer}-{n}`, `n` counting up in send order.
pub fn parse_value(v: &str) -> Option<(usize, u64)> {
    let (p, n) = v.strip_prefix('p')?.split_once('-')?;
    Some((p.parse().ok()?, n.parse().ok()?))
}

pub fn check(
    acks: &[Ack],
    seen: &[Seen],
    log: &FinalLog,
    sent: &HashSet<String>,
    idempotent: &HashSet<usize>,
) -> Report {
    let mut r = Report { acked: acks.len(), ..Report::default() };
    let acked: HashSet<&str> = acks.iter().map(|a| a.value.as_str()).collect();
    let mut at: HashMap<(u32, u64), &str> = HashMap::new();
    let mut places: HashMap<&str, usize> = HashMap::new();
    for (p, records) in log.iter().enumerate() {
        let p = p as u32;
        r.records_in_log += records.len();
        let mut expected = records.first().map_or(0, |(o, _)| *o);
        let mut last_n: BTreeMap<usize, u64> = BTreeMap::new();
        for (offset, value) in records {
            if *offset != expected {
                r.holes += offset.saturating_sub(expected) as usize;
            }
            expected = offset + 1;
            if at.insert((p, *offset), value).is_some_and(|old| old != value) {
                r.disagreements += 1;
            }
            let count = places.entry(value).or_default();
            *count += 1;
            let first = *count == 1;
            if !sent.contains(value) {
                r.phantoms += 1;
            }
            // A producer's records keep their send order. A plain producer's
            // attempt whose answer was lost may still land after its retry
            // (as in Kafka without idempotence), so for plain producers only
            // acknowledged records count.
            let ordered = |producer: &usize| idempotent.contains(producer) || acked.contains(value.as_str());
            if let (true, Some((producer, n))) = (first, parse_value(value))
                && ordered(&producer)
            {
                let last = last_n.entry(producer).or_insert(n);
                if n < *last {
                    r.order_violations += 1;
                }
                *last = (*last).max(n);
            }
        }
    }
    for (value, count) in &places {
        if *count > 1 {
            let extra = count - 1;
            match parse_value(value) {
                Some((producer, _)) if idempotent.contains(&producer) => r.duplicates_idempotent += extra,
                _ => r.duplicates_plain += extra,
            }
        }
    }
    let mut acked_at: HashMap<(u32, u64), &str> = HashMap::new();
    for a in acks {
        if acked_at.insert((a.partition, a.offset), &a.value).is_some_and(|v| v != a.value) {
            r.conflicting_acks += 1;
        }
        if at.get(&(a.partition, a.offset)) != Some(&a.value.as_str()) {
            r.lost += 1;
        }
    }
    let mut consumer_view: HashMap<(u32, u64), &str> = HashMap::new();
    for s in seen {
        if consumer_view.insert((s.partition, s.offset), &s.value).is_some_and(|v| v != s.value) {
            r.disagreements += 1;
        }
        if at.get(&(s.partition, s.offset)) != Some(&s.value.as_str()) {
            r.aborted_reads += 1;
        }
    }
    r
}

/// Records acknowledged with `acks=local` carry no offset: each must be in
/// its partition's final log (duplicates are counted by `check`), and a
/// producer's such records keep their send order among those one spool
/// acknowledged (records spooled by two agents are committed by each on
/// its own, as with any asynchronous replication).
pub fn check_local(r: &mut Report, local: &[LocalAck], log: &FinalLog) {
    r.acked_local = local.len();
    let acked: HashMap<(u32, &str), &str> =
        local.iter().map(|a| ((a.partition, a.value.as_str()), a.spool.as_str())).collect();
    let mut found = HashSet::new();
    for (p, records) in log.iter().enumerate() {
        let mut last_n: BTreeMap<(usize, &str), u64> = BTreeMap::new();
        for (_, value) in records {
            let Some(spool) = acked.get(&(p as u32, value.as_str())) else { continue };
            if !found.insert((p as u32, value.as_str())) {
                continue;
            }
            if let Some((producer, n)) = parse_value(value) {
                let last = last_n.entry((producer, spool)).or_insert(n);
                if n < *last {
                    r.local_order_violations += 1;
                }
                *last = (*last).max(n);
            }
        }
    }
    r.lost += acked.len() - found.len();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(producer: usize, partition: u32, offset: u64, value: &str) -> Ack {
        Ack { producer, partition, offset, value: value.into() }
    }

    fn sent(values: &[&str]) -> HashSet<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn a_clean_history_passes() {
        let log: FinalLog = vec![vec![(0, "p0-0".into()), (1, "p1-0".into()), (2, "p0-1".into())]];
        let acks = [ack(0, 0, 0, "p0-0"), ack(1, 0, 1, "p1-0"), ack(0, 0, 2, "p0-1")];
        let seen = [Seen { partition: 0, offset: 1, value: "p1-0".into() }];
        let r = check(&acks, &seen, &log, &sent(&["p0-0", "p1-0", "p0-1"]), &[0].into());
        assert!(r.ok(), "{r:?}");
        assert_eq!((r.acked, r.records_in_log), (3, 3));
    }

    #[test]
    fn every_violation_is_counted() {
        let log: FinalLog = vec![vec![(0, "p0-1".into()), (1, "p0-0".into()), (3, "p0-1".into()), (4, "zz".into())]];
        let acks = [ack(0, 0, 1, "p0-0"), ack(0, 0, 2, "p0-2"), ack(1, 0, 1, "p1-0")];
        let seen = [Seen { partition: 0, offset: 7, value: "p1-9".into() }];
        let r = check(&acks, &seen, &log, &sent(&["p0-0", "p0-1", "p0-2"]), &[0].into());
        assert_eq!(r.lost, 2, "p0-2 and p1-0 are not where they were acknowledged");
        assert_eq!(r.conflicting_acks, 1);
        assert_eq!(r.duplicates_idempotent, 1);
        assert_eq!(r.holes, 1);
        assert_eq!(r.order_violations, 1);
        assert_eq!(r.aborted_reads, 1);
        assert_eq!(r.phantoms, 1);
        assert!(!r.ok());
    }

    #[test]
    fn one_plain_attempt_stored_twice_is_a_duplicate() {
        let log: FinalLog = vec![vec![(0, "p1-0".into()), (1, "p1-0".into()), (2, "p1-1".into())]];
        let r = check(&[ack(1, 0, 1, "p1-0")], &[], &log, &sent(&["p1-0", "p1-1"]), &[0].into());
        assert_eq!(r.duplicates_plain, 1);
        assert!(!r.ok());
    }

    #[test]
    fn locally_acknowledged_records_must_be_in_the_log_in_order() {
        let log: FinalLog = vec![vec![(0, "p1-3".into()), (1, "p1-1".into())], vec![(0, "p1-2".into())]];
        let ack = |p, v: &str, spool: &str| LocalAck { partition: p, value: v.into(), spool: spool.into() };
        let local = [ack(0, "p1-1", "a"), ack(0, "p1-3", "a"), ack(1, "p1-2", "a"), ack(1, "p1-9", "a")];
        let mut r = Report::default();
        check_local(&mut r, &local, &log);
        assert_eq!((r.acked_local, r.lost, r.local_order_violations), (4, 1, 1), "p1-9 lost; p1-3 before p1-1");
        assert!(!r.ok());
        let mut r = Report::default();
        check_local(&mut r, &[ack(0, "p1-1", "a"), ack(0, "p1-3", "b")], &log);
        assert!(r.ok(), "two spools commit on their own: {r:?}");
        let mut r = Report::default();
        check_local(&mut r, &local[2..3], &log);
        assert!(r.ok(), "{r:?}");
    }

    #[test]
    fn an_unacknowledged_plain_attempt_may_land_after_its_retry() {
        let log: FinalLog = vec![vec![(0, "p1-5".into()), (1, "p1-2".into())]];
        let r = check(&[ack(1, 0, 0, "p1-5")], &[], &log, &sent(&["p1-2", "p1-5"]), &[0].into());
        assert!(r.ok(), "{r:?}");
    }
}
