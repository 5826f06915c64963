//! Byte encodings of the definitions tables' keys and values.
//!
//! Keys of more than one component are order-preserving tuples: each string is written with its
//! `0x00` bytes escaped as `00 FF` and ends with `00 01`, so comparing two encoded keys byte by
//! byte compares their components in turn, and every key of a vhost (or of a binding source or
//! destination) shares a prefix that a range scan can find. A binding key ends with its arguments
//! in the AMQP field-table wire encoding, unescaped: it is always the last component.
//!
//! Values are compact: a flags byte, strings and byte strings with a LEB128 length, and argument
//! tables in the AMQP field-table wire encoding, so every field type round-trips byte for byte.
//! Decoding is strict: unknown flag bits, short input and trailing bytes are all [`Corrupt`].
//!
//! [`Corrupt`]: super::DefinitionsError::Corrupt

use bytes::{Bytes, BytesMut};
use warren_message::FieldTable;

use super::{BindingDef, DefinitionsError, ExchangeDef, QueueDef, UserDef};

/// Ends a string component of a key.
const END: [u8; 2] = [0x00, 0x01];
/// Stands for a `0x00` byte inside a string component.
const ESCAPED_ZERO: [u8; 2] = [0x00, 0xFF];

/// Binding destination kinds, as written in binding keys.
const DEST_EXCHANGE: u8 = b'e';
const DEST_QUEUE: u8 = b'q';

const EXCHANGE_DURABLE: u8 = 1;
const EXCHANGE_AUTO_DELETE: u8 = 1 << 1;
const EXCHANGE_INTERNAL: u8 = 1 << 2;
const QUEUE_DURABLE: u8 = 1;
const QUEUE_AUTO_DELETE: u8 = 1 << 1;
const USER_LOOPBACK_ONLY: u8 = 1;

fn corrupt(what: impl Into<String>) -> DefinitionsError {
    DefinitionsError::Corrupt(what.into())
}

// ---- keys -------------------------------------------------------------------------------------

/// Appends one string component of a key.
fn put_component(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        if b == 0 {
            out.extend_from_slice(&ESCAPED_ZERO);
        } else {
            out.push(b);
        }
    }
    out.extend_from_slice(&END);
}

/// The key prefix shared by everything in `vhost` (and, for exchanges and queues, their key).
pub(super) fn vhost_prefix(vhost: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(vhost.len() + 2);
    put_component(&mut key, vhost);
    key
}

/// The key of an exchange or a queue.
pub(super) fn entity_key(vhost: &str, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(vhost.len() + name.len() + 4);
    put_component(&mut key, vhost);
    put_component(&mut key, name);
    key
}

/// The prefix of the keys of every binding whose source is `source` (in the bindings table).
pub(super) fn binding_source_prefix(vhost: &str, source: &str) -> Vec<u8> {
    entity_key(vhost, source)
}

/// The prefix of the keys of every binding whose destination is this (in the by-destination table).
pub(super) fn binding_destination_prefix(vhost: &str, destination: &str, is_queue: bool) -> Vec<u8> {
    let mut key = vhost_prefix(vhost);
    key.push(dest_kind(is_queue));
    put_component(&mut key, destination);
    key
}

fn dest_kind(is_queue: bool) -> u8 {
    if is_queue {
        DEST_QUEUE
    } else {
        DEST_EXCHANGE
    }
}

/// The key of a binding in the bindings table: vhost, source, destination kind, destination,
/// routing key, arguments.
pub(super) fn binding_key(def: &BindingDef) -> Vec<u8> {
    let mut key = entity_key(&def.vhost, &def.source);
    key.push(dest_kind(def.destination_is_queue));
    put_component(&mut key, &def.destination);
    put_component(&mut key, &def.routing_key);
    put_arguments(&mut key, &def.arguments);
    key
}

