//! One connection's permission checks, as RabbitMQ's channel makes them, with a cache of the
//! checks that passed so the publish path does not match expressions per message. The cache is
//! dropped as soon as any permission changes (the access generation moves), so a revoked
//! permission takes effect at the next operation.

use std::sync::Arc;

use warren_message::ShortStr;

use super::pattern::{Pattern, Permission, Permissions};
use super::AccessControl;
use crate::error::BrokerError;

/// The kind of resource a permission is checked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// An exchange ("" is the default exchange, checked as `amq.default`, as RabbitMQ does).
    Exchange,
    /// A queue.
    Queue,
}

impl Resource {
    fn as_str(self) -> &'static str {
        match self {
            Resource::Exchange => "exchange",
            Resource::Queue => "queue",
        }
    }
}

/// Checks that passed, most recent first; the publish path's check is usually the first.
const CACHE_SIZE: usize = 12;

/// A topic exchange's expressions for this connection, variables filled in.
#[derive(Debug)]
struct TopicCheck {
    exchange: String,
    write: Pattern,
    read: Pattern,
}

/// See the module documentation.
#[derive(Debug)]
pub struct UserAccess {
    access: Arc<AccessControl>,
    user: String,
    vhost: String,
    generation: u64,
    permissions: Option<Arc<Permissions>>,
    topics: Vec<TopicCheck>,
    impersonator: bool,
    allowed: Vec<(Permission, Resource, ShortStr)>,
}

impl UserAccess {
    pub(super) fn new(access: Arc<AccessControl>, user: &str, vhost: &str) -> UserAccess {
        let mut me = UserAccess {
            access: access.clone(),
            user: user.to_owned(),
            vhost: vhost.to_owned(),
            generation: u64::MAX,
            permissions: None,
            topics: Vec::new(),
            // Read once: RabbitMQ keeps the user's record, tags included, for the connection's
            // life, so a tag set later applies to later connections only.
            impersonator: access.user(user).is_some_and(|u| u.has_tag("impersonator")),
            allowed: Vec::new(),
        };
        me.refresh_if_changed();
        me
    }

    fn refresh_if_changed(&mut self) {
        let generation = self.access.generation();
        if generation == self.generation {
            return;
        }
        self.generation = generation;
        self.allowed.clear();
        self.permissions = self.access.permissions(&self.user, &self.vhost);
        let variables = [("username", self.user.as_str()), ("vhost", self.vhost.as_str())];
        self.topics = self
            .access
            .topic_permissions(&self.user, &self.vhost)
            .into_iter()
            .map(|t| {
                let (write, read) = t.expanded(&variables);
                TopicCheck { exchange: t.exchange, write, read }
            })
            .collect();
    }

    /// Whether a publish to `exchange` is allowed by the check that passed last, with nothing
    /// changed since and no topic permissions to match: the publish path's whole check, most of
    /// the time. False says nothing: make the full checks.
    #[inline]
    pub fn publish_allowed_fast(&self, exchange: &str) -> bool {
        self.generation == self.access.generation()
            && self.topics.is_empty()
            && self.allowed.first().is_some_and(|(p, k, n)| {
                *p == Permission::Write && *k == Resource::Exchange && n.as_bytes() == exchange.as_bytes()
            })
    }

    /// Checks `permission` on a resource, with RabbitMQ's refusal (403 ACCESS_REFUSED).
    pub fn check(
        &mut self,
        permission: Permission,
        kind: Resource,
        name: &ShortStr,
    ) -> Result<(), BrokerError> {
        self.refresh_if_changed();
        if let Some(i) = self.allowed.iter().position(|(p, k, n)| *p == permission && *k == kind && n == name)
        {
            if i > 0 {
                let hit = self.allowed.remove(i);
                self.allowed.insert(0, hit);
            }
            return Ok(());
        }
        let checked_name = if kind == Resource::Exchange && name.is_empty() { "amq.default" } else { name };
        let allowed = self.permissions.as_ref().is_some_and(|p| p.allows(permission, checked_name));
        if !allowed {
            return Err(BrokerError::AccessRefused {
                kind: kind.as_str(),
                name: checked_name.to_owned(),
                vhost: self.vhost.clone(),
                user: self.user.clone(),
            });
        }
        if self.allowed.len() == CACHE_SIZE {
            self.allowed.pop();
        }
        self.allowed.insert(0, (permission, kind, name.clone()));
        Ok(())
    }

    /// Checks a topic permission (write on publish, read on bind) of a routing key on a topic
    /// exchange; a user without topic permissions on the exchange may use any key.
    pub fn check_topic(
        &mut self,
        permission: Permission,
        exchange: &str,
        routing_key: &str,
    ) -> Result<(), BrokerError> {
        self.refresh_if_changed();
        let Some(topic) = self.topics.iter().find(|t| t.exchange == exchange) else {
            return Ok(());
        };
        let pattern = if permission == Permission::Write { &topic.write } else { &topic.read };
        if pattern.allows(routing_key) {
            return Ok(());
        }
        Err(BrokerError::TopicAccessRefused {
            routing_key: routing_key.to_owned(),
            exchange: exchange.to_owned(),
            vhost: self.vhost.clone(),
            user: self.user.clone(),
        })
    }

    /// Whether the user has topic permissions on some exchange of this vhost (publishes to topic
    /// exchanges are checked only then).
    pub fn has_topic_permissions(&mut self) -> bool {
        self.refresh_if_changed();
        !self.topics.is_empty()
    }

