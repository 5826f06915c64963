//! `/api/policies` and `/api/operator-policies`: list, get, set, clear.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use warren_broker::{AdminCommand, ApplyTo, Policy, PolicyKind};

use super::auth::Caller;
use super::body;
use super::error::ApiError;
use super::vhosts::{now, visible};
use super::ApiContext;

pub(super) fn routes() -> Router<Arc<ApiContext>> {
    Router::new()
        .route("/api/policies", get(|s, c| list(s, c, None, PolicyKind::Policy)))
        .route("/api/policies/{vhost}", get(|s, c, Path(v)| list(s, c, Some(v), PolicyKind::Policy)))
        .route(
            "/api/policies/{vhost}/{name}",
            get(|s, c, p| one(s, c, p, PolicyKind::Policy))
                .put(|s, c, p, b| set(s, c, p, b, PolicyKind::Policy))
                .delete(|s, c, p| clear(s, c, p, PolicyKind::Policy)),
        )
        .route("/api/operator-policies", get(|s, c| list(s, c, None, PolicyKind::Operator)))
        .route(
            "/api/operator-policies/{vhost}",
            get(|s, c, Path(v)| list(s, c, Some(v), PolicyKind::Operator)),
        )
        .route(
            "/api/operator-policies/{vhost}/{name}",
            get(|s, c, p| one(s, c, p, PolicyKind::Operator))
                .put(|s, c, p, b| set(s, c, p, b, PolicyKind::Operator))
                .delete(|s, c, p| clear(s, c, p, PolicyKind::Operator)),
        )
}

fn policy_json(vhost: &str, p: &Policy) -> Value {
    json!({
        "vhost": vhost,
        "name": p.name,
        "pattern": p.pattern,
        "apply-to": p.apply_to.as_str(),
        "definition": Value::Object(p.definition.json().clone()),
        "priority": p.priority,
    })
}

fn policies(ctx: &ApiContext, caller: &Caller, vhost: Option<&str>, kind: PolicyKind) -> Vec<Value> {
    let mut vhosts = ctx.broker.vhosts();
    vhosts.sort_by(|a, b| a.name.cmp(&b.name));
    vhosts
        .iter()
        .filter(|v| vhost.is_none_or(|name| name == v.name) && visible(ctx, caller, &v.name))
        .flat_map(|v| v.policies(kind).iter().map(|p| policy_json(&v.name, p)).collect::<Vec<_>>())
        .collect()
}

async fn list(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    vhost: Option<String>,
    kind: PolicyKind,
) -> Result<Json<Value>, ApiError> {
    if kind == PolicyKind::Operator {
        caller.require_administrator()?;
    }
    if let Some(v) = &vhost {
        ctx.broker.vhost(v).ok_or(ApiError::NotFound)?;
    }
    Ok(Json(Value::Array(policies(&ctx, &caller, vhost.as_deref(), kind))))
}

async fn one(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    kind: PolicyKind,
) -> Result<Json<Value>, ApiError> {
    if kind == PolicyKind::Operator {
        caller.require_administrator()?;
    }
    policies(&ctx, &caller, Some(&vhost), kind)
        .into_iter()
        .find(|p| p["name"] == name.as_str())
        .map(Json)
        .ok_or(ApiError::NotFound)
}

/// A policy as a PUT body (or, under `/api/parameters/operator_policy`, a parameter's value)
/// gives it.
#[derive(Deserialize)]
pub(super) struct PolicyBody {
    pub(super) pattern: String,
    pub(super) definition: Value,
    #[serde(default)]
    pub(super) priority: i64,
    #[serde(rename = "apply-to", default = "all")]
    pub(super) apply_to: String,
}

fn all() -> String {
    "all".to_owned()
}

fn require(caller: &Caller, kind: PolicyKind) -> Result<(), ApiError> {
    match kind {
        PolicyKind::Policy => caller.require_policymaker(),
        PolicyKind::Operator => caller.require_administrator(),
    }
}

async fn set(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    bytes: Bytes,
    kind: PolicyKind,
) -> Result<StatusCode, ApiError> {
    require(&caller, kind)?;
    ctx.broker.vhost(&vhost).ok_or(ApiError::NotFound)?;
    let body: PolicyBody = body::json(&bytes)?;
    store(&ctx, vhost, &name, body, kind)
}

/// Sets policy `name` in `vhost` (which exists): 201 when it is new, 204 when it replaced one.
pub(super) fn store(
    ctx: &ApiContext,
    vhost: String,
    name: &str,
    body: PolicyBody,
    kind: PolicyKind,
) -> Result<StatusCode, ApiError> {
    let v = ctx.broker.vhost(&vhost).ok_or(ApiError::NotFound)?;
    let existed = v.policies(kind).iter().any(|p| p.name == name);
    let refused = |e: warren_broker::PolicyError| ApiError::BadRequest(format!("{e}\n"));
    let apply_to = ApplyTo::parse(&body.apply_to).map_err(refused)?;
    let policy =
        Policy::new(kind, name, &body.pattern, apply_to, body.priority, &body.definition).map_err(refused)?;
    ctx.broker.admin(AdminCommand::SetPolicy { vhost, policy }, now())?;
    Ok(body::put_status(existed))
}

async fn clear(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    kind: PolicyKind,
) -> Result<StatusCode, ApiError> {
    require(&caller, kind)?;
    let v = ctx.broker.vhost(&vhost).ok_or(ApiError::NotFound)?;
    if !v.policies(kind).iter().any(|p| p.name == name) {
        return Err(ApiError::NotFound);
    }
    ctx.broker.admin(AdminCommand::ClearPolicy { vhost, kind, name }, now())?;
    Ok(StatusCode::NO_CONTENT)
}
