//! Message rates, as RabbitMQ's management plugin reports them (`*_details: {"rate": ...}`, and
//! `samples`, `avg_rate`, `avg` when a request gives `msg_rates_age` and `msg_rates_incr`).
//!
//! A background task samples the counters the core already keeps (node, vhosts, queues,
//! exchanges, connections, channels) every `collect_statistics_interval` (5 s, RabbitMQ's
//! default) into a short ring per object; a rate is the change between the last two samples.
//! Nothing is done on the message path. Memory stays bounded: objects that are gone are dropped
//! at the next pass, objects keep [`OBJECT_SAMPLES`] samples and the node and vhosts
//! [`TOTAL_SAMPLES`] (10 minutes, for the overview's charts).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use warren_broker::{Broker, ChurnEvent, ChurnValues, Counter, CounterValues};

/// RabbitMQ's `collect_statistics_interval` default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// Samples kept per queue, exchange, connection and channel: two give a rate.
const OBJECT_SAMPLES: usize = 2;
/// Samples kept for the node and each vhost: 10 minutes at the default interval.
const TOTAL_SAMPLES: usize = 121;

/// Which object a ring of samples belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    /// The node's totals.
    Node,
    /// A vhost's totals.
    Vhost(String),
    /// A queue: (vhost, name).
    Queue(String, String),
    /// An exchange: (vhost, name); "" is the default exchange.
    Exchange(String, String),
    /// A connection, by its registry id.
    Connection(u64),
    /// A channel, by its delivery target id.
    Channel(u64),
}

/// What a sample holds: message counters, queue depths (messages, ready, unacknowledged) and,
/// for the node, churn.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Sample {
    /// When it was taken (ms since the Unix epoch).
    pub(crate) at_ms: u64,
    pub(crate) counters: CounterValues,
    pub(crate) depth: [u64; 3],
    pub(crate) churn: ChurnValues,
}

/// One measure a rate is shown for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Metric {
    /// The sum of these counters.
    Counters(&'static [Counter]),
    /// Messages, ready, unacknowledged (0, 1, 2).
    Depth(usize),
    /// A churn count.
    Churn(ChurnEvent),
}

impl Metric {
    fn of(self, s: &Sample) -> u64 {
        match self {
            Metric::Counters(cs) => cs.iter().map(|&c| s.counters.get(c)).sum(),
            Metric::Depth(i) => s.depth[i],
            Metric::Churn(e) => s.churn.get(e),
        }
    }
}

/// `msg_rates_age` and `msg_rates_incr` (seconds), as list and object requests take them.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(crate) struct RateQuery {
    pub(crate) msg_rates_age: Option<u64>,
    pub(crate) msg_rates_incr: Option<u64>,
}

/// The sampled history of every object.
#[derive(Debug)]
pub struct Rates {
    interval: Duration,
    rings: RwLock<HashMap<Key, VecDeque<Sample>>>,
}

impl Default for Rates {
    fn default() -> Self {
        Rates::new(DEFAULT_INTERVAL)
    }
}

impl Rates {
    /// Rates sampled every `interval`.
    pub fn new(interval: Duration) -> Self {
        Rates { interval, rings: RwLock::default() }
    }

    /// How often samples are taken.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Samples the broker's counters once, at `at_ms`, forgetting objects that are gone.
    pub fn sample(&self, broker: &Broker, at_ms: u64) {
        let taken = collect(broker, at_ms);
        let mut rings = self.rings.write();
        let mut old = std::mem::take(&mut *rings);
        for (key, sample) in taken {
            let cap = match key {
                Key::Node | Key::Vhost(_) => TOTAL_SAMPLES,
                _ => OBJECT_SAMPLES,
            };
            let mut ring = old.remove(&key).unwrap_or_default();
            if ring.len() == cap {
                ring.pop_front();
            }
            ring.push_back(sample);
            rings.insert(key, ring);
        }
    }

    /// A read view for one request (one lock for the whole listing).
    pub(crate) fn view(&self) -> RatesView<'_> {
        RatesView { rings: self.rings.read(), interval: self.interval }
    }
}

