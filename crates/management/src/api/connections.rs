//! `/api/connections` (list, show, close with 320 and the `X-Reason` header's text, by user),
//! `/api/channels` and `/api/consumers`, from the core's registry. A user without the
//! monitoring or administrator tag sees only its own connections and channels, as in RabbitMQ.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use warren_broker::{ChannelMode, ChannelSnapshot, ConnectionSnapshot, Counter};

use super::auth::Caller;
use super::error::ApiError;
use super::format;
use super::list::{self, ListQuery};
use super::rates::{Key, Metric, RateQuery, RatesView, CHANNEL_STATS};
use super::scope;
use super::ApiContext;

pub(super) fn routes() -> Router<Arc<ApiContext>> {
    Router::new()
        .route("/api/connections", get(|s, c, q, r| list_connections(s, c, None, q, r)))
        .route(
            "/api/vhosts/{vhost}/connections",
            get(|s, c, Path(v), q, r| list_connections(s, c, Some(v), q, r)),
        )
        .route("/api/connections/{name}", get(show_connection).delete(close_connection))
        .route("/api/connections/{name}/channels", get(connection_channels))
        .route("/api/connections/username/{user}", get(user_connections).delete(close_user_connections))
        .route("/api/channels", get(|s, c, q, r| list_channels(s, c, None, q, r)))
        .route("/api/vhosts/{vhost}/channels", get(|s, c, Path(v), q, r| list_channels(s, c, Some(v), q, r)))
        .route("/api/channels/{name}", get(show_channel))
        .route("/api/consumers", get(|s, c| list_consumers(s, c, None)))
        .route("/api/consumers/{vhost}", get(|s, c, Path(v)| list_consumers(s, c, Some(v))))
}

/// RabbitMQ's default reason for a close asked for over the API.
const DEFAULT_CLOSE_REASON: &str = "Closed via management plugin";

fn user_of(c: &ConnectionSnapshot) -> &str {
    c.details.as_ref().map_or("", |d| d.user.as_str())
}

fn vhost_of(c: &ConnectionSnapshot) -> &str {
    c.details.as_ref().map_or("", |d| d.vhost.as_str())
}

/// The connections the caller may see, in `vhost` when given.
fn connections(ctx: &ApiContext, caller: &Caller, vhost: Option<&str>) -> Vec<ConnectionSnapshot> {
    ctx.broker
        .registry()
        .connection_snapshots()
        .into_iter()
        .filter(|c| c.details.is_some())
        .filter(|c| vhost.is_none_or(|v| vhost_of(c) == v))
        .filter(|c| caller.is_monitor() || user_of(c) == caller.name)
        .collect()
}

fn connection_json(
    ctx: &ApiContext,
    c: &ConnectionSnapshot,
    rates: &RatesView<'_>,
    query: &RateQuery,
) -> Value {
    let d = c.details.clone().unwrap_or_default();
    let name = format::connection_name(c);
    let key = Key::Connection(c.id);
    let mut map = Map::new();
    let client_properties = format::table(&d.client_properties);
    let user_provided =
        d.client_properties.get("connection_name").and_then(|v| v.as_str()).map(str::to_owned);
    for (k, v) in [
        ("name", Value::from(name)),
        ("node", ctx.node.name.clone().into()),
        ("type", "network".into()),
        ("protocol", c.protocol.into()),
        ("user", d.user.clone().into()),
        ("user_who_performed_action", d.user.into()),
        ("vhost", d.vhost.into()),
        ("state", c.state.as_str().into()),
        ("channels", c.channels.into()),
        ("channel_max", d.channel_max.into()),
        ("frame_max", d.frame_max.into()),
        ("timeout", d.heartbeat.into()),
        ("client_properties", client_properties),
        ("auth_mechanism", d.auth_mechanism.into()),
        ("connected_at", c.connected_at_ms.into()),
        ("peer_host", c.peer.map(|p| p.ip().to_string()).into()),
        ("peer_port", c.peer.map(|p| p.port()).into()),
        ("host", c.endpoint.map(|e| e.local.ip().to_string()).into()),
        ("port", c.endpoint.map(|e| e.local.port()).into()),
        ("ssl", c.endpoint.is_some_and(|e| e.tls).into()),
        ("ssl_protocol", Value::Null),
        ("ssl_cipher", Value::Null),
        ("ssl_hash", Value::Null),
        ("ssl_key_exchange", Value::Null),
        ("peer_cert_issuer", Value::Null),
        ("peer_cert_subject", Value::Null),
        ("peer_cert_validity", Value::Null),
    ] {
        map.insert(k.to_owned(), v);
    }
    if let Some(n) = user_provided {
        map.insert("user_provided_name".into(), n.into());
    }
    let recv = c.counters.get(Counter::BytesIn);
    let send = c.counters.get(Counter::BytesOut);
    rates.gauge(&mut map, &key, "recv_oct", recv, Metric::Counters(&[Counter::BytesIn]), query);
    rates.gauge(&mut map, &key, "send_oct", send, Metric::Counters(&[Counter::BytesOut]), query);
    Value::Object(map)
}

