//! A channel's cost does not depend on its number: a client that opens channel 65535 must not
//! make the connection hold 65536 channel slots (50 such connections once grew the broker by
//! more than a GiB).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use bytes::BytesMut;
use warren_connection::{AmqpError, Connection, ConnectionConfig, Host, LoginRefused};
use warren_protocol::frame::{self, PROTOCOL_HEADER};
use warren_protocol::methods::*;
use warren_protocol::{FieldTable, Method};

/// Counts the bytes this thread holds, so tests running in parallel do not disturb each other.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn add(bytes: isize) {
    let _ = LIVE.try_with(|live| live.set(live.get() + bytes));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as isize));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size as isize - layout.size() as isize);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Anyone;

impl Host for Anyone {
    fn authenticate(&mut self, _: &str, _: &str, _: Instant) -> Result<(), LoginRefused> {
        Ok(())
    }

    fn authenticate_external(&mut self, _: &str, _: Instant) -> Result<(), LoginRefused> {
        Ok(())
    }

    fn open_vhost(&mut self, _: &str, _: &str) -> Result<(), AmqpError> {
        Ok(())
    }
}

fn send(conn: &mut Connection, channel: u16, method: Method) {
    let mut input = BytesMut::new();
    frame::write_method(&mut input, channel, &method);
    conn.handle_input(&mut input, Instant::now(), &mut Anyone);
    while conn.poll_event().is_some() {}
    drop(conn.take_output());
}

fn opened() -> Connection {
    let mut conn = Connection::new(ConnectionConfig::default(), Instant::now());
    let mut input = BytesMut::from(&PROTOCOL_HEADER[..]);
    conn.handle_input(&mut input, Instant::now(), &mut Anyone);
    let start_ok = ConnectionStartOk {
        client_properties: FieldTable::new(),
        mechanism: "PLAIN".into(),
        response: bytes::Bytes::from_static(b"\0guest\0guest"),
        locale: "en_US".into(),
    };
    send(&mut conn, 0, start_ok.into());
    send(&mut conn, 0, ConnectionTuneOk { channel_max: 2047, frame_max: 131_072, heartbeat: 0 }.into());
    send(&mut conn, 0, ConnectionOpen { virtual_host: "/".into(), ..Default::default() }.into());
    assert!(conn.is_open());
    conn
}

/// Bytes the connection holds after opening these channels, beyond what it held before.
fn cost_of_opening(channels: &[u16]) -> isize {
    let mut conn = opened();
    // The first channel sizes buffers every later one reuses; not what is measured here.
    send(&mut conn, 1, ChannelOpen::default().into());
    let before = LIVE.with(Cell::get);
    for &channel in channels {
        send(&mut conn, channel, ChannelOpen::default().into());
        assert!(conn.channel_is_open(channel), "channel {channel} did not open");
    }
    let cost = LIVE.with(Cell::get) - before;
    drop(conn);
    cost
}

#[test]
fn channel_65535_costs_what_channel_2_costs() {
    let low = cost_of_opening(&[2]);
    let high = cost_of_opening(&[65_535]);
    assert!(high <= low.max(1024) * 2, "channel 65535 cost {high} bytes, channel 2 cost {low}");
    // Many high-numbered channels cost about as many entries, not their numbers.
    let spread: Vec<u16> = (0..100u16).map(|i| 65_535 - i * 600).collect();
    let hundred = cost_of_opening(&spread);
    assert!(hundred < 64 * 1024, "100 channels cost {hundred} bytes");
}
