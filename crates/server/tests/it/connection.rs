//! Connection and channel lifecycle: authentication, vhosts, negotiation,
//! channel open/close.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use crate::common::raw::{RawConn, Read};
use crate::common::*;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use warren_testkit::{heartbeat_frame, method_frame, methods, FRAME_HEARTBEAT, PROTOCOL_HEADER, R, W};

#[tokio::test]
async fn connect_open_channel_and_close() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = uniq("q-conn");
    declare_queue(&ch, &q).await;
    within(c.conn.close(200, "bye".into())).await.unwrap();
    assert!(!c.conn.status().connected());
}

#[tokio::test]
async fn wrong_password_is_refused_403() {
    let b = Broker::start().await;
    let err =
        b.try_connect(&b.url_with("guest", "not-the-password", "/")).await.expect_err("login must fail");
    assert_eq!(
        amqp_error(&err),
        Some((
            403,
            "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For \
             details see the broker logfile."
                .to_string()
        ))
    );
}

#[tokio::test]
async fn unknown_user_is_refused_403() {
    let b = Broker::start().await;
    let err = b.try_connect(&b.url_with(&uniq("nobody"), "x", "/")).await.expect_err("login must fail");
    assert_eq!(
        amqp_error(&err),
        Some((
            403,
            "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For \
             details see the broker logfile."
                .to_string()
        ))
    );
}

#[tokio::test]
async fn unknown_vhost_is_not_allowed_530() {
    let b = Broker::start().await;
    let vhost = uniq("no-such-vhost");
    let err = b.try_connect(&b.url_with("guest", "guest", &vhost)).await.expect_err("open must fail");
    assert_eq!(amqp_error(&err), Some((530, format!("NOT_ALLOWED - vhost {vhost} not found"))));
}

#[tokio::test]
async fn explicit_default_vhost_in_url() {
    let b = Broker::start().await;
    let c = Client::connect(&b.url_with("guest", "guest", "/")).await;
    assert!(b.url_with("guest", "guest", "/").ends_with("/%2F"));
    let ch = c.channel().await;
    declare_queue(&ch, &uniq("q-vhost")).await;
}

#[tokio::test]
async fn many_channels_on_one_connection() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let mut channels = Vec::new();
    for _ in 0..200 {
        channels.push(c.channel().await);
    }
    let ids: HashSet<u16> = channels.iter().map(|ch| ch.id()).collect();
    assert_eq!(ids.len(), 200, "channel ids must be distinct");
    let q = uniq("q-many");
    declare_queue(&channels[0], &q).await;
    for (i, ch) in channels.iter().enumerate() {
        publish(ch, "", &q, format!("{i}").as_bytes()).await;
    }
    wait_message_count(&channels[0], &q, 200).await;
    // close half of them; the rest still work
    for ch in channels.iter().step_by(2) {
        within(ch.close(200, "bye".into())).await.unwrap();
    }
    for ch in channels.iter().skip(1).step_by(2) {
        assert!(get_body(ch, &q).await.is_some());
    }
    assert_eq!(message_count(&channels[1], &q).await, 100);
}

#[tokio::test]
async fn channel_close_and_reopen() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = uniq("q-reopen");
    declare_queue(&ch, &q).await;
    within(ch.close(200, "normal".into())).await.unwrap();
    let ch2 = c.channel().await;
    publish(&ch2, "", &q, b"after reopen").await;
    wait_message_count(&ch2, &q, 1).await;

    // a channel error closes only that channel
    let ch3 = c.channel().await;
    let missing = uniq("q-nope");
    assert_err(
        ch3.queue_declare(
            missing.as_str().into(),
            QueueDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        ),
        404,
        &format!("NOT_FOUND - no queue '{missing}' in vhost '/'"),
    )
    .await;
    assert!(c.conn.status().connected());
    assert_eq!(bodies(&drain(&ch2, &q).await), vec!["after reopen"]);
    let ch4 = c.channel().await;
    declare_queue(&ch4, &q).await;
}

#[tokio::test]
async fn raw_channel_number_can_be_reused_after_close() {
    let b = Broker::start().await;
    let mut raw = RawConn::handshake(b.addr()).await;
    for _ in 0..3 {
        raw.open_channel(1).await;
        raw.send_method(1, 20, 40, &methods::close(200, "bye", 0, 0)).await;
        raw.expect_method(1, (20, 41)).await;
    }
    // a closed channel may not be used without reopening it
    raw.send_method(
        1,
        50,
        10,
        &W::new().u16(0).shortstr("").bits(&[false, false, true, true, false]).empty_table().build(),
    )
    .await;
    let close = raw.expect_connection_close().await;
    assert_eq!(
        (close.code, close.text.as_str(), close.class_id, close.method_id),
        (504, "CHANNEL_ERROR - expected 'channel.open'", 50, 10)
    );
}

