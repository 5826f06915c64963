//! Declare and consume arguments: how they are checked, which ones must match on redeclare, and
//! how a mismatch is reported.

use warren_message::{FieldTable, FieldValue};

/// Queue arguments whose values must match on redeclare, as RabbitMQ checks them.
pub(crate) const QUEUE_EQUIVALENCE_ARGS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-type",
    "x-single-active-consumer",
    "x-delivery-limit",
];

/// Exchange arguments whose values must match on redeclare.
pub(crate) const EXCHANGE_EQUIVALENCE_ARGS: &[&str] = &["alternate-exchange"];

/// The argument of an exchange.declare that must be a string (the alternate exchange's name)
/// and is not, with the type it has.
pub(crate) fn exchange_arg_type_error(args: &FieldTable) -> Option<(&'static str, &'static str)> {
    match args.get("alternate-exchange") {
        None | Some(FieldValue::LongStr(_)) => None,
        Some(other) => Some(("alternate-exchange", type_name(other))),
    }
}

/// Checks queue.declare arguments as RabbitMQ does; the error is (argument, reason) with the
/// reason worded as RabbitMQ prints it.
pub(crate) fn validate_queue_args(args: &FieldTable) -> Result<(), (&'static str, String)> {
    for (key, check) in QUEUE_ARG_CHECKS {
        if let Some(value) = args.get(key) {
            check(value, args).map_err(|reason| (*key, reason))?;
        }
    }
    Ok(())
}

type ArgCheck = fn(&FieldValue, &FieldTable) -> Result<(), String>;

/// Checks basic.consume arguments as RabbitMQ does (its `check_consume_arguments`): only the
/// type of `x-priority` (an integer) and `x-cancel-on-ha-failover` (a bool) is checked.
pub fn validate_consume_args(args: &FieldTable) -> Result<(), (&'static str, String)> {
    for (key, check) in CONSUME_ARG_CHECKS {
        if let Some(value) = args.get(key) {
            check(value, args).map_err(|reason| (*key, reason))?;
        }
    }
    Ok(())
}

const CONSUME_ARG_CHECKS: &[(&str, ArgCheck)] = &[
    ("x-priority", |v, _| integer(v).map(|_| ())),
    ("x-cancel-on-ha-failover", |v, _| match v {
        FieldValue::Bool(_) => Ok(()),
        other => Err(unacceptable_type(other)),
    }),
];

fn unacceptable_type(v: &FieldValue) -> String {
    format!("{{unacceptable_type,{}}}", type_name(v))
}

const QUEUE_ARG_CHECKS: &[(&str, ArgCheck)] = &[
    ("x-expires", |v, _| positive_int(v)),
    ("x-message-ttl", |v, _| non_negative_int(v)),
    ("x-dead-letter-exchange", |v, _| string(v).map(|_| ())),
    ("x-dead-letter-routing-key", |v, args| {
        string(v)?;
        match args.get("x-dead-letter-exchange") {
            Some(_) => Ok(()),
            None => Err("routing_key_but_no_dlx_defined".to_owned()),
        }
    }),
    ("x-max-length", |v, _| non_negative_int(v)),
    ("x-max-length-bytes", |v, _| non_negative_int(v)),
    ("x-delivery-limit", |v, _| non_negative_int(v)),
    ("x-consumer-timeout", |v, _| non_negative_int(v)),
    ("x-max-priority", |v, _| {
        let n = non_negative_int(v).and_then(|()| integer(v))?;
        if n > 255 {
            return Err(format!("{{max_value_exceeded,{n}}}"));
        }
        Ok(())
    }),
    ("x-overflow", |v, _| match string(v)?.as_str() {
        "drop-head" | "reject-publish" | "reject-publish-dlx" => Ok(()),
        _ => Err("invalid_overflow".to_owned()),
    }),
    ("x-queue-mode", |v, _| match string(v)?.as_str() {
        "default" | "lazy" => Ok(()),
        other => Err(format!("{{unsupported_queue_mode,<<\"{other}\">>}}")),
    }),
    ("x-single-active-consumer", |v, _| match v {
        FieldValue::Bool(_) => Ok(()),
        other => Err(format!("\"expected bool, got {}\"", type_name(other))),
    }),
    // Quorum queues are served as classic durable queues; streams are not available.
    ("x-queue-type", |v, _| match string(v)?.as_str() {
        "classic" | "quorum" => Ok(()),
        other => Err(format!("\"unsupported queue type '{other}'\"")),
    }),
];

