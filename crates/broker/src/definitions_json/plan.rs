//! Checking a whole definitions file against the broker before anything changes: each entry
//! becomes the command that will apply it, is skipped with a reason (as RabbitMQ skips `amq.*`
//! names and existing queues), or becomes a [`Problem`] naming it. A file with any problem
//! changes nothing.
//!
//! The steps come in the order RabbitMQ 3.10's `rabbit_definitions:apply_defs` applies them:
//! users, vhosts, permissions, topic permissions, exchanges, global parameters, policies,
//! parameters, queues, bindings.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value};
use warren_message::{FieldTable, ShortStr};

use super::arguments::to_field_table;
use super::error::{ImportSummary, Problem};
use super::format::*;
use super::policies;
use crate::access::{
    HashAlgorithm, PasswordHash, Permissions, TopicPermission, User, UserLimits, VhostLimits, VhostSettings,
};
use crate::admin::AdminCommand;
use crate::broker::Broker;
use crate::exchange::ExchangeKind;
use crate::vhost::{BindingSpec, Command, DestinationKind, ExchangeSpec, QueueSpec};

/// What applying one entry does.
#[derive(Debug)]
pub(crate) enum Step {
    /// A change to users, vhosts, permissions or limits.
    Admin(AdminCommand),
    /// A declare or binding in a vhost.
    Topology {
        /// The vhost.
        vhost: String,
        /// The command.
        command: Command,
    },
    /// A policy or an operator policy (see the `policies` module).
    Policy {
        /// From a parameter with component `operator_policy`.
        operator: bool,
        /// The policy.
        policy: PolicyEntry,
    },
}

/// The checked file: its steps in order, each with the entry it comes from, and what applying
/// them all will have done.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub(crate) steps: Vec<(String, Step)>,
    pub(crate) summary: ImportSummary,
}

/// The exchanges every vhost has from its creation.
const STANDARD_EXCHANGES: [(&str, ExchangeKind); 5] = [
    ("amq.direct", ExchangeKind::Direct),
    ("amq.fanout", ExchangeKind::Fanout),
    ("amq.topic", ExchangeKind::Topic),
    ("amq.headers", ExchangeKind::Headers),
    ("amq.match", ExchangeKind::Headers),
];

/// Checks `file` against `broker`: the plan, or every problem found.
pub(crate) fn plan(broker: &Broker, file: &DefinitionsFile) -> Result<Plan, Vec<Problem>> {
    let mut planner = Planner {
        broker,
        plan: Plan::default(),
        problems: Vec::new(),
        new_users: HashSet::new(),
        new_vhosts: HashSet::new(),
        new_exchanges: HashMap::new(),
        new_queues: HashSet::new(),
        max_queues: HashMap::new(),
    };
    planner.users(file);
    planner.vhosts(file);
    planner.permissions(file);
    planner.topic_permissions(file);
    planner.exchanges(file);
    planner.global_parameters(file);
    planner.policies(file);
    planner.parameters(file);
    planner.queues(file);
    planner.bindings(file);
    if planner.problems.is_empty() {
        Ok(planner.plan)
    } else {
        Err(planner.problems)
    }
}

struct Planner<'a> {
    broker: &'a Broker,
    plan: Plan,
    problems: Vec<Problem>,
    /// Users and vhosts the file adds.
    new_users: HashSet<String>,
    new_vhosts: HashSet<String>,
    /// Exchanges the file declares, by (vhost, name), with the type they route as.
    new_exchanges: HashMap<(String, String), ExchangeKind>,
    /// Queues the file declares, by (vhost, name).
    new_queues: HashSet<(String, String)>,
    /// The `max-queues` the file sets, by vhost (None: no limit).
    max_queues: HashMap<String, Option<u64>>,
}

