//! Writes a [`Snapshot`] as one of the three endpoints shows it, in RabbitMQ's order and with
//! its names: `/metrics` sums every object into one sample per family, `/metrics/per-object`
//! has a sample per queue, channel and connection, `/metrics/detailed` only the groups asked
//! for (per object, `rabbitmq_detailed_` and `rabbitmq_cluster_` prefixes).

use warren_broker::{Counter, CounterValues};

use super::collect::Snapshot;
use super::families::{self as f, FamilyDef, Group};
use super::node::Identity;
use super::text::{labels, TextWriter};

/// Which endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `/metrics`: no per-object series.
    Aggregated,
    /// `/metrics/per-object`.
    PerObject,
    /// `/metrics/detailed`: these groups only (in [`Group::ALL`] order, no repeats).
    Detailed(Vec<Group>),
}

/// RabbitMQ's protocol label for AMQP 0-9-1.
const PROTOCOL: &str = "protocol=\"amqp091\"";
/// Every Warren queue counts as a classic queue in the global metrics' `queue_type`.
const PROTOCOL_QUEUE_TYPE: &str = "protocol=\"amqp091\",queue_type=\"rabbit_classic_queue\"";
/// Dead-lettering in Warren is at most once, as in classic queues.
const DEAD_LETTER_LABELS: &str = "queue_type=\"rabbit_classic_queue\",dead_letter_strategy=\"at_most_once\"";

/// The exposition of `snapshot` at `endpoint`.
pub(crate) fn render(snapshot: &Snapshot, identity: &Identity, endpoint: &Endpoint) -> String {
    let rows = snapshot.queues.len() + snapshot.channels.len() + snapshot.connections.len();
    let mut w = TextWriter::with_capacity(16 * 1024 + rows * 400);
    match endpoint {
        Endpoint::Aggregated | Endpoint::PerObject => {
            let per_object = *endpoint == Endpoint::PerObject;
            alarms(&mut w, snapshot);
            for group in Group::ALL {
                // queue_consumer_count is a subset of queue_metrics, which is written.
                if !group.is_cluster() && group != Group::QueueConsumerCount {
                    write_group(&mut w, "rabbitmq_", group, snapshot, per_object);
                }
            }
            totals(&mut w, snapshot);
            identity_info(&mut w, identity);
            global(&mut w, snapshot);
            warren(&mut w, snapshot);
        }
        Endpoint::Detailed(groups) => {
            let has_queue_metrics = groups.contains(&Group::Queue);
            for &group in groups {
                if group == Group::QueueConsumerCount && has_queue_metrics {
                    continue;
                }
                let prefix = if group.is_cluster() { "rabbitmq_cluster_" } else { "rabbitmq_detailed_" };
                write_group(&mut w, prefix, group, snapshot, true);
            }
            identity_info(&mut w, identity);
        }
    }
    w.finish()
}

fn family(w: &mut TextWriter, prefix: &str, def: &FamilyDef) {
    w.family(&format!("{prefix}{}", def.name), def.kind, def.help);
}

/// A family with one unlabelled sample.
fn single(w: &mut TextWriter, prefix: &str, def: &FamilyDef, value: impl Into<super::text::Value>) {
    family(w, prefix, def);
    w.sample("", value);
}

/// A family with one unlabelled sample, or none when the value cannot be read here.
fn optional(w: &mut TextWriter, prefix: &str, def: &FamilyDef, value: Option<u64>) {
    family(w, prefix, def);
    if let Some(v) = value {
        w.sample("", v);
    }
}

