//! Management API: what it shows of an AMQP client (its connection, channels and consumer),
//! and closing the connection over HTTP with an `X-Reason`.

use serde_json::json;

use crate::harness::{Abort, Ctx, Res};
use crate::mgmt::{has_keys, path, Api, Reply, Request};
use crate::raw::{Login, Raw};

/// The name of the only item of a listing.
fn only_name(reply: &Reply) -> Res<String> {
    let items = reply.items();
    match items.as_slice() {
        [one] => {
            one["name"].as_str().map(str::to_string).ok_or_else(|| Abort("an item without a name".into()))
        }
        other => Err(Abort(format!("expected one item, got {}", other.len()))),
    }
}

/// The consumers a listing of channels counts (RabbitMQ's count arrives with the channel's
/// statistics).
fn consumers_on(reply: &Reply) -> u64 {
    reply.items().iter().map(|c| c["consumer_count"].as_u64().unwrap_or(0)).sum()
}

/// A raw client on the scenario's vhost with two channels and a consumer: the connection and
/// channels listed and shown, the consumers, then DELETE of the connection with a reason,
/// which the client receives as 320 CONNECTION_FORCED.
pub async fn mgmt_connections_and_channels(cx: Ctx) -> Res {
    let api = Api::guest(&cx);
    let v = api.vhost("v").await?;
    api.put(path("queues", &[&v, "q"]), &json!({})).await?;
    let mut c = Raw::tcp(&cx, "c1").await?;
    c.handshake(&Login { vhost: v.clone(), ..Default::default() }).await?;
    c.open(1).await?;
    c.open(2).await?;
    c.consume(1, "q", "dt-consumer", false).await?;
    let connections = format!("{}/connections", path("vhosts", &[&v]));
    let listed = api
        .poll(Request::new("GET", &connections), |r| {
            let items = r.items();
            items.len() == 1 && has_keys(&items[0], &["recv_oct", "state"]) && items[0]["channels"] == 2
        })
        .await?;
    let name = only_name(&listed)?;
    let one = path("connections", &[&name]);
    api.call(Request::new("GET", &one).shown("/api/connections/<c1>")).await?;
    let channels_of = Request::new("GET", format!("{one}/channels")).shown("/api/connections/<c1>/channels");
    api.poll(channels_of, |r| r.items().len() == 2 && consumers_on(r) == 1).await?;
    let channels = format!("{}/channels", path("vhosts", &[&v]));
    let listed = api
        .poll(Request::new("GET", &channels), |r| {
            r.items().len() == 2 && r.items().iter().all(|c| has_keys(c, &["state"])) && consumers_on(r) == 1
        })
        .await?;
    let first = listed.items()[0]["name"].as_str().unwrap_or_default().to_string();
    api.call(Request::new("GET", path("channels", &[&first])).shown("/api/channels/<c1 (1)>")).await?;
    api.get(path("consumers", &[&v])).await?;
    api.call(Request::new("GET", "/api/connections/username/guest?columns=user,vhost")).await?;
    api.call(Request::new("DELETE", &one).header("X-Reason", "dt says bye").shown("/api/connections/<c1>"))
        .await?;
    c.recv(0).await?;
    c.expect_eof().await?;
    api.poll(Request::new("GET", &connections), |r| r.items().is_empty()).await?;
    api.call(Request::new("GET", &one).shown("/api/connections/<c1>")).await?;
    api.call(Request::new("DELETE", &one).shown("/api/connections/<c1>")).await?;
    api.delete_vhost(&v).await?;
    Ok(())
}

/// DELETE of a connection without `X-Reason`: RabbitMQ's default reason.
pub async fn mgmt_connection_close_default_reason(cx: Ctx) -> Res {
    let api = Api::guest(&cx);
    let v = api.vhost("v").await?;
    let mut c = Raw::tcp(&cx, "c1").await?;
    c.handshake(&Login { vhost: v.clone(), ..Default::default() }).await?;
    let connections = format!("{}/connections", path("vhosts", &[&v]));
    let listed = api
        .poll(Request::new("GET", &connections).view(crate::mgmt::View::Status), |r| r.items().len() == 1)
        .await?;
    let name = only_name(&listed)?;
    api.call(Request::new("DELETE", path("connections", &[&name])).shown("/api/connections/<c1>")).await?;
    c.recv(0).await?;
    c.expect_eof().await?;
    api.delete_vhost(&v).await?;
    Ok(())
}
