//! The rules every request meets, whichever face it came through.

use crate::error::{Error, Invalid, Result};
use crate::groups::GroupRequest;

/// Kafka's limit on topic name length.
pub const MAX_NAME: usize = 249;
pub const MAX_PARTITIONS: u32 = 10_000;
pub const MAX_FETCH_RECORDS: usize = 10_000;
pub const MAX_FETCH_BYTES: usize = 64 << 20;
pub const MAX_FETCH_TIMEOUT_MS: u64 = 60_000;
/// Topics one group member may subscribe to, and partitions one seek may move.
pub const MAX_MEMBER_TOPICS: usize = 1_000;
pub const MAX_SEEK_POSITIONS: usize = 10_000;

fn is_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && name != "."
        && name != ".."
}

/// Kafka's rule: 1–249 characters of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn topic_name(name: &str) -> Result<()> {
    if is_name(name) {
        return Ok(());
    }
    Err(Error::invalid(
        Invalid::TopicName,
        format!(
            "topic names are 1 to {MAX_NAME} characters of letters, digits, '.', '_' and '-' (and not '.' or '..'); got {name:?}"
        ),
    ))
}

/// Group ids follow the topic-name rule (they travel in URL paths).
pub fn group_name(name: &str) -> Result<()> {
    if is_name(name) {
        return Ok(());
    }
    Err(Error::invalid(
        Invalid::GroupName,
        format!("group ids are 1 to {MAX_NAME} characters of letters, digits, '.', '_' and '-'; got {name:?}"),
    ))
}

fn member_topics(topics: &[String]) -> Result<()> {
    if topics.len() > MAX_MEMBER_TOPICS {
        return Err(Error::invalid(
            Invalid::Request,
            format!("a member subscribes to at most {MAX_MEMBER_TOPICS} topics"),
        ));
    }
    topics.iter().try_for_each(|t| topic_name(t))
}

/// A member named by its client (a consumer instance) follows the same rule.
pub fn member_name(name: &str) -> Result<()> {
    if is_name(name) {
        return Ok(());
    }
    Err(Error::invalid(
        Invalid::Request,
        format!(
            "consumer instance names are 1 to {MAX_NAME} characters of letters, digits, '.', '_' and '-'; got {name:?}"
        ),
    ))
}

pub fn fetch_limits(max_records: usize, max_bytes: usize, timeout_ms: u64) -> Result<()> {
    let in_range = (1..=MAX_FETCH_RECORDS).contains(&max_records)
        && (1..=MAX_FETCH_BYTES).contains(&max_bytes)
        && timeout_ms <= MAX_FETCH_TIMEOUT_MS;
    if in_range {
        return Ok(());
    }
    Err(Error::invalid(
        Invalid::Query,
        format!(
            "max_records must be 1..={MAX_FETCH_RECORDS}, max_bytes 1..={MAX_FETCH_BYTES}, timeout_ms 0..={MAX_FETCH_TIMEOUT_MS}"
        ),
    ))
}

/// The checks every group request passes, from a client or forwarded by an agent.
pub fn group_request(group: &str, req: &GroupRequest) -> Result<()> {
    group_name(group)?;
    match req {
        GroupRequest::Fetch { max_records, max_bytes, timeout_ms, .. } => {
            fetch_limits(*max_records, *max_bytes, *timeout_ms)
        }
        GroupRequest::Commit { offsets, .. } => offsets.iter().try_for_each(|o| topic_name(&o.topic)),
        GroupRequest::Join { topics, name, .. } => {
            if let Some(name) = name {
                member_name(name)?;
            }
            member_topics(topics)
        }
        GroupRequest::Subscribe { topics, .. } => member_topics(topics),
        GroupRequest::Seek { positions, .. } => {
            if positions.len() > MAX_SEEK_POSITIONS {
                return Err(Error::invalid(
                    Invalid::Request,
                    format!("a seek moves at most {MAX_SEEK_POSITIONS} positions"),
                ));
            }
            positions.iter().try_for_each(|p| topic_name(&p.topic))
        }
        GroupRequest::Heartbeat { .. } | GroupRequest::Leave { .. } | GroupRequest::Describe => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::topic_name;

    #[test]
    fn topic_names_follow_kafka_rules() {
        for ok in ["orders", "a", "A.b_c-9", &"x".repeat(249)] {
            assert!(topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "has space", "slash/no", "é", &"x".repeat(250)] {
            assert!(topic_name(bad).is_err(), "{bad}");
        }
    }
}
