//! Reads what a scrape shows from the broker core and the node, once, into a [`Snapshot`]:
//! counters the core keeps anyway (relaxed atomic loads), queue depths under each queue's lock
//! for an instant, nothing on the message path. Rendering works from the snapshot alone.

use std::collections::HashSet;

use warren_broker::{
    Broker, ChannelSnapshot, ChurnValues, ConnectionState, CounterValues, QueueChurnValues, QueueStats,
};

use super::node::{NodeSource, NodeStats};
use super::text::{labels, push_labels};

/// A queue's row.
#[derive(Debug, Clone)]
pub(crate) struct QueueRow {
    /// `vhost="...",queue="..."`, escaped.
    pub(crate) labels: String,
    /// Depth and consumers.
    pub(crate) stats: QueueStats,
    /// Messages enqueued.
    pub(crate) published: u64,
}

/// A channel's row.
#[derive(Debug, Clone)]
pub(crate) struct ChannelRow {
    /// `channel="<0.C.N>"`, escaped.
    pub(crate) labels: String,
    /// `channel="<0.C.N>",vhost="..."`: where RabbitMQ adds the exchange's or queue's vhost.
    pub(crate) labels_with_vhost: String,
    /// Its gauges and counters.
    pub(crate) snapshot: ChannelSnapshot,
}

/// A connection's row.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionRow {
    /// `channel="<0.C.0>"` (RabbitMQ labels connections by process id under `channel` too).
    pub(crate) labels: String,
    /// Bytes in and out.
    pub(crate) counters: CounterValues,
    /// Channels open on it.
    pub(crate) channels: usize,
}

/// An exchange's row (detailed cluster families).
#[derive(Debug, Clone)]
pub(crate) struct ExchangeRow {
    /// `vhost="...",exchange="...",type="..."`, escaped.
    pub(crate) labels: String,
    /// Bindings with the exchange as source.
    pub(crate) bindings: usize,
}

/// Node-wide counters: each only goes up (see [`super::monotonic`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct NodeCounters {
    /// Connections and channels opened and closed.
    pub(crate) churn: ChurnValues,
    /// Queues declared, created, deleted.
    pub(crate) queue_churn: QueueChurnValues,
    /// Logins that passed their check.
    pub(crate) logins_succeeded: u64,
    /// Logins refused.
    pub(crate) logins_failed: u64,
    /// Channel counters over every channel the node had.
    pub(crate) channels: CounterValues,
    /// Publishes on confirm-mode channels.
    pub(crate) received_confirm: u64,
    /// Queue counters over every queue the node had.
    pub(crate) queues: CounterValues,
    /// Connection counters (bytes) over every connection the node had.
    pub(crate) connections: CounterValues,
}

impl NodeCounters {
    /// Every value, in a fixed order (for the monotonic guard).
    pub(crate) fn values_mut(&mut self) -> Vec<&mut u64> {
        let QueueChurnValues { declared, created, deleted } = &mut self.queue_churn;
        let mut all: Vec<&mut u64> = self.churn.0.iter_mut().collect();
        all.extend([
            declared,
            created,
            deleted,
            &mut self.logins_succeeded,
            &mut self.logins_failed,
            &mut self.received_confirm,
        ]);
        all.extend(self.channels.0.iter_mut());
        all.extend(self.queues.0.iter_mut());
        all.extend(self.connections.0.iter_mut());
        all
    }
}

/// What one scrape shows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    /// The node's resources, limits, alarms and store.
    pub(crate) node: NodeStats,
    /// Node-wide counters.
    pub(crate) counters: NodeCounters,
    /// Every queue (of the vhosts asked for), sorted by vhost and name.
    pub(crate) queues: Vec<QueueRow>,
    /// Every open channel, by connection and number.
    pub(crate) channels: Vec<ChannelRow>,
    /// Every connection, by id.
    pub(crate) connections: Vec<ConnectionRow>,
    /// Connections in flow (flow control holds them back).
    pub(crate) connections_flow: u64,
    /// Connections blocked by an alarm.
    pub(crate) connections_blocked: u64,
    /// Every exchange, when asked for (detailed cluster families).
    pub(crate) exchanges: Vec<ExchangeRow>,
    /// Every vhost's name, sorted.
    pub(crate) vhosts: Vec<String>,
}

