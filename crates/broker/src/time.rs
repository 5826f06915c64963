//! Time as the broker core sees it: handed in by its callers, never read from a clock here, so
//! every rule that depends on time (TTLs, expiry, delays, timeouts) runs on simulated time in tests.

use std::time::{Duration, Instant};

/// The current time, as a caller read it: a monotonic instant for deadlines, and the wall clock
/// for what is written into messages and stored (`x-death` times, delayed messages' due times).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// For deadlines: TTLs, `x-expires`, delays, consumer timeouts.
    pub instant: Instant,
    /// Milliseconds since the Unix epoch.
    pub unix_ms: u64,
}

impl Now {
    /// A time from its two readings.
    pub fn new(instant: Instant, unix_ms: u64) -> Now {
        Now { instant, unix_ms }
    }

    /// This time moved `by` later (simulated time in tests).
    pub fn later(self, by: Duration) -> Now {
        Now { instant: self.instant + by, unix_ms: self.unix_ms + by.as_millis() as u64 }
    }

    /// Seconds since the Unix epoch (AMQP timestamps).
    pub fn unix_secs(self) -> u64 {
        self.unix_ms / 1000
    }
}
