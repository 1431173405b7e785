//! Topic administration: create, list, describe, update settings.

use floe_broker::entry::{Op, TopicConfig};
use floe_broker::state::{OpOutcome, Topic};
use serde::Serialize;

use super::{Agent, validate};
use crate::auth::{Action, Caller};
use crate::error::{Error, Invalid, Result};

/// A topic to create. Retention: `None` keeps the default, -1 is unlimited (as in Kafka).
#[derive(Clone, Debug)]
pub struct NewTopic {
    pub name: String,
    pub partitions: u32,
    pub retention_ms: Option<i64>,
    pub retention_bytes: Option<i64>,
}

/// Settings to change; `None` keeps the current value.
#[derive(Clone, Debug, Default)]
pub struct TopicUpdate {
    pub retention_ms: Option<i64>,
    pub retention_bytes: Option<i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: u32,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    /// Bytes of its batches in the store (compressed), all partitions.
    pub bytes: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct PartitionInfo {
    pub partition: u32,
    pub log_start_offset: u64,
    pub high_watermark: u64,
    /// Bytes of its batches in the store (compressed).
    pub bytes: u64,
}

impl TopicInfo {
    fn new(name: &str, topic: &Topic) -> Self {
        Self {
            name: name.to_owned(),
            partitions: topic.partitions.len() as u32,
            retention_ms: topic.config.retention_ms,
            retention_bytes: topic.config.retention_bytes,
            bytes: topic.partitions.iter().map(|p| p.stored_bytes()).sum(),
        }
    }
}

/// Applies the given settings over `config`; -1 means unlimited, as in Kafka.
fn with_settings(
    mut config: TopicConfig,
    retention_ms: Option<i64>,
    retention_bytes: Option<i64>,
) -> Result<TopicConfig> {
    for (name, value) in [("retention_ms", retention_ms), ("retention_bytes", retention_bytes)] {
        if value.is_some_and(|v| v < -1 || v == 0) {
            return Err(Error::invalid(Invalid::Config, format!("{name} must be positive, or -1 for unlimited")));
        }
    }
    config.retention_ms = retention_ms.unwrap_or(config.retention_ms);
    config.retention_bytes = retention_bytes.unwrap_or(config.retention_bytes);
    Ok(config)
}

impl Agent {
    /// Creates a topic; `TopicExists` if it exists (another agent may have
    /// created it first: the log decides).
    pub async fn create_topic(&self, caller: &Caller, spec: NewTopic) -> Result<TopicInfo> {
        caller.check(Action::Admin)?;
        let config = self.check_new_topic(&spec)?;
        let exists = || Error::TopicExists { topic: spec.name.clone() };
        let op = Op::CreateTopic { name: spec.name.clone(), partitions: spec.partitions, config };
        match Error::commit_one(&self.log, op).await? {
            (seq, OpOutcome::TopicCreated) => {
                tracing::info!(topic = %spec.name, partitions = spec.partitions, seq, "topic created");
                let topic = Topic { partitions: Vec::new(), config, id: seq };
                Ok(TopicInfo { partitions: spec.partitions, ..TopicInfo::new(&spec.name, &topic) })
            }
            _ => Err(exists()),
        }
    }

    /// What `create_topic` would create, checked against the log as it is
    /// now, without creating anything (a dry run).
    pub async fn validate_new_topic(&self, caller: &Caller, spec: &NewTopic) -> Result<TopicInfo> {
        caller.check(Action::Admin)?;
        self.log.catch_up().await?;
        let config = self.check_new_topic(spec)?;
        Ok(TopicInfo {
            name: spec.name.clone(),
            partitions: spec.partitions,
            retention_ms: config.retention_ms,
            retention_bytes: config.retention_bytes,
            bytes: 0,
        })
    }

    fn check_new_topic(&self, spec: &NewTopic) -> Result<TopicConfig> {
        validate::topic_name(&spec.name)?;
        if !(1..=validate::MAX_PARTITIONS).contains(&spec.partitions) {
            return Err(Error::invalid(
                Invalid::Partitions,
                format!("partitions must be between 1 and {}; got {}", validate::MAX_PARTITIONS, spec.partitions),
            ));
        }
        let config = with_settings(TopicConfig::default(), spec.retention_ms, spec.retention_bytes)?;
        if self.log.state().topic(&spec.name).is_some() {
            return Err(Error::TopicExists { topic: spec.name.clone() });
        }
        Ok(config)
    }

