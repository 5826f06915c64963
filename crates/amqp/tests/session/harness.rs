//! The test client, the simulated clock, and helpers shared by every module.

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

pub use std::sync::Arc;

pub use bytes::{Bytes, BytesMut};
pub use warren_amqp::{Node, Outbox, Session};
pub use warren_broker::{Broker, Now};
pub use warren_connection::{Connection, ConnectionConfig};
pub use warren_protocol::frame::{self, Frame, PROTOCOL_HEADER};
pub use warren_protocol::methods::*;
pub use warren_protocol::{BasicProperties, FieldTable, FieldValue};

thread_local! {
    /// Each test runs on its own thread, with its own simulated clock.
    static CLOCK: Cell<Option<Now>> = const { Cell::new(None) };
}

/// The test's simulated time: it only moves with [`advance`].
pub fn now() -> Now {
    CLOCK.with(|c| {
        *c.get().get_or_insert_with(|| {
            let start = Now::new(Instant::now(), 1_767_225_600_000);
            c.set(Some(start));
            start
        })
    })
}

/// Moves the simulated clock `ms` milliseconds on.
pub fn advance(ms: u64) {
    let later = now().later(Duration::from_millis(ms));
    CLOCK.with(|c| c.set(Some(later)));
}

/// Lets the broker act on the simulated time (expiry, delays, x-expires).
pub fn tick(b: &Broker) {
    b.tick(now());
}

/// Checks consumer timeouts at the simulated time; how many channels timed out.
pub fn check_timeouts(b: &Broker) -> usize {
    b.registry().check_timeouts(now().instant, b.consumer_timeout())
}

/// A broker with its AMQP face, as the server runs them.
pub struct TestBroker {
    pub node: Arc<Node>,
}

impl std::ops::Deref for TestBroker {
    type Target = Broker;
    fn deref(&self) -> &Broker {
        &self.node.broker
    }
}

impl TestBroker {
    pub fn with_store(store: Arc<dyn warren_store::Store>) -> TestBroker {
        TestBroker { node: Node::new(Arc::new(Broker::with_store(store))) }
    }
}

pub struct TestClient {
    pub conn: Connection,
    pub session: Session,
    pub outbox: Arc<Outbox>,
    pub input: BytesMut,
}

/// A method, with its content when it carries one, as the client sees it.
#[derive(Debug, Clone)]
pub struct Item {
    pub channel: u16,
    pub method: Method,
    pub content: Option<(BasicProperties, Bytes)>,
}

impl Item {
    pub fn body(&self) -> &[u8] {
        &self.content.as_ref().expect("a content-bearing method").1
    }

    pub fn props(&self) -> &BasicProperties {
        &self.content.as_ref().expect("a content-bearing method").0
    }
}

impl TestClient {
    pub fn connect(broker: &TestBroker) -> Self {
        Self::connect_with(broker, FieldTable::new())
    }

    /// Connects as guest to "/", announcing `client_properties`; ends after open-ok.
    pub fn connect_with(broker: &TestBroker, client_properties: FieldTable) -> Self {
        let c = Self::login(broker, "guest", "guest", "/", client_properties)
            .unwrap_or_else(|close| panic!("{close:?}"));
        assert!(c.conn.is_open());
        c
    }

    /// Connects as `user` to `vhost`: the client after open-ok, or the connection.close that
    /// refused it.
    pub fn connect_as(
        broker: &TestBroker,
        user: &str,
        password: &str,
        vhost: &str,
    ) -> Result<Self, ConnectionClose> {
        Self::login(broker, user, password, vhost, FieldTable::new())
    }

