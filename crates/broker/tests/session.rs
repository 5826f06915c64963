//! Sans-IO tests of the broker core: a `Connection` and a `Session` per client, driven the way
//! the server's I/O loop drives them, with everything the client would receive read back from
//! the session's `Outbox`. Several clients may share one `Broker`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use warren_broker::{Broker, Outbox, Session};
use warren_connection::{Connection, ConnectionConfig};
use warren_protocol::frame::{self, Frame, PROTOCOL_HEADER};
use warren_protocol::methods::*;
use warren_protocol::{BasicProperties, FieldTable, FieldValue};

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

struct TestClient {
    conn: Connection,
    session: Session,
    outbox: Arc<Outbox>,
    input: BytesMut,
    now: Instant,
}

/// A method, with its content when it carries one, as the client sees it.
#[derive(Debug, Clone)]
struct Item {
    channel: u16,
    method: Method,
    content: Option<(BasicProperties, Bytes)>,
}

impl Item {
    fn body(&self) -> &[u8] {
        &self.content.as_ref().expect("a content-bearing method").1
    }

    fn props(&self) -> &BasicProperties {
        &self.content.as_ref().expect("a content-bearing method").0
    }
}

impl TestClient {
    fn connect(broker: &Arc<Broker>) -> Self {
        Self::connect_with(broker, FieldTable::new())
    }

    /// Connects as guest to "/", announcing `client_properties`; ends after open-ok.
    fn connect_with(broker: &Arc<Broker>, client_properties: FieldTable) -> Self {
        let outbox = Arc::new(Outbox::new(Box::new(|| {})));
        let peer = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let now = Instant::now();
        let mut c = TestClient {
            conn: Connection::new(ConnectionConfig::default(), now),
            session: Session::new(broker.clone(), peer, outbox.clone(), std::sync::Arc::new(|| {})),
            outbox,
            input: BytesMut::new(),
            now,
        };
        c.input.extend_from_slice(PROTOCOL_HEADER);
        c.pump();
        c.expect_one(0, "connection.start");
        let start_ok = ConnectionStartOk {
            client_properties,
            mechanism: "PLAIN".into(),
            response: Bytes::from_static(b"\0guest\0guest"),
            locale: "en_US".into(),
        };
        c.send(0, start_ok);
        c.expect_one(0, "connection.tune");
        c.send(0, ConnectionTuneOk { channel_max: 2047, frame_max: 131_072, heartbeat: 0 });
        c.send(0, ConnectionOpen { virtual_host: "/".into(), ..Default::default() });
        c.expect_one(0, "connection.open-ok");
        assert!(c.conn.is_open());
        c
    }

    /// Queues a method frame without processing it (several may then go in one batch).
    fn push(&mut self, channel: u16, method: impl Into<Method>) {
        frame::write_method(&mut self.input, channel, &method.into());
    }

    fn push_publish_with(
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

    fn push_publish(
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
    fn pump(&mut self) {
        loop {
            self.conn.handle_input(&mut self.input, self.now, &mut self.session);
            if !self.conn.has_events() {
                break;
            }
            self.session.handle_events(&mut self.conn);
        }
        self.session.end_of_batch(&mut self.conn);
    }

    fn send(&mut self, channel: u16, method: impl Into<Method>) {
        self.push(channel, method);
        self.pump();
    }

    fn publish(&mut self, channel: u16, exchange: &str, key: &str, props: &BasicProperties, body: &[u8]) {
        self.push_publish(channel, exchange, key, props, body);
        self.pump();
    }

    fn publish_with(&mut self, channel: u16, publish: BasicPublish, props: &BasicProperties, body: &[u8]) {
        self.push_publish_with(channel, publish, props, body);
        self.pump();
    }

    /// Drains the outbox: every frame the client would have received, in order.
    fn recv(&mut self) -> Vec<Frame> {
        let mut buf = self.outbox.take();
        let mut frames = Vec::new();
        while let Some(f) = frame::parse_frame(&mut buf, 0).expect("outbox holds valid frames") {
            frames.push(f);
        }
        assert!(buf.is_empty(), "partial frame left in the outbox");
        frames
    }

    /// Drains the outbox and groups content frames with their method.
    fn recv_items(&mut self) -> Vec<Item> {
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

    fn expect_one(&mut self, channel: u16, name: &str) -> Item {
        let items = self.recv_items();
        assert_eq!(items.len(), 1, "expected only {name} on {channel}, got {items:#?}");
        let item = items.into_iter().next().unwrap();
        assert_eq!((item.channel, item.method.name()), (channel, name), "{item:#?}");
        item
    }

    fn expect_nothing(&mut self) {
        let items = self.recv_items();
        assert!(items.is_empty(), "expected nothing, got {items:#?}");
    }

    /// Sends a synchronous method and expects exactly its reply.
    fn rpc(&mut self, channel: u16, method: impl Into<Method>, reply: &str) -> Item {
        self.send(channel, method);
        self.expect_one(channel, reply)
    }

    fn open_channel(&mut self, channel: u16) {
        self.rpc(channel, ChannelOpen::default(), "channel.open-ok");
    }

    fn declare_queue(&mut self, channel: u16, declare: QueueDeclare) -> QueueDeclareOk {
        match self.rpc(channel, declare, "queue.declare-ok").method {
            Method::QueueDeclareOk(ok) => ok,
            _ => unreachable!(),
        }
    }

    fn queue(&mut self, channel: u16, name: &str) -> QueueDeclareOk {
        self.declare_queue(channel, QueueDeclare { queue: name.into(), ..Default::default() })
    }

    /// Declares a (non-durable) queue with these arguments.
    fn queue_with(&mut self, channel: u16, name: &str, arguments: &[(&str, FieldValue)]) -> QueueDeclareOk {
        let arguments = table(arguments);
        self.declare_queue(channel, QueueDeclare { queue: name.into(), arguments, ..Default::default() })
    }

    /// Passive declare: (message_count, consumer_count).
    fn counts(&mut self, channel: u16, name: &str) -> (u32, u32) {
        let ok = self
            .declare_queue(channel, QueueDeclare { queue: name.into(), passive: true, ..Default::default() });
        (ok.message_count, ok.consumer_count)
    }

    fn exchange(&mut self, channel: u16, name: &str, kind: &str) {
        let declare = ExchangeDeclare { exchange: name.into(), kind: kind.into(), ..Default::default() };
        self.rpc(channel, declare, "exchange.declare-ok");
    }

    fn bind(&mut self, channel: u16, queue: &str, exchange: &str, key: &str) {
        self.bind_args(channel, queue, exchange, key, FieldTable::new());
    }

    fn bind_args(&mut self, channel: u16, queue: &str, exchange: &str, key: &str, arguments: FieldTable) {
        let bind = QueueBind {
            queue: queue.into(),
            exchange: exchange.into(),
            routing_key: key.into(),
            arguments,
            ..Default::default()
        };
        self.rpc(channel, bind, "queue.bind-ok");
    }

    fn consume(&mut self, channel: u16, queue: &str, tag: &str) {
        let consume = BasicConsume { queue: queue.into(), consumer_tag: tag.into(), ..Default::default() };
        self.send(channel, consume);
    }

    fn qos(&mut self, channel: u16, prefetch_count: u16, global: bool) {
        self.rpc(channel, BasicQos { prefetch_count, global, ..Default::default() }, "basic.qos-ok");
    }

    fn ack(&mut self, channel: u16, delivery_tag: u64, multiple: bool) {
        self.send(channel, BasicAck { delivery_tag, multiple });
    }

    /// basic.get: Some((get-ok, item)) or None for get-empty.
    fn get(&mut self, channel: u16, queue: &str, no_ack: bool) -> Option<(BasicGetOk, Item)> {
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
    fn expect_channel_close(&mut self, channel: u16) -> ChannelClose {
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

    fn expect_connection_close(&mut self) -> ConnectionClose {
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
    fn disconnect(mut self) {
        self.conn.handle_eof();
        self.session.handle_events(&mut self.conn);
        self.session.end_of_batch(&mut self.conn);
        self.session.close();
    }
}

fn broker() -> Arc<Broker> {
    Arc::new(Broker::new())
}

/// A client with channel 1 open.
fn client(broker: &Arc<Broker>) -> TestClient {
    let mut c = TestClient::connect(broker);
    c.open_channel(1);
    c
}

fn no_props() -> BasicProperties {
    BasicProperties::default()
}

fn text(s: &str) -> FieldValue {
    FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()))
}

fn table(pairs: &[(&str, FieldValue)]) -> FieldTable {
    let mut t = FieldTable::new();
    for (k, v) in pairs {
        t.insert(*k, v.clone());
    }
    t
}

fn with_capabilities(names: &[&str]) -> FieldTable {
    let caps = names.iter().map(|n| (*n, FieldValue::Bool(true))).collect::<Vec<_>>();
    table(&[("capabilities", FieldValue::Table(table(&caps)))])
}

fn deliver(item: &Item) -> &BasicDeliver {
    match &item.method {
        Method::BasicDeliver(d) => d,
        other => panic!("expected basic.deliver, got {other:?}"),
    }
}

/// (consumer tag, delivery tag, body) of every delivery among `items`.
fn deliveries(items: &[Item]) -> Vec<(String, u64, String)> {
    items
        .iter()
        .filter(|i| matches!(i.method, Method::BasicDeliver(_)))
        .map(|i| {
            let d = deliver(i);
            (d.consumer_tag.to_string(), d.delivery_tag, String::from_utf8_lossy(i.body()).into_owned())
        })
        .collect()
}

fn bodies(items: &[Item]) -> Vec<String> {
    deliveries(items).into_iter().map(|(_, _, b)| b).collect()
}

fn queue_exists(broker: &Broker, name: &str) -> bool {
    broker.vhost("/").expect("vhost /").queue(name).is_ok()
}

// ---------------------------------------------------------------------------------------------
// Publish and consume
// ---------------------------------------------------------------------------------------------

#[test]
fn declare_bind_publish_consume_round_trip() {
    let b = broker();
    let mut c = client(&b);
    c.exchange(1, "orders", "direct");
    let ok = c.queue(1, "q");
    assert_eq!((&*ok.queue, ok.message_count, ok.consumer_count), ("q", 0, 0));
    c.bind(1, "q", "orders", "new");

    let props = BasicProperties {
        content_type: Some("text/plain".into()),
        delivery_mode: Some(2),
        headers: Some(table(&[("k", text("v"))])),
        ..Default::default()
    };
    c.publish(1, "orders", "new", &props, b"order 42");
    c.expect_nothing();
    assert_eq!(c.counts(1, "q"), (1, 0));

    c.consume(1, "q", "c1");
    let items = c.recv_items();
    assert_eq!(items.len(), 2, "{items:#?}");
    match &items[0].method {
        Method::BasicConsumeOk(ok) => assert_eq!(&*ok.consumer_tag, "c1"),
        other => panic!("consume-ok comes first, got {other:?}"),
    }
    let d = deliver(&items[1]);
    assert_eq!(items[1].channel, 1);
    assert_eq!(&*d.consumer_tag, "c1");
    assert_eq!(d.delivery_tag, 1);
    assert!(!d.redelivered);
    assert_eq!((&*d.exchange, &*d.routing_key), ("orders", "new"));
    assert_eq!(items[1].props(), &props, "properties travel byte for byte");
    assert_eq!(items[1].body(), b"order 42");

    // Later publishes go straight to the consumer.
    c.publish(1, "orders", "new", &no_props(), b"second");
    let items = c.recv_items();
    assert_eq!(deliveries(&items), vec![("c1".into(), 2, "second".into())]);
    // Another key is not bound.
    c.publish(1, "orders", "old", &no_props(), b"lost");
    c.expect_nothing();

    c.ack(1, 2, true);
    c.expect_nothing();
    assert_eq!(c.counts(1, "q"), (0, 1));
}

#[test]
fn default_exchange_routes_by_queue_name() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "direct-q");
    c.publish(1, "", "direct-q", &no_props(), b"hi");
    c.publish(1, "", "no-such-queue", &no_props(), b"dropped");
    let (ok, item) = c.get(1, "direct-q", true).expect("a message");
    assert_eq!((&*ok.exchange, &*ok.routing_key), ("", "direct-q"));
    assert_eq!(item.body(), b"hi");
    assert!(c.get(1, "direct-q", true).is_none());
}

#[test]
fn server_named_queue() {
    let b = broker();
    let mut c = client(&b);
    let ok = c.declare_queue(1, QueueDeclare { exclusive: true, ..Default::default() });
    assert!(ok.queue.starts_with("amq.gen-"), "{}", ok.queue);
    assert_eq!(ok.queue.len(), "amq.gen-".len() + 22);
    // "" names the last declared queue.
    c.publish(1, "", &ok.queue.clone(), &no_props(), b"x");
    c.send(1, BasicGet { queue: "".into(), no_ack: true, ..Default::default() });
    let item = c.expect_one(1, "basic.get-ok");
    assert_eq!(item.body(), b"x");
}

#[test]
fn empty_queue_name_means_the_last_declared_queue() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "first");
    c.queue(1, "last");
    c.publish(1, "", "last", &no_props(), b"x");
    c.rpc(1, QueueBind { exchange: "amq.fanout".into(), ..Default::default() }, "queue.bind-ok");
    c.publish(1, "amq.fanout", "", &no_props(), b"y");
    c.send(1, BasicGet { queue: "".into(), no_ack: true, ..Default::default() });
    assert_eq!(c.expect_one(1, "basic.get-ok").body(), b"x");
    assert_eq!(c.counts(1, "last").0, 1);
    assert_eq!(c.counts(1, "first").0, 0);
    // A fresh channel has no last queue.
    c.open_channel(2);
    c.send(2, BasicGet { queue: "".into(), ..Default::default() });
    let close = c.expect_channel_close(2);
    assert_eq!(close.reply_code, 404);
}