    /// The topics the caller may produce to or consume from (all of them
    /// for an admin, or with authentication off).
    pub async fn list_topics(&self, caller: &Caller) -> Result<Vec<TopicInfo>> {
        caller.check(Action::Authenticated)?;
        self.log.catch_up().await?;
        let state = self.log.state();
        Ok(state
            .topics
            .iter()
            .filter(|(name, _)| caller.may(Action::Describe(name)))
            .map(|(name, t)| TopicInfo::new(name, t))
            .collect())
    }

    pub async fn describe_topic(&self, caller: &Caller, name: &str) -> Result<(TopicInfo, Vec<PartitionInfo>)> {
        caller.check(Action::Describe(name))?;
        self.log.catch_up().await?;
        self.describe_applied(name)
    }

    fn describe_applied(&self, name: &str) -> Result<(TopicInfo, Vec<PartitionInfo>)> {
        let state = self.log.state();
        let topic = state.topic(name).ok_or_else(|| Error::TopicNotFound { topic: name.to_owned() })?;
        let partitions = topic
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| PartitionInfo {
                partition: i as u32,
                log_start_offset: p.log_start_offset,
                high_watermark: p.high_watermark,
                bytes: p.stored_bytes(),
            })
            .collect();
        Ok((TopicInfo::new(name, topic), partitions))
    }

    /// Deletes the topic and everything in it. Records of it still being
    /// written are refused when they commit, and a topic created later under
    /// the same name starts empty: nothing of this one shows in it.
    pub async fn delete_topic(&self, caller: &Caller, name: &str) -> Result<()> {
        caller.check(Action::Admin)?;
        // A name no topic can have names no topic: not found, as for reads.
        self.log.catch_up().await?;
        let not_found = || Error::TopicNotFound { topic: name.to_owned() };
        let id = self.log.state().topic(name).map(|t| t.id).ok_or_else(not_found)?;
        match Error::commit_one(&self.log, Op::DeleteTopic { name: name.to_owned(), id: Some(id) }).await? {
            (seq, OpOutcome::TopicDeleted) => {
                tracing::info!(topic = %name, seq, "topic deleted");
                Ok(())
            }
            _ => Err(not_found()),
        }
    }

    /// Changes a topic's settings; a change to the values it has writes nothing.
    pub async fn update_topic(
        &self,
        caller: &Caller,
        name: &str,
        update: TopicUpdate,
    ) -> Result<(TopicInfo, Vec<PartitionInfo>)> {
        caller.check(Action::Admin)?;
        self.log.catch_up().await?;
        let not_found = || Error::TopicNotFound { topic: name.to_owned() };
        let current = self.log.state().topic(name).map(|t| t.config).ok_or_else(not_found)?;
        let config = with_settings(current, update.retention_ms, update.retention_bytes)?;
        if config == current {
            return self.describe_applied(name);
        }
        match Error::commit_one(&self.log, Op::UpdateTopic { name: name.to_owned(), config }).await? {
            (_, OpOutcome::TopicUpdated) => self.describe_applied(name),
            _ => Err(not_found()),
        }
    }

    /// The offset of the first batch of `topic`/`partition` holding a record
    /// stamped at or after `timestamp` (ms), or the high watermark if none
    /// does: where to start reading "from a time". Batches, not records:
    /// the batch found may begin with a few earlier records.
    pub async fn offset_for_time(&self, caller: &Caller, topic: &str, partition: u32, timestamp: i64) -> Result<u64> {
        caller.check(Action::Consume(topic))?;
        self.log.catch_up().await?;
        let state = self.log.state();
        let t = state.topic(topic).ok_or_else(|| Error::TopicNotFound { topic: topic.to_owned() })?;
        let p = t
            .partitions
            .get(partition as usize)
            .ok_or_else(|| Error::PartitionNotFound { topic: topic.to_owned(), partition })?;
        Ok(p.batches.iter().find(|(_, b)| b.max_timestamp >= timestamp).map_or(p.high_watermark, |(base, _)| *base))
    }
}
