//! A policy's definition: the JSON object as given, checked key by key as RabbitMQ checks it
//! (`rabbit_policies:validate_policy0`), and the settings Warren reads from it.

use serde_json::{Map, Value};

use super::error::PolicyError;
use super::term::{erlang_term, proplist};
use super::PolicyKind;
use crate::queue::Overflow;

/// The settings a policy (or a queue's or exchange's arguments) can give, each absent unless set.
/// Numeric limits in their own units (ms, messages, bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) message_ttl: Option<u64>,
    pub(crate) expires: Option<u64>,
    pub(crate) max_length: Option<u64>,
    pub(crate) max_length_bytes: Option<u64>,
    pub(crate) delivery_limit: Option<u64>,
    pub(crate) consumer_timeout: Option<u64>,
    pub(crate) overflow: Option<Overflow>,
    pub(crate) dead_letter_exchange: Option<String>,
    pub(crate) dead_letter_routing_key: Option<String>,
    pub(crate) alternate_exchange: Option<String>,
}

/// How a key's value is checked, and RabbitMQ's words for a value that fails.
#[derive(Clone, Copy)]
enum Check {
    /// An integer of at least this much.
    AtLeast(u64, &'static str),
    /// An integer of at most 3,000,000,000 (a stream segment size).
    SegmentSize(&'static str),
    /// Any string.
    Text(&'static str),
    /// One of these strings.
    OneOf(&'static [&'static str], &'static str),
    /// The integer 1 or 2.
    Version(&'static str),
    /// A stream age: digits then one of `Y M D h m s`.
    MaxAge(&'static str),
}

/// Every key a policy may hold, with its check: the keys Warren applies, then those RabbitMQ
/// accepts for queue types or features Warren does not have (kept, so definitions carry over;
/// they change nothing here). `consumer-timeout` is RabbitMQ 3.12's.
const POLICY_KEYS: &[(&str, Check)] = &[
    ("alternate-exchange", Check::Text("is not a valid alternate exchange name")),
    ("consumer-timeout", Check::AtLeast(0, "is not a valid consumer timeout")),
    ("dead-letter-exchange", Check::Text("is not a valid dead letter exchange name")),
    ("dead-letter-routing-key", Check::Text("is not a valid dead letter routing key")),
    ("delivery-limit", Check::AtLeast(0, "is not a valid delivery limit")),
    ("expires", Check::AtLeast(1, "is not a valid queue expiry")),
    ("max-length", Check::AtLeast(0, "is not a valid maximum length")),
    ("max-length-bytes", Check::AtLeast(0, "is not a valid maximum length in bytes")),
    ("message-ttl", Check::AtLeast(0, "is not a valid message TTL")),
    (
        "overflow",
        Check::OneOf(&["drop-head", "reject-publish", "reject-publish-dlx"], "is not a valid overflow value"),
    ),
    ("queue-mode", Check::OneOf(&["default", "lazy"], "is not a valid queue-mode value")),
    // Accepted, no effect in Warren.
    (
        "dead-letter-strategy",
        Check::OneOf(&["at-most-once", "at-least-once"], "is not a valid dead letter strategy"),
    ),
    ("initial-cluster-size", Check::AtLeast(0, "is not a valid cluster size")),
    ("max-age", Check::MaxAge("is not a valid max age")),
    ("max-in-memory-bytes", Check::AtLeast(0, "is not a valid maximum memory in bytes")),
    ("max-in-memory-length", Check::AtLeast(0, "is not a valid maximum memory in bytes")),
    (
        "queue-leader-locator",
        Check::OneOf(
            &["client-local", "balanced", "random", "least-leaders"],
            "is not a valid queue leader locator value",
        ),
    ),
    ("queue-version", Check::Version("is not a valid queue-version value")),
    ("stream-max-segment-size-bytes", Check::SegmentSize("is not a valid segment size")),
];

/// The keys an operator policy may hold (RabbitMQ 3.10's operator policy validators).
const OPERATOR_KEYS: &[&str] = &[
    "delivery-limit",
    "expires",
    "max-in-memory-bytes",
    "max-in-memory-length",
    "max-length",
    "max-length-bytes",
    "message-ttl",
];

/// A checked definition: the JSON object as given and the settings Warren reads from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    json: Map<String, Value>,
    pub(crate) settings: Settings,
}

impl Definition {
    /// Checks `json` as a definition of a policy of `kind`. As RabbitMQ: keys in their sorted
    /// order, the first bad value is the error; keys not known are reported together after.
    pub fn parse(json: &Value, kind: PolicyKind) -> Result<Definition, PolicyError> {
        let invalid = PolicyError::Invalid;
        let Value::Object(map) = json else {
            return Err(invalid(format!("definition must be a dictionary: {}", erlang_term(json))));
        };
        if map.is_empty() {
            return Err(invalid("no policy provided".to_owned()));
        }
        let allowed = |key: &str| kind == PolicyKind::Policy || OPERATOR_KEYS.contains(&key);
        let mut unknown = Vec::new();
        // serde_json's map iterates in key order, the order RabbitMQ checks them in.
        for (key, value) in map {
            let check = POLICY_KEYS.iter().find(|(k, _)| k == key).filter(|_| allowed(key));
            match check {
                Some((_, check)) => check_value(*check, value).map_err(invalid)?,
                None => unknown.push((key, value)),
            }
        }
        if !unknown.is_empty() {
            return Err(invalid(format!("{} are not recognised policy settings", proplist(unknown))));
        }
        Ok(Definition { json: map.clone(), settings: settings_of(map) })
    }

    /// The definition as given.
    pub fn json(&self) -> &Map<String, Value> {
        &self.json
    }
}

fn check_value(check: Check, value: &Value) -> Result<(), String> {
    let ok = match check {
        Check::AtLeast(min, _) => value.as_u64().is_some_and(|n| n >= min),
        Check::SegmentSize(_) => value.as_u64().is_some_and(|n| n <= 3_000_000_000),
        Check::Text(_) => value.is_string(),
        Check::OneOf(choices, _) => value.as_str().is_some_and(|s| choices.contains(&s)),
        Check::Version(_) => matches!(value.as_u64(), Some(1 | 2)),
        Check::MaxAge(_) => value.as_str().is_some_and(valid_max_age),
    };
    if ok {
        return Ok(());
    }
    let (Check::AtLeast(_, words)
    | Check::SegmentSize(words)
    | Check::Text(words)
    | Check::OneOf(_, words)
    | Check::Version(words)
    | Check::MaxAge(words)) = check;
    Err(format!("{} {words}", erlang_term(value)))
}

/// A stream's `max-age`: a positive number then a unit (`7D`, `12h`).
fn valid_max_age(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| !c.is_ascii_digit());
    let unit = &s[digits.len()..];
    digits.bytes().all(|b| b.is_ascii_digit())
        && digits.parse::<u64>().is_ok_and(|n| n > 0)
        && matches!(unit, "Y" | "M" | "D" | "h" | "m" | "s")
}

/// The settings Warren applies, read from a checked definition.
fn settings_of(map: &Map<String, Value>) -> Settings {
    let number = |key: &str| map.get(key).and_then(Value::as_u64);
    let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_owned);
    Settings {
        message_ttl: number("message-ttl"),
        expires: number("expires"),
        max_length: number("max-length"),
        max_length_bytes: number("max-length-bytes"),
        delivery_limit: number("delivery-limit"),
        consumer_timeout: number("consumer-timeout"),
        overflow: map.get("overflow").and_then(Value::as_str).and_then(Overflow::parse),
        dead_letter_exchange: text("dead-letter-exchange"),
        dead_letter_routing_key: text("dead-letter-routing-key"),
        alternate_exchange: text("alternate-exchange"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn error(json: Value, kind: PolicyKind) -> String {
        match Definition::parse(&json, kind) {
            Err(PolicyError::Invalid(text)) => text,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invalid_definitions_are_worded_as_rabbitmq() {
        // Each text as `rabbitmqctl set_policy` printed it after "Validation failed" (3.10.8).
        let policy = |json| error(json, PolicyKind::Policy);
        assert_eq!(
            policy(json!({"foo": "bar"})),
            "[{<<\"foo\">>,<<\"bar\">>}] are not recognised policy settings"
        );
        assert_eq!(policy(json!({"message-ttl": -1})), "-1 is not a valid message TTL");
        assert_eq!(policy(json!({"message-ttl": "abc"})), "<<\"abc\">> is not a valid message TTL");
        assert_eq!(policy(json!({"message-ttl": 1.5})), "1.5 is not a valid message TTL");
        assert_eq!(policy(json!({"expires": 0})), "0 is not a valid queue expiry");
        assert_eq!(policy(json!({"max-length": [1, 2]})), "[1,2] is not a valid maximum length");
        assert_eq!(
            policy(json!({"max-length-bytes": {"a": 1}})),
            "#{<<\"a\">> => 1} is not a valid maximum length in bytes"
        );
        assert_eq!(policy(json!({"overflow": "bogus"})), "<<\"bogus\">> is not a valid overflow value");
        assert_eq!(policy(json!({"dead-letter-exchange": 5})), "5 is not a valid dead letter exchange name");
        assert_eq!(
            policy(json!({"dead-letter-routing-key": true})),
            "true is not a valid dead letter routing key"
        );
        assert_eq!(
            policy(json!({"alternate-exchange": null})),
            "null is not a valid alternate exchange name"
        );
        assert_eq!(policy(json!({"delivery-limit": -3})), "-3 is not a valid delivery limit");
        assert_eq!(policy(json!({"queue-mode": "fast"})), "<<\"fast\">> is not a valid queue-mode value");
        assert_eq!(
            policy(json!({"max-priority": 5})),
            "[{<<\"max-priority\">>,5}] are not recognised policy settings"
        );
        assert_eq!(policy(json!({})), "no policy provided");
        assert_eq!(policy(json!([1])), "definition must be a dictionary: [1]");
    }

    #[test]
    fn the_first_bad_key_in_sorted_order_wins_and_unknown_keys_come_last() {
        let policy = |json| error(json, PolicyKind::Policy);
        assert_eq!(policy(json!({"zz": 1, "message-ttl": -1, "aa": 2})), "-1 is not a valid message TTL");
        assert_eq!(
            policy(json!({"zz": 1, "aa": "x"})),
            "[{<<\"aa\">>,<<\"x\">>},{<<\"zz\">>,1}] are not recognised policy settings"
        );
        assert_eq!(policy(json!({"message-ttl": -1, "max-length": -1})), "-1 is not a valid maximum length");
    }

    #[test]
    fn operator_policies_take_only_the_numeric_limits() {
        let operator = |json| error(json, PolicyKind::Operator);
        assert_eq!(
            operator(json!({"overflow": "drop-head"})),
            "[{<<\"overflow\">>,<<\"drop-head\">>}] are not recognised policy settings"
        );
        assert_eq!(operator(json!({"max-length": -1})), "-1 is not a valid maximum length");
        let ok = json!({"max-length": 1, "message-ttl": 2, "expires": 3, "max-length-bytes": 4, "delivery-limit": 5});
        assert!(Definition::parse(&ok, PolicyKind::Operator).is_ok());
    }

    #[test]
    fn settings_are_read_from_a_valid_definition() {
        let json = json!({
            "message-ttl": 1000, "expires": 2000, "max-length": 3, "max-length-bytes": 4,
            "delivery-limit": 5, "consumer-timeout": 6, "overflow": "reject-publish-dlx",
            "dead-letter-exchange": "dlx", "dead-letter-routing-key": "k",
            "alternate-exchange": "ae", "queue-mode": "lazy", "queue-version": 2, "max-age": "7D",
        });
        let d = Definition::parse(&json, PolicyKind::Policy).unwrap();
        let s = &d.settings;
        assert_eq!(
            (s.message_ttl, s.expires, s.max_length, s.max_length_bytes),
            (Some(1000), Some(2000), Some(3), Some(4))
        );
        assert_eq!((s.delivery_limit, s.consumer_timeout), (Some(5), Some(6)));
        assert_eq!(s.overflow, Some(Overflow::RejectPublishDlx));
        assert_eq!(s.dead_letter_exchange.as_deref(), Some("dlx"));
        assert_eq!(s.dead_letter_routing_key.as_deref(), Some("k"));
        assert_eq!(s.alternate_exchange.as_deref(), Some("ae"));
        assert_eq!(d.json(), json.as_object().unwrap());
    }

    #[test]
    fn keys_warren_only_accepts_are_checked_as_rabbitmq_checks_them() {
        let policy = |json| error(json, PolicyKind::Policy);
        assert_eq!(policy(json!({"max-age": "7x"})), "<<\"7x\">> is not a valid max age");
        assert_eq!(policy(json!({"max-age": "0D"})), "<<\"0D\">> is not a valid max age");
        assert_eq!(policy(json!({"queue-version": 3})), "3 is not a valid queue-version value");
        assert_eq!(
            policy(json!({"stream-max-segment-size-bytes": 3_000_000_001u64})),
            "3000000001 is not a valid segment size"
        );
        assert!(Definition::parse(
            &json!({"max-age": "12h", "queue-leader-locator": "balanced"}),
            PolicyKind::Policy
        )
        .is_ok());
    }
}
