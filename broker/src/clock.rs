//! Wall-clock time in milliseconds since the Unix epoch. Used for record
//! timestamps, retention and delaying garbage collection; never for
//! correctness (the log clock in `state` does that job).

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