/// The rings as one request reads them.
pub(crate) struct RatesView<'a> {
    rings: parking_lot::RwLockReadGuard<'a, HashMap<Key, VecDeque<Sample>>>,
    interval: Duration,
}

impl RatesView<'_> {
    /// `{"rate": ...}` (with samples and averages when `query` asks) for `metric` of `key`.
    pub(crate) fn details(&self, key: &Key, metric: Metric, query: &RateQuery) -> Value {
        let ring = self.rings.get(key);
        details(ring.map(|r| r.as_slices()).unwrap_or_default(), metric, query, self.interval)
    }

    /// `message_stats` for `key`: each (name, counters) with its count and `_details`, by
    /// family. As in RabbitMQ, whose statistics come in separate tables (what was published, what
    /// was delivered), a family shows once one of its counters moved; None when nothing was ever
    /// counted (RabbitMQ leaves `message_stats` out then).
    pub(crate) fn message_stats(
        &self,
        key: &Key,
        current: &CounterValues,
        families: &[StatsFamily],
        query: &RateQuery,
    ) -> Option<Value> {
        let mut map = Map::new();
        for fields in families {
            if fields.iter().all(|(_, cs)| cs.iter().all(|&c| current.get(c) == 0)) {
                continue;
            }
            for (name, counters) in *fields {
                let n: u64 = counters.iter().map(|&c| current.get(c)).sum();
                map.insert((*name).to_owned(), n.into());
                map.insert(format!("{name}_details"), self.details(key, Metric::Counters(counters), query));
            }
        }
        (!map.is_empty()).then_some(Value::Object(map))
    }

    /// `name` with `value`, and `name_details`, into `map`.
    pub(crate) fn gauge(
        &self,
        map: &mut Map<String, Value>,
        key: &Key,
        name: &str,
        value: u64,
        metric: Metric,
        query: &RateQuery,
    ) {
        map.insert(name.to_owned(), value.into());
        map.insert(format!("{name}_details"), self.details(key, metric, query));
    }
}

/// Computes a metric's details from a ring (oldest first, in two slices).
fn details(ring: (&[Sample], &[Sample]), metric: Metric, query: &RateQuery, interval: Duration) -> Value {
    let samples: Vec<&Sample> = ring.0.iter().chain(ring.1).collect();
    let rate = match samples.as_slice() {
        [.., a, b] => per_second(metric.of(a), metric.of(b), b.at_ms.saturating_sub(a.at_ms)),
        _ => 0.0,
    };
    let (Some(age), Some(incr)) = (query.msg_rates_age, query.msg_rates_incr) else {
        return json!({ "rate": rate });
    };
    let incr_ms = incr.max(interval.as_secs().max(1)) * 1000;
    let Some(newest) = samples.last() else {
        return json!({"rate": rate, "samples": [], "avg_rate": 0.0, "avg": 0.0});
    };
    // Newest first, one per `incr`, back to `age`, as RabbitMQ lists them; each the latest
    // sample taken at or before its timestamp.
    let end = newest.at_ms - newest.at_ms % incr_ms;
    let start = end.saturating_sub(age * 1000);
    let mut listed = Vec::new();
    let mut t = end;
    while t >= start && t > 0 {
        let Some(s) = samples.iter().rev().find(|s| s.at_ms <= t + incr_ms / 2) else { break };
        listed.push((metric.of(s), t));
        if t < incr_ms {
            break;
        }
        t -= incr_ms;
    }
    let (avg_rate, avg) = match (listed.first(), listed.last()) {
        (Some(&(last, t1)), Some(&(first, t0))) if t1 > t0 => {
            let sum: u64 = listed.iter().map(|(v, _)| v).sum();
            (per_second(first, last, t1 - t0), sum as f64 / listed.len() as f64)
        }
        (Some(&(v, _)), _) => (0.0, v as f64),
        _ => (0.0, 0.0),
    };
    let samples: Vec<Value> = listed.iter().map(|(v, t)| json!({"sample": v, "timestamp": t})).collect();
    json!({"rate": rate, "samples": samples, "avg_rate": avg_rate, "avg": avg})
}

