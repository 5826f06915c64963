//! Admin commands: every change to users, vhosts, permissions and limits is an [`AdminCommand`]
//! applied by [`Broker::admin`], which validates it, writes it to the definitions store, then
//! changes the broker. The operator CLI, definitions import and the management API all send
//! them; so will replication.

use warren_store::definitions::{
    PermissionDef, TopicPermissionDef, UserDef, UserLimitsDef, VhostDef, VhostLimitsDef,
};

use crate::access::{
    HashAlgorithm, PasswordHash, Permissions, TopicPermission, User, UserLimits, VhostLimits, VhostSettings,
};
use crate::broker::Broker;
use crate::effects::Effects;
use crate::error::BrokerError;
use crate::policy::{Policy, PolicyKind};
use crate::time::Now;

/// A change to users, vhosts, permissions or limits.
#[derive(Debug, Clone)]
pub enum AdminCommand {
    /// Adds a user; refused if one has the name.
    AddUser(User),
    /// Adds a user or replaces one (password, tags, limits), keeping its permissions: what a
    /// definitions import does.
    PutUser(User),
    /// Changes a user's password (an empty hash: no password).
    ChangePassword {
        /// The user.
        user: String,
        /// The new hash.
        password: PasswordHash,
    },
    /// Replaces a user's tags.
    SetUserTags {
        /// The user.
        user: String,
        /// The tags.
        tags: Vec<String>,
    },
    /// Replaces a user's limits.
    SetUserLimits {
        /// The user.
        user: String,
        /// The limits.
        limits: UserLimits,
    },
    /// Deletes a user with its permissions and closes its connections.
    DeleteUser(String),
    /// Adds a vhost; refused if one has the name.
    AddVhost {
        /// The name.
        name: String,
        /// Description, tags, limits.
        settings: VhostSettings,
    },
    /// Adds a vhost or replaces its settings: what a definitions import does.
    PutVhost {
        /// The name.
        name: String,
        /// Description, tags, limits.
        settings: VhostSettings,
    },
    /// Replaces a vhost's limits.
    SetVhostLimits {
        /// The vhost.
        vhost: String,
        /// The limits.
        limits: VhostLimits,
    },
    /// Deletes a vhost with everything in it and closes its connections.
    DeleteVhost(String),
    /// Sets a user's permissions in a vhost.
    SetPermissions {
        /// The user.
        user: String,
        /// The vhost.
        vhost: String,
        /// The configure expression.
        configure: String,
        /// The write expression.
        write: String,
        /// The read expression.
        read: String,
    },
    /// Clears a user's permissions in a vhost.
    ClearPermissions {
        /// The user.
        user: String,
        /// The vhost.
        vhost: String,
    },
    /// Sets a user's topic permissions on an exchange of a vhost.
    SetTopicPermissions {
        /// The user.
        user: String,
        /// The vhost.
        vhost: String,
        /// What they apply to.
        permission: TopicPermission,
    },
    /// Sets a policy or operator policy (its kind says) in a vhost, applied at once.
    SetPolicy {
        /// The vhost.
        vhost: String,
        /// The checked policy.
        policy: Policy,
    },
    /// Clears a policy or operator policy of a vhost.
    ClearPolicy {
        /// The vhost.
        vhost: String,
        /// Policy or operator policy.
        kind: PolicyKind,
        /// Its name.
        name: String,
    },
    /// Clears a user's topic permissions in a vhost: on one exchange, or all.
    ClearTopicPermissions {
        /// The user.
        user: String,
        /// The vhost.
        vhost: String,
        /// The exchange; None: every exchange.
        exchange: Option<String>,
    },
}

