//! Converts message expiry between the broker's `Instant`s and the absolute unix milliseconds
//! that records store, without a clock read per message.
//!
//! One pair of readings (`Instant::now()`, `SystemTime::now()`) taken when the store opens maps
//! one timeline onto the other; a record written by an earlier run converts back through this
//! run's pair, so a message keeps its remaining time-to-live across a restart (as measured by the
//! wall clock).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    instant: Instant,
    unix_ms: u64,
}

impl Clock {
    pub(crate) fn now() -> Clock {
        let unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Clock { instant: Instant::now(), unix_ms }
    }

    /// The unix milliseconds of `at`; never 0 (which means "no expiry" on disk).
    pub(crate) fn unix_ms_of(&self, at: Instant) -> u64 {
        let ms = if at >= self.instant {
            self.unix_ms.saturating_add((at - self.instant).as_millis() as u64)
        } else {
            self.unix_ms.saturating_sub((self.instant - at).as_millis() as u64)
        };
        ms.max(1)
    }

    /// The `Instant` of unix milliseconds `ms` (a time already past maps to one that is past
    /// too). An expiry too far ahead to represent is treated as none.
    pub(crate) fn instant_of(&self, ms: u64) -> Option<Instant> {
        if ms >= self.unix_ms {
            self.instant.checked_add(Duration::from_millis(ms - self.unix_ms))
        } else {
            Some(self.instant.checked_sub(Duration::from_millis(self.unix_ms - ms)).unwrap_or(self.instant))
        }
    }

    /// The stored form of an optional expiry.
    pub(crate) fn expiry_ms(&self, at: Option<Instant>) -> u64 {
        at.map_or(0, |at| self.unix_ms_of(at))
    }

    /// The expiry a stored value stands for.
    pub(crate) fn expiry(&self, ms: u64) -> Option<Instant> {
        if ms == 0 {
            None
        } else {
            self.instant_of(ms)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_to_the_millisecond() {
        let clock = Clock::now();
        let later = clock.instant + Duration::from_millis(1500);
        let back = clock.expiry(clock.expiry_ms(Some(later))).unwrap();
        assert!(back <= later && later - back < Duration::from_millis(1));
        assert_eq!(clock.expiry(clock.expiry_ms(None)), None);
        // A later run (another pair of readings) sees the same wall-clock deadline.
        let next_run =
            Clock { instant: clock.instant + Duration::from_secs(1), unix_ms: clock.unix_ms + 1000 };
        let back = next_run.expiry(clock.expiry_ms(Some(later))).unwrap();
        assert!(back <= later && later - back < Duration::from_millis(1));
    }

    #[test]
    fn past_and_far_future_do_not_panic() {
        let clock = Clock::now();
        assert!(clock.expiry(1).unwrap() <= Instant::now());
        let _ = clock.expiry(u64::MAX);
    }
}
