//! Proptest strategies for short strings, long strings, field values and tables: for this
//! crate's property tests and, with the `proptest` feature, those of crates built on it.

use bytes::Bytes;
use proptest::prelude::*;

use crate::{FieldTable, FieldValue, ShortStr};

/// Short strings of up to 63 characters.
pub fn arb_shortstr() -> impl Strategy<Value = ShortStr> {
    // At most 63 chars of up to 4 bytes: always fits in 255 bytes.
    "\\PC{0,63}".prop_map(ShortStr::from)
}

/// Long strings of up to 63 bytes.
pub fn arb_longstr() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}

fn arb_leaf() -> impl Strategy<Value = FieldValue> {
    prop_oneof![
        any::<bool>().prop_map(FieldValue::Bool),
        any::<i8>().prop_map(FieldValue::I8),
        any::<u8>().prop_map(FieldValue::U8),
        any::<i16>().prop_map(FieldValue::I16),
        any::<u16>().prop_map(FieldValue::U16),
        any::<i32>().prop_map(FieldValue::I32),
        any::<u32>().prop_map(FieldValue::U32),
        any::<i64>().prop_map(FieldValue::I64),
        any::<f32>().prop_filter("NaN != NaN", |f| !f.is_nan()).prop_map(FieldValue::F32),
        any::<f64>().prop_filter("NaN != NaN", |f| !f.is_nan()).prop_map(FieldValue::F64),
        (any::<u8>(), any::<u32>()).prop_map(|(scale, value)| FieldValue::Decimal { scale, value }),
        arb_longstr().prop_map(FieldValue::LongStr),
        any::<u64>().prop_map(FieldValue::Timestamp),
        Just(FieldValue::Void),
        arb_longstr().prop_map(FieldValue::ByteArray),
    ]
}

/// Field values of every type, nested a few levels.
pub fn arb_value() -> impl Strategy<Value = FieldValue> {
    arb_leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(FieldValue::Array),
            proptest::collection::vec((arb_shortstr(), inner), 0..8)
                .prop_map(|e| FieldValue::Table(FieldTable(e))),
        ]
    })
}

/// Arbitrary nested table (keys may repeat: order and duplicates are preserved on the wire).
/// Field tables of such values.
pub fn arb_table() -> impl Strategy<Value = FieldTable> {
    proptest::collection::vec((arb_shortstr(), arb_value()), 0..8).prop_map(FieldTable)
}
