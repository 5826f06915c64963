//! Keeps node-wide counters from ever going backwards between scrapes.
//!
//! The core folds a closing channel's or a deleted queue's counts into its totals right after
//! taking it out of its listings, so a scrape in that instant can miss them; a counter that
//! drops looks like a restart to Prometheus and `rate()` would show a spike. Each scrape
//! reports the higher of what it read and what was reported before.

use std::sync::Mutex;

use super::collect::NodeCounters;

/// The highest value reported so far of each node-wide counter.
#[derive(Debug, Default)]
pub(crate) struct Monotonic {
    highest: Mutex<Vec<u64>>,
}

impl Monotonic {
    /// Raises every counter in `counters` to at least what was reported before, and records the
    /// result.
    pub(crate) fn hold(&self, counters: &mut NodeCounters) {
        let mut highest = self.highest.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut values = counters.values_mut();
        highest.resize(values.len(), 0);
        for (value, high) in values.iter_mut().zip(highest.iter_mut()) {
            **value = (**value).max(*high);
            *high = **value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_read_lower_is_reported_as_before() {
        let guard = Monotonic::default();
        let mut first = NodeCounters { logins_succeeded: 5, ..NodeCounters::default() };
        first.churn.0[warren_broker::ChurnEvent::ConnectionCreated as usize] = 3;
        guard.hold(&mut first);
        let mut dip = NodeCounters { logins_succeeded: 4, ..NodeCounters::default() };
        dip.churn.0[warren_broker::ChurnEvent::ConnectionCreated as usize] = 4;
        guard.hold(&mut dip);
        assert_eq!(
            (dip.logins_succeeded, dip.churn.get(warren_broker::ChurnEvent::ConnectionCreated)),
            (5, 4)
        );
    }
}
