//! What can go wrong serving a request, by what the caller can do about it.
//! Every face (the HTTP API, internal routes, later Confluent's) renders
//! these in one place (`api::error`); nothing here knows about HTTP.
//!
//! Errors are `Clone` (one failed flush answers many requests) and
//! serializable (a group coordinator's answer travels to the agent that
//! forwarded the request). A cause is kept as `source()` on the agent that
//! met it and is not sent over the wire.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The underlying error, shared.
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which rule a malformed request broke; each is a stable error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Invalid {
    Request,
    TopicName,
    GroupName,
    Partitions,
    Config,
    Timestamp,
    Query,
    Op,
}

#[derive(Clone, Debug, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Error {
    // The caller's fault: retrying the same request cannot help.
    #[error("{message}")]
    Invalid { rule: Invalid, message: String },
    /// One record of a request is at fault; the whole request is refused.
    #[error("record {index}: {error}")]
    InRecord { index: usize, error: Box<Error> },
    #[error("topic {topic:?} does not exist")]
    TopicNotFound { topic: String },
    #[error("topic {topic:?} has no partition {partition}")]
    PartitionNotFound { topic: String, partition: u32 },
    #[error("topic {topic:?} already exists")]
    TopicExists { topic: String },
    #[error("producer {producer_id} does not exist")]
    ProducerNotFound { producer_id: u64 },
    #[error("producer {producer_id} epoch {epoch} was fenced by a newer epoch")]
    ProducerFenced { producer_id: u64, epoch: u32, current_epoch: Option<u32> },
    #[error("the producer's next sequence in this partition is {expected}")]
    OutOfOrderSequence { expected: u64 },
    #[error("offset {offset} is outside the partition's range [{log_start_offset}, {high_watermark}]")]
    OffsetOutOfRange { offset: u64, log_start_offset: u64, high_watermark: u64 },
    #[error("offset {offset} is beyond {topic}/{partition}'s high watermark {high_watermark}")]
    OffsetBeyondHighWatermark { topic: String, partition: u32, offset: u64, high_watermark: u64 },
    #[error("no committed offset for {topic}/{partition} and auto_offset_reset is none")]
    NoCommittedOffset { topic: String, partition: u32 },
    #[error("member {member_id:?} is not in the group; join again")]
    UnknownMember { member_id: String },
    #[error("member {member_id:?} is already in the group")]
    MemberExists { member_id: String },
    #[error("{topic}/{partition} is not assigned to this member")]
    NotAssigned { topic: String, partition: u32 },
    #[error("generation {generation} is not the group's current generation {current}")]
    IllegalGeneration { generation: u64, current: u64 },
    #[error(
        "the request needs {bytes} bytes of write buffer (its records and the segment they become), more than the agent's whole write buffer ({budget} bytes)"
    )]
    TooLarge { bytes: usize, budget: usize },

    /// No credentials, or ones this agent does not know.
    #[error("{message}")]
    Unauthenticated { message: String },
    /// Credentials that do not allow the request.
    #[error("{message}")]
    Forbidden { message: String },

    // Agent to agent.
    #[error("not this group's coordinator")]
    NotCoordinator,
    #[error("this agent does not hold the commit lease")]
    NotLeaseHolder,

    // Transient: a retry can succeed.
    #[error("the agent's write buffer is full; retry shortly")]
    Overloaded,
    #[error("the agent is shutting down")]
    ShuttingDown,
    #[error("group {group:?} has no reachable coordinator yet")]
    CoordinatorUnavailable { group: String },
    #[error("not ready: {reason}")]
    NotReady { reason: String },
    #[error("{message}")]
    ClockSkew { message: String },
    #[error("the object store did not answer; retry shortly")]
    StoreUnavailable {
        #[serde(skip)]
        #[source]
        source: Option<Cause>,
    },
    /// The log refused an attempt as too old, or found it a copy of an entry
    /// applied before: an earlier attempt may have landed, so the records may
    /// or may not be in the log, like a Kafka produce that timed out.
    #[error("the commit could not be confirmed: retry (an idempotent producer's retry is never written twice)")]
    CommitOutcomeUnknown {
        #[serde(skip)]
        #[source]
        source: Option<Cause>,
    },

    // Not the caller's fault, and not fixed by retrying.
    #[error("data the log references is missing from the object store")]
    DataMissing {
        #[serde(skip)]
        #[source]
        source: Option<Cause>,
    },
    #[error("{what} in the bucket is corrupt; see the agent's log")]
    CorruptData {
        what: String,
        #[serde(skip)]
        #[source]
        source: Option<Cause>,
    },
    #[error("the object store refused the agent's credentials")]
    StorePermissionDenied {
        #[serde(skip)]
        #[source]
        source: Option<Cause>,
    },
    #[error("internal error; see the agent's log")]
    Internal {
        #[serde(skip)]
        #[source]
        source: Option<Cause>,
    },
}

