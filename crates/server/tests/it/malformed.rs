//! Raw-socket tests: malformed and out-of-order input. Each test checks the
//! broker's reaction (reply code, text, offending class/method, socket
//! closed) and that an unrelated connection opened beforehand keeps working.
//!
//! Texts are RabbitMQ 3.10's; where RabbitMQ embeds offending bytes it uses
//! Erlang term syntax (`<<0,20,0,10,0>>`, or `<<"xx">>` for printable ones).

use crate::common::raw::{assert_broker_alive, RawConn, Read};
use crate::common::*;
use lapin::Channel;
use tokio::io::AsyncWriteExt;
use warren_testkit::methods::{self, parse_close};
use warren_testkit::{
    content_header_frame, frame, method_frame, FRAME_BODY, FRAME_HEARTBEAT, FRAME_METHOD, PROTOCOL_HEADER, W,
};

/// A lapin connection opened before the misbehaving one; it must be
/// unaffected.
struct Bystander {
    _client: Client,
    ch: Channel,
    queue: String,
}

impl Bystander {
    async fn new(b: &Broker) -> Bystander {
        let client = b.connect().await;
        let ch = client.channel().await;
        let queue = uniq("q-bystander");
        declare_queue(&ch, &queue).await;
        publish(&ch, "", &queue, b"before").await;
        Bystander { _client: client, ch, queue }
    }

    async fn check(&self, b: &Broker) {
        publish(&self.ch, "", &self.queue, b"after").await;
        wait_message_count(&self.ch, &self.queue, 2).await;
        assert_eq!(bodies(&drain(&self.ch, &self.queue).await), vec!["before", "after"]);
        assert_broker_alive(b.addr()).await;
    }
}

/// Expects connection.close with exactly these fields, answers close-ok and
/// expects the broker to close the socket.
async fn expect_close(raw: &mut RawConn, code: u16, text: &str, class_id: u16, method_id: u16) {
    let close = raw.expect_connection_close().await;
    assert_eq!(
        (close.code, close.text.as_str(), close.class_id, close.method_id),
        (code, text, class_id, method_id)
    );
    assert_eq!(raw.expect_eof().await, Vec::new(), "frames after close-ok");
}

/// Expects the broker to drop the connection. RabbitMQ 3.10 closes the
/// socket without any connection.close in these cases (its reader process
/// crashes); a connection.close with one of `codes` first is tolerated.
async fn expect_dropped(raw: &mut RawConn, codes: &[u16]) {
    loop {
        match raw.read_frame().await {
            Read::Eof => return,
            Read::Frame(f) if f.ty == FRAME_HEARTBEAT => {}
            Read::Frame(f) if f.channel == 0 && f.method_id() == Some((10, 50)) => {
                let close = parse_close(&f);
                assert!(codes.contains(&close.code), "unexpected close {close:?} (allowed codes {codes:?})");
                raw.send_lenient(&method_frame(0, 10, 51, &[])).await;
            }
            Read::Frame(f) => panic!("unexpected frame {f:?}"),
        }
    }
}

fn declare_args(queue: &str, table: &[u8]) -> Vec<u8> {
    W::new().u16(0).shortstr(queue).bits(&[false, false, false, true, false]).raw_table(table).build()
}

fn publish_args(routing_key: &str, mandatory: bool, immediate: bool) -> Vec<u8> {
    methods::publish("", routing_key, mandatory, immediate)
}

#[tokio::test]
async fn wrong_protocol_header_gets_supported_header_and_close() {
    let b = Broker::start().await;
    let bystander = Bystander::new(&b).await;
    for header in
        [&b"AMQP\x00\x00\x09\x02"[..], b"AMQP\x00\x01\x00\x00", b"XMQP\x00\x00\x09\x01", b"GET / HT"]
    {
        let mut raw = RawConn::tcp(b.addr()).await;
        raw.send(header).await;
        let reply = raw.read_exact_or_eof(64).await;
        assert_eq!(reply, PROTOCOL_HEADER, "reply to header {:?}", String::from_utf8_lossy(header));
    }
    bystander.check(&b).await;
}

#[tokio::test]
async fn wrong_frame_end_is_501() {
    let b = Broker::start().await;
    let bystander = Bystander::new(&b).await;
    let mut raw = RawConn::handshake(b.addr()).await;
    let mut f = method_frame(2, 20, 10, &W::new().shortstr("").build());
    *f.last_mut().unwrap() = 0xCD;
    raw.send(&f).await;
    expect_close(
        &mut raw,
        501,
        "FRAME_ERROR - type 1, all octets = <<0,20,0,10,0>>: {invalid_frame_end_marker,205}",
        0,
        0,
    )
    .await;
    bystander.check(&b).await;
}

