//! Emits `generated/methods.rs`: one struct per method plus the `Method` enum.

use std::fmt::Write;

use super::spec::{Arg, ArgType, Class, MethodDef, Spec};

fn all(spec: &Spec) -> impl Iterator<Item = (&Class, &MethodDef)> {
    spec.classes.iter().flat_map(|c| c.methods.iter().map(move |m| (c, m)))
}

pub fn emit(spec: &Spec) -> String {
    let mut s = String::new();
    s.push_str(
        "//! Method argument structs and the `Method` enum.\n\n\
         use bytes::{BufMut, Bytes, BytesMut};\n\n\
         use crate::codec::{get_longstr, get_shortstr, get_u16, get_u32, get_u64, get_u8, put_longstr, put_shortstr};\n\
         use crate::{DecodeError, FieldTable, ShortStr};\n\n",
    );
    for (class, m) in all(spec) {
        emit_struct(&mut s, class, m);
    }
    emit_enum(&mut s, spec);
    s
}

/// Arguments grouped so that consecutive bits share an octet (at most 8 each).
enum Group<'a> {
    Single(&'a str, ArgType),
    Bits(Vec<&'a str>),
}

fn groups(m: &MethodDef) -> Vec<Group<'_>> {
    let mut out: Vec<Group> = Vec::new();
    for a in &m.args {
        if a.ty == ArgType::Bit {
            if let Some(Group::Bits(b)) = out.last_mut() {
                if b.len() < 8 {
                    b.push(&a.field);
                    continue;
                }
            }
            out.push(Group::Bits(vec![&a.field]));
        } else {
            out.push(Group::Single(&a.field, a.ty));
        }
    }
    out
}

/// The methods of `class` that answer the synchronous request `m` (`{name}-ok`, and
/// `get-empty` for `basic.get`).
fn replies<'a>(class: &'a Class, m: &MethodDef) -> Vec<&'a MethodDef> {
    let names = [format!("{}-ok", m.name), format!("{}-empty", m.name)];
    class.methods.iter().filter(|r| names.contains(&r.name)).collect()
}

/// The synchronous request of `class` that `m` answers, if `m` is a reply.
fn request_of<'a>(class: &'a Class, m: &MethodDef) -> Option<&'a MethodDef> {
    let base = m.name.strip_suffix("-ok").or_else(|| m.name.strip_suffix("-empty"))?;
    class.methods.iter().find(|r| r.name == base && r.synchronous)
}

/// Doc lines of a method struct: its spec name and ids, then what the spec says of its
/// exchange (content, synchronous request, reply).
fn struct_doc(s: &mut String, class: &Class, m: &MethodDef) {
    let _ = writeln!(s, "/// `{}` (class {}, method {}).", m.full_name(class), class.id, m.id);
    if m.content {
        s.push_str("///\n/// Carries content: a content header frame and body frames follow it.\n");
    }
    if m.synchronous {
        let names: Vec<String> =
            replies(class, m).iter().map(|r| format!("`{}`", r.full_name(class))).collect();
        if names.is_empty() {
            s.push_str("///\n/// Synchronous: the peer answers before the channel goes on.\n");
        } else {
            let _ = writeln!(s, "///\n/// Synchronous: the peer answers with {}.", names.join(" or "));
        }
    }
    if let Some(request) = request_of(class, m) {
        let _ = writeln!(s, "///\n/// The answer to `{}`.", request.full_name(class));
    }
}

/// Doc line of an argument: its spec name and domain or type.
fn field_doc(a: &Arg) -> String {
    match &a.domain {
        Some(d) if d != a.ty.spec() => format!("/// `{}` (domain `{d}`: `{}`).", a.spec_name, a.ty.spec()),
        _ => format!("/// `{}` (`{}`).", a.spec_name, a.ty.spec()),
    }
}

