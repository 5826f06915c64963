//! The broker: its vhosts and users.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;

use warren_store::definitions::{BindingDef, Definitions};
use warren_store::{MemoryStore, Store};

use crate::access::{AccessControl, AuthFailure, ConnectionLease, Permissions, User, VhostSettings};
use crate::admin::{user_def, user_from_def, vhost_def, vhost_settings};
use crate::counters::{Counter, CounterValues, Counters};
use crate::effects::Effects;
use crate::error::BrokerError;
use crate::logins::{Logins, RefusedLogin};
use crate::queue::FlowBound;
use crate::registry::{ConsumerSnapshot, Registry};
use crate::time::Now;
use crate::vhost::{QueueChurnValues, VHost};

/// What a first start creates: RabbitMQ's `default_user`, `default_pass` and `default_vhost`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstStart {
    /// The user created (with the administrator tag and access to `vhost`).
    pub user: String,
    /// Its password.
    pub password: String,
    /// The vhost created.
    pub vhost: String,
}

impl Default for FirstStart {
    /// guest/guest on `/`, as RabbitMQ.
    fn default() -> Self {
        FirstStart { user: "guest".to_owned(), password: "guest".to_owned(), vhost: "/".to_owned() }
    }
}

/// The broker core: vhosts, users, and the registry of connections. Protocol-neutral: protocol
/// faces (the AMQP session today) drive it, time comes in as [`Now`], and it reads no clock.
pub struct Broker {
    store: Arc<dyn Store>,
    definitions: Option<Arc<Definitions>>,
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    /// Users, vhosts' settings, permissions, limits.
    access: Arc<AccessControl>,
    /// Admin commands are applied one at a time.
    admin_lock: parking_lot::Mutex<()>,
    registry: Registry,
    /// The consumer timeout in ms (0 = none), for queues without `x-consumer-timeout`.
    consumer_timeout_ms: AtomicU64,
    /// When consumer timeouts are next checked (they are checked once a second).
    next_timeout_check: parking_lot::Mutex<Option<std::time::Instant>>,
    /// Flow control's bound, for vhosts added from now.
    flow_bound: parking_lot::Mutex<FlowBound>,
    /// Refused logins: the per-address limit and the log's budget.
    logins: Logins,
    /// Counters of the node itself rather than of something in it (refused logins).
    counters: Counters,
    /// Logins that passed their check (counted once per connection, not per message).
    logins_succeeded: AtomicU64,
    /// What deleted vhosts' queues counted, so node totals do not go backwards. Held while a
    /// vhost is taken out and destroyed, so a reader sees its counts either there or here.
    retired_vhosts: parking_lot::Mutex<RetiredVhosts>,
}

/// Queue counters and churn of vhosts that were deleted.
#[derive(Debug, Default)]
struct RetiredVhosts {
    queue_totals: CounterValues,
    queue_churn: QueueChurnValues,
}

/// How often consumer timeouts are checked; RabbitMQ checks less often.
const TIMEOUT_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// RabbitMQ's default consumer timeout: 30 minutes.
pub const DEFAULT_CONSUMER_TIMEOUT_MS: u64 = 1_800_000;

impl Default for Broker {
    fn default() -> Self {
        Self::new()
    }
}

impl Broker {
    /// An in-memory broker with vhost "/" and user guest/guest (loopback only), as RabbitMQ starts.
    pub fn new() -> Self {
        Self::with_store(Arc::new(MemoryStore))
    }

    /// A broker keeping queue messages in `store`, with nothing durable.
    pub fn with_store(store: Arc<dyn Store>) -> Self {
        let broker = Self::empty(store, None);
        broker.access.set_loopback_users(&["guest".to_owned()]);
        broker.add_vhost("/");
        broker.access.put_vhost("/", VhostSettings::default());
        broker.access.put_user(User::new("guest", "guest"));
        broker.access.set_permissions("guest", "/", Permissions::all());
        broker
    }