#[tokio::test]
async fn frame_larger_than_frame_max_is_501() {
    let b = Broker::start().await;
    let bystander = Bystander::new(&b).await;
    let mut raw = RawConn::handshake(b.addr()).await;
    assert_eq!(raw.frame_max, 131_072);
    raw.open_channel(1).await;
    let big = vec![b'z'; raw.frame_max as usize + 100];
    let mut bytes = method_frame(1, 60, 40, &publish_args("nowhere", false, false));
    bytes.extend(content_header_frame(1, big.len() as u64));
    bytes.extend(frame(FRAME_BODY, 1, &big));
    raw.send_lenient(&bytes).await;
    // RabbitMQ reports frame_max - 8 (the largest payload) as the limit
    expect_close(
        &mut raw,
        501,
        "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,131172,131064}",
        0,
        0,
    )
    .await;
    bystander.check(&b).await;
}

#[tokio::test]
async fn body_frame_of_exactly_frame_max_minus_8_is_accepted() {
    let b = Broker::start().await;
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.open_channel(1).await;
    let q = uniq("q-max-frame");
    raw.send_method(1, 50, 10, &declare_args(&q, &[])).await;
    raw.expect_method(1, (50, 11)).await;
    let body = vec![b'm'; raw.frame_max as usize - 8];
    let mut bytes = method_frame(1, 60, 40, &publish_args(&q, false, false));
    bytes.extend(content_header_frame(1, body.len() as u64));
    bytes.extend(frame(FRAME_BODY, 1, &body));
    raw.send(&bytes).await;
    // poll with basic.get (no-ack) until the message shows up
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        raw.send_method(1, 60, 70, &W::new().u16(0).shortstr(&q).bits(&[true]).build()).await;
        let f = raw.next_frame().await;
        match f.method_id() {
            Some((60, 72)) => {
                assert!(tokio::time::Instant::now() < deadline, "message never arrived");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Some((60, 71)) => break,
            other => panic!("unexpected reply {other:?}"),
        }
    }
    let header = raw.next_frame().await;
    assert_eq!(header.args().u64(), body.len() as u64);
    let f = raw.next_frame().await;
    assert_eq!((f.ty, f.payload.len()), (FRAME_BODY, body.len()));
}

#[tokio::test]
async fn truncated_frame_then_eof_closes_connection() {
    let b = Broker::start().await;
    let bystander = Bystander::new(&b).await;
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.open_channel(1).await;
    let f = method_frame(1, 50, 10, &declare_args("q-truncated", &[]));
    raw.send(&f[..f.len() / 2]).await;
    raw.stream.shutdown().await.expect("shutdown write half");
    expect_dropped(&mut raw, &[501]).await;
    bystander.check(&b).await;
}

#[tokio::test]
async fn unknown_method_id_drops_connection() {
    let b = Broker::start().await;
    let bystander = Bystander::new(&b).await;
    for (channel, class, method) in [(1u16, 60u16, 99u16), (1, 999, 10), (0, 10, 99)] {
        let mut raw = RawConn::handshake(b.addr()).await;
        raw.open_channel(1).await;
        raw.send(&method_frame(channel, class, method, &[])).await;
        expect_dropped(&mut raw, &[503, 540]).await;
    }
    bystander.check(&b).await;
}

#[tokio::test]
async fn bad_field_table_type_drops_connection() {
    let b = Broker::start().await;
    let bystander = Bystander::new(&b).await;
    for table in [
        // unknown type byte 'Z'
        W::new().shortstr("k").u8(b'Z').u32(1).build(),
        // long string running past the end of the table
        W::new().shortstr("k").u8(b'S').u32(100).build(),
    ] {
        let mut raw = RawConn::handshake(b.addr()).await;
        raw.open_channel(1).await;
        raw.send_method(1, 50, 10, &declare_args(&uniq("q-bad-table"), &table)).await;
        expect_dropped(&mut raw, &[501, 502]).await;
    }
    bystander.check(&b).await;
}

#[tokio::test]
async fn truncated_method_arguments_are_501() {
    let b = Broker::start().await;
    let bystander = Bystander::new(&b).await;
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.open_channel(1).await;
    // queue.declare with only reserved-1 and the queue name
    raw.send_method(1, 50, 10, &W::new().u16(0).shortstr("q-short").build()).await;
    expect_close(&mut raw, 501, "FRAME_ERROR - cannot decode <<0,0,7,113,45,115,104,111,114,116>>", 50, 10)
        .await;
    bystander.check(&b).await;
}

