//! Policies and operator policies, as RabbitMQ has them: a name, a pattern matched against queue
//! and exchange names, what they apply to, a priority and a definition of settings
//! ([`definition`]). The highest-priority matching policy of each kind applies ([`select`]);
//! the settings an entity ends up with combine its arguments, its policy and its operator policy
//! by RabbitMQ's rules ([`resolve`]). A vhost keeps its policies and applies them live
//! (`vhost::policies`).

mod definition;
mod error;
mod resolve;
mod select;
mod term;

pub use definition::Definition;
pub use error::PolicyError;
pub use select::AppliedPolicies;
pub use term::erlang_term;

pub(crate) use definition::Settings;
pub(crate) use resolve::{alternate_exchange, queue_settings, resolve_queue};
pub(crate) use select::PolicySet;

/// A policy, or an operator policy (which may only lower numeric limits, and wins over the
/// policy where it does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Set with `rabbitmqctl set_policy`.
    Policy,
    /// Set with `rabbitmqctl set_operator_policy`.
    Operator,
}

/// What a policy applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApplyTo {
    /// Queues and exchanges (the default).
    All,
    /// Queues of every type.
    Queues,
    /// Classic queues: every Warren queue.
    ClassicQueues,
    /// Quorum queues: none in Warren (its `x-queue-type: quorum` queues are classic ones).
    QuorumQueues,
    /// Streams: none in Warren.
    Streams,
    /// Exchanges.
    Exchanges,
}

impl ApplyTo {
    /// The value named as `--apply-to` names it; the error is RabbitMQ 3.12's.
    pub fn parse(s: &str) -> Result<ApplyTo, PolicyError> {
        Ok(match s {
            "all" => ApplyTo::All,
            "queues" => ApplyTo::Queues,
            "classic_queues" => ApplyTo::ClassicQueues,
            "quorum_queues" => ApplyTo::QuorumQueues,
            "streams" => ApplyTo::Streams,
            "exchanges" => ApplyTo::Exchanges,
            other => {
                return Err(PolicyError::Invalid(format!(
                    "apply-to '{other}' unrecognised; should be one of: 'queues', 'classic_queues',  \
                     'quorum_queues', 'streams', 'exchanges', or 'all'"
                )))
            }
        })
    }

    /// The name `--apply-to` takes and listings show.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyTo::All => "all",
            ApplyTo::Queues => "queues",
            ApplyTo::ClassicQueues => "classic_queues",
            ApplyTo::QuorumQueues => "quorum_queues",
            ApplyTo::Streams => "streams",
            ApplyTo::Exchanges => "exchanges",
        }
    }

    fn covers(self, entity: Entity) -> bool {
        matches!(
            (self, entity),
            (ApplyTo::All, _)
                | (ApplyTo::Queues | ApplyTo::ClassicQueues, Entity::Queue)
                | (ApplyTo::Exchanges, Entity::Exchange)
        )
    }
}

/// What a policy is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entity {
    Queue,
    Exchange,
}

/// A checked policy of a vhost.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Unique among the vhost's policies of its kind.
    pub name: String,
    /// A policy or an operator policy.
    pub kind: PolicyKind,
    /// The regular expression, as given.
    pub pattern: String,
    /// What it applies to.
    pub apply_to: ApplyTo,
    /// Among matching policies of its kind, the highest priority applies.
    pub priority: i64,
    /// Its settings.
    pub definition: Definition,
    regex: regex::Regex,
}

impl Policy {
    /// Checks a policy as RabbitMQ does: the pattern first, then the definition (a JSON object).
    pub fn new(
        kind: PolicyKind,
        name: &str,
        pattern: &str,
        apply_to: ApplyTo,
        priority: i64,
        definition: &serde_json::Value,
    ) -> Result<Policy, PolicyError> {
        let regex = regex::Regex::new(pattern).map_err(|e| {
            let reason = match e {
                regex::Error::Syntax(text) => text.lines().last().unwrap_or_default().trim().to_owned(),
                other => other.to_string(),
            };
            PolicyError::Invalid(format!("pattern should be regular expression but is invalid: {reason}"))
        })?;
        Ok(Policy {
            name: name.to_owned(),
            kind,
            pattern: pattern.to_owned(),
            apply_to,
            priority,
            definition: Definition::parse(definition, kind)?,
            regex,
        })
    }

    /// Whether the policy applies to the queue or exchange `name`: as RabbitMQ's `re:run`, the
    /// pattern may match anywhere in the name.
    pub(crate) fn matches(&self, entity: Entity, name: &str) -> bool {
        self.apply_to.covers(entity) && self.regex.is_match(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(pattern: &str, apply_to: ApplyTo) -> Policy {
        Policy::new(PolicyKind::Policy, "p", pattern, apply_to, 0, &json!({"max-length": 1})).unwrap()
    }

    #[test]
    fn patterns_match_anywhere_unless_anchored() {
        let p = policy("ord", ApplyTo::All);
        assert!(p.matches(Entity::Queue, "orders") && p.matches(Entity::Queue, "new-orders"));
        let anchored = policy("^ord", ApplyTo::All);
        assert!(
            anchored.matches(Entity::Exchange, "orders") && !anchored.matches(Entity::Queue, "new-orders")
        );
    }

    #[test]
    fn apply_to_picks_the_kinds_of_entity() {
        for (apply_to, queue, exchange) in [
            (ApplyTo::All, true, true),
            (ApplyTo::Queues, true, false),
            (ApplyTo::ClassicQueues, true, false),
            (ApplyTo::QuorumQueues, false, false),
            (ApplyTo::Streams, false, false),
            (ApplyTo::Exchanges, false, true),
        ] {
            let p = policy(".*", apply_to);
            assert_eq!((p.matches(Entity::Queue, "q"), p.matches(Entity::Exchange, "x")), (queue, exchange));
            assert_eq!(ApplyTo::parse(apply_to.as_str()), Ok(apply_to));
        }
        let e = ApplyTo::parse("bogus").unwrap_err().to_string();
        assert!(
            e.starts_with("Validation failed\n\napply-to 'bogus' unrecognised; should be one of:"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_pattern_is_refused_before_the_definition_is_read() {
        let e = Policy::new(PolicyKind::Policy, "p", "(", ApplyTo::All, 0, &json!({"bogus": 1})).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("Validation failed\n\npattern should be regular expression but is invalid: "),
            "{text}"
        );
    }
}