#[test]
fn large_bodies_are_split_to_frame_max() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "big");
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    c.publish(1, "", "big", &no_props(), &body);
    c.send(1, BasicGet { queue: "big".into(), no_ack: true, ..Default::default() });
    let frames = c.recv();
    let body_frames: Vec<usize> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Body { payload, .. } => Some(payload.len()),
            _ => None,
        })
        .collect();
    assert_eq!(body_frames.len(), 3, "{body_frames:?}");
    assert!(body_frames.iter().all(|&n| n + 8 <= 131_072));
    let got: Vec<u8> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Body { payload, .. } => Some(payload.to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(got, body);
}

#[test]
fn publish_to_missing_exchange_closes_the_channel_with_404() {
    let b = broker();
    let mut c = client(&b);
    c.publish(1, "nowhere", "k", &no_props(), b"x");
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 404);
    assert_eq!(&*close.reply_text, "NOT_FOUND - no exchange 'nowhere' in vhost '/'");
    assert_eq!((close.class_id, close.method_id), (60, 40));
}

#[test]
fn round_robin_between_two_consumers() {
    let b = broker();
    let mut a = client(&b);
    let mut z = client(&b);
    a.queue(1, "work");
    a.consume(1, "work", "a");
    a.expect_one(1, "basic.consume-ok");
    z.consume(1, "work", "z");
    z.expect_one(1, "basic.consume-ok");

    for i in 0..6 {
        a.publish(1, "", "work", &no_props(), format!("m{i}").as_bytes());
    }
    assert_eq!(bodies(&a.recv_items()), vec!["m0", "m2", "m4"]);
    assert_eq!(bodies(&z.recv_items()), vec!["m1", "m3", "m5"]);
}

#[test]
fn round_robin_between_two_consumers_on_one_channel() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "work");
    c.consume(1, "work", "first");
    c.consume(1, "work", "second");
    c.recv();
    for i in 0..4 {
        c.publish(1, "", "work", &no_props(), format!("m{i}").as_bytes());
    }
    let got = deliveries(&c.recv_items());
    let tags: Vec<&str> = got.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(tags, vec!["first", "second", "first", "second"]);
    let delivery_tags: Vec<u64> = got.iter().map(|(_, d, _)| *d).collect();
    assert_eq!(delivery_tags, vec![1, 2, 3, 4], "delivery tags are per channel");
}

#[test]
fn per_consumer_prefetch_window() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    for i in 1..=5 {
        c.publish(1, "", "q", &no_props(), format!("m{i}").as_bytes());
    }
    c.qos(1, 2, false);
    c.consume(1, "q", "c");
    let items = c.recv_items();
    assert_eq!(bodies(&items), vec!["m1", "m2"], "stops at the window");
    c.publish(1, "", "q", &no_props(), b"m6");
    c.expect_nothing();
    assert_eq!(c.counts(1, "q"), (4, 1));

    c.ack(1, 1, false);
    assert_eq!(deliveries(&c.recv_items()), vec![("c".into(), 3, "m3".into())]);
    c.ack(1, 3, true);
    assert_eq!(bodies(&c.recv_items()), vec!["m4", "m5"]);
    c.ack(1, 5, true);
    assert_eq!(bodies(&c.recv_items()), vec!["m6"]);
    c.ack(1, 6, false);
    c.expect_nothing();
    assert_eq!(c.counts(1, "q"), (0, 1));
}

#[test]
fn prefetch_applies_per_consumer_not_per_channel() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q1");
    c.queue(1, "q2");
    c.qos(1, 1, false);
    c.consume(1, "q1", "c1");
    c.consume(1, "q2", "c2");
    c.recv();
    for q in ["q1", "q2", "q1", "q2"] {
        c.publish(1, "", q, &no_props(), q.as_bytes());
    }
    let got = deliveries(&c.recv_items());
    let tags: Vec<&str> = got.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(tags, vec!["c1", "c2"], "one unacked each");
}

#[test]
fn global_prefetch_limits_the_whole_channel() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q1");
    c.queue(1, "q2");
    c.qos(1, 2, true);
    c.consume(1, "q1", "c1");
    c.consume(1, "q2", "c2");
    c.recv();
    for q in ["q1", "q1", "q2", "q2"] {
        c.publish(1, "", q, &no_props(), q.as_bytes());
    }
    let first = deliveries(&c.recv_items());
    assert_eq!(first.len(), 2, "two unacked across the channel: {first:?}");
    assert_eq!(c.counts(1, "q1").0 + c.counts(1, "q2").0, 2);

    c.ack(1, first[0].1, false);
    let second = deliveries(&c.recv_items());
    assert_eq!(second.len(), 1, "one ack frees one slot: {second:?}");
    c.ack(1, 0, true);
    let third = deliveries(&c.recv_items());
    assert_eq!(third.len(), 1, "{third:?}");
    c.ack(1, 0, true);
    c.expect_nothing();
    assert_eq!(c.counts(1, "q1").0 + c.counts(1, "q2").0, 0);
}

#[test]
fn nack_requeue_restores_the_original_position_marked_redelivered() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    for m in ["a", "b", "c"] {
        c.publish(1, "", "q", &no_props(), m.as_bytes());
    }
    let (a, _) = c.get(1, "q", false).unwrap();
    let (b_ok, _) = c.get(1, "q", false).unwrap();
    assert_eq!((a.delivery_tag, b_ok.delivery_tag), (1, 2));
    assert_eq!(c.counts(1, "q").0, 1);

    // b first, then a: both go back ahead of c, in publish order.
    c.send(1, BasicNack { delivery_tag: 2, multiple: false, requeue: true });
    c.send(1, BasicNack { delivery_tag: 1, multiple: false, requeue: true });
    c.expect_nothing();
    let mut order = Vec::new();
    while let Some((ok, item)) = c.get(1, "q", true) {
        order.push((String::from_utf8_lossy(item.body()).into_owned(), ok.redelivered));
    }
    assert_eq!(order, vec![("a".into(), true), ("b".into(), true), ("c".into(), false)]);
}

#[test]
fn nack_requeue_redelivers_to_the_consumer() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.qos(1, 1, false);
    c.consume(1, "q", "c");
    c.recv();
    c.publish(1, "", "q", &no_props(), b"one");
    c.publish(1, "", "q", &no_props(), b"two");
    let items = c.recv_items();
    assert_eq!(deliveries(&items), vec![("c".into(), 1, "one".into())]);
    assert!(!deliver(&items[0]).redelivered);

    c.send(1, BasicNack { delivery_tag: 1, multiple: false, requeue: true });
    let items = c.recv_items();
    assert_eq!(deliveries(&items), vec![("c".into(), 2, "one".into())], "back at the head");
    assert!(deliver(&items[0]).redelivered);

    c.send(1, BasicReject { delivery_tag: 2, requeue: false });
    let items = c.recv_items();
    assert_eq!(deliveries(&items), vec![("c".into(), 3, "two".into())]);
    assert!(!deliver(&items[0]).redelivered);
}

#[test]
fn nack_multiple_requeues_everything_up_to_the_tag() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    for m in ["a", "b", "c", "d"] {
        c.publish(1, "", "q", &no_props(), m.as_bytes());
    }
    for _ in 0..3 {
        c.get(1, "q", false).unwrap();
    }
    c.send(1, BasicNack { delivery_tag: 2, multiple: true, requeue: true });
    assert_eq!(c.counts(1, "q").0, 3, "a and b back, d still there");
    c.ack(1, 3, false);
    c.expect_nothing();
    let (ok, item) = c.get(1, "q", true).unwrap();
    assert_eq!((item.body(), ok.redelivered, ok.message_count), (&b"a"[..], true, 2));
}

#[test]
fn closing_a_channel_requeues_its_unacked_deliveries() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.open_channel(2);
    for m in ["a", "b"] {
        c.publish(1, "", "q", &no_props(), m.as_bytes());
    }
    c.consume(2, "q", "c");
    assert_eq!(bodies(&c.recv_items()), vec!["a", "b"]);
    assert_eq!(c.counts(1, "q"), (0, 1));
    c.rpc(2, ChannelClose { reply_code: 200, ..Default::default() }, "channel.close-ok");
    assert_eq!(c.counts(1, "q"), (2, 0));
    let (ok, item) = c.get(1, "q", true).unwrap();
    assert_eq!((item.body(), ok.redelivered), (&b"a"[..], true));
}

#[test]
fn reject_without_requeue_dead_letters_with_x_death() {
    let b = broker();
    let mut c = client(&b);
    c.exchange(1, "dlx", "fanout");
    c.queue(1, "dlq");
    c.bind(1, "dlq", "dlx", "");
    c.declare_queue(
        1,
        QueueDeclare {
            queue: "work".into(),
            arguments: table(&[("x-dead-letter-exchange", text("dlx"))]),
            ..Default::default()
        },
    );
    let props = BasicProperties { message_id: Some("m-1".into()), ..Default::default() };
    c.publish(1, "", "work", &props, b"payload");
    let (ok, _) = c.get(1, "work", false).unwrap();
    c.send(1, BasicReject { delivery_tag: ok.delivery_tag, requeue: false });
    c.expect_nothing();
    assert_eq!(c.counts(1, "work").0, 0);

    let (dead, item) = c.get(1, "dlq", true).expect("the message reached the dead-letter queue");
    assert_eq!(item.body(), b"payload");
    assert_eq!(&*dead.exchange, "dlx");
    assert_eq!(&*dead.routing_key, "work", "the original routing key is kept");
    assert_eq!(item.props().message_id.as_deref(), Some("m-1"));
    let headers = item.props().headers.as_ref().expect("headers");
    let Some(FieldValue::Array(deaths)) = headers.get("x-death") else {
        panic!("no x-death array in {headers:?}");
    };
    assert_eq!(deaths.len(), 1);
    let FieldValue::Table(death) = &deaths[0] else { panic!("x-death entry is a table") };
    assert_eq!(death.get("reason").and_then(FieldValue::as_str), Some("rejected"));
    assert_eq!(death.get("queue").and_then(FieldValue::as_str), Some("work"));
    assert_eq!(death.get("exchange").and_then(FieldValue::as_str), Some(""));
    assert_eq!(death.get("count").and_then(FieldValue::as_i64), Some(1));
    assert_eq!(death.get("routing-keys"), Some(&FieldValue::Array(vec![text("work")])));
    assert!(matches!(death.get("time"), Some(FieldValue::Timestamp(_))));
    assert_eq!(headers.get("x-first-death-reason").and_then(FieldValue::as_str), Some("rejected"));
    assert_eq!(headers.get("x-first-death-queue").and_then(FieldValue::as_str), Some("work"));
}

#[test]
fn x_last_death_headers_name_the_latest_death() {
    let b = broker();
    let mut c = client(&b);
    c.exchange(1, "dlx", "fanout");
    c.exchange(1, "dlx2", "fanout");
    c.queue(1, "dlq2");
    c.bind(1, "dlq2", "dlx2", "");
    c.queue_with(1, "dlq1", &[("x-dead-letter-exchange", text("dlx2"))]);
    c.bind(1, "dlq1", "dlx", "");
    c.queue_with(1, "work", &[("x-dead-letter-exchange", text("dlx"))]);
    c.publish(1, "", "work", &no_props(), b"twice");
    let (ok, _) = c.get(1, "work", false).unwrap();
    c.send(1, BasicReject { delivery_tag: ok.delivery_tag, requeue: false });
    let (ok, item) = c.get(1, "dlq1", false).expect("dead-lettered once");
    let once = item.props().headers.clone().expect("headers");
    c.send(1, BasicNack { delivery_tag: ok.delivery_tag, multiple: false, requeue: false });
    let (_, item) = c.get(1, "dlq2", true).expect("dead-lettered twice");
    let twice = item.props().headers.clone().expect("headers");
    let get = |h: &FieldTable, k: &str| h.get(k).and_then(FieldValue::as_str).map(str::to_owned);

    // After the first death, first and last are the same one.
    assert_eq!(get(&once, "x-last-death-queue").as_deref(), Some("work"));
    assert_eq!(get(&once, "x-last-death-reason").as_deref(), Some("rejected"));
    assert_eq!(get(&once, "x-last-death-exchange").as_deref(), Some(""));
    // After the second, first stays and last moves on (the exchange it was then published to).
    assert_eq!(get(&twice, "x-first-death-queue").as_deref(), Some("work"));
    assert_eq!(get(&twice, "x-first-death-exchange").as_deref(), Some(""));
    assert_eq!(get(&twice, "x-last-death-queue").as_deref(), Some("dlq1"));
    assert_eq!(get(&twice, "x-last-death-reason").as_deref(), Some("rejected"));
    assert_eq!(get(&twice, "x-last-death-exchange").as_deref(), Some("dlx"));
    let Some(FieldValue::Array(deaths)) = twice.get("x-death") else { panic!("no x-death in {twice:?}") };
    assert_eq!(deaths.len(), 2, "one entry per queue and reason");
}

#[test]
fn nack_without_requeue_uses_the_dead_letter_routing_key() {
    let b = broker();
    let mut c = client(&b);
    c.exchange(1, "dlx", "direct");
    c.queue(1, "parked");
    c.bind(1, "parked", "dlx", "parking");
    c.declare_queue(
        1,
        QueueDeclare {
            queue: "work".into(),
            arguments: table(&[
                ("x-dead-letter-exchange", text("dlx")),
                ("x-dead-letter-routing-key", text("parking")),
            ]),
            ..Default::default()
        },
    );
    c.publish(1, "", "work", &no_props(), b"x");
    c.get(1, "work", false).unwrap();
    c.send(1, BasicNack { delivery_tag: 1, multiple: false, requeue: false });
    let (ok, _) = c.get(1, "parked", true).expect("dead-lettered with the configured key");
    assert_eq!(&*ok.routing_key, "parking");
}

#[test]
fn reject_without_dead_letter_exchange_drops_the_message() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.publish(1, "", "q", &no_props(), b"x");
    c.get(1, "q", false).unwrap();
    c.send(1, BasicReject { delivery_tag: 1, requeue: false });
    c.expect_nothing();
    assert_eq!(c.counts(1, "q"), (0, 0));
    assert!(c.get(1, "q", true).is_none());
}

