//! The durable definitions: vhosts, users and their permissions, exchanges, queues and bindings.
//!
//! They live in one [redb] file. Every `put_*` and `delete_*` is one write transaction, committed
//! with redb's default durability (fsynced before it returns), so the broker calls it before it
//! replies `-ok` to a durable declare; [`Definitions::load`] reads everything back at startup.
//!
//! The store keeps what it is given and checks no references: the broker decides what may be
//! declared. A `put_*` of an existing key (the vhost and name of an exchange or queue, the name
//! of a user or vhost) replaces it; deleting something that is not there does nothing. A binding
//! is identified by all its fields, so two bindings that differ only in their arguments are two
//! bindings.
//!
//! Tables (all `&[u8]` keys and values; encodings in `codec`):
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `meta` | `"format"` | format version, u32 big-endian |
//! | `vhosts` | name | settings and limits, JSON (format 1: empty) |
//! | `users` | name | password hash and its algorithm, tags, limits, JSON |
//! | `permissions` | (vhost, user) | configure, write, read regexes, JSON |
//! | `topic_permissions` | (vhost, user, exchange) | write, read regexes, JSON |
//! | `exchanges` | (vhost, name) | flags, type, arguments |
//! | `queues` | (vhost, name) | flags, arguments |
//! | `bindings` | (vhost, source, kind, destination, routing key, arguments) | empty |
//! | `bindings_by_destination` | (vhost, kind, destination, source, routing key, arguments) | empty |
//! | `policies`, `operator_policies` | (vhost, name) | JSON: pattern, apply-to, priority, definition |
//!
//! The second bindings table indexes bindings by destination, so deleting a queue or an exchange
//! finds the bindings to it with a range scan instead of reading every binding of the vhost.
//!
//! New files are created in redb's v3 file format, the only one redb 3 and later read. Format 1
//! files (users with a list of vhosts instead of permissions) are migrated when opened.

mod access;
mod codec;
mod policies;

pub use policies::PolicyDef;

pub use access::{PermissionDef, TopicPermissionDef, UserDef, UserLimitsDef, VhostDef, VhostLimitsDef};

use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition, WriteTransaction};
use warren_message::FieldTable;

/// The encoding of the tables described in the module documentation.
const FORMAT_VERSION: u32 = 2;
const FORMAT_KEY: &[u8] = b"format";

type Tbl = TableDefinition<'static, &'static [u8], &'static [u8]>;

const META: Tbl = TableDefinition::new("meta");
const VHOSTS: Tbl = TableDefinition::new("vhosts");
const USERS: Tbl = TableDefinition::new("users");
const EXCHANGES: Tbl = TableDefinition::new("exchanges");
const QUEUES: Tbl = TableDefinition::new("queues");
const BINDINGS: Tbl = TableDefinition::new("bindings");
const BINDINGS_BY_DESTINATION: Tbl = TableDefinition::new("bindings_by_destination");
const PERMISSIONS: Tbl = TableDefinition::new("permissions");
const TOPIC_PERMISSIONS: Tbl = TableDefinition::new("topic_permissions");
const POLICIES: Tbl = TableDefinition::new("policies");
const OPERATOR_POLICIES: Tbl = TableDefinition::new("operator_policies");

const ALL_TABLES: [Tbl; 11] = [
    META,
    VHOSTS,
    USERS,
    EXCHANGES,
    QUEUES,
    BINDINGS,
    BINDINGS_BY_DESTINATION,
    PERMISSIONS,
    TOPIC_PERMISSIONS,
    POLICIES,
    OPERATOR_POLICIES,
];

/// Everything stored, each kind sorted by its key: vhosts and users by name, exchanges and
/// queues by (vhost, name), bindings by (vhost, source, destination kind (exchanges first),
/// destination, routing key, encoded arguments).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct AllDefinitions {
    /// Vhosts with their settings.
    pub vhosts: Vec<VhostDef>,
    /// Users.
    pub users: Vec<UserDef>,
    /// Users' permissions, by vhost then user.
    pub permissions: Vec<PermissionDef>,
    /// Users' topic permissions, by vhost, user, then exchange.
    pub topic_permissions: Vec<TopicPermissionDef>,
    /// Durable exchanges of every vhost.
    pub exchanges: Vec<ExchangeDef>,
    /// Durable queues of every vhost.
    pub queues: Vec<QueueDef>,
    /// Bindings between durable exchanges and queues.
    pub bindings: Vec<BindingDef>,
    /// Policies, then operator policies, each by (vhost, name).
    pub policies: Vec<PolicyDef>,
}

