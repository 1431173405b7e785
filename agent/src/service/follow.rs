//! The log follower: learns entries committed by other agents, so long-polls
//! wake and reads stay fresh, at a pace that costs an idle agent at most one
//! GET per `IDLE_POLL`.

use std::sync::{Arc, Weak};
use std::time::Duration;

use floe_broker::MetadataLog;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Ticks;

/// The longest gap between two polls of an agent nobody is waiting on.
/// Reads that need fresher state catch up themselves first, so only
/// metadata seen without a read (stats, the console) ages this much.
pub const IDLE_POLL: Duration = Duration::from_secs(1);

/// When to poll, in ticks of the poll interval. Every tick polls while a
/// reader waits for the next entry (a long-poll must wake within one
/// interval) and after a poll that found entries; after polls that found
/// nothing the gap doubles, up to `max_gap` skipped ticks.
#[derive(Debug)]
pub struct PollPace {
    max_gap: u32,
    gap: u32,
    skipped: u32,
}

impl PollPace {
    pub fn new(every: Duration) -> Self {
        let ticks = IDLE_POLL.as_millis().div_ceil(every.as_millis().max(1));
        let max_gap = u32::try_from(ticks.saturating_sub(1)).unwrap_or(u32::MAX);
        Self { max_gap, gap: 0, skipped: 0 }
    }

    /// Whether this tick polls.
    pub fn due(&mut self, readers_waiting: bool) -> bool {
        if readers_waiting || self.skipped >= self.gap {
            self.skipped = 0;
            true
        } else {
            self.skipped += 1;
            false
        }
    }

    /// What the poll found: new entries bring the pace back to every tick.
    pub fn polled(&mut self, found_entries: bool) {
        self.gap = if found_entries { 0 } else { (self.gap * 2 + 1).min(self.max_gap) };
    }
}

/// Follows the log until `stop`. A log entry that does not decode stops the
/// agent: nothing after it can be applied, and retrying would only spin.
///
/// # Cancel safety
/// Cancel safe: catching up only reads, and applies whole entries.
pub async fn follow(
    log: Weak<MetadataLog>,
    every: Duration,
    fatal: watch::Sender<Option<Arc<floe_broker::Error>>>,
    stop: CancellationToken,
) {
    let mut ticks = Ticks::new(every, stop);
    let mut pace = PollPace::new(every);
    while ticks.next().await {
        let Some(log) = log.upgrade() else { return };
        if !pace.due(log.waiting() > 0) {
            continue;
        }
        let before = log.applied();
        match log.catch_up().await {
            Ok(applied) => pace.polled(applied > before),
            Err(e @ floe_broker::Error::CorruptLogEntry { .. }) => {
                tracing::error!(error = %e, "stopping");
                fatal.send_replace(Some(Arc::new(e)));
                return;
            }
            Err(e) => {
                pace.polled(false);
                tracing::warn!(error = %e, "cannot read the metadata log");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which of `ticks` ticks poll, given what each poll finds.
    fn polls(pace: &mut PollPace, ticks: usize, waiting: bool, finds: bool) -> Vec<usize> {
        (0..ticks)
            .filter(|_| {
                let due = pace.due(waiting);
                if due {
                    pace.polled(finds);
                }
                due
            })
            .collect()
    }

    #[test]
    fn an_idle_agent_backs_off_to_one_poll_per_idle_interval() {
        let mut pace = PollPace::new(Duration::from_millis(250));
        let polled = polls(&mut pace, 40, false, false);
        // Backing off: gaps of 2 ticks, then 4 (1 s at 250 ms) from then on.
        assert_eq!(&polled[..4], &[0, 2, 6, 10]);
        assert!(polled.windows(2).skip(2).all(|w| w[1] - w[0] == 4), "{polled:?}");
    }

    #[test]
    fn a_waiting_reader_or_new_entries_poll_every_tick() {
        let mut pace = PollPace::new(Duration::from_millis(250));
        polls(&mut pace, 40, false, false);
        assert_eq!(polls(&mut pace, 5, true, false), vec![0, 1, 2, 3, 4], "a long-poll waits: every tick");
        let mut pace = PollPace::new(Duration::from_millis(250));
        polls(&mut pace, 40, false, false);
        // Backed off, the next poll finds entries: from then on every tick polls.
        assert!(!polls(&mut pace, 4, false, true).is_empty());
        assert_eq!(polls(&mut pace, 5, false, true), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn an_interval_longer_than_the_idle_gap_polls_every_tick() {
        let mut pace = PollPace::new(Duration::from_secs(2));
        assert_eq!(polls(&mut pace, 5, false, false), vec![0, 1, 2, 3, 4]);
    }
}
