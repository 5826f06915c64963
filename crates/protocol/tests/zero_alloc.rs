//! Parsing publish + content header + body frames, and decoding the publish
//! arguments, must not touch the heap once the read buffer is shared.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use warren_protocol::methods::BasicPublish;
use warren_protocol::{parse_frame, write_content, write_method, BasicProperties, Frame, Method};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn publish_path_does_not_allocate() {
    let mut props = BytesMut::new();
    BasicProperties {
        content_type: Some("application/json".into()),
        delivery_mode: Some(2),
        ..Default::default()
    }
    .encode(&mut props);
    let publish = Method::from(BasicPublish {
        exchange: "amq.topic".into(),
        routing_key: "a.b.c".into(),
        ..Default::default()
    });
    let mut buf = BytesMut::with_capacity(64 * 1024);
    for _ in 0..100 {
        write_method(&mut buf, 1, &publish);
        write_content(&mut buf, 1, 60, &props, &[42; 300], 131_072);
    }
    // The first split of a fresh BytesMut promotes it to a shared buffer (one allocation).
    let first = parse_frame(&mut buf, 131_072).unwrap();
    assert!(matches!(first, Some(Frame::Method { .. })));

    let before = ALLOCS.load(Ordering::Relaxed);
    let mut n = 0;
    while let Some(frame) = parse_frame(&mut buf, 131_072).unwrap() {
        if let Frame::Method { method: Method::BasicPublish(p), .. } = &frame {
            assert_eq!(&*p.routing_key, "a.b.c");
        }
        n += 1;
    }
    let after = ALLOCS.load(Ordering::Relaxed);
    assert_eq!(n, 299);
    assert_eq!(after - before, 0, "allocations while parsing");
}
