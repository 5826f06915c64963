//! What the accept loop does after a failed accept. At the file-descriptor limit (EMFILE,
//! ENFILE) every accept fails at once until a descriptor is freed: retrying at once spins a core
//! and writes a log line per failure. So the loop waits, longer after each failure in a row (from
//! a few milliseconds up to a second), and logs one line per [`LOG_EVERY`] saying how many
//! failures it did not log. Time comes in as arguments, so the rules are tested without a clock.

use std::time::{Duration, Instant};

/// The first pause after a failure: short, as one failure is often a passing shortage.
const FIRST_PAUSE: Duration = Duration::from_millis(5);
/// The longest pause: a freed descriptor is taken up within about this long.
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// While accepts keep failing, at most one log line per this long.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// The state of one listener's run of failed accepts.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    /// Failures since the last accepted connection.
    failures: u64,
    /// Failures since the last line logged about them.
    unlogged: u64,
    /// When the last line was logged, within the current run of failures.
    logged_at: Option<Instant>,
}

/// What to do after a failed accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterFailure {
    /// How long to wait before accepting again.
    pub pause: Duration,
    /// Whether to log this failure, and how many before it went unlogged.
    pub log: Option<u64>,
}

impl AcceptBackoff {
    /// A failure at `now`.
    pub fn failed(&mut self, now: Instant) -> AfterFailure {
        self.failures += 1;
        let pause = pause_after(self.failures);
        let due = self.logged_at.is_none_or(|at| now.duration_since(at) >= LOG_EVERY);
        if !due {
            self.unlogged += 1;
            return AfterFailure { pause, log: None };
        }
        self.logged_at = Some(now);
        let unlogged = std::mem::take(&mut self.unlogged);
        AfterFailure { pause, log: Some(unlogged) }
    }

    /// An accepted connection: the next failure starts over. Returns how many failures in a row
    /// this ends (0 when there were none), for a line saying accepting works again.
    pub fn succeeded(&mut self) -> u64 {
        let failures = std::mem::take(&mut self.failures);
        self.unlogged = 0;
        self.logged_at = None;
        failures
    }
}

/// The pause after the `n`th failure in a row: doubling from FIRST_PAUSE, up to MAX_PAUSE.
fn pause_after(n: u64) -> Duration {
    let doublings = u32::try_from(n.saturating_sub(1)).unwrap_or(u32::MAX).min(16);
    FIRST_PAUSE.saturating_mul(1 << doublings).min(MAX_PAUSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_to_a_second_and_start_over_after_a_success() {
        let mut b = AcceptBackoff::default();
        let now = Instant::now();
        let pauses: Vec<u128> = (0..10).map(|_| b.failed(now).pause.as_millis()).collect();
        assert_eq!(pauses, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(b.failed(now).pause, MAX_PAUSE, "stays at the ceiling");
        assert_eq!(b.succeeded(), 11);
        assert_eq!(b.failed(now).pause, FIRST_PAUSE);
        assert_eq!(pause_after(u64::MAX), MAX_PAUSE);
    }

    #[test]
    fn logs_the_first_failure_then_one_line_per_interval_with_the_count_left_out() {
        let mut b = AcceptBackoff::default();
        let start = Instant::now();
        assert_eq!(b.failed(start).log, Some(0));
        for i in 1..=50 {
            assert_eq!(b.failed(start + Duration::from_millis(i * 100)).log, None);
        }
        assert_eq!(b.failed(start + LOG_EVERY).log, Some(50));
        assert_eq!(b.failed(start + LOG_EVERY + Duration::from_secs(1)).log, None);
        assert_eq!(b.succeeded(), 53);
        assert_eq!(b.succeeded(), 0, "no run of failures to report");
        // A new run of failures is logged at once again, with nothing left over from the last.
        assert_eq!(b.failed(start + LOG_EVERY + Duration::from_secs(2)).log, Some(0));
    }
}
