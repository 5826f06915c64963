//! Management API: definitions. The export of a vhost after the same setup on both brokers
//! (queues with arguments, exchanges, bindings, policies), imported into another vhost and
//! exported again; the whole broker's export, for the objects the scenario made.

use serde_json::{json, Value};

use crate::harness::{Ctx, Res};
use crate::mgmt::{path, Api, Request};

/// Sorts every array of an export by its items' JSON text: RabbitMQ lists definitions in the
/// order of its tables, which is no order (`mgmt-unordered-lists`).
fn canonical(mut export: Value) -> Value {
    if let Some(sections) = export.as_object_mut() {
        for items in sections.values_mut().filter_map(Value::as_array_mut) {
            items.sort_by_cached_key(|item| item.to_string());
        }
    }
    export
}

/// Logs an export in canonical order.
async fn log_export(api: &Api, at: String) -> Res<Value> {
    let req = Request::new("GET", at);
    let reply = api.quiet(&req).await?;
    let shown = crate::mgmt::Reply { json: reply.json.clone().map(canonical), ..reply.clone() };
    api.log(&req, &shown);
    Ok(reply.body().clone())
}

/// Keeps, of a whole-broker export, the items that belong to this scenario (named with its
/// prefix, or in its vhosts): the rest of the broker is not the scenario's.
fn ours(export: &Value, prefix: &str) -> Value {
    let mut out = serde_json::Map::new();
    for (key, value) in export.as_object().into_iter().flatten() {
        let kept = match value {
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .filter(|item| {
                        ["name", "vhost", "user"]
                            .iter()
                            .any(|k| item[*k].as_str().is_some_and(|s| s.starts_with(prefix)))
                    })
                    .cloned()
                    .collect(),
            ),
            other => other.clone(),
        };
        out.insert(key.clone(), kept);
    }
    Value::Object(out)
}

pub async fn mgmt_definitions_export(cx: Ctx) -> Res {
    let api = Api::guest(&cx);
    let v = api.vhost("v").await?;
    let u = cx.user("u");
    let prefix = u.trim_end_matches(".u").to_string();
    api.put(path("users", &[&u]), &json!({"password": "dt-secret", "tags": "management"})).await?;
    api.put(path("permissions", &[&v, &u]), &json!({"configure": "^c", "write": "^w", "read": "^r"})).await?;
    api.put(
        path("topic-permissions", &[&v, &u]),
        &json!({"exchange": "amq.topic", "write": "^w", "read": "^r"}),
    )
    .await?;
    api.put(path("queues", &[&v, "q1"]), &json!({"durable": true, "arguments": {"x-max-length": 5}})).await?;
    api.put(path("queues", &[&v, "q2"]), &json!({"durable": false, "auto_delete": true})).await?;
    api.put(
        path("exchanges", &[&v, "e1"]),
        &json!({"type": "topic", "durable": true, "arguments": {"alternate-exchange": "ae"}}),
    )
    .await?;
    api.put(path("exchanges", &[&v, "e2"]), &json!({"type": "fanout", "internal": true})).await?;
    api.post(
        path("bindings", &[&v, "e", "e1", "q", "q1"]),
        &json!({"routing_key": "a.#", "arguments": {"x": 1}}),
    )
    .await?;
    api.post(path("bindings", &[&v, "e", "e1", "e", "e2"]), &json!({"routing_key": "b"})).await?;
    api.put(
        path("policies", &[&v, "p"]),
        &json!({"pattern": "^q", "definition": {"max-length": 9}, "priority": 2, "apply-to": "queues"}),
    )
    .await?;
    api.put(
        path("operator-policies", &[&v, "op"]),
        &json!({"pattern": ".*", "definition": {"message-ttl": 1000}}),
    )
    .await?;
    api.put(path("vhost-limits", &[&v, "max-queues"]), &json!({"value": 100})).await?;
    let export = log_export(&api, path("definitions", &[&v])).await?;
    let whole = api.quiet(&Request::new("GET", "/api/definitions")).await?;
    cx.log(format!("GET /api/definitions -> {} (the scenario's objects)", whole.status));
    for line in crate::mgmt::render::lines(&canonical(ours(whole.body(), &prefix)), crate::mgmt::View::Full) {
        cx.log(line);
    }
    let v2 = api.vhost("v2").await?;
    api.post(path("definitions", &[&v2]), &export).await?;
    log_export(&api, path("definitions", &[&v2])).await?;
    api.call(Request::new("POST", path("definitions", &[&v2])).raw_body("{not json")).await?;
    api.get(path("definitions", &["dt-no-such-vhost"])).await?;
    api.delete_vhost(&v).await?;
    api.delete_vhost(&v2).await?;
    api.delete(path("users", &[&u])).await?;
    cx.forget(&u);
    Ok(())
}