/// The change from `before` to `after` over `ms`, per second (a counter never goes back; a
/// depth may).
fn per_second(before: u64, after: u64, ms: u64) -> f64 {
    if ms == 0 {
        return 0.0;
    }
    let change = after as f64 - before as f64;
    (change * 1000.0 / ms as f64 * 10.0).round() / 10.0
}

/// One pass over the broker: a sample for every object there is now.
fn collect(broker: &Broker, at_ms: u64) -> Vec<(Key, Sample)> {
    let mut out = Vec::new();
    let mut node = Sample { at_ms, ..Sample::default() };
    let channel_totals = broker.registry().channel_totals();
    for vhost in broker.vhosts() {
        let mut total = Sample { at_ms, ..Sample::default() };
        for q in vhost.queues() {
            let stats = q.stats();
            let depth = [stats.ready + stats.unacked, stats.ready, stats.unacked];
            let sample = Sample { at_ms, counters: q.counters().snapshot(), depth, ..Sample::default() };
            for (sum, d) in total.depth.iter_mut().zip(depth) {
                *sum += d;
            }
            out.push((Key::Queue(vhost.name.clone(), q.name.to_string()), sample));
        }
        let default = vhost.default_exchange_counters().snapshot();
        out.push((Key::Exchange(vhost.name.clone(), String::new()), counters_sample(at_ms, default)));
        for x in vhost.exchanges() {
            let sample = counters_sample(at_ms, x.counters().snapshot());
            out.push((Key::Exchange(vhost.name.clone(), x.name.to_string()), sample));
        }
        // A vhost's message counts are its channels' (publish, confirm, deliver, ack ...) and
        // its queues' dead-lettering, as RabbitMQ sums them.
        total.counters = channel_totals.get(&vhost.name).copied().unwrap_or_default();
        let queues = vhost.queue_totals();
        for c in DEAD_LETTER_COUNTERS {
            total.counters.0[c as usize] = queues.get(c);
        }
        node.counters.add(&total.counters);
        for (sum, d) in node.depth.iter_mut().zip(total.depth) {
            *sum += d;
        }
        node.churn.add(&vhost.churn().snapshot());
        out.push((Key::Vhost(vhost.name.clone()), total));
    }
    node.churn.add(&broker.registry().churn().snapshot());
    for c in broker.registry().connection_snapshots() {
        out.push((Key::Connection(c.id), counters_sample(at_ms, c.counters)));
    }
    for ch in broker.registry().channel_snapshots() {
        out.push((Key::Channel(ch.id), counters_sample(at_ms, ch.counters)));
    }
    out.push((Key::Node, node));
    out
}

use Counter::*;

/// Deliveries and gets of every kind (`deliver_get`).
const DELIVER_GET: &[Counter] = &[DeliveredAck, DeliveredNoAck, GetAck, GetNoAck];
/// Statistics shown together: each name with the counters it sums.
pub(crate) type StatsFamily = &'static [(&'static str, &'static [Counter])];

/// What was delivered or got from a queue, and acknowledged.
const DELIVERIES: StatsFamily = &[
    ("deliver", &[DeliveredAck]),
    ("deliver_no_ack", &[DeliveredNoAck]),
    ("get", &[GetAck]),
    ("get_no_ack", &[GetNoAck]),
    ("get_empty", &[GetEmpty]),
    ("deliver_get", DELIVER_GET),
    ("redeliver", &[Redelivered]),
    ("ack", &[Acked]),
];
/// What a queue's `message_stats` show.
pub(crate) const QUEUE_STATS: &[StatsFamily] = &[&[("publish", &[Published])], DELIVERIES];
/// What a channel's, a connection's, a vhost's and the node's `message_stats` show.
pub(crate) const CHANNEL_STATS: &[StatsFamily] = &[
    &[
        ("publish", &[Published]),
        ("confirm", &[Confirmed]),
        ("return_unroutable", &[ReturnedUnroutable]),
        ("drop_unroutable", &[DroppedUnroutable]),
    ],
    DELIVERIES,
];
/// The overview's `churn_rates`: each count with its `_details`.
pub(crate) fn churn_rates(view: &RatesView<'_>, current: &ChurnValues, query: &RateQuery) -> Value {
    let mut map = Map::new();
    for event in ChurnEvent::ALL {
        view.gauge(&mut map, &Key::Node, event.name(), current.get(event), Metric::Churn(event), query);
    }
    Value::Object(map)
}

