//! The hash RabbitMQ's management plugin names a binding's arguments by in its
//! `properties_key` (`rabbit_mgmt_format:args_hash/1`): `erlang:phash2(Args, 1 bsl 32)` of the
//! arguments as RabbitMQ stores them, a list of `{Name, Type, Value}` sorted by name
//! (`rabbit_misc:sort_field_table`, applied when a binding is added).

use warren_message::FieldTable;

use super::consistent_hash::typed_value;
use super::erlang_hash::{phash2_32, Term};

/// The 32-bit hash of a binding's arguments, as RabbitMQ computes it.
pub fn binding_args_hash(args: &FieldTable) -> u32 {
    let mut entries: Vec<_> = args.iter().collect();
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let terms = entries
        .into_iter()
        .map(|(name, value)| {
            let (tag, v) = typed_value(value);
            Term::Tuple(vec![Term::Binary(name.as_bytes()), Term::Atom(tag), v])
        })
        .collect();
    phash2_32(&Term::List(terms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_message::{FieldValue, ShortStr};

    fn table(entries: &[(&str, FieldValue)]) -> FieldTable {
        let mut t = FieldTable::new();
        for (k, v) in entries {
            t.insert(ShortStr::from(*k), v.clone());
        }
        t
    }

    /// Values read from RabbitMQ 3.10.8's `properties_key` for bindings made over its API
    /// (`k~9nmLZQ`, `k~GTPt3A`: the base64url of the hash's four bytes).
    #[test]
    fn matches_rabbitmq_for_bindings_made_over_its_api() {
        assert_eq!(binding_args_hash(&table(&[("x", FieldValue::I64(1))])), 0xf679_8b65);
        let two = [("x", FieldValue::I64(1)), ("s", FieldValue::LongStr(b"v".to_vec().into()))];
        assert_eq!(binding_args_hash(&table(&two)), 0x1933_eddc);
    }
}