impl Broker {
    /// Applies an admin command: checks it, stores it durably, then makes it take effect (a
    /// permission change applies to open connections at their next operation; deleting a user
    /// or vhost closes their connections).
    pub fn admin(&self, command: AdminCommand, now: Now) -> Result<(), BrokerError> {
        let _one_at_a_time = self.admin_lock().lock();
        let access = self.access();
        match command {
            AdminCommand::AddUser(user) => {
                if access.user(&user.name).is_some() {
                    return Err(BrokerError::UserExists(user.name));
                }
                self.store_user(&user)?;
                access.put_user(user);
            }
            AdminCommand::PutUser(user) => {
                self.store_user(&user)?;
                access.put_user(user);
            }
            AdminCommand::ChangePassword { user, password } => {
                let user = User { password, ..self.existing_user(&user)? };
                self.store_user(&user)?;
                access.put_user(user);
            }
            AdminCommand::SetUserTags { user, tags } => {
                let user = User { tags, ..self.existing_user(&user)? };
                self.store_user(&user)?;
                access.put_user(user);
            }
            AdminCommand::SetUserLimits { user, limits } => {
                let user = User { limits, ..self.existing_user(&user)? };
                self.store_user(&user)?;
                access.put_user(user);
            }
            AdminCommand::DeleteUser(name) => {
                self.existing_user(&name)?;
                self.with_definitions(|d| d.delete_user(&name))?;
                access.delete_user(&name);
                self.close_connections(|details| details.user == name, &format!("user '{name}' is deleted"));
            }
            AdminCommand::AddVhost { name, settings } => {
                if self.vhost(&name).is_some() {
                    return Err(BrokerError::VhostExists(name));
                }
                self.put_vhost(&name, settings)?;
            }
            AdminCommand::PutVhost { name, settings } => self.put_vhost(&name, settings)?,
            AdminCommand::SetVhostLimits { vhost, limits } => {
                let settings =
                    access.vhost(&vhost).ok_or_else(|| BrokerError::VhostNotFound(vhost.clone()))?;
                self.put_vhost(&vhost, VhostSettings { limits, ..settings })?;
            }
            AdminCommand::DeleteVhost(name) => {
                let vhost = self.vhost(&name).ok_or_else(|| BrokerError::VhostNotFound(name.clone()))?;
                self.with_definitions(|d| d.delete_vhost(&name))?;
                access.delete_vhost(&name);
                let mut effects = Effects::default();
                self.retire_vhost(&vhost, &mut effects);
                self.close_connections(
                    |details| details.vhost == name,
                    &format!("vhost '{name}' is deleted"),
                );
                effects.apply(now.instant);
            }
            AdminCommand::SetPermissions { user, vhost, configure, write, read } => {
                self.existing_user(&user)?;
                self.vhost(&vhost).ok_or_else(|| BrokerError::VhostNotFound(vhost.clone()))?;
                let permissions = Permissions::new(&configure, &write, &read)
                    .map_err(|e| BrokerError::InvalidPattern(e.to_string()))?;
                let def = PermissionDef { user: user.clone(), vhost: vhost.clone(), configure, write, read };
                self.with_definitions(|d| d.put_permission(&def))?;
                access.set_permissions(&user, &vhost, permissions);
            }
            AdminCommand::ClearPermissions { user, vhost } => {
                self.existing_user(&user)?;
                self.vhost(&vhost).ok_or_else(|| BrokerError::VhostNotFound(vhost.clone()))?;
                self.with_definitions(|d| d.delete_permission(&user, &vhost))?;
                access.clear_permissions(&user, &vhost);
            }
            AdminCommand::SetTopicPermissions { user, vhost, permission } => {
                self.existing_user(&user)?;
                self.vhost(&vhost).ok_or_else(|| BrokerError::VhostNotFound(vhost.clone()))?;
                permission.validate().map_err(|e| BrokerError::InvalidPattern(e.to_string()))?;
                let def = TopicPermissionDef {
                    user: user.clone(),
                    vhost: vhost.clone(),
                    exchange: permission.exchange.clone(),
                    write: permission.write.clone(),
                    read: permission.read.clone(),
                };
                self.with_definitions(|d| d.put_topic_permission(&def))?;
                access.set_topic_permission(&user, &vhost, permission);
            }
            AdminCommand::SetPolicy { vhost, policy } => {
                let v = self.vhost(&vhost).ok_or_else(|| BrokerError::VhostNotFound(vhost.clone()))?;
                v.set_policy(policy, now)?;
            }
            AdminCommand::ClearPolicy { vhost, kind, name } => {
                let v = self.vhost(&vhost).ok_or_else(|| BrokerError::VhostNotFound(vhost.clone()))?;
                v.clear_policy(kind, &name, now)?;
            }
            AdminCommand::ClearTopicPermissions { user, vhost, exchange } => {
                self.existing_user(&user)?;
                self.vhost(&vhost).ok_or_else(|| BrokerError::VhostNotFound(vhost.clone()))?;
                self.with_definitions(|d| d.delete_topic_permission(&user, &vhost, exchange.as_deref()))?;
                access.clear_topic_permissions(&user, &vhost, exchange.as_deref());
            }
        }
        Ok(())
    }

