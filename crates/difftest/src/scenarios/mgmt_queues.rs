//! Management API: queues. Declared over HTTP with arguments (201, 204, inequivalent 400),
//! shown with messages in them (after their statistics settled), listed with `columns`, `sort`,
//! `sort_reverse`, pagination, `name` with and without `use_regex`, and `disable_stats`;
//! conditional deletes, an exclusive queue of an AMQP connection shown and deleted.

use serde_json::json;

use crate::harness::{Ctx, Res};
use crate::mgmt::{has_keys, path, Api, Reply, Request};
use crate::raw::{Login, QFlags, Raw};
use crate::wire::Table;

/// Publishes `count` messages to `queue` through the default exchange, over HTTP (unlogged:
/// the publishes are not what the scenario compares).
pub async fn publish_to_queue(api: &Api, vhost: &str, queue: &str, count: usize) -> Res {
    let to = format!("{}/publish", path("exchanges", &[vhost, "amq.default"]));
    for i in 0..count {
        let body = json!({"properties": {}, "routing_key": queue, "payload": format!("m{i}"), "payload_encoding": "string"});
        api.quiet(&Request::new("POST", &to).json(&body)).await?;
    }
    Ok(())
}

/// Whether every listed queue shows `messages` and `message_stats.publish` as `expected`
/// says (by name).
fn settled(reply: &Reply, expected: &[(&str, u64)]) -> bool {
    let items = reply.items();
    expected.iter().all(|(name, count)| {
        items.iter().any(|q| {
            q["name"] == *name
                && q["messages"].as_u64() == Some(*count)
                && q["message_stats"]["publish"].as_u64() == Some(*count)
        })
    })
}

/// Polls one queue until its statistics show `messages` = `count` and each of `stats` in its
/// `message_stats` (RabbitMQ's collectors update them separately), then logs it.
pub async fn show_settled(
    api: &Api,
    vhost: &str,
    queue: &str,
    count: u64,
    stats: &[(&str, u64)],
) -> Res<Reply> {
    api.poll(Request::new("GET", path("queues", &[vhost, queue])), |r| {
        let q = r.body();
        q["messages"].as_u64() == Some(count)
            && has_keys(q, &["messages_ready", "consumers"])
            && stats.iter().all(|(name, n)| q["message_stats"][*name].as_u64() == Some(*n))
    })
    .await
}

/// Declare over HTTP (with arguments, again, inequivalent, reserved name, bad argument), show a
/// queue holding messages, `disable_stats`, conditional deletes.
pub async fn mgmt_queue_declare_and_show(cx: Ctx) -> Res {
    let api = Api::guest(&cx);
    let v = api.vhost("v").await?;
    let q = path("queues", &[&v, "q1"]);
    let args = json!({"x-max-length": 10, "x-message-ttl": 60000, "x-overflow": "reject-publish", "x-dead-letter-exchange": "dlx"});
    api.put(&q, &json!({"durable": true, "auto_delete": false, "arguments": args})).await?;
    api.put(&q, &json!({"durable": true, "auto_delete": false, "arguments": args})).await?;
    api.put(&q, &json!({"durable": true, "arguments": {"x-max-length": 11}})).await?;
    api.put(&q, &json!({"durable": false, "arguments": args})).await?;
    api.put(path("queues", &[&v, "amq.q"]), &json!({})).await?;
    api.put(path("queues", &[&v, "q.badarg"]), &json!({"arguments": {"x-max-length": "ten"}})).await?;
    api.put(path("queues", &[&v, "q.defaults"]), &json!({})).await?;
    show_settled(&api, &v, "q.defaults", 0, &[]).await?;
    publish_to_queue(&api, &v, "q1", 3).await?;
    show_settled(&api, &v, "q1", 3, &[("publish", 3)]).await?;
    api.get(format!("{q}?disable_stats=true")).await?;
    api.get(format!("{}?disable_stats=true&columns=name,messages", path("queues", &[&v]))).await?;
    api.delete(format!("{q}?if-empty=true")).await?;
    api.delete(format!("{}/contents", q)).await?;
    show_settled(&api, &v, "q1", 0, &[("publish", 3)]).await?;
    api.delete(format!("{q}?if-unused=true")).await?;
    api.get(&q).await?;
    api.delete(&q).await?;
    api.delete_vhost(&v).await?;
    Ok(())
}

/// Listing parameters on a vhost with three queues holding 1, 3 and 2 messages.
pub async fn mgmt_queue_listing(cx: Ctx) -> Res {
    let api = Api::guest(&cx);
    let v = api.vhost("v").await?;
    let counts = [("q.a", 1u64), ("q.b", 3), ("q.c", 2)];
    for (i, (name, count)) in counts.iter().enumerate() {
        let body = json!({"durable": i == 1, "arguments": {"x-max-length": 10 + i}});
        api.put(path("queues", &[&v, name]), &body).await?;
        publish_to_queue(&api, &v, name, *count as usize).await?;
    }
    let list = path("queues", &[&v]);
    api.poll(Request::new("GET", &list), |r| settled(r, &counts)).await?;
    let get = |query: &str| api.get(format!("{list}?{query}"));
    get("columns=name,messages,arguments.x-max-length").await?;
    get("columns=name,messages&sort=messages").await?;
    get("columns=name,messages&sort=messages&sort_reverse=true").await?;
    get("columns=name&sort=name&sort_reverse=true").await?;
    get("columns=name,durable&sort=durable").await?;
    get("columns=name&page=1&page_size=2").await?;
    get("columns=name&page=2&page_size=2").await?;
    get("columns=name&page=1&page_size=2&sort=messages&sort_reverse=true").await?;
    get("columns=name&page=1&name=q.b").await?;
    get("columns=name&page=1&name=%5Eq%5C.%5Bac%5D%24&use_regex=true").await?;
    get("columns=name&page=1&name=q.%5Bac%5D").await?;
    get("columns=name&page=3&page_size=2").await?;
    get("columns=name&page=1&page_size=0").await?;
    get("columns=name&page=1&page_size=501").await?;
    get("columns=name&page=1&name=(&use_regex=true").await?;
    get("disable_stats=true").await?;
    api.get(format!("/api/queues?page=1&name={}&columns=name,vhost", v)).await?;
    api.delete_vhost(&v).await?;
    Ok(())
}

/// An exclusive queue of an AMQP connection: shown (its owner), deleted over HTTP.
pub async fn mgmt_queue_exclusive(cx: Ctx) -> Res {
    let api = Api::guest(&cx);
    let v = api.vhost("v").await?;
    let mut c = Raw::tcp(&cx, "c1").await?;
    c.handshake(&Login { vhost: v.clone(), ..Default::default() }).await?;
    c.open(1).await?;
    c.declare_queue(1, "q.excl", QFlags::exclusive(), Table::new()).await?;
    let at = path("queues", &[&v, "q.excl"]);
    api.poll(Request::new("GET", &at), |r| has_keys(r.body(), &["messages", "owner_pid_details"])).await?;
    api.get(format!("{}?columns=name,exclusive,owner_pid_details.peer_host", path("queues", &[&v]))).await?;
    // Refused: the queue is another connection's (RabbitMQ deletes through an AMQP channel).
    api.delete(&at).await?;
    api.get(format!("{at}?columns=name,exclusive")).await?;
    c.close().await?;
    api.delete_vhost(&v).await?;
    Ok(())
}