async fn list_connections(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    vhost: Option<String>,
    Query(query): Query<ListQuery>,
    Query(rate_query): Query<RateQuery>,
) -> Result<Json<Value>, ApiError> {
    if let Some(v) = &vhost {
        scope::vhost(&ctx, &caller, v)?;
    }
    let rates = ctx.rates.view();
    let entries = connections(&ctx, &caller, vhost.as_deref())
        .into_iter()
        .map(|c| (Some(format::connection_name(&c)), c))
        .collect();
    Ok(Json(list::respond_built(entries, &query, |c| connection_json(&ctx, &c, &rates, &rate_query))?))
}

fn find_connection(ctx: &ApiContext, caller: &Caller, name: &str) -> Result<ConnectionSnapshot, ApiError> {
    connections(ctx, caller, None)
        .into_iter()
        .find(|c| format::connection_name(c) == name)
        .ok_or(ApiError::NotFound)
}

async fn show_connection(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(rate_query): Query<RateQuery>,
) -> Result<Json<Value>, ApiError> {
    let c = find_connection(&ctx, &caller, &name)?;
    let mut json = connection_json(&ctx, &c, &ctx.rates.view(), &rate_query);
    // One connection shows its absent TLS details as "" where listings show null, as RabbitMQ.
    if let Some(map) = json.as_object_mut() {
        for (_, value) in map.iter_mut().filter(|(k, _)| k.starts_with("ssl_") || k.starts_with("peer_cert_"))
        {
            if value.is_null() {
                *value = Value::from("");
            }
        }
    }
    Ok(Json(json))
}

fn reason(headers: &HeaderMap) -> String {
    headers
        .get("x-reason")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .unwrap_or(DEFAULT_CLOSE_REASON)
        .to_owned()
}

fn close(ctx: &ApiContext, c: &ConnectionSnapshot, reason: &str) {
    if let Some(entry) = ctx.broker.registry().connection(c.id) {
        entry.request_close(reason);
    }
}

async fn close_connection(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let c = find_connection(&ctx, &caller, &name)?;
    close(&ctx, &c, &reason(&headers));
    Ok(StatusCode::NO_CONTENT)
}

async fn user_connections(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path(user): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    if !caller.is_monitor() && caller.name != user {
        return Err(ApiError::NotAuthorised("Not monitor user"));
    }
    let rates = ctx.rates.view();
    let items = connections(&ctx, &caller, None)
        .iter()
        .filter(|c| user_of(c) == user)
        .map(|c| connection_json(&ctx, c, &rates, &RateQuery::default()))
        .collect();
    Ok(Json(list::respond(items, &query)?))
}

