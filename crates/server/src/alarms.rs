//! Resource alarms, as RabbitMQ's: while one is on, connections that publish are blocked (not
//! read from, and told with connection.blocked if they asked to be).
//!
//! * disk: free space on the data directory's disk below `disk_free_limit` (see
//!   [`crate::disk_alarm`]);
//! * memory: the broker's resident memory above `vm_memory_high_watermark`;
//! * the store's write fault: a write or fsync failed (see [`warren_store::Health`]). Clients
//!   see it as the disk alarm. It clears once a probe write succeeds, tried every second while
//!   the disk has room for a segment beyond the limit (with less, writes would fail again at
//!   once).
//!
//! A thread of its own watches them: a probe's fsync may take long, and the store wakes it the
//! moment a write uses the disk budget up. Each alarm is logged when it goes on and when it goes
//! off, never per check (the write fault is logged by the store).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use warren_store::{Health, Space};

use crate::config::Config;
use crate::disk_alarm::DiskWatch;
use crate::limits::{DiskFreeLimit, MemoryWatermark, DEFAULT_DISK_FREE_LIMIT};

/// How often the store's write fault is looked at (an atomic load).
const POLL: Duration = Duration::from_millis(50);
/// How often memory use is read, and a write fault probed.
const MEMORY_EVERY: Duration = Duration::from_secs(1);
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// The resource alarms that are on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Alarms {
    pub disk: bool,
    pub memory: bool,
    /// The store cannot write: a disk alarm for clients.
    pub write_fault: bool,
}

impl Alarms {
    pub fn any(self) -> bool {
        self.disk || self.memory || self.write_fault
    }

    /// The reason connection.blocked gives, as RabbitMQ 3.10 words it: "low on " and the
    /// resources joined with " & ", disk first (the order its set of alarms lists them in).
    pub fn reason(self) -> Option<&'static str> {
        match (self.disk || self.write_fault, self.memory) {
            (true, true) => Some("low on disk & memory"),
            (true, false) => Some("low on disk"),
            (false, true) => Some("low on memory"),
            (false, false) => None,
        }
    }
}

/// What the alarms last read, for metrics: limits and free space in bytes (`u64::MAX`: not
/// known). Written by the alarms' thread after each check, read by scrapes.
#[derive(Debug)]
pub struct Readings {
    memory_limit: AtomicU64,
    disk_limit: AtomicU64,
    disk_free: AtomicU64,
}

impl Default for Readings {
    fn default() -> Self {
        Readings {
            memory_limit: AtomicU64::new(u64::MAX),
            disk_limit: AtomicU64::new(u64::MAX),
            disk_free: AtomicU64::new(u64::MAX),
        }
    }
}

impl Readings {
    fn known(value: &AtomicU64) -> Option<u64> {
        Some(value.load(Ordering::Relaxed)).filter(|&v| v != u64::MAX)
    }

    /// The memory high watermark, where memory can be read.
    pub fn memory_limit(&self) -> Option<u64> {
        Self::known(&self.memory_limit)
    }

    /// The free disk space limit (0: the disk alarm is off).
    pub fn disk_limit(&self) -> Option<u64> {
        Self::known(&self.disk_limit)
    }

    /// Free space on the data directory's disk, by the last reading less what was written
    /// since.
    pub fn disk_free(&self) -> Option<u64> {
        Self::known(&self.disk_free)
    }
}

/// What the alarms watch: the store's fault state and write budget.
pub struct Store {
    pub health: Arc<Health>,
    pub space: Arc<Space>,
}

/// Starts watching; the receiver holds the alarms that are on, the readings what they last
/// read. An alarm already on is logged before this returns.
pub fn spawn(config: &Config, store: Store) -> std::io::Result<(watch::Receiver<Alarms>, Arc<Readings>)> {
    let memory = MemoryWatch::new(config.vm_memory_high_watermark);
    let disk_limit = resolve_disk_limit(config.disk_free_limit, memory.available);
    tracing::info!(
        disk_free_limit = disk_limit,
        memory_high_watermark = memory.limit,
        memory_available = memory.available,
        "resource alarm limits"
    );
    let mut monitor = Monitor {
        disk: DiskWatch::new(config.data_dir.clone(), disk_limit, store.space.clone()),
        memory,
        health: store.health,
        probe_room: config.segment_size,
        next_probe: Instant::now(),
        alarms: Alarms::default(),
        readings: Arc::default(),
    };
    let readings = monitor.readings.clone();
    let alarms = monitor.check(Instant::now());
    monitor.log_changes(alarms);
    let (sender, receiver) = watch::channel(alarms);
    let thread =
        std::thread::Builder::new().name("warren-alarms".into()).spawn(move || monitor.run(sender))?;
    let waker = thread.thread().clone();
    store.space.set_waker(Box::new(move || waker.unpark()));
    Ok((receiver, readings))
}

