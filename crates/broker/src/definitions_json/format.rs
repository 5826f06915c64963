//! RabbitMQ's definitions JSON, as `rabbitmqctl export_definitions` and the management API's
//! `GET /api/definitions` write it and `import_definitions` / `load_definitions` read it: one
//! serde type per kind of entry. Reading is lenient where RabbitMQ's exports differ between
//! versions (tags as a list or a comma-separated string, limits as an object or a list of
//! pairs, vhost settings at the top or under `metadata`); unknown fields are ignored.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// A whole definitions file. Every category may be missing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DefinitionsFile {
    /// The RabbitMQ version that wrote the file (decides the hash of users without
    /// `hashing_algorithm`: MD5 before 3.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbit_version: Option<String>,
    /// The same, by its newer name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbitmq_version: Option<String>,
    /// The broker that wrote the file (`RabbitMQ`, `Warren`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    /// Its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_version: Option<String>,
    /// Users with their password hashes.
    #[serde(default)]
    pub users: Vec<UserEntry>,
    /// Vhosts.
    #[serde(default)]
    pub vhosts: Vec<VhostEntry>,
    /// Permissions of users in vhosts.
    #[serde(default)]
    pub permissions: Vec<PermissionEntry>,
    /// Topic permissions of users on exchanges.
    #[serde(default)]
    pub topic_permissions: Vec<TopicPermissionEntry>,
    /// Runtime parameters: vhost limits, operator policies, plugins' settings.
    #[serde(default)]
    pub parameters: Vec<ParameterEntry>,
    /// Global runtime parameters (`cluster_name`...).
    #[serde(default)]
    pub global_parameters: Vec<GlobalParameterEntry>,
    /// Policies.
    #[serde(default)]
    pub policies: Vec<PolicyEntry>,
    /// Queues.
    #[serde(default)]
    pub queues: Vec<QueueEntry>,
    /// Exchanges.
    #[serde(default)]
    pub exchanges: Vec<ExchangeEntry>,
    /// Bindings.
    #[serde(default)]
    pub bindings: Vec<BindingEntry>,
}

/// A user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserEntry {
    /// The login name.
    pub name: String,
    /// Base64 of the 4-byte salt followed by the hash; "" for no password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// A password in clear, which RabbitMQ also accepts (it is hashed on import).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `rabbit_password_hashing_sha256`, `_sha512` or `_md5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashing_algorithm: Option<String>,
    /// Tags; a list (RabbitMQ 3.9 and later) or a comma-separated string (older).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    /// `max-connections`, `max-channels`; absent: an existing user keeps its limits.
    #[serde(default, deserialize_with = "loose_map", skip_serializing_if = "Option::is_none")]
    pub limits: Option<Map<String, Value>>,
}

/// Tags as either form RabbitMQ writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Tags {
    /// `["administrator", "monitoring"]`.
    List(Vec<String>),
    /// `"administrator,monitoring"`.
    Text(String),
}

impl Tags {
    /// The tags, trimmed, without empty ones.
    pub fn to_vec(&self) -> Vec<String> {
        let items: Vec<&str> = match self {
            Tags::List(list) => list.iter().map(String::as_str).collect(),
            Tags::Text(text) => text.split(',').collect(),
        };
        items.into_iter().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()
    }
}

/// A vhost. RabbitMQ 3.10's `rabbitmqctl` writes description and tags under `metadata`; newer
/// versions also at the top; the management API of 3.10 writes the name only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VhostEntry {
    /// The name.
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Operators' tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    /// Description, tags and default queue type, as RabbitMQ 3.10 exports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<VhostMetadata>,
    /// The queue type of declares that name none (newer RabbitMQ); read, not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_queue_type: Option<String>,
}

/// A vhost's `metadata`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VhostMetadata {
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Operators' tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    /// The queue type of declares that name none; read, not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_queue_type: Option<String>,
}

/// A user's permissions in a vhost: three regular expressions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PermissionEntry {
    /// The user.
    pub user: String,
    /// The vhost.
    pub vhost: String,
    /// Names the user may declare and delete.
    pub configure: String,
    /// Names the user may publish to and bind to.
    pub write: String,
    /// Names the user may consume from and bind from.
    pub read: String,
}

/// A user's topic permissions on one exchange of a vhost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TopicPermissionEntry {
    /// The user.
    pub user: String,
    /// The vhost.
    pub vhost: String,
    /// The topic exchange.
    pub exchange: String,
    /// Routing keys the user may publish with.
    pub write: String,
    /// Binding keys the user may bind with.
    pub read: String,
}

/// A runtime parameter of a vhost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParameterEntry {
    /// The vhost.
    pub vhost: String,
    /// What it configures: `vhost-limits`, `operator_policy`, `federation-upstream`, `shovel`...
    pub component: String,
    /// Its name (`limits` for vhost limits).
    pub name: String,
    /// Its value, as the component defines it.
    pub value: Value,
}

/// A global runtime parameter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GlobalParameterEntry {
    /// Its name (`cluster_name`, `internal_cluster_id`...).
    pub name: String,
    /// Its value.
    pub value: Value,
}

/// A policy (or, from the parameters with component `operator_policy`, an operator policy).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyEntry {
    /// The vhost.
    pub vhost: String,
    /// The name.
    pub name: String,
    /// A regular expression on queue or exchange names.
    pub pattern: String,
    /// `all`, `queues`, `classic_queues`, `quorum_queues`, `streams` or `exchanges`.
    #[serde(rename = "apply-to", default = "apply_to_all")]
    pub apply_to: String,
    /// The keys it sets (`message-ttl`, `max-length`...); RabbitMQ 3.10's `rabbitmqctl` writes
    /// an operator policy's as a list of pairs.
    #[serde(deserialize_with = "required_loose_map")]
    pub definition: Map<String, Value>,
    /// The highest priority applies when several patterns match.
    #[serde(default)]
    pub priority: i64,
}

