//! Users and the limits on users and vhosts.

use super::password::PasswordHash;

/// A user who may log in.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// The login name.
    pub name: String,
    /// The password's salted hash; empty: certificate login (EXTERNAL) only.
    pub password: PasswordHash,
    /// Tags: `administrator`, `monitoring`, `policymaker`, `management`, `impersonator`, or any
    /// other an operator chooses.
    pub tags: Vec<String>,
    /// How many connections and channels the user may have open.
    pub limits: UserLimits,
}

impl User {
    /// A user with a freshly salted password hash, no tags and no limits.
    pub fn new(name: &str, password: &str) -> User {
        User {
            name: name.to_owned(),
            password: PasswordHash::new(password),
            tags: Vec::new(),
            limits: UserLimits::default(),
        }
    }

    /// Whether the user has `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// RabbitMQ's per-user limits; None: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserLimits {
    /// `max-connections`: connections open at once (0: none may open).
    pub max_connections: Option<u64>,
    /// `max-channels`: channels open at once over all the user's connections.
    pub max_channels: Option<u64>,
}

/// RabbitMQ's per-vhost limits; None: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VhostLimits {
    /// `max-connections`: client connections open at once (0: none may open).
    pub max_connections: Option<u64>,
    /// `max-queues`: queues (0: none may be declared).
    pub max_queues: Option<u64>,
}

/// What an operator says of a vhost besides its contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VhostSettings {
    /// What it is for.
    pub description: String,
    /// Operators' tags.
    pub tags: Vec<String>,
    /// Its limits.
    pub limits: VhostLimits,
}

/// Whether `count` more is over `limit` (RabbitMQ: a limit of N allows N).
pub(crate) fn reached(limit: Option<u64>, count: u64) -> Option<u64> {
    limit.filter(|&limit| count >= limit)
}