fn write_group(w: &mut TextWriter, prefix: &str, group: Group, s: &Snapshot, per_object: bool) {
    let node = &s.node;
    let counters = &s.counters;
    match group {
        Group::ConnectionChurn => {
            single(
                w,
                prefix,
                &f::CONNECTIONS_OPENED,
                counters.churn.get(warren_broker::ChurnEvent::ConnectionCreated),
            );
            single(
                w,
                prefix,
                &f::CONNECTIONS_CLOSED,
                counters.churn.get(warren_broker::ChurnEvent::ConnectionClosed),
            );
            single(
                w,
                prefix,
                &f::CHANNELS_OPENED,
                counters.churn.get(warren_broker::ChurnEvent::ChannelCreated),
            );
            single(
                w,
                prefix,
                &f::CHANNELS_CLOSED,
                counters.churn.get(warren_broker::ChurnEvent::ChannelClosed),
            );
            single(w, prefix, &f::QUEUES_DECLARED, counters.queue_churn.declared);
            single(w, prefix, &f::QUEUES_CREATED, counters.queue_churn.created);
            single(w, prefix, &f::QUEUES_DELETED, counters.queue_churn.deleted);
        }
        Group::NodeCoarse => {
            optional(w, prefix, &f::OPEN_FDS, node.open_fds);
            single(w, prefix, &f::OPEN_TCP_SOCKETS, s.connections.len() as u64);
            optional(w, prefix, &f::RESIDENT_MEMORY, node.resident_memory_bytes);
            optional(w, prefix, &f::DISK_FREE, node.disk_free_bytes);
        }
        Group::Node => {
            optional(w, prefix, &f::MAX_FDS, node.max_fds);
            optional(w, prefix, &f::MAX_TCP_SOCKETS, node.max_tcp_sockets);
            optional(w, prefix, &f::MEMORY_LIMIT, node.memory_limit_bytes);
            optional(w, prefix, &f::DISK_FREE_LIMIT, node.disk_free_limit_bytes);
            single(w, prefix, &f::UPTIME, node.uptime_seconds);
        }
        Group::AuthAttempt => {
            let (ok, failed) = (counters.logins_succeeded, counters.logins_failed);
            for (def, value) in
                [(&f::AUTH_ATTEMPTS, ok + failed), (&f::AUTH_SUCCEEDED, ok), (&f::AUTH_FAILED, failed)]
            {
                family(w, prefix, def);
                w.sample(PROTOCOL, value);
            }
        }
        Group::QueueCoarse => {
            queue_family(w, prefix, &f::QUEUE_READY, s, per_object, |q| q.stats.ready);
            queue_family(w, prefix, &f::QUEUE_UNACKED, s, per_object, |q| q.stats.unacked);
            queue_family(w, prefix, &f::QUEUE_MESSAGES, s, per_object, |q| q.stats.ready + q.stats.unacked);
        }
        Group::QueueConsumerCount => {
            queue_family(w, prefix, &f::QUEUE_CONSUMERS, s, per_object, |q| u64::from(q.stats.consumers));
        }
        Group::Queue => {
            queue_family(w, prefix, &f::QUEUE_CONSUMERS, s, per_object, |q| u64::from(q.stats.consumers));
            queue_family(w, prefix, &f::QUEUE_READY_BYTES, s, per_object, |q| q.stats.ready_bytes);
        }
        Group::Channel => {
            channel_gauge(w, prefix, &f::CHANNEL_CONSUMERS, s, per_object, |c| u64::from(c.consumers));
            channel_gauge(w, prefix, &f::CHANNEL_UNACKED, s, per_object, |c| c.unacked);
            channel_gauge(w, prefix, &f::CHANNEL_UNCONFIRMED, s, per_object, |c| c.unconfirmed);
            channel_gauge(w, prefix, &f::CONSUMER_PREFETCH, s, per_object, |c| u64::from(c.prefetch));
            channel_gauge(w, prefix, &f::CHANNEL_PREFETCH, s, per_object, |c| u64::from(c.global_prefetch));
        }
        Group::ChannelExchange => {
            channel_counter(w, prefix, &f::CHANNEL_PUBLISHED, s, per_object, &[Counter::Published]);
            channel_counter(w, prefix, &f::CHANNEL_CONFIRMED, s, per_object, &[Counter::Confirmed]);
            channel_counter(w, prefix, &f::CHANNEL_RETURNED, s, per_object, &[Counter::ReturnedUnroutable]);
            channel_counter(w, prefix, &f::CHANNEL_DROPPED, s, per_object, &[Counter::DroppedUnroutable]);
        }
        Group::ChannelQueue => {
            channel_counter(w, prefix, &f::CHANNEL_GET_ACK, s, per_object, &[Counter::GetAck]);
            channel_counter(w, prefix, &f::CHANNEL_GET, s, per_object, &[Counter::GetNoAck]);
            channel_counter(w, prefix, &f::CHANNEL_DELIVERED_ACK, s, per_object, &[Counter::DeliveredAck]);
            channel_counter(w, prefix, &f::CHANNEL_DELIVERED, s, per_object, &[Counter::DeliveredNoAck]);
            channel_counter(w, prefix, &f::CHANNEL_REDELIVERED, s, per_object, &[Counter::Redelivered]);
            channel_counter(w, prefix, &f::CHANNEL_ACKED, s, per_object, &[Counter::Acked]);
            channel_counter(w, prefix, &f::CHANNEL_GET_EMPTY, s, per_object, &[Counter::GetEmpty]);
        }
        Group::ConnectionCoarse => {
            for (def, counter) in
                [(&f::CONNECTION_IN, Counter::BytesIn), (&f::CONNECTION_OUT, Counter::BytesOut)]
            {
                family(w, prefix, def);
                if per_object {
                    for c in &s.connections {
                        w.sample(&c.labels, c.counters.get(counter));
                    }
                } else {
                    w.sample("", counters.connections.get(counter));
                }
            }
        }
        Group::Connection => {
            family(w, prefix, &f::CONNECTION_CHANNELS);
            if per_object {
                for c in &s.connections {
                    w.sample(&c.labels, c.channels as u64);
                }
            } else {
                w.sample("", s.connections.iter().map(|c| c.channels as u64).sum::<u64>());
            }
        }
        Group::ChannelQueueExchange => {
            family(w, prefix, &f::QUEUE_PUBLISHED);
            if per_object {
                for q in &s.queues {
                    w.sample(&q.labels, q.published);
                }
            } else {
                w.sample("", counters.queues.get(Counter::Published));
            }
        }
        Group::VhostStatus => {
            family(w, prefix, &f::VHOST_STATUS);
            for vhost in &s.vhosts {
                w.sample(&labels(&[("vhost", vhost)]), 1u64);
            }
        }
        Group::ExchangeBindings => {
            family(w, prefix, &f::EXCHANGE_BINDINGS);
            for e in &s.exchanges {
                w.sample(&e.labels, e.bindings as u64);
            }
        }
        Group::ExchangeNames => {
            family(w, prefix, &f::EXCHANGE_NAME);
            for e in &s.exchanges {
                w.sample(&e.labels, 1u64);
            }
        }
    }
}

