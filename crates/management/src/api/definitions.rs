//! `/api/definitions`: the whole broker's definitions (GET exports, POST imports), and one
//! vhost's (`/api/definitions/{vhost}`: its parameters, policies, queues, exchanges and
//! bindings). The API's export has the fields RabbitMQ 3.10's management plugin writes (fewer
//! than `warren ctl export_definitions`, which follows `rabbitmqctl`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::vhosts::now;
use super::ApiContext;

pub(super) fn routes() -> Router<Arc<ApiContext>> {
    Router::new()
        .route("/api/definitions", get(export).post(import))
        .route("/api/definitions/{vhost}", get(export_vhost).post(import_vhost))
}

/// The fields each section of the API's export keeps (RabbitMQ's `rw_state`).
const API_FIELDS: [(&str, &[&str]); 10] = [
    ("users", &["name", "password_hash", "hashing_algorithm", "tags", "limits"]),
    ("vhosts", &["name"]),
    ("permissions", &["user", "vhost", "configure", "write", "read"]),
    ("topic_permissions", &["user", "vhost", "exchange", "write", "read"]),
    ("parameters", &["vhost", "component", "name", "value"]),
    ("global_parameters", &["name", "value"]),
    ("policies", &["vhost", "name", "pattern", "definition", "priority", "apply-to"]),
    ("queues", &["name", "vhost", "durable", "auto_delete", "arguments"]),
    ("exchanges", &["name", "vhost", "type", "durable", "auto_delete", "internal", "arguments"]),
    ("bindings", &["source", "vhost", "destination", "destination_type", "routing_key", "arguments"]),
];

fn exported(ctx: &ApiContext) -> Result<Value, ApiError> {
    let mut all: Value = serde_json::from_slice(&ctx.broker.export_definitions_json())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Some(sections) = all.as_object_mut() {
        for (section, fields) in API_FIELDS {
            if let Some(Value::Array(items)) = sections.get_mut(section) {
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    item.retain(|key, _| fields.contains(&key.as_str()));
                }
            }
        }
    }
    Ok(all)
}

async fn export(State(ctx): State<Arc<ApiContext>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require_administrator()?;
    Ok(Json(exported(&ctx)?))
}

async fn import(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    bytes: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require_administrator()?;
    import_json(&ctx, &bytes)
}

fn import_json(ctx: &ApiContext, bytes: &[u8]) -> Result<StatusCode, ApiError> {
    if serde_json::from_slice::<Value>(bytes).is_err() {
        return Err(ApiError::BadRequest("failed_to_parse_json".to_owned()));
    }
    match ctx.broker.import_definitions(bytes, now()) {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(e) => Err(ApiError::BadRequest(e.to_string())),
    }
}

/// The parts of an export that belong to one vhost, as RabbitMQ's per-vhost export has them.
const VHOST_SECTIONS: [&str; 5] = ["parameters", "policies", "queues", "exchanges", "bindings"];

/// The sections whose items lose their vhost field in a per-vhost export (RabbitMQ keeps it
/// on parameters and policies).
const VHOST_STRIPPED: [&str; 3] = ["queues", "exchanges", "bindings"];

async fn export_vhost(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_administrator()?;
    ctx.broker.vhost(&vhost).ok_or_else(|| ApiError::BadRequest("vhost_not_found".to_owned()))?;
    let all = exported(&ctx)?;
    let mut out = Map::new();
    if let Some(v) = all.get("rabbit_version") {
        out.insert("rabbit_version".to_owned(), v.clone());
    }
    for section in VHOST_SECTIONS {
        let items: Vec<Value> = all
            .get(section)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|item| item.get("vhost").and_then(Value::as_str) == Some(vhost.as_str()))
            .map(|item| {
                let mut item = item.clone();
                if let Some(map) = item.as_object_mut().filter(|_| VHOST_STRIPPED.contains(&section)) {
                    map.remove("vhost");
                }
                item
            })
            .collect();
        out.insert(section.to_owned(), Value::Array(items));
    }
    Ok(Json(Value::Object(out)))
}

/// A per-vhost import: the file's entries are put into `vhost` whatever vhost they name.
async fn import_vhost(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path(vhost): Path<String>,
    bytes: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require_administrator()?;
    ctx.broker.vhost(&vhost).ok_or(ApiError::NotFound)?;
    let mut file: Value = serde_json::from_slice(&bytes)
        .map_err(|_| ApiError::BadRequest("failed_to_parse_json".to_owned()))?;
    let object =
        file.as_object_mut().ok_or_else(|| ApiError::BadRequest("not a definitions object".to_owned()))?;
    for section in VHOST_SECTIONS {
        if let Some(Value::Array(items)) = object.get_mut(section) {
            for item in items {
                if let Some(map) = item.as_object_mut() {
                    map.insert("vhost".to_owned(), Value::String(vhost.clone()));
                }
            }
        }
    }
    object.retain(|key, _| {
        VHOST_SECTIONS.contains(&key.as_str()) || key.ends_with("version") || key.starts_with("product")
    });
    let bytes = serde_json::to_vec(&file).map_err(|e| ApiError::Internal(e.to_string()))?;
    import_json(&ctx, &bytes)
}
