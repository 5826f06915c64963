//! The broker: its vhosts and users.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;

use warren_store::definitions::{BindingDef, Definitions, UserDef};
use warren_store::{MemoryStore, Store};

use crate::counters::{Counter, Counters};
use crate::effects::Effects;
use crate::error::BrokerError;
use crate::logins::{Logins, RefusedLogin};
use crate::queue::FlowBound;
use crate::registry::{ConsumerSnapshot, Registry};
use crate::time::Now;
use crate::vhost::VHost;

/// Why a login was refused; for the log, never for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No user has that name.
    UnknownUser,
    /// The password is not the user's.
    BadPassword,
    /// A loopback-only user connecting from another machine.
    NotFromLoopback,
    /// The address failed too often lately (`max_failed_logins_per_minute`): not checked.
    TooManyFailures,
    /// The protocol face could not read the credentials ([`Broker::authenticate`] never says so).
    Malformed,
}

impl AuthFailure {
    /// The reason as the log gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::UnknownUser => "unknown user",
            AuthFailure::BadPassword => "invalid password",
            AuthFailure::NotFromLoopback => "user can only connect via localhost",
            AuthFailure::TooManyFailures => "too many failed logins from this address",
            AuthFailure::Malformed => "malformed credentials",
        }
    }
}

/// Whether a peer is on this machine; an IPv4 client of a dual-stack `[::]` listener shows up as
/// `::ffff:127.0.0.1`.
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// A user who may log in.
#[derive(Debug, Clone)]
pub struct User {
    /// The login name.
    pub name: String,
    /// RabbitMQ's scheme: a 4-byte salt, then SHA-256 of salt and password.
    pub password_hash: Vec<u8>,
    /// Management tags (`administrator`, `monitoring`, ...).
    pub tags: Vec<String>,
    /// RabbitMQ's loopback_users: such a user may only connect from the local machine. Set
    /// by the broker from its `loopback_users` when the user is added.
    pub loopback_only: bool,
    /// Vhosts this user may use.
    pub vhosts: Vec<String>,
}

