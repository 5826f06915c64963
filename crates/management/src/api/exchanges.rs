//! `/api/exchanges`: list, show, declare (PUT), delete, publish, and an exchange's bindings as
//! source or destination. The default exchange is listed with the name "" (and found as
//! `amq.default`), as RabbitMQ lists it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use warren_broker::{
    Command, Counter, CounterValues, Effects, Exchange, ExchangeSpec, Message, Permission, VHost,
};

use super::auth::Caller;
use super::body;
use super::error::ApiError;
use super::format;
use super::list::{self, ListQuery};
use super::queues::apply;
use super::rates::{Key, RateQuery, RatesView, EXCHANGE_STATS};
use super::scope;
use super::vhosts::now;
use super::ApiContext;

pub(super) fn routes() -> Router<Arc<ApiContext>> {
    Router::new()
        .route("/api/exchanges", get(|s, c, q, r| list_exchanges(s, c, None, q, r)))
        .route("/api/exchanges/{vhost}", get(|s, c, Path(v), q, r| list_exchanges(s, c, Some(v), q, r)))
        .route("/api/exchanges/{vhost}/{name}", get(show).put(declare).delete(remove))
        .route("/api/exchanges/{vhost}/{name}/publish", post(publish))
        .route("/api/exchanges/{vhost}/{name}/bindings/source", get(super::bindings::from_exchange))
        .route("/api/exchanges/{vhost}/{name}/bindings/destination", get(super::bindings::to_exchange))
}

/// The name in a path as the broker knows it: `amq.default` is the default exchange ("").
pub(crate) fn exchange_name(path: &str) -> &str {
    if path == "amq.default" {
        ""
    } else {
        path
    }
}

struct Described<'a> {
    name: &'a str,
    kind: &'a str,
    durable: bool,
    auto_delete: bool,
    internal: bool,
    arguments: Value,
    policy: Option<String>,
    counters: CounterValues,
}

fn exchange_json(vhost: &str, x: Described<'_>, rates: &RatesView<'_>, query: &RateQuery) -> Value {
    let mut map = Map::new();
    map.insert("name".into(), x.name.into());
    map.insert("vhost".into(), vhost.into());
    map.insert("type".into(), x.kind.into());
    map.insert("durable".into(), x.durable.into());
    map.insert("auto_delete".into(), x.auto_delete.into());
    map.insert("internal".into(), x.internal.into());
    map.insert("arguments".into(), x.arguments);
    if let Some(policy) = x.policy {
        map.insert("policy".into(), policy.into());
    }
    let key = Key::Exchange(vhost.to_owned(), x.name.to_owned());
    if let Some(stats) = rates.message_stats(&key, &x.counters, EXCHANGE_STATS, query) {
        map.insert("message_stats".into(), stats);
    }
    Value::Object(map)
}

fn default_exchange(v: &VHost, rates: &RatesView<'_>, query: &RateQuery) -> Value {
    let described = Described {
        name: "",
        kind: "direct",
        durable: true,
        auto_delete: false,
        internal: false,
        arguments: json!({}),
        policy: None,
        counters: v.default_exchange_counters().snapshot(),
    };
    exchange_json(&v.name, described, rates, query)
}

fn declared_exchange(v: &VHost, x: &Exchange, rates: &RatesView<'_>, query: &RateQuery) -> Value {
    let described = Described {
        name: &x.name,
        kind: x.kind.as_str(),
        durable: x.durable,
        auto_delete: x.auto_delete,
        internal: x.internal,
        arguments: format::table(&x.arguments),
        policy: x.applied_policies().policy().map(|p| p.name.clone()),
        counters: x.counters().snapshot(),
    };
    exchange_json(&v.name, described, rates, query)
}

async fn list_exchanges(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    vhost: Option<String>,
    Query(query): Query<ListQuery>,
    Query(rate_query): Query<RateQuery>,
) -> Result<Json<Value>, ApiError> {
    let rates = ctx.rates.view();
    let mut items = Vec::new();
    for v in scope::vhosts(&ctx, &caller, vhost.as_deref())? {
        items.push(default_exchange(&v, &rates, &rate_query));
        let mut exchanges = v.exchanges();
        exchanges.sort_by(|a, b| a.name.cmp(&b.name));
        items.extend(exchanges.iter().map(|x| declared_exchange(&v, x, &rates, &rate_query)));
    }
    Ok(Json(list::respond(items, &query)?))
}

async fn show(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Query(rate_query): Query<RateQuery>,
) -> Result<Json<Value>, ApiError> {
    let v = scope::vhost(&ctx, &caller, &vhost)?;
    let rates = ctx.rates.view();
    let name = exchange_name(&name);
    let mut json = if name.is_empty() {
        default_exchange(&v, &rates, &rate_query)
    } else {
        let x = v.exchange(name).map_err(|_| ApiError::NotFound)?;
        declared_exchange(&v, &x, &rates, &rate_query)
    };
    if let Some(map) = json.as_object_mut() {
        map.insert("incoming".into(), json!([]));
        map.insert("outgoing".into(), json!([]));
    }
    Ok(Json(json))
}

