//! The broker's registry of client connections and their channels: who is connected, from
//! where, as whom, with what traffic. Protocol faces register what they serve; the management
//! API, metrics and the dashboard read it through snapshots that change nothing. Each entry
//! also carries the way to ask its connection to close (management, shutdown).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use warren_message::FieldTable;

use crate::churn::{Churn, ChurnEvent};
use crate::counters::{CounterValues, Counters};
use crate::queue::{DeliveryTarget, TargetId};

/// What a connection says about itself once it is open.
#[derive(Debug, Clone, Default)]
pub struct ConnectionDetails {
    /// The authenticated user.
    pub user: String,
    /// The vhost the connection uses.
    pub vhost: String,
    /// The client's properties (product, version, capabilities, connection_name).
    pub client_properties: FieldTable,
    /// The authentication mechanism used.
    pub auth_mechanism: String,
    /// Negotiated limits.
    pub channel_max: u16,
    /// Negotiated largest frame.
    pub frame_max: u32,
    /// Negotiated heartbeat interval in seconds (0 = none).
    pub heartbeat: u16,
}

/// A connection's life, as listings show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ConnectionState {
    /// Handshaking.
    Starting = 0,
    /// Open.
    Running = 1,
    /// A resource alarm stops reading from it.
    Blocked = 2,
    /// Closing.
    Closing = 3,
    /// Flow control holds its publishing back for a while (a queue it feeds is behind).
    Flow = 4,
}

impl ConnectionState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => ConnectionState::Starting,
            1 => ConnectionState::Running,
            2 => ConnectionState::Blocked,
            4 => ConnectionState::Flow,
            _ => ConnectionState::Closing,
        }
    }

    /// RabbitMQ's name for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Starting => "starting",
            ConnectionState::Running => "running",
            ConnectionState::Blocked => "blocked",
            ConnectionState::Closing => "closing",
            ConnectionState::Flow => "flow",
        }
    }
}

/// Asks a connection's task to close the connection (with the given reason) and wakes it.
pub type CloseRequester = Box<dyn Fn() + Send + Sync>;

/// A registered connection.
pub struct ConnectionEntry {
    /// Unique for the broker's lifetime.
    pub id: u64,
    /// The protocol spoken ("AMQP 0-9-1").
    pub protocol: &'static str,
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// When it connected, in milliseconds since the Unix epoch.
    pub connected_at_ms: u64,
    details: RwLock<Option<ConnectionDetails>>,
    state: AtomicU8,
    counters: Counters,
    channels: Mutex<BTreeMap<u16, Arc<ChannelEntry>>>,
    close_reason: Mutex<Option<String>>,
    wake: CloseRequester,
    /// The server's end of the socket and whether it is TLS, once the server says.
    endpoint: std::sync::OnceLock<Endpoint>,
}

/// The server's end of a connection: the listener address it came in on, and TLS or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// The local address of the socket.
    pub local: SocketAddr,
    /// Whether the connection is over TLS.
    pub tls: bool,
}

impl std::fmt::Debug for ConnectionEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionEntry").field("id", &self.id).field("peer", &self.peer).finish()
    }
}

impl ConnectionEntry {
    /// Records what the connection negotiated once it is open.
    pub fn opened(&self, details: ConnectionDetails) {
        *self.details.write() = Some(details);
        self.set_state(ConnectionState::Running);
    }

    /// Records the server's end of the connection (once; later calls change nothing).
    pub fn set_endpoint(&self, endpoint: Endpoint) {
        let _ = self.endpoint.set(endpoint);
    }

    /// The server's end of the connection, if the server recorded it.
    pub fn endpoint(&self) -> Option<Endpoint> {
        self.endpoint.get().copied()
    }

    /// The connection's details, once open.
    pub fn details(&self) -> Option<ConnectionDetails> {
        self.details.read().clone()
    }

    /// Sets the state listings show.
    pub fn set_state(&self, state: ConnectionState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }

