//! Limits and identity a connection offers the client during the handshake.

use std::time::Duration;

use warren_protocol::{FieldTable, FieldValue};

/// What the server proposes in connection.tune and announces in connection.start.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Highest channel number a client may open (0 would mean "no limit", which we never offer).
    pub channel_max: u16,
    /// Largest frame, envelope included, either side may send, in bytes.
    pub frame_max: u32,
    /// Proposed heartbeat interval in seconds (0 disables heartbeats).
    pub heartbeat: u16,
    /// Largest message body accepted from a publisher, in bytes.
    pub max_message_size: u64,
    /// How long a client has from the moment it connects until connection.open (RabbitMQ's
    /// handshake_timeout); zero waits forever.
    pub handshake_timeout: Duration,
    /// The server-properties table of connection.start (see [`server_properties`]).
    pub server_properties: FieldTable,
}

/// The smallest frame_max a peer may negotiate (the spec's frame-min-size as RabbitMQ enforces it).
pub const FRAME_MIN_SIZE: u32 = 4096;

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat: 60,
            max_message_size: 128 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
            server_properties: server_properties("Warren", env!("CARGO_PKG_VERSION"), "warren@localhost"),
        }
    }
}

/// connection.start's server-properties: product identity and RabbitMQ's capabilities table,
/// which clients consult before using extensions.
pub fn server_properties(product: &str, version: &str, cluster_name: &str) -> FieldTable {
    let mut capabilities = FieldTable::new();
    for name in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ] {
        capabilities.insert(name, FieldValue::Bool(true));
    }
    let text = |s: &str| FieldValue::LongStr(bytes::Bytes::copy_from_slice(s.as_bytes()));
    let mut props = FieldTable::new();
    props.insert("capabilities", FieldValue::Table(capabilities));
    props.insert("cluster_name", text(cluster_name));
    props.insert("copyright", text("Copyright (c) the Warren authors"));
    props.insert("information", text("Licensed under the Apache License 2.0"));
    props.insert("platform", text(&format!("Rust ({})", std::env::consts::OS)));
    props.insert("product", text(product));
    props.insert("version", text(version));
    props
}
