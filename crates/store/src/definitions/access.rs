//! The access definitions: users, vhosts' settings, permissions, topic permissions and limits.
//!
//! Their values are JSON (serde): they are read once at startup and written by operators, so
//! being easy to extend matters more than size. Permission keys put the vhost first, so deleting
//! a vhost removes its permissions with a range scan, as it does its exchanges and queues.

use redb::{ReadableTable, WriteTransaction};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::{
    codec, keys_with_prefix, Definitions, DefinitionsError, PERMISSIONS, TOPIC_PERMISSIONS, USERS, VHOSTS,
};

/// A stored user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDef {
    /// The login name (the key; not in the value).
    #[serde(skip)]
    pub name: String,
    /// A 4-byte salt, then the hash of salt and password; empty: no password (certificate login
    /// only).
    pub password_hash: Vec<u8>,
    /// RabbitMQ's name of the hash function: `rabbit_password_hashing_sha256`, `..._sha512`,
    /// `..._md5`.
    pub hashing_algorithm: String,
    /// Tags (`administrator`, `monitoring`, `policymaker`, `management`, `impersonator`, ...).
    pub tags: Vec<String>,
    /// Per-user limits.
    #[serde(default)]
    pub limits: UserLimitsDef,
}

/// A user's limits; None: no limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLimitsDef {
    /// Most connections open at once.
    pub max_connections: Option<u64>,
    /// Most channels open at once, over all its connections.
    pub max_channels: Option<u64>,
}

/// A stored vhost with its settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VhostDef {
    /// The vhost's name (the key; not in the value).
    #[serde(skip)]
    pub name: String,
    /// What it is for, as operators describe it.
    #[serde(default)]
    pub description: String,
    /// Operators' tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Per-vhost limits.
    #[serde(default)]
    pub limits: VhostLimitsDef,
}

/// A vhost's limits; None: no limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VhostLimitsDef {
    /// Most client connections open at once.
    pub max_connections: Option<u64>,
    /// Most queues.
    pub max_queues: Option<u64>,
}

/// A user's permissions in a vhost: three regular expressions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionDef {
    /// The user (part of the key).
    #[serde(skip)]
    pub user: String,
    /// The vhost (part of the key).
    #[serde(skip)]
    pub vhost: String,
    /// Names the user may declare and delete.
    pub configure: String,
    /// Names the user may publish to and bind to.
    pub write: String,
    /// Names the user may consume from, get from, purge and bind from.
    pub read: String,
}

/// A user's topic permissions on one topic exchange of a vhost: regular expressions on routing
/// keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicPermissionDef {
    /// The user (part of the key).
    #[serde(skip)]
    pub user: String,
    /// The vhost (part of the key).
    #[serde(skip)]
    pub vhost: String,
    /// The topic exchange (part of the key).
    #[serde(skip)]
    pub exchange: String,
    /// Routing keys the user may publish with.
    pub write: String,
    /// Binding keys the user may bind with.
    pub read: String,
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("definitions serialize")
}

fn from_json<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, DefinitionsError> {
    serde_json::from_slice(bytes).map_err(|e| DefinitionsError::Corrupt(format!("{what}: {e}")))
}

pub(super) fn decode_user(name: String, value: &[u8]) -> Result<UserDef, DefinitionsError> {
    Ok(UserDef { name, ..from_json("user", value)? })
}

/// A vhost's value; format 1 stored none (empty), which means every setting's default.
pub(super) fn decode_vhost(name: String, value: &[u8]) -> Result<VhostDef, DefinitionsError> {
    if value.is_empty() {
        return Ok(VhostDef { name, ..VhostDef::default() });
    }
    Ok(VhostDef { name, ..from_json("vhost", value)? })
}

pub(super) fn decode_permission(key: &[u8], value: &[u8]) -> Result<PermissionDef, DefinitionsError> {
    let (vhost, user) = codec::decode_entity_key(key)?;
    Ok(PermissionDef { user, vhost, ..from_json("permission", value)? })
}

pub(super) fn decode_topic_permission(
    key: &[u8],
    value: &[u8],
) -> Result<TopicPermissionDef, DefinitionsError> {
    let [vhost, user, exchange] = codec::decode_components::<3>(key)?;
    Ok(TopicPermissionDef { user, vhost, exchange, ..from_json("topic permission", value)? })
}

fn topic_key(vhost: &str, user: &str, exchange: &str) -> Vec<u8> {
    let mut key = codec::entity_key(vhost, user);
    key.extend_from_slice(&codec::vhost_prefix(exchange));
    key
}