/// A stored exchange.
#[derive(Clone, Debug, PartialEq)]
pub struct ExchangeDef {
    /// The vhost the exchange is in.
    pub vhost: String,
    /// The exchange name.
    pub name: String,
    /// The exchange type: `direct`, `fanout`, `topic`, `headers`, ...
    pub kind: String,
    /// The `durable` flag it was declared with.
    pub durable: bool,
    /// The `auto-delete` flag it was declared with.
    pub auto_delete: bool,
    /// The `internal` flag it was declared with.
    pub internal: bool,
    /// The arguments it was declared with.
    pub arguments: FieldTable,
}

/// A stored queue (never exclusive: exclusive queues die with their connection).
#[derive(Clone, Debug, PartialEq)]
pub struct QueueDef {
    /// The vhost the queue is in.
    pub vhost: String,
    /// The queue name.
    pub name: String,
    /// The `durable` flag it was declared with.
    pub durable: bool,
    /// The `auto-delete` flag it was declared with.
    pub auto_delete: bool,
    /// The arguments it was declared with.
    pub arguments: FieldTable,
}

/// A stored binding; every field is part of its identity.
#[derive(Clone, Debug, PartialEq)]
pub struct BindingDef {
    /// The vhost of both ends.
    pub vhost: String,
    /// The source exchange.
    pub source: String,
    /// The queue or exchange bound to the source.
    pub destination: String,
    /// The destination is a queue (`queue.bind`), else an exchange (`exchange.bind`).
    pub destination_is_queue: bool,
    /// The routing key (binding key) of the binding.
    pub routing_key: String,
    /// The binding arguments (`headers` and plugin exchanges match on them).
    pub arguments: FieldTable,
}

/// Why the definitions file could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionsError {
    /// The database failed: I/O, a damaged file, a file already open, ... (boxed: it is large)
    #[error("definitions store: {0}")]
    Redb(#[source] Box<redb::Error>),
    /// A stored key or value does not decode.
    #[error("definitions store is corrupt: {0}")]
    Corrupt(String),
    /// The file was written in a format this build does not know (by a newer Warren).
    #[error("definitions store format {found} is not supported (this build reads format {supported})")]
    UnsupportedFormat {
        /// The format version in the file.
        found: u32,
        /// The format version this build reads and writes.
        supported: u32,
    },
}

macro_rules! from_redb_error {
    ($($t:ty),*) => {$(
        impl From<$t> for DefinitionsError {
            fn from(e: $t) -> Self {
                DefinitionsError::Redb(Box::new(e.into()))
            }
        }
    )*};
}

from_redb_error!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// The definitions file. Cheap to share behind an `Arc`: write transactions queue up inside redb.
pub struct Definitions {
    db: Database,
}

impl std::fmt::Debug for Definitions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Definitions").finish_non_exhaustive()
    }
}

impl Definitions {
    /// Opens the definitions file at `path`, creating it (and its tables) if it is missing.
    pub fn open(path: &Path) -> Result<Definitions, DefinitionsError> {
        let db = Database::builder().create_with_file_format_v3(true).create(path)?;
        let txn = db.begin_write()?;
        for table in ALL_TABLES {
            txn.open_table(table)?;
        }
        {
            let mut meta = txn.open_table(META)?;
            let found = match meta.get(FORMAT_KEY)? {
                Some(v) => Some(
                    <[u8; 4]>::try_from(v.value())
                        .map(u32::from_be_bytes)
                        .map_err(|_| DefinitionsError::Corrupt("format version".into()))?,
                ),
                None => None,
            };
            match found {
                Some(FORMAT_VERSION) => {}
                Some(1) => {
                    access::migrate_users_from_format_1(&txn)?;
                    meta.insert(FORMAT_KEY, FORMAT_VERSION.to_be_bytes().as_slice())?;
                }
                Some(found) => {
                    return Err(DefinitionsError::UnsupportedFormat { found, supported: FORMAT_VERSION })
                }
                None => {
                    meta.insert(FORMAT_KEY, FORMAT_VERSION.to_be_bytes().as_slice())?;
                }
            }
        }
        txn.commit()?;
        Ok(Definitions { db })
    }