    fn existing_user(&self, name: &str) -> Result<User, BrokerError> {
        self.access()
            .user(name)
            .map(|u| (*u).clone())
            .ok_or_else(|| BrokerError::UserNotFound(name.to_owned()))
    }

    fn store_user(&self, user: &User) -> Result<(), BrokerError> {
        self.with_definitions(|d| d.put_user(&user_def(user)))
    }

    fn put_vhost(&self, name: &str, settings: VhostSettings) -> Result<(), BrokerError> {
        self.with_definitions(|d| d.put_vhost_def(&vhost_def(name, &settings)))?;
        self.add_vhost(name).set_max_queues(settings.limits.max_queues);
        self.access().put_vhost(name, settings);
        Ok(())
    }
}

/// A user as the definitions store keeps it.
pub(crate) fn user_def(user: &User) -> UserDef {
    UserDef {
        name: user.name.clone(),
        password_hash: user.password.bytes.clone(),
        hashing_algorithm: user.password.algorithm.rabbit_name().to_owned(),
        tags: user.tags.clone(),
        limits: UserLimitsDef {
            max_connections: user.limits.max_connections,
            max_channels: user.limits.max_channels,
        },
    }
}

/// A stored user; an algorithm Warren does not know leaves it without a password (it cannot log
/// in with one, and the log says why).
pub(crate) fn user_from_def(def: UserDef) -> User {
    let algorithm = HashAlgorithm::from_rabbit_name(&def.hashing_algorithm);
    if algorithm.is_none() && !def.password_hash.is_empty() {
        tracing::warn!(user = %def.name, algorithm = %def.hashing_algorithm, "unknown password hashing algorithm: the user cannot log in with a password");
    }
    let password = match algorithm {
        Some(algorithm) => PasswordHash { algorithm, bytes: def.password_hash },
        None => PasswordHash::none(),
    };
    User {
        name: def.name,
        password,
        tags: def.tags,
        limits: UserLimits {
            max_connections: def.limits.max_connections,
            max_channels: def.limits.max_channels,
        },
    }
}

/// A vhost as the definitions store keeps it.
pub(crate) fn vhost_def(name: &str, settings: &VhostSettings) -> VhostDef {
    VhostDef {
        name: name.to_owned(),
        description: settings.description.clone(),
        tags: settings.tags.clone(),
        limits: VhostLimitsDef {
            max_connections: settings.limits.max_connections,
            max_queues: settings.limits.max_queues,
        },
    }
}

/// A stored vhost's settings.
pub(crate) fn vhost_settings(def: &VhostDef) -> VhostSettings {
    VhostSettings {
        description: def.description.clone(),
        tags: def.tags.clone(),
        limits: VhostLimits {
            max_connections: def.limits.max_connections,
            max_queues: def.limits.max_queues,
        },
    }
}
