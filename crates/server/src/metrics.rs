//! Serves Prometheus metrics on the `prometheus_listen` addresses: the management crate renders
//! them; this module tells it about the process (memory, file descriptors, uptime), the
//! resource alarms and the store, which the server alone knows.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::sync::watch;
use warren_broker::Broker;
use warren_management::metrics::{AlarmStates, Identity, Metrics, NodeSource, NodeStats, StoreStats};
use warren_store::{CorruptionCounters, CorruptionStats, Health};

use crate::alarms::{Alarms, Readings};
use crate::bind::Bound;
use crate::http_server::HttpServer;

/// When the process started (set first thing in `main`): `rabbitmq_erlang_uptime_seconds`.
static STARTED: OnceLock<Instant> = OnceLock::new();

/// Notes the process's start.
pub fn mark_start() {
    STARTED.get_or_init(Instant::now);
}

/// What the node reads come from.
pub struct NodeProbe {
    pub alarms: watch::Receiver<Alarms>,
    pub readings: Arc<Readings>,
    pub health: Arc<Health>,
    pub corruption: Arc<CorruptionCounters>,
    pub data_dir: PathBuf,
    /// `max_connections`, if set.
    pub max_connections: Option<usize>,
}

impl NodeSource for NodeProbe {
    fn node_stats(&self) -> NodeStats {
        let alarms = *self.alarms.borrow();
        let max_fds = max_fds();
        NodeStats {
            resident_memory_bytes: crate::memory::resident(),
            memory_limit_bytes: self.readings.memory_limit(),
            // With the disk alarm off the alarms never read the free space: read it here.
            disk_free_bytes: self.readings.disk_free().or_else(|| fs4::available_space(&self.data_dir).ok()),
            disk_free_limit_bytes: self.readings.disk_limit(),
            open_fds: open_fds(),
            max_fds,
            max_tcp_sockets: self.max_connections.map(|n| n as u64).or(max_fds),
            uptime_seconds: STARTED.get().map_or(0.0, |at| at.elapsed().as_secs_f64()),
            alarms: AlarmStates {
                memory: alarms.memory,
                disk: alarms.disk || alarms.write_fault,
                // Warren has no file descriptor alarm: running out pauses accepting instead.
                file_descriptors: false,
            },
            store: Some(StoreStats {
                write_failures: self.health.failures(),
                write_fault: self.health.is_faulted(),
                corruption: corruption_kinds(&self.corruption.snapshot()),
            }),
        }
    }
}

/// The corruption counts with the names the `kind` label gives them.
fn corruption_kinds(s: &CorruptionStats) -> Vec<(&'static str, u64)> {
    vec![
        ("corrupt_records_skipped", s.corrupt_records_skipped),
        ("corrupt_bytes_skipped", s.corrupt_bytes_skipped),
        ("torn_tails", s.torn_tails),
        ("torn_tail_bytes", s.torn_tail_bytes),
        ("segment_headers_repaired", s.segment_headers_repaired),
        ("segments_set_aside", s.segments_set_aside),
        ("corrupt_ack_entries_skipped", s.corrupt_ack_entries_skipped),
        ("ack_headers_repaired", s.ack_headers_repaired),
        ("ack_files_set_aside", s.ack_files_set_aside),
        ("files_copied_aside", s.files_copied_aside),
        ("torn_ack_tails", s.torn_ack_tails),
    ]
}

/// File descriptors open: the entries of /proc/self/fd (less the one reading it).
fn open_fds() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    Some((entries.count() as u64).saturating_sub(1))
}

/// The soft limit on open files.
fn max_fds() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// How long a scraper may take to send a request's headers (then it is dropped, as a silent
/// management client is).
const SCRAPE_HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Starts serving the metrics on every bound address; returns the serving tasks.
pub fn spawn(
    bound: Vec<Bound>,
    broker: Arc<Broker>,
    node: Arc<NodeProbe>,
    node_name: &str,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    if bound.is_empty() {
        return Ok(Vec::new());
    }
    let identity = Identity::for_node(node_name, env!("CARGO_PKG_VERSION"));
    let metrics = Arc::new(Metrics::new(broker, node, identity));
    let mut tasks = Vec::with_capacity(bound.len());
    for b in bound {
        let optional = b.is_optional();
        let listener = match b.listen() {
            Ok(listener) => listener,
            Err(error) if optional => {
                tracing::warn!(%error, "not serving Prometheus metrics on a default address that is taken");
                continue;
            }
            Err(error) => return Err(error),
        };
        let address = listener.local_addr()?;
        tracing::info!(%address, "serving Prometheus metrics on /metrics, /metrics/per-object and /metrics/detailed");
        let server =
            HttpServer::new(warren_management::metrics::router(metrics.clone()), SCRAPE_HEADER_TIMEOUT);
        tasks.push(tokio::spawn(server.serve(listener, None)));
    }
    Ok(tasks)
}