    fn empty(store: Arc<dyn Store>, definitions: Option<Arc<Definitions>>) -> Self {
        Broker {
            store,
            definitions,
            vhosts: RwLock::default(),
            access: Arc::new(AccessControl::default()),
            admin_lock: parking_lot::Mutex::new(()),
            registry: Registry::default(),
            consumer_timeout_ms: AtomicU64::new(DEFAULT_CONSUMER_TIMEOUT_MS),
            flow_bound: parking_lot::Mutex::new(FlowBound::default()),
            next_timeout_check: parking_lot::Mutex::new(None),
            logins: Logins::default(),
            counters: Counters::default(),
            logins_succeeded: AtomicU64::new(0),
            retired_vhosts: parking_lot::Mutex::default(),
        }
    }

    /// Sets the consumer timeout in ms (0 = none) for queues without `x-consumer-timeout`.
    pub fn set_consumer_timeout(&self, ms: u64) {
        self.consumer_timeout_ms.store(ms, Ordering::Relaxed);
    }

    /// The consumer timeout in ms (0 = none) for queues without `x-consumer-timeout`.
    pub fn consumer_timeout(&self) -> u64 {
        self.consumer_timeout_ms.load(Ordering::Relaxed)
    }

    /// Applies what time has made due at `now`, in every vhost: expired messages leave (and are
    /// dead-lettered), unused `x-expires` queues go, delayed messages are routed; once a second,
    /// channels past their consumer timeout are told to close. Meant to run every few tens of
    /// milliseconds.
    pub fn tick(&self, now: Now) {
        let mut effects = Effects::default();
        for vhost in self.vhosts() {
            vhost.tick(now, &mut effects);
        }
        effects.apply(now.instant);
        let due = {
            let mut next = self.next_timeout_check.lock();
            let due = next.is_none_or(|at| now.instant >= at);
            if due {
                *next = Some(now.instant + TIMEOUT_CHECK_EVERY);
            }
            due
        };
        if due {
            self.registry.check_timeouts(now.instant, self.consumer_timeout());
        }
        self.logins.tick(now.instant);
    }

    /// Sets the most failed logins an address may have per minute before its logins are refused
    /// unchecked for the rest of that minute; None or 0: no limit (the default, as RabbitMQ).
    pub fn set_max_failed_logins_per_minute(&self, limit: Option<u32>) {
        self.logins.set_limit(limit);
    }

    /// Counters of the node itself, not of a queue, exchange or connection: refused logins.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Logins that passed their password (or certificate) check since the broker started.
    pub fn logins_succeeded(&self) -> u64 {
        self.logins_succeeded.load(Ordering::Relaxed)
    }

    /// Queue counters summed over every queue the node ever had, deleted vhosts' included.
    pub fn queue_totals(&self) -> CounterValues {
        let retired = self.retired_vhosts.lock();
        let mut totals = retired.queue_totals;
        for vhost in self.vhosts() {
            totals.add(&vhost.queue_totals());
        }
        totals
    }

    /// Queues declared, created and deleted on the node so far, deleted vhosts' included.
    pub fn queue_churn(&self) -> QueueChurnValues {
        let retired = self.retired_vhosts.lock();
        let mut churn = retired.queue_churn;
        for vhost in self.vhosts() {
            churn.add(&vhost.queue_churn());
        }
        churn
    }

    /// Takes a vhost out of the broker and destroys its contents, keeping what its queues
    /// counted in the node's totals; its consumers are left cancelled in `effects`.
    pub(crate) fn retire_vhost(&self, vhost: &VHost, effects: &mut Effects) {
        let mut retired = self.retired_vhosts.lock();
        self.remove_vhost(&vhost.name);
        vhost.destroy(effects);
        retired.queue_totals.add(&vhost.queue_totals());
        retired.queue_churn.add(&vhost.queue_churn());
    }

    /// The connections and channels of the broker.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every consumer of every queue, as listings show them.
    pub fn consumer_snapshots(&self) -> Vec<ConsumerSnapshot> {
        let mut out = Vec::new();
        for vhost in self.vhosts() {
            for queue in vhost.queues() {
                queue.for_each_consumer(|c| {
                    out.push(ConsumerSnapshot {
                        vhost: vhost.name.clone(),
                        queue: queue.name.to_string(),
                        tag: c.tag.to_string(),
                        target: c.target_id,
                        no_ack: c.no_ack,
                        exclusive: c.exclusive,
                        prefetch: c.prefetch,
                        priority: c.priority,
                        unacked: c.unacked(),
                        arguments: c.arguments.clone(),
                    })
                });
            }
        }
        out
    }

