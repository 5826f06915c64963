//! Refused logins: logged at a bounded rate, so a flood of bad logins cannot fill the disk, and,
//! when a limit is set (RabbitMQ has none), held against the address they came from: after
//! `limit` failures within a minute, that address's logins are refused without a password check
//! until the minute is over. Memory stays bounded whatever the number of addresses. Time comes in
//! as arguments: the core reads no clock.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::access::AuthFailure;

/// How long an address's failures count against it, from its first failure.
pub(crate) const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// The most addresses whose failures are remembered at once; beyond that the oldest record is
/// dropped. About 100 bytes each, the maps' slack included.
pub(crate) const TRACKED_PEERS: usize = 10_000;
/// The most refused logins logged per second; the rest are counted in a summary line.
pub(crate) const LOGGED_PER_SECOND: u32 = 10;
/// The period over which [`LOGGED_PER_SECOND`] is counted.
const LOG_PERIOD: Duration = Duration::from_secs(1);

/// A login the broker refused, or its protocol face did (credentials it could not read).
#[derive(Debug, Clone, Copy)]
pub struct RefusedLogin<'a> {
    /// The user named (empty when the credentials could not be read).
    pub username: &'a str,
    /// The authentication mechanism (`PLAIN`, `AMQPLAIN`).
    pub mechanism: &'a str,
    /// The client's address, when it has one.
    pub peer: Option<IpAddr>,
    /// Why.
    pub reason: AuthFailure,
}

/// The broker's record of refused logins.
#[derive(Debug, Default)]
pub(crate) struct Logins {
    /// None: no limit.
    limit: Mutex<Option<PeerFailures>>,
    log: Mutex<LogBudget>,
}

impl Logins {
    /// Sets the most failed logins per address and minute (None or 0: no limit); what was
    /// counted so far is forgotten.
    pub(crate) fn set_limit(&self, per_minute: Option<u32>) {
        let failures = per_minute.filter(|&n| n > 0).map(|n| PeerFailures::new(n, TRACKED_PEERS));
        *self.limit.lock() = failures;
    }

    /// Whether logins from `peer` are refused unchecked for now.
    pub(crate) fn is_blocked(&self, peer: Option<IpAddr>, now: Instant) -> bool {
        let Some(peer) = peer else { return false };
        self.limit.lock().as_mut().is_some_and(|failures| failures.is_blocked(peer, now))
    }

    /// Counts a refusal against its address (one refused unchecked does not count again), and
    /// logs it if the budget allows.
    pub(crate) fn refused(&self, login: &RefusedLogin<'_>, now: Instant) {
        if let (Some(peer), true) = (login.peer, login.reason != AuthFailure::TooManyFailures) {
            if let Some(failures) = self.limit.lock().as_mut() {
                failures.record(peer, now);
            }
        }
        let admitted = self.log.lock().admit(now);
        if let Some(n) = admitted.left_out {
            log_left_out(n);
        }
        if admitted.log {
            let (user, mechanism, reason) = (login.username, login.mechanism, login.reason.as_str());
            tracing::warn!(user, mechanism, reason, "login refused");
        }
    }

    /// Logs how many refusals went unlogged once their second is over, so the count is not held
    /// back until the next refusal.
    pub(crate) fn tick(&self, now: Instant) {
        let left_out = self.log.lock().flush(now);
        if let Some(n) = left_out {
            log_left_out(n);
        }
    }
}

/// The line standing for refusals that were not logged; it belongs to no connection.
fn log_left_out(not_logged: u64) {
    tracing::warn!(
        parent: None,
        not_logged,
        "more logins refused than are logged (at most {LOGGED_PER_SECOND} a second): these were only counted"
    );
}

/// The failed logins of each address within its current window, against a limit.
#[derive(Debug)]
pub(crate) struct PeerFailures {
    limit: u32,
    capacity: usize,
    /// Failures by address (see [`key`]) in its current window.
    windows: HashMap<IpAddr, u32>,
    /// The start and key of every window, oldest first: what expires or is evicted next.
    order: VecDeque<(Instant, IpAddr)>,
}

impl PeerFailures {
    /// Refuses an address's logins once it has failed `limit` times within a window.
    pub(crate) fn new(limit: u32, capacity: usize) -> Self {
        PeerFailures { limit, capacity, windows: HashMap::new(), order: VecDeque::new() }
    }

    /// Whether `peer` has used up its failures for now.
    pub(crate) fn is_blocked(&mut self, peer: IpAddr, now: Instant) -> bool {
        self.expire(now);
        self.windows.get(&key(peer)).is_some_and(|&failures| failures >= self.limit)
    }

    /// Counts a failed login of `peer`.
    pub(crate) fn record(&mut self, peer: IpAddr, now: Instant) {
        self.expire(now);
        let key = key(peer);
        if let Some(failures) = self.windows.get_mut(&key) {
            *failures = failures.saturating_add(1);
            return;
        }
        if self.windows.len() >= self.capacity {
            self.evict_oldest();
        }
        self.windows.insert(key, 1);
        self.order.push_back((now, key));
    }

