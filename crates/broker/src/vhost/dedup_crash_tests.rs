//! Tests: a message admitted by a deduplication window that keeps its keys on disk and its key
//! survive a crash together or not at all, whoever writes the message out first: a crash
//! between two writes would otherwise leave the message without its key (the publisher's retry
//! would be taken as new) or the key without its message (the retry would be dropped). A
//! message that goes to one durable queue carries its key in its record; one that goes to
//! several is published as a store transaction with its key.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use warren_message::{BasicProperties, FieldTable, FieldValue};

use super::{Actor, Command, QueueSpec, VHost};
use crate::broker::{Broker, FirstStart};
use crate::effects::Effects;
use crate::time::Now;
use crate::Message;

fn open_broker(dir: &std::path::Path, now: Now) -> Broker {
    // Small segments, so that a few hundred messages fill several.
    let config = warren_store::DiskConfig {
        sync: warren_store::SyncMode::Never,
        segment_size: 4096,
        ..Default::default()
    };
    let store = Arc::new(warren_store::DiskStore::open(&dir.join("data"), config).unwrap());
    let definitions =
        Arc::new(warren_store::definitions::Definitions::open(&dir.join("definitions.redb")).unwrap());
    Broker::open(store, definitions, Some(&FirstStart::default()), now).unwrap()
}

/// Publishes a persistent message with deduplication key `key` to queue `q`, leaving what the
/// publishing connection would flush (and seal) at the end of its batch undone.
fn publish_unflushed(vhost: &VHost, key: &str, now: Now) -> Effects {
    publish_with_key(vhost, "", "q", key, now)
}

/// As [`publish_unflushed`], to exchange `exchange`.
fn publish_to(vhost: &VHost, exchange: &str, key: &str, now: Now) -> Effects {
    publish_with_key(vhost, exchange, "", key, now)
}

fn publish_with_key(vhost: &VHost, exchange: &str, routing_key: &str, key: &str, now: Now) -> Effects {
    let mut headers = FieldTable::new();
    headers.insert("x-deduplication-header", FieldValue::LongStr(Bytes::copy_from_slice(key.as_bytes())));
    let mut properties = BytesMut::new();
    BasicProperties { delivery_mode: Some(2), headers: Some(headers), ..Default::default() }
        .encode(&mut properties);
    let message = Message {
        exchange: exchange.into(),
        routing_key: routing_key.into(),
        properties: properties.freeze(),
        body: Bytes::from_static(b"event"),
    };
    let mut effects = Effects::default();
    vhost.publish(message, &[], now, &mut effects, &mut Vec::new()).unwrap();
    effects
}

/// Copies what the files hold now (what a kill -9 leaves) to `to`.
fn snapshot(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            snapshot(&entry.path(), &target);
        } else if entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn declare(vhost: &VHost, command: Command, now: Now) {
    vhost.apply(command, Actor::BROKER, now.instant, &mut Effects::default()).unwrap();
}

fn dedup_arguments() -> FieldTable {
    let mut arguments = FieldTable::new();
    arguments.insert("x-message-deduplication", FieldValue::Bool(true));
    arguments
}

#[test]
fn a_message_written_out_by_another_connection_carries_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let (before_flush, after_flush) = (dir.path().join("before"), dir.path().join("after"));
    let now = Now::new(Instant::now(), 1_767_225_600_000);
    let broker = open_broker(&live, now);
    let vhost = broker.vhost("/").unwrap();
    let spec =
        QueueSpec { name: "q".into(), durable: true, arguments: dedup_arguments(), ..Default::default() };
    declare(&vhost, Command::DeclareQueue(spec), now);

    let mut first = publish_unflushed(&vhost, "event-1", now);
    assert_eq!(first.take_transactions().count(), 0, "one queue: the key travels with the message");
    let second = publish_unflushed(&vhost, "event-2", now);
    snapshot(&live, &before_flush);
    // Another connection (a consumer acking here, say) flushes the queue before the publishing
    // one reaches the end of its batch; then the broker is killed.
    vhost.queue("q").unwrap().flush().unwrap();
    snapshot(&live, &after_flush);
    drop((first, second, vhost, broker));

    // Killed before anything was written: neither message nor key; the retries are taken.
    let broker = open_broker(&before_flush, now);
    let vhost = broker.vhost("/").unwrap();
    let q = vhost.queue("q").unwrap();
    assert_eq!(q.message_count(now.instant), 0);
    publish_unflushed(&vhost, "event-2", now).apply(now.instant);
    assert_eq!(q.message_count(now.instant), 1, "the retry was taken: the key was not there either");
    drop((q, vhost, broker));

    // Killed after the queue's flush: both messages, and both keys (the window's own log never
    // had them): the retries are dropped, now and after another restart.
    for _ in 0..2 {
        let broker = open_broker(&after_flush, now);
        let vhost = broker.vhost("/").unwrap();
        let q = vhost.queue("q").unwrap();
        assert_eq!(q.message_count(now.instant), 2);
        for key in ["event-1", "event-2"] {
            publish_unflushed(&vhost, key, now).apply(now.instant);
        }
        assert_eq!(q.message_count(now.instant), 2, "the retries are duplicates");
    }
}

