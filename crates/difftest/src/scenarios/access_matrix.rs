//! The permission matrix: every AMQP operation that needs a permission, once with each
//! permission it needs missing and once with all of them. One user's permissions cover the
//! whole matrix: a resource's name ends in `.p_` and the letters of the permissions it grants
//! (`x.p_cr`: configure and read, `q.p_`: none), matched by the three expressions below.
//! Guest makes the resources the user acts on.

use warren_protocol::methods::*;

use super::access::{login, try_call, PASSWORD};
use crate::harness::{Ctx, Res};
use crate::raw::{QFlags, Raw};
use crate::wire::{Props, Table, Val};

const CONFIGURE: &str = r"\.p_[a-z]*c[a-z]*$";
const WRITE: &str = r"\.p_[a-z]*w[a-z]*$";
const READ: &str = r"\.p_[a-z]*r[a-z]*$";

fn xdeclare(name: &str, args: Table) -> ExchangeDeclare {
    ExchangeDeclare {
        exchange: name.into(),
        kind: "direct".into(),
        arguments: args.to_field_table(),
        ..Default::default()
    }
}

fn qdeclare(name: &str, args: Table) -> QueueDeclare {
    QueueDeclare { queue: name.into(), arguments: args.to_field_table(), ..Default::default() }
}

fn ae(name: &str) -> Table {
    Table::new().with("alternate-exchange", Val::str(name))
}

fn dlx(name: &str) -> Table {
    Table::new().with("x-dead-letter-exchange", Val::str(name))
}

fn qbind(queue: &str, exchange: &str) -> QueueBind {
    QueueBind {
        queue: queue.into(),
        exchange: exchange.into(),
        routing_key: "k".into(),
        ..Default::default()
    }
}

fn qunbind(queue: &str, exchange: &str) -> QueueUnbind {
    QueueUnbind {
        queue: queue.into(),
        exchange: exchange.into(),
        routing_key: "k".into(),
        ..Default::default()
    }
}

fn xbind(destination: &str, source: &str) -> ExchangeBind {
    ExchangeBind {
        destination: destination.into(),
        source: source.into(),
        routing_key: "k".into(),
        ..Default::default()
    }
}

fn xunbind(destination: &str, source: &str) -> ExchangeUnbind {
    ExchangeUnbind {
        destination: destination.into(),
        source: source.into(),
        routing_key: "k".into(),
        ..Default::default()
    }
}

/// Publishes on channel 1 and takes what follows: a refusal (channel.close, then channel 1 is
/// opened again), or, for an allowed publish, the reply to a basic.qos that follows it.
async fn try_publish(c: &mut Raw, exchange: &str, key: &str) -> Res {
    c.publish(1, exchange, key, &Props::new(), b"m").await;
    try_call(c, BasicQos { prefetch_size: 0, prefetch_count: 0, global: false }).await
}