/// The key of a binding in the by-destination table: vhost, destination kind, destination,
/// source, routing key, arguments.
pub(super) fn binding_destination_key(def: &BindingDef) -> Vec<u8> {
    let mut key = binding_destination_prefix(&def.vhost, &def.destination, def.destination_is_queue);
    put_component(&mut key, &def.source);
    put_component(&mut key, &def.routing_key);
    put_arguments(&mut key, &def.arguments);
    key
}

/// The first key after every key that starts with `prefix`, for an exclusive range end; `None`
/// when there is none (the prefix is empty or all `0xFF`).
pub(super) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Reads the components of keys, front to back.
struct KeyReader<'a> {
    buf: &'a [u8],
}

impl<'a> KeyReader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        KeyReader { buf }
    }

    fn component(&mut self) -> Result<String, DefinitionsError> {
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            match self.buf.get(i) {
                None => return Err(corrupt("key component has no end")),
                Some(0) => match self.buf.get(i + 1) {
                    Some(0x01) => break,
                    Some(0xFF) => {
                        out.push(0);
                        i += 2;
                    }
                    _ => return Err(corrupt("bad escape in key component")),
                },
                Some(&b) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        self.buf = &self.buf[i + 2..];
        String::from_utf8(out).map_err(|_| corrupt("key component is not UTF-8"))
    }

    fn dest_kind(&mut self) -> Result<bool, DefinitionsError> {
        let (&kind, rest) = self.buf.split_first().ok_or_else(|| corrupt("binding key has no kind"))?;
        self.buf = rest;
        match kind {
            DEST_QUEUE => Ok(true),
            DEST_EXCHANGE => Ok(false),
            _ => Err(corrupt(format!("unknown binding destination kind {kind:#04x}"))),
        }
    }

    /// The rest of the key: an argument table.
    fn arguments(self) -> Result<FieldTable, DefinitionsError> {
        decode_arguments(self.buf)
    }

    fn finish(self) -> Result<(), DefinitionsError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(corrupt("trailing bytes in key"))
        }
    }
}

/// The vhost and name of an exchange or queue key.
pub(super) fn decode_entity_key(key: &[u8]) -> Result<(String, String), DefinitionsError> {
    let mut r = KeyReader::new(key);
    let vhost = r.component()?;
    let name = r.component()?;
    r.finish()?;
    Ok((vhost, name))
}

/// A binding from its key in the bindings table.
pub(super) fn decode_binding_key(key: &[u8]) -> Result<BindingDef, DefinitionsError> {
    let mut r = KeyReader::new(key);
    let vhost = r.component()?;
    let source = r.component()?;
    let destination_is_queue = r.dest_kind()?;
    let destination = r.component()?;
    let routing_key = r.component()?;
    let arguments = r.arguments()?;
    Ok(BindingDef { vhost, source, destination, destination_is_queue, routing_key, arguments })
}

/// A binding from its key in the by-destination table.
pub(super) fn decode_binding_destination_key(key: &[u8]) -> Result<BindingDef, DefinitionsError> {
    let mut r = KeyReader::new(key);
    let vhost = r.component()?;
    let destination_is_queue = r.dest_kind()?;
    let destination = r.component()?;
    let source = r.component()?;
    let routing_key = r.component()?;
    let arguments = r.arguments()?;
    Ok(BindingDef { vhost, source, destination, destination_is_queue, routing_key, arguments })
}

/// The `N` string components of a key.
pub(super) fn decode_components<const N: usize>(key: &[u8]) -> Result<[String; N], DefinitionsError> {
    let mut r = KeyReader::new(key);
    let mut out: [String; N] = std::array::from_fn(|_| String::new());
    for slot in &mut out {
        *slot = r.component()?;
    }
    r.finish()?;
    Ok(out)
}

/// A single-component key (a vhost or user name): the name itself.
pub(super) fn decode_name_key(key: &[u8]) -> Result<String, DefinitionsError> {
    std::str::from_utf8(key).map(str::to_owned).map_err(|_| corrupt("name key is not UTF-8"))
}

