//! Typed model of the spec JSON (classes, methods, arguments, constants).

use serde_json::Value;

pub struct Spec {
    pub port: u16,
    pub constants: Vec<Constant>,
    /// Sorted by class id.
    pub classes: Vec<Class>,
}

pub struct Constant {
    /// Rust name (`FRAME_METHOD`).
    pub name: String,
    /// Name as the spec spells it (`FRAME-METHOD`).
    pub spec_name: String,
    pub value: u64,
    pub class: Option<String>,
}

pub struct Class {
    pub id: u16,
    pub name: String,
    /// Sorted by method id.
    pub methods: Vec<MethodDef>,
}

pub struct MethodDef {
    pub id: u16,
    pub name: String,
    pub synchronous: bool,
    pub content: bool,
    pub args: Vec<Arg>,
}

pub struct Arg {
    /// Rust field name (snake_case; `type` becomes `kind`).
    pub field: String,
    /// Name as the spec spells it (`routing-key`).
    pub spec_name: String,
    /// The spec domain the argument is declared with, if not a plain type.
    pub domain: Option<String>,
    pub ty: ArgType,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ArgType {
    Bit,
    Octet,
    Short,
    Long,
    LongLong,
    ShortStr,
    LongStr,
    Table,
    Timestamp,
}

impl ArgType {
    fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "bit" => ArgType::Bit,
            "octet" => ArgType::Octet,
            "short" => ArgType::Short,
            "long" => ArgType::Long,
            "longlong" => ArgType::LongLong,
            "shortstr" => ArgType::ShortStr,
            "longstr" => ArgType::LongStr,
            "table" => ArgType::Table,
            "timestamp" => ArgType::Timestamp,
            other => return Err(format!("unknown argument type {other:?}")),
        })
    }

    /// The spec's name of the type.
    pub fn spec(self) -> &'static str {
        match self {
            ArgType::Bit => "bit",
            ArgType::Octet => "octet",
            ArgType::Short => "short",
            ArgType::Long => "long",
            ArgType::LongLong => "longlong",
            ArgType::ShortStr => "shortstr",
            ArgType::LongStr => "longstr",
            ArgType::Table => "table",
            ArgType::Timestamp => "timestamp",
        }
    }

    pub fn rust(self) -> &'static str {
        match self {
            ArgType::Bit => "bool",
            ArgType::Octet => "u8",
            ArgType::Short => "u16",
            ArgType::Long => "u32",
            ArgType::LongLong | ArgType::Timestamp => "u64",
            ArgType::ShortStr => "ShortStr",
            ArgType::LongStr => "Bytes",
            ArgType::Table => "FieldTable",
        }
    }
}

/// `declare-ok` -> `DeclareOk`.
pub fn camel(name: &str) -> String {
    name.split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

/// Rust field name for a spec argument name.
fn field_name(name: &str) -> Result<String, String> {
    let snake = name.replace('-', "_");
    match snake.as_str() {
        "type" => Ok("kind".into()),
        "as" | "break" | "const" | "continue" | "crate" | "else" | "enum" | "extern" | "false" | "fn"
        | "for" | "if" | "impl" | "in" | "let" | "loop" | "match" | "mod" | "move" | "mut" | "pub"
        | "ref" | "return" | "self" | "static" | "struct" | "super" | "trait" | "true" | "unsafe" | "use"
        | "where" | "while" | "async" | "await" | "dyn" => {
            Err(format!("argument name {name:?} is a Rust keyword; add a rename"))
        }
        _ => Ok(snake),
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> Result<&'a str, String> {
    v.get(key).and_then(Value::as_str).ok_or_else(|| format!("missing string {key:?} in {v}"))
}

fn u16_of(v: &Value, key: &str) -> Result<u16, String> {
    v.get(key)
        .and_then(Value::as_u64)
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| format!("missing u16 {key:?} in {v}"))
}

fn array_of<'a>(v: &'a Value, key: &str) -> Result<&'a [Value], String> {
    v.get(key).and_then(Value::as_array).map(Vec::as_slice).ok_or_else(|| format!("missing array {key:?}"))
}

impl Spec {
    pub fn parse(text: &str) -> Result<Spec, String> {
        let root: Value = serde_json::from_str(text).map_err(|e| format!("spec JSON: {e}"))?;
        let domains: Vec<(String, String)> = array_of(&root, "domains")?
            .iter()
            .map(|d| match d.as_array().map(Vec::as_slice) {
                Some([Value::String(n), Value::String(t)]) => Ok((n.clone(), t.clone())),
                _ => Err(format!("bad domain {d}")),
            })
            .collect::<Result<_, String>>()?;
        let resolve = |arg: &Value| -> Result<ArgType, String> {
            if let Some(t) = arg.get("type").and_then(Value::as_str) {
                return ArgType::parse(t);
            }
            let d = str_of(arg, "domain")?;
            let (_, t) =
                domains.iter().find(|(n, _)| n == d).ok_or_else(|| format!("unknown domain {d:?}"))?;
            ArgType::parse(t)
        };
        let constants = array_of(&root, "constants")?
            .iter()
            .map(|c| {
                let spec_name = str_of(c, "name")?;
                Ok(Constant {
                    name: spec_name.replace('-', "_"),
                    spec_name: spec_name.to_string(),
                    value: c
                        .get("value")
                        .and_then(Value::as_u64)
                        .ok_or_else(|| format!("bad constant {c}"))?,
                    class: c.get("class").and_then(Value::as_str).map(String::from),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let mut classes = array_of(&root, "classes")?
            .iter()
            .map(|c| {
                let mut methods = array_of(c, "methods")?
                    .iter()
                    .map(|m| {
                        let args = array_of(m, "arguments")?
                            .iter()
                            .map(|a| {
                                let name = str_of(a, "name")?;
                                Ok(Arg {
                                    field: field_name(name)?,
                                    spec_name: name.to_string(),
                                    domain: a.get("domain").and_then(Value::as_str).map(String::from),
                                    ty: resolve(a)?,
                                })
                            })
                            .collect::<Result<Vec<_>, String>>()?;
                        let flag = |k| m.get(k).and_then(Value::as_bool).unwrap_or(false);
                        Ok(MethodDef {
                            id: u16_of(m, "id")?,
                            name: str_of(m, "name")?.to_string(),
                            synchronous: flag("synchronous"),
                            content: flag("content"),
                            args,
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                methods.sort_by_key(|m| m.id);
                Ok(Class { id: u16_of(c, "id")?, name: str_of(c, "name")?.to_string(), methods })
            })
            .collect::<Result<Vec<_>, String>>()?;
        classes.sort_by_key(|c| c.id);
        Ok(Spec { port: u16_of(&root, "port")?, constants, classes })
    }
}

impl Class {
    pub fn const_name(&self) -> String {
        format!("CLASS_{}", self.name.to_ascii_uppercase().replace('-', "_"))
    }
}

impl MethodDef {
    pub fn struct_name(&self, class: &Class) -> String {
        camel(&class.name) + &camel(&self.name)
    }

    pub fn full_name(&self, class: &Class) -> String {
        format!("{}.{}", class.name, self.name)
    }
}
