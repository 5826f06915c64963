//! The metric families Warren serves: RabbitMQ's rabbitmq_prometheus names, types and HELP
//! texts (3.10's `prometheus_rabbitmq_core_metrics_collector`, `..._global_metrics_collector`
//! and `..._alarm_metrics_collector`), grouped by the RabbitMQ metrics table each comes from
//! (the names `/metrics/detailed?family=` selects), and Warren's own under `warren_`.
//!
//! Names here are without their prefix: `rabbitmq_` on `/metrics` and `/metrics/per-object`,
//! `rabbitmq_detailed_` on `/metrics/detailed`, as RabbitMQ prefixes them.

use super::text::Kind;

/// One family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FamilyDef {
    /// Its name without the prefix.
    pub(crate) name: &'static str,
    /// Counter, gauge or untyped.
    pub(crate) kind: Kind,
    /// RabbitMQ's HELP text.
    pub(crate) help: &'static str,
}

const fn counter(name: &'static str, help: &'static str) -> FamilyDef {
    FamilyDef { name, kind: Kind::Counter, help }
}

const fn gauge(name: &'static str, help: &'static str) -> FamilyDef {
    FamilyDef { name, kind: Kind::Gauge, help }
}

const fn untyped(name: &'static str, help: &'static str) -> FamilyDef {
    FamilyDef { name, kind: Kind::Untyped, help }
}

/// A RabbitMQ metrics table: what `family=` names on `/metrics/detailed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    /// Connections, channels and queues opened and closed.
    ConnectionChurn,
    /// Node resources in use.
    NodeCoarse,
    /// Node limits and uptime.
    Node,
    /// Logins.
    AuthAttempt,
    /// Queue depth.
    QueueCoarse,
    /// Consumers per queue (a subset of [`Group::Queue`]).
    QueueConsumerCount,
    /// Queue details.
    Queue,
    /// Channel gauges.
    Channel,
    /// What channels published.
    ChannelExchange,
    /// What channels were delivered.
    ChannelQueue,
    /// Connection traffic.
    ConnectionCoarse,
    /// Connection gauges.
    Connection,
    /// What queues were sent.
    ChannelQueueExchange,
    /// Vhosts running (detailed only, `rabbitmq_cluster_` prefix).
    VhostStatus,
    /// Bindings per exchange (detailed only, `rabbitmq_cluster_` prefix).
    ExchangeBindings,
    /// Exchanges (detailed only, `rabbitmq_cluster_` prefix).
    ExchangeNames,
}

impl Group {
    /// Every group, in the order RabbitMQ writes them.
    pub const ALL: [Group; 16] = [
        Group::ConnectionChurn,
        Group::NodeCoarse,
        Group::Node,
        Group::AuthAttempt,
        Group::QueueCoarse,
        Group::QueueConsumerCount,
        Group::Queue,
        Group::Channel,
        Group::ChannelExchange,
        Group::ChannelQueue,
        Group::ConnectionCoarse,
        Group::Connection,
        Group::ChannelQueueExchange,
        Group::VhostStatus,
        Group::ExchangeBindings,
        Group::ExchangeNames,
    ];

    /// RabbitMQ's table name, as `family=` gives it.
    pub fn table(self) -> &'static str {
        match self {
            Group::ConnectionChurn => "connection_churn_metrics",
            Group::NodeCoarse => "node_coarse_metrics",
            Group::Node => "node_metrics",
            Group::AuthAttempt => "auth_attempt_metrics",
            Group::QueueCoarse => "queue_coarse_metrics",
            Group::QueueConsumerCount => "queue_consumer_count",
            Group::Queue => "queue_metrics",
            Group::Channel => "channel_metrics",
            Group::ChannelExchange => "channel_exchange_metrics",
            Group::ChannelQueue => "channel_queue_metrics",
            Group::ConnectionCoarse => "connection_coarse_metrics",
            Group::Connection => "connection_metrics",
            Group::ChannelQueueExchange => "channel_queue_exchange_metrics",
            Group::VhostStatus => "vhost_status",
            Group::ExchangeBindings => "exchange_bindings",
            Group::ExchangeNames => "exchange_names",
        }
    }

    /// The group `family=` names, if Warren has it.
    pub fn from_table(name: &str) -> Option<Group> {
        Group::ALL.into_iter().find(|g| g.table() == name)
    }

    /// Whether the group is one of the cluster-wide ones only `/metrics/detailed` serves.
    pub fn is_cluster(self) -> bool {
        matches!(self, Group::VhostStatus | Group::ExchangeBindings | Group::ExchangeNames)
    }
}

