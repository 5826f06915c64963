//! `/api/queues`: list, show, declare (PUT), delete, purge (`DELETE .../contents`), actions,
//! and a queue's bindings, with RabbitMQ's fields for a classic queue.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use warren_broker::{
    Actor, Broker, Command, ConnectionSnapshot, Effects, Permission, Queue, QueueSpec, VHost,
};

use super::auth::Caller;
use super::body;
use super::error::ApiError;
use super::format;
use super::list::{self, ListQuery};
use super::rates::{Key, Metric, RateQuery, RatesView, QUEUE_STATS};
use super::scope;
use super::vhosts::now;
use super::ApiContext;

pub(super) fn routes() -> Router<Arc<ApiContext>> {
    Router::new()
        .route("/api/queues", get(|s, c, q, r, d| list_queues(s, c, None, q, r, d)))
        .route("/api/queues/{vhost}", get(|s, c, Path(v), q, r, d| list_queues(s, c, Some(v), q, r, d)))
        .route("/api/queues/detailed", get(list_detailed))
        .route("/api/queues/{vhost}/{name}", get(show).put(declare).delete(remove))
        .route("/api/queues/{vhost}/{name}/contents", delete(purge))
        .route("/api/queues/{vhost}/{name}/actions", post(action))
        .route("/api/queues/{vhost}/{name}/bindings", get(super::bindings::of_queue))
}

/// What a listing needs besides the queue: its connections (for exclusive owners) and rates.
pub(crate) struct QueueContext<'a> {
    pub(crate) node: &'a str,
    pub(crate) rates: RatesView<'a>,
    pub(crate) query: RateQuery,
    connections: Option<HashMap<u64, ConnectionSnapshot>>,
}

impl<'a> QueueContext<'a> {
    pub(crate) fn new(ctx: &'a ApiContext, query: RateQuery) -> Self {
        QueueContext { node: &ctx.node.name, rates: ctx.rates.view(), query, connections: None }
    }

    fn owner(&mut self, broker: &Broker, id: u64) -> Option<Value> {
        let connections = self.connections.get_or_insert_with(|| {
            broker.registry().connection_snapshots().into_iter().map(|c| (c.id, c)).collect()
        });
        connections.get(&id).map(format::connection_details)
    }
}

/// `disable_stats=true`: the queue's definition alone, as RabbitMQ answers it.
#[derive(Debug, Default, Deserialize)]
struct StatsQuery {
    disable_stats: Option<String>,
}

impl StatsQuery {
    fn disabled(&self) -> bool {
        self.disable_stats.as_deref() == Some("true")
    }
}

/// A queue without statistics (`disable_stats=true`): its definition, and RabbitMQ's `state`
/// for a queue whose process it did not ask (`live`).
fn queue_definition_json(vhost: &VHost, q: &Queue, node: &str) -> Value {
    json!({
        "name": q.name.to_string(),
        "vhost": vhost.name,
        "durable": q.durable,
        "auto_delete": q.auto_delete,
        "exclusive": q.exclusive_owner.is_some(),
        "arguments": format::table(&q.arguments),
        "node": node,
        "state": "live",
        "type": "classic",
    })
}

