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

    /// An entry could not be applied in order.
    #[error("log apply out of order: expected position {expected}, got {got}")]
    OutOfOrder { expected: u64, got: u64 },
}

impl Error {
    pub fn corrupt(what: impl Into<String>, reason: impl ToString) -> Self {
        Self::Corrupt { what: what.into(), reason: reason.to_string() }
    }
}
