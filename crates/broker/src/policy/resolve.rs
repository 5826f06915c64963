//! How a queue's or exchange's own arguments combine with the policies that apply, as RabbitMQ
//! 3.10's classic queues resolve each key (`rabbit_amqqueue_process:process_args_policy`):
//!
//! | key | argument and policy |
//! | --- | --- |
//! | `expires`, `message-ttl`, `max-length`, `max-length-bytes` | the lower |
//! | `delivery-limit`, `consumer-timeout` | the lower (quorum queues' rule; 3.12's) |
//! | `overflow`, `dead-letter-exchange`, `dead-letter-routing-key` | the argument |
//! | `alternate-exchange` (exchanges) | the argument |
//!
//! The policy side is already the policy and operator policy merged
//! ([`AppliedPolicies::settings`](super::AppliedPolicies)).

use warren_message::{FieldTable, FieldValue};

use super::select::lower;
use super::Settings;
use crate::queue::Overflow;

/// The settings a queue's (already checked) declare arguments give.
pub(crate) fn queue_settings(arguments: &FieldTable) -> Settings {
    let number =
        |key: &str| arguments.get(key).and_then(FieldValue::as_i64).and_then(|n| u64::try_from(n).ok());
    let text = |key: &str| arguments.get(key).and_then(FieldValue::as_str).map(str::to_owned);
    Settings {
        message_ttl: number("x-message-ttl"),
        expires: number("x-expires").filter(|&ms| ms > 0),
        max_length: number("x-max-length"),
        max_length_bytes: number("x-max-length-bytes"),
        delivery_limit: number("x-delivery-limit"),
        consumer_timeout: number("x-consumer-timeout"),
        overflow: arguments.get("x-overflow").and_then(FieldValue::as_str).and_then(Overflow::parse),
        dead_letter_exchange: text("x-dead-letter-exchange"),
        dead_letter_routing_key: text("x-dead-letter-routing-key"),
        alternate_exchange: None,
    }
}

/// A queue's settings from its arguments and its policies' merged settings.
pub(crate) fn resolve_queue(arguments: &Settings, policy: &Settings) -> Settings {
    let argument_first = |a: &Option<String>, p: &Option<String>| a.clone().or_else(|| p.clone());
    Settings {
        message_ttl: lower(arguments.message_ttl, policy.message_ttl),
        expires: lower(arguments.expires, policy.expires),
        max_length: lower(arguments.max_length, policy.max_length),
        max_length_bytes: lower(arguments.max_length_bytes, policy.max_length_bytes),
        delivery_limit: lower(arguments.delivery_limit, policy.delivery_limit),
        consumer_timeout: lower(arguments.consumer_timeout, policy.consumer_timeout),
        overflow: arguments.overflow.or(policy.overflow),
        dead_letter_exchange: argument_first(&arguments.dead_letter_exchange, &policy.dead_letter_exchange),
        dead_letter_routing_key: argument_first(
            &arguments.dead_letter_routing_key,
            &policy.dead_letter_routing_key,
        ),
        alternate_exchange: None,
    }
}