    /// A broker rebuilt from durable definitions, its queues recovering their messages from
    /// `store`. A first start (no vhost, no user yet) creates `first_start`'s vhost and user, as
    /// RabbitMQ does with `default_vhost`, `default_user` and `default_pass` (`/` and
    /// guest/guest unless configured); None creates nothing, as RabbitMQ seeds nothing when it
    /// has definitions to load at startup. A queue whose log cannot be recovered is reported and
    /// left out; the others start.
    pub fn open(
        store: Arc<dyn Store>,
        definitions: Arc<Definitions>,
        first_start: Option<&FirstStart>,
        now: Now,
    ) -> Result<Self, BrokerError> {
        let mut all = definitions.load()?;
        let broker = Self::empty(store, Some(definitions.clone()));
        broker.access.set_loopback_users(&["guest".to_owned()]);
        let first_start = first_start.filter(|_| all.vhosts.is_empty() && all.users.is_empty());
        if let Some(FirstStart { user, password, vhost }) = first_start {
            // RabbitMQ gives the default user the administrator tag and every permission.
            let first = User { tags: vec!["administrator".to_owned()], ..User::new(user, password) };
            let all_permissions = warren_store::definitions::PermissionDef {
                user: user.clone(),
                vhost: vhost.clone(),
                configure: ".*".into(),
                write: ".*".into(),
                read: ".*".into(),
            };
            // RabbitMQ describes the vhost it creates so.
            let settings =
                VhostSettings { description: "Default virtual host".to_owned(), ..Default::default() };
            definitions.put_vhost_def(&vhost_def(vhost, &settings))?;
            definitions.put_user(&user_def(&first))?;
            definitions.put_permission(&all_permissions)?;
            tracing::info!(%user, %vhost, "first start: created the default user and vhost");
            all = definitions.load()?;
        }
        for def in &all.vhosts {
            let settings = vhost_settings(def);
            broker.add_vhost(&def.name).set_max_queues(settings.limits.max_queues);
            broker.access.put_vhost(&def.name, settings);
        }
        for def in all.users.drain(..) {
            broker.access.put_user(user_from_def(def));
        }
        for def in &all.permissions {
            match Permissions::new(&def.configure, &def.write, &def.read) {
                Ok(p) => broker.access.set_permissions(&def.user, &def.vhost, p),
                Err(error) => {
                    tracing::error!(user = %def.user, vhost = %def.vhost, %error, "stored permissions do not compile; left out")
                }
            }
        }
        for def in &all.topic_permissions {
            let permission = crate::access::TopicPermission {
                exchange: def.exchange.clone(),
                write: def.write.clone(),
                read: def.read.clone(),
            };
            broker.access.set_topic_permission(&def.user, &def.vhost, permission);
        }
        // Policies before the queues and exchanges they apply to.
        for def in &all.policies {
            if let Some(v) = broker.vhost(&def.vhost) {
                v.restore_policy(def, now);
            }
        }
        for def in &all.exchanges {
            if let Some(v) = broker.vhost(&def.vhost) {
                v.restore_exchange(def, now.instant);
            }
        }
        for def in &all.queues {
            if let Some(v) = broker.vhost(&def.vhost) {
                if let Err(error) = v.restore_queue(def, now.instant) {
                    tracing::error!(vhost = %def.vhost, queue = %def.name, %error, "queue not recovered");
                }
            }
        }
        // Re-added in the order RabbitMQ's recovery usually re-adds bindings (its binding
        // records' order: source, key, then destination, exchanges first). Only consistent-hash
        // exchanges care: their bucket row follows the order of the bindings.
        let mut bindings: Vec<&BindingDef> = all.bindings.iter().collect();
        bindings.sort_by(|a, b| recovery_order(a).cmp(&recovery_order(b)));
        for def in bindings {
            if let Some(v) = broker.vhost(&def.vhost) {
                v.restore_binding(def);
            }
        }
        let vhosts: Vec<Arc<VHost>> = broker.vhosts.read().values().cloned().collect();
        for v in vhosts {
            v.merge_carried_keys();
        }
        Ok(broker)
    }