impl<'a> Planner<'a> {
    fn broker(&self) -> &'a Broker {
        self.broker
    }

    fn problem(&mut self, entry: &str, reason: impl Into<String>) {
        self.problems.push(Problem { entry: entry.to_owned(), reason: reason.into() });
    }

    fn step(&mut self, entry: String, step: Step) {
        self.plan.steps.push((entry, step));
    }

    fn skip(&mut self, entry: &str, reason: &str) {
        self.plan.summary.skipped.push(format!("{entry}: {reason}"));
    }

    fn user_exists(&self, name: &str) -> bool {
        self.new_users.contains(name) || self.broker().access().user(name).is_some()
    }

    fn vhost_exists(&self, name: &str) -> bool {
        self.new_vhosts.contains(name) || self.broker().vhost(name).is_some()
    }

    /// Checks the vhost of an entry; false (with a problem) if it exists neither in the broker
    /// nor in the file.
    fn check_vhost(&mut self, entry: &str, vhost: &str) -> bool {
        if self.vhost_exists(vhost) {
            return true;
        }
        self.problem(entry, format!("vhost '{vhost}' does not exist and the file does not add it"));
        false
    }

    fn users(&mut self, file: &DefinitionsFile) {
        let version = file.rabbitmq_version.as_deref().or(file.rabbit_version.as_deref());
        for (i, u) in file.users.iter().enumerate() {
            let entry = label("users", i, u);
            match self.user(u, version) {
                Ok(user) => {
                    self.new_users.insert(user.name.clone());
                    self.plan.summary.users += 1;
                    self.step(entry, Step::Admin(AdminCommand::PutUser(user)));
                }
                Err(reason) => self.problem(&entry, reason),
            }
        }
    }

    fn user(&self, u: &UserEntry, version: Option<&str>) -> Result<User, String> {
        if u.name.is_empty() {
            return Err("a user needs a name".to_owned());
        }
        let algorithm = match &u.hashing_algorithm {
            Some(name) => HashAlgorithm::from_rabbit_name(name).ok_or_else(|| {
                format!(
                    "unknown hashing_algorithm '{name}' (Warren knows rabbit_password_hashing_sha256, \
                     rabbit_password_hashing_sha512 and rabbit_password_hashing_md5)"
                )
            })?,
            None => default_hashing(version),
        };
        let password = match (&u.password_hash, &u.password) {
            (Some(_), Some(_)) => return Err("has both password and password_hash; give one".to_owned()),
            (Some(hash), None) => password_hash(hash, algorithm)?,
            (None, Some(password)) => PasswordHash::new(password),
            (None, None) => PasswordHash::none(),
        };
        let limits = match &u.limits {
            // A user that exists keeps its limits when the file says nothing of them.
            None => self.broker().access().user(&u.name).map(|existing| existing.limits).unwrap_or_default(),
            Some(map) => {
                let [max_connections, max_channels] = limits(map, ["max-connections", "max-channels"])?;
                UserLimits { max_connections, max_channels }
            }
        };
        let tags = u.tags.as_ref().map(Tags::to_vec).unwrap_or_default();
        Ok(User { name: u.name.clone(), password, tags, limits })
    }

    fn vhosts(&mut self, file: &DefinitionsFile) {
        for (i, v) in file.vhosts.iter().enumerate() {
            let entry = label("vhosts", i, v);
            if v.name.is_empty() {
                self.problem(&entry, "a vhost needs a name");
                continue;
            }
            let metadata = v.metadata.clone().unwrap_or_default();
            let description = v.description.clone().or(metadata.description).unwrap_or_default();
            let tags = v.tags.as_ref().or(metadata.tags.as_ref()).map(Tags::to_vec).unwrap_or_default();
            // Limits come from `vhost-limits` parameters; a vhost that exists keeps its own.
            let limits = self.broker().access().vhost(&v.name).map(|s| s.limits).unwrap_or_default();
            self.new_vhosts.insert(v.name.clone());
            self.plan.summary.vhosts += 1;
            let settings = VhostSettings { description, tags, limits };
            self.step(entry, Step::Admin(AdminCommand::PutVhost { name: v.name.clone(), settings }));
        }
    }

    fn check_user(&mut self, entry: &str, user: &str) -> bool {
        if self.user_exists(user) {
            return true;
        }
        self.problem(entry, format!("user '{user}' does not exist and the file does not add it"));
        false
    }

    fn permissions(&mut self, file: &DefinitionsFile) {
        for (i, p) in file.permissions.iter().enumerate() {
            let entry = label("permissions", i, p);
            let known = self.check_user(&entry, &p.user) & self.check_vhost(&entry, &p.vhost);
            if let Err(e) = Permissions::new(&p.configure, &p.write, &p.read) {
                self.problem(
                    &entry,
                    format!("a permission pattern is not a valid regular expression: {}", one_line(&e)),
                );
                continue;
            }
            if known {
                self.plan.summary.permissions += 1;
                let command = AdminCommand::SetPermissions {
                    user: p.user.clone(),
                    vhost: p.vhost.clone(),
                    configure: p.configure.clone(),
                    write: p.write.clone(),
                    read: p.read.clone(),
                };
                self.step(entry, Step::Admin(command));
            }
        }
    }

    fn topic_permissions(&mut self, file: &DefinitionsFile) {
        for (i, p) in file.topic_permissions.iter().enumerate() {
            let entry = label("topic_permissions", i, p);
            let known = self.check_user(&entry, &p.user) & self.check_vhost(&entry, &p.vhost);
            let permission = TopicPermission {
                exchange: p.exchange.clone(),
                write: p.write.clone(),
                read: p.read.clone(),
            };
            if let Err(e) = permission.validate() {
                self.problem(
                    &entry,
                    format!("a topic permission pattern is not a valid regular expression: {}", one_line(&e)),
                );
                continue;
            }
            if known {
                self.plan.summary.topic_permissions += 1;
                let command = AdminCommand::SetTopicPermissions {
                    user: p.user.clone(),
                    vhost: p.vhost.clone(),
                    permission,
                };
                self.step(entry, Step::Admin(command));
            }
        }
    }

    /// The type exchange `name` of `vhost` routes as, once the file's exchanges are declared.
    fn exchange_routing(&self, vhost: &str, name: &str) -> Option<ExchangeKind> {
        if let Some(kind) = self.new_exchanges.get(&(vhost.to_owned(), name.to_owned())) {
            return Some(*kind);
        }
        match self.broker().vhost(vhost) {
            Some(v) => v.exchange(name).ok().map(|e| e.routing),
            None => STANDARD_EXCHANGES.iter().find(|(n, _)| *n == name).map(|(_, kind)| *kind),
        }
    }

    fn exchanges(&mut self, file: &DefinitionsFile) {
        for (i, x) in file.exchanges.iter().enumerate() {
            let entry = label("exchanges", i, x);
            if !self.check_vhost(&entry, &x.vhost) {
                continue;
            }
            if x.name.is_empty() {
                self.skip(&entry, "the default exchange is never imported");
                continue;
            }
            if x.name.starts_with("amq.") {
                self.skip(&entry, "exchange names beginning with 'amq.' are reserved; not imported");
                continue;
            }
            if self.exchange_routing(&x.vhost, &x.name).is_some() {
                // RabbitMQ does not compare an existing exchange with the file's.
                self.plan.summary.exchanges_existing += 1;
                continue;
            }
            match exchange_spec(x) {
                Ok((spec, routing)) => {
                    self.new_exchanges.insert((x.vhost.clone(), x.name.clone()), routing);
                    self.plan.summary.exchanges_declared += 1;
                    let command = Command::DeclareExchange(spec);
                    self.step(entry, Step::Topology { vhost: x.vhost.clone(), command });
                }
                Err(reason) => self.problem(&entry, reason),
            }
        }
    }

    fn global_parameters(&mut self, file: &DefinitionsFile) {
        for (i, p) in file.global_parameters.iter().enumerate() {
            // RabbitMQ's own bookkeeping (`internal_cluster_id`) is not the operator's.
            if !p.name.starts_with("internal") {
                let entry = label("global_parameters", i, p);
                self.skip(&entry, "global parameters are not supported by Warren; not imported");
            }
        }
    }

    fn policies(&mut self, file: &DefinitionsFile) {
        for (i, p) in file.policies.iter().enumerate() {
            let entry = label("policies", i, p);
            self.policy(entry, p.clone(), false);
        }
    }

    fn policy(&mut self, entry: String, policy: PolicyEntry, operator: bool) {
        if !self.check_vhost(&entry, &policy.vhost) {
            return;
        }
        if let Err(reason) = policies::check(&policy, operator) {
            self.problem(&entry, reason);
            return;
        }
        self.plan.summary.policies += 1;
        self.step(entry, Step::Policy { operator, policy });
    }

    fn parameters(&mut self, file: &DefinitionsFile) {
        for (i, p) in file.parameters.iter().enumerate() {
            let entry = label("parameters", i, p);
            match p.component.as_str() {
                "vhost-limits" => {
                    if !self.check_vhost(&entry, &p.vhost) {
                        continue;
                    }
                    let limits = match super::format::map_from_loose(p.value.clone())
                        .and_then(|map| limits(&map, ["max-connections", "max-queues"]))
                    {
                        Ok([max_connections, max_queues]) => VhostLimits { max_connections, max_queues },
                        Err(reason) => {
                            self.problem(&entry, reason);
                            continue;
                        }
                    };
                    self.max_queues.insert(p.vhost.clone(), limits.max_queues);
                    self.plan.summary.vhost_limits += 1;
                    let command = AdminCommand::SetVhostLimits { vhost: p.vhost.clone(), limits };
                    self.step(entry, Step::Admin(command));
                }
                "operator_policy" => match operator_policy(p) {
                    Ok(policy) => self.policy(entry, policy, true),
                    Err(reason) => self.problem(&entry, reason),
                },
                other => {
                    let reason = format!(
                        "parameters of component '{other}' are not supported by Warren; not imported"
                    );
                    self.skip(&entry, &reason);
                }
            }
        }
    }

    fn queues(&mut self, file: &DefinitionsFile) {
        let mut added: HashMap<String, u64> = HashMap::new();
        for (i, q) in file.queues.iter().enumerate() {
            let entry = label("queues", i, q);
            if !self.check_vhost(&entry, &q.vhost) {
                continue;
            }
            if q.name.is_empty() || q.name.len() > 255 {
                self.problem(&entry, "a queue name is 1 to 255 bytes long");
                continue;
            }
            if q.name.starts_with("amq.") {
                self.skip(&entry, "queue names beginning with 'amq.' are reserved; not imported");
                continue;
            }
            let key = (q.vhost.clone(), q.name.clone());
            let exists = self.broker().vhost(&q.vhost).is_some_and(|v| v.queue(&q.name).is_ok());
            if exists || self.new_queues.contains(&key) {
                // RabbitMQ does not compare an existing queue with the file's.
                self.plan.summary.queues_existing += 1;
                continue;
            }
            let arguments = match to_field_table(&q.arguments) {
                Ok(arguments) => arguments,
                Err(reason) => {
                    self.problem(&entry, reason);
                    continue;
                }
            };
            if let Err((arg, reason)) = crate::args::validate_queue_args(&arguments) {
                self.problem(&entry, format!("invalid argument '{arg}': {reason}"));
                continue;
            }
            self.new_queues.insert(key);
            *added.entry(q.vhost.clone()).or_default() += 1;
            self.plan.summary.queues_declared += 1;
            let spec = QueueSpec {
                name: ShortStr::from(q.name.as_str()),
                durable: q.durable,
                auto_delete: q.auto_delete,
                arguments,
                ..QueueSpec::default()
            };
            self.step(entry, Step::Topology { vhost: q.vhost.clone(), command: Command::DeclareQueue(spec) });
        }
        let mut added: Vec<_> = added.into_iter().collect();
        added.sort();
        for (vhost, count) in added {
            let existing = self.broker().vhost(&vhost);
            let limit = match self.max_queues.get(&vhost) {
                Some(limit) => *limit,
                None => existing.as_ref().and_then(|v| v.max_queues()),
            };
            let now = existing.map_or(0, |v| v.queues().len() as u64);
            if let Some(limit) = limit.filter(|&limit| now + count > limit) {
                self.problem(
                    &format!("queues of vhost '{vhost}'"),
                    format!("adding {count} queue(s) would exceed the vhost's limit of {limit} queue(s); it has {now}"),
                );
            }
        }
    }

    fn bindings(&mut self, file: &DefinitionsFile) {
        for (i, b) in file.bindings.iter().enumerate() {
            let entry = label("bindings", i, b);
            if !self.check_vhost(&entry, &b.vhost) {
                continue;
            }
            match self.binding(b) {
                Ok(spec) => {
                    self.plan.summary.bindings += 1;
                    self.step(entry, Step::Topology { vhost: b.vhost.clone(), command: Command::Bind(spec) });
                }
                Err(reason) => self.problem(&entry, reason),
            }
        }
    }

    fn binding(&self, b: &BindingEntry) -> Result<BindingSpec, String> {
        let missing = |kind: &str, name: &str| {
            format!("{kind} '{name}' does not exist and the file does not declare it")
        };
        if b.source.is_empty() {
            return Err("bindings of the default exchange are implicit and cannot be imported".to_owned());
        }
        let routing = self
            .exchange_routing(&b.vhost, &b.source)
            .ok_or_else(|| missing("source exchange", &b.source))?;
        let destination_kind = match b.destination_type.as_str() {
            "queue" => {
                let key = (b.vhost.clone(), b.destination.clone());
                let exists = self.new_queues.contains(&key)
                    || self.broker().vhost(&b.vhost).is_some_and(|v| v.queue(&b.destination).is_ok());
                if !exists {
                    return Err(missing("destination queue", &b.destination));
                }
                DestinationKind::Queue
            }
            "exchange" => {
                if b.destination.is_empty() {
                    return Err("the default exchange cannot be bound to".to_owned());
                }
                if self.exchange_routing(&b.vhost, &b.destination).is_none() {
                    return Err(missing("destination exchange", &b.destination));
                }
                DestinationKind::Exchange
            }
            other => return Err(format!("destination_type is 'queue' or 'exchange', not '{other}'")),
        };
        if b.routing_key.len() > 255 {
            return Err("the routing key is longer than 255 bytes".to_owned());
        }
        let arguments = to_field_table(&b.arguments)?;
        crate::vhost::check_binding_args(routing, &b.routing_key, &arguments).map_err(|e| e.to_string())?;
        Ok(BindingSpec {
            source: ShortStr::from(b.source.as_str()),
            destination: ShortStr::from(b.destination.as_str()),
            destination_kind,
            key: ShortStr::from(b.routing_key.as_str()),
            arguments,
        })
    }
}