#[test]
fn ack_does_not_dead_letter() {
    let b = broker();
    let mut c = client(&b);
    c.exchange(1, "dlx", "fanout");
    c.queue(1, "dlq");
    c.bind(1, "dlq", "dlx", "");
    c.declare_queue(
        1,
        QueueDeclare {
            queue: "work".into(),
            arguments: table(&[("x-dead-letter-exchange", text("dlx"))]),
            ..Default::default()
        },
    );
    c.publish(1, "", "work", &no_props(), b"done");
    let (ok, _) = c.get(1, "work", false).unwrap();
    c.ack(1, ok.delivery_tag, false);
    c.expect_nothing();
    assert_eq!(c.counts(1, "dlq").0, 0, "an acknowledged message is not dead");
}

// ---------------------------------------------------------------------------------------------
// basic.get and acknowledgements
// ---------------------------------------------------------------------------------------------

#[test]
fn basic_get_reports_the_remaining_message_count() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    assert!(c.get(1, "q", false).is_none(), "get-empty on an empty queue");
    for m in ["a", "b", "c"] {
        c.publish(1, "", "q", &no_props(), m.as_bytes());
    }
    let mut seen = Vec::new();
    while let Some((ok, item)) = c.get(1, "q", false) {
        seen.push((ok.delivery_tag, ok.message_count, String::from_utf8_lossy(item.body()).into_owned()));
    }
    assert_eq!(seen, vec![(1, 2, "a".into()), (2, 1, "b".into()), (3, 0, "c".into())]);
    assert_eq!(c.counts(1, "q").0, 0);
}

#[test]
fn basic_get_from_missing_queue_is_404() {
    let b = broker();
    let mut c = client(&b);
    c.send(1, BasicGet { queue: "ghost".into(), ..Default::default() });
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 404);
    assert_eq!(&*close.reply_text, "NOT_FOUND - no queue 'ghost' in vhost '/'");
    assert_eq!((close.class_id, close.method_id), (60, 70));
}

#[test]
fn ack_of_unknown_tag_is_precondition_failed() {
    let b = broker();
    let mut c = client(&b);
    c.ack(1, 9, false);
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 406);
    assert_eq!(&*close.reply_text, "PRECONDITION_FAILED - unknown delivery tag 9");
    assert_eq!((close.class_id, close.method_id), (60, 80));
    assert!(c.conn.is_open());
}

#[test]
fn double_ack_is_precondition_failed() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.publish(1, "", "q", &no_props(), b"x");
    c.get(1, "q", false).unwrap();
    c.ack(1, 1, false);
    c.expect_nothing();
    c.ack(1, 1, false);
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 406);
    assert_eq!(&*close.reply_text, "PRECONDITION_FAILED - unknown delivery tag 1");
}

#[test]
fn ack_of_a_no_ack_delivery_is_precondition_failed() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.publish(1, "", "q", &no_props(), b"x");
    let (ok, _) = c.get(1, "q", true).unwrap();
    c.ack(1, ok.delivery_tag, false);
    assert_eq!(c.expect_channel_close(1).reply_code, 406);
}

#[test]
fn multiple_ack_settles_every_earlier_tag() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.open_channel(2);
    for m in ["a", "b", "c"] {
        c.publish(1, "", "q", &no_props(), m.as_bytes());
    }
    for _ in 0..3 {
        c.get(2, "q", false).unwrap();
    }
    c.ack(2, 2, true);
    c.expect_nothing();
    c.ack(2, 1, false);
    let close = c.expect_channel_close(2);
    assert_eq!(&*close.reply_text, "PRECONDITION_FAILED - unknown delivery tag 1", "1 went with 2");
    // Closing channel 2 requeued only the unacknowledged c.
    assert_eq!(c.counts(1, "q").0, 1);
    let (ok, item) = c.get(1, "q", true).unwrap();
    assert_eq!((item.body(), ok.redelivered), (&b"c"[..], true));
}

#[test]
fn multiple_ack_with_tag_zero_settles_everything() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    for m in ["a", "b"] {
        c.publish(1, "", "q", &no_props(), m.as_bytes());
    }
    c.get(1, "q", false).unwrap();
    c.get(1, "q", false).unwrap();
    c.ack(1, 0, true);
    c.expect_nothing();
    c.rpc(1, ChannelClose { reply_code: 200, ..Default::default() }, "channel.close-ok");
    c.open_channel(1);
    assert_eq!(c.counts(1, "q").0, 0, "nothing left to requeue");
}

#[test]
fn basic_recover_requeues_outstanding_deliveries() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.publish(1, "", "q", &no_props(), b"x");
    c.get(1, "q", false).unwrap();
    c.rpc(1, BasicRecover { requeue: true }, "basic.recover-ok");
    let (ok, _) = c.get(1, "q", false).unwrap();
    assert!(ok.redelivered);
    assert_eq!(ok.delivery_tag, 2);
}

// ---------------------------------------------------------------------------------------------
// Transactions and publisher confirms
// ---------------------------------------------------------------------------------------------

#[test]
fn tx_publishes_are_invisible_until_commit() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.open_channel(2);
    c.rpc(2, TxSelect, "tx.select-ok");
    c.publish(2, "", "q", &no_props(), b"one");
    c.publish(2, "", "q", &no_props(), b"two");
    c.expect_nothing();
    assert_eq!(c.counts(1, "q").0, 0, "not before commit");
    c.rpc(2, TxCommit, "tx.commit-ok");
    assert_eq!(c.counts(1, "q").0, 2);
    // The channel stays transactional: the next publish waits for the next commit.
    c.publish(2, "", "q", &no_props(), b"three");
    assert_eq!(c.counts(1, "q").0, 2);
    c.rpc(2, TxCommit, "tx.commit-ok");
    assert_eq!(c.counts(1, "q").0, 3);
}

#[test]
fn tx_rollback_discards_publishes() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.rpc(1, TxSelect, "tx.select-ok");
    c.publish(1, "", "q", &no_props(), b"oops");
    c.rpc(1, TxRollback, "tx.rollback-ok");
    c.rpc(1, TxCommit, "tx.commit-ok");
    assert_eq!(c.counts(1, "q").0, 0);
    c.publish(1, "", "q", &no_props(), b"kept");
    c.rpc(1, TxCommit, "tx.commit-ok");
    let (_, item) = c.get(1, "q", true).unwrap();
    assert_eq!(item.body(), b"kept");
}

#[test]
fn tx_ack_applies_only_on_commit() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.open_channel(2);
    c.publish(1, "", "q", &no_props(), b"x");
    c.rpc(2, TxSelect, "tx.select-ok");
    let (ok, _) = c.get(2, "q", false).unwrap();

    // Rolled back: the delivery is outstanding again and can be acked (again) later.
    c.ack(2, ok.delivery_tag, false);
    c.rpc(2, TxRollback, "tx.rollback-ok");
    c.ack(2, ok.delivery_tag, false);
    c.expect_nothing();
    c.rpc(2, TxCommit, "tx.commit-ok");
    // Committed: the tag is gone for good.
    c.ack(2, ok.delivery_tag, false);
    let close = c.expect_channel_close(2);
    assert_eq!(close.reply_code, 406);
    assert_eq!(c.counts(1, "q"), (0, 0), "the committed ack removed the message");
}

#[test]
fn tx_uncommitted_ack_keeps_the_message_on_rollback_and_close() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.open_channel(2);
    c.publish(1, "", "q", &no_props(), b"x");
    c.rpc(2, TxSelect, "tx.select-ok");
    c.get(2, "q", false).unwrap();
    c.ack(2, 1, false);
    c.rpc(2, TxRollback, "tx.rollback-ok");
    c.rpc(2, ChannelClose { reply_code: 200, ..Default::default() }, "channel.close-ok");
    assert_eq!(c.counts(1, "q").0, 1, "rolled-back ack: the message is requeued on close");
}

#[test]
fn tx_uncommitted_ack_is_requeued_when_the_channel_closes() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.open_channel(2);
    c.publish(1, "", "q", &no_props(), b"x");
    c.rpc(2, TxSelect, "tx.select-ok");
    c.get(2, "q", false).unwrap();
    c.ack(2, 1, false);
    c.rpc(2, ChannelClose { reply_code: 200, ..Default::default() }, "channel.close-ok");
    assert_eq!(c.counts(1, "q").0, 1, "an uncommitted ack never happened");
}

#[test]
fn tx_and_confirm_modes_exclude_each_other() {
    let b = broker();
    let mut c = client(&b);
    c.rpc(1, TxSelect, "tx.select-ok");
    c.send(1, ConfirmSelect { nowait: false });
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 406);
    c.open_channel(1);
    c.rpc(1, ConfirmSelect { nowait: false }, "confirm.select-ok");
    c.send(1, TxSelect);
    assert_eq!(c.expect_channel_close(1).reply_code, 406);
}

#[test]
fn tx_commit_without_select_is_precondition_failed() {
    let b = broker();
    let mut c = client(&b);
    c.send(1, TxCommit);
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 406);
    assert_eq!(&*close.reply_text, "PRECONDITION_FAILED - channel is not transactional");
}

#[test]
fn confirms_one_multiple_ack_per_batch() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.rpc(1, ConfirmSelect { nowait: false }, "confirm.select-ok");
    for i in 0..5 {
        c.push_publish(1, "", "q", &no_props(), format!("m{i}").as_bytes());
    }
    c.pump();
    let items = c.recv_items();
    assert_eq!(items.len(), 1, "{items:#?}");
    match &items[0].method {
        Method::BasicAck(ack) => {
            assert_eq!(ack.delivery_tag, 5);
            assert!(ack.multiple);
        }
        other => panic!("expected basic.ack, got {other:?}"),
    }
    assert_eq!(c.counts(1, "q").0, 5);

    // The next batch continues the numbering; a single publish is acked alone.
    c.publish(1, "", "q", &no_props(), b"m5");
    let ack = c.expect_one(1, "basic.ack");
    assert_eq!(ack.method, Method::BasicAck(BasicAck { delivery_tag: 6, multiple: false }));
    c.expect_nothing();
}

#[test]
fn confirm_select_nowait_sends_no_reply() {
    let b = broker();
    let mut c = client(&b);
    c.send(1, ConfirmSelect { nowait: true });
    c.expect_nothing();
    c.publish(1, "amq.direct", "nobody", &no_props(), b"x");
    let ack = c.expect_one(1, "basic.ack");
    assert_eq!(ack.method, Method::BasicAck(BasicAck { delivery_tag: 1, multiple: false }));
}

#[test]
fn mandatory_unroutable_is_returned_before_its_confirm() {
    let b = broker();
    let mut c = client(&b);
    c.rpc(1, ConfirmSelect { nowait: false }, "confirm.select-ok");
    let publish = BasicPublish {
        exchange: "amq.direct".into(),
        routing_key: "nobody-home".into(),
        mandatory: true,
        ..Default::default()
    };
    let props = BasicProperties { correlation_id: Some("c-7".into()), ..Default::default() };
    c.publish_with(1, publish, &props, b"bounce");
    let items = c.recv_items();
    assert_eq!(items.len(), 2, "{items:#?}");
    match &items[0].method {
        Method::BasicReturn(r) => {
            assert_eq!(r.reply_code, 312);
            assert_eq!(&*r.reply_text, "NO_ROUTE");
            assert_eq!((&*r.exchange, &*r.routing_key), ("amq.direct", "nobody-home"));
        }
        other => panic!("basic.return comes first, got {other:?}"),
    }
    assert_eq!(items[0].body(), b"bounce");
    assert_eq!(items[0].props(), &props);
    assert_eq!(items[1].method, Method::BasicAck(BasicAck { delivery_tag: 1, multiple: false }));
}

#[test]
fn unroutable_without_mandatory_is_dropped_silently() {
    let b = broker();
    let mut c = client(&b);
    c.publish(1, "amq.direct", "nobody-home", &no_props(), b"x");
    c.expect_nothing();
    assert!(c.conn.channel_is_open(1));
}

#[test]
fn mandatory_routable_is_not_returned() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    let publish =
        BasicPublish { exchange: "".into(), routing_key: "q".into(), mandatory: true, ..Default::default() };
    c.publish_with(1, publish, &no_props(), b"x");
    c.expect_nothing();
    assert_eq!(c.counts(1, "q").0, 1);
}

// ---------------------------------------------------------------------------------------------
// Exclusive and auto-delete queues, queue.delete
// ---------------------------------------------------------------------------------------------

#[test]
fn exclusive_queue_is_locked_to_its_connection() {
    let b = broker();
    let mut owner = client(&b);
    let mut other = client(&b);
    owner.declare_queue(1, QueueDeclare { queue: "mine".into(), exclusive: true, ..Default::default() });

    other.send(1, QueueDeclare { queue: "mine".into(), exclusive: true, ..Default::default() });
    let close = other.expect_channel_close(1);
    assert_eq!(close.reply_code, 405);
    assert!(
        close.reply_text.starts_with(
            "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'mine' in vhost '/'"
        ),
        "{}",
        close.reply_text
    );
    assert_eq!((close.class_id, close.method_id), (50, 10));

    other.open_channel(1);
    other.send(1, QueueDeclare { queue: "mine".into(), passive: true, ..Default::default() });
    assert_eq!(other.expect_channel_close(1).reply_code, 405);
    other.open_channel(1);
    other.consume(1, "mine", "thief");
    assert_eq!(other.expect_channel_close(1).reply_code, 405);
    other.open_channel(1);
    other.send(1, BasicGet { queue: "mine".into(), ..Default::default() });
    assert_eq!(other.expect_channel_close(1).reply_code, 405);

    // The owner uses it from any of its channels.
    owner.open_channel(2);
    owner.consume(2, "mine", "me");
    owner.expect_one(2, "basic.consume-ok");
}

