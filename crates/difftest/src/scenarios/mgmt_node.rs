//! Management API: the node's own endpoints. The overview's shape (its keys, and those of its
//! totals and message statistics, whose values depend on everything else on the broker),
//! whoami, the cluster name, the health checks and the aliveness test.

use serde_json::{json, Map, Value};

use crate::harness::{Ctx, Res};
use crate::mgmt::{has_keys, path, Api, Request, View};
use crate::raw::{Login, Raw};

/// The keys the overview has at its top and in its totals, after some traffic (RabbitMQ
/// leaves `message_stats` and `queue_totals` empty until something was counted).
pub async fn mgmt_overview_shape(cx: Ctx) -> Res {
    let api = Api::guest(&cx);
    let v = api.vhost("v").await?;
    api.put(path("queues", &[&v, "q"]), &json!({})).await?;
    let mut c = Raw::tcp(&cx, "c1").await?;
    c.handshake(&Login { vhost: v.clone(), ..Default::default() }).await?;
    c.open(1).await?;
    c.publish(1, "", "q", &Default::default(), b"counted").await;
    c.get(1, "q", true).await?;
    let overview = Request::new("GET", "/api/overview");
    let reply = api
        .poll(overview.view(View::Status), |r| {
            has_keys(
                r.body(),
                &["message_stats.publish", "message_stats.get_no_ack", "queue_totals.messages"],
            )
        })
        .await?;
    let body = reply.body();
    let mut top: Vec<&String> = body.as_object().map(|m| m.keys().collect()).unwrap_or_default();
    top.sort();
    cx.log(format!("  top-level keys: {top:?}"));
    let mut shape = Map::new();
    for part in ["object_totals", "queue_totals", "message_stats", "churn_rates"] {
        shape.insert(part.into(), body.get(part).cloned().unwrap_or(Value::Null));
    }
    for line in crate::mgmt::render::lines(&Value::Object(shape), View::Shape) {
        cx.log(line);
    }
    api.get("/api/whoami").await?;
    api.get("/api/cluster-name").await?;
    c.close().await?;
    api.delete_vhost(&v).await?;
    Ok(())
}

/// The health checks that pass, and those that fail (a port nothing listens on, a vhost that
/// does not exist), and the aliveness test.
pub async fn mgmt_health_checks(cx: Ctx) -> Res {
    let api = Api::guest(&cx);
    let v = api.vhost("v").await?;
    api.get("/api/health/checks/alarms").await?;
    api.get("/api/health/checks/local-alarms").await?;
    let amqp_port = cx.addr().port();
    api.call(
        Request::new("GET", format!("/api/health/checks/port-listener/{amqp_port}"))
            .shown("/api/health/checks/port-listener/<amqp port>"),
    )
    .await?;
    api.get("/api/health/checks/port-listener/1").await?;
    api.get("/api/health/checks/port-listener/notaport").await?;
    api.get("/api/health/checks/virtual-hosts").await?;
    api.call(Request::new("GET", "/api/health/checks/ready-to-serve-clients").view(View::Status)).await?;
    api.get(path("aliveness-test", &[&v])).await?;
    api.get(path("aliveness-test", &[&v])).await?;
    api.get(format!("{}?columns=name,durable,auto_delete", path("queues", &[&v, "aliveness-test"]))).await?;
    api.get(path("aliveness-test", &["dt-no-such-vhost"])).await?;
    api.delete_vhost(&v).await?;
    Ok(())
}