// connection_churn_metrics
pub(crate) const CONNECTIONS_OPENED: FamilyDef =
    counter("connections_opened_total", "Total number of connections opened");
pub(crate) const CONNECTIONS_CLOSED: FamilyDef =
    counter("connections_closed_total", "Total number of connections closed or terminated");
pub(crate) const CHANNELS_OPENED: FamilyDef =
    counter("channels_opened_total", "Total number of channels opened");
pub(crate) const CHANNELS_CLOSED: FamilyDef =
    counter("channels_closed_total", "Total number of channels closed");
pub(crate) const QUEUES_DECLARED: FamilyDef =
    counter("queues_declared_total", "Total number of queues declared");
pub(crate) const QUEUES_CREATED: FamilyDef =
    counter("queues_created_total", "Total number of queues created");
pub(crate) const QUEUES_DELETED: FamilyDef =
    counter("queues_deleted_total", "Total number of queues deleted");

// node_coarse_metrics
pub(crate) const OPEN_FDS: FamilyDef = gauge("process_open_fds", "Open file descriptors");
pub(crate) const OPEN_TCP_SOCKETS: FamilyDef = gauge("process_open_tcp_sockets", "Open TCP sockets");
pub(crate) const RESIDENT_MEMORY: FamilyDef = gauge("process_resident_memory_bytes", "Memory used in bytes");
pub(crate) const DISK_FREE: FamilyDef = gauge("disk_space_available_bytes", "Disk space available in bytes");

// node_metrics
pub(crate) const MAX_FDS: FamilyDef = gauge("process_max_fds", "Open file descriptors limit");
pub(crate) const MAX_TCP_SOCKETS: FamilyDef = gauge("process_max_tcp_sockets", "Open TCP sockets limit");
pub(crate) const MEMORY_LIMIT: FamilyDef =
    gauge("resident_memory_limit_bytes", "Memory high watermark in bytes");
pub(crate) const DISK_FREE_LIMIT: FamilyDef =
    gauge("disk_space_available_limit_bytes", "Free disk space low watermark in bytes");
pub(crate) const UPTIME: FamilyDef = gauge("erlang_uptime_seconds", "Node uptime");

// auth_attempt_metrics
pub(crate) const AUTH_ATTEMPTS: FamilyDef =
    counter("auth_attempts_total", "Total number of authorization attempts");
pub(crate) const AUTH_SUCCEEDED: FamilyDef =
    counter("auth_attempts_succeeded_total", "Total number of successful authentication attempts");
pub(crate) const AUTH_FAILED: FamilyDef =
    counter("auth_attempts_failed_total", "Total number of failed authentication attempts");

// queue_coarse_metrics
pub(crate) const QUEUE_READY: FamilyDef =
    gauge("queue_messages_ready", "Messages ready to be delivered to consumers");
pub(crate) const QUEUE_UNACKED: FamilyDef =
    gauge("queue_messages_unacked", "Messages delivered to consumers but not yet acknowledged");
pub(crate) const QUEUE_MESSAGES: FamilyDef =
    gauge("queue_messages", "Sum of ready and unacknowledged messages - total queue depth");

// queue_metrics (queue_consumer_count has the first alone)
pub(crate) const QUEUE_CONSUMERS: FamilyDef = gauge("queue_consumers", "Consumers on a queue");
pub(crate) const QUEUE_READY_BYTES: FamilyDef =
    gauge("queue_messages_ready_bytes", "Size in bytes of ready messages");

// channel_metrics
pub(crate) const CHANNEL_CONSUMERS: FamilyDef = gauge("channel_consumers", "Consumers on a channel");
pub(crate) const CHANNEL_UNACKED: FamilyDef =
    gauge("channel_messages_unacked", "Delivered but not yet acknowledged messages");
pub(crate) const CHANNEL_UNCONFIRMED: FamilyDef =
    gauge("channel_messages_unconfirmed", "Published but not yet confirmed messages");
pub(crate) const CONSUMER_PREFETCH: FamilyDef =
    gauge("consumer_prefetch", "Limit of unacknowledged messages for each consumer");
pub(crate) const CHANNEL_PREFETCH: FamilyDef =
    gauge("channel_prefetch", "Total limit of unacknowledged messages for all consumers on a channel");