/// Rewrites format 1's users (binary values listing the vhosts each may use) as format 2's: each
/// vhost a user could use becomes permissions `.*` `.*` `.*` there, which is what format 1's
/// vhost list allowed.
pub(super) fn migrate_users_from_format_1(txn: &WriteTransaction) -> Result<(), DefinitionsError> {
    let mut users = txn.open_table(USERS)?;
    let mut permissions = txn.open_table(PERMISSIONS)?;
    let mut old = Vec::new();
    for entry in users.iter()? {
        let (key, value) = entry?;
        old.push(codec::decode_user_format_1(codec::decode_name_key(key.value())?, value.value())?);
    }
    for (user, vhosts) in old {
        users.insert(user.name.as_bytes(), to_json(&user).as_slice())?;
        for vhost in vhosts {
            let all = PermissionDef {
                user: user.name.clone(),
                vhost: vhost.clone(),
                configure: ".*".into(),
                write: ".*".into(),
                read: ".*".into(),
            };
            permissions.insert(codec::entity_key(&vhost, &user.name).as_slice(), to_json(&all).as_slice())?;
        }
    }
    Ok(())
}

/// Removes every permission and topic permission of `vhost`.
pub(super) fn remove_vhost_permissions(txn: &WriteTransaction, vhost: &str) -> Result<(), DefinitionsError> {
    let prefix = codec::vhost_prefix(vhost);
    for table in [PERMISSIONS, TOPIC_PERMISSIONS] {
        let mut table = txn.open_table(table)?;
        for key in keys_with_prefix(&table, &prefix)? {
            table.remove(key.as_slice())?;
        }
    }
    Ok(())
}

impl Definitions {
    /// Stores a vhost with its settings, replacing the one with the same name (its exchanges,
    /// queues and permissions stay).
    pub fn put_vhost_def(&self, vhost: &VhostDef) -> Result<(), DefinitionsError> {
        let value = to_json(vhost);
        self.write(|txn| {
            txn.open_table(VHOSTS)?.insert(vhost.name.as_bytes(), value.as_slice())?;
            Ok(())
        })
    }

    /// Stores a user, replacing the one with the same name (its permissions stay).
    pub fn put_user(&self, user: &UserDef) -> Result<(), DefinitionsError> {
        let value = to_json(user);
        self.write(|txn| {
            txn.open_table(USERS)?.insert(user.name.as_bytes(), value.as_slice())?;
            Ok(())
        })
    }

    /// Deletes a user with its permissions and topic permissions.
    pub fn delete_user(&self, name: &str) -> Result<(), DefinitionsError> {
        self.write(|txn| {
            txn.open_table(USERS)?.remove(name.as_bytes())?;
            let mut permissions = txn.open_table(PERMISSIONS)?;
            let mut doomed = Vec::new();
            for entry in permissions.iter()? {
                let (key, value) = entry?;
                if decode_permission(key.value(), value.value())?.user == name {
                    doomed.push(key.value().to_vec());
                }
            }
            for key in doomed {
                permissions.remove(key.as_slice())?;
            }
            let mut topics = txn.open_table(TOPIC_PERMISSIONS)?;
            let mut doomed = Vec::new();
            for entry in topics.iter()? {
                let (key, value) = entry?;
                if decode_topic_permission(key.value(), value.value())?.user == name {
                    doomed.push(key.value().to_vec());
                }
            }
            for key in doomed {
                topics.remove(key.as_slice())?;
            }
            Ok(())
        })
    }

    /// Stores a user's permissions in a vhost, replacing any there were.
    pub fn put_permission(&self, def: &PermissionDef) -> Result<(), DefinitionsError> {
        let value = to_json(def);
        self.write(|txn| {
            txn.open_table(PERMISSIONS)?
                .insert(codec::entity_key(&def.vhost, &def.user).as_slice(), value.as_slice())?;
            Ok(())
        })
    }

    /// Deletes a user's permissions in a vhost.
    pub fn delete_permission(&self, user: &str, vhost: &str) -> Result<(), DefinitionsError> {
        self.write(|txn| {
            txn.open_table(PERMISSIONS)?.remove(codec::entity_key(vhost, user).as_slice())?;
            Ok(())
        })
    }

    /// Stores a user's topic permissions on an exchange, replacing any there were.
    pub fn put_topic_permission(&self, def: &TopicPermissionDef) -> Result<(), DefinitionsError> {
        let value = to_json(def);
        let key = topic_key(&def.vhost, &def.user, &def.exchange);
        self.write(|txn| {
            txn.open_table(TOPIC_PERMISSIONS)?.insert(key.as_slice(), value.as_slice())?;
            Ok(())
        })
    }

    /// Deletes a user's topic permissions in a vhost: on one exchange, or on all of them.
    pub fn delete_topic_permission(
        &self,
        user: &str,
        vhost: &str,
        exchange: Option<&str>,
    ) -> Result<(), DefinitionsError> {
        self.write(|txn| {
            let mut table = txn.open_table(TOPIC_PERMISSIONS)?;
            let keys = match exchange {
                Some(exchange) => vec![topic_key(vhost, user, exchange)],
                None => keys_with_prefix(&table, &codec::entity_key(vhost, user))?,
            };
            for key in keys {
                table.remove(key.as_slice())?;
            }
            Ok(())
        })
    }
}