fn emit_struct(s: &mut String, class: &Class, m: &MethodDef) {
    let name = m.struct_name(class);
    let full = m.full_name(class);
    struct_doc(s, class, m);
    s.push_str("#[derive(Clone, Debug, PartialEq, Default)]\n");
    if m.args.is_empty() {
        let _ = writeln!(s, "pub struct {name};\n");
    } else {
        let _ = writeln!(s, "pub struct {name} {{");
        for a in &m.args {
            let _ = writeln!(s, "    {}\n    pub {}: {},", field_doc(a), a.field, a.ty.rust());
        }
        s.push_str("}\n\n");
    }
    let _ = writeln!(s, "impl {name} {{");
    let _ = writeln!(s, "/// Class id of `{}`.\npub const CLASS_ID: u16 = {};", class.name, class.id);
    let _ = writeln!(s, "/// Method id of `{full}` within its class.\npub const METHOD_ID: u16 = {};", m.id);
    let _ = writeln!(s, "/// Spec name of the method.\npub const NAME: &'static str = \"{full}\";");
    // decode
    let buf = if m.args.is_empty() { "_buf" } else { "buf" };
    let _ = writeln!(
        s,
        "/// Decode the arguments (after class and method id).\n\
         pub fn decode_fields({buf}: &mut Bytes) -> Result<Self, DecodeError> {{"
    );
    for g in groups(m) {
        match g {
            Group::Single(f, ty) => {
                let read = match ty {
                    ArgType::Octet => "get_u8(buf)?",
                    ArgType::Short => "get_u16(buf)?",
                    ArgType::Long => "get_u32(buf)?",
                    ArgType::LongLong | ArgType::Timestamp => "get_u64(buf)?",
                    ArgType::ShortStr => "get_shortstr(buf)?",
                    ArgType::LongStr => "get_longstr(buf)?",
                    ArgType::Table => "FieldTable::decode(buf)?",
                    ArgType::Bit => unreachable!("bits are grouped"),
                };
                let _ = writeln!(s, "let {f} = {read};");
            }
            Group::Bits(bits) => {
                s.push_str("let bits = get_u8(buf)?;\n");
                for (i, f) in bits.iter().enumerate() {
                    let _ = writeln!(s, "let {f} = bits & {:#04x} != 0;", 1u8 << i);
                }
            }
        }
    }
    if m.args.is_empty() {
        s.push_str("Ok(Self)\n}\n");
    } else {
        let fields: Vec<&str> = m.args.iter().map(|a| a.field.as_str()).collect();
        let _ = writeln!(s, "Ok(Self {{ {} }})\n}}", fields.join(", "));
    }
    // encode
    let out = if m.args.is_empty() { "_out" } else { "out" };
    let _ = writeln!(
        s,
        "/// Encode the arguments (after class and method id).\n\
         pub fn encode_fields(&self, {out}: &mut BytesMut) {{"
    );
    for g in groups(m) {
        match g {
            Group::Single(f, ty) => {
                let _ = match ty {
                    ArgType::Octet => writeln!(s, "out.put_u8(self.{f});"),
                    ArgType::Short => writeln!(s, "out.put_u16(self.{f});"),
                    ArgType::Long => writeln!(s, "out.put_u32(self.{f});"),
                    ArgType::LongLong | ArgType::Timestamp => writeln!(s, "out.put_u64(self.{f});"),
                    ArgType::ShortStr => writeln!(s, "put_shortstr(out, &self.{f});"),
                    ArgType::LongStr => writeln!(s, "put_longstr(out, &self.{f});"),
                    ArgType::Table => writeln!(s, "self.{f}.encode(out);"),
                    ArgType::Bit => unreachable!("bits are grouped"),
                };
            }
            Group::Bits(bits) => {
                let parts: Vec<String> = bits
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        if i == 0 {
                            format!("u8::from(self.{f})")
                        } else {
                            format!("(u8::from(self.{f}) << {i})")
                        }
                    })
                    .collect();
                let _ = writeln!(s, "out.put_u8({});", parts.join(" | "));
            }
        }
    }
    s.push_str("}\n}\n\n");
    let _ = writeln!(
        s,
        "impl From<{name}> for Method {{ fn from(m: {name}) -> Self {{ Method::{name}(m) }} }}\n"
    );
}

