//! How many client connections the agent holds open at once, by default.
//!
//! Each connection takes a file descriptor, and so does every file the
//! local store writes and every connection to the object store or another
//! agent. Without a bound, a client opening connections (idle ones, or
//! long-polls) until the process's open-file limit is reached would make
//! every write fail, other clients' included; with one, further clients
//! wait in the listen backlog instead.

/// Half of the open-file limit is left for everything else.
const SHARE_OF_OPEN_FILES: u64 = 2;
/// Beyond this, connections are bounded by memory (each holds hyper's
/// buffers) more than by descriptors: twice `--max-concurrent-requests`'s
/// default, so long-polls meet that bound first.
const MAX_DEFAULT: usize = 8192;

/// The default `--max-connections` for an open-file limit (`None`: unknown).
pub(super) fn default_max(open_files: Option<u64>) -> usize {
    open_files
        .map_or(MAX_DEFAULT, |limit| usize::try_from(limit / SHARE_OF_OPEN_FILES).unwrap_or(usize::MAX))
        .clamp(1, MAX_DEFAULT)
}

/// The process's soft open-file limit (`ulimit -n`); `None` when it cannot
/// be read, or has none.
pub(super) fn open_file_limit() -> Option<u64> {
    let (soft, _hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).ok()?;
    (soft != nix::sys::resource::RLIM_INFINITY).then_some(soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_the_open_file_limit_within_bounds() {
        assert_eq!(default_max(Some(1024)), 512);
        assert_eq!(default_max(Some(256)), 128);
        assert_eq!(default_max(Some(1)), 1, "at least one");
        assert_eq!(default_max(Some(65_536)), MAX_DEFAULT);
        assert_eq!(default_max(None), MAX_DEFAULT, "no limit known");
    }
}