#[test]
fn keys_outlive_the_segments_that_carried_them() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let now = Now::new(Instant::now(), 1_767_225_600_000);
    {
        let broker = open_broker(&live, now);
        let vhost = broker.vhost("/").unwrap();
        let spec =
            QueueSpec { name: "q".into(), durable: true, arguments: dedup_arguments(), ..Default::default() };
        declare(&vhost, Command::DeclareQueue(spec), now);
        for i in 0..300 {
            publish_unflushed(&vhost, &format!("event-{i}"), now).apply(now.instant);
        }
        // Taken and acknowledged: the queue is empty; its settled segments go once the window's
        // log has their keys (a lazy round).
        let q = vhost.queue("q").unwrap();
        assert_eq!(q.purge(), 300);
        q.flush().unwrap();
    }
    let segments = std::fs::read_dir(live.join("data/queues/2f/71"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .count();
    assert_eq!(segments, 1, "only the segment being appended to is left");
    let broker = open_broker(&live, now);
    let vhost = broker.vhost("/").unwrap();
    let q = vhost.queue("q").unwrap();
    assert_eq!(q.message_count(now.instant), 0);
    for i in 0..300 {
        publish_unflushed(&vhost, &format!("event-{i}"), now).apply(now.instant);
    }
    assert_eq!(q.message_count(now.instant), 0, "still duplicates after their messages were consumed");
}

#[test]
fn a_message_for_several_queues_and_its_key_are_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let (live, crashed) = (dir.path().join("live"), dir.path().join("crashed"));
    let now = Now::new(Instant::now(), 1_767_225_600_000);
    let broker = open_broker(&live, now);
    let vhost = broker.vhost("/").unwrap();
    let exchange = super::ExchangeSpec {
        name: "x".into(),
        kind: "x-message-deduplication".into(),
        durable: true,
        ..Default::default()
    };
    declare(&vhost, Command::DeclareExchange(exchange), now);
    for name in ["a", "b"] {
        declare(
            &vhost,
            Command::DeclareQueue(QueueSpec { name: name.into(), durable: true, ..Default::default() }),
            now,
        );
        let bind = super::BindingSpec {
            source: "x".into(),
            destination: name.into(),
            destination_kind: super::DestinationKind::Queue,
            key: "".into(),
            arguments: FieldTable::new(),
        };
        declare(&vhost, Command::Bind(bind), now);
    }
    let mut abandoned = publish_to(&vhost, "x", "event-1", now);
    assert_eq!(abandoned.take_transactions().count(), 1, "applied as a transaction");
    for name in ["a", "b"] {
        vhost.queue(name).unwrap().flush().unwrap();
    }
    vhost.exchange("x").unwrap().dedup().unwrap().flush().unwrap();
    snapshot(&live, &crashed);
    drop((abandoned, vhost, broker));

    let broker = open_broker(&crashed, now);
    let vhost = broker.vhost("/").unwrap();
    for name in ["a", "b"] {
        assert_eq!(vhost.queue(name).unwrap().message_count(now.instant), 0, "written, never committed");
    }
    publish_to(&vhost, "x", "event-1", now).apply(now.instant);
    for name in ["a", "b"] {
        assert_eq!(vhost.queue(name).unwrap().message_count(now.instant), 1, "the retry was taken");
    }
}
