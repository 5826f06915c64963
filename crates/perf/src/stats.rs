//! Counters, latency histograms and publisher-confirm accounting.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::Notify;

/// Per-task counters, on their own cache line so tasks on different cores do not contend.
#[repr(align(64))]
#[derive(Default, Debug)]
pub struct Counters {
    pub sent: AtomicU64,
    pub confirmed: AtomicU64,
    pub nacked: AtomicU64,
    pub received: AtomicU64,
    /// Set when a producer has published (and had confirmed) all of --pmessages, or a consumer
    /// has received --cmessages.
    pub finished: AtomicBool,
    /// `Clock::now_ns` when `finished` was set.
    pub finished_ns: AtomicU64,
    /// `Clock::now_ns` of the last read that delivered messages.
    pub last_receive_ns: AtomicU64,
}

impl Counters {
    pub fn finish(&self, now_ns: u64) {
        self.finished_ns.store(now_ns, Ordering::Relaxed);
        self.finished.store(true, Ordering::Release);
    }

    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }
}

/// Sums of all tasks' counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub sent: u64,
    pub confirmed: u64,
    pub nacked: u64,
    pub received: u64,
}

impl Totals {
    pub fn sum<'a>(counters: impl IntoIterator<Item = &'a Counters>) -> Totals {
        let mut t = Totals::default();
        for c in counters {
            t.sent += c.sent.load(Ordering::Relaxed);
            t.confirmed += c.confirmed.load(Ordering::Relaxed);
            t.nacked += c.nacked.load(Ordering::Relaxed);
            t.received += c.received.load(Ordering::Relaxed);
        }
        t
    }
}

pub fn new_histogram() -> Histogram<u64> {
    // Nanoseconds, 3 significant digits, growing as needed.
    Histogram::new(3).expect("valid histogram parameters")
}

/// A latency histogram shared by tasks (each records a whole read's worth under one lock) and
/// drained by the reporter once per interval.
pub struct SharedLatency {
    interval: Mutex<Histogram<u64>>,
    total: Mutex<Histogram<u64>>,
}

impl Default for SharedLatency {
    fn default() -> Self {
        SharedLatency { interval: Mutex::new(new_histogram()), total: Mutex::new(new_histogram()) }
    }
}

impl SharedLatency {
    /// Record a batch of nanosecond values.
    pub fn record_all(&self, values: &[u64]) {
        if values.is_empty() {
            return;
        }
        let mut h = self.interval.lock();
        for &v in values {
            let _ = h.record(v);
        }
    }

    /// Percentiles of the interval since the last call; the interval is folded into the total.
    pub fn take_interval(&self) -> Option<Percentiles> {
        let h = {
            let mut interval = self.interval.lock();
            let h = interval.clone();
            interval.reset();
            h
        };
        let _ = self.total.lock().add(&h);
        Percentiles::of(&h)
    }

    /// Percentiles of everything recorded (including the current interval).
    pub fn total(&self) -> Option<Percentiles> {
        let mut all = self.total.lock().clone();
        let _ = all.add(&*self.interval.lock());
        Percentiles::of(&all)
    }
}

/// Latency summary in microseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Option<Percentiles> {
        if h.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Some(Percentiles {
            count: h.len(),
            mean: h.mean() / 1000.0,
            p50: us(h.value_at_quantile(0.5)),
            p90: us(h.value_at_quantile(0.9)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        })
    }

    pub fn to_json(p: Option<Percentiles>) -> Value {
        match p {
            None => Value::Null,
            Some(p) => json!({
                "count": p.count,
                "mean": round2(p.mean),
                "p50": round2(p.p50),
                "p90": round2(p.p90),
                "p99": round2(p.p99),
                "p99.9": round2(p.p999),
                "max": round2(p.max),
            }),
        }
    }

    /// "p50/p99/p99.9" for progress lines, in µs or ms.
    pub fn short(p: Option<Percentiles>) -> String {
        match p {
            None => "-".into(),
            Some(p) => format!("{}/{}/{}", fmt_us(p.p50), fmt_us(p.p99), fmt_us(p.p999)),
        }
    }
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A duration given in µs, printed with a unit that keeps it short.
pub fn fmt_us(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0}µs")
    } else if us < 1_000_000.0 {
        format!("{:.1}ms", us / 1000.0)
    } else {
        format!("{:.2}s", us / 1e6)
    }
}