#[test]
fn exclusive_queue_is_deleted_when_its_session_closes() {
    let b = broker();
    let mut owner = client(&b);
    let mut other = client(&b);
    owner.declare_queue(1, QueueDeclare { queue: "temp".into(), exclusive: true, ..Default::default() });
    owner.bind(1, "temp", "amq.fanout", "");
    assert!(queue_exists(&b, "temp"));

    owner.session.close();
    assert!(!queue_exists(&b, "temp"));
    other.send(1, QueueDeclare { queue: "temp".into(), passive: true, ..Default::default() });
    let close = other.expect_channel_close(1);
    assert_eq!(close.reply_code, 404);
    assert_eq!(&*close.reply_text, "NOT_FOUND - no queue 'temp' in vhost '/'");
    // Its binding went with it; the name is free for anyone.
    other.open_channel(1);
    other.declare_queue(1, QueueDeclare { queue: "temp".into(), exclusive: true, ..Default::default() });
    other.publish(1, "amq.fanout", "", &no_props(), b"x");
    assert_eq!(other.counts(1, "temp").0, 0, "the old binding is gone");
}

#[test]
fn non_exclusive_queue_survives_its_declaring_connection() {
    let b = broker();
    let owner = client(&b);
    let mut other = client(&b);
    let mut owner = owner;
    owner.queue(1, "shared");
    owner.publish(1, "", "shared", &no_props(), b"x");
    owner.disconnect();
    assert_eq!(other.counts(1, "shared").0, 1);
}

#[test]
fn auto_delete_queue_goes_when_its_last_consumer_cancels() {
    let b = broker();
    let mut c = client(&b);
    c.declare_queue(1, QueueDeclare { queue: "ad".into(), auto_delete: true, ..Default::default() });
    c.consume(1, "ad", "one");
    c.consume(1, "ad", "two");
    c.recv();
    c.rpc(1, BasicCancel { consumer_tag: "one".into(), nowait: false }, "basic.cancel-ok");
    assert!(queue_exists(&b, "ad"), "one consumer left");
    let ok = c.rpc(1, BasicCancel { consumer_tag: "two".into(), nowait: false }, "basic.cancel-ok");
    assert_eq!(ok.method, Method::BasicCancelOk(BasicCancelOk { consumer_tag: "two".into() }));
    assert!(!queue_exists(&b, "ad"));
    c.send(1, QueueDeclare { queue: "ad".into(), passive: true, ..Default::default() });
    assert_eq!(c.expect_channel_close(1).reply_code, 404);
}

#[test]
fn auto_delete_queue_without_consumers_stays() {
    let b = broker();
    let mut c = client(&b);
    c.declare_queue(1, QueueDeclare { queue: "ad".into(), auto_delete: true, ..Default::default() });
    c.rpc(1, BasicCancel { consumer_tag: "never".into(), nowait: false }, "basic.cancel-ok");
    assert!(queue_exists(&b, "ad"));
}

#[test]
fn auto_delete_queue_goes_when_its_consumers_channel_closes() {
    let b = broker();
    let mut c = client(&b);
    c.open_channel(2);
    c.declare_queue(1, QueueDeclare { queue: "ad".into(), auto_delete: true, ..Default::default() });
    c.consume(2, "ad", "c");
    c.recv();
    c.rpc(2, ChannelClose { reply_code: 200, ..Default::default() }, "channel.close-ok");
    assert!(!queue_exists(&b, "ad"));
}

#[test]
fn queue_delete_notifies_consumers_that_asked() {
    let b = broker();
    let mut notified = TestClient::connect_with(&b, with_capabilities(&["consumer_cancel_notify"]));
    notified.open_channel(1);
    let mut silent = client(&b);
    let mut admin = client(&b);
    admin.queue(1, "doomed");
    admin.publish(1, "", "doomed", &no_props(), b"a");
    admin.publish(1, "", "doomed", &no_props(), b"b");
    notified.qos(1, 1, false);
    notified.consume(1, "doomed", "n");
    assert_eq!(notified.recv_items().len(), 2, "consume-ok and one delivery");
    silent.qos(1, 1, false);
    silent.consume(1, "doomed", "s");
    assert_eq!(silent.recv_items().len(), 2, "consume-ok and one delivery");

    admin.publish(1, "", "doomed", &no_props(), b"c");
    // a and b are out (unacked); c is ready.
    let ok = admin.rpc(1, QueueDelete { queue: "doomed".into(), ..Default::default() }, "queue.delete-ok");
    assert_eq!(ok.method, Method::QueueDeleteOk(QueueDeleteOk { message_count: 1 }));

    let cancel = notified.expect_one(1, "basic.cancel");
    assert_eq!(cancel.method, Method::BasicCancel(BasicCancel { consumer_tag: "n".into(), nowait: true }));
    silent.expect_nothing();
    assert!(!queue_exists(&b, "doomed"));
    // Acks of deliveries from the deleted queue are still accepted.
    notified.ack(1, 1, false);
    notified.expect_nothing();
}

#[test]
fn queue_delete_of_own_consumer_queue_notifies_first() {
    let b = broker();
    let mut c = TestClient::connect_with(&b, with_capabilities(&["consumer_cancel_notify"]));
    c.open_channel(1);
    c.queue(1, "q");
    c.consume(1, "q", "mine");
    c.recv();
    c.send(1, QueueDelete { queue: "q".into(), ..Default::default() });
    let names: Vec<&str> = c.recv_items().iter().map(|i| i.method.name()).collect();
    assert_eq!(names, vec!["basic.cancel", "queue.delete-ok"]);
    // The consumer is forgotten: its tag may be reused.
    c.queue(1, "q");
    c.consume(1, "q", "mine");
    c.expect_one(1, "basic.consume-ok");
}

#[test]
fn queue_delete_if_empty_and_if_unused() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.publish(1, "", "q", &no_props(), b"x");
    c.send(1, QueueDelete { queue: "q".into(), if_empty: true, ..Default::default() });
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 406);
    assert_eq!(&*close.reply_text, "PRECONDITION_FAILED - queue 'q' in vhost '/' not empty");
    c.open_channel(1);
    c.consume(1, "q", "c");
    c.recv();
    c.open_channel(2);
    c.send(2, QueueDelete { queue: "q".into(), if_unused: true, ..Default::default() });
    let close = c.expect_channel_close(2);
    assert_eq!(close.reply_code, 406);
    assert_eq!(&*close.reply_text, "PRECONDITION_FAILED - queue 'q' in vhost '/' in use");
    assert!(queue_exists(&b, "q"));
}

#[test]
fn queue_purge_counts_and_drops_ready_messages() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    for _ in 0..3 {
        c.publish(1, "", "q", &no_props(), b"x");
    }
    let ok = c.rpc(1, QueuePurge { queue: "q".into(), ..Default::default() }, "queue.purge-ok");
    assert_eq!(ok.method, Method::QueuePurgeOk(QueuePurgeOk { message_count: 3 }));
    assert_eq!(c.counts(1, "q").0, 0);
}

// ---------------------------------------------------------------------------------------------
// Declare rules
// ---------------------------------------------------------------------------------------------

#[test]
fn redeclare_with_different_durable_is_precondition_failed() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.send(1, QueueDeclare { queue: "q".into(), durable: true, ..Default::default() });
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 406);
    assert_eq!(
        &*close.reply_text,
        "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in vhost '/': received 'true' but current is 'false'"
    );
    assert_eq!((close.class_id, close.method_id), (50, 10));
    // An equivalent redeclare is fine, and reports the counts.
    c.open_channel(1);
    c.publish(1, "", "q", &no_props(), b"x");
    let ok = c.queue(1, "q");
    assert_eq!(ok.message_count, 1);
}

#[test]
fn redeclare_with_different_ttl_is_precondition_failed() {
    let b = broker();
    let mut c = client(&b);
    let args = |ms: i32| table(&[("x-message-ttl", FieldValue::I32(ms))]);
    c.declare_queue(1, QueueDeclare { queue: "q".into(), arguments: args(1000), ..Default::default() });
    // Same value in another integer width is equivalent.
    c.declare_queue(
        1,
        QueueDeclare {
            queue: "q".into(),
            arguments: table(&[("x-message-ttl", FieldValue::I64(1000))]),
            ..Default::default()
        },
    );
    c.send(1, QueueDeclare { queue: "q".into(), arguments: args(2000), ..Default::default() });
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 406);
    assert!(close.reply_text.contains("inequivalent arg 'x-message-ttl'"), "{}", close.reply_text);
}

#[test]
fn redeclare_exchange_with_different_type_is_precondition_failed() {
    let b = broker();
    let mut c = client(&b);
    c.exchange(1, "x", "direct");
    c.exchange(1, "x", "direct");
    c.send(1, ExchangeDeclare { exchange: "x".into(), kind: "topic".into(), ..Default::default() });
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 406);
    assert_eq!(
        &*close.reply_text,
        "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'x' in vhost '/': received 'topic' but current is 'direct'"
    );
}

#[test]
fn declaring_a_reserved_exchange_name_is_access_refused() {
    let b = broker();
    let mut c = client(&b);
    c.send(1, ExchangeDeclare { exchange: "amq.foo".into(), kind: "direct".into(), ..Default::default() });
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 403);
    assert_eq!(
        &*close.reply_text,
        "ACCESS_REFUSED - exchange name 'amq.foo' contains reserved prefix 'amq.*'"
    );
    assert_eq!((close.class_id, close.method_id), (40, 10));
    // The predeclared amq.* exchanges redeclare fine with their own type.
    c.open_channel(1);
    c.send(
        1,
        ExchangeDeclare {
            exchange: "amq.topic".into(),
            kind: "topic".into(),
            durable: true,
            ..Default::default()
        },
    );
    c.expect_one(1, "exchange.declare-ok");
}

#[test]
fn declaring_a_reserved_queue_name_is_access_refused() {
    let b = broker();
    let mut c = client(&b);
    c.send(1, QueueDeclare { queue: "amq.q".into(), ..Default::default() });
    assert_eq!(c.expect_channel_close(1).reply_code, 403);
}

#[test]
fn unknown_exchange_type_closes_the_connection_with_503() {
    let b = broker();
    let mut c = client(&b);
    c.send(1, ExchangeDeclare { exchange: "x".into(), kind: "nonsense".into(), ..Default::default() });
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 503);
    assert!(close.reply_text.starts_with("COMMAND_INVALID - "), "{}", close.reply_text);
    assert!(close.reply_text.contains("exchange type 'nonsense'"), "{}", close.reply_text);
    assert_eq!((close.class_id, close.method_id), (40, 10));
    assert!(b.vhost("/").unwrap().exchange("x").is_err());
}

#[test]
fn passive_declare_of_missing_exchange_is_404() {
    let b = broker();
    let mut c = client(&b);
    c.send(1, ExchangeDeclare { exchange: "ghost".into(), passive: true, ..Default::default() });
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 404);
    assert_eq!(&*close.reply_text, "NOT_FOUND - no exchange 'ghost' in vhost '/'");
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

#[test]
fn exchange_to_exchange_binding_routes() {
    let b = broker();
    let mut c = client(&b);
    c.exchange(1, "front", "direct");
    c.exchange(1, "back", "fanout");
    c.queue(1, "q");
    c.bind(1, "q", "back", "");
    let bind = ExchangeBind {
        destination: "back".into(),
        source: "front".into(),
        routing_key: "k".into(),
        ..Default::default()
    };
    c.rpc(1, bind, "exchange.bind-ok");

    c.publish(1, "front", "k", &no_props(), b"through");
    c.publish(1, "front", "other", &no_props(), b"not bound");
    c.publish(1, "back", "anything", &no_props(), b"direct to back");
    let mut got = Vec::new();
    while let Some((ok, item)) = c.get(1, "q", true) {
        got.push((ok.exchange.to_string(), String::from_utf8_lossy(item.body()).into_owned()));
    }
    assert_eq!(got, vec![("front".into(), "through".into()), ("back".into(), "direct to back".into())]);

    let unbind = ExchangeUnbind {
        destination: "back".into(),
        source: "front".into(),
        routing_key: "k".into(),
        ..Default::default()
    };
    c.rpc(1, unbind, "exchange.unbind-ok");
    c.publish(1, "front", "k", &no_props(), b"after unbind");
    assert!(c.get(1, "q", true).is_none());
}

#[test]
fn a_message_reaching_a_queue_twice_is_stored_once() {
    let b = broker();
    let mut c = client(&b);
    c.exchange(1, "e1", "fanout");
    c.queue(1, "q");
    c.bind(1, "q", "e1", "");
    c.bind(1, "q", "amq.fanout", "");
    c.rpc(
        1,
        ExchangeBind { destination: "e1".into(), source: "amq.fanout".into(), ..Default::default() },
        "exchange.bind-ok",
    );
    c.publish(1, "amq.fanout", "", &no_props(), b"once");
    assert_eq!(c.counts(1, "q").0, 1);
}

#[test]
fn topic_routing() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "orders");
    c.queue(1, "errors");
    c.queue(1, "all");
    c.bind(1, "orders", "amq.topic", "orders.*");
    c.bind(1, "errors", "amq.topic", "#.error");
    c.bind(1, "all", "amq.topic", "#");
    for key in ["orders.created", "orders.eu.created", "app.db.error", "error", "orders.error", "orders"] {
        c.publish(1, "amq.topic", key, &no_props(), key.as_bytes());
    }
    let mut drain = |q: &str| {
        let mut keys = Vec::new();
        while let Some((ok, _)) = c.get(1, q, true) {
            keys.push(ok.routing_key.to_string());
        }
        keys
    };
    assert_eq!(drain("orders"), vec!["orders.created", "orders.error"]);
    assert_eq!(drain("errors"), vec!["app.db.error", "error", "orders.error"]);
    assert_eq!(drain("all").len(), 6);
}

#[test]
fn headers_routing() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "all-of");
    c.queue(1, "any-of");
    c.bind_args(1, "all-of", "amq.headers", "", table(&[("format", text("pdf")), ("type", text("report"))]));
    c.bind_args(
        1,
        "any-of",
        "amq.headers",
        "",
        table(&[("x-match", text("any")), ("format", text("pdf")), ("type", text("report"))]),
    );
    let with =
        |pairs: &[(&str, FieldValue)]| BasicProperties { headers: Some(table(pairs)), ..Default::default() };
    c.publish(1, "amq.headers", "", &with(&[("format", text("pdf")), ("type", text("report"))]), b"both");
    c.publish(1, "amq.headers", "", &with(&[("format", text("pdf"))]), b"format only");
    c.publish(1, "amq.headers", "", &with(&[("format", text("zip")), ("type", text("log"))]), b"neither");
    c.publish(1, "amq.headers", "", &no_props(), b"no headers");
    let mut drain = |q: &str| {
        let mut bodies = Vec::new();
        while let Some((_, item)) = c.get(1, q, true) {
            bodies.push(String::from_utf8_lossy(item.body()).into_owned());
        }
        bodies
    };
    assert_eq!(drain("all-of"), vec!["both"]);
    assert_eq!(drain("any-of"), vec!["both", "format only"]);
}

