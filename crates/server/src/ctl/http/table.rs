//! Listings as `warren ctl --url` prints them: the chosen columns of the API's objects (a dotted
//! name reaches into nested ones, `message_stats.publish`), rabbitmqctl's column names where
//! they differ from the API's, as tab-separated lines under a header or as JSON.

use serde_json::Value;

/// What a listing shows by default and which rabbitmqctl column names it translates.
#[derive(Debug, Clone, Copy)]
pub struct Columns {
    /// The columns when none are asked for (rabbitmqctl's defaults).
    pub default: &'static [&'static str],
    /// rabbitmqctl's name → the API's (dotted) field.
    pub aliases: &'static [(&'static str, &'static str)],
}

/// A column nobody's rows have.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown column \"{column}\"; these objects have: {known}")]
pub struct UnknownColumn {
    column: String,
    known: String,
}

/// The rows' chosen columns, in order: (column as asked, value per row).
pub struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
}

impl Table {
    /// Picks `asked` (or `columns.default`) out of `objects`. A column no object has is refused
    /// when there are objects to tell; fields the API leaves out of some objects (a queue
    /// without `message_stats`) are blank in those.
    pub fn pick(objects: &[Value], asked: &[String], columns: Columns) -> Result<Table, UnknownColumn> {
        let names: Vec<String> = if asked.is_empty() {
            columns.default.iter().map(|c| (*c).to_owned()).collect()
        } else {
            asked.iter().flat_map(|c| c.split(',')).filter(|c| !c.is_empty()).map(str::to_owned).collect()
        };
        let field = |name: &str| {
            columns
                .aliases
                .iter()
                .find(|(alias, _)| *alias == name)
                .map_or(name.to_owned(), |(_, f)| (*f).to_owned())
        };
        let fields: Vec<String> = names.iter().map(|n| field(n)).collect();
        if let Some(first) = objects.first() {
            for (name, field) in names.iter().zip(&fields) {
                if !objects.iter().any(|o| lookup(o, field).is_some()) {
                    let known = first.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>().join(" "));
                    return Err(UnknownColumn { column: name.clone(), known: known.unwrap_or_default() });
                }
            }
        }
        let rows = objects
            .iter()
            .map(|o| fields.iter().map(|f| lookup(o, f).cloned().unwrap_or(Value::Null)).collect())
            .collect();
        Ok(Table { columns: names, rows })
    }

    /// A header line and one line per row, cells separated by tabs (tabs and line breaks in
    /// values are written `\t` and `\n`, so a line is a row).
    pub fn to_text(&self) -> String {
        let mut out = self.columns.join("\t");
        for row in &self.rows {
            out.push('\n');
            let cells: Vec<String> = row.iter().map(cell).collect();
            out.push_str(&cells.join("\t"));
        }
        out
    }

    /// A JSON array with an object per row, keyed by the columns as asked, in their order (so
    /// written by hand: serde_json's maps sort their keys), one object per line.
    pub fn to_json(&self) -> String {
        let keys: Vec<String> = self.columns.iter().map(|c| Value::String(c.clone()).to_string()).collect();
        let objects: Vec<String> = self
            .rows
            .iter()
            .map(|row| {
                let fields: Vec<String> =
                    keys.iter().zip(row).map(|(key, value)| format!("{key}: {value}")).collect();
                format!("  {{{}}}", fields.join(", "))
            })
            .collect();
        if objects.is_empty() {
            "[]".to_owned()
        } else {
            format!("[\n{}\n]", objects.join(",\n"))
        }
    }
}

/// The value at a dotted path.
fn lookup<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(object, |value, key| value.get(key))
}

/// A value as a table shows it: strings bare, nothing as blank, the rest as compact JSON.
fn cell(value: &Value) -> String {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    // Only what would break a line into the wrong cells or rows; a backslash stays as it is, so
    // a regular expression reads as it was set.
    text.replace('\t', "\\t").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const QUEUES: Columns = Columns { default: &["name", "messages"], aliases: &[("policy_name", "policy")] };

    #[test]
    fn columns_are_picked_by_name_alias_or_dotted_path() {
        let objects = [
            json!({"name": "a", "messages": 3, "policy": "p", "message_stats": {"publish": 7}}),
            json!({"name": "b\tc", "messages": 0, "arguments": {"x-max-length": 1}}),
        ];
        let table = Table::pick(&objects, &[], QUEUES).unwrap();
        assert_eq!(table.to_text(), "name\tmessages\na\t3\nb\\tc\t0");
        let asked =
            ["name".to_owned(), "policy_name,message_stats.publish".to_owned(), "arguments".to_owned()];
        let table = Table::pick(&objects, &asked, QUEUES).unwrap();
        assert_eq!(
            table.to_text(),
            "name\tpolicy_name\tmessage_stats.publish\targuments\na\tp\t7\t\nb\\tc\t\t\t{\"x-max-length\":1}"
        );
        let json: Value = serde_json::from_str(&table.to_json()).unwrap();
        assert_eq!(
            json[0],
            json!({"name": "a", "policy_name": "p", "message_stats.publish": 7, "arguments": null})
        );
    }

    #[test]
    fn a_column_no_object_has_is_refused_unless_there_are_none() {
        let objects = [json!({"name": "a", "messages": 1})];
        let error = Table::pick(&objects, &["nmae".to_owned()], QUEUES).err().unwrap();
        assert_eq!(error.to_string(), "unknown column \"nmae\"; these objects have: messages name");
        assert!(Table::pick(&[], &["nmae".to_owned()], QUEUES).is_ok());
    }
}
