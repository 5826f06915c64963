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

/// A limit name a [`UserLimits`] or [`VhostLimits`] does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown limit '{0}'")]
pub struct UnknownLimit(pub String);

/// RabbitMQ's names of a set of limits, shared by definitions files, the management API and
/// `warren ctl`.
macro_rules! named_limits {
    ($ty:ident { $($name:literal => $field:ident),* }) => {
        impl $ty {
            /// The limits' names, as RabbitMQ spells them.
            pub const NAMES: &'static [&'static str] = &[$($name),*];

            /// Each limit with its name.
            pub fn named(&self) -> Vec<(&'static str, Option<u64>)> {
                vec![$(($name, self.$field)),*]
            }

            /// Sets the limit called `name` (None: no limit).
            pub fn set(&mut self, name: &str, value: Option<u64>) -> Result<(), UnknownLimit> {
                match name {
                    $($name => self.$field = value,)*
                    other => return Err(UnknownLimit(other.to_owned())),
                }
                Ok(())
            }

            /// The limits that are set, as RabbitMQ's JSON object (`{"max-connections": 10}`).
            pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
                self.named().into_iter().filter_map(|(n, v)| v.map(|v| (n.to_owned(), v.into()))).collect()
            }
        }
    };
}

named_limits!(UserLimits { "max-connections" => max_connections, "max-channels" => max_channels });
named_limits!(VhostLimits { "max-connections" => max_connections, "max-queues" => max_queues });

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