    /// Where queue messages are kept.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Adds a vhost (or returns the one of that name).
    pub fn add_vhost(&self, name: &str) -> Arc<VHost> {
        self.vhosts
            .write()
            .entry(name.to_owned())
            .or_insert_with(|| {
                self.access.ensure_vhost(name);
                let vhost = VHost::new(name, self.store.clone(), self.definitions.clone());
                vhost.set_flow_bound(*self.flow_bound.lock());
                Arc::new(vhost)
            })
            .clone()
    }

    /// Sets the ready backlog past which a queue with consumers holds its publishers back
    /// (flow control; [`FlowBound::OFF`] turns it off), in every vhost.
    pub fn set_flow_bound(&self, bound: FlowBound) {
        *self.flow_bound.lock() = bound;
        for vhost in self.vhosts() {
            vhost.set_flow_bound(bound);
        }
    }

    /// RabbitMQ's `loopback_users`: these users may only connect from the local machine, every
    /// other user from anywhere (guest alone by default).
    pub fn set_loopback_users(&self, names: &[String]) {
        self.access.set_loopback_users(names);
    }

    /// Users, vhosts' settings, permissions and limits (changed through [`Broker::admin`]).
    pub fn access(&self) -> &Arc<AccessControl> {
        &self.access
    }

    pub(crate) fn admin_lock(&self) -> &parking_lot::Mutex<()> {
        &self.admin_lock
    }

    /// Writes to the definitions store, if the broker has one.
    pub(crate) fn with_definitions(
        &self,
        write: impl FnOnce(&Definitions) -> Result<(), warren_store::definitions::DefinitionsError>,
    ) -> Result<(), BrokerError> {
        match self.definitions.as_deref() {
            Some(d) => Ok(write(d)?),
            None => Ok(()),
        }
    }

    /// Takes a vhost out of the broker (its contents are the caller's to destroy).
    pub(crate) fn remove_vhost(&self, name: &str) {
        self.vhosts.write().remove(name);
    }

    /// Asks every open connection whose details match to close (320 CONNECTION_FORCED).
    pub(crate) fn close_connections(
        &self,
        matches: impl Fn(&crate::ConnectionDetails) -> bool,
        reason: &str,
    ) {
        for entry in self.registry.connections() {
            if entry.details().is_some_and(|d| matches(&d)) {
                entry.request_close(reason);
            }
        }
    }

    /// A vhost by name.
    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.read().get(name).cloned()
    }

    /// Every vhost.
    pub fn vhosts(&self) -> Vec<Arc<VHost>> {
        self.vhosts.read().values().cloned().collect()
    }

    /// Checks a password and, for loopback-only users, the peer address; refuses at once, without
    /// a check, a peer over the failed-login limit. A refusal is for the caller to report with
    /// [`Broker::login_refused`].
    pub fn authenticate(
        &self,
        username: &str,
        password: &str,
        peer: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), AuthFailure> {
        if self.logins.is_blocked(peer, now) {
            return Err(AuthFailure::TooManyFailures);
        }
        self.access.authenticate(username, password, peer).inspect(|()| self.login_succeeded())
    }

    fn login_succeeded(&self) {
        self.logins_succeeded.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a refused login: counted, logged (a few a second at most, the rest summed up),
    /// and held against its address when there is a failed-login limit.
    pub fn login_refused(&self, login: RefusedLogin<'_>, now: Instant) {
        self.counters.add(Counter::LoginsRefused, 1);
        self.logins.refused(&login, now);
    }

    /// The vhost `vhost` if it exists, `username` may use it and no connection limit is
    /// reached, with the lease that counts the connection against those limits while it is open.
    pub fn open_vhost(
        &self,
        username: &str,
        vhost: &str,
    ) -> Result<(Arc<VHost>, ConnectionLease), BrokerError> {
        let lease = self.access.open(username, vhost)?;
        let v = self.vhost(vhost).ok_or_else(|| BrokerError::VhostNotFound(vhost.to_owned()))?;
        Ok((v, lease))
    }
}

