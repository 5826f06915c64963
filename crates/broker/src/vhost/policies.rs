//! A vhost's policies: set, cleared and listed here, stored in the definitions store, and
//! applied live: every change re-selects the policies of each queue and exchange, and those
//! whose policies changed take their new settings at once (see `Queue::apply_policies`).

use std::sync::Arc;

use warren_store::definitions::PolicyDef;

use super::VHost;
use crate::effects::Effects;
use crate::policy::{AppliedPolicies, ApplyTo, Entity, Policy, PolicyError, PolicyKind};
use crate::time::Now;

impl VHost {
    /// Sets a policy (or an operator policy: the policy's kind says), replacing the one of that
    /// kind and name, and applies it at once. Stored before it applies. As RabbitMQ, its vhost
    /// is the vhost it is set on.
    pub fn set_policy(&self, policy: Policy, now: Now) -> Result<(), PolicyError> {
        let _one_at_a_time = self.commands.lock();
        if let Some(d) = self.definitions.as_deref() {
            d.put_policy(&self.policy_def(&policy))?;
        }
        self.policies.write().insert(policy);
        self.reapply_policies(now);
        Ok(())
    }

    /// Clears a policy of `kind`; [`PolicyError::NotFound`] if there is none of that name.
    pub fn clear_policy(&self, kind: PolicyKind, name: &str, now: Now) -> Result<(), PolicyError> {
        let _one_at_a_time = self.commands.lock();
        if !self.policies.read().list(kind).iter().any(|p| p.name == name) {
            return Err(PolicyError::NotFound);
        }
        if let Some(d) = self.definitions.as_deref() {
            d.delete_policy(kind == PolicyKind::Operator, &self.name, name)?;
        }
        self.policies.write().remove(kind, name);
        self.reapply_policies(now);
        Ok(())
    }

    /// The policies of `kind`, as `rabbitmqctl list_policies` lists them: highest priority
    /// first.
    pub fn policies(&self, kind: PolicyKind) -> Vec<Arc<Policy>> {
        self.policies.read().list(kind)
    }

    /// The policies that would apply to a queue named `name` declared now.
    pub(super) fn queue_policies(&self, name: &str) -> AppliedPolicies {
        self.policies.read().select(Entity::Queue, name)
    }

    /// The policies that would apply to an exchange named `name` declared now.
    pub(super) fn exchange_policies(&self, name: &str) -> AppliedPolicies {
        self.policies.read().select(Entity::Exchange, name)
    }

    /// Takes back a stored policy at startup, before the queues and exchanges it may apply to
    /// are restored; one that no longer checks is left out with a warning.
    pub(crate) fn restore_policy(&self, def: &PolicyDef, now: Now) {
        let kind = if def.operator { PolicyKind::Operator } else { PolicyKind::Policy };
        let definition = serde_json::Value::Object(def.definition.clone());
        let policy = ApplyTo::parse(&def.apply_to).and_then(|apply_to| {
            Policy::new(kind, &def.name, &def.pattern, apply_to, def.priority, &definition)
        });
        match policy {
            Ok(policy) => {
                self.policies.write().insert(policy);
                // The amq.* exchanges exist from the start.
                self.reapply_policies(now);
            }
            Err(error) => {
                tracing::warn!(vhost = %self.name, policy = %def.name, %error, "skipping a stored policy");
            }
        }
    }

    /// Gives every queue and exchange whose policies changed its new ones; what queues drop on
    /// the way is dead-lettered by their new settings.
    fn reapply_policies(&self, now: Now) {
        let mut effects = Effects::default();
        for q in self.queues() {
            let applied = self.queue_policies(&q.name);
            if applied.same_as(&q.applied_policies()) {
                continue;
            }
            for (message, reason) in q.apply_policies(applied, now.instant) {
                self.dead_letter(&q, message, reason, now, &mut effects);
            }
            // Dropped messages leave ack records behind.
            effects.dirty(&q);
        }
        for e in self.exchanges() {
            let applied = self.exchange_policies(&e.name);
            if !applied.same_as(&e.applied_policies()) {
                e.apply_policies(applied);
            }
        }
        effects.apply(now.instant);
    }

