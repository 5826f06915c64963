//! Exchanges, their bindings, and routing a message to the queues it reaches: direct by hash
//! lookup, fanout by list, topic by a word trie, headers by matching the decoded table, and the
//! plugin types (consistent hashing, delayed messages, deduplication).

mod args_hash;
mod consistent_hash;
mod erlang_hash;
mod erlang_rand;
mod headers;
mod topic;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use parking_lot::RwLock;
use warren_message::{FieldTable, FieldValue, ShortStr};

use crate::counters::Counters;
use crate::dedup::{DedupConfig, Deduplicator};
use crate::delayed::DelayedMessages;
use crate::error::BrokerError;
use crate::policy::{self, AppliedPolicies};
use crate::queue::Queue;
pub use args_hash::binding_args_hash;
use consistent_hash::{parse_weight, Buckets, HashOn};
use headers::headers_match;
use topic::TopicTrie;

/// An exchange type: how an exchange picks the destinations of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    /// `direct`: the bindings whose key equals the routing key.
    Direct,
    /// `fanout`: every binding.
    Fanout,
    /// `topic`: the bindings whose pattern (`*` one word, `#` zero or more) matches the routing key.
    Topic,
    /// `headers`: the bindings whose arguments match the message's headers (`x-match`).
    Headers,
    /// `x-consistent-hash`: one destination per message, by hashing (see `exchange::consistent_hash`).
    ConsistentHash,
    /// `x-delayed-message`: holds messages with an `x-delay`, then routes as its `x-delayed-type`
    /// (see the `delayed` module).
    DelayedMessage,
    /// `x-message-deduplication` (the RabbitMQ plugin's): drops a message whose key it has seen
    /// (see the `dedup` module), and routes the others as fanout does, as the plugin does.
    MessageDeduplication,
}

impl ExchangeKind {
    /// The type named `name` in exchange.declare; `None` for a type Warren does not have.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "direct" => Some(Self::Direct),
            "fanout" => Some(Self::Fanout),
            "topic" => Some(Self::Topic),
            "headers" => Some(Self::Headers),
            "x-consistent-hash" => Some(Self::ConsistentHash),
            "x-delayed-message" => Some(Self::DelayedMessage),
            "x-message-deduplication" => Some(Self::MessageDeduplication),
            _ => None,
        }
    }

    /// The type's name, as exchange.declare gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Fanout => "fanout",
            Self::Topic => "topic",
            Self::Headers => "headers",
            Self::ConsistentHash => "x-consistent-hash",
            Self::DelayedMessage => "x-delayed-message",
            Self::MessageDeduplication => "x-message-deduplication",
        }
    }

    /// Checks exchange.declare arguments as the exchange type (or plugin) does.
    pub fn validate_arguments(self, args: &FieldTable) -> Result<(), BrokerError> {
        // Any type deduplicates with `x-message-deduplication: true` (LavinMQ's way).
        DedupConfig::for_exchange(self == Self::MessageDeduplication, args)?;
        match self {
            Self::ConsistentHash => HashOn::from_arguments(args).map(|_| ()),
            Self::DelayedMessage => {
                let routing = match args.get("x-delayed-type") {
                    Some(FieldValue::LongStr(t)) => String::from_utf8_lossy(t).into_owned(),
                    _ => {
                        return Err(BrokerError::PreconditionFailed(
                            "Invalid argument, 'x-delayed-type' must be an existing exchange type".to_owned(),
                        ))
                    }
                };
                match Self::parse(&routing) {
                    None => Err(BrokerError::UnknownExchangeType(routing)),
                    Some(Self::DelayedMessage) => Err(BrokerError::PreconditionFailed(
                        "Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'".to_owned(),
                    )),
                    Some(kind) => kind.validate_arguments(args),
                }
            }
            Self::Direct | Self::Fanout | Self::Topic | Self::Headers | Self::MessageDeduplication => Ok(()),
        }
    }

    /// The type an exchange of this type with these arguments routes as: a delayed-message
    /// exchange routes as its `x-delayed-type` (direct if that is missing or invalid).
    pub(crate) fn routing(self, arguments: &FieldTable) -> ExchangeKind {
        match self {
            ExchangeKind::DelayedMessage => arguments
                .get("x-delayed-type")
                .and_then(FieldValue::as_str)
                .and_then(ExchangeKind::parse)
                .filter(|k| *k != ExchangeKind::DelayedMessage)
                .unwrap_or(ExchangeKind::Direct),
            ExchangeKind::MessageDeduplication => ExchangeKind::Fanout,
            other => other,
        }
    }

    /// Checks a binding key for an exchange routing as this type (consistent-hash weights).
    pub fn validate_binding(self, key: &str) -> Result<(), BrokerError> {
        match self {
            Self::ConsistentHash => parse_weight(key).map(|_| ()).map_err(BrokerError::PreconditionFailed),
            _ => Ok(()),
        }
    }
}

