//! Headers exchange matching: a binding's arguments against a message's headers table.

use warren_message::{FieldTable, FieldValue};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    All,
    Any,
}

/// Whether a message with `headers` matches a headers-exchange binding with `args`.
///
/// As RabbitMQ: `x-match` is `all` (default), `any`, `all-with-x` or `any-with-x`; other keys
/// starting with `x-` take part only in the `-with-x` modes; a void binding value only asks
/// that the header be present.
pub(crate) fn headers_match(args: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let (mode, with_x) = match args.get("x-match").and_then(FieldValue::as_str) {
        Some("any") => (Mode::Any, false),
        Some("any-with-x") => (Mode::Any, true),
        Some("all-with-x") => (Mode::All, true),
        _ => (Mode::All, false),
    };
    let mut considered =
        args.iter().filter(|(key, _)| &***key != "x-match" && (with_x || !key.starts_with("x-")));
    let empty = FieldTable::new();
    let headers = headers.unwrap_or(&empty);
    let matches = |(key, want): (&warren_message::ShortStr, &FieldValue)| match headers.get(key) {
        None => false,
        Some(_) if *want == FieldValue::Void => true,
        Some(have) => values_equal(want, have),
    };
    match mode {
        Mode::All => considered.all(matches),
        Mode::Any => considered.any(matches),
    }
}

/// Integers compare by value whatever their wire width, as clients pick widths freely.
fn values_equal(a: &FieldValue, b: &FieldValue) -> bool {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => x == y,
        _ => match (a, b) {
            (FieldValue::LongStr(x), FieldValue::ByteArray(y))
            | (FieldValue::ByteArray(x), FieldValue::LongStr(y)) => x == y,
            _ => a == b,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn s(v: &str) -> FieldValue {
        FieldValue::LongStr(Bytes::copy_from_slice(v.as_bytes()))
    }

    fn table(pairs: &[(&str, FieldValue)]) -> FieldTable {
        let mut t = FieldTable::new();
        for (k, v) in pairs {
            t.insert(*k, v.clone());
        }
        t
    }

    #[test]
    fn all_needs_every_header() {
        let args = table(&[("a", s("1")), ("b", s("2"))]);
        assert!(headers_match(&args, Some(&table(&[("a", s("1")), ("b", s("2")), ("c", s("3"))]))));
        assert!(!headers_match(&args, Some(&table(&[("a", s("1"))]))));
        assert!(!headers_match(&args, None));
    }

    #[test]
    fn any_needs_one_header() {
        let args = table(&[("x-match", s("any")), ("a", s("1")), ("b", s("2"))]);
        assert!(headers_match(&args, Some(&table(&[("b", s("2"))]))));
        assert!(!headers_match(&args, Some(&table(&[("b", s("3"))]))));
    }

    #[test]
    fn x_keys_count_only_with_x() {
        let args = table(&[("x-match", s("all")), ("x-k", s("1"))]);
        assert!(headers_match(&args, None), "x- keys are ignored in plain all");
        let args = table(&[("x-match", s("all-with-x")), ("x-k", s("1"))]);
        assert!(!headers_match(&args, None));
        assert!(headers_match(&args, Some(&table(&[("x-k", s("1"))]))));
        let args = table(&[("x-match", s("any-with-x")), ("x-k", s("1"))]);
        assert!(headers_match(&args, Some(&table(&[("x-k", s("1"))]))));
    }

    #[test]
    fn void_asks_for_presence_and_integers_compare_by_value() {
        let args = table(&[("a", FieldValue::Void), ("n", FieldValue::I64(5))]);
        assert!(headers_match(&args, Some(&table(&[("a", s("zzz")), ("n", FieldValue::I16(5))]))));
        assert!(!headers_match(&args, Some(&table(&[("n", FieldValue::I16(5))]))));
    }

    #[test]
    fn empty_all_matches_everything() {
        assert!(headers_match(&FieldTable::new(), None));
        let any = table(&[("x-match", s("any"))]);
        assert!(!headers_match(&any, None));
    }
}
