//! Direct reply-to: the `amq.rabbitmq.reply-to` pseudo-queue, the reply_to
//! rewrite, replies through the default exchange, and the errors.

use warren_protocol::methods::*;
use warren_protocol::BasicProperties;

use crate::harness::{Abort, Ctx, Res};
use crate::raw::{Msg, QFlags, Raw};
use crate::wire::{Props, Table};

const REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// The reply_to property of a delivered request.
fn reply_to_of(m: &Msg) -> Res<String> {
    let content = m.content.as_ref().ok_or_else(|| Abort("request without content".into()))?;
    let props = BasicProperties::decode(&content.props).map_err(|e| Abort(format!("properties: {e:?}")))?;
    props.reply_to.map(|r| r.to_string()).ok_or_else(|| Abort("request without reply_to".into()))
}

/// The RPC round trip: the requester consumes the pseudo-queue (no-ack),
/// publishes a request naming it; the server sees the rewritten name and
/// replies to it through the default exchange, twice (delivery tags), once
/// mandatory; passive declares of the name; after the cancel replies are
/// dropped (returned when mandatory) and the name is gone.
pub async fn reply_to_rpc_round_trip(cx: Ctx) -> Res {
    let q = cx.name("rpc");
    let mut client = Raw::connect(&cx, "client").await?;
    let mut server = Raw::connect(&cx, "server").await?;
    client.open(1).await?;
    server.open(1).await?;
    server.queue(1, &q).await?;
    let tag = client.consume(1, REPLY_TO, "", true).await?.consumer_tag()?;
    client.publish(1, "", &q, &Props::new().reply_to(REPLY_TO).correlation_id("c1"), b"request").await;
    server.await_count(1, &q, 1).await?;
    let request = server.get(1, &q, true).await?;
    let reply_to = reply_to_of(&request)?;
    server.publish(1, "", &reply_to, &Props::new().correlation_id("c1"), b"reply 1").await;
    client.recv(1).await?;
    server.publish(1, "", &reply_to, &Props::new().correlation_id("c1"), b"reply 2").await;
    client.recv(1).await?;
    // A mandatory reply that reaches its consumer.
    server.confirm_select(1).await?;
    server.publish_mandatory(1, "", &reply_to, &Props::new(), b"reply 3").await;
    client.recv(1).await?;
    // Returned all the same (no queue took it), then acked.
    server.recv(1).await?;
    server.recv(1).await?;
    // (The requester's own channel cannot declare its name passively: RabbitMQ's channel
    // calls itself and the connection fails with 541.)
    server.passive(1, &reply_to).await?;
    server.passive(1, REPLY_TO).await?;
    client.call(1, BasicCancel { consumer_tag: tag.as_str().into(), nowait: false }).await?;
    server.publish_mandatory(1, "", &reply_to, &Props::new(), b"too late").await;
    server.recv(1).await?;
    server.recv(1).await?;
    server.passive(1, &reply_to).await?;
    client.close().await?;
    server.close().await
}

/// Replies to a requester whose channel or connection has gone are dropped;
/// forged names reach nobody.
pub async fn reply_to_requester_gone(cx: Ctx) -> Res {
    let q = cx.name("rpc");
    let mut client = Raw::connect(&cx, "client").await?;
    let mut server = Raw::connect(&cx, "server").await?;
    client.open(1).await?;
    client.open(2).await?;
    server.open(1).await?;
    server.queue(1, &q).await?;
    client.consume(1, REPLY_TO, "reply-1", true).await?;
    client.consume(2, REPLY_TO, "reply-2", true).await?;
    client.publish(1, "", &q, &Props::new().reply_to(REPLY_TO), b"request 1").await;
    // Publishes from two channels reach the queue in either order in RabbitMQ.
    server.await_count(1, &q, 1).await?;
    client.publish(2, "", &q, &Props::new().reply_to(REPLY_TO), b"request 2").await;
    server.await_count(1, &q, 2).await?;
    let first = reply_to_of(&server.get(1, &q, true).await?)?;
    let second = reply_to_of(&server.get(1, &q, true).await?)?;
    client.close_channel(1).await?;
    server.publish_mandatory(1, "", &first, &Props::new(), b"to a closed channel").await;
    server.recv(1).await?;
    // A forged name: the second one with its key changed.
    let forged = match second.rsplit_once('.') {
        Some((head, _)) => format!("{head}.AAAAAAAAAAAAAAAAAAAAAA=="),
        None => return Err(Abort("reply_to without a key".into())),
    };
    server.publish_mandatory(1, "", &forged, &Props::new(), b"forged").await;
    server.recv(1).await?;
    server.publish_mandatory(1, "", "amq.rabbitmq.reply-to.bogus", &Props::new(), b"bogus").await;
    server.recv(1).await?;
    server.publish(1, "", &second, &Props::new(), b"to channel 2").await;
    client.recv(2).await?;
    client.close().await?;
    server.publish_mandatory(1, "", &second, &Props::new(), b"to a closed connection").await;
    server.recv(1).await?;
    server.close().await
}

/// The errors: consuming the pseudo-queue with acks, a second reply
/// consumer on a channel, a reused consumer tag, publishing with reply_to
/// and no reply consumer; declares of the pseudo-queue.
pub async fn reply_to_errors(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.queue(1, &q).await?;
    c.consume(1, REPLY_TO, "", false).await?;
    c.open(1).await?;
    c.publish(1, "", &q, &Props::new().reply_to(REPLY_TO), b"no consumer").await;
    c.recv(1).await?;
    c.open(1).await?;
    c.consume(1, REPLY_TO, "r1", true).await?;
    c.consume(1, REPLY_TO, "r2", true).await?;
    c.open(1).await?;
    c.passive(1, REPLY_TO).await?;
    c.passive(1, "amq.rabbitmq.reply-to.bogus").await?;
    c.open(1).await?;
    c.passive(1, "amq.rabbitmq.reply-tox").await?;
    c.open(1).await?;
    // Declared actively too, the pseudo-queue is not a reserved name.
    c.declare_queue(1, REPLY_TO, QFlags::default(), Table::new()).await?;
    c.declare_queue(1, "amq.rabbitmq.reply-tox", QFlags::default(), Table::new()).await?;
    c.open(1).await?;
    c.get(1, REPLY_TO, true).await?;
    c.open(1).await?;
    // Other reply_to values are left alone.
    c.publish(1, "", &q, &Props::new().reply_to("amq.rabbitmq.reply-to.x"), b"kept").await;
    c.get(1, &q, true).await?;
    // A consumer tag in use on the channel: a connection error.
    c.consume(1, &q, "taken", true).await?;
    c.consume(1, REPLY_TO, "taken", true).await?;
    c.expect_eof().await
}
