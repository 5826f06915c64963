//! Tests: a message TTL from a policy or operator policy reaches the messages already waiting
//! (issue #11): they expire at the latest that TTL after the change, dead-lettered as `expired`,
//! and a raised or cleared TTL extends no expiry. On simulated time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};
use warren_message::{BasicProperties, FieldTable, FieldValue};
use warren_store::Store;

use super::{Actor, BindingSpec, Command, DestinationKind, ExchangeSpec, Outcome, QueueSpec, VHost};
use crate::effects::Effects;
use crate::policy::{ApplyTo, Policy, PolicyKind};
use crate::queue::Queue;
use crate::time::Now;
use crate::Message;

struct Setup {
    vhost: Arc<VHost>,
    start: Instant,
    now: Now,
}

impl Setup {
    fn new() -> Setup {
        Setup::over(Arc::new(VHost::new("/", Arc::new(warren_store::MemoryStore), None)))
    }

    fn over(vhost: Arc<VHost>) -> Setup {
        let start = Instant::now();
        Setup { vhost, start, now: Now::new(start, 1_767_225_600_000) }
    }

    /// A vhost whose queues page out to disk past two messages in memory.
    fn paging(dir: &std::path::Path) -> Setup {
        let config = warren_store::DiskConfig {
            memory_window_messages: 2,
            sync: warren_store::SyncMode::Never,
            ..Default::default()
        };
        let store: Arc<dyn Store> = Arc::new(warren_store::DiskStore::open(dir, config).unwrap());
        Setup::over(Arc::new(VHost::new("/", store, None)))
    }

    /// Milliseconds since the setup started.
    fn elapsed_ms(&self) -> u64 {
        (self.now.instant - self.start).as_millis() as u64
    }

    fn apply(&self, command: Command) -> Outcome {
        self.vhost.apply(command, Actor::BROKER, self.now.instant, &mut Effects::default()).unwrap()
    }

    fn queue(&self, name: &str, arguments: &[(&str, FieldValue)]) -> Arc<Queue> {
        let mut args = FieldTable::new();
        for (k, v) in arguments {
            args.insert(*k, v.clone());
        }
        let spec = QueueSpec { name: name.into(), arguments: args, ..Default::default() };
        let Outcome::Queue(q) = self.apply(Command::DeclareQueue(spec)) else { unreachable!() };
        q
    }

    /// A fanout exchange `dlx` whose queue `dead` collects dead letters.
    fn dead_letter_queue(&self) {
        let spec = ExchangeSpec { name: "dlx".into(), kind: "fanout".into(), ..Default::default() };
        self.apply(Command::DeclareExchange(spec));
        self.queue("dead", &[]);
        self.apply(Command::Bind(BindingSpec {
            source: "dlx".into(),
            destination: "dead".into(),
            destination_kind: DestinationKind::Queue,
            key: "".into(),
            arguments: FieldTable::new(),
        }));
    }

    fn publish_with(&self, queue: &str, body: &str, props: BasicProperties) {
        let mut properties = BytesMut::new();
        props.encode(&mut properties);
        let message = Message {
            exchange: "".into(),
            routing_key: queue.into(),
            properties: properties.freeze(),
            body: Bytes::copy_from_slice(body.as_bytes()),
        };
        let mut effects = Effects::default();
        self.vhost.publish(message, &[], self.now, &mut effects, &mut Vec::new()).unwrap();
        effects.apply(self.now.instant);
    }

    fn publish(&self, queue: &str, body: &str) {
        self.publish_with(queue, body, BasicProperties::default());
    }

    fn set(&self, kind: PolicyKind, name: &str, definition: Value) {
        let policy = Policy::new(kind, name, "^q$", ApplyTo::All, 0, &definition).unwrap();
        self.vhost.set_policy(policy, self.now).unwrap();
    }

    fn policy(&self, name: &str, definition: Value) {
        self.set(PolicyKind::Policy, name, definition);
    }

    fn ready(&self, name: &str) -> u64 {
        self.vhost.queue(name).unwrap().stats().ready
    }