// ---- values -----------------------------------------------------------------------------------

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

#[cfg(test)]
fn put_strings(out: &mut Vec<u8>, items: &[String]) {
    put_varint(out, items.len() as u64);
    for s in items {
        put_bytes(out, s.as_bytes());
    }
}

fn put_arguments(out: &mut Vec<u8>, arguments: &FieldTable) {
    let mut buf = BytesMut::with_capacity(arguments.encoded_len());
    arguments.encode(&mut buf);
    out.extend_from_slice(&buf);
}

/// Decodes a whole buffer as one argument table.
fn decode_arguments(buf: &[u8]) -> Result<FieldTable, DefinitionsError> {
    let mut bytes = Bytes::copy_from_slice(buf);
    let table = FieldTable::decode(&mut bytes).map_err(|e| corrupt(format!("arguments: {e}")))?;
    if !bytes.is_empty() {
        return Err(corrupt("trailing bytes after arguments"));
    }
    Ok(table)
}

/// Reads values, front to back.
struct ValueReader<'a> {
    buf: &'a [u8],
}

impl<'a> ValueReader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        ValueReader { buf }
    }

    fn u8(&mut self) -> Result<u8, DefinitionsError> {
        let (&b, rest) = self.buf.split_first().ok_or_else(|| corrupt("value too short"))?;
        self.buf = rest;
        Ok(b)
    }

    /// A flags byte with no bits outside `known`.
    fn flags(&mut self, known: u8) -> Result<u8, DefinitionsError> {
        let flags = self.u8()?;
        if flags & !known != 0 {
            return Err(corrupt(format!("unknown flags {flags:#04x}")));
        }
        Ok(flags)
    }

    fn varint(&mut self) -> Result<u64, DefinitionsError> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            let bits = u64::from(b & 0x7F);
            if shift == 63 && bits > 1 {
                return Err(corrupt("length overflows"));
            }
            n |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(corrupt("length overflows"))
    }

    /// A length that fits in what is left of the value.
    fn len(&mut self) -> Result<usize, DefinitionsError> {
        let n = self.varint()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.buf.len() => Ok(n),
            _ => Err(corrupt("length past the end of the value")),
        }
    }

    fn bytes(&mut self) -> Result<&'a [u8], DefinitionsError> {
        let n = self.len()?;
        let (b, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(b)
    }

    fn string(&mut self) -> Result<String, DefinitionsError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| corrupt("string is not UTF-8"))
    }

    fn strings(&mut self) -> Result<Vec<String>, DefinitionsError> {
        // Each string takes at least one byte, which bounds the count by what is left.
        let count = self.len()?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(self.string()?);
        }
        Ok(items)
    }

    fn arguments(self) -> Result<FieldTable, DefinitionsError> {
        decode_arguments(self.buf)
    }

    fn finish(self) -> Result<(), DefinitionsError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(corrupt("trailing bytes in value"))
        }
    }
}

fn flag(set: bool, bit: u8) -> u8 {
    if set {
        bit
    } else {
        0
    }
}

/// A user's value: flags, password hash, tags, vhosts (its name is the key).
/// Format 1's user value (flags, password hash, tags, the vhosts it may use), written only by
/// tests of the migration.
#[cfg(test)]
pub(super) fn encode_user_format_1(hash: &[u8], tags: &[String], vhosts: &[String]) -> Vec<u8> {
    let mut out = vec![0];
    put_bytes(&mut out, hash);
    put_strings(&mut out, tags);
    put_strings(&mut out, vhosts);
    out
}