impl Error {
    pub fn invalid(rule: Invalid, message: impl Into<String>) -> Self {
        Self::Invalid { rule, message: message.into() }
    }

    /// An internal error whose cause is only a description.
    pub fn internal(what: impl Into<String>) -> Self {
        let what: String = what.into();
        tracing::error!(error = %what, "internal error");
        Self::Internal { source: Some(Arc::new(std::io::Error::other(what))) }
    }

    /// Commits one op and returns the log position and the op's outcome.
    /// An entry the log refused as too old, or found to be a copy of one
    /// applied before, may still have landed through an earlier attempt: its
    /// outcome is unknown, and that is the error.
    pub async fn commit_one(
        log: &floe_broker::MetadataLog,
        op: floe_broker::entry::Op,
    ) -> Result<(u64, floe_broker::state::OpOutcome)> {
        use floe_broker::state::OpOutcome as O;
        let committed = log.commit(vec![op]).await?;
        match committed.outcomes.into_iter().next() {
            Some(O::EntryTooOld | O::AlreadyCommitted { .. }) => Err(Self::CommitOutcomeUnknown { source: None }),
            Some(outcome) => Ok((committed.seq, outcome)),
            None => Err(Self::internal("the log answered a commit of one op with no outcome")),
        }
    }

    /// Whose the fault is, for metrics: `refused` (the caller's; retrying
    /// the same request cannot help), `unavailable` (a retry may succeed) or
    /// `failed` (the agent's or the store's; an operator must look).
    pub fn class(&self) -> &'static str {
        match self {
            Self::InRecord { error, .. } => error.class(),
            Self::Overloaded
            | Self::ShuttingDown
            | Self::CoordinatorUnavailable { .. }
            | Self::NotReady { .. }
            | Self::ClockSkew { .. }
            | Self::StoreUnavailable { .. }
            | Self::CommitOutcomeUnknown { .. } => "unavailable",
            Self::DataMissing { .. }
            | Self::CorruptData { .. }
            | Self::StorePermissionDenied { .. }
            | Self::Internal { .. } => "failed",
            _ => "refused",
        }
    }

    /// The error itself, out of any `InRecord` around it.
    pub fn innermost(&self) -> &Self {
        match self {
            Self::InRecord { error, .. } => error.innermost(),
            e => e,
        }
    }

    pub fn in_record(self, index: usize) -> Self {
        Self::InRecord { index, error: Box::new(self) }
    }
}

/// Errors of the broker core, by kind: the caller learns what it can act on
/// (retry, or not) and never sees server paths; the full error goes to the
/// agent's log here, once.
impl From<floe_broker::Error> for Error {
    fn from(e: floe_broker::Error) -> Self {
        Self::from(Arc::new(e))
    }
}

