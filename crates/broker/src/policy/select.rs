//! A vhost's policies of both kinds, and which of them apply to a queue or exchange: of each
//! kind, the matching policy with the highest priority.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Entity, Policy, PolicyKind, Settings};

/// The policy and the operator policy that apply to one queue or exchange.
#[derive(Debug, Clone, Default)]
pub struct AppliedPolicies {
    policy: Option<Arc<Policy>>,
    operator: Option<Arc<Policy>>,
}

impl AppliedPolicies {
    /// The policy that applies (RabbitMQ's `policy` field of a queue or exchange).
    pub fn policy(&self) -> Option<&Arc<Policy>> {
        self.policy.as_ref()
    }

    /// The operator policy that applies (RabbitMQ's `operator_policy`).
    pub fn operator_policy(&self) -> Option<&Arc<Policy>> {
        self.operator.as_ref()
    }

    /// Both definitions merged as RabbitMQ's `effective_policy_definition` shows them: every
    /// key of either, and where both have a number, the lower.
    pub fn effective_definition(&self) -> Map<String, Value> {
        let mut merged = self.policy.as_ref().map(|p| p.definition.json().clone()).unwrap_or_default();
        for (key, op) in self.operator.iter().flat_map(|p| p.definition.json()) {
            let lower = match (merged.get(key).and_then(Value::as_u64), op.as_u64()) {
                (Some(ours), Some(theirs)) if ours < theirs => continue,
                _ => op.clone(),
            };
            merged.insert(key.clone(), lower);
        }
        merged
    }

    /// The settings both give, merged as RabbitMQ's `rabbit_policy:get/2` reads each key: the
    /// lower of two numeric limits; other keys only a policy can hold.
    pub(crate) fn settings(&self) -> Settings {
        let none = Settings::default();
        let p = self.policy.as_ref().map_or(&none, |p| &p.definition.settings);
        let op = self.operator.as_ref().map_or(&none, |p| &p.definition.settings);
        Settings {
            message_ttl: lower(p.message_ttl, op.message_ttl),
            expires: lower(p.expires, op.expires),
            max_length: lower(p.max_length, op.max_length),
            max_length_bytes: lower(p.max_length_bytes, op.max_length_bytes),
            delivery_limit: lower(p.delivery_limit, op.delivery_limit),
            consumer_timeout: lower(p.consumer_timeout, op.consumer_timeout),
            overflow: p.overflow.or(op.overflow),
            dead_letter_exchange: p.dead_letter_exchange.clone(),
            dead_letter_routing_key: p.dead_letter_routing_key.clone(),
            alternate_exchange: p.alternate_exchange.clone(),
        }
    }

    /// Whether these are the very policies `other` holds (a policy set anew is another one,
    /// even with the same name).
    pub(crate) fn same_as(&self, other: &AppliedPolicies) -> bool {
        let same = |a: &Option<Arc<Policy>>, b: &Option<Arc<Policy>>| match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        same(&self.policy, &other.policy) && same(&self.operator, &other.operator)
    }
}

/// The lower of two optional limits; either alone if the other is absent.
pub(crate) fn lower(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A vhost's policies and operator policies, by name.
#[derive(Debug, Default)]
pub(crate) struct PolicySet {
    policies: BTreeMap<String, Arc<Policy>>,
    operator: BTreeMap<String, Arc<Policy>>,
}

impl PolicySet {
    fn of(&self, kind: PolicyKind) -> &BTreeMap<String, Arc<Policy>> {
        match kind {
            PolicyKind::Policy => &self.policies,
            PolicyKind::Operator => &self.operator,
        }
    }

    fn of_mut(&mut self, kind: PolicyKind) -> &mut BTreeMap<String, Arc<Policy>> {
        match kind {
            PolicyKind::Policy => &mut self.policies,
            PolicyKind::Operator => &mut self.operator,
        }
    }

    /// Adds a policy, replacing the one of its kind and name.
    pub(crate) fn insert(&mut self, policy: Policy) {
        self.of_mut(policy.kind).insert(policy.name.clone(), Arc::new(policy));
    }

    /// Removes a policy; whether it was there.
    pub(crate) fn remove(&mut self, kind: PolicyKind, name: &str) -> bool {
        self.of_mut(kind).remove(name).is_some()
    }

    /// The policies of `kind` in the order RabbitMQ lists them: highest priority first (then by
    /// name).
    pub(crate) fn list(&self, kind: PolicyKind) -> Vec<Arc<Policy>> {
        let mut all: Vec<Arc<Policy>> = self.of(kind).values().cloned().collect();
        all.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| a.name.cmp(&b.name)));
        all
    }

    /// The policies that apply to the queue or exchange `name`.
    pub(crate) fn select(&self, entity: Entity, name: &str) -> AppliedPolicies {
        AppliedPolicies {
            policy: best(self.of(PolicyKind::Policy), entity, name),
            operator: best(self.of(PolicyKind::Operator), entity, name),
        }
    }
}

