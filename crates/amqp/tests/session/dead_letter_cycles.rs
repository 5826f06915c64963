//! Dead-letter cycles.

use crate::harness::*;

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
    advance(5);
    tick(&b);
    assert_eq!((c.counts(1, "a").0, c.counts(1, "b").0), (0, 1), "a -> b");
    advance(5);
    tick(&b);
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
        advance(5);
        tick(&b);
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
    let b = TestBroker::with_store(store.clone());
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
    let b = TestBroker::with_store(store);
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
