//! `/api/permissions` and `/api/topic-permissions`, also as seen from a vhost
//! (`/api/vhosts/{vhost}/permissions`) and a user (`/api/users/{user}/permissions`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use warren_broker::{AdminCommand, TopicPermission};

use super::auth::Caller;
use super::body;
use super::error::ApiError;
use super::vhosts::now;
use super::ApiContext;

pub(super) fn routes() -> Router<Arc<ApiContext>> {
    Router::new()
        .route("/api/permissions", get(all_permissions))
        .route(
            "/api/permissions/{vhost}/{user}",
            get(get_permission).put(put_permission).delete(delete_permission),
        )
        .route("/api/vhosts/{vhost}/permissions", get(vhost_permissions))
        .route("/api/users/{user}/permissions", get(user_permissions))
        .route("/api/topic-permissions", get(all_topic_permissions))
        .route(
            "/api/topic-permissions/{vhost}/{user}",
            get(get_topic_permissions).put(put_topic_permission).delete(delete_topic_permissions),
        )
        .route("/api/vhosts/{vhost}/topic-permissions", get(vhost_topic_permissions))
        .route("/api/users/{user}/topic-permissions", get(user_topic_permissions))
}

fn permissions(ctx: &ApiContext, keep: impl Fn(&str, &str) -> bool) -> Vec<Value> {
    ctx.broker
        .access()
        .all_permissions()
        .into_iter()
        .filter(|(vhost, user, _)| keep(vhost, user))
        .map(|(vhost, user, p)| {
            json!({"user": user, "vhost": vhost, "configure": p.configure.as_str(), "write": p.write.as_str(), "read": p.read.as_str()})
        })
        .collect()
}

fn topic_permissions(ctx: &ApiContext, keep: impl Fn(&str, &str) -> bool) -> Vec<Value> {
    ctx.broker
        .access()
        .all_topic_permissions()
        .into_iter()
        .filter(|(vhost, user, _)| keep(vhost, user))
        .map(|(vhost, user, p)| json!({"user": user, "vhost": vhost, "exchange": p.exchange, "write": p.write, "read": p.read}))
        .collect()
}

async fn all_permissions(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_administrator()?;
    Ok(Json(Value::Array(permissions(&ctx, |_, _| true))))
}

async fn vhost_permissions(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_administrator()?;
    ctx.broker.vhost(&vhost).ok_or(ApiError::NotFound)?;
    Ok(Json(Value::Array(permissions(&ctx, |v, _| v == vhost))))
}

async fn user_permissions(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_administrator()?;
    ctx.broker.access().user(&user).ok_or(ApiError::NotFound)?;
    Ok(Json(Value::Array(permissions(&ctx, |_, u| u == user))))
}

async fn get_permission(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require_administrator()?;
    permissions(&ctx, |v, u| v == vhost && u == user).pop().map(Json).ok_or(ApiError::NotFound)
}

#[derive(Deserialize)]
struct PermissionBody {
    configure: String,
    write: String,
    read: String,
}

async fn put_permission(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require_administrator()?;
    let body: PermissionBody = body::json_requiring(&bytes, &["configure", "write", "read"])?;
    if ctx.broker.vhost(&vhost).is_none() || ctx.broker.access().user(&user).is_none() {
        return Err(ApiError::BadRequest("vhost_or_user_not_found".to_owned()));
    }
    let existed = ctx.broker.access().permissions(&user, &vhost).is_some();
    let command = AdminCommand::SetPermissions {
        user,
        vhost,
        configure: body.configure,
        write: body.write,
        read: body.read,
    };
    ctx.broker.admin(command, now())?;
    Ok(body::put_status(existed))
}

async fn delete_permission(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require_administrator()?;
    if ctx.broker.access().permissions(&user, &vhost).is_none() {
        return Err(ApiError::NotFound);
    }
    ctx.broker.admin(AdminCommand::ClearPermissions { user, vhost }, now())?;
    Ok(StatusCode::NO_CONTENT)
}

async fn all_topic_permissions(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_administrator()?;
    Ok(Json(Value::Array(topic_permissions(&ctx, |_, _| true))))
}

async fn vhost_topic_permissions(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_administrator()?;
    ctx.broker.vhost(&vhost).ok_or(ApiError::NotFound)?;
    Ok(Json(Value::Array(topic_permissions(&ctx, |v, _| v == vhost))))
}

async fn user_topic_permissions(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_administrator()?;
    ctx.broker.access().user(&user).ok_or(ApiError::NotFound)?;
    Ok(Json(Value::Array(topic_permissions(&ctx, |_, u| u == user))))
}

async fn get_topic_permissions(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require_administrator()?;
    let found = topic_permissions(&ctx, |v, u| v == vhost && u == user);
    if found.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(Json(Value::Array(found)))
}

#[derive(Deserialize)]
struct TopicBody {
    exchange: String,
    write: String,
    read: String,
}

async fn put_topic_permission(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require_administrator()?;
    let body: TopicBody = body::json_requiring(&bytes, &["exchange", "write", "read"])?;
    if ctx.broker.vhost(&vhost).is_none() || ctx.broker.access().user(&user).is_none() {
        return Err(ApiError::BadRequest("vhost_or_user_not_found".to_owned()));
    }
    let existed = !topic_permissions(&ctx, |v, u| v == vhost && u == user).is_empty();
    let permission = TopicPermission { exchange: body.exchange, write: body.write, read: body.read };
    ctx.broker.admin(AdminCommand::SetTopicPermissions { user, vhost, permission }, now())?;
    Ok(body::put_status(existed))
}

async fn delete_topic_permissions(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require_administrator()?;
    if topic_permissions(&ctx, |v, u| v == vhost && u == user).is_empty() {
        return Err(ApiError::NotFound);
    }
    ctx.broker.admin(AdminCommand::ClearTopicPermissions { user, vhost, exchange: None }, now())?;
    Ok(StatusCode::NO_CONTENT)
}
