//! JSON pieces several endpoint groups share, shaped as RabbitMQ's `rabbit_mgmt_format` shapes
//! them: argument tables, connection and channel names, message properties.

use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value};
use warren_broker::definitions_json::{from_field_table, to_field_table};
use warren_broker::ConnectionSnapshot;
use warren_message::properties::BasicProperties;
use warren_message::{FieldTable, ShortStr};

use super::error::ApiError;

/// A field table as JSON (numbers as numbers, strings as strings, tables as objects).
pub(crate) fn table(t: &FieldTable) -> Value {
    Value::Object(from_field_table(t))
}

/// A JSON object of arguments as a field table, as RabbitMQ converts it (`to_amqp_table`).
pub(crate) fn arguments(value: Option<&Value>) -> Result<FieldTable, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(FieldTable::new()),
        Some(Value::Object(map)) => to_field_table(map).map_err(ApiError::BadRequest),
        // RabbitMQ's forms post `arguments: ""` when there are none.
        Some(Value::String(s)) if s.is_empty() => Ok(FieldTable::new()),
        Some(Value::Array(a)) if a.is_empty() => Ok(FieldTable::new()),
        Some(other) => Err(ApiError::BadRequest(format!("arguments must be an object, not {other}"))),
    }
}

/// RabbitMQ's name of a connection: `peer -> local` ("127.0.0.1:54321 -> 127.0.0.1:5672").
pub(crate) fn connection_name(c: &ConnectionSnapshot) -> String {
    let peer = c.peer.map(|p| p.to_string()).unwrap_or_else(|| "unknown".to_owned());
    match c.endpoint {
        Some(e) => format!("{peer} -> {}", e.local),
        None => peer,
    }
}

/// RabbitMQ's name of a channel: its connection's name and its number in parentheses.
pub(crate) fn channel_name(connection: &str, number: u16) -> String {
    format!("{connection} ({number})")
}

/// The short description of a connection RabbitMQ nests in channels, consumers and exclusive
/// queues (`connection_details`, `owner_pid_details`).
pub(crate) fn connection_details(c: &ConnectionSnapshot) -> Value {
    serde_json::json!({
        "name": connection_name(c),
        "peer_host": c.peer.map(|p| p.ip().to_string()),
        "peer_port": c.peer.map(|p| p.port()),
    })
}

/// A message's properties as RabbitMQ's `basic_properties` formats them: the properties that
/// are set, headers as a table; `[]` when none is (RabbitMQ's empty list).
pub(crate) fn properties(raw: &Bytes) -> Value {
    let map = message_properties(raw);
    if map.is_empty() {
        Value::Array(Vec::new())
    } else {
        Value::Object(map)
    }
}

/// The properties of a message that are set, named as the management API names them (also
/// what `warren consume --format json` prints); empty when none is, or they do not decode.
pub fn message_properties(raw: &Bytes) -> Map<String, Value> {
    let Ok(p) = BasicProperties::decode(raw) else { return Map::new() };
    let mut map = Map::new();
    let mut text = |name: &str, v: &Option<ShortStr>| {
        if let Some(v) = v {
            map.insert(name.to_owned(), Value::String(v.to_string()));
        }
    };
    text("content_type", &p.content_type);
    text("content_encoding", &p.content_encoding);
    text("correlation_id", &p.correlation_id);
    text("reply_to", &p.reply_to);
    text("expiration", &p.expiration);
    text("message_id", &p.message_id);
    text("type", &p.kind);
    text("user_id", &p.user_id);
    text("app_id", &p.app_id);
    text("cluster_id", &p.cluster_id);
    if let Some(h) = &p.headers {
        map.insert("headers".into(), table(h));
    }
    if let Some(n) = p.delivery_mode {
        map.insert("delivery_mode".into(), n.into());
    }
    if let Some(n) = p.priority {
        map.insert("priority".into(), n.into());
    }
    if let Some(n) = p.timestamp {
        map.insert("timestamp".into(), n.into());
    }
    map
}

/// A publish's `properties` object as raw AMQP properties, refused as RabbitMQ refuses them
/// (`to_basic_properties`: integers where integers go, strings elsewhere).
pub(crate) fn encode_properties(value: Option<&Value>) -> Result<Bytes, ApiError> {
    let mut p = BasicProperties::default();
    let map = match value {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(Value::Array(a)) if a.is_empty() => Map::new(),
        Some(_) => return Err(ApiError::BadRequest("properties must be an object".to_owned())),
    };
    let not = |what: &str, key: &str| ApiError::BadRequest(format!("{{{what},{key}}}"));
    let int = |key: &str, v: &Value| v.as_u64().ok_or_else(|| not("not_int", key));
    let text = |key: &str, v: &Value| v.as_str().map(ShortStr::from).ok_or_else(|| not("not_string", key));
    for (key, v) in &map {
        match key.as_str() {
            "headers" => {
                let headers = match v {
                    Value::Object(m) => to_field_table(m).map_err(ApiError::BadRequest)?,
                    _ => return Err(not("not_table", key)),
                };
                p.headers = Some(headers);
            }
            "delivery_mode" => p.delivery_mode = Some(int(key, v)? as u8),
            "priority" => p.priority = Some(int(key, v)? as u8),
            "timestamp" => p.timestamp = Some(int(key, v)?),
            "content_type" => p.content_type = Some(text(key, v)?),
            "content_encoding" => p.content_encoding = Some(text(key, v)?),
            "correlation_id" => p.correlation_id = Some(text(key, v)?),
            "reply_to" => p.reply_to = Some(text(key, v)?),
            "expiration" => p.expiration = Some(text(key, v)?),
            "message_id" => p.message_id = Some(text(key, v)?),
            "type" => p.kind = Some(text(key, v)?),
            "user_id" => p.user_id = Some(text(key, v)?),
            "app_id" => p.app_id = Some(text(key, v)?),
            "cluster_id" => p.cluster_id = Some(text(key, v)?),
            // RabbitMQ ignores properties it does not know.
            _ => {}
        }
    }
    let mut out = BytesMut::new();
    p.encode(&mut out);
    Ok(out.freeze())
}

/// A boolean body field as RabbitMQ's `parse_bool` reads it: `true`, `false`, `"true"`,
/// `"false"`, absent; anything else is refused (`["not_boolean", value]`).
pub(crate) fn boolean(v: Option<&Value>) -> Result<bool, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" => Ok(true),
        Some(Value::String(s)) if s == "false" => Ok(false),
        Some(other) => {
            Err(ApiError::bad_request_as("bad_request", serde_json::json!(["not_boolean", other])))
        }
    }
}