    /// The ready messages of `name`, taken out: body and `x-first-death-reason` if any.
    fn drain(&self, name: &str) -> Vec<(String, Option<String>)> {
        let q = self.vhost.queue(name).unwrap();
        std::iter::from_fn(|| q.get(true, self.now.instant))
            .map(|(m, _)| {
                let body = String::from_utf8(m.message.body.to_vec()).unwrap();
                let headers = BasicProperties::decode(&m.message.properties).unwrap().headers;
                let reason = headers.and_then(|h| {
                    h.get("x-first-death-reason").and_then(FieldValue::as_str).map(str::to_owned)
                });
                (body, reason)
            })
            .collect()
    }

    fn bodies(&self, name: &str) -> Vec<String> {
        self.drain(name).into_iter().map(|(body, _)| body).collect()
    }

    /// Moves time on to `ms` after the start, ticking the vhost there.
    fn tick_to(&mut self, ms: u64) {
        let by = Duration::from_millis(ms - self.elapsed_ms());
        self.now = self.now.later(by);
        let mut effects = Effects::default();
        self.vhost.tick(self.now, &mut effects);
        effects.apply(self.now.instant);
    }
}

fn expiring_in(ms: u64) -> BasicProperties {
    BasicProperties { expiration: Some(ms.to_string().as_str().into()), ..Default::default() }
}

fn expired(bodies: &[&str]) -> Vec<(String, Option<String>)> {
    bodies.iter().map(|b| (b.to_string(), Some("expired".to_owned()))).collect()
}

#[test]
fn a_new_ttl_expires_waiting_messages_ttl_after_the_change_and_dead_letters_them() {
    let mut s = Setup::new();
    s.dead_letter_queue();
    s.queue("q", &[]);
    s.publish("q", "a");
    s.publish("q", "b");
    s.tick_to(1000);
    assert_eq!(s.ready("q"), 2, "no TTL yet");
    s.policy("ttl", json!({"message-ttl": 100, "dead-letter-exchange": "dlx"}));
    s.tick_to(1050);
    s.publish("q", "c");
    s.tick_to(1099);
    assert_eq!(s.ready("q"), 3, "not before the TTL has passed since the change");
    s.tick_to(1100);
    assert_eq!(s.ready("q"), 1);
    assert_eq!(s.drain("dead"), expired(&["a", "b"]), "dead-lettered as expired");
    s.tick_to(1149);
    assert_eq!(s.ready("q"), 1, "published after the change: its TTL counts from its enqueue");
    s.tick_to(1150);
    assert_eq!(s.drain("dead"), expired(&["c"]));
    assert_eq!(s.ready("q"), 0);
}

#[test]
fn a_ttl_of_zero_expires_the_waiting_messages_at_the_change() {
    let s = Setup::new();
    s.dead_letter_queue();
    s.queue("q", &[("x-dead-letter-exchange", FieldValue::LongStr(Bytes::from_static(b"dlx")))]);
    s.publish("q", "a");
    s.policy("ttl", json!({"message-ttl": 0}));
    assert_eq!(s.ready("q"), 0);
    assert_eq!(s.drain("dead"), expired(&["a"]));
}

#[test]
fn an_earlier_expiry_of_a_waiting_message_still_wins() {
    let mut s = Setup::new();
    s.queue("q", &[]);
    s.publish_with("q", "soon", expiring_in(50));
    s.publish_with("q", "late", expiring_in(5000));
    s.publish("q", "never");
    s.tick_to(10);
    s.policy("ttl", json!({"message-ttl": 100}));
    s.tick_to(50);
    assert_eq!(s.ready("q"), 2, "its own expiration came first");
    s.tick_to(109);
    assert_eq!(s.ready("q"), 2);
    s.tick_to(110);
    assert_eq!(s.ready("q"), 0, "the later expiration and none at all: the policy's deadline");
}

#[test]
fn a_lowered_ttl_shortens_and_a_raised_or_cleared_one_extends_nothing() {
    let mut s = Setup::new();
    s.queue("q", &[]);
    s.policy("ttl", json!({"message-ttl": 1000}));
    s.publish("q", "a"); // expires at 1000
    s.tick_to(100);
    s.policy("ttl", json!({"message-ttl": 200})); // a: 300
    s.publish("q", "b"); // 300
    s.tick_to(150);
    s.policy("ttl", json!({"message-ttl": 5000})); // raised: a and b keep 300
    s.publish("q", "c"); // 5150
    s.tick_to(200);
    s.vhost.clear_policy(PolicyKind::Policy, "ttl", s.now).unwrap(); // c keeps 5150
    s.publish("q", "d"); // never
    s.tick_to(299);
    assert_eq!(s.ready("q"), 4);
    s.tick_to(300);
    assert_eq!(s.ready("q"), 2, "the lowered TTL, counted from its change");
    s.tick_to(5149);
    assert_eq!(s.ready("q"), 2);
    s.tick_to(5150);
    assert_eq!(s.bodies("q"), ["d"], "raised and cleared TTLs extend no expiry");
}