/// An exchange's alternate exchange: its `alternate-exchange` argument, else its policy's.
pub(crate) fn alternate_exchange(arguments: &FieldTable, policy: &Settings) -> Option<String> {
    match arguments.get("alternate-exchange").and_then(FieldValue::as_str) {
        Some(name) => Some(name.to_owned()),
        None => policy.alternate_exchange.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{AppliedPolicies, ApplyTo, Entity, Policy, PolicyKind, PolicySet};
    use proptest::prelude::*;
    use serde_json::json;

    fn applied(policy: Option<serde_json::Value>, operator: Option<serde_json::Value>) -> AppliedPolicies {
        let mut set = PolicySet::default();
        for (kind, def) in [(PolicyKind::Policy, policy), (PolicyKind::Operator, operator)] {
            if let Some(def) = def {
                set.insert(Policy::new(kind, "p", ".*", ApplyTo::All, 0, &def).unwrap());
            }
        }
        set.select(Entity::Queue, "q")
    }

    fn args(pairs: &[(&str, FieldValue)]) -> FieldTable {
        let mut t = FieldTable::new();
        for (k, v) in pairs {
            t.insert(*k, v.clone());
        }
        t
    }

    #[test]
    fn the_argument_wins_for_names_and_overflow() {
        let text = |s: &str| FieldValue::LongStr(s.as_bytes().to_vec().into());
        let arguments =
            args(&[("x-dead-letter-exchange", text("arg-dlx")), ("x-overflow", text("reject-publish"))]);
        let policy = applied(
            Some(
                json!({"dead-letter-exchange": "pol-dlx", "dead-letter-routing-key": "pol-key", "overflow": "drop-head"}),
            ),
            None,
        );
        let s = resolve_queue(&queue_settings(&arguments), &policy.settings());
        assert_eq!(s.dead_letter_exchange.as_deref(), Some("arg-dlx"));
        assert_eq!(s.dead_letter_routing_key.as_deref(), Some("pol-key"), "each key on its own");
        assert_eq!(s.overflow, Some(Overflow::RejectPublish));
        let ae = applied(Some(json!({"alternate-exchange": "pol-ae"})), None).settings();
        assert_eq!(alternate_exchange(&FieldTable::new(), &ae).as_deref(), Some("pol-ae"));
        assert_eq!(
            alternate_exchange(&args(&[("alternate-exchange", text("arg-ae"))]), &ae).as_deref(),
            Some("arg-ae")
        );
    }

    const NUMERIC: [(&str, &str); 6] = [
        ("x-message-ttl", "message-ttl"),
        ("x-expires", "expires"),
        ("x-max-length", "max-length"),
        ("x-max-length-bytes", "max-length-bytes"),
        ("x-delivery-limit", "delivery-limit"),
        ("x-consumer-timeout", "consumer-timeout"),
    ];

    fn numeric(s: &Settings) -> [Option<u64>; 6] {
        [s.message_ttl, s.expires, s.max_length, s.max_length_bytes, s.delivery_limit, s.consumer_timeout]
    }

    proptest! {
        /// Every numeric limit ends up the lowest of the argument, the policy and the operator
        /// policy that set it (operator policies cannot hold `consumer-timeout`).
        #[test]
        fn numeric_limits_are_the_lowest_given(
            values in proptest::collection::vec(
                (proptest::option::of(1u64..1_000_000), proptest::option::of(1u64..1_000_000), proptest::option::of(1u64..1_000_000)),
                6,
            )
        ) {
            let mut arguments = FieldTable::new();
            let (mut policy, mut operator) = (serde_json::Map::new(), serde_json::Map::new());
            for (i, (arg, pol, op)) in values.iter().enumerate() {
                let (arg_key, key) = NUMERIC[i];
                if let Some(v) = arg { arguments.insert(arg_key, FieldValue::I64(*v as i64)); }
                if let Some(v) = pol { policy.insert(key.to_owned(), json!(v)); }
                if key != "consumer-timeout" {
                    if let Some(v) = op { operator.insert(key.to_owned(), json!(v)); }
                }
            }
            let nonempty = |m: serde_json::Map<String, serde_json::Value>| (!m.is_empty()).then_some(serde_json::Value::Object(m));
            let applied = applied(nonempty(policy), nonempty(operator));
            let resolved = resolve_queue(&queue_settings(&arguments), &applied.settings());
            for (i, (arg, pol, op)) in values.iter().enumerate() {
                let op = if NUMERIC[i].1 == "consumer-timeout" { None } else { *op };
                let expected = [*arg, *pol, op].into_iter().flatten().min();
                prop_assert_eq!(numeric(&resolved)[i], expected, "{}", NUMERIC[i].1);
            }
        }
    }
}