/// What an exchange's `message_stats` show.
pub(crate) const EXCHANGE_STATS: &[StatsFamily] =
    &[&[("publish_in", &[Published]), ("publish_out", &[Routed])]];

const DEAD_LETTER_COUNTERS: [Counter; 4] = [
    Counter::DeadLetteredExpired,
    Counter::DeadLetteredRejected,
    Counter::DeadLetteredMaxLength,
    Counter::DeadLetteredDeliveryLimit,
];

fn counters_sample(at_ms: u64, counters: CounterValues) -> Sample {
    Sample { at_ms, counters, ..Sample::default() }
}

/// Samples `broker` every `rates.interval()` until the runtime stops.
pub fn spawn_sampler(rates: Arc<Rates>, broker: Arc<Broker>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(rates.interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (rates, broker) = (rates.clone(), broker.clone());
            // Locks every queue briefly: off the async workers.
            let _ = tokio::task::spawn_blocking(move || rates.sample(&broker, unix_ms())).await;
        }
    });
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64, published: u64) -> Sample {
        let mut counters = CounterValues::default();
        counters.0[Counter::Published as usize] = published;
        Sample { at_ms, counters, ..Sample::default() }
    }

    const PUBLISHED: Metric = Metric::Counters(&[Counter::Published]);

    #[test]
    fn a_rate_is_the_change_between_the_last_two_samples_per_second() {
        let ring = [sample(0, 0), sample(5000, 10), sample(10_000, 60)];
        let d = details((&ring, &[]), PUBLISHED, &RateQuery::default(), DEFAULT_INTERVAL);
        assert_eq!(d, json!({"rate": 10.0}));
        let d = details((&ring[..1], &[]), PUBLISHED, &RateQuery::default(), DEFAULT_INTERVAL);
        assert_eq!(d, json!({"rate": 0.0}), "one sample gives no rate");
    }

    #[test]
    fn samples_and_averages_over_an_age_newest_first() {
        let ring = [sample(10_000, 0), sample(15_000, 10), sample(20_000, 30)];
        let query = RateQuery { msg_rates_age: Some(10), msg_rates_incr: Some(5) };
        let d = details((&ring, &[]), PUBLISHED, &query, DEFAULT_INTERVAL);
        assert_eq!(d["rate"], 4.0);
        assert_eq!(
            d["samples"],
            json!([
                {"sample": 30, "timestamp": 20_000},
                {"sample": 10, "timestamp": 15_000},
                {"sample": 0, "timestamp": 10_000}
            ])
        );
        assert_eq!(d["avg_rate"], 3.0);
        assert_eq!(d["avg"], 40.0 / 3.0);
    }

    #[test]
    fn objects_that_are_gone_are_forgotten_and_rings_are_bounded() {
        let broker = Broker::new();
        broker.add_vhost("/");
        let rates = Rates::default();
        for i in 0..(TOTAL_SAMPLES as u64 + 5) {
            rates.sample(&broker, i * 5000);
        }
        let rings = rates.rings.read();
        assert_eq!(rings[&Key::Node].len(), TOTAL_SAMPLES);
        assert_eq!(rings[&Key::Exchange("/".into(), "amq.direct".into())].len(), OBJECT_SAMPLES);
        drop(rings);
        broker.add_vhost("other");
        rates.sample(&broker, 10_000_000);
        assert!(rates.rings.read().contains_key(&Key::Vhost("other".into())));
    }
}
