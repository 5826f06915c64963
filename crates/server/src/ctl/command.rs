//! The operator commands of `warren ctl`, named and shaped as `rabbitmqctl`'s, and how each is
//! carried out against a broker: changes go through the broker's admin commands, listings read
//! its access control. The same code runs in the broker (a command sent over the control
//! socket) and in the CLI itself (a stopped broker's data directory).

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use warren_broker::{
    AdminCommand, ApplyTo, Broker, PasswordHash, Policy, PolicyKind, TopicPermission, UnknownLimit, User,
    UserLimits, VhostLimits, VhostSettings,
};

/// One `warren ctl` command.
#[derive(Debug, Clone, PartialEq, Subcommand, Serialize, Deserialize)]
#[command(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum CtlCommand {
    /// Adds a user (not loopback-only unless named in loopback_users).
    AddUser {
        /// The user name.
        username: String,
        /// The password; "" adds a user without one (certificate login only).
        password: String,
    },
    /// Deletes a user with its permissions and closes its connections.
    DeleteUser {
        /// The user name.
        username: String,
    },
    /// Changes a user's password.
    ChangePassword {
        /// The user name.
        username: String,
        /// The new password.
        password: String,
    },
    /// Removes a user's password: only a certificate (EXTERNAL) logs it in.
    ClearPassword {
        /// The user name.
        username: String,
    },
    /// Checks a user's password.
    AuthenticateUser {
        /// The user name.
        username: String,
        /// The password to check.
        password: String,
    },
    /// Replaces a user's tags (administrator, monitoring, policymaker, management, impersonator).
    SetUserTags {
        /// The user name.
        username: String,
        /// The tags; none clears them.
        tags: Vec<String>,
    },
    /// Lists users and their tags; over --url, chosen columns (user tags).
    ListUsers {
        /// Columns to show (with --url).
        columns: Vec<String>,
    },
    /// Adds a vhost.
    AddVhost {
        /// The vhost.
        vhost: String,
        /// What it is for.
        #[arg(long, default_value = "")]
        description: String,
        /// Comma-separated tags.
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
    },
    /// Deletes a vhost with everything in it and closes its connections.
    DeleteVhost {
        /// The vhost.
        vhost: String,
    },
    /// Lists vhosts; over --url, chosen columns (name description tags messages ...).
    ListVhosts {
        /// Columns to show (with --url).
        columns: Vec<String>,
    },
    /// Sets a user's permissions in a vhost: configure, write and read regular expressions.
    SetPermissions {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        /// The user name.
        username: String,
        /// Names the user may declare and delete.
        configure: String,
        /// Names the user may publish and bind to.
        write: String,
        /// Names the user may consume, get and bind from.
        read: String,
    },
    /// Clears a user's permissions in a vhost.
    ClearPermissions {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        /// The user name.
        username: String,
    },
    /// Lists the permissions in a vhost.
    ListPermissions {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
    },
    /// Lists a user's permissions in every vhost.
    ListUserPermissions {
        /// The user name.
        username: String,
    },
    /// Sets a user's topic permissions on a topic exchange: write and read expressions on
    /// routing keys ({username}, {vhost} and {client_id} are filled in).
    SetTopicPermissions {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        /// The user name.
        username: String,
        /// The topic exchange.
        exchange: String,
        /// Routing keys the user may publish with.
        write: String,
        /// Binding keys the user may bind with.
        read: String,
    },
    /// Clears a user's topic permissions in a vhost (on one exchange, or all).
    ClearTopicPermissions {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        /// The user name.
        username: String,
        /// The exchange; all of them if left out.
        exchange: Option<String>,
    },
    /// Lists the topic permissions in a vhost.
    ListTopicPermissions {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
    },
    /// Sets a vhost's limits, as JSON: '{"max-connections": 10, "max-queues": 100}' (a negative
    /// value: no limit); replaces the limits it had.
    SetVhostLimits {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        /// The limits.
        definition: String,
    },
    /// Clears a vhost's limits.
    ClearVhostLimits {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
    },
    /// Lists a vhost's limits.
    ListVhostLimits {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
    },
    /// Sets user limits, as JSON: '{"max-connections": 5, "max-channels": 20}'; limits not
    /// named keep their value.
    SetUserLimits {
        /// The user name.
        username: String,
        /// The limits.
        definition: String,
    },
    /// Clears one of a user's limits (max-connections, max-channels) or all.
    ClearUserLimits {
        /// The user name.
        username: String,
        /// The limit, or "all".
        limit: String,
    },
    /// Lists a user's limits.
    ListUserLimits {
        /// The user name.
        #[arg(long = "user")]
        username: String,
    },
    /// Imports a definitions file in RabbitMQ's JSON format (rabbitmqctl export_definitions or
    /// the management API's): users with their password hashes, vhosts, permissions, limits,
    /// policies, queues, exchanges, bindings. A file with errors changes nothing.
    ImportDefinitions {
        /// The file.
        path: std::path::PathBuf,
    },
    /// Exports every definition in RabbitMQ's JSON format, to a file or "-" (standard output).
    ExportDefinitions {
        /// The file, or "-".
        path: std::path::PathBuf,
    },
    /// Sets a policy: settings for the queues and exchanges whose names match, applied at once.
    SetPolicy(PolicyArgs),
    /// Clears a policy.
    ClearPolicy {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        /// The policy's name.
        name: String,
    },
    /// Lists a vhost's policies.
    ListPolicies {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
    },
    /// Sets an operator policy: lowers numeric limits whatever the policies and arguments say.
    SetOperatorPolicy(PolicyArgs),
    /// Clears an operator policy.
    ClearOperatorPolicy {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        /// The policy's name.
        name: String,
    },
    /// Lists a vhost's operator policies.
    ListOperatorPolicies {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
    },
    /// The node: product, version, listeners, object and message totals, alarms (needs --url).
    Status,
    /// Waits until the broker's API answers and it serves clients (needs --url).
    AwaitStartup {
        /// Give up after this many seconds (exit status 2).
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Lists a vhost's queues: chosen columns, default name messages (needs --url).
    ListQueues {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        /// Columns: any field of the API's queue objects (messages_ready, consumers, policy,
        /// arguments, message_stats.publish ...).
        columns: Vec<String>,
    },
    /// Lists a vhost's exchanges: default name type (needs --url).
    ListExchanges {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        /// Columns.
        columns: Vec<String>,
    },
    /// Lists a vhost's bindings: default source_name source_kind destination_name
    /// destination_kind routing_key arguments (needs --url).
    ListBindings {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        /// Columns.
        columns: Vec<String>,
    },
    /// Lists client connections: default name user vhost state channels (needs --url).
    ListConnections {
        /// Columns.
        columns: Vec<String>,
    },
    /// Lists channels: default name user consumer_count messages_unacknowledged (needs --url).
    ListChannels {
        /// Columns.
        columns: Vec<String>,
    },
    /// Lists a vhost's consumers: default queue_name channel_pid consumer_tag ack_required
    /// prefetch_count active arguments (needs --url).
    ListConsumers {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        /// Columns.
        columns: Vec<String>,
    },
    /// Closes a client connection (named as list_connections shows it) with a reason (needs --url).
    CloseConnection {
        /// The connection's name.
        name: String,
        /// What the client is told.
        reason: String,
    },
    /// Removes a queue's ready messages (needs --url).
    PurgeQueue {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        /// The queue.
        queue: String,
    },
    /// Deletes a queue (needs --url).
    DeleteQueue {
        /// The vhost.
        #[arg(short = 'p', long = "vhost", default_value = "/")]
        vhost: String,
        /// The queue.
        queue: String,
        /// Only if it has no messages.
        #[arg(long = "if-empty")]
        if_empty: bool,
        /// Only if it has no consumers.
        #[arg(long = "if-unused")]
        if_unused: bool,
    },
}