#[test]
fn fanout_ignores_the_routing_key() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q1");
    c.queue(1, "q2");
    c.bind(1, "q1", "amq.fanout", "ignored");
    c.bind(1, "q2", "amq.fanout", "");
    c.publish(1, "amq.fanout", "whatever", &no_props(), b"x");
    assert_eq!((c.counts(1, "q1").0, c.counts(1, "q2").0), (1, 1));
}

#[test]
fn queue_unbind_stops_routing() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.bind(1, "q", "amq.direct", "k");
    c.publish(1, "amq.direct", "k", &no_props(), b"1");
    let unbind = QueueUnbind {
        queue: "q".into(),
        exchange: "amq.direct".into(),
        routing_key: "k".into(),
        ..Default::default()
    };
    c.rpc(1, unbind, "queue.unbind-ok");
    c.publish(1, "amq.direct", "k", &no_props(), b"2");
    assert_eq!(c.counts(1, "q").0, 1);
}

// ---------------------------------------------------------------------------------------------
// TTL
// ---------------------------------------------------------------------------------------------

#[test]
fn message_ttl_zero_without_consumer_expires_at_once() {
    let b = broker();
    let mut c = client(&b);
    c.declare_queue(
        1,
        QueueDeclare {
            queue: "ephemeral".into(),
            arguments: table(&[("x-message-ttl", FieldValue::I32(0))]),
            ..Default::default()
        },
    );
    c.publish(1, "", "ephemeral", &no_props(), b"gone");
    assert!(c.get(1, "ephemeral", false).is_none());
    assert_eq!(c.counts(1, "ephemeral").0, 0);
}

#[test]
fn message_ttl_zero_with_a_consumer_still_delivers() {
    let b = broker();
    let mut c = client(&b);
    c.declare_queue(
        1,
        QueueDeclare {
            queue: "ephemeral".into(),
            arguments: table(&[("x-message-ttl", FieldValue::I32(0))]),
            ..Default::default()
        },
    );
    c.consume(1, "ephemeral", "c");
    c.recv();
    c.publish(1, "", "ephemeral", &no_props(), b"caught");
    assert_eq!(bodies(&c.recv_items()), vec!["caught"]);
}

#[test]
fn per_message_expiration_zero_expires_at_once() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    let props = BasicProperties { expiration: Some("0".into()), ..Default::default() };
    c.publish(1, "", "q", &props, b"gone");
    c.publish(1, "", "q", &no_props(), b"stays");
    let (ok, item) = c.get(1, "q", true).unwrap();
    assert_eq!((item.body(), ok.message_count), (&b"stays"[..], 0));
}

#[test]
fn long_ttl_keeps_the_message() {
    let b = broker();
    let mut c = client(&b);
    c.declare_queue(
        1,
        QueueDeclare {
            queue: "q".into(),
            arguments: table(&[("x-message-ttl", FieldValue::I32(60_000))]),
            ..Default::default()
        },
    );
    c.publish(1, "", "q", &no_props(), b"kept");
    assert_eq!(c.get(1, "q", true).unwrap().1.body(), b"kept");
}

// ---------------------------------------------------------------------------------------------
// Consumers
// ---------------------------------------------------------------------------------------------

#[test]
fn exclusive_consumer_blocks_others() {
    let b = broker();
    let mut a = client(&b);
    let mut z = client(&b);
    a.queue(1, "q");
    a.send(
        1,
        BasicConsume { queue: "q".into(), consumer_tag: "a".into(), exclusive: true, ..Default::default() },
    );
    a.expect_one(1, "basic.consume-ok");
    z.consume(1, "q", "z");
    let close = z.expect_channel_close(1);
    assert_eq!(close.reply_code, 403);
    assert_eq!(&*close.reply_text, "ACCESS_REFUSED - queue 'q' in vhost '/' in exclusive use");
}

#[test]
fn reusing_a_consumer_tag_on_a_channel_is_not_allowed() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.consume(1, "q", "same");
    c.recv();
    c.consume(1, "q", "same");
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 530);
    assert_eq!(&*close.reply_text, "NOT_ALLOWED - attempt to reuse consumer tag 'same'");
}

#[test]
fn no_ack_consumer_gets_everything_and_needs_no_acks() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.qos(1, 1, false);
    c.send(
        1,
        BasicConsume { queue: "q".into(), consumer_tag: "fast".into(), no_ack: true, ..Default::default() },
    );
    c.recv();
    for i in 0..3 {
        c.publish(1, "", "q", &no_props(), format!("{i}").as_bytes());
    }
    assert_eq!(bodies(&c.recv_items()), vec!["0", "1", "2"], "prefetch does not apply to no-ack");
    c.rpc(1, ChannelClose { reply_code: 200, ..Default::default() }, "channel.close-ok");
    c.open_channel(1);
    assert_eq!(c.counts(1, "q").0, 0, "nothing to requeue");
}

#[test]
fn server_generated_consumer_tag() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.consume(1, "q", "");
    let item = c.expect_one(1, "basic.consume-ok");
    let Method::BasicConsumeOk(ok) = item.method else { unreachable!() };
    assert!(ok.consumer_tag.starts_with("amq.ctag-"), "{}", ok.consumer_tag);
    c.publish(1, "", "q", &no_props(), b"x");
    let items = c.recv_items();
    assert_eq!(deliver(&items[0]).consumer_tag, ok.consumer_tag);
}

#[test]
fn cancelled_consumer_gets_no_more_deliveries() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    c.consume(1, "q", "c");
    c.recv();
    c.rpc(1, BasicCancel { consumer_tag: "c".into(), nowait: false }, "basic.cancel-ok");
    c.publish(1, "", "q", &no_props(), b"x");
    c.expect_nothing();
    assert_eq!(c.counts(1, "q"), (1, 0));
}

#[test]
fn deliveries_go_to_the_consumers_channel() {
    let b = broker();
    let mut c = client(&b);
    c.open_channel(5);
    c.queue(1, "q");
    c.consume(5, "q", "c");
    c.recv();
    c.publish(1, "", "q", &no_props(), b"x");
    let items = c.recv_items();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].channel, 5);
}

#[test]
fn disconnect_requeues_unacked_for_other_consumers() {
    let b = broker();
    let mut a = client(&b);
    let mut z = client(&b);
    a.queue(1, "q");
    a.publish(1, "", "q", &no_props(), b"x");
    a.consume(1, "q", "a");
    assert_eq!(bodies(&a.recv_items()), vec!["x"]);
    z.consume(1, "q", "z");
    z.expect_one(1, "basic.consume-ok");
    a.disconnect();
    let items = z.recv_items();
    assert_eq!(bodies(&items), vec!["x"]);
    assert!(deliver(&items[0]).redelivered);
}

#[test]
fn consumer_tag_is_free_again_after_the_server_cancelled_it() {
    let b = broker();
    let mut a = TestClient::connect_with(&b, with_capabilities(&["consumer_cancel_notify"]));
    a.open_channel(1);
    let mut admin = client(&b);
    a.queue(1, "q");
    a.consume(1, "q", "c");
    a.expect_one(1, "basic.consume-ok");
    admin.rpc(1, QueueDelete { queue: "q".into(), ..Default::default() }, "queue.delete-ok");
    a.expect_one(1, "basic.cancel");
    // The client was told consumer "c" is gone; subscribing again under that tag is legitimate.
    a.queue(1, "q");
    a.consume(1, "q", "c");
    a.expect_one(1, "basic.consume-ok");
    assert!(a.conn.is_open());
}

#[test]
fn ack_on_another_channel_is_unknown() {
    let b = broker();
    let mut c = client(&b);
    c.open_channel(2);
    c.queue(1, "q");
    c.publish(1, "", "q", &no_props(), b"x");
    c.get(1, "q", false).unwrap();
    c.ack(2, 1, false);
    assert_eq!(c.expect_channel_close(2).reply_code, 406);
    c.ack(1, 1, false);
    c.expect_nothing();
}

#[test]
fn immediate_publish_is_not_implemented() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "q");
    let publish =
        BasicPublish { exchange: "".into(), routing_key: "q".into(), immediate: true, ..Default::default() };
    c.publish_with(1, publish, &no_props(), b"x");
    let close = c.expect_connection_close();
    assert_eq!(close.reply_code, 540);
    assert_eq!(&*close.reply_text, "NOT_IMPLEMENTED - immediate=true");
    assert_eq!((close.class_id, close.method_id), (60, 40));
    assert_eq!(b.vhost("/").unwrap().queue("q").unwrap().message_count(), 0);
}

#[test]
fn publish_to_internal_exchange_is_refused() {
    let b = broker();
    let mut c = client(&b);
    c.rpc(
        1,
        ExchangeDeclare {
            exchange: "inner".into(),
            kind: "fanout".into(),
            internal: true,
            ..Default::default()
        },
        "exchange.declare-ok",
    );
    c.publish(1, "inner", "", &no_props(), b"x");
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 403);
    assert_eq!(
        &*close.reply_text,
        "ACCESS_REFUSED - cannot publish to internal exchange 'inner' in vhost '/'"
    );
}

#[test]
fn internal_exchange_is_reachable_through_another_exchange() {
    let b = broker();
    let mut c = client(&b);
    c.rpc(
        1,
        ExchangeDeclare {
            exchange: "inner".into(),
            kind: "fanout".into(),
            internal: true,
            ..Default::default()
        },
        "exchange.declare-ok",
    );
    c.queue(1, "q");
    c.bind(1, "q", "inner", "");
    c.rpc(
        1,
        ExchangeBind { destination: "inner".into(), source: "amq.fanout".into(), ..Default::default() },
        "exchange.bind-ok",
    );
    c.publish(1, "amq.fanout", "", &no_props(), b"x");
    assert_eq!(c.counts(1, "q").0, 1);
}

#[test]
fn auto_delete_exchange_goes_with_its_last_binding() {
    let b = broker();
    let mut c = client(&b);
    c.rpc(
        1,
        ExchangeDeclare {
            exchange: "ax".into(),
            kind: "direct".into(),
            auto_delete: true,
            ..Default::default()
        },
        "exchange.declare-ok",
    );
    c.queue(1, "q1");
    c.queue(1, "q2");
    c.bind(1, "q1", "ax", "k");
    c.bind(1, "q2", "ax", "k");
    let vhost = b.vhost("/").unwrap();
    let unbind = |q: &str| QueueUnbind {
        queue: q.into(),
        exchange: "ax".into(),
        routing_key: "k".into(),
        ..Default::default()
    };
    c.rpc(1, unbind("q1"), "queue.unbind-ok");
    assert!(vhost.exchange("ax").is_ok(), "still bound to q2");
    c.rpc(1, QueueDelete { queue: "q2".into(), ..Default::default() }, "queue.delete-ok");
    assert!(vhost.exchange("ax").is_err(), "last binding gone with q2");
}

#[test]
fn exclusive_queue_cannot_be_bound_purged_or_deleted_by_others() {
    let b = broker();
    let mut owner = client(&b);
    let mut other = client(&b);
    owner.declare_queue(1, QueueDeclare { queue: "mine".into(), exclusive: true, ..Default::default() });
    other.send(1, QueueBind { queue: "mine".into(), exchange: "amq.fanout".into(), ..Default::default() });
    assert_eq!(other.expect_channel_close(1).reply_code, 405);
    other.open_channel(1);
    other.send(1, QueuePurge { queue: "mine".into(), ..Default::default() });
    assert_eq!(other.expect_channel_close(1).reply_code, 405);
    other.open_channel(1);
    other.send(1, QueueDelete { queue: "mine".into(), ..Default::default() });
    assert_eq!(other.expect_channel_close(1).reply_code, 405);
    assert!(queue_exists(&b, "mine"));
}

#[test]
fn deleting_a_missing_queue_or_exchange_succeeds() {
    let b = broker();
    let mut c = client(&b);
    let ok = c.rpc(1, QueueDelete { queue: "ghost".into(), ..Default::default() }, "queue.delete-ok");
    assert_eq!(ok.method, Method::QueueDeleteOk(QueueDeleteOk { message_count: 0 }));
    c.rpc(1, ExchangeDelete { exchange: "ghost".into(), ..Default::default() }, "exchange.delete-ok");
    c.send(1, ExchangeDelete { exchange: "amq.direct".into(), ..Default::default() });
    assert_eq!(c.expect_channel_close(1).reply_code, 403);
}

// ---------------------------------------------------------------------------------------------
// Sender-selected distribution, length limits, dead-lettering on expiry
// ---------------------------------------------------------------------------------------------

fn keys(names: &[&str]) -> FieldValue {
    FieldValue::Array(names.iter().map(|n| text(n)).collect())
}

fn death_reason(item: &Item) -> Option<String> {
    let headers = item.props().headers.as_ref()?;
    let Some(FieldValue::Array(deaths)) = headers.get("x-death") else { return None };
    let FieldValue::Table(death) = deaths.first()? else { return None };
    death.get("reason").and_then(FieldValue::as_str).map(str::to_owned)
}

/// A queue "dlq" bound to fanout exchange "dlx", and queue `name` with `args` dead-lettering to it.
fn queue_with_dlx(c: &mut TestClient, name: &str, args: &[(&str, FieldValue)]) {
    c.exchange(1, "dlx", "fanout");
    c.queue(1, "dlq");
    c.bind(1, "dlq", "dlx", "");
    let mut arguments = table(args);
    arguments.insert("x-dead-letter-exchange", text("dlx"));
    c.declare_queue(1, QueueDeclare { queue: name.into(), arguments, ..Default::default() });
}