/// A queue family: a sample per queue, or their sum.
fn queue_family(
    w: &mut TextWriter,
    prefix: &str,
    def: &FamilyDef,
    s: &Snapshot,
    per_object: bool,
    value: impl Fn(&super::collect::QueueRow) -> u64,
) {
    family(w, prefix, def);
    if per_object {
        for q in &s.queues {
            w.sample(&q.labels, value(q));
        }
    } else {
        w.sample("", s.queues.iter().map(value).sum::<u64>());
    }
}

/// A channel gauge: a sample per channel, or their sum.
fn channel_gauge(
    w: &mut TextWriter,
    prefix: &str,
    def: &FamilyDef,
    s: &Snapshot,
    per_object: bool,
    value: impl Fn(&warren_broker::ChannelSnapshot) -> u64,
) {
    family(w, prefix, def);
    if per_object {
        for c in &s.channels {
            w.sample(&c.labels, value(&c.snapshot));
        }
    } else {
        w.sample("", s.channels.iter().map(|c| value(&c.snapshot)).sum::<u64>());
    }
}

/// A channel counter: a sample per open channel (with its vhost), or the node's total over
/// every channel it had, so the sum never drops when a channel closes.
fn channel_counter(
    w: &mut TextWriter,
    prefix: &str,
    def: &FamilyDef,
    s: &Snapshot,
    per_object: bool,
    of: &[Counter],
) {
    let sum = |values: &CounterValues| of.iter().map(|&c| values.get(c)).sum::<u64>();
    family(w, prefix, def);
    if per_object {
        for c in &s.channels {
            w.sample(&c.labels_with_vhost, sum(&c.snapshot.counters));
        }
    } else {
        w.sample("", sum(&s.counters.channels));
    }
}

fn alarms(w: &mut TextWriter, s: &Snapshot) {
    let alarms = s.node.alarms;
    single(w, "rabbitmq_alarms_", &f::ALARM_FD, alarms.file_descriptors);
    single(w, "rabbitmq_alarms_", &f::ALARM_DISK, alarms.disk);
    single(w, "rabbitmq_alarms_", &f::ALARM_MEMORY, alarms.memory);
}

fn totals(w: &mut TextWriter, s: &Snapshot) {
    single(w, "rabbitmq_", &f::CONNECTIONS, s.connections.len() as u64);
    single(w, "rabbitmq_", &f::CHANNELS, s.channels.len() as u64);
    single(w, "rabbitmq_", &f::CONSUMERS, s.consumers());
    single(w, "rabbitmq_", &f::QUEUES, s.queues.len() as u64);
}

