//! Policies and operator policies in definitions: checked with the broker's own policy rules
//! (RabbitMQ's validation texts), applied through the admin path, and exported (operator
//! policies as `operator_policy` parameters, as RabbitMQ writes them).

use serde_json::{Map, Value};

use super::format::{ParameterEntry, PolicyEntry};
use crate::admin::AdminCommand;
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::policy::{ApplyTo, Policy, PolicyKind};
use crate::time::Now;

fn kind(operator: bool) -> PolicyKind {
    if operator {
        PolicyKind::Operator
    } else {
        PolicyKind::Policy
    }
}

/// The broker's policy for an entry, or why it is refused (RabbitMQ's words).
fn to_policy(entry: &PolicyEntry, operator: bool) -> Result<Policy, String> {
    if entry.name.is_empty() {
        return Err("a policy needs a name".to_owned());
    }
    if entry.definition.is_empty() {
        return Err("a policy's definition needs at least one key".to_owned());
    }
    let apply_to = ApplyTo::parse(&entry.apply_to).map_err(|e| one_line(&e.to_string()))?;
    let definition = Value::Object(entry.definition.clone());
    Policy::new(kind(operator), &entry.name, &entry.pattern, apply_to, entry.priority, &definition)
        .map_err(|e| one_line(&e.to_string()))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Checks a policy as the broker will when it is applied.
pub(crate) fn check(policy: &PolicyEntry, operator: bool) -> Result<(), String> {
    to_policy(policy, operator).map(|_| ())
}

impl Broker {
    /// Applies an imported policy (`operator`: an operator policy).
    pub(crate) fn apply_imported_policy(
        &self,
        operator: bool,
        entry: &PolicyEntry,
        now: Now,
    ) -> Result<(), BrokerError> {
        let policy = to_policy(entry, operator)
            .map_err(|reason| BrokerError::Policy(crate::policy::PolicyError::Invalid(reason)))?;
        self.admin(AdminCommand::SetPolicy { vhost: entry.vhost.clone(), policy }, now)
    }
}

fn entry(vhost: &str, policy: &Policy) -> PolicyEntry {
    PolicyEntry {
        vhost: vhost.to_owned(),
        name: policy.name.clone(),
        pattern: policy.pattern.clone(),
        apply_to: policy.apply_to.as_str().to_owned(),
        definition: policy.definition.json().clone(),
        priority: policy.priority,
    }
}

/// The broker's policies, and its operator policies as `operator_policy` parameters, for an
/// export, sorted by vhost and name.
pub(crate) fn exported(broker: &Broker) -> (Vec<PolicyEntry>, Vec<ParameterEntry>) {
    let mut vhosts = broker.vhosts();
    vhosts.sort_by(|a, b| a.name.cmp(&b.name));
    let mut policies = Vec::new();
    let mut operator = Vec::new();
    for vhost in vhosts {
        let mut mine: Vec<_> =
            vhost.policies(PolicyKind::Policy).iter().map(|p| entry(&vhost.name, p)).collect();
        mine.sort_by(|a, b| a.name.cmp(&b.name));
        policies.extend(mine);
        let mut ops: Vec<_> =
            vhost.policies(PolicyKind::Operator).iter().map(|p| entry(&vhost.name, p)).collect();
        ops.sort_by(|a, b| a.name.cmp(&b.name));
        for p in ops {
            let mut value = Map::new();
            value.insert("pattern".into(), p.pattern.into());
            value.insert("definition".into(), Value::Object(p.definition));
            value.insert("priority".into(), p.priority.into());
            value.insert("apply-to".into(), p.apply_to.into());
            operator.push(ParameterEntry {
                vhost: p.vhost,
                component: "operator_policy".into(),
                name: p.name,
                value: Value::Object(value),
            });
        }
    }
    (policies, operator)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(pattern: &str, apply_to: &str, definition: serde_json::Value) -> PolicyEntry {
        PolicyEntry {
            vhost: "/".into(),
            name: "p".into(),
            pattern: pattern.into(),
            apply_to: apply_to.into(),
            definition: definition.as_object().cloned().unwrap_or_default(),
            priority: 0,
        }
    }

    #[test]
    fn policies_are_checked_as_rabbitmq_checks_them() {
        let ttl = serde_json::json!({"message-ttl": 1000});
        assert_eq!(check(&policy("^q\\.", "queues", ttl.clone()), false), Ok(()));
        let bad_pattern = check(&policy("(", "queues", ttl.clone()), false).unwrap_err();
        assert!(bad_pattern.contains("pattern should be regular expression"), "{bad_pattern}");
        assert!(check(&policy(".*", "topics", ttl), false)
            .unwrap_err()
            .contains("apply-to 'topics' unrecognised"));
        assert!(check(&policy(".*", "all", serde_json::json!({})), false)
            .unwrap_err()
            .contains("at least one key"));
        let bad_ttl = check(&policy(".*", "all", serde_json::json!({"message-ttl": -1})), false).unwrap_err();
        assert!(bad_ttl.contains("-1 is not a valid message TTL"), "{bad_ttl}");
    }
}
