//! Topic permissions: routing keys a user may publish with and binding keys it may bind with
//! on one topic exchange (`{username}` and `{vhost}` filled in); other exchanges, topic or
//! not, are not affected.

use warren_protocol::methods::*;

use super::access::{login, try_call, PASSWORD};
use crate::harness::{Ctx, Res};
use crate::raw::Raw;
use crate::wire::{Props, Table};

/// Publishes on channel 1; a refusal closes channel 1 (opened again), else basic.qos answers.
async fn try_publish(c: &mut Raw, exchange: &str, key: &str) -> Res {
    c.publish(1, exchange, key, &Props::new(), key.as_bytes()).await;
    try_call(c, BasicQos { prefetch_size: 0, prefetch_count: 0, global: false }).await
}

fn bind(queue: &str, exchange: &str, key: &str) -> QueueBind {
    QueueBind {
        queue: queue.into(),
        exchange: exchange.into(),
        routing_key: key.into(),
        ..Default::default()
    }
}

/// Publish and bind with allowed and refused keys on a topic exchange with topic
/// permissions, on a topic exchange without, and on a direct exchange.
pub async fn topic_permissions(cx: Ctx) -> Res {
    let user = cx.user("u");
    let topic = cx.name("topic");
    let other = cx.name("other");
    let direct = cx.name("direct");
    let q = cx.name("q");
    let qb = cx.name("qb");
    cx.ctl(&["add_user", &user, PASSWORD]).await?;
    cx.ctl(&["set_permissions", &user, ".*", ".*", ".*"]).await?;
    let mut g = Raw::connect(&cx, "g").await?;
    g.open(1).await?;
    g.exchange(1, &topic, "topic").await?;
    g.exchange(1, &other, "topic").await?;
    g.exchange(1, &direct, "direct").await?;
    g.queue(1, &q).await?;
    g.queue(1, &qb).await?;
    for x in [&topic, &other] {
        g.bind(1, &q, x, "#", Table::new()).await?;
    }
    g.bind(1, &q, &direct, "other.a", Table::new()).await?;
    g.close().await?;
    cx.ctl(&["set_topic_permissions", &user, &topic, r"^{username}\.|^pub\.", r"^{vhost}\.|^sub\."]).await?;

    let mut c = login(&cx, "c1", &user, "/").await?;
    c.open(1).await?;
    try_publish(&mut c, &topic, "pub.a").await?;
    try_publish(&mut c, &topic, &format!("{user}.a")).await?;
    try_publish(&mut c, &topic, "other.a").await?;
    // {username} is the user's name, not a pattern that matches anyone's.
    try_publish(&mut c, &topic, "guest.a").await?;
    try_publish(&mut c, &other, "other.a").await?;
    try_publish(&mut c, &direct, "other.a").await?;
    c.drain(1, &q).await?;
    for key in ["sub.#", "/.x", "other.#", "pub.a"] {
        try_call(&mut c, bind(&qb, &topic, key)).await?;
    }
    try_call(&mut c, bind(&qb, &other, "other.#")).await?;
    try_call(&mut c, bind(&qb, &direct, "other.a")).await?;
    let unbind = |key: &str| QueueUnbind {
        queue: qb.as_str().into(),
        exchange: topic.as_str().into(),
        routing_key: key.into(),
        ..Default::default()
    };
    try_call(&mut c, unbind("other.#")).await?;
    try_call(&mut c, unbind("sub.#")).await?;
    // exchange-to-exchange bindings are checked on the source's topic permissions too.
    let xbind = ExchangeBind {
        destination: direct.as_str().into(),
        source: topic.as_str().into(),
        routing_key: "other.#".into(),
        ..Default::default()
    };
    try_call(&mut c, xbind).await?;
    c.close().await
}