    /// The state listings show.
    pub fn state(&self) -> ConnectionState {
        ConnectionState::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// Bytes in and out (counted by the connection's I/O).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Asks the connection to close, telling its client `reason` (the management API, a vhost
    /// deletion, shutdown); the connection's task does it.
    pub fn request_close(&self, reason: &str) {
        *self.close_reason.lock() = Some(reason.to_owned());
        (self.wake)();
    }

    /// A close asked for and not yet acted on.
    pub fn take_close_request(&self) -> Option<String> {
        self.close_reason.lock().take()
    }

    /// Registers a channel of this connection; `target` is what its deliveries go to.
    pub fn add_channel(
        &self,
        registry: &Registry,
        number: u16,
        target: Weak<dyn DeliveryTarget>,
    ) -> Arc<ChannelEntry> {
        registry.churn.count(ChurnEvent::ChannelCreated);
        let entry = Arc::new(ChannelEntry {
            id: registry.next_target_id(),
            connection: self.id,
            number,
            target,
            counters: Counters::default(),
            deliveries: DeliverySide::default(),
            prefetch: AtomicU32::new(0),
            global_prefetch: AtomicU32::new(0),
            unconfirmed: AtomicU64::new(0),
            mode: AtomicU8::new(ChannelMode::Plain as u8),
            consumers: AtomicU32::new(0),
            in_flow: AtomicBool::new(false),
            published_before_confirm: AtomicU64::new(0),
        });
        self.channels.lock().insert(number, entry.clone());
        entry
    }

    /// Forgets a closed channel; returns its entry (its counters are the caller's to keep).
    pub fn remove_channel(&self, number: u16) -> Option<Arc<ChannelEntry>> {
        self.channels.lock().remove(&number)
    }

    /// The connection's open channels.
    pub fn channels(&self) -> Vec<Arc<ChannelEntry>> {
        self.channels.lock().values().cloned().collect()
    }
}

/// A channel's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ChannelMode {
    /// Neither confirms nor transactions.
    Plain = 0,
    /// Publisher confirms.
    Confirm = 1,
    /// Transactional.
    Transactional = 2,
}

/// The counters a channel's deliveries update (see [`ChannelEntry::delivery_counters`]).
#[repr(align(128))]
#[derive(Default)]
struct DeliverySide {
    counters: Counters,
    unacked: AtomicU64,
}

/// A registered channel (or another protocol's delivery target).
pub struct ChannelEntry {
    /// The delivery target id its consumers carry.
    pub id: TargetId,
    /// The connection it belongs to.
    pub connection: u64,
    /// Its number on the connection.
    pub number: u16,
    target: Weak<dyn DeliveryTarget>,
    /// What the channel's own session counts (publishes, acks, confirms).
    counters: Counters,
    /// What deliveries count, from whichever thread delivers: on cache lines of their own, so
    /// a publisher's core delivering and the consumer's core acknowledging do not share one.
    deliveries: DeliverySide,
    prefetch: AtomicU32,
    global_prefetch: AtomicU32,
    unconfirmed: AtomicU64,
    mode: AtomicU8,
    consumers: AtomicU32,
    /// Flow control holds back its connection's publishing.
    in_flow: AtomicBool,
    /// Its publishes counted before confirm.select (publishes since then expected a confirm).
    published_before_confirm: AtomicU64,
}

impl std::fmt::Debug for ChannelEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelEntry")
            .field("connection", &self.connection)
            .field("number", &self.number)
            .finish()
    }
}

impl ChannelEntry {
    /// The counters the channel's session keeps: publishes, acknowledgements, confirms, unroutable
    /// messages (it counts alone; see [`Counters::add_owned`]).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The counters deliveries and gets update, under the channel's own lock (one writer at a
    /// time): kept apart from [`ChannelEntry::counters`], which another thread writes.
    pub fn delivery_counters(&self) -> &Counters {
        &self.deliveries.counters
    }

    /// Both sets of counters, summed.
    pub fn counter_values(&self) -> CounterValues {
        let mut values = self.counters.snapshot();
        values.add(&self.deliveries.counters.snapshot());
        values
    }

    /// Records the prefetch settings (per consumer, and channel-wide).
    pub fn set_prefetch(&self, per_consumer: u16, global: u16) {
        self.prefetch.store(u32::from(per_consumer), Ordering::Relaxed);
        self.global_prefetch.store(u32::from(global), Ordering::Relaxed);
    }

    /// Records how many deliveries are outstanding.
    pub fn set_unacked(&self, n: u64) {
        self.deliveries.unacked.store(n, Ordering::Relaxed);
    }

