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
        .flat_map(|v| {
            // By name within the vhost, as RabbitMQ lists them.
            let mut listed = v.policies(kind);
            listed.sort_by(|a, b| a.name.cmp(&b.name));
            listed.iter().map(|p| policy_json(&v.name, p)).collect::<Vec<_>>()
        })
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
    pub(super) priority: Option<Value>,
    #[serde(rename = "apply-to", default = "all")]
    pub(super) apply_to: String,
}

fn all() -> String {
    "all".to_owned()
}

/// Policies take a policymaker with access to the vhost (or an administrator), operator
/// policies an administrator, as in RabbitMQ.
fn require(ctx: &ApiContext, caller: &Caller, vhost: &str, kind: PolicyKind) -> Result<(), ApiError> {
    match kind {
        PolicyKind::Policy if caller.is_administrator() => Ok(()),
        PolicyKind::Policy => {
            caller.require_policymaker()?;
            let in_vhost = ctx.broker.vhost(vhost).is_none() || visible(ctx, caller, vhost);
            if in_vhost {
                Ok(())
            } else {
                Err(ApiError::NotAuthorised("User not authorised to access object"))
            }
        }
        PolicyKind::Operator => caller.require_administrator(),
    }
}

/// A refusal as RabbitMQ 3.10 words it: a policy's text with its `<` and `>` escaped for HTML
/// (the management plugin does that for policies, not for operator policies).
fn refusal(kind: PolicyKind, text: String) -> ApiError {
    match kind {
        PolicyKind::Policy => ApiError::BadRequest(text.replace('<', "&lt;").replace('>', "&gt;")),
        PolicyKind::Operator => ApiError::BadRequest(text),
    }
}

/// RabbitMQ 3.10's refusal of an unknown `apply-to` (Warren also takes 3.12's values).
fn apply_to_refused(value: &str) -> String {
    format!(
        "Validation failed\n\napply-to '{value}' unrecognised; should be 'queues', 'exchanges' or 'all'\n"
    )
}

async fn set(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    bytes: Bytes,
    kind: PolicyKind,
) -> Result<StatusCode, ApiError> {
    require(&ctx, &caller, &vhost, kind)?;
    ctx.broker.vhost(&vhost).ok_or_else(ApiError::vhost_not_found)?;
    let body: PolicyBody = body::json_requiring(&bytes, &["pattern", "definition"])?;
    store(&ctx, vhost, &name, body, kind)
}

/// Sets policy `name` in `vhost`: 201 when it is new, 204 when it replaced one.
pub(super) fn store(
    ctx: &ApiContext,
    vhost: String,
    name: &str,
    body: PolicyBody,
    kind: PolicyKind,
) -> Result<StatusCode, ApiError> {
    let v = ctx.broker.vhost(&vhost).ok_or_else(ApiError::vhost_not_found)?;
    let existed = v.policies(kind).iter().any(|p| p.name == name);
    let priority = match body.priority {
        None | Some(Value::Null) => 0,
        Some(value) => value.as_i64().ok_or_else(|| {
            let text = format!(
                "Validation failed\n\npriority should be a number, actually was {}\n",
                warren_broker::erlang_term(&value)
            );
            refusal(kind, text)
        })?,
    };
    let apply_to =
        ApplyTo::parse(&body.apply_to).map_err(|_| refusal(kind, apply_to_refused(&body.apply_to)))?;
    let policy = Policy::new(kind, name, &body.pattern, apply_to, priority, &body.definition)
        .map_err(|e| refusal(kind, format!("{e}\n")))?;
    ctx.broker.admin(AdminCommand::SetPolicy { vhost, policy }, now())?;
    Ok(body::put_status(existed))
}

async fn clear(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    kind: PolicyKind,
) -> Result<StatusCode, ApiError> {
    require(&ctx, &caller, &vhost, kind)?;
    let v = ctx.broker.vhost(&vhost).ok_or(ApiError::NotFound)?;
    if !v.policies(kind).iter().any(|p| p.name == name) {
        return Err(ApiError::NotFound);
    }
    ctx.broker.admin(AdminCommand::ClearPolicy { vhost, kind, name }, now())?;
    Ok(StatusCode::NO_CONTENT)
}
