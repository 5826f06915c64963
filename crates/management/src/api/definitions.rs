//! `/api/definitions`: the whole broker's definitions (GET exports, POST imports), and one
//! vhost's (`/api/definitions/{vhost}`: its parameters, policies, queues, exchanges and bindings).

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

fn exported(ctx: &ApiContext) -> Result<Value, ApiError> {
    serde_json::from_slice(&ctx.broker.export_definitions_json())
        .map_err(|e| ApiError::Internal(e.to_string()))
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
    match ctx.broker.import_definitions(bytes, now()) {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(e) => Err(ApiError::BadRequest(e.to_string())),
    }
}

/// The parts of an export that belong to one vhost, without the vhost field, as RabbitMQ's
/// per-vhost export has them.
const VHOST_SECTIONS: [&str; 5] = ["parameters", "policies", "queues", "exchanges", "bindings"];

async fn export_vhost(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_administrator()?;
    ctx.broker.vhost(&vhost).ok_or(ApiError::NotFound)?;
    let all = exported(&ctx)?;
    let mut out = Map::new();
    for key in ["rabbit_version", "rabbitmq_version", "product_name", "product_version"] {
        if let Some(v) = all.get(key) {
            out.insert(key.to_owned(), v.clone());
        }
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
                if let Some(map) = item.as_object_mut() {
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
    let mut file: Value =
        serde_json::from_slice(&bytes).map_err(|_| ApiError::BadRequest("not_json".to_owned()))?;
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