/// The matching policy of the highest priority. RabbitMQ leaves the choice among equal
/// priorities to its table's order; here the name that sorts first wins, every time.
fn best(policies: &BTreeMap<String, Arc<Policy>>, entity: Entity, name: &str) -> Option<Arc<Policy>> {
    let mut best: Option<&Arc<Policy>> = None;
    for p in policies.values().filter(|p| p.matches(entity, name)) {
        if best.is_none_or(|b| p.priority > b.priority) {
            best = Some(p);
        }
    }
    best.cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ApplyTo;
    use serde_json::json;

    fn add(set: &mut PolicySet, kind: PolicyKind, name: &str, pattern: &str, priority: i64, def: Value) {
        set.insert(Policy::new(kind, name, pattern, ApplyTo::All, priority, &def).unwrap());
    }

    fn names(applied: &AppliedPolicies) -> (Option<&str>, Option<&str>) {
        (applied.policy().map(|p| p.name.as_str()), applied.operator_policy().map(|p| p.name.as_str()))
    }

    #[test]
    fn the_highest_priority_wins_and_ties_go_to_the_first_name() {
        let mut set = PolicySet::default();
        add(&mut set, PolicyKind::Policy, "low", "^q", 1, json!({"max-length": 1}));
        add(&mut set, PolicyKind::Policy, "z-high", "^q", 5, json!({"max-length": 2}));
        add(&mut set, PolicyKind::Policy, "m-high", "^q", 5, json!({"max-length": 3}));
        add(&mut set, PolicyKind::Policy, "other", "^x", 9, json!({"max-length": 4}));
        assert_eq!(names(&set.select(Entity::Queue, "q1")), (Some("m-high"), None));
        assert_eq!(names(&set.select(Entity::Queue, "none")), (None, None));
        let listed: Vec<_> = set.list(PolicyKind::Policy).iter().map(|p| p.name.clone()).collect();
        assert_eq!(listed, ["other", "m-high", "z-high", "low"]);
        assert!(set.remove(PolicyKind::Policy, "m-high") && !set.remove(PolicyKind::Policy, "m-high"));
        assert_eq!(names(&set.select(Entity::Queue, "q1")), (Some("z-high"), None));
    }

    #[test]
    fn operator_policies_merge_with_the_lower_number_winning() {
        let mut set = PolicySet::default();
        add(
            &mut set,
            PolicyKind::Policy,
            "p",
            ".*",
            0,
            json!({"max-length": 10, "message-ttl": 5, "dead-letter-exchange": "dlx"}),
        );
        add(
            &mut set,
            PolicyKind::Operator,
            "op",
            ".*",
            0,
            json!({"max-length": 7, "message-ttl": 50, "expires": 9}),
        );
        let applied = set.select(Entity::Queue, "q");
        assert_eq!(names(&applied), (Some("p"), Some("op")));
        let s = applied.settings();
        assert_eq!((s.max_length, s.message_ttl, s.expires), (Some(7), Some(5), Some(9)));
        assert_eq!(s.dead_letter_exchange.as_deref(), Some("dlx"));
        assert_eq!(
            Value::Object(applied.effective_definition()),
            json!({"dead-letter-exchange": "dlx", "expires": 9, "max-length": 7, "message-ttl": 5})
        );
        assert!(applied.same_as(&set.select(Entity::Exchange, "x")));
        add(&mut set, PolicyKind::Operator, "op", ".*", 0, json!({"max-length": 7}));
        assert!(!applied.same_as(&set.select(Entity::Queue, "q")), "a policy set anew is another");
    }
}
