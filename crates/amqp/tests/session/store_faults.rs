//! What clients hear when the store cannot write: confirms become nacks and tx.commit fails,
//! never an ack for what is not on disk; once writes work again, confirms are acks again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;

use warren_store::{AppendMark, MemoryLog, Message, QueueLog, QueuedMessage, Store, SyncWaker};

use crate::harness::*;

/// A store whose flushes and syncs fail on demand.
#[derive(Default)]
struct FaultyStore {
    flush_fails: Arc<AtomicBool>,
    sync_fails: AtomicBool,
    issued: AtomicU64,
    failed_tickets: parking_lot::Mutex<Vec<u64>>,
}

#[derive(Debug)]
struct FaultyLog {
    inner: MemoryLog,
    flush_fails: Arc<AtomicBool>,
}

impl QueueLog for FaultyLog {
    fn append(
        &mut self,
        m: Message,
        expires_at: Option<std::time::Instant>,
        persistent: bool,
    ) -> std::io::Result<u64> {
        self.inner.append(m, expires_at, persistent)
    }
    fn front(&mut self) -> Option<&QueuedMessage> {
        self.inner.front()
    }
    fn pop_front(&mut self) -> Option<QueuedMessage> {
        self.inner.pop_front()
    }
    fn push_front(&mut self, m: QueuedMessage) {
        self.inner.push_front(m)
    }
    fn requeue(&mut self, m: QueuedMessage) {
        self.inner.requeue(m)
    }
    fn settle(&mut self, offset: u64, stored: bool) {
        self.inner.settle(offset, stored)
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn append_mark(&self) -> AppendMark {
        self.inner.append_mark()
    }
    fn purge(&mut self) -> usize {
        self.inner.purge()
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.flush_fails.load(SeqCst) {
            return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
        }
        Ok(())
    }
    fn delete(&mut self) {
        self.inner.delete()
    }
}

impl Store for FaultyStore {
    fn open_queue(&self, _vhost: &str, _queue: &str, _durable: bool) -> std::io::Result<Box<dyn QueueLog>> {
        Ok(Box::new(FaultyLog { inner: MemoryLog::default(), flush_fails: self.flush_fails.clone() }))
    }
    fn sync_ticket(&self) -> u64 {
        let ticket = self.issued.fetch_add(1, SeqCst) + 1;
        if self.sync_fails.load(SeqCst) {
            self.failed_tickets.lock().push(ticket);
        }
        ticket
    }
    fn synced(&self) -> u64 {
        self.issued.load(SeqCst)
    }
    fn on_synced(&self, _ticket: u64, waker: SyncWaker) {
        waker();
    }
    fn ticket_failed(&self, ticket: u64) -> bool {
        self.failed_tickets.lock().contains(&ticket)
    }
}

fn persistent() -> BasicProperties {
    BasicProperties { delivery_mode: Some(2), ..Default::default() }
}

fn durable_queue(c: &mut TestClient, name: &str) {
    c.declare_queue(1, QueueDeclare { queue: name.into(), durable: true, ..Default::default() });
}

#[test]
fn a_publish_the_store_could_not_write_is_nacked() {
    let store = Arc::new(FaultyStore::default());
    let b = TestBroker::with_store(store.clone());
    let mut c = client(&b);
    durable_queue(&mut c, "q");
    c.rpc(1, ConfirmSelect { nowait: false }, "confirm.select-ok");

    c.publish(1, "", "q", &persistent(), b"kept");
    let ack = c.expect_one(1, "basic.ack");
    assert_eq!(ack.method, Method::BasicAck(BasicAck { delivery_tag: 1, multiple: false }));

    // A full disk: the write fails, the publisher hears nack, never ack.
    store.flush_fails.store(true, SeqCst);
    c.push_publish(1, "", "q", &persistent(), b"lost-1");
    c.push_publish(1, "", "q", &persistent(), b"lost-2");
    c.pump();
    let nack = c.expect_one(1, "basic.nack");
    assert_eq!(nack.method, Method::BasicNack(BasicNack { delivery_tag: 3, multiple: true, requeue: false }));

    // A transient publish in a batch of its own does not wait for the disk: it is acked.
    c.publish(1, "", "q", &no_props(), b"transient");
    let ack = c.expect_one(1, "basic.ack");
    assert_eq!(ack.method, Method::BasicAck(BasicAck { delivery_tag: 4, multiple: false }));

    // Space is back: acks again.
    store.flush_fails.store(false, SeqCst);
    c.publish(1, "", "q", &persistent(), b"kept-again");
    let ack = c.expect_one(1, "basic.ack");
    assert_eq!(ack.method, Method::BasicAck(BasicAck { delivery_tag: 5, multiple: false }));
}

#[test]
fn a_publish_whose_sync_failed_is_nacked() {
    let store = Arc::new(FaultyStore::default());
    let b = TestBroker::with_store(store.clone());
    let mut c = client(&b);
    durable_queue(&mut c, "q");
    c.rpc(1, ConfirmSelect { nowait: false }, "confirm.select-ok");
    store.sync_fails.store(true, SeqCst);
    c.publish(1, "", "q", &persistent(), b"m");
    let nack = c.expect_one(1, "basic.nack");
    assert_eq!(
        nack.method,
        Method::BasicNack(BasicNack { delivery_tag: 1, multiple: false, requeue: false })
    );
    store.sync_fails.store(false, SeqCst);
    c.publish(1, "", "q", &persistent(), b"m");
    c.expect_one(1, "basic.ack");
}

#[test]
fn a_commit_the_store_could_not_write_fails_the_channel() {
    let store = Arc::new(FaultyStore::default());
    let b = TestBroker::with_store(store.clone());
    let mut c = client(&b);
    durable_queue(&mut c, "q");
    c.open_channel(2);
    c.rpc(2, TxSelect, "tx.select-ok");
    c.publish(2, "", "q", &persistent(), b"m");
    store.flush_fails.store(true, SeqCst);
    c.send(2, TxCommit);
    let close = c.expect_channel_close(2);
    assert_eq!(close.reply_code, 541);
    assert!(close.reply_text.to_string().contains("could not write"), "{}", close.reply_text);
    store.flush_fails.store(false, SeqCst);

    // Same for a sync that fails.
    c.open_channel(3);
    c.rpc(3, TxSelect, "tx.select-ok");
    c.publish(3, "", "q", &persistent(), b"m");
    store.sync_fails.store(true, SeqCst);
    c.send(3, TxCommit);
    assert_eq!(c.expect_channel_close(3).reply_code, 541);
}
