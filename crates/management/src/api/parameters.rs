//! `/api/parameters`: RabbitMQ's runtime parameters, by component, vhost and name.
//!
//! RabbitMQ keeps vhost limits and operator policies as parameters of the components
//! `vhost-limits` and `operator_policy`; Warren keeps them as vhost settings and policies, and
//! shows and changes them here under those components, so a client sees what it would see on a
//! RabbitMQ node without plugins. Other components (`federation-upstream`, `shovel`...) belong
//! to plugins Warren does not have: they are refused as RabbitMQ refuses a component it does
//! not know, and listed as none.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use warren_broker::{AdminCommand, PolicyKind, VhostLimits};

use super::auth::Caller;
use super::body;
use super::error::ApiError;
use super::policies::{self, PolicyBody};
use super::vhosts::{now, visible};
use super::ApiContext;

const VHOST_LIMITS: &str = "vhost-limits";
const OPERATOR_POLICY: &str = "operator_policy";
/// The one name RabbitMQ gives a vhost's limits.
const LIMITS_NAME: &str = "limits";

pub(super) fn routes() -> Router<Arc<ApiContext>> {
    Router::new()
        .route("/api/parameters", get(|s, c| list(s, c, None, None)))
        .route("/api/parameters/{component}", get(|s, c, Path(k)| list(s, c, Some(k), None)))
        .route("/api/parameters/{component}/{vhost}", get(|s, c, Path((k, v))| list(s, c, Some(k), Some(v))))
        .route("/api/parameters/{component}/{vhost}/{name}", get(one).put(set).delete(clear))
}

fn parameter(vhost: &str, component: &str, name: &str, value: Value) -> Value {
    json!({"vhost": vhost, "component": component, "name": name, "value": value})
}

/// Every parameter of the vhosts the caller sees, vhost by vhost.
fn parameters(ctx: &ApiContext, caller: &Caller) -> Vec<Value> {
    let mut out = Vec::new();
    for (vhost, settings) in ctx.broker.access().vhosts().iter() {
        if !visible(ctx, caller, vhost) {
            continue;
        }
        if settings.limits != VhostLimits::default() {
            let value = Value::Object(settings.limits.to_json());
            out.push(parameter(vhost, VHOST_LIMITS, LIMITS_NAME, value));
        }
        let Some(v) = ctx.broker.vhost(vhost) else { continue };
        for p in v.policies(PolicyKind::Operator).iter() {
            let value = json!({
                "pattern": p.pattern,
                "definition": Value::Object(p.definition.json().clone()),
                "priority": p.priority,
                "apply-to": p.apply_to.as_str(),
            });
            out.push(parameter(vhost, OPERATOR_POLICY, &p.name, value));
        }
    }
    out
}

async fn list(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    component: Option<String>,
    vhost: Option<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_policymaker()?;
    if let Some(v) = &vhost {
        ctx.broker.vhost(v).ok_or(ApiError::NotFound)?;
    }
    let items = parameters(&ctx, &caller)
        .into_iter()
        .filter(|p| component.as_deref().is_none_or(|c| p["component"] == c))
        .filter(|p| vhost.as_deref().is_none_or(|v| p["vhost"] == v))
        .collect();
    Ok(Json(Value::Array(items)))
}

async fn one(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((component, vhost, name)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require_policymaker()?;
    parameters(&ctx, &caller)
        .into_iter()
        .find(|p| {
            p["component"] == component.as_str() && p["vhost"] == vhost.as_str() && p["name"] == name.as_str()
        })
        .map(Json)
        .ok_or(ApiError::NotFound)
}

#[derive(Deserialize)]
struct ParameterBody {
    value: Value,
}

/// RabbitMQ's refusal of a parameter value (`Validation failed`, then the reason).
fn invalid(reason: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("Validation failed\n\n{reason}\n"))
}

async fn set(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((component, vhost, name)): Path<(String, String, String)>,
    bytes: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require_policymaker()?;
    let settings = ctx.broker.access().vhost(&vhost).ok_or(ApiError::NotFound)?;
    let body: ParameterBody = body::json(&bytes)?;
    match component.as_str() {
        VHOST_LIMITS => {
            caller.require_administrator()?;
            if name != LIMITS_NAME {
                return Err(invalid(format!("vhost limits are named '{LIMITS_NAME}', not '{name}'")));
            }
            let limits = limits_from(&body.value)?;
            let existed = settings.limits != VhostLimits::default();
            ctx.broker.admin(AdminCommand::SetVhostLimits { vhost, limits }, now())?;
            Ok(body::put_status(existed))
        }
        OPERATOR_POLICY => {
            caller.require_administrator()?;
            let policy = operator_policy_from(body.value, &name)?;
            policies::store(&ctx, vhost, &name, policy, PolicyKind::Operator)
        }
        // RabbitMQ keeps policies as parameters too, but refuses to set them this way.
        "policy" => Err(ApiError::BadRequest("policies may not be set using this method".to_owned())),
        other => Err(invalid(format!("component {other} not found"))),
    }
}

/// A whole set of vhost limits from a parameter's value: the limits it leaves out are lifted.
fn limits_from(value: &Value) -> Result<VhostLimits, ApiError> {
    let map = value.as_object().ok_or_else(|| invalid(format!("{value} is not a limits object")))?;
    let mut limits = VhostLimits::default();
    for (key, limit) in map {
        let n = limit.as_i64().ok_or_else(|| invalid(format!("{key} must be an integer, not {limit}")))?;
        limits
            .set(key, u64::try_from(n).ok())
            .map_err(|_| invalid(format!("Unrecognised terms {key} in limits")))?;
    }
    Ok(limits)
}

/// An operator policy from a parameter's value, which (unlike the policy endpoints) must give
/// its priority, as in RabbitMQ.
fn operator_policy_from(value: Value, name: &str) -> Result<PolicyBody, ApiError> {
    let map: &Map<String, Value> =
        value.as_object().ok_or_else(|| invalid(format!("{value} is not a policy")))?;
    for key in ["pattern", "definition", "priority"] {
        if !map.contains_key(key) {
            return Err(invalid(format!("Key \"{key}\" not found in {name}")));
        }
    }
    serde_json::from_value(value).map_err(invalid)
}

async fn clear(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((component, vhost, name)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require_policymaker()?;
    let settings = ctx.broker.access().vhost(&vhost).ok_or(ApiError::NotFound)?;
    match component.as_str() {
        VHOST_LIMITS if name == LIMITS_NAME && settings.limits != VhostLimits::default() => {
            caller.require_administrator()?;
            let limits = VhostLimits::default();
            ctx.broker.admin(AdminCommand::SetVhostLimits { vhost, limits }, now())?;
            Ok(StatusCode::NO_CONTENT)
        }
        OPERATOR_POLICY => {
            caller.require_administrator()?;
            let v = ctx.broker.vhost(&vhost).ok_or(ApiError::NotFound)?;
            if !v.policies(PolicyKind::Operator).iter().any(|p| p.name == name) {
                return Err(ApiError::NotFound);
            }
            ctx.broker.admin(AdminCommand::ClearPolicy { vhost, kind: PolicyKind::Operator, name }, now())?;
            Ok(StatusCode::NO_CONTENT)
        }
        _ => Err(ApiError::NotFound),
    }
}