    /// Reads every definition, sorted as [`AllDefinitions`] describes.
    pub fn load(&self) -> Result<AllDefinitions, DefinitionsError> {
        let txn = self.db.begin_read()?;
        let mut all = AllDefinitions::default();

        for entry in txn.open_table(VHOSTS)?.iter()? {
            let (key, value) = entry?;
            all.vhosts.push(access::decode_vhost(codec::decode_name_key(key.value())?, value.value())?);
        }
        for entry in txn.open_table(USERS)?.iter()? {
            let (key, value) = entry?;
            let name = codec::decode_name_key(key.value())?;
            all.users.push(access::decode_user(name, value.value())?);
        }
        for entry in txn.open_table(PERMISSIONS)?.iter()? {
            let (key, value) = entry?;
            all.permissions.push(access::decode_permission(key.value(), value.value())?);
        }
        for entry in txn.open_table(TOPIC_PERMISSIONS)?.iter()? {
            let (key, value) = entry?;
            all.topic_permissions.push(access::decode_topic_permission(key.value(), value.value())?);
        }
        for entry in txn.open_table(EXCHANGES)?.iter()? {
            let (key, value) = entry?;
            let (vhost, name) = codec::decode_entity_key(key.value())?;
            all.exchanges.push(codec::decode_exchange(vhost, name, value.value())?);
        }
        for entry in txn.open_table(QUEUES)?.iter()? {
            let (key, value) = entry?;
            let (vhost, name) = codec::decode_entity_key(key.value())?;
            all.queues.push(codec::decode_queue(vhost, name, value.value())?);
        }
        for entry in txn.open_table(BINDINGS)?.iter()? {
            let (key, _) = entry?;
            all.bindings.push(codec::decode_binding_key(key.value())?);
        }
        all.policies = policies::load(&txn)?;
        Ok(all)
    }

    /// Stores a vhost with default settings if there is none of that name.
    pub fn put_vhost(&self, name: &str) -> Result<(), DefinitionsError> {
        self.write(|txn| {
            let mut vhosts = txn.open_table(VHOSTS)?;
            if vhosts.get(name.as_bytes())?.is_none() {
                vhosts.insert(name.as_bytes(), [].as_slice())?;
            }
            Ok(())
        })
    }

    /// Deletes a vhost with its exchanges, queues, bindings, permissions and policies.
    pub fn delete_vhost(&self, name: &str) -> Result<(), DefinitionsError> {
        self.write(|txn| {
            txn.open_table(VHOSTS)?.remove(name.as_bytes())?;
            let prefix = codec::vhost_prefix(name);
            for table in [EXCHANGES, QUEUES, BINDINGS, BINDINGS_BY_DESTINATION, POLICIES, OPERATOR_POLICIES] {
                let mut table = txn.open_table(table)?;
                for key in keys_with_prefix(&table, &prefix)? {
                    table.remove(key.as_slice())?;
                }
            }
            access::remove_vhost_permissions(txn, name)
        })
    }

    /// Stores an exchange, replacing the one with the same vhost and name.
    pub fn put_exchange(&self, def: &ExchangeDef) -> Result<(), DefinitionsError> {
        let key = codec::entity_key(&def.vhost, &def.name);
        let value = codec::encode_exchange(def);
        self.write(|txn| {
            txn.open_table(EXCHANGES)?.insert(key.as_slice(), value.as_slice())?;
            Ok(())
        })
    }

    /// Deletes an exchange and every binding whose source or destination it is.
    pub fn delete_exchange(&self, vhost: &str, name: &str) -> Result<(), DefinitionsError> {
        self.write(|txn| {
            txn.open_table(EXCHANGES)?.remove(codec::entity_key(vhost, name).as_slice())?;
            remove_bindings_from(txn, vhost, name)?;
            remove_bindings_to(txn, vhost, name, false)
        })
    }

