//! The node as a whole: `/api/overview`, `/api/whoami`, `/api/cluster-name`, `/api/nodes`,
//! `/api/extensions`.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::rates::{self, Key, Metric, RateQuery, CHANNEL_STATS};
use super::{ApiContext, MANAGEMENT_VERSION};

pub(super) fn routes() -> Router<Arc<ApiContext>> {
    Router::new()
        .route("/api/overview", get(overview))
        .route("/api/whoami", get(whoami))
        .route("/api/cluster-name", get(cluster_name))
        .route("/api/nodes", get(nodes))
        .route("/api/nodes/{node}", get(node))
        .route("/api/extensions", get(|_: Caller| async { Json(json!([])) }))
}

async fn whoami(caller: Caller) -> Json<Value> {
    Json(json!({"name": caller.name, "tags": caller.tags}))
}

async fn cluster_name(State(ctx): State<Arc<ApiContext>>, _: Caller) -> Json<Value> {
    Json(json!({"name": ctx.node.name}))
}

fn exchange_types() -> Value {
    let described = [
        ("direct", "AMQP direct exchange, as per the AMQP specification"),
        ("fanout", "AMQP fanout exchange, as per the AMQP specification"),
        ("headers", "AMQP headers exchange, as per the AMQP specification"),
        ("topic", "AMQP topic exchange, as per the AMQP specification"),
        ("x-consistent-hash", "Consistent Hashing Exchange"),
        ("x-delayed-message", "Delayed Message Exchange"),
        ("x-message-deduplication", "Message Deduplication Exchange."),
    ];
    Value::Array(
        described
            .iter()
            .map(|(name, description)| json!({"name": name, "description": description, "enabled": true}))
            .collect(),
    )
}

fn listeners(ctx: &ApiContext) -> Value {
    Value::Array(
        ctx.node
            .listeners
            .iter()
            .map(|(protocol, addr)| {
                json!({"node": ctx.node.name, "protocol": protocol, "ip_address": addr.ip().to_string(), "port": addr.port(), "socket_opts": {}})
            })
            .collect(),
    )
}

async fn overview(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    axum::extract::Query(rate_query): axum::extract::Query<RateQuery>,
) -> Json<Value> {
    let broker = &ctx.broker;
    let visible = |vhost: &str| super::vhosts::visible(&ctx, &caller, vhost);
    let (mut queues, mut exchanges, mut consumers) = (0u64, 0u64, 0u64);
    let (mut ready, mut unacked) = (0u64, 0u64);
    for vhost in broker.vhosts().into_iter().filter(|v| visible(&v.name)) {
        exchanges += vhost.exchanges().len() as u64 + 1;
        for q in vhost.queues() {
            queues += 1;
            consumers += u64::from(q.consumer_count());
            let stats = q.stats();
            ready += stats.ready;
            unacked += stats.unacked;
        }
    }
    let rates = ctx.rates.view();
    let totals = broker.registry().channel_totals();
    let mut counters = warren_broker::CounterValues::default();
    for (vhost, values) in &totals {
        if visible(vhost) {
            counters.add(values);
        }
    }
    let message_stats =
        rates.message_stats(&Key::Node, &counters, CHANNEL_STATS, &rate_query).unwrap_or_else(|| json!({}));
    let mut queue_totals = serde_json::Map::new();
    for (name, value, i) in [
        ("messages", ready + unacked, 0),
        ("messages_ready", ready, 1),
        ("messages_unacknowledged", unacked, 2),
    ] {
        rates.gauge(&mut queue_totals, &Key::Node, name, value, Metric::Depth(i), &RateQuery::default());
    }
    let mut churn = broker.registry().churn().snapshot();
    for vhost in broker.vhosts() {
        churn.add(&vhost.churn().snapshot());
    }
    let churn_rates = rates::churn_rates(&rates, &churn, &rate_query);
    let connections = broker.registry().connections().len();
    let channels: usize = broker.registry().connections().iter().map(|c| c.channels().len()).sum();
    Json(json!({
        "management_version": MANAGEMENT_VERSION,
        "rates_mode": "basic",
        // RabbitMQ's default retention (seconds of history per kind of object); Warren keeps
        // less (docs/management.md), but clients read this to pick `msg_rates_age`.
        "sample_retention_policies": {
            "global": [600, 3600, 28800, 86400],
            "basic": [600, 3600],
            "detailed": [600],
        },
        "exchange_types": exchange_types(),
        "product_version": ctx.node.product_version,
        "product_name": ctx.node.product_name,
        "rabbitmq_version": MANAGEMENT_VERSION,
        "cluster_name": ctx.node.name,
        "erlang_version": "",
        "erlang_full_version": "",
        "release_series_support_status": "supported",
        "disable_stats": false,
        "enable_queue_totals": false,
        "message_stats": message_stats,
        "queue_totals": queue_totals,
        "churn_rates": churn_rates,
        "object_totals": {
            "channels": channels,
            "connections": connections,
            "consumers": consumers,
            "exchanges": exchanges,
            "queues": queues,
        },
        "statistics_db_event_queue": 0,
        "node": ctx.node.name,
        "listeners": listeners(&ctx),
        "contexts": [],
    }))
}

fn node_json(ctx: &ApiContext) -> Value {
    let mut node = json!({
        "name": ctx.node.name,
        "type": "disc",
        "running": true,
        // Maintenance mode (RabbitMQ 3.8 and later, shown from 3.11): Warren has none.
        "being_drained": false,
        "uptime": ctx.node.started_at.elapsed().as_millis() as u64,
        "exchange_types": exchange_types(),
    });
    let stats = ctx.node_stats.node_stats();
    let connections = ctx.broker.registry().connection_snapshots().len() as u64;
    // What the server does not know (an embedding without /proc) is left out, not invented.
    for (key, value) in [
        ("mem_used", stats.resident_memory_bytes),
        ("mem_limit", stats.memory_limit_bytes),
        ("disk_free", stats.disk_free_bytes),
        ("disk_free_limit", stats.disk_free_limit_bytes),
        ("fd_used", stats.open_fds),
        ("fd_total", stats.max_fds),
        ("sockets_used", stats.max_tcp_sockets.map(|_| connections)),
        ("sockets_total", stats.max_tcp_sockets),
    ] {
        if let (Some(value), Some(map)) = (value, node.as_object_mut()) {
            map.insert(key.to_owned(), value.into());
        }
    }
    if let Some(map) = node.as_object_mut() {
        map.insert("mem_alarm".to_owned(), stats.alarms.memory.into());
        map.insert("disk_free_alarm".to_owned(), stats.alarms.disk.into());
    }
    node
}

async fn nodes(State(ctx): State<Arc<ApiContext>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require_monitor()?;
    Ok(Json(json!([node_json(&ctx)])))
}

async fn node(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_monitor()?;
    if name != ctx.node.name {
        return Err(ApiError::NotFound);
    }
    Ok(Json(node_json(&ctx)))
}
