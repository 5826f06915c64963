//! The broker: its vhosts and users.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use warren_store::{MemoryStore, Store};

use crate::error::BrokerError;
use crate::vhost::VHost;

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub password: String,
    /// RabbitMQ's loopback_users: such a user may only connect from the local machine.
    pub loopback_only: bool,
    /// Vhosts this user may use.
    pub vhosts: Vec<String>,
}

pub struct Broker {
    store: Arc<dyn Store>,
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    users: RwLock<HashMap<String, User>>,
    next_connection_id: AtomicU64,
}

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

    /// A broker keeping queue messages in `store`.
    pub fn with_store(store: Arc<dyn Store>) -> Self {
        let broker = Broker {
            store,
            vhosts: RwLock::default(),
            users: RwLock::default(),
            next_connection_id: AtomicU64::new(1),
        };
        broker.add_vhost("/");
        broker.add_user(User {
            name: "guest".into(),
            password: "guest".into(),
            loopback_only: true,
            vhosts: vec!["/".into()],
        });
        broker
    }

    /// Where queue messages are kept.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn add_vhost(&self, name: &str) -> Arc<VHost> {
        self.vhosts
            .write()
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(VHost::new(name, self.store.clone())))
            .clone()
    }

    pub fn add_user(&self, user: User) {
        self.users.write().insert(user.name.clone(), user);
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.read().get(name).cloned()
    }

    pub fn vhosts(&self) -> Vec<Arc<VHost>> {
        self.vhosts.read().values().cloned().collect()
    }

    pub fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Checks a password and, for loopback-only users, the peer address.
    pub fn authenticate(&self, username: &str, password: &str, peer: Option<IpAddr>) -> bool {
        let users = self.users.read();
        let Some(user) = users.get(username) else {
            return false;
        };
        if user.password != password {
            return false;
        }
        !user.loopback_only || peer.is_none_or(|ip| ip.is_loopback())
    }

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
