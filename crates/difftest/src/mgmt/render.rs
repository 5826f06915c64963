//! JSON answers as transcript lines: one line per leaf, `path = value`, object keys sorted (JSON
//! objects are unordered), array items in order, with the field rules of [`super::masks`]
//! applied. Two answers with equal renderings have the same keys and the same values wherever
//! a value is compared.

use serde_json::Value;

use super::masks::{self, Rule};

/// How much of an answer a scenario compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Every key and every compared value.
    Full,
    /// Every key, and of each value only its JSON type (for answers whose values depend on
    /// what else the broker holds: the overview's totals, listings of connections).
    Shape,
    /// The status code (and headers) only.
    Status,
}

/// The lines for `value`, each indented by two spaces.
pub fn lines(value: &Value, view: View) -> Vec<String> {
    let mut out = Vec::new();
    if view != View::Status {
        walk(value, "", None, view, &mut out);
    }
    out
}

fn leaf(value: &Value, view: View) -> String {
    match (view, value) {
        (View::Shape, Value::Null) => "<null>".into(),
        (View::Shape, Value::Bool(_)) => "<bool>".into(),
        (View::Shape, Value::Number(_)) => "<number>".into(),
        (View::Shape, Value::String(_)) => "<string>".into(),
        (_, Value::String(s)) => Value::String(masks::normalize_text(s)).to_string(),
        (_, other) => other.to_string(),
    }
}

/// `parent` is the key of the object being walked (array items keep their array's key).
fn walk(value: &Value, path: &str, parent: Option<&str>, view: View, out: &mut Vec<String>) {
    let at = if path.is_empty() { "." } else { path };
    match value {
        Value::Object(map) if map.is_empty() => out.push(format!("  {at} = {{}}")),
        Value::Object(map) => {
            let mut keys: Vec<(String, &String)> =
                map.keys().map(|k| (masks::normalize_text(k), k)).collect();
            keys.sort();
            for (shown, key) in keys {
                let child = if path.is_empty() { shown.clone() } else { format!("{path}.{shown}") };
                match masks::rule(parent, key, map) {
                    Rule::Omit => {}
                    Rule::Mask(placeholder) => out.push(format!("  {child} = {placeholder}")),
                    Rule::Keep => walk(&map[key.as_str()], &child, Some(key), view, out),
                }
            }
        }
        Value::Array(items) if items.is_empty() => out.push(format!("  {at} = []")),
        Value::Array(items) => {
            let kept = items.iter().filter(|item| !masks::omitted_item(item));
            for (i, item) in kept.enumerate() {
                walk(item, &format!("{path}[{i}]"), parent, view, out);
            }
        }
        scalar => out.push(format!("  {at} = {}", leaf(scalar, view))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattens_sorted_and_masked() {
        let v = json!({
            "name": "q", "node": "rabbit@h", "arguments": {}, "idle_since": "x",
            "message_stats": {"publish": 3, "publish_details": {"rate": 0.2}},
            "cluster_state": {"rabbit@h": "running"}, "tags": ["a", "b"], "list": []
        });
        assert_eq!(
            lines(&v, View::Full),
            vec![
                "  arguments = {}",
                "  cluster_state.<node> = \"running\"",
                "  list = []",
                "  message_stats.publish = 3",
                "  message_stats.publish_details.rate = <volatile>",
                "  name = \"q\"",
                "  node = <server>",
                "  tags[0] = \"a\"",
                "  tags[1] = \"b\"",
            ]
        );
        assert_eq!(lines(&json!([{"a": 1}]), View::Shape), vec!["  [0].a = <number>"]);
        assert_eq!(lines(&json!(true), View::Full), vec!["  . = true"]);
    }
}
