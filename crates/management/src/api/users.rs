//! `/api/users` (with bulk-delete and without-permissions) and the users' limits
//! (`/api/user-limits`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use warren_broker::{AdminCommand, HashAlgorithm, PasswordHash, User, UserLimits};

use super::auth::Caller;
use super::body::{self, Tags};
use super::error::ApiError;
use super::list::{self, ListQuery};
use super::vhosts::now;
use super::ApiContext;

pub(super) fn routes() -> Router<Arc<ApiContext>> {
    Router::new()
        .route("/api/users", get(list_users))
        .route("/api/users/without-permissions", get(without_permissions))
        .route("/api/users/bulk-delete", post(bulk_delete))
        .route("/api/users/{user}", get(get_user).put(put_user).delete(delete_user))
        .route("/api/user-limits", get(list_limits))
        .route("/api/user-limits/{user}", get(user_limits))
        .route("/api/user-limits/{user}/{name}", put(put_limit).delete(delete_limit))
}

fn user_json(user: &User) -> Value {
    json!({
        "name": user.name,
        "password_hash": base64::engine::general_purpose::STANDARD.encode(&user.password.bytes),
        "hashing_algorithm": user.password.algorithm.rabbit_name(),
        "tags": user.tags,
        "limits": user.limits.to_json(),
    })
}

async fn list_users(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require_administrator()?;
    let items = ctx.broker.access().users().iter().map(|u| user_json(u)).collect();
    // Paged as RabbitMQ 3.13 pages users (3.10 listed them whole; HTTP clients written for the
    // newer API ask for pages).
    Ok(Json(list::respond(items, &query)?))
}

async fn without_permissions(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_administrator()?;
    let access = ctx.broker.access();
    let with: std::collections::HashSet<String> =
        access.all_permissions().into_iter().map(|(_, u, _)| u).collect();
    let items = access.users().iter().filter(|u| !with.contains(&u.name)).map(|u| user_json(u)).collect();
    Ok(Json(Value::Array(items)))
}

async fn get_user(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_administrator()?;
    let user = ctx.broker.access().user(&name).ok_or(ApiError::NotFound)?;
    Ok(Json(user_json(&user)))
}

#[derive(Deserialize)]
struct UserBody {
    password: Option<String>,
    password_hash: Option<String>,
    hashing_algorithm: Option<String>,
    #[serde(default)]
    tags: Option<Tags>,
}

async fn put_user(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require_administrator()?;
    let body: UserBody = body::json(&bytes)?;
    let tags = body.tags.ok_or_else(|| ApiError::BadRequest("tags_not_present".to_owned()))?.into_vec();
    let existing = ctx.broker.access().user(&name);
    let password = match (body.password, body.password_hash) {
        (Some(password), _) => PasswordHash::new(&password),
        (None, Some(hash)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(hash.as_bytes())
                .map_err(|_| ApiError::BadRequest("password_hash is not base64".to_owned()))?;
            let name = body.hashing_algorithm.as_deref().unwrap_or("rabbit_password_hashing_sha256");
            let algorithm = HashAlgorithm::from_rabbit_name(name)
                .ok_or_else(|| ApiError::BadRequest(format!("unknown hashing_algorithm '{name}'")))?;
            PasswordHash { algorithm, bytes }
        }
        // An update without a password keeps the one there is; a new user has none.
        (None, None) => existing.as_ref().map(|u| u.password.clone()).unwrap_or_else(PasswordHash::none),
    };
    let limits = existing.as_ref().map(|u| u.limits).unwrap_or_default();
    let user = User { name, password, tags, limits };
    ctx.broker.admin(AdminCommand::PutUser(user), now())?;
    Ok(body::put_status(existing.is_some()))
}

async fn delete_user(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_administrator()?;
    ctx.broker.admin(AdminCommand::DeleteUser(name), now())?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct BulkDelete {
    users: Vec<String>,
}

async fn bulk_delete(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    bytes: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require_administrator()?;
    let body: BulkDelete = body::json_requiring(&bytes, &["users"])?;
    // In order, as RabbitMQ: the users before an unknown one are deleted, those after it not.
    for name in body.users {
        if ctx.broker.access().user(&name).is_none() {
            return Err(ApiError::bad_request_as("bad_request", json!(["no_such_user", name])));
        }
        ctx.broker.admin(AdminCommand::DeleteUser(name), now())?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn list_limits(State(ctx): State<Arc<ApiContext>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require_administrator()?;
    let items = ctx
        .broker
        .access()
        .users()
        .iter()
        .filter(|u| u.limits != UserLimits::default())
        .map(|u| json!({"user": u.name, "value": u.limits.to_json()}))
        .collect();
    Ok(Json(Value::Array(items)))
}

async fn user_limits(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_administrator()?;
    let user = ctx.broker.access().user(&name).ok_or(ApiError::NotFound)?;
    if user.limits == UserLimits::default() {
        return Ok(Json(json!([])));
    }
    Ok(Json(json!([{"user": name, "value": user.limits.to_json()}])))
}

async fn put_limit(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((user, name)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require_administrator()?;
    let value = super::limits::value(&bytes, &name, UserLimits::NAMES, super::limits::Scope::User)?;
    let mut limits = ctx.broker.access().user(&user).ok_or(ApiError::NotFound)?.limits;
    limits.set(&name, value).map_err(super::limits::unknown)?;
    ctx.broker.admin(AdminCommand::SetUserLimits { user, limits }, now())?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_limit(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((user, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require_administrator()?;
    let mut limits = ctx.broker.access().user(&user).ok_or(ApiError::NotFound)?.limits;
    limits.set(&name, None).map_err(super::limits::unknown)?;
    ctx.broker.admin(AdminCommand::SetUserLimits { user, limits }, now())?;
    Ok(StatusCode::NO_CONTENT)
}
