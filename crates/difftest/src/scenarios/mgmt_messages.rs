//! Management API: taking messages out of a queue over HTTP (`get` with each `ackmode`,
//! `encoding` and `truncate`) and purging it.

use serde_json::json;

use super::mgmt_queues::show_settled;
use crate::harness::{Ctx, Res};
use crate::mgmt::{path, Api};

/// get with ack_requeue_true (twice: redelivered the second time), ack_requeue_false,
/// reject_requeue_true, reject_requeue_false; encodings auto and base64 on text and binary
/// payloads, truncate; a missing queue, bad parameters; purge.
pub async fn mgmt_queue_get(cx: Ctx) -> Res {
    let api = Api::guest(&cx);
    let v = api.vhost("v").await?;
    let q = path("queues", &[&v, "q"]);
    api.put(&q, &json!({})).await?;
    let publish = format!("{}/publish", path("exchanges", &[&v, "amq.default"]));
    let props = json!({"content_type": "text/plain", "delivery_mode": 2, "headers": {"h": "v", "n": 1}, "priority": 1, "correlation_id": "c", "message_id": "m", "timestamp": 1700000000, "type": "t", "app_id": "a", "reply_to": "r", "expiration": "600000"});
    api.post(&publish, &json!({"properties": props, "routing_key": "q", "payload": "first message", "payload_encoding": "string"}))
        .await?;
    api.post(
        &publish,
        &json!({"properties": {}, "routing_key": "q", "payload": "AAH/", "payload_encoding": "base64"}),
    )
    .await?;
    for i in 3..=6 {
        api.post(&publish, &json!({"properties": {}, "routing_key": "q", "payload": format!("message {i}"), "payload_encoding": "string"}))
            .await?;
    }
    let get = format!("{q}/get");
    let take = |count: u32, ackmode: &str, encoding: &str| json!({"count": count, "ackmode": ackmode, "encoding": encoding});
    api.post(&get, &take(2, "ack_requeue_true", "auto")).await?;
    api.post(&get, &take(2, "ack_requeue_true", "base64")).await?;
    api.post(&get, &json!({"count": 3, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 4}))
        .await?;
    api.post(&get, &take(1, "ack_requeue_false", "auto")).await?;
    api.post(&get, &take(1, "reject_requeue_true", "auto")).await?;
    api.post(&get, &take(1, "reject_requeue_false", "auto")).await?;
    api.post(&get, &take(10, "ack_requeue_true", "auto")).await?;
    // Six published, fourteen taken (one without acknowledgement), one get found nothing.
    show_settled(&api, &v, "q", 4, &[("publish", 6), ("deliver_get", 14), ("get_empty", 1)]).await?;
    api.post(&get, &take(1, "ack_requeue_true", "rot13")).await?;
    api.post(&get, &json!({"ackmode": "ack_requeue_true", "encoding": "auto"})).await?;
    api.post(format!("{}/get", path("queues", &[&v, "q.missing"])), &take(1, "ack_requeue_true", "auto"))
        .await?;
    api.delete(format!("{q}/contents")).await?;
    api.post(&get, &take(1, "ack_requeue_false", "auto")).await?;
    show_settled(&api, &v, "q", 0, &[("get_empty", 2)]).await?;
    api.delete(format!("{}/contents", path("queues", &[&v, "q.missing"]))).await?;
    api.delete_vhost(&v).await?;
    Ok(())
}
