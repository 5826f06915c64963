//! `POST /api/queues/{vhost}/{name}/get`: takes up to `count` messages as basic.get would, then
//! settles them all by `ackmode` (`ack_requeue_true` and `reject_requeue_true` put them back,
//! marked redelivered; `ack_requeue_false` acknowledges; `reject_requeue_false` rejects, which
//! dead-letters), answering with RabbitMQ's list of messages.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use warren_broker::{Counter, CounterValues, Effects, Permission, Settle};

use super::auth::Caller;
use super::body;
use super::error::ApiError;
use super::format;
use super::scope;
use super::vhosts::now;
use super::ApiContext;

pub(super) fn routes() -> Router<Arc<ApiContext>> {
    Router::new().route("/api/queues/{vhost}/{name}/get", post(get_messages))
}

#[derive(Deserialize)]
struct GetBody {
    count: Option<Value>,
    ackmode: Option<String>,
    encoding: Option<String>,
    truncate: Option<Value>,
}

fn settle_for(ackmode: &str) -> Result<Settle, ApiError> {
    match ackmode {
        "ack_requeue_true" | "reject_requeue_true" => Ok(Settle::Requeue),
        "ack_requeue_false" => Ok(Settle::Ack),
        "reject_requeue_false" => Ok(Settle::Discard),
        other => Err(ApiError::BadRequest(format!("Unsupported ackmode {other}"))),
    }
}

/// A number given as a number or a string, as RabbitMQ's forms send them.
fn number(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

async fn get_messages(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let v = scope::vhost(&ctx, &caller, &vhost)?;
    let body: GetBody = body::json_requiring(&bytes, &["count", "ackmode", "encoding"])?;
    let count = body
        .count
        .as_ref()
        .and_then(number)
        .ok_or_else(|| ApiError::BadRequest("count must be an integer".into()))?;
    let base64_only = match body.encoding.as_deref() {
        Some("auto") => false,
        Some("base64") => true,
        _ => return Err(ApiError::BadRequest("Unsupported encoding. Please use auto or base64.".into())),
    };
    let how = settle_for(body.ackmode.as_deref().unwrap_or_default())?;
    let truncate = body.truncate.as_ref().and_then(number).map(|n| n as usize);
    // RabbitMQ passes on the AMQP refusal of its internal channel.
    let q = v
        .queue(&name)
        .map_err(|_| ApiError::not_found_as(format!("NOT_FOUND - no queue '{name}' in vhost '{vhost}'")))?;
    scope::require(&ctx, &caller, &vhost, Permission::Read, &name)?;

    let now = now();
    // `ack_requeue_false` takes with no_ack, as RabbitMQ does: the queue counts `get_no_ack`.
    let no_ack = matches!(how, Settle::Ack);
    let mut taken = Vec::new();
    let mut answer = Vec::new();
    // What RabbitMQ counts on the channel it opens for the request.
    let mut counted = CounterValues::default();
    for _ in 0..count {
        let Some((m, remaining)) = q.get(no_ack, now.instant) else {
            counted.0[Counter::GetEmpty as usize] += 1;
            break;
        };
        counted.0[if no_ack { Counter::GetNoAck } else { Counter::GetAck } as usize] += 1;
        if m.redelivered {
            counted.0[Counter::Redelivered as usize] += 1;
        }
        answer.push(message_json(&m, remaining, truncate, base64_only));
        if !no_ack {
            taken.push((None, m));
        }
    }
    ctx.broker.registry().count_internal_channel(&vhost, &counted);
    let mut effects = Effects::default();
    if !taken.is_empty() {
        effects.dirty(&q);
        let dead = q.settle(taken, 0, how, None);
        for (message, reason) in dead {
            v.dead_letter(&q, message, reason, now, &mut effects);
        }
        effects.wake(&q);
    }
    effects.apply(now.instant);
    Ok(Json(Value::Array(answer)))
}

fn message_json(
    m: &warren_broker::QueuedMessage,
    remaining: u32,
    truncate: Option<usize>,
    base64_only: bool,
) -> Value {
    let body = &m.message.body;
    let shown = &body[..truncate.map_or(body.len(), |n| n.min(body.len()))];
    let (payload, encoding) = match std::str::from_utf8(shown) {
        Ok(text) if !base64_only => (text.to_owned(), "string"),
        _ => (base64::engine::general_purpose::STANDARD.encode(shown), "base64"),
    };
    json!({
        "payload_bytes": body.len(),
        "redelivered": m.redelivered,
        "exchange": m.message.exchange.to_string(),
        "routing_key": m.message.routing_key.to_string(),
        "message_count": remaining,
        "properties": format::properties(&m.message.properties),
        "payload": payload,
        "payload_encoding": encoding,
    })
}
