//! Message bodies spanning many frames, empty bodies, frame boundaries.

use crate::common::raw::RawConn;
use crate::common::*;
use lapin::options::{BasicAckOptions, BasicConsumeOptions};
use lapin::types::FieldTable;
use warren_testkit::{body_frames, content_header_frame, method_frame, methods, FRAME_BODY, FRAME_HEADER, W};

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed).collect()
}

#[tokio::test]
async fn one_mebibyte_message_via_consumer_and_get() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = uniq("q-large");
    declare_queue(&ch, &q).await;
    let big = pattern(1 << 20, 7);
    publish(&ch, "", &q, &big).await;
    let other = pattern((1 << 20) + 12345, 9);
    publish(&ch, "", &q, &other).await;

    let cch = c.channel().await;
    let mut consumer = within(cch.basic_consume(
        q.as_str().into(),
        "".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    let d = next_delivery(&mut consumer).await;
    assert_eq!(d.data.len(), big.len());
    assert!(d.data == big, "1 MiB body corrupted");
    within(d.acker.ack(BasicAckOptions::default())).await.unwrap();
    let d = next_delivery(&mut consumer).await;
    assert!(d.data == other, "second large body corrupted");
    // leave it unacked and close: it is requeued intact, fetch with get
    within(cch.close(200, "bye".into())).await.unwrap();
    wait_message_count(&ch, &q, 1).await;
    let m = get(&ch, &q).await.unwrap();
    assert!(m.delivery.data == other, "requeued large body corrupted");
    assert!(m.delivery.redelivered);
}

#[tokio::test]
async fn bodies_around_frame_boundaries() {
    let b = Broker::start().await;
    let c = b.connect().await;
    let ch = c.channel().await;
    let q = uniq("q-boundaries");
    declare_queue(&ch, &q).await;
    // frame_max is 131072; a body frame carries at most 131064 bytes
    let sizes = [0usize, 1, 4095, 4096, 131_063, 131_064, 131_065, 131_072, 262_128, 262_129];
    for (i, n) in sizes.iter().enumerate() {
        publish(&ch, "", &q, &pattern(*n, i as u8)).await;
    }
    wait_message_count(&ch, &q, sizes.len() as u32).await;
    for (i, n) in sizes.iter().enumerate() {
        let body = get_body(&ch, &q).await.expect("message");
        assert_eq!(body.len(), *n);
        assert!(body == pattern(*n, i as u8), "body of {n} bytes corrupted");
    }
}

#[tokio::test]
async fn raw_publish_in_many_small_body_frames_and_delivery_frame_sizes() {
    let b = Broker::start().await;
    let mut raw = RawConn::handshake(b.addr()).await;
    raw.open_channel(1).await;
    let q = uniq("q-raw-frames");
    raw.send_method(
        1,
        50,
        10,
        &W::new().u16(0).shortstr(&q).bits(&[false, false, true, true, false]).empty_table().build(),
    )
    .await;
    raw.expect_method(1, (50, 11)).await;

    // 1 MiB sent as 1024 body frames of 1 KiB
    let body = pattern(1 << 20, 3);
    let mut bytes = method_frame(1, 60, 40, &methods::publish("", &q, false, false));
    bytes.extend(content_header_frame(1, body.len() as u64));
    bytes.extend(body_frames(1, &body, 1024));
    raw.send(&bytes).await;

    // basic.get no-ack and reassemble what the broker sends
    raw.send_method(1, 60, 70, &W::new().u16(0).shortstr(&q).bits(&[true]).build()).await;
    let ok = raw.expect_method(1, (60, 71)).await;
    let mut a = ok.args();
    assert_eq!(a.u64(), 1, "delivery tag");
    let header = raw.next_frame().await;
    assert_eq!((header.ty, header.channel), (FRAME_HEADER, 1));
    // args() skips the first four bytes: class-id and weight
    let size = header.args().u64() as usize;
    assert_eq!(size, body.len());
    let mut got = Vec::with_capacity(size);
    let mut frames = 0;
    while got.len() < size {
        let f = raw.next_frame().await;
        assert_eq!((f.ty, f.channel), (FRAME_BODY, 1));
        assert!(
            f.payload.len() as u32 <= raw.frame_max - 8,
            "body frame of {} bytes exceeds frame_max {}",
            f.payload.len(),
            raw.frame_max
        );
        got.extend_from_slice(&f.payload);
        frames += 1;
    }
    assert_eq!(got.len(), size);
    assert!(got == body, "reassembled body corrupted");
    // 1 MiB / 131064 bytes per frame
    assert_eq!(frames, size.div_ceil(131_064));
}