/// The declare of an exchange entry and the type it will route as, checked as a declare would
/// check it.
fn exchange_spec(x: &ExchangeEntry) -> Result<(ExchangeSpec, ExchangeKind), String> {
    if x.name.len() > 255 {
        return Err("an exchange name is at most 255 bytes long".to_owned());
    }
    let kind = ExchangeKind::parse(&x.kind).ok_or_else(|| {
        format!(
            "unknown exchange type '{}' (Warren has direct, fanout, topic, headers, x-consistent-hash, x-delayed-message and x-message-deduplication)",
            x.kind
        )
    })?;
    let arguments: FieldTable = to_field_table(&x.arguments)?;
    if let Some((arg, type_name)) = crate::args::exchange_arg_type_error(&arguments) {
        return Err(format!("invalid type '{type_name}' for argument '{arg}'"));
    }
    kind.validate_arguments(&arguments).map_err(|e| e.to_string())?;
    let routing = kind.routing(&arguments);
    let spec = ExchangeSpec {
        name: ShortStr::from(x.name.as_str()),
        kind: ShortStr::from(x.kind.as_str()),
        passive: false,
        durable: x.durable,
        auto_delete: x.auto_delete,
        internal: x.internal,
        arguments,
    };
    Ok((spec, routing))
}

/// An operator policy from its parameter: the value holds pattern, definition, priority and
/// apply-to.
fn operator_policy(p: &ParameterEntry) -> Result<PolicyEntry, String> {
    let Value::Object(value) = &p.value else {
        return Err(format!("an operator policy's value is an object, not {}", p.value));
    };
    let mut full = value.clone();
    full.insert("vhost".to_owned(), Value::String(p.vhost.clone()));
    full.insert("name".to_owned(), Value::String(p.name.clone()));
    serde_json::from_value(Value::Object(full)).map_err(|e| e.to_string())
}

