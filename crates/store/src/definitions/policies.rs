//! Stored policies and operator policies, one table each, keyed by (vhost, name) like exchanges
//! and queues. The value is a JSON object, `{"pattern", "apply-to", "priority", "definition"}`,
//! the shape RabbitMQ's definitions file gives a policy: the definition is kept exactly as given.

use redb::{ReadTransaction, ReadableTable};
use serde_json::{json, Map, Value};

use super::{codec, Definitions, DefinitionsError, Tbl, OPERATOR_POLICIES, POLICIES};

/// A stored policy (checked by the broker before it was stored).
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyDef {
    /// An operator policy, else a policy.
    pub operator: bool,
    /// The vhost the policy is in.
    pub vhost: String,
    /// The policy name, unique per vhost and kind.
    pub name: String,
    /// The regular expression matched against queue and exchange names.
    pub pattern: String,
    /// `all`, `queues`, `exchanges`, ...
    pub apply_to: String,
    /// Among matching policies of a kind, the highest priority applies.
    pub priority: i64,
    /// The settings, as given.
    pub definition: Map<String, Value>,
}

fn table(operator: bool) -> Tbl {
    if operator {
        OPERATOR_POLICIES
    } else {
        POLICIES
    }
}

impl Definitions {
    /// Stores a policy, replacing the one of the same kind, vhost and name.
    pub fn put_policy(&self, def: &PolicyDef) -> Result<(), DefinitionsError> {
        let key = codec::entity_key(&def.vhost, &def.name);
        let value = json!({
            "pattern": def.pattern,
            "apply-to": def.apply_to,
            "priority": def.priority,
            "definition": def.definition,
        })
        .to_string();
        self.write(|txn| {
            txn.open_table(table(def.operator))?.insert(key.as_slice(), value.as_bytes())?;
            Ok(())
        })
    }

    /// Deletes a policy (an operator policy with `operator`).
    pub fn delete_policy(&self, operator: bool, vhost: &str, name: &str) -> Result<(), DefinitionsError> {
        self.write(|txn| {
            txn.open_table(table(operator))?.remove(codec::entity_key(vhost, name).as_slice())?;
            Ok(())
        })
    }
}

/// Every stored policy, then every operator policy, each sorted by (vhost, name).
pub(super) fn load(txn: &ReadTransaction) -> Result<Vec<PolicyDef>, DefinitionsError> {
    let mut all = Vec::new();
    for operator in [false, true] {
        for entry in txn.open_table(table(operator))?.iter()? {
            let (key, value) = entry?;
            let (vhost, name) = codec::decode_entity_key(key.value())?;
            all.push(decode(operator, vhost, name, value.value())?);
        }
    }
    Ok(all)
}

fn decode(operator: bool, vhost: String, name: String, value: &[u8]) -> Result<PolicyDef, DefinitionsError> {
    let corrupt = || DefinitionsError::Corrupt(format!("policy '{name}' in vhost '{vhost}'"));
    let Ok(Value::Object(mut v)) = serde_json::from_slice::<Value>(value) else { return Err(corrupt()) };
    let text = |v: &Map<String, Value>, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let (Some(pattern), Some(apply_to), Some(priority), Some(Value::Object(definition))) = (
        text(&v, "pattern"),
        text(&v, "apply-to"),
        v.get("priority").and_then(Value::as_i64),
        v.remove("definition"),
    ) else {
        return Err(corrupt());
    };
    Ok(PolicyDef { operator, vhost, name, pattern, apply_to, priority, definition })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(operator: bool, vhost: &str, name: &str, definition: Value) -> PolicyDef {
        let Value::Object(definition) = definition else { panic!("an object") };
        PolicyDef {
            operator,
            vhost: vhost.to_owned(),
            name: name.to_owned(),
            pattern: "^q\\.".to_owned(),
            apply_to: "queues".to_owned(),
            priority: -3,
            definition,
        }
    }

    #[test]
    fn policies_of_both_kinds_are_stored_replaced_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("definitions.redb");
        let defs = Definitions::open(&path).unwrap();
        let p = def(false, "/", "ttl", json!({"message-ttl": 1000, "dead-letter-exchange": "dlx"}));
        let same_name = def(true, "/", "ttl", json!({"max-length": 5}));
        let other_vhost = def(false, "v2", "a", json!({"expires": 9}));
        for d in [&p, &same_name, &other_vhost] {
            defs.put_policy(d).unwrap();
        }
        let replaced = def(false, "/", "ttl", json!({"message-ttl": 5}));
        defs.put_policy(&replaced).unwrap();
        drop(defs);
        let defs = Definitions::open(&path).unwrap();
        assert_eq!(defs.load().unwrap().policies, [replaced.clone(), other_vhost.clone(), same_name.clone()]);
        defs.delete_policy(true, "/", "ttl").unwrap();
        defs.delete_policy(true, "/", "missing").unwrap();
        assert_eq!(defs.load().unwrap().policies, [replaced, other_vhost]);
        defs.delete_vhost("/").unwrap();
        assert_eq!(defs.load().unwrap().policies.len(), 1, "a deleted vhost's policies go with it");
    }

    #[test]
    fn a_damaged_value_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let defs = Definitions::open(&dir.path().join("definitions.redb")).unwrap();
        let key = codec::entity_key("/", "bad");
        defs.write(|txn| {
            txn.open_table(POLICIES)?.insert(key.as_slice(), br#"{"pattern":"x"}"#.as_slice())?;
            Ok(())
        })
        .unwrap();
        assert!(matches!(defs.load(), Err(DefinitionsError::Corrupt(_))));
    }
}