/// SASL EXTERNAL (RabbitMQ's rabbitmq_auth_mechanism_ssl): the client's verified TLS
/// certificate names the user, so there is no password to check.
impl Broker {
    /// Checks that `username` (taken from a verified client certificate) exists and, for a
    /// loopback-only user, that the peer is local; refuses at once, without a check, a peer over
    /// the failed-login limit. A refusal is for the caller to report with
    /// [`Broker::login_refused`], as for [`Broker::authenticate`].
    pub fn authenticate_external(
        &self,
        username: &str,
        peer: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), AuthFailure> {
        if self.logins.is_blocked(peer, now) {
            return Err(AuthFailure::TooManyFailures);
        }
        self.access.authenticate_external(username, peer).inspect(|()| self.login_succeeded())
    }
}

/// Where a stored binding comes in the order bindings are restored (see [`Broker::open`]).
fn recovery_order(d: &BindingDef) -> (&str, &str, &[u8], bool, &str) {
    (&d.vhost, &d.source, d.routing_key.as_bytes(), d.destination_is_queue, &d.destination)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::is_loopback;
    use crate::AdminCommand;
    use std::time::Duration;

    #[test]
    fn a_refused_login_says_why() {
        let broker = Broker::new();
        let now = Instant::now();
        let ip = |s: &str| Some(s.parse().unwrap());
        let auth = |user, pass, peer| broker.authenticate(user, pass, peer, now);
        assert_eq!(auth("guest", "guest", ip("::ffff:127.0.0.1")), Ok(()));
        assert_eq!(auth("guest", "guest", None), Ok(()));
        assert_eq!(auth("nobody", "guest", ip("127.0.0.1")), Err(AuthFailure::UnknownUser));
        assert_eq!(auth("guest", "nope", ip("127.0.0.1")), Err(AuthFailure::BadPassword));
        assert_eq!(auth("guest", "guest", ip("10.0.0.1")), Err(AuthFailure::NotFromLoopback));
    }

    #[test]
    fn loopback_users_decide_who_may_log_in_from_afar() {
        let broker = Broker::new();
        let now = Instant::now();
        let afar = Some("10.0.0.1".parse().unwrap());
        broker.admin(AdminCommand::AddUser(User::new("app", "pw")), Now::new(now, 0)).unwrap();
        assert_eq!(broker.authenticate("app", "pw", afar, now), Ok(()), "only guest is loopback-only");
        broker.set_loopback_users(&[]);
        assert_eq!(broker.authenticate("guest", "guest", afar, now), Ok(()));
        broker.set_loopback_users(&["app".to_owned()]);
        assert_eq!(broker.authenticate("app", "pw", afar, now), Err(AuthFailure::NotFromLoopback));
        assert_eq!(broker.authenticate("guest", "guest", afar, now), Ok(()));
        broker.admin(AdminCommand::PutUser(User::new("app", "new")), Now::new(now, 0)).unwrap();
        assert_eq!(
            broker.authenticate("app", "new", afar, now),
            Err(AuthFailure::NotFromLoopback),
            "kept on replace"
        );
    }

    #[test]
    fn a_first_start_creates_the_configured_user_and_vhost_once() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("definitions.redb");
        let first = FirstStart { user: "admin".into(), password: "pw".into(), vhost: "prod".into() };
        let now = Now::new(Instant::now(), 0);
        let open = |first: &FirstStart| {
            let definitions = Arc::new(Definitions::open(&path).unwrap());
            Broker::open(Arc::new(MemoryStore), definitions, Some(first), now).unwrap()
        };
        let broker = open(&first);
        assert!(broker.vhost("prod").is_some() && broker.vhost("/").is_none());
        assert_eq!(broker.authenticate("admin", "pw", None, now.instant), Ok(()));
        assert_eq!(broker.authenticate("guest", "guest", None, now.instant), Err(AuthFailure::UnknownUser));
        assert!(broker.open_vhost("admin", "prod").is_ok());
        drop(broker);
        // A later start with other defaults changes nothing: the directory has its users.
        let broker = open(&FirstStart::default());
        assert!(broker.vhost("/").is_none());
        assert_eq!(broker.authenticate("guest", "guest", None, now.instant), Err(AuthFailure::UnknownUser));
        assert_eq!(broker.authenticate("admin", "pw", None, now.instant), Ok(()));
    }

    fn refuse(broker: &Broker, peer: &str, reason: AuthFailure, now: Instant) {
        let peer = Some(peer.parse().unwrap());
        broker.login_refused(RefusedLogin { username: "guest", mechanism: "PLAIN", peer, reason }, now);
    }

    #[test]
    fn refused_logins_are_counted_and_limited_per_address_when_asked() {
        let broker = Broker::new();
        let now = Instant::now();
        let local = Some("127.0.0.1".parse().unwrap());
        for _ in 0..5 {
            refuse(&broker, "127.0.0.1", AuthFailure::BadPassword, now);
        }
        assert_eq!(broker.counters().snapshot().get(Counter::LoginsRefused), 5);
        assert_eq!(broker.authenticate("guest", "guest", local, now), Ok(()), "no limit by default");

        broker.set_max_failed_logins_per_minute(Some(2));
        refuse(&broker, "127.0.0.1", AuthFailure::Malformed, now);
        assert_eq!(broker.authenticate("guest", "guest", local, now), Ok(()));
        refuse(&broker, "127.0.0.1", AuthFailure::UnknownUser, now);
        let refused = broker.authenticate("guest", "guest", local, now);
        assert_eq!(refused, Err(AuthFailure::TooManyFailures), "not checked, though right");
        let other = Some("127.0.0.2".parse().unwrap());
        assert_eq!(broker.authenticate("guest", "guest", other, now), Ok(()));
        // Refusals by the limit are counted but do not lengthen it.
        refuse(&broker, "127.0.0.1", AuthFailure::TooManyFailures, now + Duration::from_secs(59));
        assert_eq!(broker.counters().snapshot().get(Counter::LoginsRefused), 8);
        let later = now + crate::logins::FAILURE_WINDOW;
        assert_eq!(broker.authenticate("guest", "guest", local, later), Ok(()));
        broker.set_max_failed_logins_per_minute(Some(0));
        refuse(&broker, "127.0.0.1", AuthFailure::BadPassword, later);
        refuse(&broker, "127.0.0.1", AuthFailure::BadPassword, later);
        assert_eq!(broker.authenticate("guest", "guest", local, later), Ok(()), "0 is no limit");
    }

    #[test]
    fn node_totals_keep_what_a_deleted_vhost_counted() {
        use crate::{Actor, Command, QueueSpec};
        let broker = Broker::new();
        let now = Now::new(Instant::now(), 0);
        let add = AdminCommand::AddVhost { name: "v".into(), settings: VhostSettings::default() };
        broker.admin(add, now).unwrap();
        let vhost = broker.vhost("v").unwrap();
        for name in ["a", "b", "a"] {
            let spec = QueueSpec { name: name.into(), ..QueueSpec::default() };
            vhost
                .apply(Command::DeclareQueue(spec), Actor::BROKER, now.instant, &mut Effects::default())
                .unwrap();
        }
        vhost.queue("a").unwrap().counters().add(Counter::DeadLetteredExpired, 2);
        let before = broker.queue_churn();
        assert_eq!((before.declared, before.created, before.deleted), (3, 2, 0));
        broker.admin(AdminCommand::DeleteVhost("v".into()), now).unwrap();
        let after = broker.queue_churn();
        assert_eq!((after.declared, after.created, after.deleted), (3, 2, 2), "its queues count as deleted");
        assert_eq!(broker.queue_totals().get(Counter::DeadLetteredExpired), 2);
    }

    #[test]
    fn logins_that_pass_are_counted() {
        let broker = Broker::new();
        let now = Instant::now();
        broker.authenticate("guest", "guest", None, now).unwrap();
        broker.authenticate("guest", "wrong", None, now).unwrap_err();
        assert_eq!(broker.logins_succeeded(), 1);
    }

    #[test]
    fn ipv4_mapped_loopback_is_loopback() {
        let yes = ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"];
        let no = ["10.0.0.1", "::ffff:10.0.0.1", "::", "::127.0.0.1", "fe80::1"];
        for ip in yes {
            assert!(is_loopback(ip.parse().unwrap()), "{ip}");
        }
        for ip in no {
            assert!(!is_loopback(ip.parse().unwrap()), "{ip}");
        }
    }
}