impl CtlCommand {
    /// The command's name, as typed (`add_user`): what the log shows, never its arguments (some
    /// are passwords).
    pub fn name(&self) -> String {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(name)) => name,
            Ok(serde_json::Value::Object(map)) => map.keys().next().cloned().unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// Whether the command only goes over the management API (`--url`): live objects and the
    /// node's state, which the control socket does not carry.
    pub fn needs_http(&self) -> bool {
        use CtlCommand::*;
        match self {
            Status
            | AwaitStartup { .. }
            | ListQueues { .. }
            | ListExchanges { .. }
            | ListBindings { .. }
            | ListConnections { .. }
            | ListChannels { .. }
            | ListConsumers { .. }
            | CloseConnection { .. }
            | PurgeQueue { .. }
            | DeleteQueue { .. } => true,
            ListUsers { columns } | ListVhosts { columns } => !columns.is_empty(),
            _ => false,
        }
    }
}

/// What `set_policy` and `set_operator_policy` take, as rabbitmqctl's.
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
pub struct PolicyArgs {
    /// The vhost.
    #[arg(short = 'p', long = "vhost", default_value = "/")]
    pub vhost: String,
    /// Among matching policies the highest priority applies.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i64,
    /// queues, classic_queues, quorum_queues, streams, exchanges or all.
    #[arg(long = "apply-to", default_value = "all")]
    pub apply_to: String,
    /// The policy's name.
    pub name: String,
    /// A regular expression on queue and exchange names.
    pub pattern: String,
    /// Its settings, as JSON: '{"max-length": 1000, "dead-letter-exchange": "dlx"}'.
    pub definition: String,
}