/// Entities and bindings by name: looked up on every publish, so hashed with foldhash (fast on
/// short strings, seeded per process) rather than SipHash.
pub(crate) type NameMap<V> = HashMap<ShortStr, V, foldhash::fast::RandomState>;

/// Where a binding leads: a queue, or another exchange (exchange-to-exchange binding).
#[derive(Clone, Debug)]
pub enum Destination {
    /// A queue.
    Queue(Arc<Queue>),
    /// An exchange, which routes the message on.
    Exchange(Arc<Exchange>),
}

impl Destination {
    fn identity(&self) -> (bool, &str) {
        match self {
            Destination::Queue(q) => (true, &q.name),
            Destination::Exchange(e) => (false, &e.name),
        }
    }
}

/// Destinations are named uniquely within a vhost, so the name is their identity.
impl PartialEq for Destination {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}
impl Eq for Destination {}
impl Hash for Destination {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.identity().hash(state)
    }
}

/// A binding of an exchange (its source, which holds it) to a destination.
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    /// Where matching messages go.
    pub destination: Destination,
    /// The binding key: a routing key, a topic pattern, or a consistent-hash weight.
    pub key: ShortStr,
    /// The binding arguments (what a headers exchange matches).
    pub args: FieldTable,
}

/// The per-type structure routing reads; `list` is the source of truth for unbind and listing.
#[derive(Default)]
struct Bindings {
    list: Vec<Binding>,
    direct: NameMap<Vec<Destination>>,
    topic: TopicTrie<Destination>,
    /// Consistent-hash exchanges: the plugin's bucket row, in binding order.
    buckets: Buckets<Destination>,
    /// Whether a binding was ever added (auto-delete exchanges go when the last one leaves).
    ever_bound: bool,
}

/// An exchange of a vhost, with its bindings: routes messages to queues and other exchanges.
#[derive(Debug)]
pub struct Exchange {
    /// Its name, unique within the vhost.
    pub name: ShortStr,
    /// Its type, as declared.
    pub kind: ExchangeKind,
    /// Whether it survives a restart.
    pub durable: bool,
    /// Whether it is deleted once its last binding goes (if it ever had one).
    pub auto_delete: bool,
    /// Whether clients may not publish to it (only exchange-to-exchange bindings reach it).
    pub internal: bool,
    /// The declare arguments (`alternate-exchange`, `x-delayed-type`, `hash-header`...).
    pub arguments: FieldTable,
    /// The type whose routing applies: `kind`, or a delayed-message exchange's `x-delayed-type`.
    pub routing: ExchangeKind,
    /// What a consistent-hash exchange hashes.
    hash_on: HashOn,
    /// The messages a delayed-message exchange holds.
    delayed: Option<DelayedMessages>,
    /// The window of keys of an exchange that deduplicates.
    dedup: Option<Arc<Deduplicator>>,
    bindings: RwLock<Bindings>,
    counters: Counters,
    /// The policies that apply and what they make of the exchange's settings; read only for
    /// messages no binding takes.
    policy: RwLock<ExchangePolicy>,
}

/// An exchange's policies and the alternate exchange they leave it with.
#[derive(Debug, Default)]
struct ExchangePolicy {
    applied: AppliedPolicies,
    /// The `alternate-exchange` argument, else the policy's.
    alternate: Option<ShortStr>,
}

impl std::fmt::Debug for Bindings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bindings").field("count", &self.list.len()).finish()
    }
}

/// Lazily decoded message headers: only headers exchanges need them.
pub struct HeadersSource<'a> {
    raw_properties: &'a bytes::Bytes,
    decoded: Option<Option<FieldTable>>,
}

impl<'a> HeadersSource<'a> {
    /// The headers of a message with these encoded properties, decoded on first use.
    pub fn new(raw_properties: &'a bytes::Bytes) -> Self {
        HeadersSource { raw_properties, decoded: None }
    }

    fn get(&mut self) -> Option<&FieldTable> {
        self.decoded
            .get_or_insert_with(|| {
                warren_message::BasicProperties::decode(self.raw_properties).ok().and_then(|p| p.headers)
            })
            .as_ref()
    }
}

/// Exchange-to-exchange chains longer than this are cut (they can only come from cycles).
const MAX_EXCHANGE_HOPS: usize = 32;

