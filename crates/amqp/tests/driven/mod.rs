//! A client connection driven as the server's loop drives one, without sockets or threads: the
//! real sans-IO `Connection` and the broker's `Session`, fed bytes and pumped. Shared by the
//! allocation test and the `hot_path` example (which includes this file by path).
// Each includer uses part of it.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use warren_amqp::{Node, Outbox, Session};
use warren_broker::{Broker, Now};
use warren_connection::{Connection, ConnectionConfig};
use warren_protocol::frame::{self, PROTOCOL_HEADER};
use warren_protocol::methods::*;
use warren_protocol::Method;

pub struct Client {
    pub now: Now,
    pub conn: Connection,
    pub session: Session,
    pub outbox: Arc<Outbox>,
    /// What the client sent that the broker has not read yet.
    pub input: BytesMut,
}

impl Client {
    /// Logs in as guest on vhost "/" and opens channel 1.
    pub fn connect(broker: &Arc<Broker>) -> Client {
        let outbox = Arc::new(Outbox::new(Box::new(|| {}), Box::new(|| {})));
        // One fixed time: the run does the same work whatever the clock says.
        let now = Now::new(Instant::now(), 1_767_225_600_000);
        let session = Session::new(
            Node::new(broker.clone()),
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40000)),
            outbox.clone(),
            Arc::new(|| {}),
            now,
        );
        let mut c = Client {
            now,
            conn: Connection::new(ConnectionConfig::default(), now.instant),
            session,
            outbox,
            input: BytesMut::new(),
        };
        c.input.extend_from_slice(PROTOCOL_HEADER);
        c.pump();
        let start_ok = ConnectionStartOk {
            mechanism: "PLAIN".into(),
            response: Bytes::from_static(b"\0guest\0guest"),
            locale: "en_US".into(),
            ..Default::default()
        };
        c.send(0, start_ok);
        c.send(0, ConnectionTuneOk { channel_max: 2047, frame_max: 131_072, heartbeat: 0 });
        c.send(0, ConnectionOpen { virtual_host: "/".into(), ..Default::default() });
        assert!(c.conn.is_open(), "the connection opened");
        c.send(1, ChannelOpen::default());
        c
    }

    /// Has the broker read everything in `input`, as one batch.
    pub fn pump(&mut self) {
        loop {
            self.conn.handle_input(&mut self.input, self.now.instant, &mut self.session);
            if !self.conn.has_events() {
                break;
            }
            self.session.handle_events(&mut self.conn, self.now);
        }
        self.session.end_of_batch(&mut self.conn);
    }

    pub fn send(&mut self, channel: u16, method: impl Into<Method>) {
        frame::write_method(&mut self.input, channel, &method.into());
        self.pump();
    }

    /// Takes what the broker sent since last time, as the writer task does, and hands the
    /// buffer back for reuse; returns how many bytes it was.
    pub fn drain_output(&mut self) -> usize {
        let out = self.outbox.take();
        let n = out.len();
        self.outbox.recycle(out.tail);
        n
    }
}
