//! When each produce request is due.

use std::time::Duration;

use tokio::time::Instant;

/// Fixed-rate schedule: request `i` is due at `start + i * interval` however
/// long earlier requests took, so a stall is charged to every request it
/// delayed (coordinated-omission correction: latency runs from the due time).
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    start: Instant,
    interval: Option<Duration>,
    sent: u64,
}

impl Schedule {
    pub fn new(start: Instant, interval: Option<Duration>) -> Self {
        Self { start, interval, sent: 0 }
    }

    /// When the next request is due (`now` in a closed loop).
    pub fn next_due(&mut self, now: Instant) -> Instant {
        let due = match self.interval {
            Some(i) => self.start + i.mul_f64(self.sent as f64),
            None => now,
        };
        self.sent += 1;
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_rate_schedule_ignores_slow_answers() {
        let start = Instant::now();
        let mut s = Schedule::new(start, Some(Duration::from_millis(10)));
        // Whenever the loop gets round to asking (late, after a stall), the
        // due times stay on the grid, so latency is charged from them.
        let late = start + Duration::from_secs(5);
        let due: Vec<Duration> = (0..4).map(|_| s.next_due(late) - start).collect();
        assert_eq!(due, [0, 10, 20, 30].map(Duration::from_millis));
        let mut closed = Schedule::new(start, None);
        assert_eq!(closed.next_due(late), late);
    }
}