impl Exchange {
    /// An exchange with no bindings. A delayed-message exchange routes as its `x-delayed-type`
    /// (direct if that is missing or invalid).
    pub fn new(
        name: ShortStr,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    ) -> Self {
        let routing = kind.routing(&arguments);
        let hash_on = HashOn::from_arguments(&arguments).unwrap_or(HashOn::RoutingKey);
        let delayed = (kind == ExchangeKind::DelayedMessage).then(DelayedMessages::default);
        // Arguments were checked at declare; bad ones from an old store deduplicate nothing.
        let dedup = DedupConfig::for_exchange(kind == ExchangeKind::MessageDeduplication, &arguments)
            .ok()
            .flatten()
            .map(|config| Arc::new(Deduplicator::new(config)));
        Exchange {
            name,
            kind,
            durable,
            auto_delete,
            internal,
            routing,
            hash_on,
            delayed,
            dedup,
            bindings: RwLock::new(Bindings::default()),
            counters: Counters::default(),
            policy: RwLock::new(ExchangePolicy {
                applied: AppliedPolicies::default(),
                alternate: policy::alternate_exchange(&arguments, &Default::default()).map(ShortStr::from),
            }),
            arguments,
        }
    }

    /// Replaces the policies that apply to the exchange (its alternate exchange may change).
    pub(crate) fn apply_policies(&self, applied: AppliedPolicies) {
        let alternate = policy::alternate_exchange(&self.arguments, &applied.settings()).map(ShortStr::from);
        *self.policy.write() = ExchangePolicy { applied, alternate };
    }

    /// The policy and operator policy that apply to the exchange now.
    pub fn applied_policies(&self) -> AppliedPolicies {
        self.policy.read().applied.clone()
    }

    /// Where messages no binding takes go next: the `alternate-exchange` argument, else the
    /// policy's.
    pub fn alternate_exchange(&self) -> Option<ShortStr> {
        self.policy.read().alternate.clone()
    }

    /// Messages published to this exchange and routed on (counted by whoever publishes).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// A delayed-message exchange's held messages.
    pub fn delayed(&self) -> Option<&DelayedMessages> {
        self.delayed.as_ref()
    }

    /// The deduplication window of an exchange that deduplicates.
    pub fn dedup(&self) -> Option<&Arc<Deduplicator>> {
        self.dedup.as_ref()
    }

    /// Adds a binding; false if an identical one exists.
    pub(crate) fn bind(&self, binding: Binding) -> bool {
        let mut b = self.bindings.write();
        if b.list.contains(&binding) {
            return false;
        }
        match self.routing {
            ExchangeKind::Direct => {
                let dests = b.direct.entry(binding.key.clone()).or_default();
                if !dests.contains(&binding.destination) {
                    dests.push(binding.destination.clone());
                }
            }
            ExchangeKind::Topic => {
                b.topic.insert(&binding.key, binding.destination.clone());
            }
            ExchangeKind::Fanout
            | ExchangeKind::Headers
            | ExchangeKind::ConsistentHash
            | ExchangeKind::DelayedMessage
            | ExchangeKind::MessageDeduplication => {}
        }
        if self.routing == ExchangeKind::ConsistentHash {
            // Keys were checked at bind; one that is not a weight (from an old store) adds none.
            b.buckets.add(binding.destination.clone(), parse_weight(&binding.key).unwrap_or(0));
        }
        b.list.push(binding);
        b.ever_bound = true;
        true
    }

    /// Removes a binding; false if there was none.
    pub(crate) fn unbind(&self, binding: &Binding) -> bool {
        let mut b = self.bindings.write();
        let Some(pos) = b.list.iter().position(|x| x == binding) else {
            return false;
        };
        b.list.remove(pos);
        if self.routing == ExchangeKind::ConsistentHash {
            // As the plugin does: whichever binding to it goes, the destination's buckets go.
            b.buckets.remove(&binding.destination);
        }
        let still_bound_same_key =
            b.list.iter().any(|x| x.key == binding.key && x.destination == binding.destination);
        if !still_bound_same_key {
            match self.routing {
                ExchangeKind::Direct => {
                    if let Some(dests) = b.direct.get_mut(&binding.key) {
                        dests.retain(|d| *d != binding.destination);
                        if dests.is_empty() {
                            b.direct.remove(&binding.key);
                        }
                    }
                }
                ExchangeKind::Topic => {
                    b.topic.remove(&binding.key, &binding.destination);
                }
                ExchangeKind::Fanout
                | ExchangeKind::Headers
                | ExchangeKind::ConsistentHash
                | ExchangeKind::DelayedMessage
                | ExchangeKind::MessageDeduplication => {}
            }
        }
        true
    }

    /// Removes every binding to `destination`; returns how many there were.
    pub(crate) fn unbind_destination(&self, destination: &Destination) -> usize {
        let doomed: Vec<Binding> =
            self.bindings.read().list.iter().filter(|b| b.destination == *destination).cloned().collect();
        for b in &doomed {
            self.unbind(b);
        }
        doomed.len()
    }

    /// Whether it has any binding (as a source).
    pub fn has_bindings(&self) -> bool {
        !self.bindings.read().list.is_empty()
    }