    /// Forgets windows that are over. Every window has exactly one entry in `order` (a window is
    /// only created after the previous one of its key expired here), so the two stay in step.
    fn expire(&mut self, now: Instant) {
        while let Some(&(started, _)) = self.order.front() {
            if now.saturating_duration_since(started) < FAILURE_WINDOW {
                break;
            }
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        if let Some((_, key)) = self.order.pop_front() {
            self.windows.remove(&key);
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        debug_assert_eq!(self.windows.len(), self.order.len());
        self.windows.len()
    }
}

/// What failures are counted under: an IPv4 address (also when it reaches an IPv6 listener as
/// `::ffff:a.b.c.d`), or an IPv6 /64 network, since one host commonly has a whole /64 to pick
/// addresses from.
fn key(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// At most [`LOGGED_PER_SECOND`] lines per second; the lines left out are counted, and the
/// count is handed out once its period is over (with the next line, or by [`LogBudget::flush`]).
#[derive(Debug, Default)]
pub(crate) struct LogBudget {
    period_start: Option<Instant>,
    used: u32,
    left_out: u64,
}

/// Whether one line may be logged now, and how many before it were left out and not yet told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Admitted {
    pub(crate) log: bool,
    pub(crate) left_out: Option<u64>,
}

impl LogBudget {
    /// Asks to log one line at `now`.
    pub(crate) fn admit(&mut self, now: Instant) -> Admitted {
        let left_out = self.flush(now);
        let start = *self.period_start.get_or_insert(now);
        debug_assert!(now.saturating_duration_since(start) < LOG_PERIOD);
        if self.used < LOGGED_PER_SECOND {
            self.used += 1;
            return Admitted { log: true, left_out };
        }
        self.left_out += 1;
        Admitted { log: false, left_out }
    }

    /// Ends the period if it is over; returns how many lines it left out, if any.
    pub(crate) fn flush(&mut self, now: Instant) -> Option<u64> {
        let start = self.period_start?;
        if now.saturating_duration_since(start) < LOG_PERIOD {
            return None;
        }
        self.period_start = None;
        self.used = 0;
        Some(std::mem::take(&mut self.left_out)).filter(|&n| n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_is_blocked_after_the_limit_until_its_minute_is_over() {
        let mut f = PeerFailures::new(3, 100);
        let t0 = Instant::now();
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        for i in 0..3 {
            assert!(!f.is_blocked(a, t0 + Duration::from_secs(i)));
            f.record(a, t0 + Duration::from_secs(i));
        }
        assert!(f.is_blocked(a, t0 + Duration::from_secs(3)));
        assert!(!f.is_blocked(b, t0 + Duration::from_secs(3)), "other addresses are not affected");
        assert!(f.is_blocked(a, t0 + FAILURE_WINDOW - Duration::from_millis(1)));
        assert!(!f.is_blocked(a, t0 + FAILURE_WINDOW), "the window counts from the first failure");
        assert_eq!(f.tracked(), 0);
    }

    #[test]
    fn mapped_ipv4_counts_as_ipv4_and_ipv6_counts_by_slash_64() {
        let mut f = PeerFailures::new(2, 100);
        let t0 = Instant::now();
        f.record(ip("127.0.0.1"), t0);
        f.record(ip("::ffff:127.0.0.1"), t0);
        assert!(f.is_blocked(ip("127.0.0.1"), t0));
        f.record(ip("2001:db8:1:2::1"), t0);
        f.record(ip("2001:db8:1:2:ffff::9"), t0);
        assert!(f.is_blocked(ip("2001:db8:1:2::77"), t0));
        assert!(!f.is_blocked(ip("2001:db8:1:3::1"), t0));
        assert_eq!(f.tracked(), 2);
    }

    #[test]
    fn memory_is_bounded_and_the_oldest_record_goes_first() {
        let mut f = PeerFailures::new(1, 3);
        let t0 = Instant::now();
        for i in 0..1000u32 {
            f.record(IpAddr::V4(i.into()), t0 + Duration::from_millis(u64::from(i)));
            assert!(f.tracked() <= 3);
        }
        let later = t0 + Duration::from_millis(1000);
        assert!(f.is_blocked(IpAddr::V4(999u32.into()), later));
        assert!(!f.is_blocked(IpAddr::V4(996u32.into()), later), "evicted");
        // Expired windows are dropped before anything younger is evicted.
        f.record(ip("10.9.9.9"), t0 + FAILURE_WINDOW * 2);
        assert_eq!(f.tracked(), 1);
    }

    #[test]
    fn a_window_starts_again_after_it_expired() {
        let mut f = PeerFailures::new(2, 10);
        let t0 = Instant::now();
        let a = ip("10.0.0.1");
        f.record(a, t0);
        f.record(a, t0 + FAILURE_WINDOW);
        assert!(!f.is_blocked(a, t0 + FAILURE_WINDOW), "one failure in the new window");
        f.record(a, t0 + FAILURE_WINDOW + Duration::from_secs(1));
        assert!(f.is_blocked(a, t0 + FAILURE_WINDOW + Duration::from_secs(1)));
        assert_eq!(f.tracked(), 1);
    }

    #[test]
    fn the_log_budget_admits_a_few_lines_per_second_and_counts_the_rest() {
        let mut budget = LogBudget::default();
        let t0 = Instant::now();
        let admitted: Vec<Admitted> = (0..25).map(|_| budget.admit(t0)).collect();
        assert_eq!(admitted.iter().filter(|a| a.log).count(), LOGGED_PER_SECOND as usize);
        assert!(admitted.iter().all(|a| a.left_out.is_none()));
        assert_eq!(budget.flush(t0 + Duration::from_millis(999)), None, "the period is not over");
        // The next line after the period carries the count; a flush then has nothing.
        let next = budget.admit(t0 + LOG_PERIOD);
        assert_eq!(next, Admitted { log: true, left_out: Some(15) });
        assert_eq!(budget.flush(t0 + LOG_PERIOD * 3), None);
        // Or a flush once the period is over hands it out, when no line comes.
        for _ in 0..12 {
            budget.admit(t0 + LOG_PERIOD * 4);
        }
        assert_eq!(budget.flush(t0 + LOG_PERIOD * 5), Some(2));
        assert_eq!(budget.flush(t0 + LOG_PERIOD * 6), None);
    }
}