// channel_exchange_metrics
pub(crate) const CHANNEL_PUBLISHED: FamilyDef = counter(
    "channel_messages_published_total",
    "Total number of messages published into an exchange on a channel",
);
pub(crate) const CHANNEL_CONFIRMED: FamilyDef = counter(
    "channel_messages_confirmed_total",
    "Total number of messages published into an exchange and confirmed on the channel",
);
pub(crate) const CHANNEL_RETURNED: FamilyDef = counter(
    "channel_messages_unroutable_returned_total",
    "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
);
pub(crate) const CHANNEL_DROPPED: FamilyDef = counter(
    "channel_messages_unroutable_dropped_total",
    "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
);

// channel_queue_metrics
pub(crate) const CHANNEL_GET_ACK: FamilyDef = counter(
    "channel_get_ack_total",
    "Total number of messages fetched with basic.get in manual acknowledgement mode",
);
pub(crate) const CHANNEL_GET: FamilyDef = counter(
    "channel_get_total",
    "Total number of messages fetched with basic.get in automatic acknowledgement mode",
);
pub(crate) const CHANNEL_DELIVERED_ACK: FamilyDef = counter(
    "channel_messages_delivered_ack_total",
    "Total number of messages delivered to consumers in manual acknowledgement mode",
);
pub(crate) const CHANNEL_DELIVERED: FamilyDef = counter(
    "channel_messages_delivered_total",
    "Total number of messages delivered to consumers in automatic acknowledgement mode",
);
pub(crate) const CHANNEL_REDELIVERED: FamilyDef =
    counter("channel_messages_redelivered_total", "Total number of messages redelivered to consumers");
pub(crate) const CHANNEL_ACKED: FamilyDef =
    counter("channel_messages_acked_total", "Total number of messages acknowledged by consumers");
pub(crate) const CHANNEL_GET_EMPTY: FamilyDef =
    counter("channel_get_empty_total", "Total number of times basic.get operations fetched no message");

// connection_coarse_metrics
pub(crate) const CONNECTION_IN: FamilyDef =
    counter("connection_incoming_bytes_total", "Total number of bytes received on a connection");
pub(crate) const CONNECTION_OUT: FamilyDef =
    counter("connection_outgoing_bytes_total", "Total number of bytes sent on a connection");

// connection_metrics
pub(crate) const CONNECTION_CHANNELS: FamilyDef = gauge("connection_channels", "Channels on a connection");

// channel_queue_exchange_metrics
pub(crate) const QUEUE_PUBLISHED: FamilyDef =
    counter("queue_messages_published_total", "Total number of messages published to queues");

// The totals (`/metrics` and `/metrics/per-object` only).
pub(crate) const CONNECTIONS: FamilyDef = gauge("connections", "Connections currently open");
pub(crate) const CHANNELS: FamilyDef = gauge("channels", "Channels currently open");
pub(crate) const CONSUMERS: FamilyDef = gauge("consumers", "Consumers currently connected");
pub(crate) const QUEUES: FamilyDef = gauge("queues", "Queues available");

// Identity (every endpoint, always `rabbitmq_`).
pub(crate) const BUILD_INFO: FamilyDef = untyped("build_info", "RabbitMQ & Erlang/OTP version info");
pub(crate) const IDENTITY_INFO: FamilyDef = untyped("identity_info", "RabbitMQ node & cluster identity info");

// Cluster-wide (detailed only, `rabbitmq_cluster_`).
pub(crate) const VHOST_STATUS: FamilyDef = gauge("vhost_status", "Whether a given vhost is running");
pub(crate) const EXCHANGE_BINDINGS: FamilyDef =
    gauge("exchange_bindings", "Number of bindings for an exchange. This value is cluster-wide.");
pub(crate) const EXCHANGE_NAME: FamilyDef = gauge(
    "exchange_name",
    "Enumerates exchanges without any additional info. This value is cluster-wide. A cheaper alternative to `exchange_bindings`",
);

// rabbitmq_global_ (`/metrics` and `/metrics/per-object`).
pub(crate) const GLOBAL_CONSUMERS: FamilyDef = gauge("consumers", "Current number of consumers");
pub(crate) const GLOBAL_PUBLISHERS: FamilyDef = gauge("publishers", "Current number of publishers");
pub(crate) const GLOBAL_RECEIVED: FamilyDef =
    counter("messages_received_total", "Total number of messages received from publishers");
pub(crate) const GLOBAL_RECEIVED_CONFIRM: FamilyDef = counter(
    "messages_received_confirm_total",
    "Total number of messages received from publishers expecting confirmations",
);
pub(crate) const GLOBAL_ROUTED: FamilyDef =
    counter("messages_routed_total", "Total number of messages routed to queues or streams");
