//! Lossless text rendering of wire data that the transcripts compare:
//! content-header property lists, field tables and bodies.
//!
//! The renderer walks the raw bytes itself (it does not go through
//! `warren-protocol`'s decoder, so a codec bug cannot hide on both sides)
//! and prints every field with its type octet, in wire order, with exact
//! values (floats as bit patterns). Two renderings are equal exactly when
//! the bytes are equal, except where [`crate::differences::field_placeholder`]
//! replaces a value, or [`crate::differences::field_omitted`] leaves out an
//! entry, that differs for a documented reason.

use crate::differences;

/// Cursor over raw bytes; every read fails cleanly at the end.
struct Cur<'a> {
    buf: &'a [u8],
    pos: usize,
}

type R<T> = Result<T, String>;

impl<'a> Cur<'a> {
    fn new(buf: &'a [u8]) -> Cur<'a> {
        Cur { buf, pos: 0 }
    }
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return Err(format!("truncated at offset {} (need {n})", self.pos));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> R<u16> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> R<u32> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> R<u64> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn shortstr(&mut self) -> R<&'a [u8]> {
        let n = self.u8()? as usize;
        self.take(n)
    }
    fn longstr(&mut self) -> R<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
}

/// Quotes bytes: printable ASCII as is, `"` and `\` escaped, others `\xNN`.
pub fn quote(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for &b in bytes {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('"');
    s
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A message body: quoted in full up to 200 bytes, else length + checksum.
pub fn render_body(body: &[u8]) -> String {
    if body.len() <= 200 {
        quote(body)
    } else {
        // FNV-1a, enough to tell bodies apart in a transcript.
        let mut h: u64 = 0xcbf29ce484222325;
        for &b in body {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
        format!("<{} bytes, fnv1a {h:016x}>", body.len())
    }
}

fn value(c: &mut Cur<'_>, ty: u8, path: &mut Vec<String>, out: &mut String) -> R<()> {
    let start = c.pos;
    let mut rendered = String::new();
    match ty {
        b't' => rendered = format!("{}", c.u8()?),
        b'b' => rendered = format!("{}", c.u8()? as i8),
        b'B' => rendered = format!("{}", c.u8()?),
        b's' => rendered = format!("{}", c.u16()? as i16),
        b'u' => rendered = format!("{}", c.u16()?),
        b'I' => rendered = format!("{}", c.u32()? as i32),
        b'i' => rendered = format!("{}", c.u32()?),
        b'l' => rendered = format!("{}", c.u64()? as i64),
        b'L' => rendered = format!("{}", c.u64()?),
        b'f' => rendered = format!("bits:{:08x}", c.u32()?),
        b'd' => rendered = format!("bits:{:016x}", c.u64()?),
        b'D' => {
            let scale = c.u8()?;
            let v = c.u32()?;
            rendered = format!("{v}e-{scale}");
        }
        b'S' => rendered = quote(c.longstr()?),
        b'x' => rendered = format!("0x{}", hex(c.longstr()?)),
        b'T' => rendered = format!("{}", c.u64()?),
        b'V' => {}
        b'A' => {
            let n = c.u32()? as usize;
            let body = c.take(n)?;
            let mut a = Cur::new(body);
            rendered.push('[');
            let mut i = 0;
            while a.pos < body.len() {
                if i > 0 {
                    rendered.push_str(", ");
                }
                let t = a.u8()?;
                path.push(i.to_string());
                let r = value(&mut a, t, path, &mut rendered);
                path.pop();
                r?;
                i += 1;
            }
            rendered.push(']');
        }
        b'F' => {
            let n = c.u32()? as usize;
            let body = c.take(n)?;
            table_entries(body, path, &mut rendered)?;
        }
        other => return Err(format!("unknown field type {:?} at offset {start}", other as char)),
    }
    out.push(ty as char);
    out.push(':');
    match differences::field_placeholder(path, ty) {
        Some(p) => out.push_str(p),
        None => out.push_str(&rendered),
    }
    Ok(())
}

/// Renders the entries of a table (the bytes after its length prefix).
fn table_entries(body: &[u8], path: &mut Vec<String>, out: &mut String) -> R<()> {
    let mut c = Cur::new(body);
    out.push('{');
    let mut first = true;
    while c.pos < body.len() {
        let key = c.shortstr()?;
        let ty = c.u8()?;
        path.push(String::from_utf8_lossy(key).into_owned());
        let mut entry = String::new();
        let r = value(&mut c, ty, path, &mut entry);
        let omitted = differences::field_omitted(path);
        path.pop();
        r?;
        if omitted {
            continue;
        }
        if !first {
            out.push_str(", ");
        }
        first = false;
        out.push_str(&quote(key));
        out.push('=');
        out.push_str(&entry);
    }
    out.push('}');
    Ok(())
}

/// Renders a field table given as its entries (no length prefix) under a
/// named root (used for paths, e.g. `server-properties`).
pub fn render_table_entries(body: &[u8], root: &str) -> String {
    let mut out = String::new();
    let mut path = vec![root.to_string()];
    match table_entries(body, &mut path, &mut out) {
        Ok(()) => out,
        Err(e) => format!("<undecodable table: {e}; hex {}>", hex(body)),
    }
}

/// Renders the arguments of connection.start from their raw bytes, the
/// server-properties table losslessly (root `server-properties`).
pub fn render_connection_start(args: &[u8]) -> String {
    let r = (|| -> R<String> {
        let mut c = Cur::new(args);
        let major = c.u8()?;
        let minor = c.u8()?;
        let props = c.longstr()?;
        let mechanisms = c.longstr()?;
        let locales = c.longstr()?;
        let mut out = format!("version={major}-{minor} server-properties=");
        let mut path = vec!["server-properties".to_string()];
        table_entries(props, &mut path, &mut out)?;
        out.push_str(&format!(" mechanisms={} locales={}", quote(mechanisms), quote(locales)));
        if !c.rest().is_empty() {
            out.push_str(&format!(" trailing=0x{}", hex(c.rest())));
        }
        Ok(out)
    })();
    r.unwrap_or_else(|e| format!("<undecodable connection.start: {e}; hex {}>", hex(args)))
}

const PROPERTY_NAMES: [&str; 14] = [
    "content-type",
    "content-encoding",
    "headers",
    "delivery-mode",
    "priority",
    "correlation-id",
    "reply-to",
    "expiration",
    "message-id",
    "timestamp",
    "type",
    "user-id",
    "app-id",
    "cluster-id",
];

/// Renders the raw property bytes of a basic content header (flags +
/// property list) losslessly.
pub fn render_properties(raw: &[u8]) -> String {
    match try_properties(raw) {
        Ok(s) => s,
        Err(e) => format!("<undecodable properties: {e}; hex {}>", hex(raw)),
    }
}

fn try_properties(raw: &[u8]) -> R<String> {
    let mut c = Cur::new(raw);
    let mut flag_words = vec![c.u16()?];
    while flag_words.last().unwrap() & 1 == 1 {
        flag_words.push(c.u16()?);
    }
    let flags = flag_words[0];
    let mut out = format!("flags=0x{}", flag_words.iter().map(|w| format!("{w:04x}")).collect::<String>());
    for (i, name) in PROPERTY_NAMES.iter().enumerate() {
        if flags & (1 << (15 - i)) == 0 {
            continue;
        }
        out.push(' ');
        out.push_str(name);
        out.push('=');
        match *name {
            "headers" => {
                let body = c.longstr()?;
                let mut path = vec!["headers".to_string()];
                table_entries(body, &mut path, &mut out)?;
            }
            "delivery-mode" | "priority" => out.push_str(&c.u8()?.to_string()),
            "timestamp" => out.push_str(&c.u64()?.to_string()),
            _ => out.push_str(&quote(c.shortstr()?)),
        }
    }
    if !c.rest().is_empty() {
        out.push_str(&format!(" trailing=0x{}", hex(c.rest())));
    }
    Ok(out)
}

/// Encoder for raw property lists, so scenarios can send exactly the bytes
/// they mean (any field types, any order inside tables).
#[derive(Default, Clone)]
pub struct Props {
    fields: [Option<Vec<u8>>; 14],
}

fn short(s: &str) -> Vec<u8> {
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

impl Props {
    pub fn new() -> Props {
        Props::default()
    }
    fn set(mut self, i: usize, v: Vec<u8>) -> Props {
        self.fields[i] = Some(v);
        self
    }
    pub fn content_type(self, s: &str) -> Props {
        self.set(0, short(s))
    }
    pub fn content_encoding(self, s: &str) -> Props {
        self.set(1, short(s))
    }
    /// Headers given as an encoded table (see [`Table`]).
    pub fn headers(self, t: Table) -> Props {
        self.set(2, t.encode())
    }
    pub fn delivery_mode(self, v: u8) -> Props {
        self.set(3, vec![v])
    }
    pub fn priority(self, v: u8) -> Props {
        self.set(4, vec![v])
    }
    pub fn correlation_id(self, s: &str) -> Props {
        self.set(5, short(s))
    }
    pub fn reply_to(self, s: &str) -> Props {
        self.set(6, short(s))
    }
    pub fn expiration(self, s: &str) -> Props {
        self.set(7, short(s))
    }
    pub fn message_id(self, s: &str) -> Props {
        self.set(8, short(s))
    }
    pub fn timestamp(self, v: u64) -> Props {
        self.set(9, v.to_be_bytes().to_vec())
    }
    pub fn kind(self, s: &str) -> Props {
        self.set(10, short(s))
    }
    pub fn user_id(self, s: &str) -> Props {
        self.set(11, short(s))
    }
    pub fn app_id(self, s: &str) -> Props {
        self.set(12, short(s))
    }
    pub fn cluster_id(self, s: &str) -> Props {
        self.set(13, short(s))
    }
    pub fn encode(&self) -> Vec<u8> {
        let mut flags = 0u16;
        let mut list = Vec::new();
        for (i, f) in self.fields.iter().enumerate() {
            if let Some(v) = f {
                flags |= 1 << (15 - i);
                list.extend_from_slice(v);
            }
        }
        let mut out = flags.to_be_bytes().to_vec();
        out.extend(list);
        out
    }
}

/// Encoder for field tables with explicit value types.
#[derive(Default, Clone)]
pub struct Table {
    entries: Vec<u8>,
}

/// One encoded field value (type octet + value).
#[derive(Clone)]
pub struct Val(Vec<u8>);

impl Val {
    fn typed(t: u8, v: &[u8]) -> Val {
        let mut b = vec![t];
        b.extend_from_slice(v);
        Val(b)
    }
    pub fn bool(v: bool) -> Val {
        Val::typed(b't', &[v as u8])
    }
    pub fn i8(v: i8) -> Val {
        Val::typed(b'b', &v.to_be_bytes())
    }
    pub fn u8(v: u8) -> Val {
        Val::typed(b'B', &[v])
    }
    pub fn i16(v: i16) -> Val {
        Val::typed(b's', &v.to_be_bytes())
    }
    pub fn u16(v: u16) -> Val {
        Val::typed(b'u', &v.to_be_bytes())
    }
    pub fn i32(v: i32) -> Val {
        Val::typed(b'I', &v.to_be_bytes())
    }
    pub fn u32(v: u32) -> Val {
        Val::typed(b'i', &v.to_be_bytes())
    }
    pub fn i64(v: i64) -> Val {
        Val::typed(b'l', &v.to_be_bytes())
    }
    pub fn f32(v: f32) -> Val {
        Val::typed(b'f', &v.to_be_bytes())
    }
    pub fn f64(v: f64) -> Val {
        Val::typed(b'd', &v.to_be_bytes())
    }
    pub fn decimal(scale: u8, v: u32) -> Val {
        let mut b = vec![scale];
        b.extend_from_slice(&v.to_be_bytes());
        Val::typed(b'D', &b)
    }
    pub fn str(s: &str) -> Val {
        Val::bytes_str(s.as_bytes())
    }
    pub fn bytes_str(s: &[u8]) -> Val {
        let mut b = (s.len() as u32).to_be_bytes().to_vec();
        b.extend_from_slice(s);
        Val::typed(b'S', &b)
    }
    pub fn byte_array(s: &[u8]) -> Val {
        let mut b = (s.len() as u32).to_be_bytes().to_vec();
        b.extend_from_slice(s);
        Val::typed(b'x', &b)
    }
    pub fn timestamp(v: u64) -> Val {
        Val::typed(b'T', &v.to_be_bytes())
    }
    pub fn void() -> Val {
        Val(vec![b'V'])
    }
    pub fn array(items: Vec<Val>) -> Val {
        let inner: Vec<u8> = items.into_iter().flat_map(|v| v.0).collect();
        let mut b = (inner.len() as u32).to_be_bytes().to_vec();
        b.extend(inner);
        Val::typed(b'A', &b)
    }
    pub fn table(t: Table) -> Val {
        Val::typed(b'F', &t.encode())
    }
}

impl Table {
    pub fn new() -> Table {
        Table::default()
    }
    pub fn with(mut self, key: &str, v: Val) -> Table {
        self.entries.extend(short(key));
        self.entries.extend(v.0);
        self
    }
    /// Length-prefixed encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = (self.entries.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&self.entries);
        out
    }
    /// The same table as `warren-protocol`'s type, for method arguments.
    pub fn to_field_table(&self) -> warren_protocol::FieldTable {
        let mut b = bytes::Bytes::from(self.encode());
        warren_protocol::FieldTable::decode(&mut b).expect("Table encodes a valid field table")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_render_every_field_with_types() {
        let raw = Props::new()
            .content_type("text/plain")
            .headers(
                Table::new()
                    .with("a", Val::i32(-1))
                    .with("b", Val::array(vec![Val::str("x"), Val::bool(true)]))
                    .with("c", Val::table(Table::new().with("d", Val::f64(1.5)))),
            )
            .delivery_mode(2)
            .timestamp(7)
            .encode();
        assert_eq!(
            render_properties(&raw),
            "flags=0xb040 content-type=\"text/plain\" headers={\"a\"=I:-1, \"b\"=A:[S:\"x\", t:1], \
             \"c\"=F:{\"d\"=d:bits:3ff8000000000000}} delivery-mode=2 timestamp=7"
        );
    }

    #[test]
    fn broken_properties_fall_back_to_hex() {
        assert_eq!(
            render_properties(&[0x80, 0x00, 0x05]),
            "<undecodable properties: truncated at offset 3 (need 5); hex 800005>"
        );
        assert_eq!(render_properties(&[0x00, 0x00, 0x01]), "flags=0x0000 trailing=0x01");
    }

    #[test]
    fn table_roundtrips_through_warren_protocol() {
        let t = Table::new().with("x-max-length", Val::i64(3)).with("s", Val::str("v"));
        let ft = t.to_field_table();
        assert_eq!(ft.len(), 2);
    }
}