    /// Records how many publishes await their confirm.
    pub fn set_unconfirmed(&self, n: u64) {
        self.unconfirmed.store(n, Ordering::Relaxed);
    }

    /// Records the channel's mode. Entering confirm mode also notes how many messages were
    /// published before, so that those published since can be told apart (a metric).
    pub fn set_mode(&self, mode: ChannelMode) {
        if mode == ChannelMode::Confirm {
            let published = self.counters.get(crate::counters::Counter::Published);
            self.published_before_confirm.store(published, Ordering::Relaxed);
        }
        self.mode.store(mode as u8, Ordering::Relaxed);
    }

    /// Messages published on the channel since it entered confirm mode (0 for other modes):
    /// those whose publisher expected a confirm.
    pub fn published_expecting_confirm(&self) -> u64 {
        if self.mode.load(Ordering::Relaxed) != ChannelMode::Confirm as u8 {
            return 0;
        }
        let published = self.counters.get(crate::counters::Counter::Published);
        published.saturating_sub(self.published_before_confirm.load(Ordering::Relaxed))
    }

    /// Records how many consumers the channel has.
    pub fn set_consumers(&self, n: u32) {
        self.consumers.store(n, Ordering::Relaxed);
    }

    /// Records whether flow control holds back the channel's publishing.
    pub fn set_flow(&self, in_flow: bool) {
        self.in_flow.store(in_flow, Ordering::Relaxed);
    }

    /// What listings show of the channel.
    pub fn snapshot(&self) -> ChannelSnapshot {
        ChannelSnapshot {
            id: self.id,
            connection: self.connection,
            number: self.number,
            prefetch: self.prefetch.load(Ordering::Relaxed) as u16,
            global_prefetch: self.global_prefetch.load(Ordering::Relaxed) as u16,
            unacked: self.deliveries.unacked.load(Ordering::Relaxed),
            unconfirmed: self.unconfirmed.load(Ordering::Relaxed),
            mode: match self.mode.load(Ordering::Relaxed) {
                1 => ChannelMode::Confirm,
                2 => ChannelMode::Transactional,
                _ => ChannelMode::Plain,
            },
            consumers: self.consumers.load(Ordering::Relaxed),
            state: if self.in_flow.load(Ordering::Relaxed) { "flow" } else { "running" },
            counters: self.counter_values(),
        }
    }
}

/// A channel as listings show it.
#[derive(Debug, Clone)]
pub struct ChannelSnapshot {
    /// Its delivery target id.
    pub id: TargetId,
    /// Its connection.
    pub connection: u64,
    /// Its number on the connection.
    pub number: u16,
    /// basic.qos per consumer.
    pub prefetch: u16,
    /// basic.qos channel-wide.
    pub global_prefetch: u16,
    /// Deliveries outstanding.
    pub unacked: u64,
    /// Publishes awaiting their confirm.
    pub unconfirmed: u64,
    /// Confirm or transactional mode.
    pub mode: ChannelMode,
    /// Consumers on the channel.
    pub consumers: u32,
    /// RabbitMQ's name for its state: "running", or "flow" while flow control holds back its
    /// connection's publishing.
    pub state: &'static str,
    /// Message counters.
    pub counters: CounterValues,
}

/// A connection as listings show it.
#[derive(Debug, Clone)]
pub struct ConnectionSnapshot {
    /// Its id.
    pub id: u64,
    /// The protocol spoken.
    pub protocol: &'static str,
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// When it connected (ms since the Unix epoch).
    pub connected_at_ms: u64,
    /// Its state.
    pub state: ConnectionState,
    /// What it negotiated, once open.
    pub details: Option<ConnectionDetails>,
    /// How many channels it has open.
    pub channels: usize,
    /// Bytes in and out, and its channels' message counters summed.
    pub counters: CounterValues,
    /// The server's end of it, when known.
    pub endpoint: Option<Endpoint>,
}