impl User {
    /// A user with a freshly salted password hash (loopback-only or not is the broker's
    /// `loopback_users` to say when it is added).
    pub fn new(name: &str, password: &str, vhosts: &[&str]) -> User {
        let salt: [u8; 4] = rand::random();
        User {
            name: name.to_owned(),
            password_hash: salted_hash(&salt, password),
            tags: Vec::new(),
            loopback_only: false,
            vhosts: vhosts.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    /// Whether `password` is this user's.
    pub fn check_password(&self, password: &str) -> bool {
        match self.password_hash.get(..4) {
            Some(salt) => salted_hash(salt, password) == self.password_hash,
            None => false,
        }
    }

    fn to_def(&self) -> UserDef {
        UserDef {
            name: self.name.clone(),
            password_hash: self.password_hash.clone(),
            tags: self.tags.clone(),
            loopback_only: self.loopback_only,
            vhosts: self.vhosts.clone(),
        }
    }

    fn from_def(def: UserDef) -> User {
        User {
            name: def.name,
            password_hash: def.password_hash,
            tags: def.tags,
            loopback_only: def.loopback_only,
            vhosts: def.vhosts,
        }
    }
}

fn salted_hash(salt: &[u8], password: &str) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new().chain_update(salt).chain_update(password.as_bytes()).finalize();
    let mut out = salt.to_vec();
    out.extend_from_slice(&digest);
    out
}

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
    users: RwLock<HashMap<String, User>>,
    /// RabbitMQ's `loopback_users`.
    loopback_users: RwLock<Vec<String>>,
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
        broker.add_vhost("/");
        broker.add_user(User::new("guest", "guest", &["/"]));
        broker
    }

    fn empty(store: Arc<dyn Store>, definitions: Option<Arc<Definitions>>) -> Self {
        Broker {
            store,
            definitions,
            vhosts: RwLock::default(),
            users: RwLock::default(),
            loopback_users: RwLock::new(vec!["guest".to_owned()]),
            registry: Registry::default(),
            consumer_timeout_ms: AtomicU64::new(DEFAULT_CONSUMER_TIMEOUT_MS),
            flow_bound: parking_lot::Mutex::new(FlowBound::default()),
            next_timeout_check: parking_lot::Mutex::new(None),
            logins: Logins::default(),
            counters: Counters::default(),
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
    /// guest/guest unless configured). A queue whose log cannot be recovered is reported and
    /// left out; the others start.
    pub fn open(
        store: Arc<dyn Store>,
        definitions: Arc<Definitions>,
        first_start: &FirstStart,
        now: Now,
    ) -> Result<Self, BrokerError> {
        let all = definitions.load()?;
        let broker = Self::empty(store, Some(definitions.clone()));
        if all.vhosts.is_empty() && all.users.is_empty() {
            let FirstStart { user, password, vhost } = first_start;
            definitions.put_vhost(vhost)?;
            broker.add_vhost(vhost);
            let mut first = User::new(user, password, &[vhost.as_str()]);
            // RabbitMQ gives the default user the administrator tag.
            first.tags = vec!["administrator".to_owned()];
            definitions.put_user(&first.to_def())?;
            broker.add_user(first);
            tracing::info!(%user, %vhost, "first start: created the default user and vhost");
        }
        for name in &all.vhosts {
            broker.add_vhost(name);
        }
        for user in all.users {
            broker.add_user(User::from_def(user));
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
        for user in self.users.write().values_mut() {
            user.loopback_only = names.contains(&user.name);
        }
        *self.loopback_users.write() = names.to_vec();
    }

    /// Adds (or replaces) a user; `loopback_users` decides whether it is loopback-only.
    pub fn add_user(&self, mut user: User) {
        user.loopback_only = self.loopback_users.read().contains(&user.name);
        self.users.write().insert(user.name.clone(), user);
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
        let users = self.users.read();
        let user = users.get(username).ok_or(AuthFailure::UnknownUser)?;
        if !user.check_password(password) {
            return Err(AuthFailure::BadPassword);
        }
        if user.loopback_only && !peer.is_none_or(is_loopback) {
            return Err(AuthFailure::NotFromLoopback);
        }
        Ok(())
    }

    /// Records a refused login: counted, logged (a few a second at most, the rest summed up),
    /// and held against its address when there is a failed-login limit.
    pub fn login_refused(&self, login: RefusedLogin<'_>, now: Instant) {
        self.counters.add(Counter::LoginsRefused, 1);
        self.logins.refused(&login, now);
    }

    /// The vhost `vhost` if it exists and `username` may use it.
    pub fn open_vhost(&self, username: &str, vhost: &str) -> Result<Arc<VHost>, BrokerError> {
        let v = self.vhost(vhost).ok_or_else(|| BrokerError::VhostNotFound(vhost.to_owned()))?;
        let allowed = self.users.read().get(username).is_some_and(|u| u.vhosts.iter().any(|x| x == vhost));
        if !allowed {
            return Err(BrokerError::VhostAccessRefused {
                vhost: vhost.to_owned(),
                user: username.to_owned(),
            });
        }
        Ok(v)
    }
}

/// Where a stored binding comes in the order bindings are restored (see [`Broker::open`]).
fn recovery_order(d: &BindingDef) -> (&str, &str, &[u8], bool, &str) {
    (&d.vhost, &d.source, d.routing_key.as_bytes(), d.destination_is_queue, &d.destination)
}

#[cfg(test)]
mod tests {
    use super::*;
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
        broker.add_user(User::new("app", "pw", &["/"]));
        assert_eq!(broker.authenticate("app", "pw", afar, now), Ok(()), "only guest is loopback-only");
        broker.set_loopback_users(&[]);
        assert_eq!(broker.authenticate("guest", "guest", afar, now), Ok(()));
        broker.set_loopback_users(&["app".to_owned()]);
        assert_eq!(broker.authenticate("app", "pw", afar, now), Err(AuthFailure::NotFromLoopback));
        assert_eq!(broker.authenticate("guest", "guest", afar, now), Ok(()));
        broker.add_user(User::new("app", "new", &["/"]));
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
            Broker::open(Arc::new(MemoryStore), definitions, first, now).unwrap()
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