/// A queue as RabbitMQ's API shows it.
pub(crate) fn queue_json(vhost: &VHost, q: &Queue, cx: &mut QueueContext<'_>) -> Value {
    let stats = q.stats();
    let key = Key::Queue(vhost.name.clone(), q.name.to_string());
    let applied = q.applied_policies();
    let mut map = Map::new();
    let mut put = |k: &str, v: Value| {
        map.insert(k.to_owned(), v);
    };
    put("name", q.name.to_string().into());
    put("vhost", vhost.name.clone().into());
    put("durable", q.durable.into());
    put("auto_delete", q.auto_delete.into());
    put("exclusive", q.exclusive_owner.is_some().into());
    put("arguments", format::table(&q.arguments));
    put("node", cx.node.into());
    put("state", "running".into());
    put("type", "classic".into());
    put("consumers", stats.consumers.into());
    put("policy", applied.policy().map(|p| Value::from(p.name.clone())).unwrap_or(Value::Null));
    put(
        "operator_policy",
        applied.operator_policy().map(|p| Value::from(p.name.clone())).unwrap_or(Value::Null),
    );
    put("effective_policy_definition", Value::Object(applied.effective_definition()));
    put("exclusive_consumer_tag", Value::Null);
    put("single_active_consumer_tag", Value::Null);
    put("head_message_timestamp", Value::Null);
    put("recoverable_slaves", Value::Null);
    put("message_bytes", stats.ready_bytes.into());
    put("message_bytes_ready", stats.ready_bytes.into());
    put("message_bytes_ram", stats.ready_bytes.into());
    put("messages_ram", (stats.ready + stats.unacked).into());
    put("messages_ready_ram", stats.ready.into());
    put("messages_unacknowledged_ram", stats.unacked.into());
    let (rates, query) = (&cx.rates, &cx.query);
    rates.gauge(&mut map, &key, "messages", stats.ready + stats.unacked, Metric::Depth(0), query);
    rates.gauge(&mut map, &key, "messages_ready", stats.ready, Metric::Depth(1), query);
    rates.gauge(&mut map, &key, "messages_unacknowledged", stats.unacked, Metric::Depth(2), query);
    if let Some(stats) = rates.message_stats(&key, &q.counters().snapshot(), QUEUE_STATS, query) {
        map.insert("message_stats".into(), stats);
    }
    Value::Object(map)
}

async fn list_queues(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    vhost: Option<String>,
    Query(query): Query<ListQuery>,
    Query(rates): Query<RateQuery>,
    Query(stats): Query<StatsQuery>,
) -> Result<Json<Value>, ApiError> {
    let vhosts = scope::vhosts(&ctx, &caller, vhost.as_deref())?;
    let mut cx = QueueContext::new(&ctx, rates);
    let mut entries = Vec::new();
    for v in &vhosts {
        let mut queues = v.queues();
        queues.sort_by(|a, b| a.name.cmp(&b.name));
        entries.extend(queues.into_iter().map(|q| (Some(q.name.to_string()), (v, q))));
    }
    let listed = list::respond_built(entries, &query, |(v, q)| {
        if stats.disabled() {
            queue_definition_json(v, &q, &ctx.node.name)
        } else {
            queue_json(v, &q, &mut cx)
        }
    })?;
    Ok(Json(listed))
}

/// `/api/queues/detailed`: RabbitMQ 3.13's listing of every queue with all its details (which
/// Warren's listing always has), asked for by HTTP clients written for it. In 3.10 the path
/// names the queues of a vhost called `detailed`, so while there is one, that is what it lists.
async fn list_detailed(
    state: State<Arc<ApiContext>>,
    caller: Caller,
    query: Query<ListQuery>,
    rates: Query<RateQuery>,
    stats: Query<StatsQuery>,
) -> Result<Json<Value>, ApiError> {
    const NAME: &str = "detailed";
    let vhost = state.broker.vhost(NAME).map(|_| NAME.to_owned());
    list_queues(state, caller, vhost, query, rates, stats).await
}

async fn show(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Query(rates): Query<RateQuery>,
    Query(stats): Query<StatsQuery>,
    Query(shape): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let v = scope::vhost(&ctx, &caller, &vhost)?;
    let q = v.queue(&name).map_err(|_| ApiError::NotFound)?;
    if stats.disabled() {
        return Ok(Json(list::trim(queue_definition_json(&v, &q, &ctx.node.name), &shape)));
    }
    let mut cx = QueueContext::new(&ctx, rates);
    let mut json = queue_json(&v, &q, &mut cx);
    let consumers = super::connections::consumers_json(&ctx, Some(&vhost), Some(&name));
    if let Some(map) = json.as_object_mut() {
        // Only one queue shows its owner, as in RabbitMQ (listings leave it out).
        if let Some(details) = q.exclusive_owner.and_then(|owner| cx.owner(&ctx.broker, owner)) {
            map.insert("owner_pid_details".into(), details);
        }
        let tag = consumers.iter().find(|c| c["exclusive"] == true).map(|c| c["consumer_tag"].clone());
        if let Some(tag) = tag {
            map.insert("exclusive_consumer_tag".into(), tag);
        }
        if q.single_active() {
            if let Some(first) = consumers.first() {
                map.insert("single_active_consumer_tag".into(), first["consumer_tag"].clone());
            }
        }
        map.insert("consumer_details".into(), Value::Array(consumers));
        map.insert("deliveries".into(), json!([]));
        map.insert("incoming".into(), json!([]));
    }
    Ok(Json(list::trim(json, &shape)))
}

