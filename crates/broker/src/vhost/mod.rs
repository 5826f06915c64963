//! A virtual host: its exchanges, queues, bindings and policies. Definition changes arrive as
//! [`Command`]s applied one at a time ([`command`]); routing a publish reads the maps under
//! short read locks ([`route`]); timers arrive as one tick ([`tick`]); policies are set and
//! applied live in [`policies`].

mod command;
mod declare;
#[cfg(test)]
mod dedup_crash_tests;
mod policies;
#[cfg(test)]
mod policy_ttl_tests;
mod restore;
mod route;
mod tick;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use warren_message::{FieldTable, ShortStr};
use warren_store::definitions::Definitions;
use warren_store::Store;

use crate::churn::{Churn, ChurnEvent};
use crate::counters::{CounterValues, Counters};
use crate::effects::Effects;
use crate::error::{BrokerError, Inequivalence};
use crate::exchange::{Exchange, ExchangeKind, NameMap};
use crate::policy::PolicySet;
use crate::queue::{FlowBound, Queue};

pub use command::{Actor, BindingSpec, Command, DestinationKind, ExchangeSpec, Outcome, QueueSpec};
pub(crate) use declare::check_binding_args;
pub use route::{PublishResult, Routed};

/// A virtual host.
pub struct VHost {
    /// Unique within the broker.
    pub name: String,
    store: Arc<dyn Store>,
    /// Where durable definitions are written; None keeps everything in memory.
    definitions: Option<Arc<Definitions>>,
    exchanges: RwLock<NameMap<Arc<Exchange>>>,
    /// An exchange that deduplicates was declared here once: routing then checks the windows
    /// of exchanges reached through bindings (until then it need not look).
    dedup_exchanges: std::sync::atomic::AtomicBool,
    queues: RwLock<NameMap<Arc<Queue>>>,
    /// Serializes definition commands, so the routing maps' write locks are held only for the
    /// insert or removal itself, never across a store write.
    commands: Mutex<()>,
    /// The default exchange's counters (it has no [`Exchange`] of its own).
    default_exchange: Counters,
    /// Counters of queues that were deleted, so vhost totals do not go backwards.
    retired_queues: Counters,
    /// The backlog past which a queue holds its publishers back, for queues declared from now.
    flow_bound: Mutex<FlowBound>,
    /// Policies and operator policies; changed with the command lock held.
    policies: RwLock<PolicySet>,
    /// The vhost's `max-queues` limit; `u64::MAX`: none.
    max_queues: AtomicU64,
    /// The vhost was deleted: its definitions are gone from the store already.
    destroyed: AtomicBool,
    /// Queues declared, created and deleted.
    churn: Churn,
}

/// Queues declared (queue.declare that succeeded, new queue or not), created and deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueChurnValues {
    /// Successful non-passive declares.
    pub declared: u64,
    /// Declares that created a queue.
    pub created: u64,
    /// Queues deleted (by a client, expiry, auto-delete, their connection closing).
    pub deleted: u64,
}

impl QueueChurnValues {
    /// Adds another set of values to these.
    pub fn add(&mut self, other: &QueueChurnValues) {
        self.declared += other.declared;
        self.created += other.created;
        self.deleted += other.deleted;
    }
}

impl std::fmt::Debug for VHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VHost").field("name", &self.name).finish()
    }
}