/// The part of publisher-confirm accounting a producer's writer and its reader share: the
/// intended send time of every unconfirmed message (a ring indexed by sequence number) and the
/// lowest unconfirmed sequence number, which bounds how far ahead the writer may go.
pub struct ConfirmWindow {
    send_ns: Box<[AtomicU64]>,
    mask: u64,
    window: u64,
    lowest_unconfirmed: AtomicU64,
    pub progress: Notify,
}

impl ConfirmWindow {
    /// Sequence numbers start at 1 (the first publish after confirm.select).
    pub fn new(window: u32) -> ConfirmWindow {
        let window = u64::from(window.max(1));
        let size = window.next_power_of_two();
        ConfirmWindow {
            send_ns: (0..size).map(|_| AtomicU64::new(0)).collect(),
            mask: size - 1,
            window,
            lowest_unconfirmed: AtomicU64::new(1),
            progress: Notify::new(),
        }
    }

    /// How many more messages may be published after `next_seq - 1` were.
    pub fn room(&self, next_seq: u64) -> u64 {
        let lowest = self.lowest_unconfirmed.load(Ordering::Acquire);
        (lowest + self.window).saturating_sub(next_seq)
    }

    /// Remember when message `seq` was meant to be sent (call before publishing it).
    #[inline]
    pub fn set_send_time(&self, seq: u64, intended_ns: u64) {
        self.send_ns[(seq & self.mask) as usize].store(intended_ns, Ordering::Release);
    }

    fn send_time(&self, seq: u64) -> u64 {
        self.send_ns[(seq & self.mask) as usize].load(Ordering::Acquire)
    }

    pub fn lowest_unconfirmed(&self) -> u64 {
        self.lowest_unconfirmed.load(Ordering::Acquire)
    }
}

/// The reader's side of confirm accounting: applies basic.ack / basic.nack (single or multiple,
/// possibly out of order) and reports the latency of every newly confirmed message.
pub struct ConfirmTracker {
    done: Vec<bool>,
    mask: u64,
    lowest: u64,
}

impl ConfirmTracker {
    pub fn new(window: &ConfirmWindow) -> ConfirmTracker {
        ConfirmTracker { done: vec![false; window.send_ns.len()], mask: window.mask, lowest: 1 }
    }