    /// Stores a queue, replacing the one with the same vhost and name.
    pub fn put_queue(&self, def: &QueueDef) -> Result<(), DefinitionsError> {
        let key = codec::entity_key(&def.vhost, &def.name);
        let value = codec::encode_queue(def);
        self.write(|txn| {
            txn.open_table(QUEUES)?.insert(key.as_slice(), value.as_slice())?;
            Ok(())
        })
    }

    /// Deletes a queue and every binding to it.
    pub fn delete_queue(&self, vhost: &str, name: &str) -> Result<(), DefinitionsError> {
        self.write(|txn| {
            txn.open_table(QUEUES)?.remove(codec::entity_key(vhost, name).as_slice())?;
            remove_bindings_to(txn, vhost, name, true)
        })
    }

    /// Stores a binding (storing it again changes nothing).
    pub fn put_binding(&self, def: &BindingDef) -> Result<(), DefinitionsError> {
        let key = codec::binding_key(def);
        let by_destination = codec::binding_destination_key(def);
        self.write(|txn| {
            txn.open_table(BINDINGS)?.insert(key.as_slice(), [].as_slice())?;
            txn.open_table(BINDINGS_BY_DESTINATION)?.insert(by_destination.as_slice(), [].as_slice())?;
            Ok(())
        })
    }

    /// Deletes the binding equal to `def` in every field, arguments included.
    pub fn delete_binding(&self, def: &BindingDef) -> Result<(), DefinitionsError> {
        let key = codec::binding_key(def);
        let by_destination = codec::binding_destination_key(def);
        self.write(|txn| {
            txn.open_table(BINDINGS)?.remove(key.as_slice())?;
            txn.open_table(BINDINGS_BY_DESTINATION)?.remove(by_destination.as_slice())?;
            Ok(())
        })
    }

    /// Runs `f` in one write transaction and commits it durably; an error aborts it.
    fn write(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<(), DefinitionsError>,
    ) -> Result<(), DefinitionsError> {
        let txn = self.db.begin_write()?;
        f(&txn)?;
        txn.commit()?;
        Ok(())
    }
}

/// The keys of `table` that start with `prefix`.
fn keys_with_prefix(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    prefix: &[u8],
) -> Result<Vec<Vec<u8>>, DefinitionsError> {
    let end = codec::prefix_end(prefix);
    let range = match &end {
        Some(end) => table.range::<&[u8]>(prefix..end.as_slice())?,
        None => table.range::<&[u8]>(prefix..)?,
    };
    let mut keys = Vec::new();
    for entry in range {
        keys.push(entry?.0.value().to_vec());
    }
    Ok(keys)
}

/// Removes every binding whose source is the exchange `source`, from both binding tables.
fn remove_bindings_from(txn: &WriteTransaction, vhost: &str, source: &str) -> Result<(), DefinitionsError> {
    let mut bindings = txn.open_table(BINDINGS)?;
    let mut by_destination = txn.open_table(BINDINGS_BY_DESTINATION)?;
    for key in keys_with_prefix(&bindings, &codec::binding_source_prefix(vhost, source))? {
        let def = codec::decode_binding_key(&key)?;
        by_destination.remove(codec::binding_destination_key(&def).as_slice())?;
        bindings.remove(key.as_slice())?;
    }
    Ok(())
}

/// Removes every binding whose destination is this queue or exchange, from both binding tables.
fn remove_bindings_to(
    txn: &WriteTransaction,
    vhost: &str,
    destination: &str,
    is_queue: bool,
) -> Result<(), DefinitionsError> {
    let mut bindings = txn.open_table(BINDINGS)?;
    let mut by_destination = txn.open_table(BINDINGS_BY_DESTINATION)?;
    let prefix = codec::binding_destination_prefix(vhost, destination, is_queue);
    for key in keys_with_prefix(&by_destination, &prefix)? {
        let def = codec::decode_binding_destination_key(&key)?;
        bindings.remove(codec::binding_key(&def).as_slice())?;
        by_destination.remove(key.as_slice())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
