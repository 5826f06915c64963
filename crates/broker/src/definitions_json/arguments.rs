//! Declare and binding arguments between JSON and AMQP field tables, converted as RabbitMQ
//! converts them (`rabbit_misc:to_amqp_table` on import, `rabbit_misc:amqp_table` on export):
//! integers are `long` (signed 64-bit), other numbers `double`, strings `longstr`, objects
//! tables and lists arrays; on export every number type is a JSON number and bytes that are not
//! UTF-8 are written as RabbitMQ writes them (`"Not UTF-8, base64 is: ..."`).

use base64::Engine;
use serde_json::{Map, Number, Value};
use warren_message::{FieldTable, FieldValue, ShortStr};

/// The field table of a JSON object of arguments; the error names the argument.
pub fn to_field_table(map: &Map<String, Value>) -> Result<FieldTable, String> {
    let mut table = FieldTable::new();
    for (key, value) in map {
        if key.len() > 255 {
            return Err(format!("argument name '{key}' is longer than 255 bytes"));
        }
        let value = to_field_value(value).map_err(|e| format!("argument '{key}': {e}"))?;
        table.insert(ShortStr::from(key.as_str()), value);
    }
    Ok(table)
}

fn to_field_value(value: &Value) -> Result<FieldValue, String> {
    Ok(match value {
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => FieldValue::I64(i),
            // Past i64 (an integer no AMQP table holds as one) or with a fraction.
            None => FieldValue::F64(n.as_f64().ok_or_else(|| format!("unsupported number {n}"))?),
        },
        Value::String(s) => FieldValue::LongStr(s.clone().into_bytes().into()),
        Value::Array(items) => FieldValue::Array(items.iter().map(to_field_value).collect::<Result<_, _>>()?),
        Value::Object(map) => FieldValue::Table(to_field_table(map)?),
        // RabbitMQ refuses null (`null_not_allowed`); Warren reads it as void, which is what its
        // own exports write for a void value.
        Value::Null => FieldValue::Void,
    })
}

/// The JSON object of a field table.
pub fn from_field_table(table: &FieldTable) -> Map<String, Value> {
    table.iter().map(|(k, v)| (k.to_string(), from_field_value(v))).collect()
}

fn from_field_value(value: &FieldValue) -> Value {
    match value {
        FieldValue::Bool(b) => Value::Bool(*b),
        FieldValue::I8(_)
        | FieldValue::U8(_)
        | FieldValue::I16(_)
        | FieldValue::U16(_)
        | FieldValue::I32(_)
        | FieldValue::U32(_)
        | FieldValue::I64(_) => Value::from(value.as_i64().unwrap_or_default()),
        FieldValue::Timestamp(t) => Value::from(*t),
        FieldValue::F32(f) => float(f64::from(*f)),
        FieldValue::F64(f) => float(*f),
        FieldValue::Decimal { scale, value } => float(f64::from(*value) / 10f64.powi(i32::from(*scale))),
        FieldValue::LongStr(bytes) | FieldValue::ByteArray(bytes) => Value::String(utf8_or_base64(bytes)),
        FieldValue::Array(items) => Value::Array(items.iter().map(from_field_value).collect()),
        FieldValue::Table(table) => Value::Object(from_field_table(table)),
        FieldValue::Void => Value::Null,
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// RabbitMQ's `utf8_safe`: the text, or a note with the bytes in base64 in lines of 76.
fn utf8_or_base64(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
            let lines: Vec<&str> = encoded
                .as_bytes()
                .chunks(76)
                .map(|chunk| std::str::from_utf8(chunk).expect("base64 is ASCII"))
                .collect();
            format!("Not UTF-8, base64 is: {}", lines.join("\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_arguments_become_what_rabbitmq_makes_of_them() {
        let args = json!({
            "x-message-ttl": 60000,
            "x-dead-letter-exchange": "dlx",
            "x-single-active-consumer": true,
            "ratio": 0.5,
            "huge": 18446744073709551615u64,
            "nested": {"list": [1, "two", false], "t": {}},
        });
        let table = to_field_table(args.as_object().unwrap()).unwrap();
        assert_eq!(table.get("x-message-ttl"), Some(&FieldValue::I64(60000)));
        assert_eq!(table.get("x-dead-letter-exchange"), Some(&FieldValue::LongStr("dlx".into())));
        assert_eq!(table.get("x-single-active-consumer"), Some(&FieldValue::Bool(true)));
        assert_eq!(table.get("ratio"), Some(&FieldValue::F64(0.5)));
        assert_eq!(table.get("huge"), Some(&FieldValue::F64(18446744073709551615.0)));
        let Some(FieldValue::Table(nested)) = table.get("nested") else { panic!("{table:?}") };
        assert_eq!(
            nested.get("list"),
            Some(&FieldValue::Array(vec![
                FieldValue::I64(1),
                FieldValue::LongStr("two".into()),
                FieldValue::Bool(false)
            ]))
        );
        // Back to JSON: the same object, but for the integer no field table holds.
        let mut back = from_field_table(&table);
        assert_eq!(back.remove("huge"), Some(json!(18446744073709551615.0)));
        let mut args = args;
        args.as_object_mut().unwrap().remove("huge");
        assert_eq!(Value::Object(back), args);
    }

    #[test]
    fn every_field_type_has_a_json_form() {
        let mut table = FieldTable::new();
        table.insert("i8", FieldValue::I8(-1));
        table.insert("u32", FieldValue::U32(7));
        table.insert("ts", FieldValue::Timestamp(1_700_000_000));
        table.insert("f32", FieldValue::F32(1.5));
        table.insert("dec", FieldValue::Decimal { scale: 2, value: 125 });
        table.insert("bytes", FieldValue::ByteArray(vec![0xff, 0x00].into()));
        table.insert("void", FieldValue::Void);
        let json = Value::Object(from_field_table(&table));
        assert_eq!(
            json,
            json!({"i8": -1, "u32": 7, "ts": 1_700_000_000, "f32": 1.5, "dec": 1.25,
                   "bytes": "Not UTF-8, base64 is: /wA=", "void": null})
        );
        assert_eq!(to_field_table(json.as_object().unwrap()).unwrap().get("void"), Some(&FieldValue::Void));
    }

    #[test]
    fn a_name_too_long_for_a_table_is_refused() {
        let mut map = Map::new();
        map.insert("k".repeat(256), Value::from(1));
        assert!(to_field_table(&map).unwrap_err().contains("longer than 255 bytes"));
    }
}