pub(crate) const GLOBAL_DROPPED: FamilyDef = counter(
    "messages_unroutable_dropped_total",
    "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
);
pub(crate) const GLOBAL_RETURNED: FamilyDef = counter(
    "messages_unroutable_returned_total",
    "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
);
pub(crate) const GLOBAL_CONFIRMED: FamilyDef =
    counter("messages_confirmed_total", "Total number of messages confirmed to publishers");
pub(crate) const GLOBAL_DELIVERED: FamilyDef =
    counter("messages_delivered_total", "Total number of messages delivered to consumers");
pub(crate) const GLOBAL_CONSUME_MANUAL: FamilyDef = counter(
    "messages_delivered_consume_manual_ack_total",
    "Total number of messages delivered to consumers using basic.consume with manual acknowledgment",
);
pub(crate) const GLOBAL_CONSUME_AUTO: FamilyDef = counter(
    "messages_delivered_consume_auto_ack_total",
    "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment",
);
pub(crate) const GLOBAL_GET_MANUAL: FamilyDef = counter(
    "messages_delivered_get_manual_ack_total",
    "Total number of messages delivered to consumers using basic.get with manual acknowledgment",
);
pub(crate) const GLOBAL_GET_AUTO: FamilyDef = counter(
    "messages_delivered_get_auto_ack_total",
    "Total number of messages delivered to consumers using basic.get with automatic acknowledgment",
);
pub(crate) const GLOBAL_GET_EMPTY: FamilyDef =
    counter("messages_get_empty_total", "Total number of times basic.get operations fetched no message");
pub(crate) const GLOBAL_REDELIVERED: FamilyDef =
    counter("messages_redelivered_total", "Total number of messages redelivered to consumers");
pub(crate) const GLOBAL_ACKNOWLEDGED: FamilyDef =
    counter("messages_acknowledged_total", "Total number of messages acknowledged by consumers");
pub(crate) const GLOBAL_DL_EXPIRED: FamilyDef = counter(
    "messages_dead_lettered_expired_total",
    "Total number of messages dead-lettered due to message TTL exceeded",
);
pub(crate) const GLOBAL_DL_REJECTED: FamilyDef = counter(
    "messages_dead_lettered_rejected_total",
    "Total number of messages dead-lettered due to basic.reject or basic.nack",
);
pub(crate) const GLOBAL_DL_MAXLEN: FamilyDef = counter(
    "messages_dead_lettered_maxlen_total",
    "Total number of messages dead-lettered due to overflow drop-head or reject-publish-dlx",
);
pub(crate) const GLOBAL_DL_DELIVERY_LIMIT: FamilyDef = counter(
    "messages_dead_lettered_delivery_limit_total",
    "Total number of messages dead-lettered due to delivery-limit exceeded",
);

// rabbitmq_alarms_ (`/metrics` and `/metrics/per-object`).
pub(crate) const ALARM_FD: FamilyDef =
    untyped("file_descriptor_limit", "is 1 if file descriptor limit alarm is in effect");
pub(crate) const ALARM_DISK: FamilyDef =
    untyped("free_disk_space_watermark", "is 1 if free disk space watermark alarm is in effect");
pub(crate) const ALARM_MEMORY: FamilyDef =
    untyped("memory_used_watermark", "is 1 if VM memory watermark alarm is in effect");

// warren_: what RabbitMQ has no name for.
pub(crate) const STORE_CORRUPTION: FamilyDef = counter(
    "store_corruption_total",
    "Damage the message store found and worked around while recovering queue logs, by kind (records or ack entries skipped, bytes in them, torn tails cut, headers repaired, files set aside)",
);
pub(crate) const STORE_WRITE_FAILURES: FamilyDef = counter(
    "store_write_failures_total",
    "Writes and fsyncs of the message store that failed since the broker started",
);
pub(crate) const STORE_WRITE_FAULT: FamilyDef = gauge(
    "store_write_fault",
    "1 while a failed write or fsync blocks publishers, until a probe write succeeds",
);
pub(crate) const CONNECTIONS_FLOW: FamilyDef = gauge(
    "connections_flow",
    "Connections whose publishing flow control holds back (a queue they feed is behind)",
);
pub(crate) const CONNECTIONS_BLOCKED: FamilyDef =
    gauge("connections_blocked", "Connections not read from while a resource alarm is in effect");
