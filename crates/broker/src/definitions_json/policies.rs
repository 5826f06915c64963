//! Policies and operator policies in definitions: checked, applied and exported here, and only
//! here, so that wiring them to the broker's policies touches this one file.
//!
//! POLICIES PLUG IN HERE: until the broker has policies, imported ones are checked and counted
//! but not applied ([`not_applied`] says so in the import's summary and log), and exports have
//! none. To wire them: make [`not_applied`] return None, apply in
//! [`Broker::apply_imported_policy`] (e.g. `VHost::set_policy`), and list them in [`exported`].

use regex::Regex;

use super::format::{ParameterEntry, PolicyEntry};
use crate::broker::Broker;
use crate::error::BrokerError;

/// The `apply-to` values RabbitMQ 3.10 accepts.
const APPLY_TO: [&str; 6] = ["all", "queues", "classic_queues", "quorum_queues", "streams", "exchanges"];

/// Checks a policy as RabbitMQ does before setting one: a name, a pattern that compiles, a known
/// `apply-to`, a definition with keys.
pub(crate) fn check(policy: &PolicyEntry) -> Result<(), String> {
    if policy.name.is_empty() {
        return Err("a policy needs a name".to_owned());
    }
    if let Err(e) = Regex::new(&policy.pattern) {
        let e = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        return Err(format!("pattern '{}' is not a valid regular expression: {e}", policy.pattern));
    }
    if !APPLY_TO.contains(&policy.apply_to.as_str()) {
        return Err(format!("apply-to is one of {}, not '{}'", APPLY_TO.join(", "), policy.apply_to));
    }
    if policy.definition.is_empty() {
        return Err("a policy's definition needs at least one key".to_owned());
    }
    Ok(())
}

/// Why an imported policy does not take effect, if it does not.
pub(crate) fn not_applied(operator: bool) -> Option<&'static str> {
    Some(if operator {
        "operator policies are not applied yet by Warren; read and checked only"
    } else {
        "policies are not applied yet by Warren; read and checked only"
    })
}

impl Broker {
    /// Applies an imported policy (`operator`: an operator policy).
    pub(crate) fn apply_imported_policy(
        &self,
        operator: bool,
        policy: &PolicyEntry,
    ) -> Result<(), BrokerError> {
        tracing::debug!(operator, vhost = %policy.vhost, name = %policy.name, "policy from definitions not applied (no policies yet)");
        Ok(())
    }
}

/// The broker's policies, and its operator policies as `operator_policy` parameters, for an
/// export.
pub(crate) fn exported(_broker: &Broker) -> (Vec<PolicyEntry>, Vec<ParameterEntry>) {
    (Vec::new(), Vec::new())
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
        assert_eq!(check(&policy("^q\\.", "queues", ttl.clone())), Ok(()));
        assert!(check(&policy("(", "queues", ttl.clone()))
            .unwrap_err()
            .contains("not a valid regular expression"));
        assert!(check(&policy(".*", "topics", ttl)).unwrap_err().contains("not 'topics'"));
        assert!(check(&policy(".*", "all", serde_json::json!({}))).unwrap_err().contains("at least one key"));
    }
}
