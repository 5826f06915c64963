//! What the metrics read about the node itself rather than the broker core: process
//! resources, resource limits and alarms, the message store's health. The server binary knows
//! these (it runs the alarms and opened the store) and hands them in through [`NodeSource`].

/// The resource alarms in effect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlarmStates {
    /// Resident memory above the high watermark.
    pub memory: bool,
    /// Free disk space below the limit (or the store cannot write: clients see a disk alarm).
    pub disk: bool,
    /// File descriptors running out.
    pub file_descriptors: bool,
}

/// The message store's health.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Writes and fsyncs that failed since the broker started.
    pub write_failures: u64,
    /// A failed write blocks publishers until a probe write succeeds.
    pub write_fault: bool,
    /// What recovery found damaged and worked around, by kind (`torn_tails`...).
    pub corruption: Vec<(&'static str, u64)>,
}

/// The node at one moment. `None`: cannot be read here (not Linux, or no limit).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeStats {
    /// The process's resident memory.
    pub resident_memory_bytes: Option<u64>,
    /// The memory high watermark.
    pub memory_limit_bytes: Option<u64>,
    /// Free space on the data directory's disk.
    pub disk_free_bytes: Option<u64>,
    /// The free disk space limit.
    pub disk_free_limit_bytes: Option<u64>,
    /// File descriptors open.
    pub open_fds: Option<u64>,
    /// The file descriptor limit (RLIMIT_NOFILE).
    pub max_fds: Option<u64>,
    /// The most client connections accepted (`max_connections`, else the descriptor limit).
    pub max_tcp_sockets: Option<u64>,
    /// Seconds since the process started.
    pub uptime_seconds: f64,
    /// The alarms in effect.
    pub alarms: AlarmStates,
    /// The message store (None: the broker keeps messages in memory).
    pub store: Option<StoreStats>,
}

/// Reads [`NodeStats`] when a scrape asks (cheap reads: atomics, /proc).
pub trait NodeSource: Send + Sync {
    /// The node now.
    fn node_stats(&self) -> NodeStats;
}

/// A node that knows nothing beyond the broker (tests, embedding).
#[derive(Debug, Default)]
pub struct NoNodeStats;

impl NodeSource for NoNodeStats {
    fn node_stats(&self) -> NodeStats {
        NodeStats::default()
    }
}

/// How the node names itself: what `rabbitmq_identity_info` carries and dashboards join on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `rabbitmq_node`, as RabbitMQ's `rabbit@host`: `warren@<hostname>` unless set.
    pub node: String,
    /// `rabbitmq_cluster`: the node's name unless set, as RabbitMQ's default cluster name.
    pub cluster: String,
    /// `rabbitmq_cluster_permanent_id`: stable across restarts.
    pub cluster_id: String,
    /// Warren's version (`product_version` in `rabbitmq_build_info`).
    pub version: String,
}

impl Identity {
    /// The node called `node` (`name@host`), its own cluster.
    pub fn for_node(node: &str, version: &str) -> Identity {
        Identity {
            cluster: node.to_owned(),
            cluster_id: format!("warren-cluster-id-{node}"),
            node: node.to_owned(),
            version: version.to_owned(),
        }
    }
}