    /// True when this auto-delete exchange has lost its last binding.
    pub fn should_auto_delete(&self) -> bool {
        let b = self.bindings.read();
        self.auto_delete && b.ever_bound && b.list.is_empty()
    }

    /// Its bindings, in the order they were added.
    pub fn bindings(&self) -> Vec<Binding> {
        self.bindings.read().list.clone()
    }

    /// How many bindings have this exchange as their source (without copying them).
    pub fn binding_count(&self) -> usize {
        self.bindings.read().list.len()
    }

    /// Adds to `out` every queue the message reaches, following exchange-to-exchange bindings.
    /// `out` may hold duplicates; the caller dedupes.
    pub fn route(&self, routing_key: &str, headers: &mut HeadersSource<'_>, out: &mut Vec<Arc<Queue>>) {
        self.route_hop(routing_key, routing_key, headers, out, &mut |_| true, 0);
    }

    /// Routes a message by its routing key and the extra keys of sender-selected distribution
    /// (`CC`, `BCC`). Every exchange type routes by each key, except consistent-hash exchanges
    /// (here or reached through exchange-to-exchange bindings): RabbitMQ hands them the list of
    /// keys and the plugin hashes the first one only, so they pick one destination per message.
    pub fn route_message(
        &self,
        routing_key: &str,
        extra_keys: &[ShortStr],
        headers: &mut HeadersSource<'_>,
        out: &mut Vec<Arc<Queue>>,
    ) {
        self.route_message_gated(routing_key, extra_keys, headers, out, &mut |_| true);
    }

    /// As [`Exchange::route_message`]; a message reaching a deduplicating exchange through an
    /// exchange-to-exchange binding goes on from it only if `admit` says so (it is not a
    /// duplicate there).
    pub fn route_message_gated(
        &self,
        routing_key: &str,
        extra_keys: &[ShortStr],
        headers: &mut HeadersSource<'_>,
        out: &mut Vec<Arc<Queue>>,
        admit: &mut impl FnMut(&Exchange) -> bool,
    ) {
        self.route_hop(routing_key, routing_key, headers, out, admit, 0);
        for key in extra_keys {
            self.route_hop(key, routing_key, headers, out, admit, 0);
        }
    }

    /// Routes by `routing_key`; `first_key` is the message's own routing key, which is what a
    /// consistent-hash exchange hashes whichever key the others are routing by.
    fn route_hop<A: FnMut(&Exchange) -> bool>(
        &self,
        routing_key: &str,
        first_key: &str,
        headers: &mut HeadersSource<'_>,
        out: &mut Vec<Arc<Queue>>,
        admit: &mut A,
        hops: usize,
    ) {
        if hops > MAX_EXCHANGE_HOPS {
            return;
        }
        let b = self.bindings.read();
        let raw = headers.raw_properties;
        let mut visit = |d: &Destination, out: &mut Vec<Arc<Queue>>| match d {
            Destination::Queue(q) => out.push(q.clone()),
            Destination::Exchange(e) => {
                if !std::ptr::eq(Arc::as_ptr(e), self) && (e.dedup().is_none() || admit(e)) {
                    let headers = &mut HeadersSource::new(raw);
                    e.route_hop(routing_key, first_key, headers, out, &mut *admit, hops + 1)
                }
            }
        };
        match self.routing {
            ExchangeKind::Direct => {
                if let Some(dests) = b.direct.get(routing_key) {
                    for d in dests {
                        visit(d, out);
                    }
                }
            }
            ExchangeKind::Fanout => {
                for binding in &b.list {
                    visit(&binding.destination, out);
                }
            }
            ExchangeKind::Topic => b.topic.route(routing_key, &mut |d| visit(d, out)),
            ExchangeKind::Headers => {
                for binding in &b.list {
                    if headers_match(&binding.args, headers.get()) {
                        visit(&binding.destination, out);
                    }
                }
            }
            ExchangeKind::ConsistentHash => {
                if let Some(destination) = b.buckets.pick(self.hash_on.hash(first_key, raw)) {
                    visit(destination, out);
                }
            }
            // Never routing types: `ExchangeKind::routing` resolves them.
            ExchangeKind::DelayedMessage | ExchangeKind::MessageDeduplication => {}
        }
    }
}

/// Sorts and dedupes routed queues so each gets a message once.
#[inline]
pub(crate) fn dedupe_queues(queues: &mut Vec<Arc<Queue>>) {
    // Most messages go to one queue: that check is all they pay for.
    if queues.len() > 1 {
        dedupe_several(queues);
    }
}

fn dedupe_several(queues: &mut Vec<Arc<Queue>>) {
    queues.sort_unstable_by_key(|q| Arc::as_ptr(q) as usize);
    queues.dedup_by(|a, b| Arc::ptr_eq(a, b));
}
