//! Access control: users and their passwords, vhosts' settings, permissions and topic
//! permissions, and the limits on connections, channels and queues, as RabbitMQ's internal
//! backend has them.
//!
//! [`AccessControl`] holds it all in memory (the broker writes it to the definitions store
//! first). A connection gets a [`ConnectionLease`] when it opens a vhost, which counts it
//! against the limits until dropped, and checks operations through its [`UserAccess`], which
//! caches allowed checks until the permissions change (a generation number says when).

mod password;
mod pattern;
mod user_access;
mod users;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::error::BrokerError;

pub use password::{HashAlgorithm, PasswordHash};
pub use pattern::{Pattern, Permission, Permissions, TopicPermission};
pub use user_access::{Resource, UserAccess};
pub(crate) use users::reached;
pub use users::{UnknownLimit, User, UserLimits, VhostLimits, VhostSettings};

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
    /// The protocol face could not read the credentials (never said by [`AccessControl`]).
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

/// See the module documentation.
#[derive(Default)]
pub struct AccessControl {
    state: RwLock<State>,
    /// Bumped by every change to users or permissions: cached checks older than it are stale.
    generation: AtomicU64,
}

#[derive(Default)]
struct State {
    users: HashMap<String, Arc<User>>,
    /// RabbitMQ's `loopback_users`.
    loopback_users: Vec<String>,
    vhosts: HashMap<String, VhostSettings>,
    /// By (vhost, user).
    permissions: HashMap<(String, String), Arc<Permissions>>,
    /// By (vhost, user), sorted by exchange.
    topic_permissions: HashMap<(String, String), Vec<TopicPermission>>,
    connections_by_vhost: HashMap<String, u64>,
    connections_by_user: HashMap<String, u64>,
    channels_by_user: HashMap<String, u64>,
}

impl std::fmt::Debug for AccessControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessControl").finish_non_exhaustive()
    }
}

fn key(vhost: &str, user: &str) -> (String, String) {
    (vhost.to_owned(), user.to_owned())
}

fn decrement(counts: &mut HashMap<String, u64>, name: &str, by: u64) {
    if let Some(n) = counts.get_mut(name) {
        *n = n.saturating_sub(by);
        if *n == 0 {
            counts.remove(name);
        }
    }
}

impl AccessControl {
    /// The current generation: it changes whenever a user or a permission does.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Checks a password and, for loopback-only users, the peer address.
    pub fn authenticate(
        &self,
        username: &str,
        password: &str,
        peer: Option<IpAddr>,
    ) -> Result<(), AuthFailure> {
        let state = self.state.read();
        let user = state.users.get(username).ok_or(AuthFailure::UnknownUser)?;
        if !user.password.check(password) {
            return Err(AuthFailure::BadPassword);
        }
        state.check_loopback(username, peer)
    }

    /// Checks that a user named by a trusted certificate exists and, if loopback-only, connects
    /// from this machine: no password.
    pub fn authenticate_external(&self, username: &str, peer: Option<IpAddr>) -> Result<(), AuthFailure> {
        let state = self.state.read();
        if !state.users.contains_key(username) {
            return Err(AuthFailure::UnknownUser);
        }
        state.check_loopback(username, peer)
    }

    /// RabbitMQ's `loopback_users`: these users may only connect from the local machine.
    pub fn set_loopback_users(&self, names: &[String]) {
        self.state.write().loopback_users = names.to_vec();
    }

    /// Admits a connection of `user` to `vhost`, as RabbitMQ's connection.open checks it: the
    /// vhost's connection limit, the user's, then the user's permissions there. The lease counts
    /// the connection (and its channels) until dropped.
    pub fn open(self: &Arc<Self>, user: &str, vhost: &str) -> Result<ConnectionLease, BrokerError> {
        let mut state = self.state.write();
        let settings = state.vhosts.get(vhost).ok_or_else(|| BrokerError::VhostNotFound(vhost.to_owned()))?;
        let open_here = state.connections_by_vhost.get(vhost).copied().unwrap_or(0);
        if let Some(limit) = reached(settings.limits.max_connections, open_here) {
            return Err(BrokerError::VhostConnectionLimit {
                vhost: vhost.to_owned(),
                user: user.to_owned(),
                limit,
            });
        }
        let user_limits = state.users.get(user).map(|u| u.limits).unwrap_or_default();
        let open_by_user = state.connections_by_user.get(user).copied().unwrap_or(0);
        if let Some(limit) = reached(user_limits.max_connections, open_by_user) {
            return Err(BrokerError::UserConnectionLimit { user: user.to_owned(), limit });
        }
        if !state.permissions.contains_key(&key(vhost, user)) {
            return Err(BrokerError::VhostAccessRefused { vhost: vhost.to_owned(), user: user.to_owned() });
        }
        *state.connections_by_vhost.entry(vhost.to_owned()).or_default() += 1;
        *state.connections_by_user.entry(user.to_owned()).or_default() += 1;
        Ok(ConnectionLease {
            access: self.clone(),
            user: user.to_owned(),
            vhost: vhost.to_owned(),
            channels: 0,
        })
    }