fn emit_enum(s: &mut String, spec: &Spec) {
    s.push_str(
        "/// Any AMQP method; variant names equal the struct names.\n\
         #[derive(Clone, Debug, PartialEq)]\npub enum Method {\n",
    );
    for (c, m) in all(spec) {
        let n = m.struct_name(c);
        let _ = writeln!(s, "/// `{}`.\n{n}({n}),", m.full_name(c));
    }
    s.push_str("}\n\nimpl Method {\n");

    // decode
    s.push_str(
        "/// Decode a method frame payload (class id, method id, arguments).\n\
         /// The arguments must use the whole payload.\n\
         pub fn decode(mut payload: Bytes) -> Result<Method, DecodeError> {\n\
         let class_id = get_u16(&mut payload)?;\n\
         let method_id = get_u16(&mut payload)?;\n\
         let buf = &mut payload;\n\
         let method = match (class_id, method_id) {\n",
    );
    for (c, m) in all(spec) {
        let n = m.struct_name(c);
        let _ = writeln!(s, "({}, {}) => Method::{n}({n}::decode_fields(buf)?),", c.id, m.id);
    }
    let ids: Vec<String> = spec.classes.iter().map(|c| c.id.to_string()).collect();
    let _ = writeln!(
        s,
        "({}, _) => return Err(DecodeError::UnknownMethod {{ class_id, method_id }}),\n\
         _ => return Err(DecodeError::UnknownClass(class_id)),\n}};",
        ids.join(" | ")
    );
    s.push_str(
        "if !payload.is_empty() { return Err(DecodeError::TrailingBytes(payload.len())); }\n\
         Ok(method)\n}\n\n",
    );

    // encode
    s.push_str(
        "/// Write class id, method id and arguments (no frame envelope).\n\
         pub fn encode(&self, out: &mut BytesMut) {\n\
         out.put_u16(self.class_id());\nout.put_u16(self.method_id());\nmatch self {\n",
    );
    for (c, m) in all(spec) {
        let _ = writeln!(s, "Method::{}(m) => m.encode_fields(out),", m.struct_name(c));
    }
    s.push_str("}\n}\n\n");

    let simple = |s: &mut String, sig: &str, f: &dyn Fn(&Class, &MethodDef) -> String| {
        let _ = writeln!(s, "{sig} {{\nmatch self {{");
        for (c, m) in all(spec) {
            let _ = writeln!(s, "Method::{}(_) => {},", m.struct_name(c), f(c, m));
        }
        s.push_str("}\n}\n\n");
    };
    simple(
        s,
        "/// Class id, the first word of a method frame's payload.\npub fn class_id(&self) -> u16",
        &|c, _| c.id.to_string(),
    );
    simple(
        s,
        "/// Method id within the class, the second word of the payload.\npub fn method_id(&self) -> u16",
        &|_, m| m.id.to_string(),
    );
    simple(s, "/// Spec name, e.g. `\"basic.publish\"`.\npub fn name(&self) -> &'static str", &|c, m| {
        format!("\"{}\"", m.full_name(c))
    });

    let matches = |s: &mut String, sig: &str, pred: &dyn Fn(&MethodDef) -> bool| {
        let names: Vec<String> = all(spec)
            .filter(|(_, m)| pred(m))
            .map(|(c, m)| format!("Method::{}(_)", m.struct_name(c)))
            .collect();
        let _ = writeln!(s, "{sig} {{\nmatches!(self, {})\n}}\n", names.join(" | "));
    };
    matches(
        s,
        "/// Followed by a content header and body frames.\npub fn has_content(&self) -> bool",
        &|m| m.content,
    );
    matches(
        s,
        "/// A request the peer must answer with its `-ok` method (spec `synchronous`).\n\
         pub fn is_synchronous_request(&self) -> bool",
        &|m| m.synchronous,
    );
    s.push_str("}\n");
}