/// A consumer as listings show it.
#[derive(Debug, Clone)]
pub struct ConsumerSnapshot {
    /// The vhost of its queue.
    pub vhost: String,
    /// Its queue.
    pub queue: String,
    /// Its tag.
    pub tag: String,
    /// The delivery target (channel) it delivers to: see [`ChannelSnapshot::id`].
    pub target: TargetId,
    /// Whether deliveries need no acknowledgement.
    pub no_ack: bool,
    /// Whether it uses the queue alone.
    pub exclusive: bool,
    /// Its prefetch window (0 = unlimited).
    pub prefetch: u16,
    /// Its `x-priority`.
    pub priority: i32,
    /// Deliveries outstanding.
    pub unacked: u32,
    /// Its consume arguments.
    pub arguments: FieldTable,
}

/// Every connection of the broker.
#[derive(Default)]
pub struct Registry {
    connections: RwLock<BTreeMap<u64, Arc<ConnectionEntry>>>,
    next_connection: AtomicU64,
    next_target: AtomicU64,
    /// Counters of channels that closed, by the vhost of their connection, so totals do not go
    /// backwards.
    retired_channels: Mutex<std::collections::HashMap<String, CounterValues>>,
    /// Connection counters (bytes in and out) of connections that ended.
    retired_connections: Counters,
    /// Connections and channels opened and closed.
    churn: Churn,
    /// Publishes expecting a confirm, of channels that closed.
    retired_published_expecting_confirm: AtomicU64,
}

