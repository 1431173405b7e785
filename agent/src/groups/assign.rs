//! Partition assignment: round-robin over the members subscribed to each
//! topic, in a fixed order, so every coordinator computes the same plan.

use std::collections::BTreeMap;

/// `members`: member id → subscribed topics; `partitions`: topic → partition count.
/// Returns member id → assigned (topic, partition), sorted.
pub fn round_robin(
    members: &BTreeMap<String, Vec<String>>,
    partitions: &BTreeMap<String, u32>,
) -> BTreeMap<String, Vec<(String, u32)>> {
    let mut plan: BTreeMap<String, Vec<(String, u32)>> = members.keys().map(|m| (m.clone(), Vec::new())).collect();
    for (topic, count) in partitions {
        let subscribed: Vec<&String> = members.iter().filter(|(_, t)| t.contains(topic)).map(|(m, _)| m).collect();
        if subscribed.is_empty() {
            continue;
        }
        for p in 0..*count {
            let owner = subscribed[p as usize % subscribed.len()];
            if let Some(list) = plan.get_mut(owner) {
                list.push((topic.clone(), p));
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(list: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        list.iter().map(|(m, t)| ((*m).to_owned(), t.iter().map(|s| (*s).to_owned()).collect())).collect()
    }

    #[test]
    fn every_partition_has_exactly_one_owner() {
        let m = members(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let p: BTreeMap<String, u32> = [("t".to_owned(), 6)].into();
        let plan = round_robin(&m, &p);
        assert_eq!(plan["a"], vec![("t".into(), 0), ("t".into(), 3)]);
        assert_eq!(plan["b"], vec![("t".into(), 1), ("t".into(), 4)]);
        assert_eq!(plan["c"], vec![("t".into(), 2), ("t".into(), 5)]);
    }

    #[test]
    fn only_subscribers_get_a_topic() {
        let m = members(&[("a", &["t", "u"]), ("b", &["u"])]);
        let p: BTreeMap<String, u32> = [("t".to_owned(), 2), ("u".to_owned(), 2), ("v".to_owned(), 3)].into();
        let plan = round_robin(&m, &p);
        assert_eq!(plan["a"], vec![("t".into(), 0), ("t".into(), 1), ("u".into(), 0)]);
        assert_eq!(plan["b"], vec![("u".into(), 1)]);
    }
}
