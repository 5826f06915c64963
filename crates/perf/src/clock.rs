//! Time: one clock for the whole run, the fixed-rate send schedule, and a precise pacer.
//!
//! Latencies are measured from a message's *intended* send time: at a fixed rate, message `i`
//! of a producer is due at `start + i / rate`, whether or not the producer (or the broker
//! holding it back) manages to send it then. A stall therefore shows up in the latency of every
//! message that should have gone out during it (no coordinated omission).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Monotonic nanoseconds since the start of the run, convertible to Unix time (for the
/// timestamp carried in message bodies, so another process's consumer can read it).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    epoch: Instant,
    epoch_unix_ns: u64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Clock {
        let epoch = Instant::now();
        let epoch_unix_ns =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        Clock { epoch, epoch_unix_ns }
    }

    /// Nanoseconds since the clock was made.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Unix time in nanoseconds of a `now_ns` reading.
    #[inline]
    pub fn unix_ns(&self, mono_ns: u64) -> u64 {
        self.epoch_unix_ns + mono_ns
    }

    pub fn instant(&self, mono_ns: u64) -> Instant {
        self.epoch + Duration::from_nanos(mono_ns)
    }
}

/// Fixed-rate send schedule of one producer: message `i` (from 0) is due at
/// `start_ns + i * 1e9 / rate`.
#[derive(Clone, Debug)]
pub struct Schedule {
    start_ns: u64,
    interval_ns: f64,
}

impl Schedule {
    pub fn new(start_ns: u64, rate: f64) -> Schedule {
        assert!(rate > 0.0);
        Schedule { start_ns, interval_ns: 1e9 / rate }
    }

    /// Intended send time of message `i`.
    #[inline]
    pub fn intended_ns(&self, i: u64) -> u64 {
        self.start_ns + (i as f64 * self.interval_ns) as u64
    }

    /// How many messages are due by `now_ns` (messages `0..n` have intended times <= now).
    #[inline]
    pub fn due_by(&self, now_ns: u64) -> u64 {
        if now_ns < self.start_ns {
            return 0;
        }
        let n = ((now_ns - self.start_ns) as f64 / self.interval_ns) as u64 + 1;
        // Float rounding: make sure the answer agrees with intended_ns.
        if self.intended_ns(n - 1) > now_ns {
            n - 1
        } else if self.intended_ns(n) <= now_ns {
            n + 1
        } else {
            n
        }
    }
}

/// Latency of a message from its intended send time to `now` (0 if `now` is earlier, e.g. clocks
/// of two processes a little apart).
#[inline]
pub fn latency_ns(intended_ns: u64, now_ns: u64) -> u64 {
    now_ns.saturating_sub(intended_ns)
}

/// Sleeps until an instant with microsecond precision: a timerfd watched by the runtime's
/// reactor (tokio's own timer has millisecond granularity, far too coarse for pacing 100k msg/s).
#[cfg(target_os = "linux")]
pub struct Pacer {
    fd: tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
}

#[cfg(target_os = "linux")]
impl Pacer {
    pub fn new() -> std::io::Result<Pacer> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain syscall; the returned descriptor is checked and then owned.
        let raw =
            unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        // SAFETY: the descriptor is owned by the AsyncFd and neither closed nor replaced while registered.
        let fd =
            unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) };
        Ok(Pacer { fd: fd.map_err(|e| e.into_parts().1)? })
    }

    pub async fn sleep_until(&mut self, deadline: Instant) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let now = Instant::now();
        if deadline <= now {
            return Ok(());
        }
        let d = deadline - now;
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec { tv_sec: d.as_secs() as libc::time_t, tv_nsec: d.subsec_nanos() as _ },
        };
        // SAFETY: valid descriptor and a pointer to a live itimerspec.
        if unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        loop {
            let mut guard = self.fd.readable().await?;
            let res = guard.try_io(|fd| {
                let mut ticks = [0u8; 8];
                // SAFETY: reading 8 bytes into an 8-byte buffer.
                let n = unsafe { libc::read(fd.as_raw_fd(), ticks.as_mut_ptr().cast(), 8) };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
            match res {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {
                    // A stale readiness from an earlier, re-armed timer.
                    if Instant::now() >= deadline {
                        return Ok(());
                    }
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub struct Pacer;

#[cfg(not(target_os = "linux"))]
impl Pacer {
    pub fn new() -> std::io::Result<Pacer> {
        Ok(Pacer)
    }

    pub async fn sleep_until(&mut self, deadline: Instant) -> std::io::Result<()> {
        tokio::time::sleep_until(deadline.into()).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_due_and_intended_agree() {
        let s = Schedule::new(1_000, 3.0); // every 333_333_333.3 ns
        assert_eq!(s.due_by(0), 0);
        assert_eq!(s.due_by(999), 0);
        assert_eq!(s.due_by(1_000), 1);
        assert_eq!(s.intended_ns(1), 1_000 + 333_333_333);
        assert_eq!(s.due_by(1_000 + 333_333_332), 1);
        assert_eq!(s.due_by(1_000 + 333_333_333), 2);
        for now in (0..3_000_000_000u64).step_by(7_777_777) {
            let n = s.due_by(now);
            if n > 0 {
                assert!(s.intended_ns(n - 1) <= now);
            }
            assert!(s.intended_ns(n) > now);
        }
    }

    #[test]
    fn a_stall_is_charged_to_every_message_due_during_it() {
        // 1000 msg/s; the producer (or a blocked socket) stalls for the first 100 ms and then sends
        // everything due at once, at t = 100 ms.
        let s = Schedule::new(0, 1000.0);
        let sent_at = 100_000_000;
        let due = s.due_by(sent_at);
        assert_eq!(due, 101);
        let lat: Vec<u64> = (0..due).map(|i| latency_ns(s.intended_ns(i), sent_at)).collect();
        assert_eq!(lat[0], 100_000_000);
        assert_eq!(lat[50], 50_000_000);
        assert_eq!(lat[100], 0);
        // Measuring from the actual send time would have reported 0 for all of them.
        let mean = lat.iter().sum::<u64>() / due;
        assert_eq!(mean, 50_000_000);
    }

    #[test]
    fn latency_never_negative() {
        assert_eq!(latency_ns(10, 5), 0);
        assert_eq!(latency_ns(5, 10), 5);
    }

    #[test]
    fn clock_converts_to_unix_time() {
        let c = Clock::new();
        let a = c.now_ns();
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
        assert!(c.unix_ns(a).abs_diff(unix) < 1_000_000_000);
        assert!(c.instant(a) <= Instant::now());
    }

    #[tokio::test]
    async fn pacer_is_precise() {
        let mut p = Pacer::new().unwrap();
        let start = Instant::now();
        let mut worst = Duration::ZERO;
        for i in 1..=20u32 {
            let at = start + Duration::from_micros(200) * i;
            p.sleep_until(at).await.unwrap();
            let now = Instant::now();
            assert!(now >= at);
            worst = worst.max(now - at);
        }
        // tokio's timer would be ~1 ms late; allow for a loaded machine.
        assert!(worst < Duration::from_millis(20), "worst lateness {worst:?}");
    }
}
