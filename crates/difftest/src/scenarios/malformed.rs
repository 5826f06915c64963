//! Malformed and out-of-order frames sent with raw bytes. Each case runs on
//! its own connection; the transcript shows how the server closes it.

use warren_protocol::methods::*;

use crate::harness::{Ctx, Res};
use crate::raw::Raw;

fn frame(ty: u8, ch: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![ty];
    v.extend_from_slice(&ch.to_be_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v.push(0xCE);
    v
}

fn method(ch: u16, m: impl Into<warren_protocol::Method>) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    warren_protocol::frame::write_method(&mut out, ch, &m.into());
    out.to_vec()
}

fn header(ch: u16, size: u64) -> Vec<u8> {
    let mut p = vec![0, 60, 0, 0];
    p.extend_from_slice(&size.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    frame(2, ch, &p)
}

fn publish(ch: u16, immediate: bool) -> Vec<u8> {
    method(ch, BasicPublish { routing_key: "nowhere".into(), immediate, ..Default::default() })
}

/// Sends `bytes` on a fresh connection with channel 1 open, then a
/// basic.qos on channel 1 as a probe (answered only after the server dealt
/// with what came before on that channel): logs how the server closes the
/// connection, or the probe's answer if it does not.
async fn case(cx: &Ctx, label: &str, what: &str, bytes: Vec<u8>) -> Res {
    let mut c = Raw::connect(cx, label).await?;
    c.open(1).await?;
    c.send_bytes(what, &bytes).await;
    match c.qos(1, 0, false).await {
        Ok(m) if m.is("basic.qos-ok") => c.close().await,
        Ok(_) => c.expect_eof().await,
        // the connection close / EOF is in the transcript already
        Err(_) => Ok(()),
    }
}

/// Frame-level errors: bad frame-end, unknown frame type, short method
/// frame, oversized frame, heartbeat on a channel.
pub async fn malformed_frames(cx: Ctx) -> Res {
    let mut bad_end = frame(1, 2, &[0, 20, 0, 10, 0]);
    *bad_end.last_mut().unwrap() = 0xCD;
    case(&cx, "c1", "channel.open with frame-end 0xCD", bad_end).await?;
    case(&cx, "c2", "frame type 7", frame(7, 0, b"xx")).await?;
    case(&cx, "c3", "method frame of 1 byte", frame(1, 0, &[0])).await?;
    let mut big = publish(1, false);
    big.extend(header(1, 140_000));
    big.extend(frame(3, 1, &vec![b'z'; 140_000]));
    case(&cx, "c4", "body frame over frame_max", big).await?;
    case(&cx, "c5", "heartbeat on channel 1", frame(8, 1, &[])).await?;
    Ok(())
}

/// Content out of order: a body or header without a publish, a method
/// where the header should be, a body longer than announced.
pub async fn malformed_content_sequence(cx: Ctx) -> Res {
    case(&cx, "c1", "body frame without publish", frame(3, 1, b"hello")).await?;
    case(&cx, "c2", "content header without publish", header(1, 5)).await?;
    let mut b = publish(1, false);
    b.extend(frame(3, 1, b"hello"));
    case(&cx, "c3", "publish then body", b).await?;
    let mut b = publish(1, false);
    b.extend(publish(1, false));
    case(&cx, "c4", "publish then publish", b).await?;
    let mut b = publish(1, false);
    b.extend(header(1, 2));
    b.extend(frame(3, 1, b"too long"));
    case(&cx, "c5", "body longer than body-size", b).await?;
    let mut b = publish(1, false);
    let mut h = header(1, 0);
    h[8] = 61; // class id 61 instead of 60
    b.extend(h);
    case(&cx, "c6", "content header of class 61", b).await?;
    Ok(())
}

/// Method-level errors: truncated arguments, unknown method, methods in
/// the wrong place, unsupported options.
pub async fn malformed_methods(cx: Ctx) -> Res {
    let mut declare = vec![0, 50, 0, 10, 0, 0, 7];
    declare.extend_from_slice(b"q-short");
    case(&cx, "c1", "queue.declare with truncated arguments", frame(1, 1, &declare)).await?;
    case(&cx, "c2", "method 60.99", frame(1, 1, &[0, 60, 0, 99])).await?;
    case(
        &cx,
        "c3",
        "connection.close on channel 1",
        method(1, ConnectionClose { reply_code: 200, ..Default::default() }),
    )
    .await?;
    case(&cx, "c4", "channel.close-ok out of the blue", method(1, ChannelCloseOk)).await?;
    let mut b = publish(1, true);
    b.extend(header(1, 0));
    case(&cx, "c5", "publish immediate=true", b).await?;
    case(&cx, "c6", "channel.flow active=false", method(1, ChannelFlow { active: false })).await?;
    case(
        &cx,
        "c7",
        "basic.qos prefetch_size=10",
        method(1, BasicQos { prefetch_size: 10, prefetch_count: 0, global: false }),
    )
    .await?;
    case(&cx, "c8", "connection.tune-ok after open", method(0, ConnectionTuneOk::default())).await?;
    case(&cx, "c9", "basic.deliver from the client", method(1, BasicDeliver::default())).await?;
    Ok(())
}
