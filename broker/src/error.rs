//! The one error type of the broker core.

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    /// The object store failed in a way that was not resolved by retrying.
    #[error("object store error: {0}")]
    Store(#[from] object_store::Error),

    /// The store accepted a second create-only PUT of the same key.
    #[error(
        "unsafe object store: it accepted a second create-only PUT (If-None-Match: *) of {key}; \
         Floe needs a store that honours conditional creates (AWS S3, MinIO, a local directory)"
    )]
    UnsafeStore { key: String },

    /// Bytes in the bucket do not decode as what their key says they are.
    #[error("corrupt {what}: {reason}")]
    Corrupt { what: String, reason: String },

    /// A log entry that cannot be decoded: no agent can apply anything after
    /// it, so every agent stops and says so (docs/recovery.md).
    #[error(
        "log entry {seq} (key {key}) cannot be decoded: {reason}; every agent stops here until it is \
         repaired (see docs/recovery.md)"
    )]
    CorruptLogEntry { seq: u64, key: String, reason: String },

    /// Something Floe itself produced could not be encoded (too large, or a bug).
    #[error("cannot encode {what}: {reason}")]
    Encode { what: String, reason: String },

    /// The bucket was written by a Floe with a format this build does not know.
    #[error("unsupported format: {0}")]
    UnsupportedFormat(String),

    /// A store URL this build cannot open.
    #[error("invalid store url {url:?}: {reason}")]
    InvalidStoreUrl { url: String, reason: String },

    /// A commit could not be settled: every attempt failed and the outcome is unknown.
    #[error("commit outcome unknown after {attempts} attempts at log position {seq}: {last}")]
    CommitUnresolved { seq: u64, attempts: u32, last: String },

    /// A log position that must exist (it was listed or referenced) is gone.
    #[error("log entry {seq} is missing")]
    MissingLogEntry { seq: u64 },

    /// A local file or directory (a cache tier) could not be used.
    #[error("{what}: {source}")]
    LocalIo { what: String, source: std::io::Error },

    /// This node's clock is too far from the store's for it to commit safely.
    #[error(
        "this node's clock is {offset_ms} ms off from the object store's (the bound is {bound_ms} ms); \
         it commits nothing until its clock is fixed (see docs/commit-protocol.md)"
    )]
    ClockSkew { offset_ms: i64, bound_ms: u64 },

    /// An entry could not be applied in order.
    #[error("log apply out of order: expected position {expected}, got {got}")]
    OutOfOrder { expected: u64, got: u64 },
}

/// What an error means for whoever asked, so each gets the right answer
/// (see the agent's `api/error.rs`, the one place that maps them to HTTP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The store did not answer or the outcome is unknown: a retry may succeed.
    Unavailable,
    /// Data the log references is not in the store.
    Missing,
    /// Bytes in the bucket do not decode, or fail their checksum.
    Corrupt,
    /// A misconfiguration (store permissions, an unsafe store) or a bug: a
    /// retry will not help; an operator must.
    Internal,
}

impl Error {
    pub fn corrupt(what: impl Into<String>, reason: impl ToString) -> Self {
        Self::Corrupt { what: what.into(), reason: reason.to_string() }
    }

    pub fn encode(what: impl Into<String>, reason: impl ToString) -> Self {
        Self::Encode { what: what.into(), reason: reason.to_string() }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Store(e) => store_error_kind(e),
            Self::CommitUnresolved { .. } | Self::ClockSkew { .. } => ErrorKind::Unavailable,
            Self::Corrupt { .. } | Self::CorruptLogEntry { .. } | Self::MissingLogEntry { .. } => ErrorKind::Corrupt,
            Self::UnsafeStore { .. }
            | Self::UnsupportedFormat(_)
            | Self::InvalidStoreUrl { .. }
            | Self::LocalIo { .. }
            | Self::OutOfOrder { .. }
            | Self::Encode { .. } => ErrorKind::Internal,
        }
    }
}

/// How an object-store error classifies. Anything the store did not say
/// precisely (timeouts, 5xx, resets: `Generic`) is taken as transient.
pub fn store_error_kind(e: &object_store::Error) -> ErrorKind {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => ErrorKind::Missing,
        E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::InvalidPath { .. }
        | E::NotSupported { .. }
        | E::NotImplemented { .. }
        | E::UnknownConfigurationKey { .. }
        | E::AlreadyExists { .. }
        | E::Precondition { .. }
        | E::NotModified { .. } => ErrorKind::Internal,
        _ => ErrorKind::Unavailable,
    }
}