/// Applies `command` to `broker`: the text to print, or why it failed.
pub fn execute(broker: &Broker, command: CtlCommand) -> Result<String, String> {
    use CtlCommand::*;
    let now = crate::connection::now();
    let admin = |command: AdminCommand| broker.admin(command, now).map_err(|e| e.to_string());
    let access = broker.access();
    match command {
        AddUser { username, password } => {
            admin(AdminCommand::AddUser(User::new(&username, &password)))?;
            Ok(format!("Adding user \"{username}\" ..."))
        }
        DeleteUser { username } => {
            admin(AdminCommand::DeleteUser(username.clone()))?;
            Ok(format!("Deleting user \"{username}\" ..."))
        }
        ChangePassword { username, password } => {
            admin(AdminCommand::ChangePassword {
                user: username.clone(),
                password: PasswordHash::new(&password),
            })?;
            Ok(format!("Changing password for user \"{username}\" ..."))
        }
        ClearPassword { username } => {
            admin(AdminCommand::ChangePassword { user: username.clone(), password: PasswordHash::none() })?;
            Ok(format!("Clearing password for user \"{username}\" ..."))
        }
        AuthenticateUser { username, password } => match access.authenticate(&username, &password, None) {
            Ok(()) => Ok(format!("Authenticating user \"{username}\" ...\nSuccess")),
            Err(_) => Err(format!(
                "Error: failed to authenticate user \"{username}\"\nuser '{username}' - invalid credentials"
            )),
        },
        SetUserTags { username, tags } => {
            admin(AdminCommand::SetUserTags { user: username.clone(), tags: tags.clone() })?;
            Ok(format!("Setting tags for user \"{username}\" to [{}] ...", tags.join(", ")))
        }
        ListUsers { .. } => {
            let mut out = String::from("Listing users ...\nuser\ttags");
            for user in access.users() {
                out.push_str(&format!("\n{}\t[{}]", user.name, user.tags.join(", ")));
            }
            Ok(out)
        }
        AddVhost { vhost, description, tags } => {
            let tags = tags.into_iter().filter(|t| !t.is_empty()).collect();
            admin(AdminCommand::AddVhost {
                name: vhost.clone(),
                settings: VhostSettings { description, tags, ..Default::default() },
            })?;
            Ok(format!("Adding vhost \"{vhost}\" ..."))
        }
        DeleteVhost { vhost } => {
            admin(AdminCommand::DeleteVhost(vhost.clone()))?;
            Ok(format!("Deleting vhost \"{vhost}\" ..."))
        }
        ListVhosts { .. } => {
            let mut out = String::from("Listing vhosts ...\nname");
            for (name, _) in access.vhosts() {
                out.push_str(&format!("\n{name}"));
            }
            Ok(out)
        }
        SetPermissions { vhost, username, configure, write, read } => {
            admin(AdminCommand::SetPermissions {
                user: username.clone(),
                vhost: vhost.clone(),
                configure,
                write,
                read,
            })?;
            Ok(format!("Setting permissions for user \"{username}\" in vhost \"{vhost}\" ..."))
        }
        ClearPermissions { vhost, username } => {
            admin(AdminCommand::ClearPermissions { user: username.clone(), vhost: vhost.clone() })?;
            Ok(format!("Clearing permissions for user \"{username}\" in vhost \"{vhost}\" ..."))
        }
        ListPermissions { vhost } => {
            let mut out =
                format!("Listing permissions for vhost \"{vhost}\" ...\nuser\tconfigure\twrite\tread");
            for (v, user, p) in access.all_permissions() {
                if v == vhost {
                    let (c, w, r) = (p.configure.as_str(), p.write.as_str(), p.read.as_str());
                    out.push_str(&format!("\n{user}\t{c}\t{w}\t{r}"));
                }
            }
            Ok(out)
        }
        ListUserPermissions { username } => {
            let mut out =
                format!("Listing permissions for user \"{username}\" ...\nvhost\tconfigure\twrite\tread");
            for (vhost, user, p) in access.all_permissions() {
                if user == username {
                    let (c, w, r) = (p.configure.as_str(), p.write.as_str(), p.read.as_str());
                    out.push_str(&format!("\n{vhost}\t{c}\t{w}\t{r}"));
                }
            }
            Ok(out)
        }
        SetTopicPermissions { vhost, username, exchange, write, read } => {
            let permission = TopicPermission { exchange, write, read };
            admin(AdminCommand::SetTopicPermissions {
                user: username.clone(),
                vhost: vhost.clone(),
                permission,
            })?;
            Ok(format!("Setting topic permissions for user \"{username}\" in vhost \"{vhost}\" ..."))
        }
        ClearTopicPermissions { vhost, username, exchange } => {
            admin(AdminCommand::ClearTopicPermissions {
                user: username.clone(),
                vhost: vhost.clone(),
                exchange,
            })?;
            Ok(format!("Clearing topic permissions for user \"{username}\" in vhost \"{vhost}\" ..."))
        }
        ListTopicPermissions { vhost } => {
            let mut out =
                format!("Listing topic permissions for vhost \"{vhost}\" ...\nuser\texchange\twrite\tread");
            for (v, user, p) in access.all_topic_permissions() {
                if v == vhost {
                    out.push_str(&format!("\n{user}\t{}\t{}\t{}", p.exchange, p.write, p.read));
                }
            }
            Ok(out)
        }
        SetVhostLimits { vhost, definition } => {
            let mut limits = VhostLimits::default();
            apply_limits(&definition, VhostLimits::NAMES, |n, v| limits.set(n, v))?;
            admin(AdminCommand::SetVhostLimits { vhost: vhost.clone(), limits })?;
            Ok(format!("Applying limits to vhost \"{vhost}\" ..."))
        }
        ClearVhostLimits { vhost } => {
            admin(AdminCommand::SetVhostLimits { vhost: vhost.clone(), limits: VhostLimits::default() })?;
            Ok(format!("Clearing vhost \"{vhost}\" limits ..."))
        }
        ListVhostLimits { vhost } => {
            let settings =
                access.vhost(&vhost).ok_or_else(|| format!("Error: vhost \"{vhost}\" does not exist"))?;
            let limits = serde_json::Value::Object(settings.limits.to_json());
            Ok(format!("Listing limits for vhost \"{vhost}\" ...\n{limits}"))
        }
        SetUserLimits { username, definition } => {
            let user =
                access.user(&username).ok_or_else(|| format!("Error: user \"{username}\" does not exist"))?;
            let mut limits = user.limits;
            apply_limits(&definition, UserLimits::NAMES, |n, v| limits.set(n, v))?;
            admin(AdminCommand::SetUserLimits { user: username.clone(), limits })?;
            Ok(format!("Setting user limits to \"{definition}\" for user \"{username}\" ..."))
        }
        ClearUserLimits { username, limit } => {
            let user =
                access.user(&username).ok_or_else(|| format!("Error: user \"{username}\" does not exist"))?;
            let mut limits = user.limits;
            if limit == "all" {
                limits = UserLimits::default();
            } else if limits.set(&limit, None).is_err() {
                return Err(format!(
                    "Error: unknown limit \"{limit}\" (max-connections, max-channels or all)"
                ));
            }
            admin(AdminCommand::SetUserLimits { user: username.clone(), limits })?;
            Ok(format!("Clearing \"{limit}\" limit for user \"{username}\" ..."))
        }
        SetPolicy(a) => {
            set_policy(&admin, PolicyKind::Policy, &a)?;
            let PolicyArgs { name, pattern, definition, priority, .. } = a;
            Ok(format!("Setting policy \"{name}\" for pattern \"{pattern}\" to \"{definition}\" with priority \"{priority}\" ..."))
        }
        SetOperatorPolicy(a) => {
            set_policy(&admin, PolicyKind::Operator, &a)?;
            let PolicyArgs { name, pattern, definition, priority, .. } = a;
            Ok(format!("Setting operator policy override \"{name}\" for pattern \"{pattern}\" to \"{definition}\" with priority \"{priority}\" ..."))
        }
        ClearPolicy { vhost, name } => {
            admin(AdminCommand::ClearPolicy {
                vhost: vhost.clone(),
                kind: PolicyKind::Policy,
                name: name.clone(),
            })?;
            Ok(format!("Clearing policy \"{name}\" on vhost \"{vhost}\" ..."))
        }
        ClearOperatorPolicy { vhost, name } => {
            admin(AdminCommand::ClearPolicy {
                vhost: vhost.clone(),
                kind: PolicyKind::Operator,
                name: name.clone(),
            })?;
            Ok(format!("Clearing operator policy \"{name}\" on vhost \"{vhost}\" ..."))
        }
        ImportDefinitions { path } => {
            let json = std::fs::read(&path).map_err(|e| format!("Error: reading {}: {e}", path.display()))?;
            let summary = broker.import_definitions(&json, now).map_err(|e| format!("Error:\n{e}"))?;
            Ok(format!("Importing definitions in JSON from a file at \"{}\" ...\n{summary}", path.display()))
        }
        // The text is the file: `warren ctl` writes it where it was asked to.
        ExportDefinitions { .. } => {
            String::from_utf8(broker.export_definitions_json()).map_err(|e| e.to_string())
        }
        ListPolicies { vhost } => list_policies(broker, PolicyKind::Policy, &vhost),
        ListOperatorPolicies { vhost } => list_policies(broker, PolicyKind::Operator, &vhost),
        ListUserLimits { username } => {
            let user =
                access.user(&username).ok_or_else(|| format!("Error: user \"{username}\" does not exist"))?;
            let limits = serde_json::Value::Object(user.limits.to_json());
            Ok(format!("Listing limits for user \"{username}\" ...\n{limits}"))
        }
        // `warren ctl` sends these over HTTP only; a client of another version may still ask.
        command @ (Status
        | AwaitStartup { .. }
        | ListQueues { .. }
        | ListExchanges { .. }
        | ListBindings { .. }
        | ListConnections { .. }
        | ListChannels { .. }
        | ListConsumers { .. }
        | CloseConnection { .. }
        | PurgeQueue { .. }
        | DeleteQueue { .. }) => Err(needs_url(&command)),
    }
}