#[derive(Deserialize, Default)]
struct DeclareBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    durable: Option<Value>,
    auto_delete: Option<Value>,
    internal: Option<Value>,
    arguments: Option<Value>,
}

async fn declare(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<StatusCode, ApiError> {
    ctx.broker.vhost(&vhost).ok_or_else(ApiError::vhost_not_found)?;
    let v = scope::vhost(&ctx, &caller, &vhost)?;
    let name = exchange_name(&name).to_owned();
    if name.is_empty() {
        return Err(ApiError::NotAuthorised("Access refused."));
    }
    scope::require(&ctx, &caller, &vhost, Permission::Configure, &name)?;
    let body: DeclareBody = body::json(&bytes)?;
    let kind = body.kind.unwrap_or_else(|| "direct".to_owned());
    if warren_broker::ExchangeKind::parse(&kind).is_none() {
        return Err(ApiError::BadRequest(format!("unknown exchange type '{kind}'")));
    }
    let spec = ExchangeSpec {
        name: name.as_str().into(),
        kind: kind.as_str().into(),
        passive: false,
        durable: format::boolean(body.durable.as_ref())?,
        auto_delete: format::boolean(body.auto_delete.as_ref())?,
        internal: format::boolean(body.internal.as_ref())?,
        arguments: format::arguments(body.arguments.as_ref())?,
    };
    let existed = v.exchange(&name).is_ok();
    apply(&v, Command::DeclareExchange(spec))?;
    Ok(body::put_status(existed))
}

#[derive(Deserialize, Default)]
struct DeleteQuery {
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
    let name = exchange_name(&name).to_owned();
    if name.is_empty() || name.starts_with("amq.") {
        return Err(ApiError::NotAuthorised("Access refused."));
    }
    v.exchange(&name).map_err(|_| ApiError::NotFound)?;
    scope::require(&ctx, &caller, &vhost, Permission::Configure, &name)?;
    let if_unused = query.if_unused.as_deref() == Some("true");
    apply(&v, Command::DeleteExchange { name: name.as_str().into(), if_unused })?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct PublishBody {
    properties: Option<Value>,
    routing_key: Option<String>,
    payload: Option<String>,
    payload_encoding: Option<String>,
}

async fn publish(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let v = scope::vhost(&ctx, &caller, &vhost)?;
    let body: PublishBody =
        body::json_requiring(&bytes, &["properties", "routing_key", "payload", "payload_encoding"])?;
    let payload = body.payload.unwrap_or_default();
    let payload = match body.payload_encoding.as_deref() {
        Some("string") => Bytes::from(payload.into_bytes()),
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(payload.trim())
            .map(Bytes::from)
            .map_err(|_| ApiError::BadRequest("not_base64".into()))?,
        Some(other) => {
            return Err(ApiError::bad_request_as("bad_request", json!(["unsupported_encoding", other])))
        }
        None => unreachable!("checked above"),
    };
    let name = exchange_name(&name).to_owned();
    scope::require(&ctx, &caller, &vhost, Permission::Write, &name)?;
    let properties = format::encode_properties(body.properties.as_ref())?;
    let message = Message {
        exchange: name.as_str().into(),
        routing_key: body.routing_key.unwrap_or_default().into(),
        properties,
        body: payload,
    };
    let now = now();
    let mut effects = Effects::default();
    let mut routed = Vec::new();
    let published = v.publish(message, &[], now, &mut effects, &mut routed);
    effects.apply(now.instant);
    let (result, unrouted) = published.map_err(|e| match e {
        warren_broker::BrokerError::ExchangeNotFound { .. } => {
            ApiError::BadRequest(format!("404 NOT_FOUND - {e}"))
        }
        warren_broker::BrokerError::InternalExchange { .. } => {
            ApiError::BadRequest(format!("403 ACCESS_REFUSED - {e}"))
        }
        other => ApiError::BadRequest(other.to_string()),
    })?;
    if result.stored {
        wait_for_sync(&ctx).await;
    }
    // RabbitMQ publishes on a channel of its own, mandatory and with confirms.
    let mut counted = CounterValues::default();
    counted.0[Counter::Published as usize] = 1;
    counted.0[Counter::Confirmed as usize] = 1;
    if unrouted.is_some() {
        counted.0[Counter::ReturnedUnroutable as usize] = 1;
    }
    ctx.broker.registry().count_internal_channel(&vhost, &counted);
    Ok(Json(json!({"routed": unrouted.is_none()})))
}

/// Answers a publish of a persistent message once it is on disk, as a confirm would.
async fn wait_for_sync(ctx: &ApiContext) {
    let store = ctx.broker.store();
    let ticket = store.sync_ticket();
    let (tx, rx) = tokio::sync::oneshot::channel();
    store.on_synced(
        ticket,
        Box::new(move || {
            let _ = tx.send(());
        }),
    );
    let _ = rx.await;
}