    fn login(
        broker: &TestBroker,
        user: &str,
        password: &str,
        vhost: &str,
        client_properties: FieldTable,
    ) -> Result<Self, ConnectionClose> {
        let outbox = Arc::new(Outbox::new(Box::new(|| {}), Box::new(|| {})));
        let peer = Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40000));
        let mut c = TestClient {
            conn: Connection::new(ConnectionConfig::default(), now().instant),
            session: Session::new(broker.node.clone(), peer, outbox.clone(), Arc::new(|| {}), now()),
            outbox,
            input: BytesMut::new(),
        };
        c.input.extend_from_slice(PROTOCOL_HEADER);
        c.pump();
        c.expect_one(0, "connection.start");
        let start_ok = ConnectionStartOk {
            client_properties,
            mechanism: "PLAIN".into(),
            response: Bytes::from(format!("\0{user}\0{password}")),
            locale: "en_US".into(),
        };
        c.send(0, start_ok);
        c.expect_one(0, "connection.tune");
        c.send(0, ConnectionTuneOk { channel_max: 2047, frame_max: 131_072, heartbeat: 0 });
        c.send(0, ConnectionOpen { virtual_host: vhost.into(), ..Default::default() });
        let items = c.recv_items();
        match &items[..] {
            [Item { method: Method::ConnectionOpenOk(_), .. }] => Ok(c),
            [Item { method: Method::ConnectionClose(close), .. }] => Err(close.clone()),
            other => panic!("neither open-ok nor close: {other:#?}"),
        }
    }

    /// Queues a method frame without processing it (several may then go in one batch).
    pub fn push(&mut self, channel: u16, method: impl Into<Method>) {
        frame::write_method(&mut self.input, channel, &method.into());
    }

    pub fn push_publish_with(
        &mut self,
        channel: u16,
        publish: BasicPublish,
        props: &BasicProperties,
        body: &[u8],
    ) {
        frame::write_method(&mut self.input, channel, &publish.into());
        let mut raw = BytesMut::new();
        props.encode(&mut raw);
        frame::write_content(&mut self.input, channel, 60, &raw, body, 131_072);
    }

    pub fn push_publish(
        &mut self,
        channel: u16,
        exchange: &str,
        key: &str,
        props: &BasicProperties,
        body: &[u8],
    ) {
        let publish =
            BasicPublish { exchange: exchange.into(), routing_key: key.into(), ..Default::default() };
        self.push_publish_with(channel, publish, props, body);
    }

    /// One read batch, as the server loop runs it: input until no events, events, end of batch.
    pub fn pump(&mut self) {
        loop {
            self.conn.handle_input(&mut self.input, now().instant, &mut self.session);
            if !self.conn.has_events() {
                break;
            }
            self.session.handle_events(&mut self.conn, now());
        }
        self.session.end_of_batch(&mut self.conn);
    }

    pub fn send(&mut self, channel: u16, method: impl Into<Method>) {
        self.push(channel, method);
        self.pump();
    }

    pub fn publish(&mut self, channel: u16, exchange: &str, key: &str, props: &BasicProperties, body: &[u8]) {
        self.push_publish(channel, exchange, key, props, body);
        self.pump();
    }

    pub fn publish_with(
        &mut self,
        channel: u16,
        publish: BasicPublish,
        props: &BasicProperties,
        body: &[u8],
    ) {
        self.push_publish_with(channel, publish, props, body);
        self.pump();
    }

    /// Drains the outbox: every frame the client would have received, in order.
    pub fn recv(&mut self) -> Vec<Frame> {
        let mut buf = self.outbox.take().into_contiguous();
        let mut frames = Vec::new();
        while let Some(f) = frame::parse_frame(&mut buf, 0).expect("outbox holds valid frames") {
            frames.push(f);
        }
        assert!(buf.is_empty(), "partial frame left in the outbox");
        frames
    }

    /// Drains the outbox and groups content frames with their method.
    pub fn recv_items(&mut self) -> Vec<Item> {
        let mut items: Vec<Item> = Vec::new();
        let mut frames = self.recv().into_iter();
        while let Some(f) = frames.next() {
            let Frame::Method { channel, method } = f else {
                panic!("content frame without a method: {f:?}");
            };
            let content = if method.has_content() {
                let Some(Frame::Header { channel: hc, header }) = frames.next() else {
                    panic!("{} without a content header", method.name());
                };
                assert_eq!(hc, channel);
                let mut body = BytesMut::new();
                while (body.len() as u64) < header.body_size {
                    let Some(Frame::Body { channel: bc, payload }) = frames.next() else {
                        panic!("{} with a short body", method.name());
                    };
                    assert_eq!(bc, channel);
                    body.extend_from_slice(&payload);
                }
                assert_eq!(body.len() as u64, header.body_size);
                Some((header.decode_properties().expect("properties decode"), body.freeze()))
            } else {
                None
            };
            items.push(Item { channel, method, content });
        }
        items
    }

    pub fn expect_one(&mut self, channel: u16, name: &str) -> Item {
        let items = self.recv_items();
        assert_eq!(items.len(), 1, "expected only {name} on {channel}, got {items:#?}");
        let item = items.into_iter().next().unwrap();
        assert_eq!((item.channel, item.method.name()), (channel, name), "{item:#?}");
        item
    }

    pub fn expect_nothing(&mut self) {
        let items = self.recv_items();
        assert!(items.is_empty(), "expected nothing, got {items:#?}");
    }

    /// Sends a synchronous method and expects exactly its reply.
    pub fn rpc(&mut self, channel: u16, method: impl Into<Method>, reply: &str) -> Item {
        self.send(channel, method);
        self.expect_one(channel, reply)
    }

    pub fn open_channel(&mut self, channel: u16) {
        self.rpc(channel, ChannelOpen::default(), "channel.open-ok");
    }

    pub fn declare_queue(&mut self, channel: u16, declare: QueueDeclare) -> QueueDeclareOk {
        match self.rpc(channel, declare, "queue.declare-ok").method {
            Method::QueueDeclareOk(ok) => ok,
            _ => unreachable!(),
        }
    }

    pub fn queue(&mut self, channel: u16, name: &str) -> QueueDeclareOk {
        self.declare_queue(channel, QueueDeclare { queue: name.into(), ..Default::default() })
    }

    /// Declares a (non-durable) queue with these arguments.
    pub fn queue_with(
        &mut self,
        channel: u16,
        name: &str,
        arguments: &[(&str, FieldValue)],
    ) -> QueueDeclareOk {
        let arguments = table(arguments);
        self.declare_queue(channel, QueueDeclare { queue: name.into(), arguments, ..Default::default() })
    }

    /// Passive declare: (message_count, consumer_count).
    pub fn counts(&mut self, channel: u16, name: &str) -> (u32, u32) {
        let ok = self
            .declare_queue(channel, QueueDeclare { queue: name.into(), passive: true, ..Default::default() });
        (ok.message_count, ok.consumer_count)
    }

    pub fn exchange(&mut self, channel: u16, name: &str, kind: &str) {
        let declare = ExchangeDeclare { exchange: name.into(), kind: kind.into(), ..Default::default() };
        self.rpc(channel, declare, "exchange.declare-ok");
    }

    pub fn bind(&mut self, channel: u16, queue: &str, exchange: &str, key: &str) {
        self.bind_args(channel, queue, exchange, key, FieldTable::new());
    }

    pub fn bind_args(&mut self, channel: u16, queue: &str, exchange: &str, key: &str, arguments: FieldTable) {
        let bind = QueueBind {
            queue: queue.into(),
            exchange: exchange.into(),
            routing_key: key.into(),
            arguments,
            ..Default::default()
        };
        self.rpc(channel, bind, "queue.bind-ok");
    }

    pub fn consume(&mut self, channel: u16, queue: &str, tag: &str) {
        let consume = BasicConsume { queue: queue.into(), consumer_tag: tag.into(), ..Default::default() };
        self.send(channel, consume);
    }

    pub fn qos(&mut self, channel: u16, prefetch_count: u16, global: bool) {
        self.rpc(channel, BasicQos { prefetch_count, global, ..Default::default() }, "basic.qos-ok");
    }

    pub fn ack(&mut self, channel: u16, delivery_tag: u64, multiple: bool) {
        self.send(channel, BasicAck { delivery_tag, multiple });
    }

    /// basic.get: Some((get-ok, item)) or None for get-empty.
    pub fn get(&mut self, channel: u16, queue: &str, no_ack: bool) -> Option<(BasicGetOk, Item)> {
        self.send(channel, BasicGet { queue: queue.into(), no_ack, ..Default::default() });
        let items = self.recv_items();
        assert_eq!(items.len(), 1, "{items:#?}");
        let item = items.into_iter().next().unwrap();
        match &item.method {
            Method::BasicGetOk(ok) => Some((ok.clone(), item.clone())),
            Method::BasicGetEmpty(_) => None,
            other => panic!("expected get-ok or get-empty, got {other:?}"),
        }
    }

    /// Expects the channel to have been closed by the server; sends close-ok.
    pub fn expect_channel_close(&mut self, channel: u16) -> ChannelClose {
        let items = self.recv_items();
        let close = items
            .iter()
            .find_map(|i| match &i.method {
                Method::ChannelClose(c) if i.channel == channel => Some(c.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no channel.close on {channel} in {items:#?}"));
        assert!(self.conn.is_open(), "a channel error leaves the connection open");
        self.send(channel, ChannelCloseOk);
        close
    }

    pub fn expect_connection_close(&mut self) -> ConnectionClose {
        let items = self.recv_items();
        let close = items
            .iter()
            .find_map(|i| match &i.method {
                Method::ConnectionClose(c) if i.channel == 0 => Some(c.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no connection.close in {items:#?}"));
        assert!(!self.conn.is_open());
        close
    }

    /// The connection goes away as the server loop ends it.
    pub fn disconnect(mut self) {
        self.conn.handle_eof();
        self.session.handle_events(&mut self.conn, now());
        self.session.end_of_batch(&mut self.conn);
        self.session.close();
    }
}

pub fn broker() -> TestBroker {
    TestBroker { node: Node::new(Arc::new(Broker::new())) }
}

/// A client with channel 1 open.
pub fn client(broker: &TestBroker) -> TestClient {
    let mut c = TestClient::connect(broker);
    c.open_channel(1);
    c
}

pub fn no_props() -> BasicProperties {
    BasicProperties::default()
}

pub fn text(s: &str) -> FieldValue {
    FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()))
}

pub fn table(pairs: &[(&str, FieldValue)]) -> FieldTable {
    let mut t = FieldTable::new();
    for (k, v) in pairs {
        t.insert(*k, v.clone());
    }
    t
}

pub fn with_capabilities(names: &[&str]) -> FieldTable {
    let caps = names.iter().map(|n| (*n, FieldValue::Bool(true))).collect::<Vec<_>>();
    table(&[("capabilities", FieldValue::Table(table(&caps)))])
}

pub fn deliver(item: &Item) -> &BasicDeliver {
    match &item.method {
        Method::BasicDeliver(d) => d,
        other => panic!("expected basic.deliver, got {other:?}"),
    }
}

/// (consumer tag, delivery tag, body) of every delivery among `items`.
pub fn deliveries(items: &[Item]) -> Vec<(String, u64, String)> {
    items
        .iter()
        .filter(|i| matches!(i.method, Method::BasicDeliver(_)))
        .map(|i| {
            let d = deliver(i);
            (d.consumer_tag.to_string(), d.delivery_tag, String::from_utf8_lossy(i.body()).into_owned())
        })
        .collect()
}

pub fn bodies(items: &[Item]) -> Vec<String> {
    deliveries(items).into_iter().map(|(_, _, b)| b).collect()
}

pub fn queue_exists(broker: &Broker, name: &str) -> bool {
    broker.vhost("/").expect("vhost /").queue(name).is_ok()
}