/// The hash of users without `hashing_algorithm`: MD5 in files of RabbitMQ before 3.6, SHA-256
/// after, as RabbitMQ decides.
fn default_hashing(version: Option<&str>) -> HashAlgorithm {
    let md5_era = ["3.0.", "3.1.", "3.2.", "3.3.", "3.4.", "3.5."];
    match version {
        Some(v) if md5_era.iter().any(|prefix| v.starts_with(prefix)) => HashAlgorithm::Md5,
        _ => HashAlgorithm::Sha256,
    }
}

fn password_hash(encoded: &str, algorithm: HashAlgorithm) -> Result<PasswordHash, String> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes =
        engine.decode(encoded.trim()).map_err(|e| format!("password_hash is not valid base64 ({e})"))?;
    let expected = 4 + algorithm.digest_len();
    if !bytes.is_empty() && bytes.len() != expected {
        return Err(format!(
            "password_hash is {} bytes; a {} hash is {expected} (a 4-byte salt, then the hash)",
            bytes.len(),
            algorithm.rabbit_name()
        ));
    }
    Ok(PasswordHash { algorithm, bytes })
}

/// Limits from an object of them (`max-connections`...): integers, a negative one meaning no
/// limit as in RabbitMQ; any other key is refused.
fn limits<const N: usize>(map: &Map<String, Value>, keys: [&str; N]) -> Result<[Option<u64>; N], String> {
    let mut out = [None; N];
    for (key, value) in map {
        let Some(slot) = keys.iter().position(|k| k == key) else {
            return Err(format!("unknown limit '{key}' (known: {})", keys.join(", ")));
        };
        let n = value.as_i64().ok_or_else(|| format!("limit '{key}' must be an integer, not {value}"))?;
        out[slot] = u64::try_from(n).ok();
    }
    Ok(out)
}

/// How an entry is named in problems and in the log: its category and index, then whichever
/// of its name, user, component, exchange, source and destination it has, and its vhost.
pub(crate) fn label(category: &str, index: usize, entry: &impl Serialize) -> String {
    let value = serde_json::to_value(entry).unwrap_or_default();
    label_of_value(category, index, &value)
}

/// [`label`] of an entry as it stands in the file.
pub(crate) fn label_of_value(category: &str, index: usize, value: &Value) -> String {
    let field = |name: &str| value.get(name).and_then(Value::as_str);
    let mut text = format!("{category}[{index}]");
    if let Some(name) = field("name") {
        text.push_str(&format!(" '{name}'"));
    }
    let details: Vec<String> = ["user", "component", "exchange", "source", "destination"]
        .iter()
        .filter_map(|key| field(key).map(|v| format!("{key} '{v}'")))
        .collect();
    if !details.is_empty() {
        text.push_str(&format!(" ({})", details.join(", ")));
    }
    if let Some(vhost) = field("vhost") {
        text.push_str(&format!(" in vhost '{vhost}'"));
    }
    text
}

/// A regex error on one line (the crate's spans several, with a caret under the mistake).
fn one_line(e: &impl std::fmt::Display) -> String {
    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}
