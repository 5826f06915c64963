//! The disk alarm: on while the data directory's disk has less free space than
//! `disk_free_limit`.
//!
//! Reading the free space now and then is not enough: at a few hundred MB/s a disk fills up
//! between two readings. So each reading sets the store's write budget (the bytes above the
//! limit, see [`warren_store::Space`]) and the store charges every write against it: the alarm
//! is on while the budget is used up, which the write that uses it up makes known at once.
//! Readings come every second, and sooner when the budget would run out before the next one at
//! the rate it is being spent.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use warren_store::Space;

/// The longest time between two readings.
const MAX_INTERVAL: Duration = Duration::from_secs(1);
/// The shortest (a reading is a statvfs call: cheap).
const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Between readings while the alarm is on: until space comes back.
const WHILE_LOW: Duration = Duration::from_millis(250);
/// How long after the budget runs out before the next reading: writes charged just before it
/// may not have reached the disk yet, and a reading that missed them would end the alarm at
/// once.
const SETTLE: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy)]
struct Reading {
    at: Instant,
    budget: i64,
    free: u64,
}

/// The free space of the data directory's disk against the limit.
pub struct DiskWatch {
    dir: PathBuf,
    /// Bytes; 0 turns the alarm off.
    limit: u64,
    space: Arc<Space>,
    next_reading: Instant,
    /// The last reading: when it was taken, the budget it set and the free bytes it read. The
    /// rate of spending is measured from it.
    last: Option<Reading>,
    exhausted: bool,
    /// A failing reading is logged once, until readings work again.
    unreadable: bool,
}

impl DiskWatch {
    pub fn new(dir: PathBuf, limit: u64, space: Arc<Space>) -> DiskWatch {
        if limit == 0 {
            space.set_unlimited();
        }
        let now = Instant::now();
        DiskWatch { dir, limit, space, next_reading: now, last: None, exhausted: false, unreadable: false }
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Whether the alarm is on at `now`, reading the free space if one is due.
    pub fn check(&mut self, now: Instant) -> bool {
        if self.limit == 0 {
            return false;
        }
        if now >= self.next_reading {
            self.read(now);
        }
        let exhausted = self.space.is_exhausted();
        if exhausted && !self.exhausted {
            self.next_reading = self.next_reading.max(now + SETTLE);
        }
        self.exhausted = exhausted;
        exhausted
    }

    /// Whether the free space has been read (it has not while the alarm is off, or when reading
    /// fails from the start).
    pub fn last_reading(&self) -> Option<Instant> {
        self.last.map(|r| r.at)
    }

    /// Free bytes by the store's count: the last reading less what was written since.
    pub fn free_estimate(&self) -> u64 {
        let Some(last) = self.last else { return 0 };
        let written = last.budget.saturating_sub(self.space.budget()).max(0);
        last.free.saturating_sub(written.unsigned_abs())
    }

    /// Whether the disk has `room` bytes free beyond the limit, by a fresh reading.
    pub fn has_room(&self, room: u64) -> bool {
        fs4::available_space(&self.dir).is_ok_and(|free| free >= self.limit.saturating_add(room))
    }

    fn read(&mut self, now: Instant) {
        let before = self.space.budget();
        let mark = self.space.mark();
        match fs4::available_space(&self.dir) {
            Ok(free) => {
                if std::mem::take(&mut self.unreadable) {
                    tracing::info!(dir = %self.dir.display(), "free disk space can be read again");
                }
                let above = i128::from(free) - i128::from(self.limit);
                let above = i64::try_from(above).unwrap_or(if above < 0 { i64::MIN } else { i64::MAX });
                let budget = self.space.set_available(mark, above);
                self.next_reading = now + self.interval(now, before, budget);
                self.last = Some(Reading { at: now, budget, free });
            }
            Err(error) => {
                if !std::mem::replace(&mut self.unreadable, true) {
                    tracing::warn!(%error, dir = %self.dir.display(), "cannot read free disk space");
                }
                self.next_reading = now + MAX_INTERVAL;
            }
        }
    }

    /// Time to the next reading: half of what the budget would last at the rate it was spent
    /// since the last reading (`before`: the budget just before this one), within bounds.
    fn interval(&self, now: Instant, before: i64, budget: i64) -> Duration {
        if budget <= 0 {
            return WHILE_LOW;
        }
        let Some(last) = self.last else { return MIN_INTERVAL };
        let spent = last.budget.saturating_sub(before);
        let elapsed = now.duration_since(last.at).as_secs_f64();
        if spent <= 0 || elapsed <= 0.0 {
            return MAX_INTERVAL;
        }
        let lasts = budget as f64 / (spent as f64 / elapsed);
        Duration::from_secs_f64((lasts / 2.0).min(MAX_INTERVAL.as_secs_f64())).max(MIN_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(limit: u64) -> DiskWatch {
        DiskWatch::new(std::env::temp_dir(), limit, Arc::default())
    }

    #[test]
    fn a_limit_of_zero_is_off() {
        let mut w = watch(0);
        assert!(!w.check(Instant::now()));
        assert_eq!(w.space.budget(), i64::MAX);
    }

    #[test]
    fn a_limit_above_the_free_space_raises_the_alarm() {
        let mut w = watch(u64::MAX);
        assert!(w.check(Instant::now()));
        assert!(w.space.is_exhausted());
        let free = fs4::available_space(std::env::temp_dir()).unwrap();
        assert!(w.free_estimate().abs_diff(free) < free / 10 + (1 << 20), "{} of {free}", w.free_estimate());
    }

    #[test]
    fn readings_come_sooner_as_the_budget_runs_low() {
        let w = watch(1);
        let start = Instant::now();
        let mut w = DiskWatch { last: Some(Reading { at: start, budget: 1_000_000, free: 0 }), ..w };
        let now = start + Duration::from_secs(1);
        // 900 kB spent in a second, 99 kB left: it lasts 0.11 s; read again in half of that
        let next = w.interval(now, 100_000, 99_000);
        assert!(next.abs_diff(Duration::from_millis(55)) < Duration::from_millis(1), "{next:?}");
        assert_eq!(w.interval(now, 1_000_000, 5_000_000), MAX_INTERVAL, "nothing spent");
        assert_eq!(w.interval(now, 1, 1), MIN_INTERVAL);
        assert_eq!(w.interval(now, 0, 0), WHILE_LOW);
        w.last = None;
        assert_eq!(w.interval(now, 0, 10), MIN_INTERVAL, "no rate known after the first reading");
    }
}
