//! Connection handshake, server capabilities, channel lifecycle.

use warren_protocol::methods::*;

use crate::harness::{Ctx, Res};
use crate::lapin_client::{outcome, Lapin};
use crate::raw::{Login, Raw};

/// The whole handshake frame by frame: connection.start (version,
/// server-properties with the capabilities table, mechanisms, locales),
/// tune, open-ok; then a channel and a clean close.
pub async fn handshake_and_capabilities(cx: Ctx) -> Res {
    let mut c = Raw::tcp(&cx, "c1").await?;
    c.handshake(&Login { log_all: true, ..Default::default() }).await?;
    c.open(1).await?;
    c.call(1, ChannelClose { reply_code: 200, reply_text: "done".into(), class_id: 0, method_id: 0 }).await?;
    c.close().await
}

/// lapin's view of a connection: negotiated limits, a channel, close.
pub async fn lapin_connect_and_negotiate(cx: Ctx) -> Res {
    let c = Lapin::connect(&cx, "c1").await?;
    let conf = c.conn.configuration();
    c.log(format!(
        "negotiated channel_max={} frame_max={} heartbeat={}",
        conf.channel_max(),
        conf.frame_max(),
        conf.heartbeat()
    ));
    let ch = c.channel().await?;
    let r = ch.close(200, "bye".into()).await;
    c.log(format!("channel close: {}", outcome(&r)));
    c.close().await
}

/// connection.open of a vhost that does not exist.
pub async fn unknown_vhost_refused(cx: Ctx) -> Res {
    let mut c = Raw::tcp(&cx, "c1").await?;
    let login = Login { vhost: "dt-no-such-vhost".into(), log_all: true, ..Default::default() };
    c.handshake(&login).await?;
    Ok(())
}

/// Wrong password (the client announces authentication_failure_close).
pub async fn bad_password_refused(cx: Ctx) -> Res {
    let mut c = Raw::tcp(&cx, "c1").await?;
    let login = Login { pass: "wrong".into(), log_all: true, ..Default::default() };
    c.handshake(&login).await?;
    Ok(())
}

/// Protocol headers the server does not speak get its own header back and
/// the socket closed.
pub async fn protocol_header_mismatch(cx: Ctx) -> Res {
    for (i, header) in [&b"AMQP\x00\x00\x09\x02"[..], b"AMQP\x00\x01\x00\x00", b"XMQP\x00\x00\x09\x01"]
        .into_iter()
        .enumerate()
    {
        let mut c = Raw::tcp(&cx, &format!("c{}", i + 1)).await?;
        c.send_bytes(&format!("header {}", crate::wire::quote(header)), header).await;
        c.expect_eof().await?;
    }
    Ok(())
}

/// Open, close, reopen the same channel number; a second channel.open on
/// an open channel is a connection error.
pub async fn channel_open_close_reuse(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.open(2).await?;
    c.queue(1, &q).await?;
    c.call(1, ChannelClose { reply_code: 200, reply_text: "bye".into(), class_id: 0, method_id: 0 }).await?;
    c.open(1).await?;
    c.passive(1, &q).await?;
    c.passive(2, &q).await?;
    c.open(2).await?;
    c.expect_eof().await
}

/// A channel error closes only that channel; the number can be reused and
/// other channels keep working.
pub async fn channel_error_is_isolated(cx: Ctx) -> Res {
    let q = cx.name("q");
    let missing = cx.name("missing");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.open(1).await?;
    c.open(2).await?;
    c.queue(2, &q).await?;
    c.passive(1, &missing).await?;
    // the number is free again once the close is acknowledged
    c.open(1).await?;
    c.passive(1, &q).await?;
    c.passive(2, &q).await?;
    c.close().await
}

/// Methods on a channel that was never opened.
pub async fn method_on_unopened_channel(cx: Ctx) -> Res {
    let q = cx.name("q");
    let mut c = Raw::connect(&cx, "c1").await?;
    c.send(5, QueueDeclare { queue: q.as_str().into(), ..Default::default() }).await;
    c.expect_eof().await
}

/// Channel numbers at and above the negotiated channel_max, and channel 0.
pub async fn channel_number_limits(cx: Ctx) -> Res {
    for (label, ch) in [("c1", 2047u16), ("c2", 2048), ("c3", 65535)] {
        let mut c = Raw::connect(&cx, label).await?;
        let opened = c.open(ch).await;
        if matches!(opened, Ok(ref m) if m.is("channel.open-ok")) {
            c.declare_queue(ch, "", crate::raw::QFlags::exclusive(), crate::wire::Table::new()).await?;
            c.close().await?;
        }
    }
    let mut c = Raw::connect(&cx, "c4").await?;
    c.send(0, ChannelOpen::default()).await;
    c.expect_eof().await?;
    // the number of open channels is limited too
    let mut c = Raw::connect(&cx, "c5").await?;
    c.quiet = true;
    let mut opened = 0;
    for ch in 1..=2047u16 {
        if !c.open(ch).await?.is("channel.open-ok") {
            break;
        }
        opened += 1;
    }
    c.quiet = false;
    cx.log(format!("c5 opened channels 1..={opened}"));
    c.open(3000).await.ok();
    c.expect_eof().await
}

/// lapin: channels closed by the client and by a server error, then new
/// channels on the same connection.
pub async fn lapin_channel_reuse(cx: Ctx) -> Res {
    let q = cx.name("q");
    let c = Lapin::connect(&cx, "c1").await?;
    let ch1 = c.channel().await?;
    let r = ch1
        .queue_declare(q.as_str().into(), Default::default(), Default::default())
        .await
        .map(|q| (q.message_count(), q.consumer_count()));
    c.log(format!("declare: {} {:?}", outcome(&r), r.as_ref().ok()));
    let r = ch1.close(200, "bye".into()).await;
    c.log(format!("close ch1: {}", outcome(&r)));
    let ch2 = c.channel().await?;
    let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
    let r = ch2.queue_declare(cx.name("missing").as_str().into(), passive, Default::default()).await;
    c.log(format!("passive missing: {}", outcome(&r)));
    let r = ch2.queue_declare(q.as_str().into(), passive, Default::default()).await;
    c.log(format!("passive on closed channel: {}", outcome(&r)));
    let ch3 = c.channel().await?;
    let r =
        ch3.queue_declare(q.as_str().into(), passive, Default::default()).await.map(|q| q.message_count());
    c.log(format!("passive on new channel: {} {:?}", outcome(&r), r.as_ref().ok()));
    c.close().await
}