/// The refusal of a command the control socket does not carry.
pub fn needs_url(command: &CtlCommand) -> String {
    format!(
        "Error: {} needs the management API: give its address with --url (or WARREN_URL), e.g. --url http://127.0.0.1:15672",
        command.name()
    )
}

fn set_policy(
    admin: &dyn Fn(AdminCommand) -> Result<(), String>,
    kind: PolicyKind,
    a: &PolicyArgs,
) -> Result<(), String> {
    let PolicyArgs { vhost, priority, apply_to, name, pattern, definition } = a;
    let json: serde_json::Value = serde_json::from_str(definition)
        .map_err(|e| format!("Error:\nValidation failed\n\ncould not parse JSON document: {e}"))?;
    let apply_to = ApplyTo::parse(apply_to).map_err(|e| format!("Error:\n{e}"))?;
    let policy =
        Policy::new(kind, name, pattern, apply_to, *priority, &json).map_err(|e| format!("Error:\n{e}"))?;
    admin(AdminCommand::SetPolicy { vhost: vhost.clone(), policy })
}

fn list_policies(broker: &Broker, kind: PolicyKind, vhost: &str) -> Result<String, String> {
    let v = broker.vhost(vhost).ok_or_else(|| format!("Error: vhost \"{vhost}\" does not exist"))?;
    let what = if kind == PolicyKind::Policy { "policies" } else { "operator policy overrides" };
    let mut out = format!(
        "Listing {what} for vhost \"{vhost}\" ...\nvhost\tname\tpattern\tapply-to\tdefinition\tpriority"
    );
    for p in v.policies(kind) {
        let definition = serde_json::Value::Object(p.definition.json().clone());
        out.push_str(&format!(
            "\n{vhost}\t{}\t{}\t{}\t{definition}\t{}",
            p.name,
            p.pattern,
            p.apply_to.as_str(),
            p.priority
        ));
    }
    Ok(out)
}

