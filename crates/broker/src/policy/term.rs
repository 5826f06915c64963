//! JSON values as Erlang's `~p` prints RabbitMQ's decoding of them, for validation errors
//! worded as RabbitMQ's: strings are binaries, objects maps, `null` the atom `null`.

use serde_json::Value;
use warren_message::erlang::binary;

use crate::args::erlang_float;

/// `value` as RabbitMQ prints it in a policy validation error.
pub fn erlang_term(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.to_string(),
            (_, Some(u)) => u.to_string(),
            _ => erlang_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => binary(s.as_bytes()),
        Value::Array(items) => format!("[{}]", items.iter().map(erlang_term).collect::<Vec<_>>().join(",")),
        Value::Object(map) => {
            let pairs: Vec<String> =
                map.iter().map(|(k, v)| format!("{} => {}", binary(k.as_bytes()), erlang_term(v))).collect();
            format!("#{{{}}}", pairs.join(","))
        }
    }
}

/// Key-value pairs as the Erlang property list `[{<<"k">>,v},...]`.
pub(crate) fn proplist<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a Value)>) -> String {
    let items: Vec<String> =
        pairs.into_iter().map(|(k, v)| format!("{{{},{}}}", binary(k.as_bytes()), erlang_term(v))).collect();
    format!("[{}]", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_print_as_rabbitmq_prints_them() {
        // Each as `rabbitmqctl set_policy` echoed it in a validation error (RabbitMQ 3.10.8).
        assert_eq!(erlang_term(&json!(-1)), "-1");
        assert_eq!(erlang_term(&json!("abc")), "<<\"abc\">>");
        assert_eq!(erlang_term(&json!(1.5)), "1.5");
        assert_eq!(erlang_term(&json!([1, 2])), "[1,2]");
        assert_eq!(erlang_term(&json!({"a": 1})), "#{<<\"a\">> => 1}");
        assert_eq!(erlang_term(&json!(true)), "true");
        assert_eq!(erlang_term(&json!(null)), "null");
        assert_eq!(erlang_term(&json!("é")), "<<\"Ã©\">>");
        let map = json!({"zz": 1, "aa": "x"});
        assert_eq!(proplist(map.as_object().unwrap()), "[{<<\"aa\">>,<<\"x\">>},{<<\"zz\">>,1}]");
    }
}