    /// Client connections open in `vhost`.
    pub fn connections_in(&self, vhost: &str) -> u64 {
        self.state.read().connections_by_vhost.get(vhost).copied().unwrap_or(0)
    }

    // ---- what the broker's admin commands change (after storing it) ----------------------------

    /// Adds or replaces a user (its permissions stay).
    pub fn put_user(&self, user: User) {
        self.state.write().users.insert(user.name.clone(), Arc::new(user));
        self.changed();
    }

    /// Removes a user with its permissions; whether it existed.
    pub fn delete_user(&self, name: &str) -> bool {
        let mut state = self.state.write();
        let existed = state.users.remove(name).is_some();
        state.permissions.retain(|(_, user), _| user != name);
        state.topic_permissions.retain(|(_, user), _| user != name);
        drop(state);
        self.changed();
        existed
    }

    /// Adds a vhost or replaces its settings.
    pub fn put_vhost(&self, name: &str, settings: VhostSettings) {
        self.state.write().vhosts.insert(name.to_owned(), settings);
        self.changed();
    }

    /// Adds a vhost with default settings unless there is one.
    pub fn ensure_vhost(&self, name: &str) {
        let mut state = self.state.write();
        if !state.vhosts.contains_key(name) {
            state.vhosts.insert(name.to_owned(), VhostSettings::default());
            drop(state);
            self.changed();
        }
    }

    /// Removes a vhost with every permission in it; whether it existed.
    pub fn delete_vhost(&self, name: &str) -> bool {
        let mut state = self.state.write();
        let existed = state.vhosts.remove(name).is_some();
        state.permissions.retain(|(vhost, _), _| vhost != name);
        state.topic_permissions.retain(|(vhost, _), _| vhost != name);
        drop(state);
        self.changed();
        existed
    }

    /// Sets a user's permissions in a vhost.
    pub fn set_permissions(&self, user: &str, vhost: &str, permissions: Permissions) {
        self.state.write().permissions.insert(key(vhost, user), Arc::new(permissions));
        self.changed();
    }

    /// Clears a user's permissions in a vhost.
    pub fn clear_permissions(&self, user: &str, vhost: &str) {
        self.state.write().permissions.remove(&key(vhost, user));
        self.changed();
    }

    /// Sets a user's topic permissions on one exchange of a vhost.
    pub fn set_topic_permission(&self, user: &str, vhost: &str, permission: TopicPermission) {
        let mut state = self.state.write();
        let list = state.topic_permissions.entry(key(vhost, user)).or_default();
        list.retain(|p| p.exchange != permission.exchange);
        list.push(permission);
        list.sort_by(|a, b| a.exchange.cmp(&b.exchange));
        drop(state);
        self.changed();
    }

    /// Clears a user's topic permissions in a vhost, on one exchange or all.
    pub fn clear_topic_permissions(&self, user: &str, vhost: &str, exchange: Option<&str>) {
        let mut state = self.state.write();
        let k = key(vhost, user);
        if let Some(list) = state.topic_permissions.get_mut(&k) {
            list.retain(|p| exchange.is_some_and(|e| e != p.exchange));
            if list.is_empty() {
                state.topic_permissions.remove(&k);
            }
        }
        drop(state);
        self.changed();
    }

    // ---- reads -------------------------------------------------------------------------------

    /// A user by name.
    pub fn user(&self, name: &str) -> Option<Arc<User>> {
        self.state.read().users.get(name).cloned()
    }

    /// Every user, by name.
    pub fn users(&self) -> Vec<Arc<User>> {
        let mut users: Vec<_> = self.state.read().users.values().cloned().collect();
        users.sort_by(|a, b| a.name.cmp(&b.name));
        users
    }