/// Applies a JSON object of limits (`{"max-connections": 10}`, a negative value: no limit)
/// through `set`; `known` names them in the refusal of an unknown one.
fn apply_limits(
    definition: &str,
    known: &[&str],
    mut set: impl FnMut(&str, Option<u64>) -> Result<(), UnknownLimit>,
) -> Result<(), String> {
    let value: serde_json::Value =
        serde_json::from_str(definition).map_err(|e| format!("Error: the limits are not valid JSON: {e}"))?;
    let object = value.as_object().ok_or("Error: the limits must be a JSON object")?;
    for (name, value) in object {
        let n = value.as_i64().ok_or_else(|| format!("Error: limit \"{name}\" must be an integer"))?;
        set(name, u64::try_from(n).ok())
            .map_err(|_| format!("Error: unknown limit \"{name}\" (known: {})", known.join(", ")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_name_of_a_command_has_no_arguments() {
        let add = CtlCommand::AddUser { username: "alice".into(), password: "s3cret".into() };
        assert_eq!(add.name(), "add_user");
        assert_eq!(CtlCommand::ListUsers { columns: vec![] }.name(), "list_users");
    }

    #[test]
    fn limits_parse_as_rabbitmqctl_takes_them() {
        let parse_limits = |definition: &str| {
            let mut limits = VhostLimits::default();
            apply_limits(definition, VhostLimits::NAMES, |n, v| limits.set(n, v))
                .map(|()| vec![limits.max_connections, limits.max_queues])
        };
        assert_eq!(parse_limits(r#"{"max-connections": 10}"#), Ok(vec![Some(10), None]));
        assert_eq!(parse_limits(r#"{"max-queues": -1, "max-connections": 0}"#), Ok(vec![Some(0), None]));
        assert!(parse_limits(r#"{"max-channels": 1}"#).is_err());
        assert!(parse_limits(r#"{"max-queues": "x"}"#).is_err());
        assert!(parse_limits("[1]").is_err());
        let limits = VhostLimits { max_connections: Some(3), max_queues: None };
        assert_eq!(serde_json::Value::Object(limits.to_json()).to_string(), r#"{"max-connections":3}"#);
    }

    #[test]
    fn commands_change_the_broker_through_its_admin_path() {
        let broker = Broker::new();
        let run = |c: CtlCommand| execute(&broker, c);
        run(CtlCommand::AddUser { username: "alice".into(), password: "pw".into() }).unwrap();
        assert!(run(CtlCommand::AddUser { username: "alice".into(), password: "x".into() }).is_err());
        run(CtlCommand::AddVhost { vhost: "prod".into(), description: String::new(), tags: vec![] }).unwrap();
        let set = CtlCommand::SetPermissions {
            vhost: "prod".into(),
            username: "alice".into(),
            configure: "^a".into(),
            write: ".*".into(),
            read: "".into(),
        };
        run(set).unwrap();
        let listed = run(CtlCommand::ListPermissions { vhost: "prod".into() }).unwrap();
        assert!(listed.ends_with("\nalice\t^a\t.*\t"), "{listed}");
        assert!(run(CtlCommand::AuthenticateUser { username: "alice".into(), password: "pw".into() }).is_ok());
        assert!(
            run(CtlCommand::AuthenticateUser { username: "alice".into(), password: "no".into() }).is_err()
        );
        run(CtlCommand::SetUserLimits {
            username: "alice".into(),
            definition: r#"{"max-channels": 4}"#.into(),
        })
        .unwrap();
        run(CtlCommand::SetUserLimits {
            username: "alice".into(),
            definition: r#"{"max-connections": 2}"#.into(),
        })
        .unwrap();
        let listed = run(CtlCommand::ListUserLimits { username: "alice".into() }).unwrap();
        assert!(listed.ends_with(r#"{"max-channels":4,"max-connections":2}"#), "merged: {listed}");
        run(CtlCommand::ClearUserLimits { username: "alice".into(), limit: "max-channels".into() }).unwrap();
        assert_eq!(
            broker.access().user("alice").unwrap().limits,
            UserLimits { max_connections: Some(2), max_channels: None }
        );
        let bad = CtlCommand::SetPermissions {
            vhost: "prod".into(),
            username: "alice".into(),
            configure: "(".into(),
            write: "".into(),
            read: "".into(),
        };
        assert!(run(bad).unwrap_err().contains("invalid regular expression"));
        run(CtlCommand::DeleteVhost { vhost: "prod".into() }).unwrap();
        assert!(broker.access().permissions("alice", "prod").is_none());
    }
}
