//! What an import reports: the error that stopped it (each problem naming its entry) or the
//! summary of what it did.

use std::fmt;

use crate::error::BrokerError;

/// Why a definitions import failed.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionsImportError {
    /// The bytes are not JSON (serde's message gives the line and column).
    #[error("the definitions are not valid JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The JSON is not an object of categories.
    #[error("the definitions must be a JSON object (with \"users\", \"vhosts\", \"queues\"...), not {0}")]
    NotAnObject(&'static str),
    /// Entries that cannot be imported; nothing was changed.
    #[error("{}", describe(.0))]
    Invalid(Vec<Problem>),
    /// Applying an entry failed (the store could not be written, or the broker changed since the
    /// file was checked); the entries before it were imported.
    #[error("importing {entry} failed: {error}; the entries before it were imported")]
    Failed {
        /// The entry, e.g. `queues[3] 'orders' in vhost 'prod'`.
        entry: String,
        /// What the broker said (boxed: it is large, and this is the rare case).
        #[source]
        error: Box<BrokerError>,
    },
}

/// One entry that cannot be imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The entry, e.g. `users[2] 'carol'`.
    pub entry: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.entry, self.reason)
    }
}

fn describe(problems: &[Problem]) -> String {
    let mut text = match problems.len() {
        1 => "1 entry of the definitions cannot be imported, so nothing was imported:".to_owned(),
        n => format!("{n} entries of the definitions cannot be imported, so nothing was imported:"),
    };
    for p in problems {
        text.push_str("\n  ");
        text.push_str(&p.to_string());
    }
    text
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Users added or updated.
    pub users: usize,
    /// Vhosts added or updated.
    pub vhosts: usize,
    /// Permissions set.
    pub permissions: usize,
    /// Topic permissions set.
    pub topic_permissions: usize,
    /// Vhosts whose limits were set (`vhost-limits` parameters).
    pub vhost_limits: usize,
    /// Policies and operator policies read (see `skipped` for whether they were applied).
    pub policies: usize,
    /// Exchanges declared.
    pub exchanges_declared: usize,
    /// Exchanges left as they were because one of the name exists (RabbitMQ does not compare).
    pub exchanges_existing: usize,
    /// Queues declared.
    pub queues_declared: usize,
    /// Queues left as they were because one of the name exists (RabbitMQ does not compare).
    pub queues_existing: usize,
    /// Bindings added (or already there).
    pub bindings: usize,
    /// Entries not imported, each with the reason (amq.* names, parameters Warren does not
    /// support), as the log says them.
    pub skipped: Vec<String>,
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} users, {} vhosts, {} permissions, {} topic permissions, {} vhost limits, {} policies, \
             {} exchanges ({} already there), {} queues ({} already there), {} bindings; {} skipped",
            self.users,
            self.vhosts,
            self.permissions,
            self.topic_permissions,
            self.vhost_limits,
            self.policies,
            self.exchanges_declared + self.exchanges_existing,
            self.exchanges_existing,
            self.queues_declared + self.queues_existing,
            self.queues_existing,
            self.bindings,
            self.skipped.len()
        )
    }
}