/// A format 1 user (its SHA-256 hash, tags) and the vhosts it could use.
pub(super) fn decode_user_format_1(
    name: String,
    value: &[u8],
) -> Result<(UserDef, Vec<String>), DefinitionsError> {
    let mut r = ValueReader::new(value);
    // Bit 0 was "loopback only", now the broker's loopback_users setting alone decides.
    r.flags(USER_LOOPBACK_ONLY)?;
    let password_hash = r.bytes()?.to_vec();
    let tags = r.strings()?;
    let vhosts = r.strings()?;
    r.finish()?;
    let hashing_algorithm = "rabbit_password_hashing_sha256".to_owned();
    Ok((UserDef { name, password_hash, hashing_algorithm, tags, limits: Default::default() }, vhosts))
}

/// An exchange's value: flags, type, arguments (its vhost and name are the key).
pub(super) fn encode_exchange(def: &ExchangeDef) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + def.kind.len() + def.arguments.encoded_len());
    out.push(
        flag(def.durable, EXCHANGE_DURABLE)
            | flag(def.auto_delete, EXCHANGE_AUTO_DELETE)
            | flag(def.internal, EXCHANGE_INTERNAL),
    );
    put_bytes(&mut out, def.kind.as_bytes());
    put_arguments(&mut out, &def.arguments);
    out
}

pub(super) fn decode_exchange(
    vhost: String,
    name: String,
    value: &[u8],
) -> Result<ExchangeDef, DefinitionsError> {
    let mut r = ValueReader::new(value);
    let flags = r.flags(EXCHANGE_DURABLE | EXCHANGE_AUTO_DELETE | EXCHANGE_INTERNAL)?;
    let kind = r.string()?;
    let arguments = r.arguments()?;
    Ok(ExchangeDef {
        vhost,
        name,
        kind,
        durable: flags & EXCHANGE_DURABLE != 0,
        auto_delete: flags & EXCHANGE_AUTO_DELETE != 0,
        internal: flags & EXCHANGE_INTERNAL != 0,
        arguments,
    })
}

/// A queue's value: flags, arguments (its vhost and name are the key).
pub(super) fn encode_queue(def: &QueueDef) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + def.arguments.encoded_len());
    out.push(flag(def.durable, QUEUE_DURABLE) | flag(def.auto_delete, QUEUE_AUTO_DELETE));
    put_arguments(&mut out, &def.arguments);
    out
}