#[tokio::test]
async fn body_frame_without_publish_is_505() {
    let b = Broker::start().await;
    let bystander = Bystander::new(&b).await;
    let text = "UNEXPECTED_FRAME - expected method frame, got non method frame instead";
    // on an open channel
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.open_channel(1).await;
    raw.send(&frame(FRAME_BODY, 1, b"hello")).await;
    expect_close(&mut raw, 505, text, 0, 0).await;
    // a content header without a method
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.open_channel(1).await;
    raw.send(&content_header_frame(1, 5)).await;
    expect_close(&mut raw, 505, text, 0, 0).await;
    // on a channel that was never opened
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.send(&frame(FRAME_BODY, 3, b"hello")).await;
    expect_close(&mut raw, 505, text, 0, 0).await;
    bystander.check(&b).await;
}

#[tokio::test]
async fn publish_not_followed_by_content_header_is_505() {
    let b = Broker::start().await;
    let bystander = Bystander::new(&b).await;
    let text = "UNEXPECTED_FRAME - expected content header for class 60, got non content header \
                frame instead";
    // body instead of header
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.open_channel(1).await;
    raw.send(&method_frame(1, 60, 40, &publish_args("nowhere", false, false))).await;
    raw.send(&frame(FRAME_BODY, 1, b"hello")).await;
    expect_close(&mut raw, 505, text, 60, 40).await;
    // another method instead of header
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.open_channel(1).await;
    raw.send(&method_frame(1, 60, 40, &publish_args("nowhere", false, false))).await;
    raw.send(&method_frame(1, 60, 40, &publish_args("nowhere", false, false))).await;
    expect_close(&mut raw, 505, text, 60, 40).await;
    bystander.check(&b).await;
}

#[tokio::test]
async fn heartbeat_on_non_zero_channel_is_505() {
    let b = Broker::start().await;
    let bystander = Bystander::new(&b).await;
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.send(&frame(FRAME_HEARTBEAT, 1, &[])).await;
    expect_close(&mut raw, 505, "UNEXPECTED_FRAME - type 8, all octets = <<>>", 0, 0).await;
    bystander.check(&b).await;
}

#[tokio::test]
async fn unknown_frame_type_and_short_method_frame_are_501() {
    let b = Broker::start().await;
    let bystander = Bystander::new(&b).await;
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.send(&frame(7, 0, b"xx")).await;
    expect_close(&mut raw, 501, "FRAME_ERROR - type 7, all octets = <<\"xx\">>: unknown_frame", 0, 0).await;
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.send(&frame(FRAME_METHOD, 0, &[0])).await;
    expect_close(&mut raw, 501, "FRAME_ERROR - type 1, all octets = <<0>>: unknown_frame", 0, 0).await;
    bystander.check(&b).await;
}

#[tokio::test]
async fn method_on_unopened_channel_is_504() {
    let b = Broker::start().await;
    let bystander = Bystander::new(&b).await;
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.send_method(5, 50, 10, &declare_args("", &[])).await;
    expect_close(&mut raw, 504, "CHANNEL_ERROR - expected 'channel.open'", 50, 10).await;
    bystander.check(&b).await;
}

#[tokio::test]
async fn unsupported_features_are_540() {
    let b = Broker::start().await;
    let bystander = Bystander::new(&b).await;
    // basic.publish immediate=true
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.open_channel(1).await;
    raw.send(&method_frame(1, 60, 40, &publish_args("x", false, true))).await;
    raw.send(&content_header_frame(1, 0)).await;
    expect_close(&mut raw, 540, "NOT_IMPLEMENTED - immediate=true", 60, 40).await;
    // channel.flow active=false
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.open_channel(1).await;
    raw.send_method(1, 20, 20, &W::new().bits(&[false]).build()).await;
    expect_close(&mut raw, 540, "NOT_IMPLEMENTED - active=false", 20, 20).await;
    // basic.qos prefetch_size != 0
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.open_channel(1).await;
    raw.send_method(1, 60, 10, &W::new().u32(10).u16(0).bits(&[false]).build()).await;
    expect_close(&mut raw, 540, "NOT_IMPLEMENTED - prefetch_size!=0 (10)", 60, 10).await;
    bystander.check(&b).await;
}

#[tokio::test]
async fn misplaced_methods_are_503() {
    let b = Broker::start().await;
    let bystander = Bystander::new(&b).await;
    // connection.close on a non-zero channel
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.open_channel(1).await;
    raw.send_method(1, 10, 50, &methods::close(200, "x", 0, 0)).await;
    expect_close(&mut raw, 503, "COMMAND_INVALID - unimplemented method", 10, 50).await;
    // channel.close-ok that answers nothing
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.open_channel(1).await;
    raw.send_method(1, 20, 41, &[]).await;
    expect_close(&mut raw, 503, "COMMAND_INVALID - unimplemented method", 20, 41).await;
    bystander.check(&b).await;
}