#[derive(Deserialize, Default)]
struct DeclareBody {
    #[serde(default)]
    durable: Option<Value>,
    #[serde(default)]
    auto_delete: Option<Value>,
    #[serde(default)]
    arguments: Option<Value>,
}

/// Applies a definition command for the API (no connection), then its effects.
pub(crate) fn apply(vhost: &VHost, command: Command) -> Result<warren_broker::Outcome, ApiError> {
    let now = now();
    let mut effects = Effects::default();
    let outcome = vhost.apply(command, Actor::BROKER, now.instant, &mut effects);
    effects.apply(now.instant);
    outcome.map_err(refused)
}

/// A broker refusal as RabbitMQ's API words it: reserved names are an access refusal there.
pub(crate) fn refused(e: warren_broker::BrokerError) -> ApiError {
    match e {
        warren_broker::BrokerError::ReservedName { .. } => ApiError::NotAuthorised("Access refused."),
        other => other.into(),
    }
}

async fn declare(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<StatusCode, ApiError> {
    ctx.broker.vhost(&vhost).ok_or_else(ApiError::vhost_not_found)?;
    let v = scope::vhost(&ctx, &caller, &vhost)?;
    scope::require(&ctx, &caller, &vhost, Permission::Configure, &name)?;
    let body: DeclareBody = body::json(&bytes)?;
    let spec = QueueSpec {
        name: name.as_str().into(),
        durable: format::boolean(body.durable.as_ref())?,
        auto_delete: format::boolean(body.auto_delete.as_ref())?,
        arguments: format::arguments(body.arguments.as_ref())?,
        ..QueueSpec::default()
    };
    let existed = v.queue(&name).is_ok();
    apply(&v, Command::DeclareQueue(spec))?;
    Ok(body::put_status(existed))
}

#[derive(Deserialize, Default)]
struct DeleteQuery {
    #[serde(rename = "if-empty")]
    if_empty: Option<String>,
    #[serde(rename = "if-unused")]
    if_unused: Option<String>,
}

async fn remove(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Query(query): Query<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    let v = scope::vhost(&ctx, &caller, &vhost)?;
    v.queue(&name).map_err(|_| ApiError::NotFound)?;
    scope::require(&ctx, &caller, &vhost, Permission::Configure, &name)?;
    let command = Command::DeleteQueue {
        name: name.as_str().into(),
        if_unused: query.if_unused.as_deref() == Some("true"),
        if_empty: query.if_empty.as_deref() == Some("true"),
    };
    apply(&v, command)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn purge(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let v = scope::vhost(&ctx, &caller, &vhost)?;
    let q = v.queue(&name).map_err(|_| ApiError::NotFound)?;
    scope::require(&ctx, &caller, &vhost, Permission::Read, &name)?;
    q.purge();
    // Purged messages that were stored leave acks in the log: hand them to the OS.
    let _ = q.flush();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct ActionBody {
    action: String,
}

/// `sync` and `cancel_sync` concern mirrored queues: for a classic queue RabbitMQ accepts them
/// and does nothing (204), as here.
async fn action(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    caller.require_administrator()?;
    let v = scope::vhost(&ctx, &caller, &vhost)?;
    v.queue(&name).map_err(|_| ApiError::NotFound)?;
    let body: ActionBody = body::json(&bytes)?;
    match body.action.as_str() {
        "sync" | "cancel_sync" => Ok(StatusCode::NO_CONTENT.into_response()),
        other => {
            Ok((StatusCode::BAD_REQUEST, Json(json!({"error": "bad_request", "reason": ["unknown", other]})))
                .into_response())
        }
    }
}