pub(super) fn decode_queue(vhost: String, name: String, value: &[u8]) -> Result<QueueDef, DefinitionsError> {
    let mut r = ValueReader::new(value);
    let flags = r.flags(QUEUE_DURABLE | QUEUE_AUTO_DELETE)?;
    let arguments = r.arguments()?;
    Ok(QueueDef {
        vhost,
        name,
        durable: flags & QUEUE_DURABLE != 0,
        auto_delete: flags & QUEUE_AUTO_DELETE != 0,
        arguments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_message::FieldValue;

    fn binding(source: &str, destination: &str, is_queue: bool, rk: &str) -> BindingDef {
        BindingDef {
            vhost: "v\0h".into(),
            source: source.into(),
            destination: destination.into(),
            destination_is_queue: is_queue,
            routing_key: rk.into(),
            arguments: FieldTable(vec![("x".into(), FieldValue::I32(-7))]),
        }
    }

    #[test]
    fn definitions_key_components_keep_tuple_order() {
        let names = ["", "\0", "\0\0", "\u{1}", "a", "a\0", "a\0b", "a\u{1}", "ab", "b", "\u{ff}"];
        let mut pairs = Vec::new();
        for v in names {
            for n in names {
                pairs.push((v.to_string(), n.to_string()));
            }
        }
        let mut by_key = pairs.clone();
        by_key.sort_by_key(|(v, n)| entity_key(v, n));
        pairs.sort();
        assert_eq!(by_key, pairs);
        for (v, n) in &pairs {
            let key = entity_key(v, n);
            assert!(key.starts_with(&vhost_prefix(v)));
            assert_eq!(decode_entity_key(&key).unwrap(), (v.clone(), n.clone()));
        }
    }

    #[test]
    fn definitions_binding_keys_round_trip_both_ways() {
        for def in [binding("s\0", "d", true, "r\0k"), binding("", "", false, "")] {
            let key = binding_key(&def);
            assert!(key.starts_with(&binding_source_prefix(&def.vhost, &def.source)));
            assert_eq!(decode_binding_key(&key).unwrap(), def);
            let rev = binding_destination_key(&def);
            assert!(rev.starts_with(&binding_destination_prefix(
                &def.vhost,
                &def.destination,
                def.destination_is_queue
            )));
            assert_eq!(decode_binding_destination_key(&rev).unwrap(), def);
        }
    }

    #[test]
    fn definitions_prefix_end_bounds_the_prefix() {
        assert_eq!(prefix_end(b"a\x00\x01"), Some(b"a\x00\x02".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn definitions_varint_lengths_round_trip() {
        for n in [0u64, 1, 127, 128, 300, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, n);
            let mut r = ValueReader::new(&out);
            assert_eq!(r.varint().unwrap(), n);
            r.finish().unwrap();
        }
        // Eleven continuation bytes, and a tenth byte with bits past 64.
        assert!(ValueReader::new(&[0xFF; 11]).varint().is_err());
        let mut over = vec![0xFF; 9];
        over.push(0x02);
        assert!(ValueReader::new(&over).varint().is_err());
    }

    /// Every truncation and every single-byte change of valid encodings decodes to a value or an
    /// error, never a panic.
    #[test]
    fn definitions_decoders_do_not_panic_on_damaged_input() {
        let args = FieldTable(vec![
            ("a".into(), FieldValue::Array(vec![FieldValue::LongStr("s".into()), FieldValue::Void])),
            ("t".into(), FieldValue::Table(FieldTable(vec![("n".into(), FieldValue::I64(-1))]))),
        ]);
        let exchange = ExchangeDef {
            vhost: "/".into(),
            name: "x".into(),
            kind: "topic".into(),
            durable: true,
            auto_delete: false,
            internal: true,
            arguments: args.clone(),
        };
        let queue = QueueDef {
            vhost: "/".into(),
            name: "q".into(),
            durable: true,
            auto_delete: true,
            arguments: args,
        };
        let b = binding("x", "q", true, "#");
        let samples: Vec<(Vec<u8>, u8)> = vec![
            (encode_user_format_1(&[1, 2, 3, 0], &["administrator".into(), "".into()], &["/".into()]), 0),
            (encode_exchange(&exchange), 1),
            (encode_queue(&queue), 2),
            (binding_key(&b), 3),
            (binding_destination_key(&b), 4),
            (entity_key("/", "q"), 5),
        ];
        let decode = |buf: &[u8], which: u8| match which {
            0 => decode_user_format_1("u".into(), buf).map(|_| ()),
            1 => decode_exchange("/".into(), "x".into(), buf).map(|_| ()),
            2 => decode_queue("/".into(), "q".into(), buf).map(|_| ()),
            3 => decode_binding_key(buf).map(|_| ()),
            4 => decode_binding_destination_key(buf).map(|_| ()),
            _ => decode_entity_key(buf).map(|_| ()),
        };
        for (valid, which) in samples {
            decode(&valid, which).unwrap();
            for len in 0..valid.len() {
                assert!(decode(&valid[..len], which).is_err(), "truncated to {len}: {which}");
            }
            let mut extended = valid.clone();
            extended.push(0);
            // A key's arguments or a value's arguments end the encoding: trailing bytes are caught.
            assert!(decode(&extended, which).is_err());
            for i in 0..valid.len() {
                for x in [0x00, 0x01, 0x7F, 0x80, 0xFF] {
                    let mut damaged = valid.clone();
                    damaged[i] = x;
                    let _ = decode(&damaged, which);
                }
            }
        }
    }
}
