//! Tests: a message admitted by a deduplication window that keeps its keys on disk and its key
//! survive a crash together or not at all (the publish is applied as a store transaction),
//! whoever writes the message out first: a crash between the two writes would otherwise leave
//! the message without its key (the publisher's retry would be taken as new) or, written the
//! other way round, the key without its message (the retry would be dropped).

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
    let config = warren_store::DiskConfig { sync: warren_store::SyncMode::Never, ..Default::default() };
    let store = Arc::new(warren_store::DiskStore::open(&dir.join("data"), config).unwrap());
    let definitions =
        Arc::new(warren_store::definitions::Definitions::open(&dir.join("definitions.redb")).unwrap());
    Broker::open(store, definitions, Some(&FirstStart::default()), now).unwrap()
}

/// Publishes a persistent message with deduplication key `key` to queue `q`, leaving what the
/// publishing connection would flush (and seal) at the end of its batch undone.
fn publish_unflushed(vhost: &VHost, key: &str, now: Now) -> Effects {
    let mut headers = FieldTable::new();
    headers.insert("x-deduplication-header", FieldValue::LongStr(Bytes::copy_from_slice(key.as_bytes())));
    let mut properties = BytesMut::new();
    BasicProperties { delivery_mode: Some(2), headers: Some(headers), ..Default::default() }
        .encode(&mut properties);
    let message = Message {
        exchange: "".into(),
        routing_key: "q".into(),
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

#[test]
fn a_message_written_out_by_another_connection_and_its_key_count_together() {
    let dir = tempfile::tempdir().unwrap();
    let (live, crashed) = (dir.path().join("live"), dir.path().join("crashed"));
    let now = Now::new(Instant::now(), 1_767_225_600_000);
    let broker = open_broker(&live, now);
    let vhost = broker.vhost("/").unwrap();
    let mut arguments = FieldTable::new();
    arguments.insert("x-message-deduplication", FieldValue::Bool(true));
    let spec = QueueSpec { name: "q".into(), durable: true, arguments, ..Default::default() };
    vhost.apply(Command::DeclareQueue(spec), Actor::BROKER, now.instant, &mut Effects::default()).unwrap();

    // A publish whose transaction is dropped unsealed (its connection went) leaves nothing
    // after a crash either.
    let mut abandoned = publish_unflushed(&vhost, "event-1", now);
    assert_eq!(abandoned.take_transactions().count(), 1, "applied as a transaction");
    let unflushed = publish_unflushed(&vhost, "event-2", now);
    // Another connection (a consumer acking here, say) flushes the queue before the publishing
    // one reaches the end of its batch; then the broker is killed.
    vhost.queue("q").unwrap().flush().unwrap();
    snapshot(&live, &crashed);
    drop((abandoned, unflushed, vhost, broker));

    let broker = open_broker(&crashed, now);
    let vhost = broker.vhost("/").unwrap();
    let q = vhost.queue("q").unwrap();
    assert_eq!(q.message_count(now.instant), 0, "written out, but never committed: not there");
    publish_unflushed(&vhost, "event-2", now).apply(now.instant);
    assert_eq!(q.message_count(now.instant), 1, "the retry was taken: the key was not there either");
    publish_unflushed(&vhost, "event-2", now).apply(now.instant);
    assert_eq!(q.message_count(now.instant), 1, "the next one is a duplicate");
    drop((q, vhost, broker));

    // After a restart the committed message and its key are both there.
    let broker = open_broker(&crashed, now);
    let vhost = broker.vhost("/").unwrap();
    assert_eq!(vhost.queue("q").unwrap().message_count(now.instant), 1);
    publish_unflushed(&vhost, "event-2", now).apply(now.instant);
    assert_eq!(vhost.queue("q").unwrap().message_count(now.instant), 1, "still a duplicate");
}
