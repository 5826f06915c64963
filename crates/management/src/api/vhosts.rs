//! `/api/vhosts` and the vhosts' limits (`/api/vhost-limits`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use warren_broker::{AdminCommand, Now, VhostLimits, VhostSettings};

use super::auth::Caller;
use super::body::{self, Tags};
use super::error::ApiError;
use super::list::{self, ListQuery};
use super::rates::{Key, Metric, RateQuery};
use super::ApiContext;

pub(super) fn routes() -> Router<Arc<ApiContext>> {
    Router::new()
        .route("/api/vhosts", get(list_vhosts))
        .route("/api/vhosts/{vhost}", get(get_vhost).put(put_vhost).delete(delete_vhost))
        .route("/api/vhost-limits", get(list_limits))
        .route("/api/vhost-limits/{vhost}", get(vhost_limits))
        .route("/api/vhost-limits/{vhost}/{name}", put(put_limit).delete(delete_limit))
}

pub(super) fn now() -> Now {
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Now::new(std::time::Instant::now(), unix_ms)
}

/// Whether the caller may see this vhost: monitors see all, others those they have
/// permissions in.
pub(super) fn visible(ctx: &ApiContext, caller: &Caller, vhost: &str) -> bool {
    caller.is_monitor() || ctx.broker.access().permissions(&caller.name, vhost).is_some()
}

fn vhost_json(ctx: &ApiContext, name: &str, settings: &VhostSettings) -> Value {
    let (mut ready, mut unacked) = (0u64, 0u64);
    if let Some(vhost) = ctx.broker.vhost(name) {
        for q in vhost.queues() {
            let stats = q.stats();
            ready += stats.ready;
            unacked += stats.unacked;
        }
    }
    let mut json = json!({
        "name": name,
        "description": settings.description,
        "tags": settings.tags,
        "default_queue_type": "undefined",
        "metadata": {"description": settings.description, "tags": settings.tags},
        "tracing": false,
        "cluster_state": {ctx.node.name.clone(): "running"},
    });
    if let Some(map) = json.as_object_mut() {
        let (rates, key, query) = (ctx.rates.view(), Key::Vhost(name.to_owned()), RateQuery::default());
        rates.gauge(map, &key, "messages", ready + unacked, Metric::Depth(0), &query);
        rates.gauge(map, &key, "messages_ready", ready, Metric::Depth(1), &query);
        rates.gauge(map, &key, "messages_unacknowledged", unacked, Metric::Depth(2), &query);
    }
    json
}

async fn list_vhosts(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let items = ctx
        .broker
        .access()
        .vhosts()
        .iter()
        .filter(|(name, _)| visible(&ctx, &caller, name))
        .map(|(name, settings)| vhost_json(&ctx, name, settings))
        .collect();
    Ok(Json(list::respond(items, &query)?))
}

async fn get_vhost(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    // One vhost is an administrator's business in RabbitMQ 3.10 (the listing is not).
    caller.require_administrator()?;
    let settings = ctx.broker.access().vhost(&name).ok_or(ApiError::NotFound)?;
    Ok(Json(vhost_json(&ctx, &name, &settings)))
}

#[derive(Deserialize, Default)]
struct VhostBody {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tags: Tags,
}

async fn put_vhost(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require_administrator()?;
    let body: VhostBody = body::json(&bytes)?;
    let existing = ctx.broker.access().vhost(&name);
    let existed = existing.is_some();
    // A PUT states the vhost's metadata whole, as in RabbitMQ: what it leaves out is cleared.
    let mut settings = existing.unwrap_or_default();
    settings.description = body.description.unwrap_or_default();
    settings.tags = body.tags.into_vec();
    ctx.broker.admin(AdminCommand::PutVhost { name: name.clone(), settings }, now())?;
    if !existed {
        // RabbitMQ gives the user who creates a vhost full permissions in it.
        let grant = AdminCommand::SetPermissions {
            user: caller.name.clone(),
            vhost: name,
            configure: ".*".to_owned(),
            write: ".*".to_owned(),
            read: ".*".to_owned(),
        };
        ctx.broker.admin(grant, now())?;
    }
    Ok(body::put_status(existed))
}

async fn delete_vhost(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_administrator()?;
    ctx.broker.admin(AdminCommand::DeleteVhost(name), now())?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_limits(State(ctx): State<Arc<ApiContext>>, caller: Caller) -> Json<Value> {
    let items: Vec<Value> = ctx
        .broker
        .access()
        .vhosts()
        .iter()
        .filter(|(name, s)| visible(&ctx, &caller, name) && s.limits != VhostLimits::default())
        .map(|(name, s)| json!({"vhost": name, "value": s.limits.to_json()}))
        .collect();
    Json(Value::Array(items))
}

async fn vhost_limits(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    super::scope::vhost(&ctx, &caller, &name)?;
    let settings = ctx.broker.access().vhost(&name).ok_or(ApiError::NotFound)?;
    if settings.limits == VhostLimits::default() {
        return Ok(Json(json!([])));
    }
    Ok(Json(json!([{"vhost": name, "value": settings.limits.to_json()}])))
}

async fn put_limit(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require_administrator()?;
    let value = super::limits::value(&bytes, &name, VhostLimits::NAMES, super::limits::Scope::Vhost)?;
    let mut limits = ctx.broker.access().vhost(&vhost).ok_or(ApiError::NotFound)?.limits;
    limits.set(&name, value).map_err(super::limits::unknown)?;
    ctx.broker.admin(AdminCommand::SetVhostLimits { vhost, limits }, now())?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_limit(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require_administrator()?;
    let mut limits = ctx.broker.access().vhost(&vhost).ok_or(ApiError::NotFound)?.limits;
    limits.set(&name, None).map_err(super::limits::unknown)?;
    ctx.broker.admin(AdminCommand::SetVhostLimits { vhost, limits }, now())?;
    Ok(StatusCode::NO_CONTENT)
}
