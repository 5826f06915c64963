//! Health checks (`/api/health/checks/...`: alarms, local alarms, a port's or a protocol's
//! listener, virtual hosts, quorum and mirror criticality) and `/api/aliveness-test/{vhost}`, answered as
//! RabbitMQ answers them: 200 `{"status":"ok"}`, or 503 `{"status":"failed","reason":...}`.
//! `ready-to-serve-clients` is not in RabbitMQ 3.10 (it answers 404 there); Warren serves it as
//! later RabbitMQ versions document it: ok once the node serves clients, which a Warren node
//! answering HTTP does.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::json;
use warren_broker::{Command, Effects, Message, QueueSpec};

use super::auth::Caller;
use super::error::ApiError;
use super::queues::apply;
use super::scope;
use super::vhosts::now;
use super::ApiContext;

pub(super) fn routes() -> Router<Arc<ApiContext>> {
    Router::new()
        .route("/api/health/checks/alarms", get(alarms))
        .route("/api/health/checks/local-alarms", get(alarms))
        .route("/api/health/checks/port-listener/{port}", get(port_listener))
        .route("/api/health/checks/protocol-listener/{protocol}", get(protocol_listener))
        .route("/api/health/checks/virtual-hosts", get(virtual_hosts))
        // Warren has no quorum queues and no mirrors: stopping the node never loses a majority.
        .route("/api/health/checks/node-is-quorum-critical", get(ready))
        .route("/api/health/checks/node-is-mirror-sync-critical", get(ready))
        .route("/api/health/checks/ready-to-serve-clients", get(ready))
        .route("/api/aliveness-test/{vhost}", get(aliveness))
}

fn failed(body: serde_json::Value) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

async fn alarms(State(ctx): State<Arc<ApiContext>>, _: Caller) -> Response {
    let alarms = ctx.health.alarms();
    if alarms.is_empty() {
        return Json(json!({"status": "ok"})).into_response();
    }
    let listed: Vec<_> =
        alarms.iter().map(|resource| json!({"node": ctx.node.name, "resource": resource})).collect();
    failed(json!({"status": "failed", "reason": "resource alarm(s) in effect", "alarms": listed}))
}

async fn port_listener(
    State(ctx): State<Arc<ApiContext>>,
    _: Caller,
    Path(port): Path<String>,
) -> Result<Response, ApiError> {
    let port: u16 = port.parse().map_err(|_| ApiError::BadRequest("Invalid port".to_owned()))?;
    let mut ports: Vec<u16> = ctx.node.listeners.iter().map(|(_, a)| a.port()).collect();
    ports.sort_unstable();
    ports.dedup();
    if ports.contains(&port) {
        return Ok(Json(json!({"status": "ok", "port": port})).into_response());
    }
    Ok(failed(json!({"status": "failed", "reason": "No active listener", "missing": port, "ports": ports})))
}

/// The listener protocol a name means, as RabbitMQ normalizes it (`amqp091`, `amqp0-9-1`,
/// `amqp10`... are `amqp`; `amqps` is `amqp/ssl`).
fn protocol_named(name: &str) -> String {
    let name = name.to_lowercase();
    match name.as_str() {
        "amqp091" | "amqp0.9.1" | "amqp0-9-1" | "amqp0_9_1" | "amqp10" | "amqp1.0" | "amqp1-0"
        | "amqp1_0" => "amqp".to_owned(),
        "amqps" => "amqp/ssl".to_owned(),
        "https" => "https".to_owned(),
        _ => name,
    }
}

async fn protocol_listener(
    State(ctx): State<Arc<ApiContext>>,
    _: Caller,
    Path(protocol): Path<String>,
) -> Response {
    let protocol = protocol_named(&protocol);
    let mut protocols: Vec<String> = ctx.node.listeners.iter().map(|(p, _)| protocol_named(p)).collect();
    protocols.dedup();
    if protocols.contains(&protocol) {
        return Json(json!({"status": "ok", "protocol": protocol})).into_response();
    }
    failed(
        json!({"status": "failed", "reason": "No active listener", "missing": protocol, "protocols": protocols}),
    )
}

async fn virtual_hosts(State(ctx): State<Arc<ApiContext>>, _: Caller) -> Json<serde_json::Value> {
    // Every vhost Warren knows runs in the node's process: none can be down on its own.
    let _ = ctx.broker.vhosts();
    Json(json!({"status": "ok"}))
}

async fn ready(_: Caller) -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Declares `aliveness-test`, publishes a message to it and gets it back, as RabbitMQ does.
async fn aliveness(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> Result<Response, ApiError> {
    let v = scope::vhost(&ctx, &caller, &vhost)?;
    const QUEUE: &str = "aliveness-test";
    let spec = QueueSpec { name: QUEUE.into(), ..QueueSpec::default() };
    apply(&v, Command::DeclareQueue(spec))?;
    let now = now();
    let message = Message {
        exchange: "".into(),
        routing_key: QUEUE.into(),
        properties: Bytes::from_static(&[0, 0]),
        body: Bytes::from_static(b"test_message"),
    };
    let mut effects = Effects::default();
    let mut routed = Vec::new();
    let published = v.publish(message, &[], now, &mut effects, &mut routed);
    effects.apply(now.instant);
    published.map_err(|e| ApiError::Internal(e.to_string()))?;
    let q = v.queue(QUEUE).map_err(|e| ApiError::Internal(e.to_string()))?;
    match q.get(true, now.instant) {
        Some((m, _)) if &m.message.body[..] == b"test_message" => {
            Ok(Json(json!({"status": "ok"})).into_response())
        }
        Some(_) => {
            // Someone else's message, taken no-ack as RabbitMQ's check takes it.
            Ok(failed(json!({"status": "failed", "reason": "aliveness test message mismatch"})))
        }
        None => Ok(failed(json!({"status": "failed", "reason": "aliveness test message not found"}))),
    }
}