#[test]
fn cc_and_bcc_route_to_more_queues_and_bcc_is_removed() {
    let b = broker();
    let mut c = client(&b);
    c.exchange(1, "x", "direct");
    for (q, key) in [("main", "k0"), ("cc1", "k1"), ("cc2", "k2"), ("bcc", "k3"), ("other", "k4")] {
        c.queue(1, q);
        c.bind(1, q, "x", key);
    }
    // "main" is also reached through CC: it still gets one copy.
    c.bind(1, "main", "x", "k1");
    let headers = table(&[
        ("before", FieldValue::I32(1)),
        ("CC", keys(&["k1", "k2"])),
        ("BCC", keys(&["k3"])),
        ("after", text("x")),
    ]);
    let props = BasicProperties { headers: Some(headers), ..Default::default() };
    c.publish(1, "x", "k0", &props, b"to many");
    for q in ["main", "cc1", "cc2", "bcc"] {
        let (ok, item) = c.get(1, q, true).unwrap_or_else(|| panic!("{q} got nothing"));
        assert_eq!((&*ok.routing_key, ok.message_count), ("k0", 0), "{q}");
        let h = item.props().headers.as_ref().unwrap();
        let names: Vec<&str> = h.iter().map(|(k, _)| &**k).collect();
        assert_eq!(names, ["before", "CC", "after"], "BCC removed, order kept, in {q}");
    }
    assert!(c.get(1, "other", true).is_none());
}

#[test]
fn cc_routes_through_the_default_exchange() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "a");
    c.queue(1, "b");
    let props =
        BasicProperties { headers: Some(table(&[("CC", keys(&["b", "nowhere"]))])), ..Default::default() };
    c.publish(1, "", "a", &props, b"x");
    assert!(c.get(1, "a", true).is_some());
    let (_, item) = c.get(1, "b", true).unwrap();
    assert!(item.props().headers.as_ref().unwrap().get("CC").is_some(), "CC stays");
}

#[test]
fn max_length_drops_the_oldest_into_the_dead_letter_exchange() {
    let b = broker();
    let mut c = client(&b);
    queue_with_dlx(&mut c, "q", &[("x-max-length", FieldValue::I32(2))]);
    for i in 0..4 {
        c.publish(1, "", "q", &no_props(), format!("m{i}").as_bytes());
    }
    assert_eq!(c.counts(1, "q").0, 2);
    assert_eq!(c.get(1, "q", true).unwrap().1.body(), b"m2");
    assert_eq!(c.get(1, "q", true).unwrap().1.body(), b"m3");
    for expected in ["m0", "m1"] {
        let (_, item) = c.get(1, "dlq", true).unwrap();
        assert_eq!(item.body(), expected.as_bytes());
        assert_eq!(death_reason(&item).as_deref(), Some("maxlen"));
    }
}

#[test]
fn max_length_without_dead_letter_exchange_drops_the_oldest() {
    let b = broker();
    let mut c = client(&b);
    let arguments = table(&[("x-max-length", FieldValue::I32(1))]);
    c.declare_queue(1, QueueDeclare { queue: "q".into(), arguments, ..Default::default() });
    c.publish(1, "", "q", &no_props(), b"old");
    c.publish(1, "", "q", &no_props(), b"new");
    let (ok, item) = c.get(1, "q", true).unwrap();
    assert_eq!((item.body(), ok.message_count), (&b"new"[..], 0));
}

#[test]
fn max_length_bytes_counts_ready_bodies() {
    let b = broker();
    let mut c = client(&b);
    let arguments = table(&[("x-max-length-bytes", FieldValue::I32(10))]);
    c.declare_queue(1, QueueDeclare { queue: "q".into(), arguments, ..Default::default() });
    c.publish(1, "", "q", &no_props(), b"aaaa");
    c.publish(1, "", "q", &no_props(), b"bbbb");
    c.publish(1, "", "q", &no_props(), b"cccc"); // 12 bytes: "aaaa" goes
    assert_eq!(c.counts(1, "q").0, 2);
    // Taking one out frees its bytes.
    assert_eq!(c.get(1, "q", true).unwrap().1.body(), b"bbbb");
    c.publish(1, "", "q", &no_props(), b"dddddd");
    assert_eq!(c.counts(1, "q").0, 2);
    assert_eq!(c.get(1, "q", true).unwrap().1.body(), b"cccc");
}

#[test]
fn reject_publish_nacks_in_confirm_mode() {
    let b = broker();
    let mut c = client(&b);
    let arguments = table(&[("x-max-length", FieldValue::I32(1)), ("x-overflow", text("reject-publish"))]);
    c.declare_queue(1, QueueDeclare { queue: "q".into(), arguments, ..Default::default() });
    c.queue(1, "roomy");
    c.bind(1, "q", "amq.fanout", "");
    c.bind(1, "roomy", "amq.fanout", "");
    c.rpc(1, ConfirmSelect { nowait: false }, "confirm.select-ok");
    c.publish(1, "", "q", &no_props(), b"kept");
    let ack = c.expect_one(1, "basic.ack");
    assert_eq!(ack.method, Method::BasicAck(BasicAck { delivery_tag: 1, multiple: false }));
    c.publish(1, "", "q", &no_props(), b"refused");
    let nack = c.expect_one(1, "basic.nack");
    assert_eq!(
        nack.method,
        Method::BasicNack(BasicNack { delivery_tag: 2, multiple: false, requeue: false })
    );
    // Refused by one of the queues it reached: still nacked, though the other kept it.
    c.publish(1, "amq.fanout", "", &no_props(), b"half");
    c.expect_one(1, "basic.nack");
    assert_eq!(c.get(1, "roomy", true).unwrap().1.body(), b"half");
    let (ok, item) = c.get(1, "q", true).unwrap();
    assert_eq!((item.body(), ok.message_count), (&b"kept"[..], 0));
}

#[test]
fn reject_publish_without_confirms_drops_quietly() {
    let b = broker();
    let mut c = client(&b);
    let arguments = table(&[("x-max-length", FieldValue::I32(1)), ("x-overflow", text("reject-publish"))]);
    c.declare_queue(1, QueueDeclare { queue: "q".into(), arguments, ..Default::default() });
    c.publish(1, "", "q", &no_props(), b"kept");
    c.publish(1, "", "q", &no_props(), b"refused");
    c.expect_nothing();
    let (ok, item) = c.get(1, "q", true).unwrap();
    assert_eq!((item.body(), ok.message_count), (&b"kept"[..], 0));
}

#[test]
fn reject_publish_dlx_dead_letters_the_refused_message() {
    let b = broker();
    let mut c = client(&b);
    queue_with_dlx(
        &mut c,
        "q",
        &[("x-max-length", FieldValue::I32(1)), ("x-overflow", text("reject-publish-dlx"))],
    );
    c.rpc(1, ConfirmSelect { nowait: false }, "confirm.select-ok");
    c.publish(1, "", "q", &no_props(), b"kept");
    c.expect_one(1, "basic.ack");
    c.publish(1, "", "q", &no_props(), b"refused");
    c.expect_one(1, "basic.nack");
    assert_eq!(c.get(1, "q", true).unwrap().1.body(), b"kept");
    let (_, item) = c.get(1, "dlq", true).unwrap();
    assert_eq!(item.body(), b"refused");
    assert_eq!(death_reason(&item).as_deref(), Some("maxlen"));
}

#[test]
fn ttl_zero_dead_letters_at_once_on_publish() {
    let b = broker();
    let mut c = client(&b);
    queue_with_dlx(&mut c, "q", &[("x-message-ttl", FieldValue::I32(0))]);
    c.publish(1, "", "q", &no_props(), b"queue ttl");
    c.declare_queue(
        1,
        QueueDeclare {
            queue: "q2".into(),
            arguments: table(&[("x-dead-letter-exchange", text("dlx"))]),
            ..Default::default()
        },
    );
    let props = BasicProperties { expiration: Some("0".into()), ..Default::default() };
    c.publish(1, "", "q2", &props, b"message ttl");
    assert_eq!(c.counts(1, "q").0, 0);
    let (_, item) = c.get(1, "dlq", true).unwrap();
    assert_eq!((item.body(), death_reason(&item).as_deref()), (&b"queue ttl"[..], Some("expired")));
    let (_, item) = c.get(1, "dlq", true).unwrap();
    assert_eq!((item.body(), death_reason(&item).as_deref()), (&b"message ttl"[..], Some("expired")));
    let headers = item.props().headers.as_ref().unwrap();
    let Some(FieldValue::Array(deaths)) = headers.get("x-death") else { panic!() };
    let FieldValue::Table(death) = &deaths[0] else { panic!() };
    assert_eq!(death.get("original-expiration").and_then(FieldValue::as_str), Some("0"));
    assert_eq!(item.props().expiration, None);
}

#[test]
fn expire_all_dead_letters_messages_nobody_reads() {
    let b = broker();
    let mut c = client(&b);
    queue_with_dlx(&mut c, "q", &[("x-message-ttl", FieldValue::I32(300))]);
    c.queue(1, "plain");
    let props = BasicProperties { expiration: Some("300".into()), ..Default::default() };
    c.publish(1, "", "plain", &props, b"dropped");
    c.publish(1, "", "q", &no_props(), b"late");
    b.expire_all();
    assert_eq!(c.counts(1, "dlq").0, 0, "not due yet");
    // The TTL has to run out: wait for it (generous, so a loaded machine cannot expire them early).
    std::thread::sleep(std::time::Duration::from_millis(350));
    b.expire_all();
    let (_, item) = c.get(1, "dlq", true).expect("dead-lettered without anyone reading q");
    assert_eq!((item.body(), death_reason(&item).as_deref()), (&b"late"[..], Some("expired")));
    assert_eq!(c.counts(1, "plain").0, 0);
    assert_eq!(c.counts(1, "q").0, 0);
}

// ---------------------------------------------------------------------------------------------
// Queue and consumer features: x-expires, x-max-priority, single active consumer, x-priority
// ---------------------------------------------------------------------------------------------

fn declare_with(c: &mut TestClient, name: &str, args: &[(&str, FieldValue)]) {
    c.declare_queue(1, QueueDeclare { queue: name.into(), arguments: table(args), ..Default::default() });
}

fn consume_with(c: &mut TestClient, channel: u16, queue: &str, tag: &str, args: FieldTable) {
    let consume =
        BasicConsume { queue: queue.into(), consumer_tag: tag.into(), arguments: args, ..Default::default() };
    c.rpc(channel, consume, "basic.consume-ok");
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(std::time::Duration::from_millis(ms));
}

#[test]
fn unused_queue_expires_and_use_restarts_the_timer() {
    let b = broker();
    let mut c = client(&b);
    let expires = [("x-expires", FieldValue::I32(150))];
    declare_with(&mut c, "idle", &expires);
    declare_with(&mut c, "consumed", &expires);
    declare_with(&mut c, "polled", &expires);
    c.publish(1, "", "idle", &no_props(), b"goes with its queue");
    consume_with(&mut c, 1, "consumed", "keep", FieldTable::new());
    b.expire_all();
    assert!(queue_exists(&b, "idle"), "not due yet");
    sleep_ms(100);
    assert!(c.get(1, "polled", true).is_none(), "basic.get uses the queue");
    sleep_ms(100);
    b.expire_all();
    assert!(!queue_exists(&b, "idle"), "unused for longer than x-expires");
    assert!(queue_exists(&b, "consumed"), "a queue with a consumer is in use");
    assert!(queue_exists(&b, "polled"), "basic.get restarted the timer");
    // a redeclare restarts it too
    declare_with(&mut c, "polled", &expires);
    c.rpc(1, BasicCancel { consumer_tag: "keep".into(), nowait: false }, "basic.cancel-ok");
    sleep_ms(100);
    b.expire_all();
    assert!(queue_exists(&b, "consumed"), "the timer starts when the last consumer leaves");
    assert!(queue_exists(&b, "polled"));
    sleep_ms(100);
    b.expire_all();
    assert!(!queue_exists(&b, "consumed"));
    assert!(!queue_exists(&b, "polled"));
}

#[test]
fn priority_queue_delivers_highest_first_and_requeues_in_place() {
    let b = broker();
    let mut c = client(&b);
    declare_with(&mut c, "q", &[("x-max-priority", FieldValue::I32(5))]);
    let with = |p: Option<u8>| BasicProperties { priority: p, ..Default::default() };
    for (i, p) in [Some(1), Some(5), Some(9), None, Some(3), Some(5)].into_iter().enumerate() {
        c.publish(1, "", "q", &with(p), format!("m{i}").as_bytes());
    }
    let (_, item) = c.get(1, "q", false).unwrap();
    assert_eq!(item.body(), b"m1");
    let (_, item) = c.get(1, "q", false).unwrap();
    assert_eq!(item.body(), b"m2", "a priority above the maximum counts as the maximum");
    c.send(1, BasicNack { delivery_tag: 0, multiple: true, requeue: true });
    let mut got = Vec::new();
    while let Some((ok, item)) = c.get(1, "q", true) {
        got.push((String::from_utf8_lossy(item.body()).into_owned(), ok.redelivered));
    }
    let want = [("m1", true), ("m2", true), ("m5", false), ("m4", false), ("m0", false), ("m3", false)];
    assert_eq!(got, want.map(|(b, r)| (b.to_owned(), r)));
    // consumers see the same order
    for (i, p) in [0u8, 2, 4, 2].into_iter().enumerate() {
        c.publish(1, "", "q", &with(Some(p)), format!("n{i}").as_bytes());
    }
    c.consume(1, "q", "c");
    assert_eq!(bodies(&c.recv_items()), ["n2", "n1", "n3", "n0"]);
}