impl Snapshot {
    /// Consumers over every queue read.
    pub(crate) fn consumers(&self) -> u64 {
        self.queues.iter().map(|q| u64::from(q.stats.consumers)).sum()
    }

    /// Channels that published at least one message: RabbitMQ's publishers.
    pub(crate) fn publishers(&self) -> u64 {
        let published = warren_broker::Counter::Published;
        self.channels.iter().filter(|c| c.snapshot.counters.get(published) > 0).count() as u64
    }
}

/// What to read beyond the node-wide numbers.
#[derive(Debug, Clone, Default)]
pub struct Want {
    /// Queues of these vhosts only.
    pub vhosts: Option<HashSet<String>>,
    /// Exchanges and their bindings.
    pub exchanges: bool,
}

/// Reads a snapshot.
pub(crate) fn collect(broker: &Broker, node: &dyn NodeSource, want: &Want) -> Snapshot {
    let registry = broker.registry();
    let mut channels_total = CounterValues::default();
    for values in registry.channel_totals().values() {
        channels_total.add(values);
    }
    let counters = NodeCounters {
        churn: registry.churn().snapshot(),
        queue_churn: broker.queue_churn(),
        logins_succeeded: broker.logins_succeeded(),
        logins_failed: broker.counters().get(warren_broker::Counter::LoginsRefused),
        channels: channels_total,
        received_confirm: registry.published_expecting_confirm(),
        queues: broker.queue_totals(),
        connections: registry.connection_totals(),
    };
    let mut vhosts: Vec<_> = broker.vhosts();
    vhosts.sort_by(|a, b| a.name.cmp(&b.name));
    let mut queues = Vec::new();
    let mut exchanges = Vec::new();
    for vhost in &vhosts {
        // As RabbitMQ's, the vhost filter applies to queues only.
        if want.vhosts.as_ref().is_none_or(|only| only.contains(&vhost.name)) {
            let mut vhost_queues = vhost.queues();
            vhost_queues.sort_by(|a, b| a.name.cmp(&b.name));
            queues.extend(vhost_queues.iter().map(|q| QueueRow {
                labels: labels(&[("vhost", &vhost.name), ("queue", &q.name)]),
                stats: q.stats(),
                published: q.counters().get(warren_broker::Counter::Published),
            }));
        }
        if want.exchanges {
            let mut vhost_exchanges = vhost.exchanges();
            vhost_exchanges.sort_by(|a, b| a.name.cmp(&b.name));
            exchanges.extend(vhost_exchanges.iter().map(|e| ExchangeRow {
                labels: labels(&[("vhost", &vhost.name), ("exchange", &e.name), ("type", e.kind.as_str())]),
                bindings: e.binding_count(),
            }));
        }
    }
    let mut channels = Vec::new();
    let mut connections = Vec::new();
    let (mut connections_flow, mut connections_blocked) = (0, 0);
    for c in registry.connection_snapshots() {
        match c.state {
            ConnectionState::Flow => connections_flow += 1,
            ConnectionState::Blocked => connections_blocked += 1,
            _ => {}
        }
        connections.push(ConnectionRow {
            labels: labels(&[("channel", &format!("<0.{}.0>", c.id))]),
            counters: c.counters,
            channels: c.channels,
        });
    }
    let mut channel_snapshots = registry.channel_snapshots();
    channel_snapshots.sort_by_key(|ch| (ch.connection, ch.number));
    let vhost_of: std::collections::HashMap<u64, String> = registry
        .connections()
        .iter()
        .map(|c| (c.id, c.details().map(|d| d.vhost).unwrap_or_default()))
        .collect();
    for snapshot in channel_snapshots {
        let label = labels(&[("channel", &format!("<0.{}.{}>", snapshot.connection, snapshot.number))]);
        let mut labels_with_vhost = label.clone();
        let vhost = vhost_of.get(&snapshot.connection).map_or("", String::as_str);
        push_labels(&mut labels_with_vhost, &[("vhost", vhost)]);
        channels.push(ChannelRow { labels: label, labels_with_vhost, snapshot });
    }
    Snapshot {
        node: node.node_stats(),
        counters,
        queues,
        channels,
        connections,
        connections_flow,
        connections_blocked,
        exchanges,
        vhosts: vhosts.iter().map(|v| v.name.clone()).collect(),
    }
}
