//! The unit tests' allocator is jemalloc, as the agent's: its per-thread
//! counters say how much a piece of work allocated, whatever else runs.

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// `f`'s result, and the bytes this thread allocated while it ran (those
/// freed again included: an upper bound on what it held at once).
pub fn allocated_during<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let counter = tikv_jemalloc_ctl::thread::allocatedp::mib()
        .and_then(|mib| mib.read())
        .unwrap_or_else(|e| panic!("jemalloc's thread counter: {e}"));
    let start = counter.get();
    let out = f();
    (out, counter.get() - start)
}