#[test]
fn several_changes_in_a_row_keep_the_earliest_deadline_for_each_message() {
    let mut s = Setup::new();
    s.queue("q", &[]);
    s.publish("q", "a");
    s.policy("ttl", json!({"message-ttl": 1000})); // a: 1000
    s.publish("q", "b"); // 1000
    s.tick_to(100);
    s.vhost.clear_policy(PolicyKind::Policy, "ttl", s.now).unwrap();
    s.publish("q", "c"); // never
    s.tick_to(200);
    s.policy("ttl", json!({"message-ttl": 2000})); // a, b: 1000; c: 2200
    s.publish("q", "d"); // 2200
    s.tick_to(999);
    assert_eq!(s.ready("q"), 4);
    s.tick_to(1000);
    assert_eq!(s.ready("q"), 2);
    s.tick_to(2199);
    assert_eq!(s.ready("q"), 2);
    s.tick_to(2200);
    assert_eq!(s.ready("q"), 0);
}

#[test]
fn an_operator_policy_ttl_reaches_waiting_messages_whatever_the_argument_and_policy() {
    let mut s = Setup::new();
    s.queue("q", &[("x-message-ttl", FieldValue::I32(60_000))]);
    s.policy("ttl", json!({"message-ttl": 30_000}));
    s.publish("q", "a");
    s.publish("q", "b");
    s.tick_to(1000);
    s.set(PolicyKind::Operator, "cap", json!({"message-ttl": 100}));
    s.tick_to(1099);
    assert_eq!(s.ready("q"), 2);
    s.tick_to(1100);
    assert_eq!(s.ready("q"), 0, "the operator policy's TTL from its change");
}

#[test]
fn a_delivered_message_returned_after_the_deadline_expires() {
    let mut s = Setup::new();
    let q = s.queue("q", &[]);
    s.publish("q", "a");
    let (m, _) = q.get(false, s.now.instant).unwrap();
    s.policy("ttl", json!({"message-ttl": 100}));
    s.tick_to(200);
    q.settle([(None, m)], 0, crate::queue::Settle::Requeue, None);
    s.tick_to(250);
    assert_eq!(s.ready("q"), 0, "it was in the queue when the TTL took effect");
}

#[test]
fn a_priority_queue_expires_every_level_at_the_deadline() {
    let mut s = Setup::new();
    s.dead_letter_queue();
    s.queue("q", &[("x-max-priority", FieldValue::U8(5))]);
    for (priority, body) in [(0, "p0"), (5, "p5"), (3, "p3"), (0, "p0b")] {
        s.publish_with("q", body, BasicProperties { priority: Some(priority), ..Default::default() });
    }
    s.tick_to(10);
    s.policy("ttl", json!({"message-ttl": 100, "dead-letter-exchange": "dlx"}));
    s.tick_to(50);
    s.publish_with("q", "new", BasicProperties { priority: Some(1), ..Default::default() });
    s.tick_to(109);
    assert_eq!(s.ready("q"), 5);
    s.tick_to(110);
    assert_eq!(s.drain("dead"), expired(&["p5", "p3"]), "down to the newer message at the head");
    assert_eq!(s.ready("q"), 3);
    // Once the newer message is gone, the older ones behind it are at the head, and expired.
    assert_eq!(s.bodies("q"), ["new"]);
    s.tick_to(111);
    assert_eq!(s.drain("dead"), expired(&["p0", "p0b"]));
}

#[test]
fn a_priority_queue_with_only_older_messages_empties_at_the_deadline() {
    let mut s = Setup::new();
    s.dead_letter_queue();
    s.queue("q", &[("x-max-priority", FieldValue::U8(5))]);
    for (priority, body) in [(0, "p0"), (5, "p5"), (3, "p3"), (0, "p0b")] {
        s.publish_with("q", body, BasicProperties { priority: Some(priority), ..Default::default() });
    }
    s.policy("ttl", json!({"message-ttl": 100, "dead-letter-exchange": "dlx"}));
    s.tick_to(99);
    assert_eq!(s.ready("q"), 4);
    s.tick_to(100);
    assert_eq!(s.drain("dead"), expired(&["p5", "p3", "p0", "p0b"]));
}