impl From<Arc<floe_broker::Error>> for Error {
    fn from(e: Arc<floe_broker::Error>) -> Self {
        use floe_broker::{Error as E, ErrorKind as K};
        let kind = e.kind();
        match kind {
            K::Unavailable => tracing::warn!(error = %e, "request failed; the client may retry"),
            K::Missing => tracing::error!(error = %e, "data the log references is missing from the store"),
            K::Corrupt => tracing::error!(error = %e, "corrupt data in the bucket"),
            K::Internal => tracing::error!(error = %e, "internal error"),
        }
        let message = e.to_string();
        let what = match e.as_ref() {
            E::Corrupt { what, .. } => what.clone(),
            E::CorruptLogEntry { seq, .. } | E::MissingLogEntry { seq } => format!("log entry {seq}"),
            _ => "data".into(),
        };
        let clock_skew = matches!(e.as_ref(), E::ClockSkew { .. });
        let unresolved = matches!(e.as_ref(), E::CommitUnresolved { .. });
        let denied = matches!(
            e.as_ref(),
            E::Store(object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. })
        );
        let source: Option<Cause> = Some(e);
        match kind {
            K::Unavailable if clock_skew => Self::ClockSkew { message },
            K::Unavailable if unresolved => Self::CommitOutcomeUnknown { source },
            K::Unavailable => Self::StoreUnavailable { source },
            K::Missing => Self::DataMissing { source },
            K::Corrupt => Self::CorruptData { what, source },
            K::Internal if denied => Self::StorePermissionDenied { source },
            K::Internal => Self::Internal { source },
        }
    }
}

impl From<crate::writer::WriteError> for Error {
    fn from(e: crate::writer::WriteError) -> Self {
        use crate::writer::WriteError as W;
        match e {
            W::Overloaded => Self::Overloaded,
            W::TooLarge { bytes, budget } => Self::TooLarge { bytes, budget },
            W::Upload(e) | W::Commit(e) => Self::from(e),
            W::OutcomeUnknown => Self::CommitOutcomeUnknown { source: Some(Arc::new(e)) },
            W::UnexpectedOutcome(_) | W::Internal(_) => Self::internal(e.to_string()),
            W::PartitionGone { topic, partition } => Self::PartitionNotFound { topic, partition },
            W::Closed => Self::ShuttingDown,
            W::Producer(floe_broker::state::Placement::OutOfOrder { expected }) => {
                Self::OutOfOrderSequence { expected }
            }
            W::Producer(_) => Self::internal(format!("{e} (not named for a producer)")),
            W::NoSpool => Self::invalid(Invalid::Query, e.to_string()),
            W::LocalIdempotent => Self::invalid(Invalid::Request, e.to_string()),
            W::Spool(ref source) => Self::internal(format!("{e}: {source}")),
        }
    }
}

impl From<crate::reader::FetchError> for Error {
    fn from(e: crate::reader::FetchError) -> Self {
        use crate::reader::FetchError as F;
        match e {
            F::TopicNotFound(topic) => Self::TopicNotFound { topic },
            F::PartitionNotFound { topic, partition } => Self::PartitionNotFound { topic, partition },
            F::OffsetOutOfRange { offset, log_start_offset, high_watermark } => {
                Self::OffsetOutOfRange { offset, log_start_offset, high_watermark }
            }
            F::Store(e) => Self::from(e),
        }
    }
}

impl From<crate::committer::CommitError> for Error {
    fn from(e: crate::committer::CommitError) -> Self {
        use crate::committer::CommitError as C;
        match e {
            C::Failed(e) => Self::from(e),
            C::NotHolder => Self::NotLeaseHolder,
            C::Closed => Self::ShuttingDown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_cross_the_wire_without_their_cause() {
        let e = Error::from(floe_broker::Error::MissingLogEntry { seq: 7 });
        assert!(std::error::Error::source(&e).is_some(), "the cause is kept locally");
        let json = serde_json::to_string(&e).expect("serializes");
        let back: Error = serde_json::from_str(&json).expect("deserializes");
        assert!(matches!(back, Error::CorruptData { ref what, source: None } if what == "log entry 7"), "{back:?}");
    }
}