impl Registry {
    /// Registers a new connection from `peer`; `wake` wakes its task (to act on a close
    /// request). The caller removes it with [`Registry::remove`] when it ends.
    pub fn add(
        &self,
        protocol: &'static str,
        peer: Option<SocketAddr>,
        connected_at_ms: u64,
        wake: CloseRequester,
    ) -> Arc<ConnectionEntry> {
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed) + 1;
        let entry = Arc::new(ConnectionEntry {
            id,
            protocol,
            peer,
            connected_at_ms,
            details: RwLock::new(None),
            state: AtomicU8::new(ConnectionState::Starting as u8),
            counters: Counters::default(),
            channels: Mutex::new(BTreeMap::new()),
            close_reason: Mutex::new(None),
            wake,
            endpoint: std::sync::OnceLock::new(),
        });
        self.connections.write().insert(id, entry.clone());
        self.churn.count(ChurnEvent::ConnectionCreated);
        entry
    }

    /// Connections and channels opened and closed so far.
    pub fn churn(&self) -> &Churn {
        &self.churn
    }

    /// Forgets a connection that ended; its channels' counters are kept in the totals.
    pub fn remove(&self, id: u64) {
        let entry = self.connections.write().remove(&id);
        if let Some(entry) = entry {
            self.churn.count(ChurnEvent::ConnectionClosed);
            self.retired_connections.absorb(&entry.counters.snapshot());
            let channels: Vec<_> = entry.channels.lock().values().cloned().collect();
            for ch in channels {
                self.retire_channel(&entry, &ch);
            }
        }
    }

    /// Keeps a closed channel's counters in its vhost's (and the node's) totals.
    pub fn retire_channel(&self, connection: &ConnectionEntry, channel: &ChannelEntry) {
        self.churn.count(ChurnEvent::ChannelClosed);
        let vhost = connection.details.read().as_ref().map(|d| d.vhost.clone()).unwrap_or_default();
        self.retired_channels.lock().entry(vhost).or_default().add(&channel.counter_values());
        let expecting_confirm = channel.published_expecting_confirm();
        self.retired_published_expecting_confirm.fetch_add(expecting_confirm, Ordering::Relaxed);
    }

    /// Counts work done outside any client's channel, as RabbitMQ counts the management API's
    /// publishes and gets on the short-lived channel it opens for them: in the vhost's (and the
    /// node's) message totals.
    pub fn count_internal_channel(&self, vhost: &str, values: &CounterValues) {
        self.retired_channels.lock().entry(vhost.to_owned()).or_default().add(values);
    }

    /// Connection counters (bytes in and out) summed over every connection the broker ever had.
    pub fn connection_totals(&self) -> CounterValues {
        let mut totals = self.retired_connections.snapshot();
        for c in self.connections() {
            totals.add(&c.counters.snapshot());
        }
        totals
    }

    /// Messages published on confirm-mode channels since they entered confirm mode, over every
    /// channel the broker ever had (RabbitMQ's `messages_received_confirm`).
    pub fn published_expecting_confirm(&self) -> u64 {
        let mut total = self.retired_published_expecting_confirm.load(Ordering::Relaxed);
        for c in self.connections() {
            for ch in c.channels() {
                total += ch.published_expecting_confirm();
            }
        }
        total
    }

    pub(crate) fn next_target_id(&self) -> TargetId {
        self.next_target.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A connection by id.
    pub fn connection(&self, id: u64) -> Option<Arc<ConnectionEntry>> {
        self.connections.read().get(&id).cloned()
    }

    /// Every connection, by id.
    pub fn connections(&self) -> Vec<Arc<ConnectionEntry>> {
        self.connections.read().values().cloned().collect()
    }

    /// What listings show of every connection.
    pub fn connection_snapshots(&self) -> Vec<ConnectionSnapshot> {
        self.connections()
            .iter()
            .map(|c| {
                let channels = c.channels();
                let mut counters = c.counters.snapshot();
                for ch in &channels {
                    counters.add(&ch.counter_values());
                }
                ConnectionSnapshot {
                    id: c.id,
                    protocol: c.protocol,
                    peer: c.peer,
                    connected_at_ms: c.connected_at_ms,
                    state: c.state(),
                    details: c.details(),
                    channels: channels.len(),
                    counters,
                    endpoint: c.endpoint(),
                }
            })
            .collect()
    }

    /// What listings show of every channel.
    pub fn channel_snapshots(&self) -> Vec<ChannelSnapshot> {
        self.connections().iter().flat_map(|c| c.channels()).map(|ch| ch.snapshot()).collect()
    }

    /// Channel message counters summed over every channel the broker ever had, by vhost (the
    /// node's totals are their sum).
    pub fn channel_totals(&self) -> std::collections::HashMap<String, CounterValues> {
        let mut totals = self.retired_channels.lock().clone();
        for c in self.connections() {
            let vhost = c.details.read().as_ref().map(|d| d.vhost.clone()).unwrap_or_default();
            let total = totals.entry(vhost).or_default();
            for ch in c.channels() {
                total.add(&ch.counter_values());
            }
        }
        totals
    }

    /// Gives every live channel's target a chance to act on a timeout (the consumer timeout).
    pub fn check_timeouts(&self, now: Instant, default_ms: u64) -> usize {
        let mut timed_out = 0;
        for c in self.connections() {
            for ch in c.channels() {
                if let Some(target) = ch.target.upgrade() {
                    if target.check_timeout(now, default_ms) {
                        timed_out += 1;
                    }
                }
            }
        }
        timed_out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::Counter;

    struct Nobody;

    impl DeliveryTarget for Nobody {
        fn id(&self) -> TargetId {
            0
        }

        fn deliver(
            &self,
            _: &Arc<crate::Queue>,
            _: crate::ConsumerRef<'_>,
            message: crate::QueuedMessage,
        ) -> Result<(), crate::QueuedMessage> {
            Err(message)
        }

        fn cancelled(&self, _: &warren_message::ShortStr) {}
    }

    #[test]
    fn churn_and_confirm_mode_publishes_are_kept_past_a_close() {
        let registry = Registry::default();
        let connection = registry.add("AMQP 0-9-1", None, 0, Box::new(|| {}));
        let target: Weak<dyn DeliveryTarget> = Weak::<Nobody>::new();
        let plain = connection.add_channel(&registry, 1, target.clone());
        let confirming = connection.add_channel(&registry, 2, target);
        plain.counters().add_owned(Counter::Published, 3);
        confirming.counters().add_owned(Counter::Published, 2);
        confirming.set_mode(ChannelMode::Confirm);
        confirming.counters().add_owned(Counter::Published, 5);
        assert_eq!(registry.published_expecting_confirm(), 5);
        connection.counters().add(Counter::BytesIn, 100);
        registry.remove(connection.id);
        let churn = registry.churn().snapshot();
        let counts = [
            ChurnEvent::ConnectionCreated,
            ChurnEvent::ConnectionClosed,
            ChurnEvent::ChannelCreated,
            ChurnEvent::ChannelClosed,
        ]
        .map(|e| churn.get(e));
        assert_eq!(counts, [1, 1, 2, 2]);
        assert_eq!(registry.published_expecting_confirm(), 5, "kept after the channel closed");
        assert_eq!(registry.connection_totals().get(Counter::BytesIn), 100);
    }
}