#[tokio::test]
async fn raw_second_channel_open_is_504() {
    let b = Broker::start().await;
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.open_channel(1).await;
    raw.send_method(1, 20, 10, &W::new().shortstr("").build()).await;
    let close = raw.expect_connection_close().await;
    assert_eq!(
        (close.code, close.text.as_str(), close.class_id, close.method_id),
        (504, "CHANNEL_ERROR - second 'channel.open' seen", 20, 10)
    );
    assert_eq!(raw.expect_eof().await, Vec::new());
}

#[tokio::test]
async fn raw_second_connection_open_is_504() {
    let b = Broker::start().await;
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.send_method(0, 10, 40, &methods::connection_open("/")).await;
    let close = raw.expect_connection_close().await;
    assert_eq!(
        (close.code, close.text.as_str(), close.class_id, close.method_id),
        (504, "CHANNEL_ERROR - unexpected method in connection state running", 10, 40)
    );
}

fn read_table(r: &mut R<'_>) -> BTreeMap<String, (u8, Vec<u8>)> {
    // minimal field-table reader: only what connection.start carries
    let bytes = r.longstr();
    let mut t = R::new(&bytes);
    let mut out = BTreeMap::new();
    while !t.is_empty() {
        let key = t.shortstr();
        let ty = t.u8();
        let val = match ty {
            b'S' => t.longstr(),
            b't' => vec![t.u8()],
            b'F' => {
                let inner = t.longstr();
                let mut v = (inner.len() as u32).to_be_bytes().to_vec();
                v.extend(inner);
                v
            }
            other => panic!("unexpected field type {other} for {key}"),
        };
        out.insert(key, (ty, val));
    }
    out
}

#[tokio::test]
async fn raw_connection_start_and_tune() {
    let b = Broker::start().await;
    let mut raw = RawConn::tcp(b.addr()).await;
    raw.send(PROTOCOL_HEADER).await;
    let start = raw.expect_method(0, (10, 10)).await;
    let mut a = start.args();
    assert_eq!((a.u8(), a.u8()), (0, 9), "version-major/minor");
    let props = read_table(&mut a);
    let mechanisms = String::from_utf8(a.longstr()).unwrap();
    let locales = String::from_utf8(a.longstr()).unwrap();
    assert!(mechanisms.split(' ').any(|m| m == "PLAIN"), "mechanisms {mechanisms:?}");
    assert_eq!(locales, "en_US");
    let (ty, caps) = props.get("capabilities").expect("capabilities");
    assert_eq!(*ty, b'F');
    let caps = read_table(&mut R::new(caps));
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ] {
        assert_eq!(caps.get(cap), Some(&(b't', vec![1])), "capability {cap}");
    }
    for key in ["product", "version", "platform"] {
        assert!(matches!(props.get(key), Some((b'S', _))), "server property {key}");
    }

    // no client properties at all
    raw.send(&method_frame(0, 10, 11, &methods::start_ok_plain(&[], "guest", "guest"))).await;
    let tune = raw.expect_method(0, (10, 30)).await;
    let mut t = tune.args();
    let (channel_max, frame_max, heartbeat) = (t.u16(), t.u32(), t.u16());
    assert_eq!((channel_max, frame_max, heartbeat), (2047, 131072, 60));

    // negotiate a 1 s heartbeat: the broker must send heartbeats
    raw.send(&method_frame(0, 10, 31, &methods::tune_ok(channel_max, frame_max, 1))).await;
    raw.send(&method_frame(0, 10, 40, &methods::connection_open("/"))).await;
    raw.expect_method(0, (10, 41)).await;
    match tokio::time::timeout(Duration::from_secs(5), raw.read_frame()).await {
        Ok(Read::Frame(f)) if f.ty == FRAME_HEARTBEAT => {
            assert_eq!((f.channel, f.payload.len()), (0, 0));
        }
        Ok(Read::Frame(f)) => panic!("unexpected frame {f:?}"),
        Ok(Read::Eof) => panic!("broker closed the connection"),
        Err(_) => panic!("no heartbeat within 5 s"),
    }
    // answer with our own heartbeat and a clean close
    raw.send(&heartbeat_frame()).await;
    raw.send_method(0, 10, 50, &methods::close(200, "bye", 0, 0)).await;
    loop {
        let f = raw.next_frame().await;
        if f.method_id() == Some((10, 51)) {
            break;
        }
    }
}

#[tokio::test]
async fn raw_clean_connection_close() {
    let b = Broker::start().await;
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    raw.send_method(0, 10, 50, &methods::close(200, "bye", 0, 0)).await;
    raw.expect_method(0, (10, 51)).await;
    // after close-ok it is up to the client to close the socket (RabbitMQ
    // keeps it open until then)
}
