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