    /// Whether the user is loopback-only.
    pub fn is_loopback_only(&self, name: &str) -> bool {
        self.state.read().loopback_users.iter().any(|u| u == name)
    }

    /// A vhost's settings.
    pub fn vhost(&self, name: &str) -> Option<VhostSettings> {
        self.state.read().vhosts.get(name).cloned()
    }

    /// Every vhost with its settings, by name.
    pub fn vhosts(&self) -> Vec<(String, VhostSettings)> {
        let mut vhosts: Vec<_> =
            self.state.read().vhosts.iter().map(|(n, s)| (n.clone(), s.clone())).collect();
        vhosts.sort_by(|a, b| a.0.cmp(&b.0));
        vhosts
    }

    /// A user's permissions in a vhost.
    pub fn permissions(&self, user: &str, vhost: &str) -> Option<Arc<Permissions>> {
        self.state.read().permissions.get(&key(vhost, user)).cloned()
    }

    /// Every permission as (vhost, user, permissions), sorted.
    pub fn all_permissions(&self) -> Vec<(String, String, Arc<Permissions>)> {
        let state = self.state.read();
        let mut all: Vec<_> =
            state.permissions.iter().map(|((v, u), p)| (v.clone(), u.clone(), p.clone())).collect();
        all.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        all
    }

    /// Every topic permission as (vhost, user, permission), sorted.
    pub fn all_topic_permissions(&self) -> Vec<(String, String, TopicPermission)> {
        let state = self.state.read();
        let mut all: Vec<_> = state
            .topic_permissions
            .iter()
            .flat_map(|((v, u), list)| list.iter().map(move |p| (v.clone(), u.clone(), p.clone())))
            .collect();
        all.sort_by(|a, b| (&a.0, &a.1, &a.2.exchange).cmp(&(&b.0, &b.1, &b.2.exchange)));
        all
    }

    /// A user's topic permissions in a vhost.
    fn topic_permissions(&self, user: &str, vhost: &str) -> Vec<TopicPermission> {
        self.state.read().topic_permissions.get(&key(vhost, user)).cloned().unwrap_or_default()
    }
}

impl State {
    fn check_loopback(&self, username: &str, peer: Option<IpAddr>) -> Result<(), AuthFailure> {
        let loopback_only = self.loopback_users.iter().any(|u| u == username);
        if loopback_only && !peer.is_none_or(is_loopback) {
            return Err(AuthFailure::NotFromLoopback);
        }
        Ok(())
    }
}

/// One open connection of a user to a vhost, counted against their connection limits, with the
/// channels it has open counted against the user's channel limit; dropping it uncounts both.
#[derive(Debug)]
pub struct ConnectionLease {
    access: Arc<AccessControl>,
    user: String,
    vhost: String,
    channels: u64,
}

impl ConnectionLease {
    /// The user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The vhost.
    pub fn vhost(&self) -> &str {
        &self.vhost
    }

    /// Counts a channel being opened, unless the user's `max-channels` is reached.
    pub fn open_channel(&mut self) -> Result<(), BrokerError> {
        let mut state = self.access.state.write();
        let limit = state.users.get(&self.user).and_then(|u| u.limits.max_channels);
        let open = state.channels_by_user.get(&self.user).copied().unwrap_or(0);
        if let Some(limit) = reached(limit, open) {
            return Err(BrokerError::UserChannelLimit { user: self.user.clone(), limit });
        }
        *state.channels_by_user.entry(self.user.clone()).or_default() += 1;
        self.channels += 1;
        Ok(())
    }

    /// Uncounts a channel opened with [`ConnectionLease::open_channel`].
    pub fn close_channel(&mut self) {
        if self.channels > 0 {
            self.channels -= 1;
            decrement(&mut self.access.state.write().channels_by_user, &self.user, 1);
        }
    }

    /// The checks of this connection's operations.
    pub fn user_access(&self) -> UserAccess {
        UserAccess::new(self.access.clone(), &self.user, &self.vhost)
    }
}

impl Drop for ConnectionLease {
    fn drop(&mut self) {
        let mut state = self.access.state.write();
        decrement(&mut state.connections_by_vhost, &self.vhost, 1);
        decrement(&mut state.connections_by_user, &self.user, 1);
        decrement(&mut state.channels_by_user, &self.user, self.channels);
    }
}
