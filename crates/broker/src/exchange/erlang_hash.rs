//! Erlang's portable term hash, `erlang:phash2/1`, bit for bit as OTP 25 computes it
//! (`make_hash2` in the emulator), for the kinds of term RabbitMQ builds from an AMQP message:
//! binaries, atoms, integers, floats, tuples and lists.
//!
//! RabbitMQ's consistent-hash exchange picks a queue from `phash2` of the routing key (a
//! binary) or of a header as RabbitMQ decodes it (a `{Type, Value}` tuple), so Warren has to
//! compute the very same number to place a key where RabbitMQ does. The algorithm is Bob
//! Jenkins' 96-bit mix (lookup2) applied term by term in depth-first order, each kind of term
//! salted with its own multiple of the golden ratio; the result keeps its low 27 bits.

/// A term to hash. Only what `phash2` needs: atoms by name, integers by value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Term<'a> {
    /// An atom; the name must be ASCII (every atom RabbitMQ puts in a header term is).
    Atom(&'static str),
    /// Any integer whose magnitude fits in 127 bits (AMQP's are at most 64-bit).
    Int(i128),
    Float(f64),
    Binary(&'a [u8]),
    Tuple(Vec<Term<'a>>),
    /// A proper list (ending in `[]`).
    List(Vec<Term<'a>>),
}

/// `erlang:phash2(Term)`: a value in `0..2^27`.
pub(crate) fn phash2(term: &Term<'_>) -> u32 {
    let mut hash = 0;
    hash_term(term, &mut hash);
    hash & PHASH2_MASK
}

/// `erlang:phash2(Term, 1 bsl 32)`: the whole 32-bit hash (RabbitMQ's management plugin names
/// a binding's arguments by it).
pub(crate) fn phash2_32(term: &Term<'_>) -> u32 {
    let mut hash = 0;
    hash_term(term, &mut hash);
    hash
}

/// `erlang:phash2(Binary)`, without building a [`Term`]: the routing-key case, once per message.
pub(crate) fn phash2_binary(bytes: &[u8]) -> u32 {
    let mut hash = 0;
    hash_binary(bytes, &mut hash);
    hash & PHASH2_MASK
}

/// `phash2/1` keeps 27 bits of the 32-bit `make_hash2` value.
const PHASH2_MASK: u32 = (1 << 27) - 1;

/// The golden ratio, Jenkins' arbitrary start value; `make_hash2` salts each kind of term with
/// a multiple of it (`HCONST_n` = n × this, mod 2^32).
const HCONST: u32 = 0x9e37_79b9;
const fn hconst(n: u32) -> u32 {
    HCONST.wrapping_mul(n)
}
/// Salt for the two halves of a float.
const FLOAT_SALT: u32 = hconst(12);
/// Salt added to the running hash before a binary's bytes.
const BINARY_SALT: u32 = hconst(13);
/// Salt for a tuple's arity.
const TUPLE_SALT: u32 = hconst(9);
/// Salt for an atom that is not the first thing hashed.
const ATOM_SALT: u32 = hconst(3);
/// Salt for `[]` that is not the first thing hashed.
const NIL_SALT: u32 = hconst(2);
/// Salt for groups of up to four bytes of a list of small integers (a "string").
const BYTES_SALT: u32 = hconst(4);
/// Salts for the 32-bit halves of a bignum's 64-bit digits, by sign.
const NEG_BIG_SALT: u32 = hconst(10);
const POS_BIG_SALT: u32 = hconst(11);
/// What `[]` hashes to when it is the whole term.
const NIL_ALONE: u32 = 3_468_870_702;
/// The emulator's type code for `[]` (`NIL_DEF`), which is what gets mixed otherwise.
const NIL_TYPE_CODE: u32 = 2;
/// Integers in `-2^27..2^27` are hashed as 32-bit values, larger ones as bignum digits (so the
/// result does not depend on the machine's word size).
const SMALL_LIMIT: i128 = 1 << 27;

/// Jenkins' reversible mix of three 32-bit words.
fn mix(mut a: u32, mut b: u32, mut c: u32) -> (u32, u32, u32) {
    a = a.wrapping_sub(b).wrapping_sub(c) ^ (c >> 13);
    b = b.wrapping_sub(c).wrapping_sub(a) ^ (a << 8);
    c = c.wrapping_sub(a).wrapping_sub(b) ^ (b >> 13);
    a = a.wrapping_sub(b).wrapping_sub(c) ^ (c >> 12);
    b = b.wrapping_sub(c).wrapping_sub(a) ^ (a << 16);
    c = c.wrapping_sub(a).wrapping_sub(b) ^ (b >> 5);
    a = a.wrapping_sub(b).wrapping_sub(c) ^ (c >> 3);
    b = b.wrapping_sub(c).wrapping_sub(a) ^ (a << 10);
    c = c.wrapping_sub(a).wrapping_sub(b) ^ (b >> 15);
    (a, b, c)
}

/// Folds two 32-bit values, each salted, into the running hash.
fn mix_pair(x: u32, y: u32, salt: u32, hash: &mut u32) {
    *hash = mix(salt.wrapping_add(x), salt.wrapping_add(y), *hash).2;
}

fn mix_one(x: u32, salt: u32, hash: &mut u32) {
    mix_pair(x, 0, salt, hash);
}

/// Jenkins' lookup2 over bytes, 12 at a time (little-endian words), seeded with `init`.
fn block_hash(bytes: &[u8], init: u32) -> u32 {
    let word = |b: &[u8]| b.iter().rev().fold(0u32, |w, &byte| (w << 8) | u32::from(byte));
    let (mut a, mut b, mut c) = (HCONST, HCONST, init);
    let mut blocks = bytes.chunks_exact(12);
    for block in &mut blocks {
        a = a.wrapping_add(word(&block[0..4]));
        b = b.wrapping_add(word(&block[4..8]));
        c = c.wrapping_add(word(&block[8..12]));
        (a, b, c) = mix(a, b, c);
    }
    let tail = blocks.remainder();
    // The length goes into c's low byte, so the tail's bytes for c start one byte up.
    c = c.wrapping_add(bytes.len() as u32);
    a = a.wrapping_add(word(&tail[..tail.len().min(4)]));
    if tail.len() > 4 {
        b = b.wrapping_add(word(&tail[4..tail.len().min(8)]));
    }
    if tail.len() > 8 {
        c = c.wrapping_add(word(&tail[8..]) << 8);
    }
    mix(a, b, c).2
}

fn hash_binary(bytes: &[u8], hash: &mut u32) {
    let seed = BINARY_SALT.wrapping_add(*hash);
    *hash = if bytes.is_empty() { seed } else { block_hash(bytes, seed) };
}

/// The emulator's atom-table hash of a name (hashpjw). For ASCII names; other names would first
/// need the emulator's Latin-1 folding of two-byte UTF-8 sequences.
fn atom_table_hash(name: &str) -> u32 {
    debug_assert!(name.is_ascii(), "atom {name:?}");
    name.bytes().fold(0u32, |h, byte| {
        let h = (h << 4).wrapping_add(u32::from(byte));
        let top = h & 0xf000_0000;
        if top == 0 {
            h
        } else {
            h ^ (top >> 24) ^ top
        }
    })
}

fn hash_int(n: i128, hash: &mut u32) {
    if (-SMALL_LIMIT..SMALL_LIMIT).contains(&n) {
        let v = n as i32;
        // Negative small integers are mixed twice: first their magnitude, then their bits.
        if v < 0 {
            mix_one(v.unsigned_abs(), HCONST, hash);
        }
        mix_one(v as u32, HCONST, hash);
        return;
    }
    let salt = if n < 0 { NEG_BIG_SALT } else { POS_BIG_SALT };
    let mut magnitude = n.unsigned_abs();
    // Least significant 64-bit digit first, each as (low half, high half); no leading zero digit.
    while magnitude != 0 {
        let digit = magnitude as u64;
        mix_pair(digit as u32, (digit >> 32) as u32, salt, hash);
        magnitude >>= 64;
    }
}

fn hash_float(f: f64, hash: &mut u32) {
    // -0.0 hashes as 0.0 (they compare equal in Erlang).
    let bits = if f == 0.0 { 0 } else { f.to_bits() };
    mix_pair((bits >> 32) as u32, bits as u32, FLOAT_SALT, hash);
}

/// Hashes a list's elements, then its `[]`. Runs of small non-negative integers below 256 are
/// packed four to a word first, as the emulator does for strings.
fn hash_list(items: &[Term<'_>], hash: &mut u32) {
    let mut rest = items;
    while !rest.is_empty() {
        let run = rest.iter().take_while(|t| matches!(t, Term::Int(0..=255))).count();
        for group in rest[..run].chunks(4) {
            let packed = group.iter().fold(0u32, |w, t| match t {
                Term::Int(b) => (w << 8) | *b as u32,
                _ => w,
            });
            mix_one(packed, BYTES_SALT, hash);
        }
        rest = &rest[run..];
        if let Some((head, tail)) = rest.split_first() {
            hash_term(head, hash);
            rest = tail;
        }
    }
    if *hash == 0 {
        *hash = NIL_ALONE;
    } else {
        mix_one(NIL_TYPE_CODE, NIL_SALT, hash);
    }
}

fn hash_term(term: &Term<'_>, hash: &mut u32) {
    match term {
        Term::Atom(name) => {
            let h = atom_table_hash(name);
            if *hash == 0 {
                *hash = h;
            } else {
                mix_one(h, ATOM_SALT, hash);
            }
        }
        Term::Int(n) => hash_int(*n, hash),
        Term::Float(f) => hash_float(*f, hash),
        Term::Binary(bytes) => hash_binary(bytes, hash),
        Term::Tuple(items) => {
            mix_one(items.len() as u32, TUPLE_SALT, hash);
            for item in items {
                hash_term(item, hash);
            }
        }
        Term::List(items) => hash_list(items, hash),
    }
}

#[cfg(test)]
mod tests {
    //! Expected values computed with `erlang:phash2/1` on OTP 25 (erts 13.1.5, the Erlang of
    //! Debian's rabbitmq-server 3.10.8), so the tests need no Erlang.
    use super::*;

    fn bin(s: &[u8]) -> Term<'_> {
        Term::Binary(s)
    }

    fn tagged<'a>(tag: &'static str, value: Term<'a>) -> Term<'a> {
        Term::Tuple(vec![Term::Atom(tag), value])
    }

    /// Byte `i` of the test binary of length `len`: varied, and non-ASCII from length 5 on.
    fn test_binary(len: usize) -> Vec<u8> {
        (0..len).map(|i| ((len * 31 + i * 7) % 256) as u8).collect()
    }

    #[test]
    fn binaries_of_every_length_up_to_40() {
        let expected: [u32; 41] = [
            13708901, 5288292, 107560839, 71954620, 109046911, 56531185, 77691217, 74144983, 54564711,
            1438218, 102862395, 95009024, 105834158, 23259835, 61823885, 30681798, 89379726, 106838714,
            115340609, 25081290, 105467618, 4106777, 97850767, 27861492, 53163035, 21928859, 35801548,
            99127325, 87810780, 15937344, 69982222, 3228964, 37764420, 74230470, 82031833, 106376423,
            50734035, 65569511, 41836492, 16990189, 80189464,
        ];
        for (len, want) in expected.iter().enumerate() {
            let b = test_binary(len);
            assert_eq!(phash2_binary(&b), *want, "length {len}: {b:?}");
            assert_eq!(phash2(&bin(&b)), *want, "length {len} as a term");
        }
    }

    #[test]
    fn routing_key_like_binaries() {
        let cases: &[(&[u8], u32)] = &[
            (b"", 13708901),
            (b"a", 112802447),
            (b"abc", 98228475),
            (b"orders.created", 66417991),
            (b"key-0", 91985521),
            (b"key-199", 83314046),
            ("café".as_bytes(), 94684372),
            (&[0xff, 0x00, 0x80], 70739353),
            (b"0123456789ab", 115360506),
            (b"0123456789abc", 67923675),
        ];
        for (b, want) in cases {
            assert_eq!(phash2_binary(b), *want, "{:?}", String::from_utf8_lossy(b));
        }
    }

    #[test]
    fn atoms() {
        let cases = [
            ("undefined", 45914356),
            ("true", 506293),
            ("false", 7111573),
            ("longstr", 56945346),
            ("signedint", 105633700),
            ("unsignedint", 104331172),
            ("long", 472647),
            ("short", 7992980),
            ("unsignedshort", 132130980),
            ("byte", 434341),
            ("unsignedbyte", 58662725),
            ("bool", 431708),
            ("float", 7157124),
            ("double", 112638245),
            ("decimal", 45744924),
            ("timestamp", 63626560),
            ("table", 8026405),
            ("array", 6854793),
            ("void", 513524),
            ("binary", 110119065),
        ];
        for (name, want) in cases {
            assert_eq!(phash2(&Term::Atom(name)), want, "{name}");
        }
    }

    #[test]
    fn integers_small_and_big() {
        let cases: [(i128, u32); 23] = [
            (0, 88723725),
            (1, 2614250),
            (-1, 44071773),
            (7, 846366),
            (127, 31920155),
            (-128, 63553696),
            (255, 44734653),
            (32767, 106677378),
            (-32768, 52885527),
            (65535, 9764579),
            (134217727, 112602999),
            (134217728, 12354923),
            (-134217728, 69672967),
            (-134217729, 76739502),
            (2147483647, 124127543),
            (-2147483648, 62030289),
            (4294967295, 95053261),
            (1 << 40, 13893919),
            (-(1 << 40), 48180921),
            (i64::MAX as i128, 28179613),
            (i64::MIN as i128, 126213383),
            (u64::MAX as i128, 53435350),
            (1662000000, 27935608),
        ];
        for (n, want) in cases {
            assert_eq!(phash2(&Term::Int(n)), want, "{n}");
        }
    }

    #[test]
    fn floats() {
        let cases = [
            (0.0, 20875736),
            (-0.0, 20875736),
            (1.0, 77147068),
            (-1.5, 13753666),
            (0.1, 114238079),
            (f64::from(f32::MAX), 88365680),
            (1.0e-300, 15324994),
        ];
        for (f, want) in cases {
            assert_eq!(phash2(&Term::Float(f)), want, "{f}");
        }
    }

    /// Header values as RabbitMQ decodes them: `{Type, Value}`, arrays and tables as lists.
    #[test]
    fn header_terms() {
        let entry = |k: &'static [u8], t: &'static str, v: Term<'static>| {
            Term::Tuple(vec![Term::Binary(k), Term::Atom(t), v])
        };
        let cases: Vec<(Term<'static>, u32)> = vec![
            (tagged("longstr", bin(b"eu-west")), 96479770),
            (tagged("longstr", bin(b"")), 116351706),
            (tagged("signedint", Term::Int(42)), 20266392),
            (tagged("signedint", Term::Int(-42)), 116403640),
            (tagged("long", Term::Int(1 << 40)), 93748608),
            (tagged("long", Term::Int(-(1 << 62))), 94641533),
            (tagged("timestamp", Term::Int(1662000000)), 23563467),
            (tagged("bool", Term::Atom("true")), 32030443),
            (tagged("bool", Term::Atom("false")), 54145719),
            (tagged("void", Term::Atom("undefined")), 27077197),
            (tagged("double", Term::Float(2.5)), 126418831),
            (tagged("float", Term::Float(0.5)), 88558663),
            (tagged("decimal", Term::Tuple(vec![Term::Int(2), Term::Int(12345)])), 108016153),
            (tagged("binary", bin(&[1, 2, 3])), 108323328),
            (tagged("byte", Term::Int(-5)), 100886737),
            (tagged("unsignedbyte", Term::Int(200)), 88973546),
            (tagged("short", Term::Int(-300)), 38839696),
            (tagged("unsignedshort", Term::Int(60000)), 88181421),
            (tagged("unsignedint", Term::Int(4000000000)), 106834589),
            (tagged("array", Term::List(vec![])), 86211673),
            (
                tagged(
                    "array",
                    Term::List(vec![tagged("longstr", bin(b"a")), tagged("signedint", Term::Int(1))]),
                ),
                40191755,
            ),
            (tagged("table", Term::List(vec![])), 80606520),
            (
                tagged(
                    "table",
                    Term::List(vec![
                        entry(b"k", "longstr", bin(b"v")),
                        entry(b"n", "signedint", Term::Int(3)),
                    ]),
                ),
                32639289,
            ),
            (
                tagged(
                    "array",
                    Term::List(vec![
                        tagged("array", Term::List(vec![tagged("bool", Term::Atom("true"))])),
                        tagged("table", Term::List(vec![entry(b"x", "void", Term::Atom("undefined"))])),
                    ]),
                ),
                76458625,
            ),
            (Term::List(vec![]), 113427502),
            (Term::List(vec![Term::Int(1), Term::Int(2), Term::Int(3)]), 25788620),
            (Term::List(vec![bin(b"a")]), 53691870),
            (Term::Tuple(vec![]), 87486268),
            (Term::Tuple(vec![Term::Atom("a")]), 35332806),
        ];
        for (term, want) in cases {
            assert_eq!(phash2(&term), want, "{term:?}");
        }
    }
}