    /// Whether the user may set another user's name in a message's `user_id`: it had the
    /// `impersonator` tag when the connection opened.
    pub fn may_impersonate(&self) -> bool {
        self.impersonator
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{TopicPermission, User, VhostSettings};

    fn control() -> Arc<AccessControl> {
        let access = Arc::new(AccessControl::default());
        access.put_vhost("/", VhostSettings::default());
        access.put_user(User::new("u", "pw"));
        access
    }

    #[test]
    fn checks_follow_the_permissions_and_their_changes() {
        let access = control();
        access.set_permissions("u", "/", Permissions::new("^cfg", "^w", "^r").unwrap());
        let lease = access.open("u", "/").unwrap();
        let mut checks = lease.user_access();
        let name = |s: &'static str| ShortStr::from_static(s);
        assert!(checks.check(Permission::Configure, Resource::Queue, &name("cfg.q")).is_ok());
        assert!(checks.check(Permission::Write, Resource::Exchange, &name("w.x")).is_ok());
        let refused = checks.check(Permission::Write, Resource::Exchange, &name("")).unwrap_err();
        assert_eq!(refused.to_string(), "access to exchange 'amq.default' in vhost '/' refused for user 'u'");
        let refused = checks.check(Permission::Read, Resource::Queue, &name("cfg.q")).unwrap_err();
        assert_eq!(refused.to_string(), "access to queue 'cfg.q' in vhost '/' refused for user 'u'");
        // A cached pass does not outlive a change of permissions.
        access.set_permissions("u", "/", Permissions::new("", "^w", "").unwrap());
        assert!(checks.check(Permission::Configure, Resource::Queue, &name("cfg.q")).is_err());
        assert!(checks.check(Permission::Write, Resource::Exchange, &name("w.x")).is_ok());
        access.clear_permissions("u", "/");
        assert!(checks.check(Permission::Write, Resource::Exchange, &name("w.x")).is_err());
        // The cache stays bounded whatever the names.
        access.set_permissions("u", "/", Permissions::all());
        for i in 0..100 {
            let n = ShortStr::from(format!("q{i}"));
            checks.check(Permission::Read, Resource::Queue, &n).unwrap();
        }
        assert_eq!(checks.allowed.len(), CACHE_SIZE);
    }

    #[test]
    fn topic_permissions_apply_to_their_exchange_only() {
        let access = control();
        access.set_permissions("u", "/", Permissions::all());
        let topic = TopicPermission {
            exchange: "amq.topic".into(),
            write: "^{username}\\.".into(),
            read: "^r".into(),
        };
        access.set_topic_permission("u", "/", topic);
        let lease = access.open("u", "/").unwrap();
        let mut checks = lease.user_access();
        assert!(checks.has_topic_permissions());
        assert!(checks.check_topic(Permission::Write, "amq.topic", "u.temp").is_ok());
        let refused = checks.check_topic(Permission::Write, "amq.topic", "v.temp").unwrap_err();
        assert_eq!(
            refused.to_string(),
            "access to topic 'v.temp' in exchange 'amq.topic' in vhost '/' refused for user 'u'"
        );
        assert!(checks.check_topic(Permission::Read, "amq.topic", "r.x").is_ok());
        assert!(checks.check_topic(Permission::Write, "other", "anything").is_ok());
        access.clear_topic_permissions("u", "/", None);
        assert!(!checks.has_topic_permissions());
        assert!(checks.check_topic(Permission::Write, "amq.topic", "v.temp").is_ok());
    }

    #[test]
    fn leases_count_connections_and_channels_against_the_limits() {
        let access = control();
        access.set_permissions("u", "/", Permissions::all());
        let limits = crate::access::UserLimits { max_connections: Some(2), max_channels: Some(3) };
        access.put_user(User { limits, ..User::new("u", "pw") });
        let mut a = access.open("u", "/").unwrap();
        let mut b = access.open("u", "/").unwrap();
        let refused = access.open("u", "/").unwrap_err();
        assert_eq!(
            refused.to_string(),
            "connection refused for user 'u': user connection limit (2) is reached"
        );
        a.open_channel().unwrap();
        a.open_channel().unwrap();
        b.open_channel().unwrap();
        let refused = b.open_channel().unwrap_err();
        assert_eq!(
            refused.to_string(),
            "number of channels opened for user 'u' has reached the maximum allowed user limit of (3)"
        );
        a.close_channel();
        b.open_channel().unwrap();
        drop(a);
        assert_eq!(access.connections_in("/"), 1);
        b.open_channel().unwrap();
        let c = access.open("u", "/").unwrap();
        drop((b, c));
        assert_eq!(access.connections_in("/"), 0);
        assert!(access.state.read().channels_by_user.is_empty(), "every count returned");

        access.put_vhost(
            "/",
            VhostSettings {
                limits: crate::access::VhostLimits { max_connections: Some(0), max_queues: None },
                ..Default::default()
            },
        );
        let refused = access.open("u", "/").unwrap_err();
        assert_eq!(
            refused.to_string(),
            "access to vhost '/' refused for user 'u': connection limit (0) is reached"
        );
        assert_eq!(access.open("u", "nope").unwrap_err().to_string(), "vhost nope not found");
        access.put_vhost("other", VhostSettings::default());
        assert_eq!(
            access.open("u", "other").unwrap_err().to_string(),
            "access to vhost 'other' refused for user 'u'"
        );
    }
}