/// Each operation x each permission it needs.
pub async fn access_permission_matrix(cx: Ctx) -> Res {
    let user = cx.user("u");
    let n = |s: &str| cx.name(s);
    cx.ctl(&["add_user", &user, PASSWORD]).await?;
    cx.ctl(&["set_permissions", &user, CONFIGURE, WRITE, READ]).await?;

    // Guest makes what the user acts on.
    let mut g = Raw::connect(&cx, "g").await?;
    g.open(1).await?;
    for x in ["xd.p_wr", "xd.p_c", "xb.p_r", "xb.p_w", "xn.p_"] {
        g.exchange(1, &n(x), "direct").await?;
    }
    g.call(1, xdeclare(&n("xae.p_c"), ae(&n("ae.p_cr")))).await?;
    for q in ["qx.p_wr", "qx.p_c", "qp.p_cw", "qp.p_r", "qb.p_r", "qb.p_w", "qn.p_", "qm.p_r"] {
        g.queue(1, &n(q)).await?;
    }
    g.call(1, qdeclare(&n("qde.p_c"), dlx(&n("dlx.p_cr")))).await?;
    g.bind(1, &n("qm.p_r"), &n("xb.p_w"), "k", Table::new()).await?;
    g.publish_to_queue(1, &n("qp.p_r"), b"to purge").await;

    let mut c = login(&cx, "c1", &user, "/").await?;
    c.open(1).await?;
    // exchange.declare: configure; with an alternate exchange on a new exchange also read on
    // it and write on the alternate; an existing exchange needs configure only.
    try_call(&mut c, xdeclare(&n("x1.p_wr"), Table::new())).await?;
    try_call(&mut c, xdeclare(&n("x1.p_c"), Table::new())).await?;
    try_call(&mut c, xdeclare(&n("xa4.p_rw"), ae(&n("ae.p_w")))).await?;
    try_call(&mut c, xdeclare(&n("xa1.p_c"), ae(&n("ae.p_w")))).await?;
    try_call(&mut c, xdeclare(&n("xa2.p_cr"), ae(&n("ae.p_cr")))).await?;
    try_call(&mut c, xdeclare(&n("xa3.p_cr"), ae(&n("ae.p_w")))).await?;
    try_call(&mut c, xdeclare(&n("xae.p_c"), ae(&n("ae.p_cr")))).await?;
    // exchange.delete: configure.
    try_call(&mut c, ExchangeDelete { exchange: n("xd.p_wr").as_str().into(), ..Default::default() }).await?;
    try_call(&mut c, ExchangeDelete { exchange: n("xd.p_c").as_str().into(), ..Default::default() }).await?;
    // queue.declare: configure; with a dead-letter exchange on a new queue also read on it
    // and write on the dead-letter exchange; an existing queue needs configure only.
    try_call(&mut c, qdeclare(&n("q1.p_wr"), Table::new())).await?;
    try_call(&mut c, qdeclare(&n("q1.p_c"), Table::new())).await?;
    try_call(&mut c, qdeclare(&n("qd1.p_c"), dlx(&n("dlx.p_w")))).await?;
    try_call(&mut c, qdeclare(&n("qd2.p_cr"), dlx(&n("dlx.p_cr")))).await?;
    try_call(&mut c, qdeclare(&n("qd3.p_cr"), dlx(&n("dlx.p_w")))).await?;
    try_call(&mut c, qdeclare(&n("qde.p_c"), dlx(&n("dlx.p_cr")))).await?;
    // queue.delete: configure.
    try_call(&mut c, QueueDelete { queue: n("qx.p_wr").as_str().into(), ..Default::default() }).await?;
    try_call(&mut c, QueueDelete { queue: n("qx.p_c").as_str().into(), ..Default::default() }).await?;
    // queue.purge: read.
    try_call(&mut c, QueuePurge { queue: n("qp.p_cw").as_str().into(), ..Default::default() }).await?;
    try_call(&mut c, QueuePurge { queue: n("qp.p_r").as_str().into(), ..Default::default() }).await?;
    // queue.bind / unbind: write on the queue, read on the exchange.
    for bind in [true, false] {
        for (q, x) in [("qb.p_r", "xb.p_r"), ("qb.p_w", "xb.p_w"), ("qb.p_w", "xb.p_r")] {
            match bind {
                true => try_call(&mut c, qbind(&n(q), &n(x))).await?,
                false => try_call(&mut c, qunbind(&n(q), &n(x))).await?,
            }
        }
    }
    // exchange.bind / unbind: write on the destination, read on the source.
    for bind in [true, false] {
        for (d, s) in [("xb.p_r", "xb.p_r"), ("xb.p_w", "xb.p_w"), ("xb.p_w", "xb.p_r")] {
            match bind {
                true => try_call(&mut c, xbind(&n(d), &n(s))).await?,
                false => try_call(&mut c, xunbind(&n(d), &n(s))).await?,
            }
        }
    }
    // basic.publish: write on the exchange (the default one is amq.default), checked before
    // the exchange is looked up.
    try_publish(&mut c, &n("xb.p_r"), "k").await?;
    try_publish(&mut c, "", &n("qm.p_r")).await?;
    try_publish(&mut c, &n("nx.p_"), "k").await?;
    try_publish(&mut c, &n("nx.p_w"), "k").await?;
    try_publish(&mut c, &n("xb.p_w"), "k").await?;
    // basic.get and basic.consume: read.
    try_call(&mut c, BasicGet { queue: n("qp.p_cw").as_str().into(), no_ack: true, ..Default::default() })
        .await?;
    try_call(&mut c, BasicGet { queue: n("qm.p_r").as_str().into(), no_ack: true, ..Default::default() })
        .await?;
    try_call(&mut c, BasicConsume { queue: n("qp.p_cw").as_str().into(), ..Default::default() }).await?;
    let consume =
        BasicConsume { queue: n("qp.p_r").as_str().into(), consumer_tag: "t1".into(), ..Default::default() };
    try_call(&mut c, consume).await?;
    // Passive declares need no permission.
    c.declare_queue(1, &n("qn.p_"), QFlags { passive: true, ..Default::default() }, Table::new()).await?;
    c.call(1, ExchangeDeclare { passive: true, ..xdeclare(&n("xn.p_"), Table::new()) }).await?;
    try_call(&mut c, QueueDeclare { passive: true, ..qdeclare(&n("qmissing.p_"), Table::new()) }).await?;
    c.close().await?;
    g.close().await
}