#[test]
fn single_active_consumer_hands_over_in_registration_order() {
    let b = broker();
    let mut c = client(&b);
    for ch in 2..=4 {
        c.open_channel(ch);
    }
    declare_with(&mut c, "q", &[("x-single-active-consumer", FieldValue::Bool(true))]);
    consume_with(&mut c, 1, "q", "a", FieldTable::new());
    consume_with(&mut c, 2, "q", "b", FieldTable::new());
    consume_with(&mut c, 3, "q", "c", FieldTable::new());
    assert_eq!(c.counts(4, "q"), (0, 3));
    for i in 0..3 {
        c.publish(4, "", "q", &no_props(), format!("m{i}").as_bytes());
    }
    let got = deliveries(&c.recv_items());
    assert_eq!(got.iter().map(|(t, _, _)| t.as_str()).collect::<Vec<_>>(), ["a", "a", "a"]);
    c.ack(1, 0, true);
    c.send(1, BasicCancel { consumer_tag: "a".into(), nowait: false });
    let items = c.recv_items();
    assert_eq!(items.len(), 1, "no cancel notification to the others: {items:#?}");
    c.publish(4, "", "q", &no_props(), b"m3");
    let got = deliveries(&c.recv_items());
    assert_eq!(got, [("b".to_owned(), 1, "m3".to_owned())]);
    // b's channel closes with m3 unacked: c gets it back, then the next one
    c.send(2, ChannelClose::default());
    let mut items = c.recv_items();
    assert!(items.iter().any(|i| i.channel == 2 && i.method.name() == "channel.close-ok"));
    c.publish(4, "", "q", &no_props(), b"m4");
    items.extend(c.recv_items());
    let got: Vec<_> = deliveries(&items).into_iter().map(|(t, _, b)| (t, b)).collect();
    assert_eq!(got, [("c".to_owned(), "m3".to_owned()), ("c".to_owned(), "m4".to_owned())]);
    // an exclusive consumer is refused on such a queue
    c.send(4, BasicConsume { queue: "q".into(), exclusive: true, ..Default::default() });
    let close = c.expect_channel_close(4);
    assert_eq!(&*close.reply_text, "ACCESS_REFUSED - queue 'q' in vhost '/' in exclusive use");
}

#[test]
fn consumer_priorities_prefer_higher_priority_with_credit() {
    let b = broker();
    let mut c = client(&b);
    for ch in 2..=4 {
        c.open_channel(ch);
    }
    c.queue(1, "q");
    c.qos(1, 2, false);
    c.qos(3, 2, false);
    let prio = |p: i32| table(&[("x-priority", FieldValue::I32(p))]);
    consume_with(&mut c, 1, "q", "hi1", prio(5));
    consume_with(&mut c, 2, "q", "lo", FieldTable::new());
    consume_with(&mut c, 3, "q", "hi2", prio(5));
    for i in 0..6 {
        c.publish(4, "", "q", &no_props(), format!("m{i}").as_bytes());
    }
    let got: Vec<_> = deliveries(&c.recv_items()).into_iter().map(|(t, _, b)| format!("{t}:{b}")).collect();
    assert_eq!(got, ["hi1:m0", "hi2:m1", "hi1:m2", "hi2:m3", "lo:m4", "lo:m5"]);
    c.ack(1, 0, true);
    c.publish(4, "", "q", &no_props(), b"m6");
    assert_eq!(deliveries(&c.recv_items()), [("hi1".to_owned(), 3, "m6".to_owned())]);
}

// ---------------------------------------------------------------------------------------------
// Direct reply-to
// ---------------------------------------------------------------------------------------------

const REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// Consumes from the reply pseudo-queue (no-ack) on `channel`; returns the consumer tag.
fn consume_replies(c: &mut TestClient, channel: u16, tag: &str) -> String {
    let consume =
        BasicConsume { queue: REPLY_TO.into(), consumer_tag: tag.into(), no_ack: true, ..Default::default() };
    match c.rpc(channel, consume, "basic.consume-ok").method {
        Method::BasicConsumeOk(ok) => ok.consumer_tag.to_string(),
        _ => unreachable!(),
    }
}

fn request_props() -> BasicProperties {
    BasicProperties { reply_to: Some(REPLY_TO.into()), correlation_id: Some("c1".into()), ..no_props() }
}

/// The requester publishes a request to queue "rpc"; the server takes it and returns its reply_to.
fn request(requester: &mut TestClient, channel: u16, server: &mut TestClient) -> String {
    requester.publish(channel, "", "rpc", &request_props(), b"request");
    let (_, item) = server.get(1, "rpc", true).expect("the request");
    item.props().reply_to.as_ref().expect("reply_to").to_string()
}

#[test]
fn direct_reply_to_round_trip() {
    let b = broker();
    let mut requester = client(&b);
    let mut server = client(&b);
    server.queue(1, "rpc");
    let tag = consume_replies(&mut requester, 1, "");
    assert!(tag.starts_with("amq.ctag-"), "{tag}");
    let reply_to = request(&mut requester, 1, &mut server);
    assert!(
        reply_to.starts_with("amq.rabbitmq.reply-to.") && reply_to.len() > REPLY_TO.len() + 20,
        "{reply_to}"
    );

    server.publish(
        1,
        "",
        &reply_to,
        &BasicProperties { correlation_id: Some("c1".into()), ..no_props() },
        b"r1",
    );
    server.publish(1, "", &reply_to, &no_props(), b"r2");
    server.expect_nothing();
    let items = requester.recv_items();
    // As in RabbitMQ, replies carry the channel's next delivery tag without taking it.
    let want = |body: &str| (tag.clone(), 1, body.to_owned());
    assert_eq!(deliveries(&items), [want("r1"), want("r2")]);
    let d = deliver(&items[0]);
    assert_eq!((&*d.exchange, &*d.routing_key), ("", reply_to.as_str()));
    assert_eq!(items[0].props().correlation_id.as_deref(), Some("c1"));

    // Both the pseudo-queue and the handed-out name exist, with one consumer.
    assert_eq!(server.counts(1, &reply_to), (0, 1));
    assert_eq!(server.counts(1, REPLY_TO), (0, 1));
    // The requester's channel is still free for ordinary deliveries, which take tags as usual.
    requester.queue(1, "work");
    requester.consume(1, "work", "w");
    requester.expect_one(1, "basic.consume-ok");
    requester.publish(1, "", "work", &no_props(), b"job");
    assert_eq!(deliveries(&requester.recv_items()), [("w".to_owned(), 1, "job".to_owned())]);
}

#[test]
fn direct_reply_to_errors_match_rabbitmq() {
    let b = broker();
    let mut c = client(&b);
    c.queue(1, "rpc");
    c.send(1, BasicConsume { queue: REPLY_TO.into(), no_ack: false, ..Default::default() });
    let close = c.expect_channel_close(1);
    assert_eq!((close.reply_code, close.class_id, close.method_id), (406, 60, 20));
    assert_eq!(&*close.reply_text, "PRECONDITION_FAILED - reply consumer cannot acknowledge");

    c.open_channel(1);
    c.publish(1, "", "rpc", &request_props(), b"request");
    let close = c.expect_channel_close(1);
    assert_eq!((close.reply_code, close.class_id, close.method_id), (406, 60, 40));
    assert_eq!(&*close.reply_text, "PRECONDITION_FAILED - fast reply consumer does not exist");

    c.open_channel(1);
    consume_replies(&mut c, 1, "r1");
    c.send(
        1,
        BasicConsume {
            queue: REPLY_TO.into(),
            consumer_tag: "r2".into(),
            no_ack: true,
            ..Default::default()
        },
    );
    let close = c.expect_channel_close(1);
    assert_eq!(&*close.reply_text, "PRECONDITION_FAILED - reply consumer already set");

    c.open_channel(1);
    c.send(
        1,
        QueueDeclare { queue: "amq.rabbitmq.reply-to.bogus".into(), passive: true, ..Default::default() },
    );
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 404);
    assert_eq!(&*close.reply_text, "NOT_FOUND - no queue 'amq.rabbitmq.reply-to.bogus' in vhost '/'");

    // A tag in use on the channel: a connection error, as for any consumer.
    c.open_channel(1);
    c.consume(1, "rpc", "taken");
    c.expect_one(1, "basic.consume-ok");
    c.send(
        1,
        BasicConsume {
            queue: REPLY_TO.into(),
            consumer_tag: "taken".into(),
            no_ack: true,
            ..Default::default()
        },
    );
    let close = c.expect_connection_close();
    assert_eq!(&*close.reply_text, "NOT_ALLOWED - attempt to reuse consumer tag 'taken'");
}

#[test]
fn direct_reply_to_drops_replies_nobody_waits_for() {
    let b = broker();
    let mut requester = client(&b);
    requester.open_channel(2);
    let mut server = client(&b);
    server.queue(1, "rpc");
    consume_replies(&mut requester, 1, "one");
    let tag_two = consume_replies(&mut requester, 2, "two");
    let first = request(&mut requester, 1, &mut server);
    let second = request(&mut requester, 2, &mut server);
    assert_ne!(first, second);
    let mandatory =
        |key: &str| BasicPublish { routing_key: key.into(), mandatory: true, ..Default::default() };

    // A forged name (the second one with another key) reaches nobody.
    let (head, _) = second.rsplit_once('.').unwrap();
    let forged = format!("{head}.AAAAAAAAAAAAAAAAAAAAAA==");
    server.publish_with(1, mandatory(&forged), &no_props(), b"forged");
    let ret = server.expect_one(1, "basic.return");
    assert!(
        matches!(&ret.method, Method::BasicReturn(r) if r.reply_code == 312 && &*r.reply_text == "NO_ROUTE")
    );
    requester.expect_nothing();

    // Cancelled consumer: dropped, returned when mandatory.
    requester.rpc(1, BasicCancel { consumer_tag: "one".into(), nowait: false }, "basic.cancel-ok");
    server.publish_with(1, mandatory(&first), &no_props(), b"late");
    server.expect_one(1, "basic.return");
    server.send(1, QueueDeclare { queue: first.as_str().into(), passive: true, ..Default::default() });
    assert_eq!(server.expect_channel_close(1).reply_code, 404);
    server.open_channel(1);
    requester.expect_nothing();

    // A delivered mandatory reply is returned all the same, as in RabbitMQ (no queue took it).
    server.publish_with(1, mandatory(&second), &no_props(), b"delivered");
    server.expect_one(1, "basic.return");
    assert_eq!(deliveries(&requester.recv_items()), [(tag_two, 1, "delivered".to_owned())]);

    // The requester's connection goes: dropped.
    requester.disconnect();
    server.publish(1, "", &second, &no_props(), b"gone");
    server.expect_nothing();
    assert_eq!(server.counts(1, REPLY_TO), (0, 1));
}

#[test]
fn direct_reply_to_in_a_transaction_is_rewritten_at_publish() {
    let b = broker();
    let mut requester = client(&b);
    let mut server = client(&b);
    server.queue(1, "rpc");
    consume_replies(&mut requester, 1, "r");
    requester.rpc(1, TxSelect {}, "tx.select-ok");
    requester.publish(1, "", "rpc", &request_props(), b"request");
    requester.rpc(1, TxCommit {}, "tx.commit-ok");
    let (_, item) = server.get(1, "rpc", true).expect("the request");
    let reply_to = item.props().reply_to.as_ref().unwrap().to_string();
    assert!(reply_to.starts_with("amq.rabbitmq.reply-to."));
    server.publish(1, "", &reply_to, &no_props(), b"reply");
    assert_eq!(bodies(&requester.recv_items()), ["reply"]);
}

// ---------------------------------------------------------------------------------------------
// x-delivery-limit
// ---------------------------------------------------------------------------------------------

fn delivery_count(item: &Item) -> Option<i64> {
    item.props().headers.as_ref().and_then(|h| h.get("x-delivery-count")).and_then(FieldValue::as_i64)
}

#[test]
fn delivery_limit_counts_requeues_and_dead_letters_past_the_limit() {
    let b = broker();
    let mut c = client(&b);
    c.exchange(1, "dlx", "fanout");
    c.queue(1, "dlq");
    c.bind(1, "dlq", "dlx", "");
    c.declare_queue(
        1,
        QueueDeclare {
            queue: "work".into(),
            arguments: table(&[
                ("x-delivery-limit", FieldValue::I32(2)),
                ("x-dead-letter-exchange", text("dlx")),
            ]),
            ..Default::default()
        },
    );
    let props = BasicProperties { message_id: Some("m".into()), ..Default::default() };
    c.publish(1, "", "work", &props, b"x");
    c.consume(1, "work", "c");
    let items = c.recv_items();
    let items: Vec<_> = items.iter().filter(|i| matches!(i.method, Method::BasicDeliver(_))).collect();
    assert_eq!(items.len(), 1);
    assert_eq!(delivery_count(items[0]), Some(0), "the first delivery counts 0, as RabbitMQ 3.10");
    assert_eq!(items[0].props().message_id.as_deref(), Some("m"));

    // Two requeues (nack, then reject) are within the limit: the count goes up each time.
    c.send(1, BasicNack { delivery_tag: 1, multiple: false, requeue: true });
    let items = c.recv_items();
    assert_eq!(deliveries(&items), vec![("c".into(), 2, "x".into())]);
    assert_eq!(delivery_count(&items[0]), Some(1));
    assert_eq!(items[0].props().message_id.as_deref(), Some("m"), "other properties kept");
    assert!(deliver(&items[0]).redelivered);
    c.send(1, BasicReject { delivery_tag: 2, requeue: true });
    let items = c.recv_items();
    assert_eq!(deliveries(&items), vec![("c".into(), 3, "x".into())]);
    assert_eq!(delivery_count(&items[0]), Some(2));

    // The third return exceeds the limit: dead-lettered with reason delivery_limit.
    c.send(1, BasicNack { delivery_tag: 3, multiple: false, requeue: true });
    c.expect_nothing();
    assert_eq!(c.counts(1, "work").0, 0);
    let (_, item) = c.get(1, "dlq", true).expect("dead-lettered");
    let headers = item.props().headers.as_ref().expect("headers");
    assert_eq!(headers.get("x-first-death-reason").and_then(FieldValue::as_str), Some("delivery_limit"));
    assert_eq!(headers.get("x-first-death-queue").and_then(FieldValue::as_str), Some("work"));
    assert_eq!(delivery_count(&item), None, "the count belongs to the queue, not the message");
}

