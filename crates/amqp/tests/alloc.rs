//! The publish -> route -> deliver path allocates nothing per message (DESIGN.md: no heap
//! allocation beyond the body, which here is a slice of the read buffer): after a warm-up, a
//! batch of publishes to a queue with a consumer costs only amortized buffer growth.

mod driven;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use driven::Client;
use warren_broker::Broker;
use warren_protocol::frame;
use warren_protocol::methods::*;
use warren_protocol::{BasicProperties, Method};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Publishes to `q` as one read batch of `n` messages.
fn publish_batch(c: &mut Client, n: usize) {
    let mut props = BytesMut::new();
    BasicProperties { delivery_mode: Some(1), ..Default::default() }.encode(&mut props);
    let publish: Method = BasicPublish { routing_key: "q".into(), ..Default::default() }.into();
    let mut input = BytesMut::with_capacity(n * 128);
    for _ in 0..n {
        frame::write_method(&mut input, 1, &publish);
        frame::write_content(&mut input, 1, 60, &props, b"0123456789abcdef", 131_072);
    }
    c.input = input;
}

fn allocations_for_a_batch(c: &mut Client, n: usize) -> usize {
    publish_batch(c, n);
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    c.pump();
    COUNTING.store(false, Ordering::Relaxed);
    ALLOCATIONS.load(Ordering::Relaxed)
}

#[test]
fn publish_to_a_consumer_allocates_nothing_per_message() {
    let broker = Arc::new(Broker::new());
    let mut c = Client::connect(&broker);
    c.send(1, QueueDeclare { queue: "q".into(), ..Default::default() });
    c.send(1, BasicConsume { queue: "q".into(), no_ack: true, ..Default::default() });
    const N: usize = 20_000;
    // Warm-up: buffers reach their working size.
    allocations_for_a_batch(&mut c, N);
    let spare = c.outbox.take();
    c.outbox.recycle(spare.tail);
    let allocations = allocations_for_a_batch(&mut c, N);
    let delivered = c.outbox.take();
    assert!(delivered.len() > N * 16, "the messages were delivered ({} bytes)", delivered.len());
    eprintln!("{allocations} allocations for {N} published and delivered messages");
    // A handful of buffer growths and the shared read buffer, not one per message.
    assert!(allocations < N / 100, "{allocations} allocations for {N} messages");
}