impl VHost {
    /// Adds a declared or restored exchange to the routing map.
    fn insert_exchange(&self, e: Arc<Exchange>) {
        if e.dedup().is_some() {
            self.dedup_exchanges.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.exchanges.write().insert(e.name.clone(), e);
    }

    /// A vhost with the default exchanges RabbitMQ creates.
    pub fn new(name: &str, store: Arc<dyn Store>, definitions: Option<Arc<Definitions>>) -> Self {
        let vhost = VHost {
            name: name.to_owned(),
            store,
            definitions,
            exchanges: RwLock::default(),
            dedup_exchanges: Default::default(),
            queues: RwLock::default(),
            commands: Mutex::new(()),
            default_exchange: Counters::default(),
            retired_queues: Counters::default(),
            flow_bound: Mutex::new(FlowBound::default()),
            policies: RwLock::default(),
            max_queues: AtomicU64::new(u64::MAX),
            destroyed: AtomicBool::new(false),
            churn: Churn::default(),
        };
        for (name, kind) in [
            ("amq.direct", ExchangeKind::Direct),
            ("amq.fanout", ExchangeKind::Fanout),
            ("amq.topic", ExchangeKind::Topic),
            ("amq.headers", ExchangeKind::Headers),
            ("amq.match", ExchangeKind::Headers),
        ] {
            let e = Exchange::new(ShortStr::from(name), kind, true, false, false, FieldTable::new());
            vhost.insert_exchange(Arc::new(e));
        }
        vhost
    }

    /// Sets the backlog past which queues hold their publishers back (flow control), for every
    /// queue of the vhost, existing or to come.
    pub fn set_flow_bound(&self, bound: FlowBound) {
        *self.flow_bound.lock() = bound;
        for q in self.queues() {
            q.set_flow_bound(bound);
        }
    }

    /// Queues declared, created and deleted in this vhost so far.
    pub fn churn(&self) -> &Churn {
        &self.churn
    }

    /// Sets the vhost's `max-queues` limit (None: no limit); queues already there stay.
    pub fn set_max_queues(&self, limit: Option<u64>) {
        self.max_queues.store(limit.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The vhost's `max-queues` limit.
    pub fn max_queues(&self) -> Option<u64> {
        Some(self.max_queues.load(Ordering::Relaxed)).filter(|&l| l != u64::MAX)
    }

    /// Deletes everything in a vhost the broker no longer has (its definitions are already gone
    /// from the store): queues with their messages, exchanges (delayed messages too); their
    /// consumers are left cancelled in `effects`.
    pub(crate) fn destroy(&self, effects: &mut Effects) {
        self.destroyed.store(true, Ordering::Release);
        let _one_at_a_time = self.commands.lock();
        for q in self.queues() {
            self.remove_queue_locked(&q, effects);
        }
        for exchange in self.exchanges() {
            if self.exchanges.read().contains_key(&exchange.name) {
                self.remove_exchange(&exchange);
            }
        }
    }

    pub(crate) fn flow_bound(&self) -> FlowBound {
        *self.flow_bound.lock()
    }

    /// Where this vhost's queues keep their messages.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The exchange named `name`.
    pub fn exchange(&self, name: &str) -> Result<Arc<Exchange>, BrokerError> {
        self.exchanges.read().get(name).cloned().ok_or_else(|| self.no_exchange(name))
    }

    /// The queue named `name`.
    pub fn queue(&self, name: &str) -> Result<Arc<Queue>, BrokerError> {
        self.queues.read().get(name).cloned().ok_or_else(|| self.no_queue(name))
    }

    /// Every exchange (the default exchange is implicit and not listed).
    pub fn exchanges(&self) -> Vec<Arc<Exchange>> {
        self.exchanges.read().values().cloned().collect()
    }

    /// Every queue.
    pub fn queues(&self) -> Vec<Arc<Queue>> {
        self.queues.read().values().cloned().collect()
    }

    /// The default exchange's counters.
    pub fn default_exchange_counters(&self) -> &Counters {
        &self.default_exchange
    }

    /// Queue counters summed over every queue the vhost ever had (what it dead-lettered, by
    /// reason, lives only here): the live queues' and those of the queues deleted so far.
    pub fn queue_totals(&self) -> CounterValues {
        let mut totals = self.retired_queues.snapshot();
        for q in self.queues() {
            totals.add(&q.counters().snapshot());
        }
        totals
    }

    /// How many queues were declared, created and deleted in the vhost so far.
    pub fn queue_churn(&self) -> QueueChurnValues {
        let churn = self.churn.snapshot();
        QueueChurnValues {
            declared: churn.get(ChurnEvent::QueueDeclared),
            created: churn.get(ChurnEvent::QueueCreated),
            deleted: churn.get(ChurnEvent::QueueDeleted),
        }
    }

    /// Exclusive queues belong to the connection that declared them.
    pub fn check_exclusive_access(&self, q: &Queue, owner: u64) -> Result<(), BrokerError> {
        match q.exclusive_owner {
            Some(o) if o != owner => {
                Err(BrokerError::ExclusiveLocked { name: q.name.to_string(), vhost: self.name.clone() })
            }
            _ => Ok(()),
        }
    }

    fn no_exchange(&self, name: &str) -> BrokerError {
        BrokerError::ExchangeNotFound { name: name.to_owned(), vhost: self.name.clone() }
    }

    fn no_queue(&self, name: &str) -> BrokerError {
        BrokerError::QueueNotFound { name: name.to_owned(), vhost: self.name.clone() }
    }

    fn inequivalent(
        &self,
        kind: &'static str,
        name: &str,
        arg: &str,
        received: String,
        current: String,
    ) -> BrokerError {
        BrokerError::Inequivalent(Box::new(Inequivalence {
            kind,
            name: name.to_owned(),
            vhost: self.name.clone(),
            arg: arg.to_owned(),
            received,
            current,
        }))
    }
}
