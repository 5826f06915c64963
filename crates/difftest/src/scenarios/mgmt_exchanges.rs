//! Management API: exchanges (declared, shown, listed, reserved names, conditional delete,
//! publish with `{"routed": ...}`) and bindings (queue and exchange destinations, with and
//! without arguments, their `properties_key` and `Location`, the listings by source,
//! destination and queue).

use serde_json::json;

use crate::harness::{Ctx, Res};
use crate::mgmt::{path, Api, Request};

/// Exchanges over HTTP, and publishing through one.
pub async fn mgmt_exchanges(cx: Ctx) -> Res {
    let api = Api::guest(&cx);
    let v = api.vhost("v").await?;
    let e = path("exchanges", &[&v, "e1"]);
    let decl = json!({"type": "topic", "durable": true, "auto_delete": false, "internal": false, "arguments": {"alternate-exchange": "ae"}});
    api.put(&e, &decl).await?;
    api.put(&e, &decl).await?;
    api.put(&e, &json!({"type": "direct"})).await?;
    api.put(path("exchanges", &[&v, "e.bad"]), &json!({"type": "bananas"})).await?;
    api.put(path("exchanges", &[&v, "e.none"]), &json!({})).await?;
    api.put(path("exchanges", &[&v, "amq.mine"]), &json!({"type": "direct"})).await?;
    api.get(&e).await?;
    api.get(path("exchanges", &[&v, "amq.default"])).await?;
    api.get(format!("{}?columns=name,type,durable,internal,auto_delete", path("exchanges", &[&v]))).await?;
    api.delete(path("exchanges", &[&v, "amq.direct"])).await?;
    let publish = format!("{e}/publish");
    let message = |key: &str| json!({"properties": {}, "routing_key": key, "payload": "hi", "payload_encoding": "string"});
    api.post(&publish, &message("a.b")).await?;
    api.put(path("queues", &[&v, "q"]), &json!({})).await?;
    api.post(path("bindings", &[&v, "e", "e1", "q", "q"]), &json!({"routing_key": "a.*"})).await?;
    api.post(&publish, &message("a.b")).await?;
    api.post(&publish, &message("b.a")).await?;
    api.post(&publish, &json!({"routing_key": "a.b", "payload": "no properties"})).await?;
    api.post(
        &publish,
        &json!({"properties": {}, "routing_key": "a.b", "payload": "AAE=", "payload_encoding": "base64"}),
    )
    .await?;
    api.post(
        &publish,
        &json!({"properties": {}, "routing_key": "a.b", "payload": "x", "payload_encoding": "rot13"}),
    )
    .await?;
    api.post(
        &publish,
        &json!({"properties": {"delivery_mode": 2, "headers": {"h": "v"}, "content_type": "text/plain", "priority": 3}, "routing_key": "a.b", "payload": "p", "payload_encoding": "string"}),
    )
    .await?;
    api.post(format!("{}/publish", path("exchanges", &[&v, "amq.default"])), &message("q")).await?;
    api.post(format!("{}/publish", path("exchanges", &[&v, "e.missing"])), &message("q")).await?;
    // Five messages went into e1, three of them on to the queue.
    api.poll(Request::new("GET", &e), |r| {
        let stats = &r.body()["message_stats"];
        stats["publish_in"].as_u64() == Some(5) && stats["publish_out"].as_u64() == Some(3)
    })
    .await?;
    api.delete(format!("{e}?if-unused=true")).await?;
    api.delete(&e).await?;
    api.get(&e).await?;
    api.delete(&e).await?;
    api.delete_vhost(&v).await?;
    Ok(())
}

/// Bindings from an exchange to a queue and to an exchange.
pub async fn mgmt_bindings(cx: Ctx) -> Res {
    let api = Api::guest(&cx);
    let v = api.vhost("v").await?;
    api.put(path("exchanges", &[&v, "e1"]), &json!({"type": "direct"})).await?;
    api.put(path("exchanges", &[&v, "e2"]), &json!({"type": "fanout"})).await?;
    api.put(path("queues", &[&v, "q"]), &json!({})).await?;
    let eq = path("bindings", &[&v, "e", "e1", "q", "q"]);
    let ee = path("bindings", &[&v, "e", "e1", "e", "e2"]);
    api.post(&eq, &json!({"routing_key": "k"})).await?;
    api.post(&eq, &json!({"routing_key": "k"})).await?;
    api.post(&eq, &json!({"routing_key": "k", "arguments": {"x": 1}})).await?;
    api.post(&eq, &json!({"routing_key": "a b/c~"})).await?;
    api.post(&eq, &json!({"routing_key": ""})).await?;
    api.post(&eq, &json!({})).await?;
    api.post(&ee, &json!({"routing_key": "", "arguments": {}})).await?;
    api.post(&ee, &json!({"routing_key": "r", "arguments": {"y": "z"}})).await?;
    api.get(&eq).await?;
    api.get(&ee).await?;
    api.get(format!("{eq}/k")).await?;
    api.get(format!("{eq}/~9nmLZQ")).await?;
    api.get(format!("{eq}/a%20b%2Fc%7E")).await?;
    api.get(format!("{eq}/~")).await?;
    api.get(format!("{eq}/nope")).await?;
    api.get(format!("{}/bindings/source", path("exchanges", &[&v, "e1"]))).await?;
    api.get(format!("{}/bindings/destination", path("exchanges", &[&v, "e2"]))).await?;
    api.get(format!("{}/bindings", path("queues", &[&v, "q"]))).await?;
    api.get(path("bindings", &[&v])).await?;
    api.delete(format!("{eq}/k")).await?;
    api.delete(format!("{eq}/k")).await?;
    api.delete(format!("{ee}/~")).await?;
    api.post(path("bindings", &[&v, "e", "e1", "q", "q.missing"]), &json!({"routing_key": "k"})).await?;
    api.post(path("bindings", &[&v, "e", "e.missing", "q", "q"]), &json!({"routing_key": "k"})).await?;
    api.post(path("bindings", &[&v, "e", "amq.default", "q", "q"]), &json!({"routing_key": "k"})).await?;
    api.get(path("bindings", &[&v])).await?;
    api.delete_vhost(&v).await?;
    Ok(())
}