fn identity_info(w: &mut TextWriter, id: &Identity) {
    family(w, "rabbitmq_", &f::BUILD_INFO);
    w.sample(
        &labels(&[
            ("rabbitmq_version", super::RABBITMQ_VERSION),
            ("prometheus_plugin_version", &id.version),
            ("prometheus_client_version", &id.version),
            ("product_name", "Warren"),
            ("product_version", &id.version),
        ]),
        1u64,
    );
    family(w, "rabbitmq_", &f::IDENTITY_INFO);
    w.sample(
        &labels(&[
            ("rabbitmq_node", &id.node),
            ("rabbitmq_cluster", &id.cluster),
            ("rabbitmq_cluster_permanent_id", &id.cluster_id),
        ]),
        1u64,
    );
}

fn global(w: &mut TextWriter, s: &Snapshot) {
    let p = "rabbitmq_global_";
    let ch = &s.counters.channels;
    let q = &s.counters.queues;
    let get = |c: Counter| ch.get(c);
    family(w, p, &f::GLOBAL_CONSUMERS);
    w.sample(PROTOCOL, s.consumers());
    family(w, p, &f::GLOBAL_PUBLISHERS);
    w.sample(PROTOCOL, s.publishers());
    let unroutable = get(Counter::DroppedUnroutable) + get(Counter::ReturnedUnroutable);
    let per_protocol = [
        (&f::GLOBAL_RECEIVED, get(Counter::Published)),
        (&f::GLOBAL_RECEIVED_CONFIRM, s.counters.received_confirm),
        (&f::GLOBAL_ROUTED, get(Counter::Published).saturating_sub(unroutable)),
        (&f::GLOBAL_DROPPED, get(Counter::DroppedUnroutable)),
        (&f::GLOBAL_RETURNED, get(Counter::ReturnedUnroutable)),
        (&f::GLOBAL_CONFIRMED, get(Counter::Confirmed)),
    ];
    for (def, value) in per_protocol {
        family(w, p, def);
        w.sample(PROTOCOL, value);
    }
    let delivered = [Counter::DeliveredAck, Counter::DeliveredNoAck, Counter::GetAck, Counter::GetNoAck];
    let per_queue_type = [
        (&f::GLOBAL_DELIVERED, delivered.iter().map(|&c| get(c)).sum()),
        (&f::GLOBAL_CONSUME_MANUAL, get(Counter::DeliveredAck)),
        (&f::GLOBAL_CONSUME_AUTO, get(Counter::DeliveredNoAck)),
        (&f::GLOBAL_GET_MANUAL, get(Counter::GetAck)),
        (&f::GLOBAL_GET_AUTO, get(Counter::GetNoAck)),
        (&f::GLOBAL_GET_EMPTY, get(Counter::GetEmpty)),
        (&f::GLOBAL_REDELIVERED, get(Counter::Redelivered)),
        (&f::GLOBAL_ACKNOWLEDGED, get(Counter::Acked)),
    ];
    for (def, value) in per_queue_type {
        family(w, p, def);
        w.sample(PROTOCOL_QUEUE_TYPE, value);
    }
    let dead_lettered = [
        (&f::GLOBAL_DL_EXPIRED, q.get(Counter::DeadLetteredExpired)),
        (&f::GLOBAL_DL_REJECTED, q.get(Counter::DeadLetteredRejected)),
        (&f::GLOBAL_DL_MAXLEN, q.get(Counter::DeadLetteredMaxLength)),
        (&f::GLOBAL_DL_DELIVERY_LIMIT, q.get(Counter::DeadLetteredDeliveryLimit)),
    ];
    for (def, value) in dead_lettered {
        family(w, p, def);
        w.sample(DEAD_LETTER_LABELS, value);
    }
}

fn warren(w: &mut TextWriter, s: &Snapshot) {
    let p = "warren_";
    single(w, p, &f::CONNECTIONS_FLOW, s.connections_flow);
    single(w, p, &f::CONNECTIONS_BLOCKED, s.connections_blocked);
    let Some(store) = &s.node.store else { return };
    single(w, p, &f::STORE_WRITE_FAILURES, store.write_failures);
    single(w, p, &f::STORE_WRITE_FAULT, store.write_fault);
    family(w, p, &f::STORE_CORRUPTION);
    for (kind, value) in &store.corruption {
        w.sample(&labels(&[("kind", kind)]), *value);
    }
}