    /// Applies an ack or nack of `tag` (`multiple`: every unconfirmed message up to it) given that
    /// `published` messages were sent; pushes each newly confirmed message's latency to `lat`.
    /// Returns how many messages it confirmed. Tags outside the unconfirmed range are ignored.
    pub fn apply(
        &mut self,
        window: &ConfirmWindow,
        tag: u64,
        multiple: bool,
        published: u64,
        now_ns: u64,
        lat: &mut Vec<u64>,
    ) -> u64 {
        if tag < self.lowest || tag > published {
            return 0;
        }
        let mut newly = 0;
        if multiple {
            for seq in self.lowest..=tag {
                let slot = &mut self.done[(seq & self.mask) as usize];
                if *slot {
                    *slot = false;
                } else {
                    lat.push(crate::clock::latency_ns(window.send_time(seq), now_ns));
                    newly += 1;
                }
            }
            self.lowest = tag + 1;
        } else {
            let slot = &mut self.done[(tag & self.mask) as usize];
            if *slot {
                return 0;
            }
            lat.push(crate::clock::latency_ns(window.send_time(tag), now_ns));
            newly = 1;
            if tag == self.lowest {
                self.lowest += 1;
            } else {
                *slot = true;
            }
        }
        // Skip over messages already confirmed out of order.
        while self.lowest <= published && self.done[(self.lowest & self.mask) as usize] {
            self.done[(self.lowest & self.mask) as usize] = false;
            self.lowest += 1;
        }
        window.lowest_unconfirmed.store(self.lowest, Ordering::Release);
        window.progress.notify_one();
        newly
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_limits_outstanding() {
        let w = ConfirmWindow::new(3);
        assert_eq!(w.room(1), 3);
        for seq in 1..=3 {
            w.set_send_time(seq, seq * 100);
        }
        assert_eq!(w.room(4), 0);
        let mut t = ConfirmTracker::new(&w);
        let mut lat = Vec::new();
        assert_eq!(t.apply(&w, 1, false, 3, 1_000, &mut lat), 1);
        assert_eq!(lat, [900]);
        assert_eq!(w.room(4), 1);
    }

    #[test]
    fn multiple_and_out_of_order_acks() {
        let w = ConfirmWindow::new(8);
        let mut t = ConfirmTracker::new(&w);
        for seq in 1..=6 {
            w.set_send_time(seq, seq * 10);
        }
        let mut lat = Vec::new();
        // 3 confirmed on its own, out of order: lowest unconfirmed stays 1.
        assert_eq!(t.apply(&w, 3, false, 6, 100, &mut lat), 1);
        assert_eq!(lat, [70]);
        assert_eq!(w.lowest_unconfirmed(), 1);
        // A repeated ack of 3 counts nothing.
        assert_eq!(t.apply(&w, 3, false, 6, 100, &mut lat), 0);
        // multiple up to 4 confirms 1, 2 and 4 (3 was already), with their own latencies.
        lat.clear();
        assert_eq!(t.apply(&w, 4, true, 6, 200, &mut lat), 3);
        assert_eq!(lat, [190, 180, 160]);
        assert_eq!(w.lowest_unconfirmed(), 5);
        // 6 alone, then 5 alone: lowest jumps over 6.
        lat.clear();
        assert_eq!(t.apply(&w, 6, false, 6, 300, &mut lat), 1);
        assert_eq!(t.apply(&w, 5, false, 6, 300, &mut lat), 1);
        assert_eq!(lat, [240, 250]);
        assert_eq!(w.lowest_unconfirmed(), 7);
        // Tags not yet published or already confirmed are ignored.
        assert_eq!(t.apply(&w, 9, true, 6, 300, &mut lat), 0);
        assert_eq!(t.apply(&w, 2, false, 6, 300, &mut lat), 0);
    }

    #[test]
    fn ring_wraps() {
        let w = ConfirmWindow::new(4);
        let mut t = ConfirmTracker::new(&w);
        let mut lat = Vec::new();
        let mut total = 0;
        for round in 0..10u64 {
            let base = round * 4;
            for seq in base + 1..=base + 4 {
                assert!(w.room(seq) > 0);
                w.set_send_time(seq, seq);
            }
            total += t.apply(&w, base + 2, false, base + 4, base + 10, &mut lat);
            total += t.apply(&w, base + 4, true, base + 4, base + 10, &mut lat);
        }
        assert_eq!(total, 40);
        assert_eq!(lat.len(), 40);
        assert!(lat.iter().all(|&l| l <= 9));
    }

    #[test]
    fn shared_latency_intervals_fold_into_total() {
        let s = SharedLatency::default();
        assert_eq!(s.take_interval(), None);
        s.record_all(&[1_000, 2_000, 3_000]);
        let p = s.take_interval().unwrap();
        assert_eq!(p.count, 3);
        assert!((p.p50 - 2.0).abs() < 0.01, "{p:?}");
        s.record_all(&[1_000_000]);
        let p = s.take_interval().unwrap();
        assert_eq!(p.count, 1);
        let all = s.total().unwrap();
        assert_eq!(all.count, 4);
        assert!((all.max - 1000.0).abs() < 1.0, "{all:?}");
        let j = Percentiles::to_json(Some(all));
        assert_eq!(j["count"], 4);
        assert!(j.get("p99.9").is_some());
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_us(12.4), "12µs");
        assert_eq!(fmt_us(1500.0), "1.5ms");
        assert_eq!(fmt_us(2_500_000.0), "2.50s");
        assert_eq!(Percentiles::short(None), "-");
    }

    #[test]
    fn totals_sum() {
        let a = Counters::default();
        let b = Counters::default();
        a.sent.store(5, Ordering::Relaxed);
        b.sent.store(7, Ordering::Relaxed);
        b.received.store(3, Ordering::Relaxed);
        let t = Totals::sum([&a, &b]);
        assert_eq!(t, Totals { sent: 12, confirmed: 0, nacked: 0, received: 3 });
    }
}
