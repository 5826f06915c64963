//! Emits `generated/arbitrary.rs`: a proptest strategy covering every method.

use std::fmt::Write;

use super::spec::{ArgType, Spec};

pub fn emit(spec: &Spec) -> String {
    let mut s = String::new();
    s.push_str(
        "//! Proptest strategy producing arbitrary instances of every method (test builds only).\n\n\
         use proptest::prelude::*;\nuse proptest::strategy::Union;\n\n\
         use crate::methods::*;\n\
         use crate::testing::{arb_longstr, arb_shortstr, arb_table};\n\n\
         pub(crate) fn arbitrary_method() -> impl Strategy<Value = Method> {\nUnion::new(vec![\n",
    );
    for c in &spec.classes {
        for m in &c.methods {
            let n = m.struct_name(c);
            if m.args.is_empty() {
                let _ = writeln!(s, "Just(Method::from({n})).boxed(),");
                continue;
            }
            let strategies: Vec<&str> = m
                .args
                .iter()
                .map(|a| match a.ty {
                    ArgType::Bit => "any::<bool>()",
                    ArgType::Octet => "any::<u8>()",
                    ArgType::Short => "any::<u16>()",
                    ArgType::Long => "any::<u32>()",
                    ArgType::LongLong | ArgType::Timestamp => "any::<u64>()",
                    ArgType::ShortStr => "arb_shortstr()",
                    ArgType::LongStr => "arb_longstr()",
                    ArgType::Table => "arb_table()",
                })
                .collect();
            let fields: Vec<&str> = m.args.iter().map(|a| a.field.as_str()).collect();
            let _ = writeln!(
                s,
                "({},).prop_map(|({},)| Method::from({n} {{ {} }})).boxed(),",
                strategies.join(", "),
                fields.join(", "),
                fields.join(", ")
            );
        }
    }
    s.push_str("])\n}\n");
    s
}
