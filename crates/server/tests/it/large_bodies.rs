//! Large persistent bodies across a restart, and the message size limit.
//! (large.rs covers multi-frame bodies in memory, without a restart.)

use crate::common::durable::{files_with_ext, queue_dir, DurableBroker, Stop};
use crate::common::raw::RawConn;
use crate::common::*;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation};
use warren_testkit::{body_frames, content_header_frame, method_frame, methods, FRAME_OVERHEAD};

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed).collect()
}

async fn confirm_channel(c: &Client) -> Channel {
    let ch = c.channel().await;
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.expect("confirm.select");
    ch
}

async fn declare_durable(ch: &Channel, name: &str) -> u32 {
    within(ch.queue_declare(
        name.into(),
        QueueDeclareOptions { durable: true, ..Default::default() },
        FieldTable::default(),
    ))
    .await
    .unwrap_or_else(|e| panic!("declare {name}: {e:?}"))
    .message_count()
}

fn props(i: usize) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert("index".into(), AMQPValue::LongLongInt(i as i64));
    headers.insert("note".into(), AMQPValue::LongString("large body".into()));
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_message_id(format!("big-{i}").into())
        .with_content_type("application/octet-stream".into())
        .with_headers(headers)
}

#[tokio::test]
async fn large_persistent_bodies_survive_a_crash_intact() {
    let mut b = DurableBroker::start(&[]).await;
    let q = "dq-large";
    let sizes = [1usize << 20, 20 << 20, (1 << 20) + 12_345, 10, 131_064 * 3];
    let bodies: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, n)| pattern(*n, i as u8 + 1)).collect();
    {
        let c = b.connect().await;
        let ch = confirm_channel(&c).await;
        declare_durable(&ch, q).await;
        for (i, body) in bodies.iter().enumerate() {
            let confirmation = within(async {
                ch.basic_publish("".into(), q.into(), BasicPublishOptions::default(), body, props(i))
                    .await
                    .expect("basic.publish")
                    .await
                    .expect("confirm")
            })
            .await;
            assert!(matches!(confirmation, Confirmation::Ack(_)), "message {i} not confirmed");
        }
    }
    b.restart(Stop::Kill).await;

    let c = b.connect().await;
    let ch = c.channel().await;
    assert_eq!(declare_durable(&ch, q).await, sizes.len() as u32);
    within(ch.basic_qos(2, BasicQosOptions::default())).await.unwrap();
    let mut consumer =
        within(ch.basic_consume(q.into(), "".into(), BasicConsumeOptions::default(), FieldTable::default()))
            .await
            .unwrap();
    for (i, want) in bodies.iter().enumerate() {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(d.data.len(), want.len(), "size of message {i}");
        assert!(d.data == *want, "body of message {i} ({} bytes) corrupted", want.len());
        assert_eq!(d.properties, props(i), "properties of message {i}");
        assert!(d.redelivered);
        within(d.acker.ack(BasicAckOptions::default())).await.unwrap();
    }
    within(ch.basic_qos(2, BasicQosOptions::default())).await.unwrap();
    drop(consumer);
    drop(c);
    // acknowledged: gone for good, and their segment files with them
    b.restart(Stop::Kill).await;
    let c = b.connect().await;
    let ch = c.channel().await;
    assert_eq!(declare_durable(&ch, q).await, 0);
    let dir = queue_dir(b.data_dir(), "/", q);
    let bytes: u64 =
        files_with_ext(&dir, "seg").iter().map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum();
    assert!(bytes < 8 << 20, "{bytes} bytes of segments left after every message was acknowledged");
}

#[tokio::test]
async fn body_above_max_message_size_is_refused() {
    let max = 1usize << 20;
    let mut b = DurableBroker::start(&["--max-message-size", &max.to_string()]).await;
    let q = "dq-max";
    let mut c = b.connect().await;
    let ch = confirm_channel(&c).await;
    declare_durable(&ch, q).await;
    // exactly the limit is fine
    let at_limit = pattern(max, 1);
    let confirmation = within(async {
        ch.basic_publish("".into(), q.into(), BasicPublishOptions::default(), &at_limit, props(0))
            .await
            .expect("basic.publish")
            .await
            .expect("confirm")
    })
    .await;
    assert!(matches!(confirmation, Confirmation::Ack(_)));
    // one byte more closes the channel
    let over = pattern(max + 1, 2);
    let ch2 = c.channel().await;
    within(ch2.basic_publish("".into(), q.into(), BasicPublishOptions::default(), &over, props(1)))
        .await
        .expect("basic.publish");
    c.assert_next_error(
        406,
        &format!("PRECONDITION_FAILED - message size {} is larger than configured max size {max}", max + 1),
    )
    .await;
    // the connection goes on
    let ch3 = c.channel().await;
    assert_eq!(declare_durable(&ch3, q).await, 1);
    drop(c);

    // on the wire: channel.close 406 for basic.publish, and the rest of the content is ignored
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.open_channel(1).await;
    let body = pattern(max + 100, 3);
    let mut bytes = method_frame(1, 60, 40, &methods::publish("", q, false, false));
    bytes.extend(content_header_frame(1, body.len() as u64));
    bytes.extend(body_frames(1, &body, raw.frame_max as usize - FRAME_OVERHEAD));
    raw.send_lenient(&bytes).await;
    let close = raw.expect_channel_close(1).await;
    assert_eq!(
        (close.code, close.text.as_str(), close.class_id, close.method_id),
        (
            406,
            format!(
                "PRECONDITION_FAILED - message size {} is larger than configured max size {max}",
                max + 100
            )
            .as_str(),
            60,
            40
        )
    );
    raw.open_channel(2).await;
    drop(raw);

    // nothing of the refused messages was stored
    b.restart(Stop::Kill).await;
    let c = b.connect().await;
    let ch = c.channel().await;
    assert_eq!(declare_durable(&ch, q).await, 1);
    let m = get(&ch, q).await.expect("the message at the limit");
    assert!(m.delivery.data == at_limit);
}

/// RabbitMQ words the refusal differently when the limit is its absolute maximum (512 MiB,
/// `?MAX_MSG_SIZE`): "message size N is larger than max size 536870912" (rabbit_channel.erl,
/// check_msg_size), "configured" only for a lower, configured limit.
#[tokio::test]
async fn refusal_text_at_the_absolute_maximum_matches_rabbitmq() {
    let max: u64 = 536_870_912;
    let b = DurableBroker::start(&["--max-message-size", &max.to_string()]).await;
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.open_channel(1).await;
    // Warren refuses on the content header; no need to send 512 MiB
    let mut bytes = method_frame(1, 60, 40, &methods::publish("", "q", false, false));
    bytes.extend(content_header_frame(1, max + 1));
    raw.send(&bytes).await;
    let f = loop {
        let f = raw.next_frame().await;
        if f.method_id() == Some((20, 40)) {
            break f;
        }
    };
    let close = methods::parse_close(&f);
    assert_eq!(
        (close.code, close.text.as_str()),
        (
            406,
            format!("PRECONDITION_FAILED - message size {} is larger than max size {max}", max + 1).as_str()
        )
    );
}