#[test]
fn delivery_limit_applies_to_channel_close_and_recover_and_drops_without_dlx() {
    let b = broker();
    let mut c = client(&b);
    c.declare_queue(
        1,
        QueueDeclare {
            queue: "q".into(),
            arguments: table(&[("x-delivery-limit", FieldValue::I64(1))]),
            ..Default::default()
        },
    );
    c.publish(1, "", "q", &no_props(), b"x");
    // basic.get, then recover: count 1.
    c.get(1, "q", false).unwrap();
    c.rpc(1, BasicRecover { requeue: true }, "basic.recover-ok");
    // A consumer on another channel, then the channel closes: count 2 > 1, dropped.
    c.open_channel(2);
    c.consume(2, "q", "c");
    let items = c.recv_items();
    let d: Vec<_> = items.iter().filter(|i| matches!(i.method, Method::BasicDeliver(_))).collect();
    assert_eq!(d.len(), 1);
    assert_eq!(delivery_count(d[0]), Some(1));
    c.rpc(2, ChannelClose { reply_code: 200, ..Default::default() }, "channel.close-ok");
    assert_eq!(c.counts(1, "q"), (0, 0), "over the limit without a dead-letter exchange: dropped");
}

#[test]
fn delivery_limit_zero_allows_a_single_delivery_and_get_carries_the_count() {
    let b = broker();
    let mut c = client(&b);
    c.declare_queue(
        1,
        QueueDeclare {
            queue: "once".into(),
            arguments: table(&[("x-delivery-limit", FieldValue::I32(0))]),
            ..Default::default()
        },
    );
    c.publish(1, "", "once", &no_props(), b"x");
    c.get(1, "once", false).unwrap();
    c.send(1, BasicNack { delivery_tag: 1, multiple: false, requeue: true });
    assert!(c.get(1, "once", true).is_none());

    c.declare_queue(
        1,
        QueueDeclare {
            queue: "twice".into(),
            arguments: table(&[("x-delivery-limit", FieldValue::I32(5))]),
            ..Default::default()
        },
    );
    c.publish(1, "", "twice", &no_props(), b"y");
    let (ok, _) = c.get(1, "twice", false).unwrap();
    c.send(1, BasicNack { delivery_tag: ok.delivery_tag, multiple: false, requeue: true });
    let (ok, item) = c.get(1, "twice", true).unwrap();
    assert!(ok.redelivered);
    assert_eq!(delivery_count(&item), Some(1));
}

#[test]
fn quorum_queues_count_deliveries_without_a_limit_and_classic_ones_do_not() {
    let b = broker();
    let mut c = client(&b);
    let quorum = table(&[("x-queue-type", text("quorum"))]);
    c.declare_queue(
        1,
        QueueDeclare { queue: "qq".into(), durable: true, arguments: quorum, ..Default::default() },
    );
    c.queue(1, "classic");
    for q in ["qq", "classic"] {
        c.publish(1, "", q, &no_props(), b"m");
    }
    let counts = |c: &mut TestClient, q: &str| {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let (ok, item) = c.get(1, q, false).unwrap();
            seen.push(delivery_count(&item));
            c.send(1, BasicNack { delivery_tag: ok.delivery_tag, multiple: false, requeue: true });
        }
        seen
    };
    assert_eq!(counts(&mut c, "qq"), [Some(0), Some(1), Some(2)], "never dropped without a limit");
    assert_eq!(counts(&mut c, "classic"), [None, None, None]);
}

#[test]
fn delivery_limit_must_be_a_non_negative_integer() {
    let b = broker();
    let mut c = client(&b);
    c.send(
        1,
        QueueDeclare {
            queue: "bad".into(),
            arguments: table(&[("x-delivery-limit", FieldValue::I32(-1))]),
            ..Default::default()
        },
    );
    let close = c.expect_channel_close(1);
    assert_eq!(close.reply_code, 406);
    assert!(close.reply_text.contains("invalid arg 'x-delivery-limit'"), "{close:?}");
    c.open_channel(1);
    c.send(
        1,
        QueueDeclare {
            queue: "bad".into(),
            arguments: table(&[("x-consumer-timeout", text("soon"))]),
            ..Default::default()
        },
    );
    let close = c.expect_channel_close(1);
    assert!(close.reply_text.contains("invalid arg 'x-consumer-timeout'"), "{close:?}");
}

// ---------------------------------------------------------------------------------------------
// Consumer timeout
// ---------------------------------------------------------------------------------------------

const TIMEOUT_TEXT: &str = "This timeout value can be configured, see consumers doc guide to learn more";

#[test]
fn consumer_timeout_closes_the_channel_and_requeues() {
    let b = broker();
    b.set_consumer_timeout(5);
    let mut c = client(&b);
    c.queue(1, "q");
    c.open_channel(2);
    c.publish(1, "", "q", &no_props(), b"x");
    c.consume(2, "q", "c");
    assert_eq!(bodies(&c.recv_items()), vec!["x"]);
    // Not yet: nothing happens.
    assert_eq!(b.check_consumer_timeouts(), 0);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(b.check_consumer_timeouts(), 1);
    assert_eq!(b.check_consumer_timeouts(), 0, "marked once");
    c.pump();
    let close = c.expect_channel_close(2);
    assert_eq!(close.reply_code, 406);
    assert_eq!(
        &*close.reply_text,
        format!(
            "PRECONDITION_FAILED - delivery acknowledgement on channel 2 timed out. \
             Timeout value used: 5 ms. {TIMEOUT_TEXT}"
        )
    );
    assert_eq!(c.counts(1, "q"), (1, 0), "requeued, the consumer gone");
    // Channel 1 (no deliveries) is untouched.
    let (ok, _) = c.get(1, "q", true).unwrap();
    assert!(ok.redelivered);
}

#[test]
fn queue_consumer_timeout_overrides_the_broker_setting_and_zero_disables() {
    let b = broker();
    b.set_consumer_timeout(0);
    let mut c = client(&b);
    c.queue(1, "plain");
    c.declare_queue(
        1,
        QueueDeclare {
            queue: "short".into(),
            arguments: table(&[("x-consumer-timeout", FieldValue::I32(1))]),
            ..Default::default()
        },
    );
    c.open_channel(2);
    c.publish(1, "", "plain", &no_props(), b"p");
    c.publish(1, "", "short", &no_props(), b"s");
    c.consume(1, "plain", "c1");
    c.recv();
    std::thread::sleep(std::time::Duration::from_millis(10));
    assert_eq!(b.check_consumer_timeouts(), 0, "the broker's timeout is off");

    // basic.get deliveries count too, as in RabbitMQ, from the first check that sees them.
    c.get(2, "short", false).unwrap();
    assert_eq!(b.check_consumer_timeouts(), 0, "just delivered");
    std::thread::sleep(std::time::Duration::from_millis(10));
    assert_eq!(b.check_consumer_timeouts(), 1);
    c.pump();
    let close = c.expect_channel_close(2);
    assert!(close.reply_text.contains("channel 2 timed out. Timeout value used: 1 ms."), "{close:?}");
    assert_eq!(c.counts(1, "short").0, 1);
}

#[test]
fn acknowledged_deliveries_do_not_time_out() {
    let b = broker();
    b.set_consumer_timeout(1);
    let mut c = client(&b);
    c.queue(1, "q");
    c.publish(1, "", "q", &no_props(), b"x");
    c.consume(1, "q", "c");
    c.recv();
    c.ack(1, 1, false);
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(b.check_consumer_timeouts(), 0);
    c.pump();
    c.expect_nothing();
}

#[test]
fn broker_default_consumer_timeout_is_thirty_minutes() {
    assert_eq!(broker().consumer_timeout(), 1_800_000);
}

// ---------------------------------------------------------------------------------------------
// Dead-letter cycles
// ---------------------------------------------------------------------------------------------

/// Declares `name` dead-lettering through the default exchange to `to`, with an optional TTL.
fn dead_lettering_queue(c: &mut TestClient, name: &str, to: &str, ttl: Option<i32>) {
    let mut args = table(&[("x-dead-letter-exchange", text("")), ("x-dead-letter-routing-key", text(to))]);
    if let Some(ttl) = ttl {
        args.insert("x-message-ttl", FieldValue::I32(ttl));
    }
    c.declare_queue(1, QueueDeclare { queue: name.into(), arguments: args, ..Default::default() });
}

#[test]
fn an_automatic_dead_letter_cycle_drops_the_message() {
    let b = broker();
    let mut c = client(&b);
    dead_lettering_queue(&mut c, "a", "b", Some(1));
    dead_lettering_queue(&mut c, "b", "a", Some(1));
    c.publish(1, "", "a", &no_props(), b"x");
    std::thread::sleep(std::time::Duration::from_millis(5));
    b.expire_all();
    assert_eq!((c.counts(1, "a").0, c.counts(1, "b").0), (0, 1), "a -> b");
    std::thread::sleep(std::time::Duration::from_millis(5));
    b.expire_all();
    assert_eq!((c.counts(1, "a").0, c.counts(1, "b").0), (0, 0), "b -> a would cycle: dropped");
}

#[test]
fn a_dead_letter_cycle_with_a_rejection_goes_on() {
    let b = broker();
    let mut c = client(&b);
    dead_lettering_queue(&mut c, "work", "retry", None);
    dead_lettering_queue(&mut c, "retry", "work", Some(1));
    c.publish(1, "", "work", &no_props(), b"x");
    for round in 1..=2 {
        let (ok, _) = c.get(1, "work", false).expect("the message is back in work");
        c.send(1, BasicReject { delivery_tag: ok.delivery_tag, requeue: false });
        assert_eq!(c.counts(1, "retry").0, 1);
        std::thread::sleep(std::time::Duration::from_millis(5));
        b.expire_all();
        assert_eq!(c.counts(1, "work").0, 1, "round {round}: the rejection makes the cycle a client's");
    }
    let (_, item) = c.get(1, "work", true).unwrap();
    let Some(FieldValue::Array(deaths)) = item.props().headers.as_ref().unwrap().get("x-death") else {
        panic!("no x-death");
    };
    assert_eq!(deaths.len(), 2);
}

/// An in-memory store whose syncs happen only when a test says so: confirms that wait for the
/// store can be told from those that do not.
#[derive(Default)]
struct GatedStore {
    issued: std::sync::atomic::AtomicU64,
    synced: std::sync::atomic::AtomicU64,
}

impl GatedStore {
    /// Makes everything flushed so far durable.
    fn sync_all(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.synced.store(self.issued.load(SeqCst), SeqCst);
    }
}

impl warren_store::Store for GatedStore {
    fn open_queue(
        &self,
        vhost: &str,
        queue: &str,
        durable: bool,
    ) -> std::io::Result<Box<dyn warren_store::QueueLog>> {
        warren_store::Store::open_queue(&warren_store::MemoryStore, vhost, queue, durable)
    }

    fn sync_ticket(&self) -> u64 {
        self.issued.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
    }

    fn synced(&self) -> u64 {
        self.synced.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn on_synced(&self, _ticket: u64, _waker: warren_store::SyncWaker) {}
}

#[test]
fn a_durable_delayed_exchange_confirms_only_once_synced() {
    let store = Arc::new(GatedStore::default());
    let b = Arc::new(Broker::with_store(store.clone()));
    let mut c = client(&b);
    for (name, durable) in [("later", true), ("later-transient", false)] {
        let declare = ExchangeDeclare {
            exchange: name.into(),
            kind: "x-delayed-message".into(),
            durable,
            arguments: table(&[("x-delayed-type", text("direct"))]),
            ..Default::default()
        };
        c.rpc(1, declare, "exchange.declare-ok");
    }
    c.rpc(1, ConfirmSelect { nowait: false }, "confirm.select-ok");
    let delayed = BasicProperties {
        headers: Some(table(&[("x-delay", FieldValue::I32(60_000))])),
        ..Default::default()
    };

    // Held in memory by a transient exchange: nothing to wait for.
    c.publish(1, "later-transient", "k", &delayed, b"m1");
    let ack = c.expect_one(1, "basic.ack");
    assert_eq!(ack.method, Method::BasicAck(BasicAck { delivery_tag: 1, multiple: false }));

    // Written to a durable exchange's log: the confirm waits for the sync.
    c.publish(1, "later", "k", &delayed, b"m2");
    c.expect_nothing();
    store.sync_all();
    c.session.on_synced(&mut c.conn);
    let ack = c.expect_one(1, "basic.ack");
    assert_eq!(ack.method, Method::BasicAck(BasicAck { delivery_tag: 2, multiple: false }));
}

#[test]
fn a_deep_priority_queue_pages_out_and_keeps_its_order() {
    let tmp = tempfile::tempdir().unwrap();
    let config = warren_store::DiskConfig {
        segment_size: 64 * 1024,
        memory_window_bytes: 1 << 20,
        memory_window_messages: 16,
        sync: warren_store::SyncMode::Never,
    };
    let store = Arc::new(warren_store::DiskStore::open(tmp.path(), config).unwrap());
    let b = Arc::new(Broker::with_store(store));
    let mut c = client(&b);
    c.queue_with(1, "jobs", &[("x-max-priority", FieldValue::U8(5))]);
    for i in 0..300u32 {
        let props = BasicProperties { priority: Some((i % 6) as u8), ..Default::default() };
        c.push_publish(1, "", "jobs", &props, format!("{}-{i:03}", i % 6).as_bytes());
    }
    c.pump();
    assert_eq!(c.counts(1, "jobs").0, 300);

    // Far more than a window of 16 per level: the rest went to page files.
    let mut pages = Vec::new();
    let mut dirs = vec![tmp.path().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "seg") {
                pages.push(path);
            }
        }
    }
    assert!(pages.len() >= 6, "every level paged out: {pages:?}");

    let mut got = Vec::new();
    while let Some((_, item)) = c.get(1, "jobs", true) {
        got.push(String::from_utf8(item.body().to_vec()).unwrap());
    }
    let mut expected: Vec<String> = (0..300u32).map(|i| format!("{}-{i:03}", i % 6)).collect();
    // Highest priority first, publish order within a priority.
    expected.sort_by(|a, b| b[..1].cmp(&a[..1]).then(a.cmp(b)));
    assert_eq!(got, expected);
}