async fn close_user_connections(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path(user): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    if !caller.is_administrator() && caller.name != user {
        return Err(ApiError::NotAuthorised("Not administrator user"));
    }
    let reason = reason(&headers);
    for c in connections(&ctx, &caller, None).iter().filter(|c| user_of(c) == user) {
        close(&ctx, c, &reason);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Channels with their connection, for those the caller may see.
fn channels(
    ctx: &ApiContext,
    caller: &Caller,
    vhost: Option<&str>,
) -> Vec<(ChannelSnapshot, ConnectionSnapshot)> {
    let by_id: HashMap<u64, ConnectionSnapshot> =
        connections(ctx, caller, vhost).into_iter().map(|c| (c.id, c)).collect();
    let mut out: Vec<_> = ctx
        .broker
        .registry()
        .channel_snapshots()
        .into_iter()
        .filter_map(|ch| by_id.get(&ch.connection).map(|c| (ch, c.clone())))
        .collect();
    out.sort_by_key(|(ch, c)| (c.id, ch.number));
    out
}

fn channel_json(
    ctx: &ApiContext,
    ch: &ChannelSnapshot,
    c: &ConnectionSnapshot,
    rates: &RatesView<'_>,
    query: &RateQuery,
) -> Value {
    let connection = format::connection_name(c);
    let mut map = Map::new();
    for (k, v) in [
        ("name", Value::from(format::channel_name(&connection, ch.number))),
        ("node", ctx.node.name.clone().into()),
        ("number", ch.number.into()),
        ("user", user_of(c).into()),
        ("user_who_performed_action", user_of(c).into()),
        ("vhost", vhost_of(c).into()),
        ("state", ch.state.into()),
        ("connection_details", format::connection_details(c)),
        ("confirm", (ch.mode == ChannelMode::Confirm).into()),
        ("transactional", (ch.mode == ChannelMode::Transactional).into()),
        ("consumer_count", ch.consumers.into()),
        ("prefetch_count", ch.prefetch.into()),
        ("global_prefetch_count", ch.global_prefetch.into()),
        ("messages_unacknowledged", ch.unacked.into()),
        ("messages_unconfirmed", ch.unconfirmed.into()),
        ("messages_uncommitted", 0.into()),
        ("acks_uncommitted", 0.into()),
        ("pending_raft_commands", 0.into()),
    ] {
        map.insert(k.to_owned(), v);
    }
    if let Some(stats) = rates.message_stats(&Key::Channel(ch.id), &ch.counters, CHANNEL_STATS, query) {
        map.insert("message_stats".into(), stats);
    }
    Value::Object(map)
}

async fn list_channels(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    vhost: Option<String>,
    Query(query): Query<ListQuery>,
    Query(rate_query): Query<RateQuery>,
) -> Result<Json<Value>, ApiError> {
    if let Some(v) = &vhost {
        scope::vhost(&ctx, &caller, v)?;
    }
    let rates = ctx.rates.view();
    let items = channels(&ctx, &caller, vhost.as_deref())
        .iter()
        .map(|(ch, c)| channel_json(&ctx, ch, c, &rates, &rate_query))
        .collect();
    Ok(Json(list::respond(items, &query)?))
}

async fn connection_channels(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = find_connection(&ctx, &caller, &name)?;
    let rates = ctx.rates.view();
    let items = channels(&ctx, &caller, None)
        .iter()
        .filter(|(ch, _)| ch.connection == c.id)
        .map(|(ch, c)| channel_json(&ctx, ch, c, &rates, &RateQuery::default()))
        .collect();
    Ok(Json(Value::Array(items)))
}

async fn show_channel(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(rate_query): Query<RateQuery>,
) -> Result<Json<Value>, ApiError> {
    let rates = ctx.rates.view();
    let mut json = channels(&ctx, &caller, None)
        .iter()
        .find(|(ch, c)| format::channel_name(&format::connection_name(c), ch.number) == name)
        .map(|(ch, c)| channel_json(&ctx, ch, c, &rates, &rate_query))
        .ok_or(ApiError::NotFound)?;
    // One channel also shows its consumers, and the per-queue and per-exchange rates RabbitMQ
    // keeps only in its `detailed` rates mode (empty in `basic`, as here).
    if let Some(map) = json.as_object_mut() {
        let vhost = map.get("vhost").and_then(Value::as_str).map(str::to_owned);
        let consumers: Vec<Value> = consumers_json(&ctx, vhost.as_deref(), None)
            .into_iter()
            .filter(|c| c["channel_details"]["name"] == name.as_str())
            .collect();
        map.insert("consumer_details".into(), Value::Array(consumers));
        map.insert("deliveries".into(), Value::Array(Vec::new()));
        map.insert("publishes".into(), Value::Array(Vec::new()));
    }
    Ok(Json(json))
}

/// Consumers as RabbitMQ lists them, of `queue` in `vhost` when given (every one the broker
/// has otherwise; the caller filters by visibility).
pub(crate) fn consumers_json(ctx: &ApiContext, vhost: Option<&str>, queue: Option<&str>) -> Vec<Value> {
    let channels: HashMap<u64, (ChannelSnapshot, ConnectionSnapshot)> = {
        let by_id: HashMap<u64, ConnectionSnapshot> =
            ctx.broker.registry().connection_snapshots().into_iter().map(|c| (c.id, c)).collect();
        ctx.broker
            .registry()
            .channel_snapshots()
            .into_iter()
            .filter_map(|ch| by_id.get(&ch.connection).map(|c| (ch.id, (ch.clone(), c.clone()))))
            .collect()
    };
    let mut consumers = ctx.broker.consumer_snapshots();
    consumers.retain(|s| vhost.is_none_or(|v| s.vhost == v) && queue.is_none_or(|q| s.queue == q));
    consumers
        .iter()
        .map(|s| {
            let channel_details = match channels.get(&s.target) {
                Some((ch, c)) => {
                    let connection = format::connection_name(c);
                    json!({
                        "name": format::channel_name(&connection, ch.number),
                        "number": ch.number,
                        "connection_name": connection,
                        "node": ctx.node.name,
                        "peer_host": c.peer.map(|p| p.ip().to_string()),
                        "peer_port": c.peer.map(|p| p.port()),
                        "user": user_of(c),
                    })
                }
                None => json!({}),
            };
            // The timeout in effect for this consumer, in ms, as RabbitMQ 3.12 and later show it
            // (HTTP clients written for them need it): the queue's own, else the node's; 0 when
            // there is none.
            let queue_timeout =
                ctx.broker.vhost(&s.vhost).and_then(|v| v.queue(&s.queue).ok()?.consumer_timeout());
            let consumer_timeout =
                queue_timeout.map_or_else(|| ctx.broker.consumer_timeout(), |t| t.as_millis() as u64);
            json!({
                "consumer_tag": s.tag,
                "consumer_timeout": consumer_timeout,
                "queue": {"name": s.queue, "vhost": s.vhost},
                "channel_details": channel_details,
                "ack_required": !s.no_ack,
                "exclusive": s.exclusive,
                "prefetch_count": s.prefetch,
                "arguments": format::table(&s.arguments),
                "active": true,
                "activity_status": "up",
            })
        })
        .collect()
}

async fn list_consumers(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    vhost: Option<String>,
) -> Result<Json<Value>, ApiError> {
    let visible: Vec<String> =
        scope::vhosts(&ctx, &caller, vhost.as_deref())?.iter().map(|v| v.name.clone()).collect();
    let items: Vec<Value> = consumers_json(&ctx, vhost.as_deref(), None)
        .into_iter()
        .filter(|c| c["queue"]["vhost"].as_str().is_some_and(|v| visible.iter().any(|n| n == v)))
        .collect();
    Ok(Json(Value::Array(items)))
}