#[test]
fn messages_paged_out_to_disk_expire_like_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Setup::paging(dir.path());
    s.dead_letter_queue();
    s.queue("q", &[]);
    let bodies: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    for body in &bodies {
        s.publish("q", body);
    }
    s.policy("ttl", json!({"message-ttl": 100, "dead-letter-exchange": "dlx"}));
    s.tick_to(99);
    assert_eq!(s.ready("q"), 20);
    s.tick_to(100);
    assert_eq!(s.ready("q"), 0);
    assert_eq!(s.bodies("dead"), bodies, "read back from disk in order, all dead-lettered");
}

/// A broker over a data directory in `dir`, opened at `now`.
fn open_broker(dir: &std::path::Path, now: Now) -> crate::broker::Broker {
    use crate::broker::{Broker, FirstStart};
    use warren_store::definitions::Definitions;
    let config = warren_store::DiskConfig { sync: warren_store::SyncMode::Never, ..Default::default() };
    let store = Arc::new(warren_store::DiskStore::open(&dir.join("data"), config).unwrap());
    let definitions = Arc::new(Definitions::open(&dir.join("definitions.redb")).unwrap());
    Broker::open(store, definitions, Some(&FirstStart::default()), now).unwrap()
}

/// Setup over the broker's vhost, its time starting at `now`.
fn setup_at(broker: &crate::broker::Broker, now: Now) -> Setup {
    let mut s = Setup::over(broker.vhost("/").unwrap());
    (s.start, s.now) = (now.instant, now);
    s
}

fn durable_queue(s: &Setup, name: &str) {
    let spec = QueueSpec { name: name.into(), durable: true, ..Default::default() };
    s.apply(Command::DeclareQueue(spec));
}

fn persistent(expiration: Option<&str>) -> BasicProperties {
    BasicProperties { delivery_mode: Some(2), expiration: expiration.map(Into::into), ..Default::default() }
}

#[test]
fn after_a_restart_a_policy_ttl_counts_from_the_start_for_recovered_messages() {
    let dir = tempfile::tempdir().unwrap();
    let start = Now::new(Instant::now(), 0);
    let broker = open_broker(dir.path(), start);
    let mut s = setup_at(&broker, start);
    durable_queue(&s, "q");
    for body in ["a", "b"] {
        s.publish_with("q", body, persistent(None));
    }
    s.tick_to(1000);
    s.policy("ttl", json!({"message-ttl": 500}));
    drop((s, broker));

    // Down for a while: the change's deadline (1500) passes meanwhile, the watermark is gone.
    let restart = start.later(Duration::from_secs(10));
    let broker = open_broker(dir.path(), restart);
    let mut s = setup_at(&broker, restart);
    assert_eq!(s.ready("q"), 2, "recovered");
    s.tick_to(499);
    assert_eq!(s.ready("q"), 2);
    s.tick_to(500);
    assert_eq!(s.ready("q"), 0, "the policy's TTL counted from the start");
}

#[test]
fn messages_whose_time_ran_out_while_the_broker_was_down_are_dead_lettered_at_the_first_tick() {
    let dir = tempfile::tempdir().unwrap();
    let start = Now::new(Instant::now(), 0);
    let broker = open_broker(dir.path(), start);
    let s = setup_at(&broker, start);
    durable_queue(&s, "q");
    durable_queue(&s, "dead");
    s.policy("dl", json!({"dead-letter-exchange": "", "dead-letter-routing-key": "dead"}));
    s.publish_with("q", "short", persistent(Some("1000")));
    s.publish_with("q", "long", persistent(Some("3600000")));
    drop((s, broker));

    let restart = start.later(Duration::from_secs(10));
    let broker = open_broker(dir.path(), restart);
    let mut s = setup_at(&broker, restart);
    s.tick_to(50);
    assert_eq!(s.drain("dead"), expired(&["short"]), "restored before its dead-letter exchange was");
    assert_eq!(s.bodies("q"), ["long"]);
}