fn resolve_disk_limit(limit: DiskFreeLimit, memory: Option<u64>) -> u64 {
    match (limit, memory) {
        (DiskFreeLimit::MemRelative(_), None) => {
            tracing::warn!(
                default = DEFAULT_DISK_FREE_LIMIT,
                "disk_free_limit is relative to memory, which cannot be read here: using the default"
            );
            DEFAULT_DISK_FREE_LIMIT
        }
        (limit, memory) => limit.bytes(memory.unwrap_or(0)),
    }
}

struct Monitor {
    disk: DiskWatch,
    memory: MemoryWatch,
    health: Arc<Health>,
    /// Room beyond the disk limit a write fault's probe waits for.
    probe_room: u64,
    next_probe: Instant,
    alarms: Alarms,
    readings: Arc<Readings>,
}

impl Monitor {
    fn run(mut self, sender: watch::Sender<Alarms>) {
        while !sender.is_closed() {
            // The store unparks this thread when a write uses the disk budget up.
            std::thread::park_timeout(POLL);
            let alarms = self.check(Instant::now());
            self.log_changes(alarms);
            sender.send_if_modified(|current| std::mem::replace(current, alarms) != alarms);
        }
    }

    fn check(&mut self, now: Instant) -> Alarms {
        let alarms = Alarms {
            disk: self.disk.check(now),
            memory: self.memory.check(now),
            write_fault: self.write_fault(now),
        };
        let readings = &self.readings;
        readings.memory_limit.store(self.memory.limit.unwrap_or(u64::MAX), Ordering::Relaxed);
        readings.disk_limit.store(self.disk.limit(), Ordering::Relaxed);
        let free = self.disk.last_reading().map(|_| self.disk.free_estimate());
        readings.disk_free.store(free.unwrap_or(u64::MAX), Ordering::Relaxed);
        alarms
    }

    /// Whether the store's write fault stands, probing it once a second, the first time a
    /// second after it was seen (at once, a write that just failed would often fail again).
    fn write_fault(&mut self, now: Instant) -> bool {
        if !self.health.is_faulted() {
            return false;
        }
        if !self.alarms.write_fault {
            self.next_probe = now + PROBE_EVERY;
        }
        if now < self.next_probe {
            return true;
        }
        self.next_probe = now + PROBE_EVERY;
        !self.disk.has_room(self.probe_room) || self.health.probe()
    }

    /// Logs the disk and memory alarms going on or off (the store logs its own fault).
    fn log_changes(&mut self, now: Alarms) {
        let was = std::mem::replace(&mut self.alarms, now);
        let limit = self.disk.limit();
        match (was.disk, now.disk) {
            (false, true) => tracing::warn!(
                limit,
                free = self.disk.free_estimate(),
                "free disk space is below the limit: publishers are blocked"
            ),
            (true, false) => tracing::info!(
                limit,
                free = self.disk.free_estimate(),
                "free disk space is back above the limit: publishers may resume"
            ),
            _ => {}
        }
        let (limit, resident) = (self.memory.limit, self.memory.resident);
        match (was.memory, now.memory) {
            (false, true) => tracing::warn!(
                limit,
                resident,
                "memory use is above the high watermark: publishers are blocked"
            ),
            (true, false) => tracing::info!(
                limit,
                resident,
                "memory use is back below the high watermark: publishers may resume"
            ),
            _ => {}
        }
    }
}

/// The broker's resident memory against the high watermark.
struct MemoryWatch {
    /// Memory available to the broker (RAM or its cgroup's limit); None where it cannot be read.
    available: Option<u64>,
    /// The watermark in bytes; None: the alarm is off (memory cannot be read here).
    limit: Option<u64>,
    resident: u64,
    next_reading: Instant,
    on: bool,
}

impl MemoryWatch {
    fn new(watermark: MemoryWatermark) -> MemoryWatch {
        let available = crate::memory::available();
        let limit = match (watermark, available) {
            (MemoryWatermark::Absolute(n), _) => Some(n),
            (relative, Some(available)) => Some(relative.bytes(available)),
            (_, None) => {
                tracing::warn!("the memory available cannot be read here: no memory alarm");
                None
            }
        };
        MemoryWatch { available, limit, resident: 0, next_reading: Instant::now(), on: false }
    }

    fn check(&mut self, now: Instant) -> bool {
        let Some(limit) = self.limit else { return false };
        if now >= self.next_reading {
            self.next_reading = now + MEMORY_EVERY;
            if let Some(resident) = crate::memory::resident() {
                self.resident = resident;
                self.on = resident > limit;
            }
        }
        self.on
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_rabbitmq_s() {
        let none = Alarms::default();
        assert_eq!(none.reason(), None);
        assert!(!none.any());
        assert_eq!(Alarms { disk: true, ..none }.reason(), Some("low on disk"));
        assert_eq!(Alarms { write_fault: true, ..none }.reason(), Some("low on disk"));
        assert_eq!(Alarms { memory: true, ..none }.reason(), Some("low on memory"));
        let all = Alarms { disk: true, memory: true, write_fault: true };
        assert_eq!(all.reason(), Some("low on disk & memory"));
        assert!(all.any());
    }
}