    fn policy_def(&self, policy: &Policy) -> PolicyDef {
        PolicyDef {
            operator: policy.kind == PolicyKind::Operator,
            vhost: self.name.clone(),
            name: policy.name.clone(),
            pattern: policy.pattern.clone(),
            apply_to: policy.apply_to.as_str().to_owned(),
            priority: policy.priority,
            definition: policy.definition.json().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use serde_json::{json, Value};
    use warren_message::{FieldTable, FieldValue, ShortStr};

    use super::*;
    use crate::counters::Counter;
    use crate::queue::{Queue, Settle};
    use crate::vhost::{Actor, BindingSpec, Command, DestinationKind, ExchangeSpec, Outcome, QueueSpec};
    use crate::Message;

    struct Setup {
        vhost: VHost,
        now: Now,
    }

    impl Setup {
        fn new() -> Setup {
            Setup {
                vhost: VHost::new("/", Arc::new(warren_store::MemoryStore), None),
                now: Now::new(Instant::now(), 1_767_225_600_000),
            }
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

        fn exchange(&self, name: &str, kind: &str, arguments: FieldTable) {
            let spec = ExchangeSpec { name: name.into(), kind: kind.into(), arguments, ..Default::default() };
            self.apply(Command::DeclareExchange(spec));
        }

        fn bind(&self, exchange: &str, queue: &str, key: &str) {
            self.apply(Command::Bind(BindingSpec {
                source: exchange.into(),
                destination: queue.into(),
                destination_kind: DestinationKind::Queue,
                key: key.into(),
                arguments: FieldTable::new(),
            }));
        }

        fn publish(&self, exchange: &str, key: &str, body: &str) {
            let message = Message {
                exchange: exchange.into(),
                routing_key: key.into(),
                properties: Bytes::new(),
                body: Bytes::copy_from_slice(body.as_bytes()),
            };
            let mut effects = Effects::default();
            self.vhost.publish(message, &[], self.now, &mut effects, &mut Vec::new()).unwrap();
            effects.apply(self.now.instant);
        }

        fn set(&self, kind: PolicyKind, name: &str, pattern: &str, apply_to: ApplyTo, definition: Value) {
            let policy = Policy::new(kind, name, pattern, apply_to, 0, &definition).unwrap();
            self.vhost.set_policy(policy, self.now).unwrap();
        }

        fn policy(&self, name: &str, pattern: &str, definition: Value) {
            self.set(PolicyKind::Policy, name, pattern, ApplyTo::All, definition);
        }

        /// The bodies of the ready messages of `name`, taken out.
        fn drain(&self, name: &str) -> Vec<String> {
            let q = self.vhost.queue(name).unwrap();
            std::iter::from_fn(|| q.get(true, self.now.instant))
                .map(|(m, _)| String::from_utf8(m.message.body.to_vec()).unwrap())
                .collect()
        }

        fn tick(&mut self, by: Duration) {
            self.now = self.now.later(by);
            let mut effects = Effects::default();
            self.vhost.tick(self.now, &mut effects);
            effects.apply(self.now.instant);
        }
    }

    fn text(s: &str) -> FieldValue {
        FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn a_new_max_length_trims_a_queue_at_once_and_dead_letters_by_its_new_settings() {
        let s = Setup::new();
        s.exchange("dlx", "fanout", FieldTable::new());
        s.queue("dead", &[]);
        s.bind("dlx", "dead", "");
        s.queue("q", &[]);
        for i in 0..5 {
            s.publish("", "q", &i.to_string());
        }
        s.policy("limit", "^q$", json!({"max-length": 2, "dead-letter-exchange": "dlx"}));
        assert_eq!(s.vhost.queue("q").unwrap().stats().ready, 2);
        assert_eq!(s.drain("dead"), ["0", "1", "2"], "the oldest, to the policy's dead-letter exchange");
        assert_eq!(s.vhost.queue_totals().get(Counter::DeadLetteredMaxLength), 3);
        // Cleared: no limit any more.
        s.vhost.clear_policy(PolicyKind::Policy, "limit", s.now).unwrap();
        for i in 5..10 {
            s.publish("", "q", &i.to_string());
        }
        assert_eq!(s.drain("q"), ["3", "4", "5", "6", "7", "8", "9"]);
        assert_eq!(s.vhost.clear_policy(PolicyKind::Policy, "limit", s.now), Err(PolicyError::NotFound));
    }

    #[test]
    fn the_lower_of_argument_policy_and_operator_policy_limits_a_queue() {
        let s = Setup::new();
        let q = s.queue("q", &[("x-max-length", FieldValue::I32(3))]);
        s.policy("p", "^q", json!({"max-length": 10}));
        for i in 0..5 {
            s.publish("", "q", &i.to_string());
        }
        assert_eq!(q.stats().ready, 3, "the argument is lower");
        s.set(PolicyKind::Operator, "op", ".*", ApplyTo::Queues, json!({"max-length": 1}));
        assert_eq!(q.stats().ready, 1, "the operator policy is lower");
        let applied = q.applied_policies();
        assert_eq!(applied.policy().map(|p| p.name.as_str()), Some("p"));
        assert_eq!(applied.operator_policy().map(|p| p.name.as_str()), Some("op"));
        assert_eq!(Value::Object(applied.effective_definition()), json!({"max-length": 1}));
        let listed: Vec<String> =
            s.vhost.policies(PolicyKind::Operator).iter().map(|p| p.name.clone()).collect();
        assert_eq!(listed, ["op"]);
    }

    #[test]
    fn reject_publish_from_a_policy_refuses_what_does_not_fit() {
        let s = Setup::new();
        let q = s.queue("q", &[]);
        s.policy("p", "^q$", json!({"max-length": 1, "overflow": "reject-publish"}));
        s.publish("", "q", "a");
        s.publish("", "q", "b");
        assert_eq!(s.drain("q"), ["a"]);
        // The argument wins over the policy for overflow.
        let q2 = s.queue("q2", &[("x-overflow", text("drop-head"))]);
        s.policy("p2", "^q2$", json!({"max-length": 1, "overflow": "reject-publish"}));
        s.publish("", "q2", "a");
        s.publish("", "q2", "b");
        assert_eq!(s.drain("q2"), ["b"]);
        assert!(q.stats().ready == 0 && q2.stats().ready == 0);
    }

    #[test]
    fn a_new_message_ttl_applies_to_messages_waiting_and_published_from_then_on() {
        let mut s = Setup::new();
        s.queue("q", &[]);
        s.publish("", "q", "before");
        s.policy("ttl", "^q$", json!({"message-ttl": 100}));
        s.publish("", "q", "after");
        s.tick(Duration::from_millis(99));
        assert_eq!(s.vhost.queue("q").unwrap().stats().ready, 2);
        s.tick(Duration::from_millis(1));
        // Unlike RabbitMQ, the message already waiting expires too (issue #11; more in
        // `policy_ttl_tests`).
        assert_eq!(s.vhost.queue("q").unwrap().stats().ready, 0, "expired by the policy's TTL");
    }

    #[test]
    fn an_expires_policy_deletes_an_unused_queue_counting_from_when_it_was_set() {
        let mut s = Setup::new();
        s.queue("q", &[]);
        s.tick(Duration::from_secs(10));
        s.policy("exp", "^q$", json!({"expires": 1000}));
        s.tick(Duration::from_millis(999));
        assert!(s.vhost.queue("q").is_ok());
        s.tick(Duration::from_millis(1));
        assert!(s.vhost.queue("q").is_err(), "deleted 1 s after the policy was set");
    }

    #[test]
    fn a_dead_letter_exchange_policy_applies_to_later_rejects_and_the_argument_wins() {
        let s = Setup::new();
        for (dlx, dead) in [("pol-dlx", "pol-dead"), ("arg-dlx", "arg-dead")] {
            s.exchange(dlx, "fanout", FieldTable::new());
            s.queue(dead, &[]);
            s.bind(dlx, dead, "");
        }
        let plain = s.queue("plain", &[]);
        let with_arg = s.queue("with-arg", &[("x-dead-letter-exchange", text("arg-dlx"))]);
        s.policy("dl", ".*", json!({"dead-letter-exchange": "pol-dlx", "dead-letter-routing-key": "k"}));
        for q in [&plain, &with_arg] {
            s.publish("", &q.name, &q.name);
            let (m, _) = q.get(false, s.now.instant).unwrap();
            let dead = q.settle([(None, m)], 0, Settle::Discard, None);
            for (message, reason) in dead {
                s.vhost.dead_letter(q, message, reason, s.now, &mut Effects::default());
            }
        }
        assert_eq!(s.drain("pol-dead"), ["plain"]);
        assert_eq!(s.drain("arg-dead"), ["with-arg"]);
    }

    #[test]
    fn an_alternate_exchange_policy_takes_unroutable_messages_unless_the_argument_names_one() {
        let s = Setup::new();
        for (ae, q) in [("pol-ae", "from-policy"), ("arg-ae", "from-argument")] {
            s.exchange(ae, "fanout", FieldTable::new());
            s.queue(q, &[]);
            s.bind(ae, q, "");
        }
        s.exchange("x", "direct", FieldTable::new());
        let mut args = FieldTable::new();
        args.insert("alternate-exchange", text("arg-ae"));
        s.exchange("y", "direct", args);
        s.set(
            PolicyKind::Policy,
            "ae",
            "^[xy]$",
            ApplyTo::Exchanges,
            json!({"alternate-exchange": "pol-ae"}),
        );
        s.publish("x", "nowhere", "x");
        s.publish("y", "nowhere", "y");
        assert_eq!(s.drain("from-policy"), ["x"]);
        assert_eq!(s.drain("from-argument"), ["y"]);
        let x = s.vhost.exchange("x").unwrap();
        assert_eq!(x.applied_policies().policy().map(|p| p.name.as_str()), Some("ae"));
        // A queues-only policy does not reach exchanges; a new exchange gets its policy at declare.
        s.set(PolicyKind::Policy, "ae", "^[xyz]$", ApplyTo::Queues, json!({"alternate-exchange": "pol-ae"}));
        assert_eq!(x.alternate_exchange(), None);
        s.set(PolicyKind::Policy, "ae", "^[xyz]$", ApplyTo::All, json!({"alternate-exchange": "pol-ae"}));
        s.exchange("z", "direct", FieldTable::new());
        assert_eq!(s.vhost.exchange("z").unwrap().alternate_exchange(), Some(ShortStr::from("pol-ae")));
    }

    #[test]
    fn delivery_limit_and_consumer_timeout_follow_the_policy() {
        let s = Setup::new();
        let q = s.queue("q", &[("x-consumer-timeout", FieldValue::I32(5000))]);
        assert!(!q.counts_deliveries());
        s.policy("p", "^q$", json!({"delivery-limit": 1, "consumer-timeout": 60000}));
        assert!(q.counts_deliveries());
        assert_eq!(q.consumer_timeout(), Some(Duration::from_secs(5)), "the argument is lower");
        s.publish("", "q", "m");
        for _ in 0..2 {
            let (m, _) = q.get(false, s.now.instant).unwrap();
            q.settle([(None, m)], 0, Settle::Requeue, None);
        }
        assert_eq!(q.stats().ready, 0, "returned more often than the policy's limit: dropped");
        s.vhost.clear_policy(PolicyKind::Policy, "p", s.now).unwrap();
        assert!(!q.counts_deliveries());
        assert_eq!(q.applied_policies().policy().map(|p| p.name.clone()), None);
    }

    #[test]
    fn quorum_queue_and_stream_policies_match_no_warren_queue() {
        let s = Setup::new();
        let q = s.queue("q", &[("x-queue-type", text("quorum"))]);
        s.set(PolicyKind::Policy, "qq", ".*", ApplyTo::QuorumQueues, json!({"max-length": 1}));
        s.set(PolicyKind::Policy, "st", ".*", ApplyTo::Streams, json!({"max-length": 1}));
        assert!(q.applied_policies().policy().is_none());
        s.set(PolicyKind::Policy, "cq", ".*", ApplyTo::ClassicQueues, json!({"max-length": 1}));
        assert_eq!(q.applied_policies().policy().map(|p| p.name.as_str()), Some("cq"));
    }

    #[test]
    fn policies_survive_a_restart_and_apply_to_restored_queues_and_exchanges() {
        use crate::broker::{Broker, FirstStart};
        use warren_store::definitions::Definitions;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("definitions.redb");
        let now = Now::new(Instant::now(), 0);
        let open = || {
            let definitions = Arc::new(Definitions::open(&path).unwrap());
            Broker::open(Arc::new(warren_store::MemoryStore), definitions, Some(&FirstStart::default()), now)
                .unwrap()
        };
        let broker = open();
        let vhost = broker.vhost("/").unwrap();
        let spec = QueueSpec { name: "q".into(), durable: true, ..Default::default() };
        vhost
            .apply(Command::DeclareQueue(spec), Actor::BROKER, now.instant, &mut Effects::default())
            .unwrap();
        let policy = |kind, name: &str, pattern: &str, priority, def: Value| {
            Policy::new(kind, name, pattern, ApplyTo::All, priority, &def).unwrap()
        };
        vhost.set_policy(policy(PolicyKind::Policy, "len", "^q$", 3, json!({"max-length": 2})), now).unwrap();
        vhost
            .set_policy(policy(PolicyKind::Policy, "gone", "^q$", 1, json!({"max-length": 9})), now)
            .unwrap();
        vhost.clear_policy(PolicyKind::Policy, "gone", now).unwrap();
        vhost
            .set_policy(policy(PolicyKind::Operator, "op", ".*", 0, json!({"message-ttl": 60000})), now)
            .unwrap();
        let ae = policy(
            PolicyKind::Policy,
            "ae",
            "^amq\\.direct$",
            0,
            json!({"alternate-exchange": "amq.fanout"}),
        );
        vhost.set_policy(ae, now).unwrap();
        drop((vhost, broker));

        let broker = open();
        let vhost = broker.vhost("/").unwrap();
        let names = |kind| vhost.policies(kind).iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(PolicyKind::Policy), ["len", "ae"], "by priority");
        assert_eq!(names(PolicyKind::Operator), ["op"]);
        let len = &vhost.policies(PolicyKind::Policy)[0];
        assert_eq!((len.pattern.as_str(), len.apply_to, len.priority), ("^q$", ApplyTo::All, 3));
        assert_eq!(Value::Object(len.definition.json().clone()), json!({"max-length": 2}));
        let q = vhost.queue("q").unwrap();
        let applied = q.applied_policies();
        assert_eq!(applied.policy().map(|p| p.name.as_str()), Some("len"));
        assert_eq!(applied.operator_policy().map(|p| p.name.as_str()), Some("op"));
        assert_eq!(
            vhost.exchange("amq.direct").unwrap().alternate_exchange(),
            Some(ShortStr::from("amq.fanout"))
        );
        let mut effects = Effects::default();
        for _ in 0..3 {
            let message = Message {
                exchange: "".into(),
                routing_key: "q".into(),
                properties: Bytes::new(),
                body: Bytes::new(),
            };
            vhost.publish(message, &[], now, &mut effects, &mut Vec::new()).unwrap();
        }
        assert_eq!(q.stats().ready, 2, "the restored queue is limited by its stored policy");
    }
}
