//! The calling thread's CPU time: what it ran, not what it waited for.
//! For measurements (the compression share, the bench's CPU floor), never
//! for decisions, which take time from the injected clock.

/// This thread's CPU time so far, in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`,
/// a system call); `None` off Linux.
#[cfg(target_os = "linux")]
pub fn thread_ns() -> Option<u64> {
    clock_ns(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
}

#[cfg(not(target_os = "linux"))]
pub fn thread_ns() -> Option<u64> {
    None
}

/// This process's CPU time so far (all its threads, user and system), in
/// nanoseconds (`CLOCK_PROCESS_CPUTIME_ID`); `None` off Linux and macOS.
#[cfg(any(target_os = "linux", target_vendor = "apple"))]
pub fn process_ns() -> Option<u64> {
    clock_ns(nix::time::ClockId::CLOCK_PROCESS_CPUTIME_ID)
}

#[cfg(any(target_os = "linux", target_vendor = "apple"))]
fn clock_ns(clock: nix::time::ClockId) -> Option<u64> {
    let t = nix::time::clock_gettime(clock).ok()?;
    Some(u64::try_from(t.tv_sec()).ok()? * 1_000_000_000 + u64::try_from(t.tv_nsec()).ok()?)
}

#[cfg(not(any(target_os = "linux", target_vendor = "apple")))]
pub fn process_ns() -> Option<u64> {
    None
}