fn integer(v: &FieldValue) -> Result<i64, String> {
    v.as_i64().ok_or_else(|| format!("\"expected integer, got {}\"", type_name(v)))
}

fn non_negative_int(v: &FieldValue) -> Result<(), String> {
    match integer(v)? {
        n if n < 0 => Err(format!("{{value_negative,{n}}}")),
        _ => Ok(()),
    }
}

fn positive_int(v: &FieldValue) -> Result<(), String> {
    match integer(v)? {
        0 => Err("{value_zero,0}".to_owned()),
        n if n < 0 => Err(format!("{{value_negative,{n}}}")),
        _ => Ok(()),
    }
}

fn string(v: &FieldValue) -> Result<String, String> {
    match v {
        FieldValue::LongStr(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        other => Err(format!("\"expected longstr, got {}\"", type_name(other))),
    }
}

/// The first of `keys` whose value differs, with RabbitMQ's descriptions of both sides.
pub(crate) fn first_mismatch(
    keys: &[&'static str],
    received: &FieldTable,
    current: &FieldTable,
) -> Option<(&'static str, String, String)> {
    keys.iter().find_map(|key| {
        let (r, c) = (received.get(key), current.get(key));
        match (r, c) {
            (None, None) => None,
            (Some(r), Some(c)) if same_value(r, c) => None,
            // Both present: RabbitMQ quotes the bare values.
            (Some(r), Some(c)) => {
                Some((*key, format!("'{}'", value_text(r)), format!("'{}'", value_text(c))))
            }
            _ => Some((*key, describe(r), describe(c))),
        }
    })
}

fn same_value(a: &FieldValue, b: &FieldValue) -> bool {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// `the value '5' of type 'long'`, or `none` for an absent argument.
fn describe(v: Option<&FieldValue>) -> String {
    match v {
        None => "none".to_owned(),
        Some(v) => format!("the value '{}' of type '{}'", value_text(v), type_name(v)),
    }
}

/// A value as RabbitMQ quotes it in an inequivalence: strings bare, anything else as Erlang's
/// `~p` prints RabbitMQ's decoding of it.
fn value_text(v: &FieldValue) -> String {
    match v {
        FieldValue::LongStr(b) | FieldValue::ByteArray(b) => String::from_utf8_lossy(b).into_owned(),
        other => erlang_term(other),
    }
}

/// A field value as Erlang's `~p` prints RabbitMQ's decoding of it: tables as lists of
/// `{Key,Type,Value}`, arrays as lists of `{Type,Value}`, void as `undefined`. Always on one
/// line, where Erlang would break a term longer than its line width.
fn erlang_term(v: &FieldValue) -> String {
    use warren_message::erlang::binary;
    let list = |items: Vec<String>| format!("[{}]", items.join(","));
    match v {
        FieldValue::LongStr(b) | FieldValue::ByteArray(b) => binary(b),
        FieldValue::Bool(b) => b.to_string(),
        FieldValue::F32(f) => erlang_float(f64::from(*f)),
        FieldValue::F64(f) => erlang_float(*f),
        FieldValue::Decimal { scale, value } => format!("{{{scale},{value}}}"),
        FieldValue::Timestamp(t) => t.to_string(),
        FieldValue::Void => "undefined".to_owned(),
        FieldValue::Table(t) => list(
            t.iter()
                .map(|(k, v)| format!("{{{},{},{}}}", binary(k.as_bytes()), type_name(v), erlang_term(v)))
                .collect(),
        ),
        FieldValue::Array(items) => {
            list(items.iter().map(|v| format!("{{{},{}}}", type_name(v), erlang_term(v))).collect())
        }
        FieldValue::I8(_)
        | FieldValue::U8(_)
        | FieldValue::I16(_)
        | FieldValue::U16(_)
        | FieldValue::I32(_)
        | FieldValue::U32(_)
        | FieldValue::I64(_) => v.as_i64().unwrap_or_default().to_string(),
    }
}

/// A float as Erlang prints it: the shortest digits that read back the same, in plain or
/// scientific notation, whichever is shorter (plain on a tie), always with a fraction.
pub(crate) fn erlang_float(f: f64) -> String {
    let with_fraction = |s: String| if s.contains('.') { s } else { s + ".0" };
    if !f.is_finite() {
        return f.to_string();
    }
    let plain = with_fraction(f.to_string());
    let sci = format!("{f:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let sci = format!("{}e{exponent}", with_fraction(mantissa.to_owned()));
    if sci.len() < plain.len() {
        sci
    } else {
        plain
    }
}

/// RabbitMQ's names for field types.
pub fn type_name(v: &FieldValue) -> &'static str {
    match v {
        FieldValue::Bool(_) => "bool",
        FieldValue::I8(_) => "byte",
        FieldValue::U8(_) => "unsignedbyte",
        FieldValue::I16(_) => "short",
        FieldValue::U16(_) => "unsignedshort",
        FieldValue::I32(_) => "signedint",
        FieldValue::U32(_) => "unsignedint",
        FieldValue::I64(_) => "long",
        FieldValue::F32(_) => "float",
        FieldValue::F64(_) => "double",
        FieldValue::Decimal { .. } => "decimal",
        FieldValue::LongStr(_) => "longstr",
        FieldValue::Array(_) => "array",
        FieldValue::Timestamp(_) => "timestamp",
        FieldValue::Table(_) => "table",
        FieldValue::Void => "void",
        FieldValue::ByteArray(_) => "binary",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(key: &str, v: FieldValue) -> FieldTable {
        let mut t = FieldTable::new();
        t.insert(key, v);
        t
    }

    #[test]
    fn mismatch_texts_match_rabbitmq() {
        let a = table("x-max-length", FieldValue::I32(20));
        let b = table("x-max-length", FieldValue::I32(10));
        let (key, r, c) = first_mismatch(QUEUE_EQUIVALENCE_ARGS, &a, &b).unwrap();
        assert_eq!((key, r.as_str(), c.as_str()), ("x-max-length", "'20'", "'10'"));
        let (_, r, c) = first_mismatch(QUEUE_EQUIVALENCE_ARGS, &a, &FieldTable::new()).unwrap();
        assert_eq!((r.as_str(), c.as_str()), ("the value '20' of type 'signedint'", "none"));
        let ae = table("alternate-exchange", FieldValue::LongStr("ae".into()));
        let (_, r, _) = first_mismatch(EXCHANGE_EQUIVALENCE_ARGS, &ae, &FieldTable::new()).unwrap();
        assert_eq!(r, "the value 'ae' of type 'longstr'");
    }

    #[test]
    fn values_of_other_types_are_quoted_as_erlang_prints_them() {
        let current = table("alternate-exchange", FieldValue::LongStr("ae".into()));
        let received = |v: FieldValue| {
            first_mismatch(EXCHANGE_EQUIVALENCE_ARGS, &table("alternate-exchange", v), &current).unwrap().1
        };
        assert_eq!(received(FieldValue::I32(5)), "'5'");
        assert_eq!(received(FieldValue::Table(FieldTable::new())), "'[]'");
        let mut t = table("name", FieldValue::LongStr("ae".into()));
        t.insert("n", FieldValue::I32(5));
        assert_eq!(
            received(FieldValue::Table(t)),
            "'[{<<\"name\">>,longstr,<<\"ae\">>},{<<\"n\">>,signedint,5}]'"
        );
        let array = FieldValue::Array(vec![FieldValue::LongStr("ae".into()), FieldValue::Void]);
        assert_eq!(received(array), "'[{longstr,<<\"ae\">>},{void,undefined}]'");
        assert_eq!(received(FieldValue::Decimal { scale: 1, value: 15 }), "'{1,15}'");
        assert_eq!(received(FieldValue::Bool(true)), "'true'");
        let (_, _, c) = first_mismatch(EXCHANGE_EQUIVALENCE_ARGS, &FieldTable::new(), &current).unwrap();
        assert_eq!(c, "the value 'ae' of type 'longstr'");
    }

    #[test]
    fn floats_are_printed_as_erlang_does() {
        // As `io:format("~p", [F])` prints them (checked with erl).
        for (f, text) in [
            (1.0e10, "1.0e10"),
            (1.0e21, "1.0e21"),
            (0.0001, "0.0001"),
            (0.00001, "1.0e-5"),
            (1.5, "1.5"),
            (-2.0, "-2.0"),
            (123456789.0, "123456789.0"),
        ] {
            assert_eq!(erlang_float(f), text);
        }
        assert_eq!(erlang_float(f64::from(0.1f32)), "0.10000000149011612");
    }

    #[test]
    fn alternate_exchange_must_be_a_string() {
        let ae = |v: FieldValue| exchange_arg_type_error(&table("alternate-exchange", v));
        assert_eq!(ae(FieldValue::LongStr("missing".into())), None);
        assert_eq!(ae(FieldValue::I32(5)), Some(("alternate-exchange", "signedint")));
        assert_eq!(ae(FieldValue::Table(FieldTable::new())), Some(("alternate-exchange", "table")));
        assert_eq!(ae(FieldValue::ByteArray("ae".into())), Some(("alternate-exchange", "binary")));
        assert_eq!(exchange_arg_type_error(&FieldTable::new()), None);
    }

    #[test]
    fn consume_arguments_are_checked_by_type_only() {
        let check = |key: &str, v: FieldValue| validate_consume_args(&table(key, v));
        assert_eq!(check("x-priority", FieldValue::I64(-3)), Ok(()));
        assert_eq!(check("x-priority", FieldValue::U8(10)), Ok(()));
        assert_eq!(
            check("x-priority", FieldValue::LongStr("high".into())),
            Err(("x-priority", "\"expected integer, got longstr\"".to_owned()))
        );
        assert_eq!(check("x-cancel-on-ha-failover", FieldValue::Bool(false)), Ok(()));
        assert_eq!(
            check("x-cancel-on-ha-failover", FieldValue::I32(1)),
            Err(("x-cancel-on-ha-failover", "{unacceptable_type,signedint}".to_owned()))
        );
        assert_eq!(check("x-anything-else", FieldValue::Void), Ok(()));
    }

    #[test]
    fn invalid_arguments_are_worded_as_rabbitmq() {
        let check = |key: &str, v: FieldValue| validate_queue_args(&table(key, v)).unwrap_err().1;
        assert_eq!(check("x-message-ttl", FieldValue::I32(-1)), "{value_negative,-1}");
        assert_eq!(
            check("x-message-ttl", FieldValue::LongStr("a".into())),
            "\"expected integer, got longstr\""
        );
        assert_eq!(check("x-expires", FieldValue::I32(0)), "{value_zero,0}");
        assert_eq!(check("x-max-priority", FieldValue::I32(300)), "{max_value_exceeded,300}");
        assert_eq!(check("x-overflow", FieldValue::LongStr("bogus".into())), "invalid_overflow");
        assert_eq!(
            check("x-dead-letter-routing-key", FieldValue::LongStr("k".into())),
            "routing_key_but_no_dlx_defined"
        );
        assert_eq!(
            check("x-queue-type", FieldValue::LongStr("bogus".into())),
            "\"unsupported queue type 'bogus'\""
        );
        assert!(validate_queue_args(&table("x-max-length", FieldValue::I64(10))).is_ok());
    }

    #[test]
    fn integers_of_other_widths_are_equivalent_and_unchecked_keys_are_ignored() {
        let a = table("x-message-ttl", FieldValue::I64(5));
        let b = table("x-message-ttl", FieldValue::I16(5));
        assert_eq!(first_mismatch(QUEUE_EQUIVALENCE_ARGS, &a, &b), None);
        let c = table("x-custom", FieldValue::I16(5));
        assert_eq!(first_mismatch(QUEUE_EQUIVALENCE_ARGS, &c, &FieldTable::new()), None);
    }
}