fn apply_to_all() -> String {
    "all".to_owned()
}

/// A queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// The name.
    pub name: String,
    /// The vhost.
    pub vhost: String,
    /// Survives a restart.
    #[serde(default = "yes")]
    pub durable: bool,
    /// Deleted when its last consumer goes.
    #[serde(default)]
    pub auto_delete: bool,
    /// Declare arguments.
    #[serde(default, deserialize_with = "arguments")]
    pub arguments: Map<String, Value>,
    /// `classic`, `quorum` or `stream` (newer exports); the `x-queue-type` argument decides.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// An exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExchangeEntry {
    /// The name.
    pub name: String,
    /// The vhost.
    pub vhost: String,
    /// `direct`, `fanout`, `topic`, `headers`, `x-consistent-hash`, `x-delayed-message`,
    /// `x-message-deduplication`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Survives a restart.
    #[serde(default = "yes")]
    pub durable: bool,
    /// Deleted when its last binding goes.
    #[serde(default)]
    pub auto_delete: bool,
    /// Clients cannot publish to it directly.
    #[serde(default)]
    pub internal: bool,
    /// Declare arguments.
    #[serde(default, deserialize_with = "arguments")]
    pub arguments: Map<String, Value>,
}

/// A binding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BindingEntry {
    /// The exchange messages come from.
    pub source: String,
    /// The vhost.
    pub vhost: String,
    /// The queue or exchange they go to.
    pub destination: String,
    /// `queue` or `exchange`.
    pub destination_type: String,
    /// The binding key.
    #[serde(default)]
    pub routing_key: String,
    /// Binding arguments.
    #[serde(default, deserialize_with = "arguments")]
    pub arguments: Map<String, Value>,
}

fn yes() -> bool {
    true
}

/// An object, or what RabbitMQ writes for one in some places: `[]` when empty, a list of
/// `[key, value]` pairs (vhost limits, an operator policy's definition in 3.10's exports).
fn loose_map<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Map<String, Value>>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    value.map(|v| map_from_loose(v).map_err(serde::de::Error::custom)).transpose()
}

fn required_loose_map<'de, D: Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    map_from_loose(Value::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// Arguments: an object, or `[]` (RabbitMQ reads an empty list as no arguments).
fn arguments<'de, D: Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Map::new()),
        Value::Object(map) => Ok(map),
        Value::Array(list) if list.is_empty() => Ok(Map::new()),
        other => Err(serde::de::Error::custom(format!("expected an object of arguments, got {other}"))),
    }
}

/// See [`loose_map`].
pub(crate) fn map_from_loose(value: Value) -> Result<Map<String, Value>, String> {
    match value {
        Value::Object(map) => Ok(map),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Array(pair) if pair.len() == 2 => match &pair[0] {
                    Value::String(key) => Ok((key.clone(), pair[1].clone())),
                    _ => Err(format!("expected a [key, value] pair, got {}", Value::Array(pair))),
                },
                other => Err(format!("expected a [key, value] pair, got {other}")),
            })
            .collect(),
        other => Err(format!("expected an object, got {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_read_in_both_forms() {
        let list: UserEntry = serde_json::from_str(r#"{"name":"a","tags":["administrator"," x "]}"#).unwrap();
        assert_eq!(list.tags.unwrap().to_vec(), ["administrator", "x"]);
        let text: UserEntry =
            serde_json::from_str(r#"{"name":"a","tags":"administrator, monitoring,"}"#).unwrap();
        assert_eq!(text.tags.unwrap().to_vec(), ["administrator", "monitoring"]);
        let none: UserEntry = serde_json::from_str(r#"{"name":"a","tags":""}"#).unwrap();
        assert!(none.tags.unwrap().to_vec().is_empty());
    }

    #[test]
    fn limits_and_definitions_read_as_objects_or_pairs() {
        let user: UserEntry = serde_json::from_str(r#"{"name":"a","limits":[]}"#).unwrap();
        assert_eq!(user.limits, Some(Map::new()));
        let user: UserEntry = serde_json::from_str(r#"{"name":"a"}"#).unwrap();
        assert_eq!(user.limits, None);
        let policy: PolicyEntry = serde_json::from_str(
            r#"{"vhost":"/","name":"p","pattern":".*","definition":[["max-length",5000]]}"#,
        )
        .unwrap();
        assert_eq!(policy.definition["max-length"], 5000);
        assert_eq!((policy.apply_to.as_str(), policy.priority), ("all", 0));
        let bad = serde_json::from_str::<PolicyEntry>(
            r#"{"vhost":"/","name":"p","pattern":".*","definition":[1]}"#,
        );
        assert!(bad.unwrap_err().to_string().contains("expected a [key, value] pair, got 1"));
    }

    #[test]
    fn unknown_fields_are_ignored_and_defaults_are_rabbitmqs() {
        let q: QueueEntry =
            serde_json::from_str(r#"{"name":"q","vhost":"/","arguments":[],"leader":"x","type":"quorum"}"#)
                .unwrap();
        assert!(q.durable && !q.auto_delete && q.arguments.is_empty());
        assert_eq!(q.kind.as_deref(), Some("quorum"));
        let v: VhostEntry = serde_json::from_str(
            r#"{"name":"v","limits":[["max-queues",5]],"metadata":{"description":"d","tags":["a"],"default_queue_type":"quorum"}}"#,
        )
        .unwrap();
        assert_eq!(v.metadata.unwrap().description.as_deref(), Some("d"));
    }
}
