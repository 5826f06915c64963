//! The `x-consistent-hash` exchange type, placing every key exactly where RabbitMQ 3.10's
//! consistent-hash exchange plugin (`rabbitmq_consistent_hash_exchange`) does.
//!
//! Each binding's key is a weight W. The exchange keeps a row of buckets: a binding adds W
//! buckets at the end of the row, owned by its destination (a destination already in the row
//! adds none, whatever its key), and unbinding removes all of the destination's buckets,
//! closing the gap. A message's value (its routing key, or the header or property named by the
//! `hash-header` / `hash-property` argument) is hashed with Erlang's `erlang:phash2/1`
//! ([`crate::erlang_hash`]); the hash seeds Erlang's exs1024 generator ([`crate::erlang_rand`]),
//! whose draws drive jump consistent hashing (Lamping & Veach) over the row; the destination
//! owning the bucket it lands in gets the message.
//!
//! So placement depends on the order of the bindings, as in RabbitMQ. Adding a binding moves
//! only keys onto it; removing the last one moves only its keys, but removing an earlier one
//! also renumbers the buckets after it, which moves other keys too.

use bytes::Bytes;
use warren_message::{BasicProperties, FieldTable, FieldValue};

use super::erlang_hash::{phash2, phash2_binary, Term};
use super::erlang_rand::Exs1024;
use crate::error::BrokerError;

/// What a consistent-hash exchange hashes, from its `hash-header` / `hash-property` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HashOn {
    RoutingKey,
    /// The header of that name (its bytes: the plugin compares binaries).
    Header(Bytes),
    Property(Property),
}

/// A message property the plugin can hash (`hash-property`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Property {
    CorrelationId,
    MessageId,
    Timestamp,
}

impl HashOn {
    /// Reads (and checks, as the plugin does) the exchange's arguments: PRECONDITION_FAILED
    /// with the plugin's texts; a non-string argument is where the plugin crashes (RabbitMQ
    /// then closes the connection with INTERNAL_ERROR), so it fails the same way here.
    pub(crate) fn from_arguments(args: &FieldTable) -> Result<HashOn, BrokerError> {
        let text = |name: &str| match args.get(name) {
            None => Ok(None),
            Some(FieldValue::LongStr(b)) => Ok(Some(b.clone())),
            Some(_) => Err(BrokerError::ExchangeTypeFailure(format!(
                "exchange type x-consistent-hash cannot use argument '{name}': it is not a string"
            ))),
        };
        let precondition = |text: String| Err(BrokerError::PreconditionFailed(text));
        match (text("hash-header")?, text("hash-property")?) {
            (None, None) => Ok(HashOn::RoutingKey),
            (Some(h), None) => Ok(HashOn::Header(h)),
            (None, Some(p)) => match &p[..] {
                b"correlation_id" => Ok(HashOn::Property(Property::CorrelationId)),
                b"message_id" => Ok(HashOn::Property(Property::MessageId)),
                b"timestamp" => Ok(HashOn::Property(Property::Timestamp)),
                other => precondition(format!("Unsupported property: {}", String::from_utf8_lossy(other))),
            },
            (Some(_), Some(_)) => {
                precondition("hash-header and hash-property are mutually exclusive".to_owned())
            }
        }
    }

    /// `erlang:phash2` of what the plugin hashes for this message: the routing key as a binary;
    /// a header as RabbitMQ decodes it (`{Type, Value}`); a property as a binary (a timestamp in
    /// decimal). Missing headers and properties hash as the atom `undefined`, as in the plugin,
    /// so all such messages go to the same destination.
    pub(crate) fn hash(&self, routing_key: &str, raw_properties: &Bytes) -> u32 {
        match self {
            HashOn::RoutingKey => phash2_binary(routing_key.as_bytes()),
            HashOn::Header(name) => {
                let props = BasicProperties::decode(raw_properties).ok();
                let headers = props.as_ref().and_then(|p| p.headers.as_ref());
                // The first entry of that name, as Erlang's lists:keysearch finds it.
                let value = headers.and_then(|h| h.0.iter().find(|(k, _)| k.as_bytes() == &name[..]));
                match value {
                    Some((_, v)) => phash2(&field_term(v)),
                    None => phash2(&UNDEFINED),
                }
            }
            HashOn::Property(property) => {
                let props = BasicProperties::decode(raw_properties).ok().unwrap_or_default();
                let text = match property {
                    Property::CorrelationId => props.correlation_id.map(|s| s.as_bytes().to_vec()),
                    Property::MessageId => props.message_id.map(|s| s.as_bytes().to_vec()),
                    Property::Timestamp => props.timestamp.map(|t| t.to_string().into_bytes()),
                };
                match text {
                    Some(bytes) => phash2_binary(&bytes),
                    None => phash2(&UNDEFINED),
                }
            }
        }
    }
}

/// Erlang's `undefined`: what the plugin hashes for a missing header or property.
const UNDEFINED: Term<'static> = Term::Atom("undefined");

/// A field value as RabbitMQ's table parser turns it into an Erlang term: `{Type, Value}`.
fn field_term(value: &FieldValue) -> Term<'_> {
    let (tag, v) = typed_value(value);
    Term::Tuple(vec![Term::Atom(tag), v])
}

/// RabbitMQ's type atom and value term of a field value. Both `l` and `L` decode as a signed
/// `long` there and here; a 32-bit float becomes the double of the same value.
pub(crate) fn typed_value(value: &FieldValue) -> (&'static str, Term<'_>) {
    match value {
        FieldValue::LongStr(b) => ("longstr", Term::Binary(b)),
        FieldValue::I32(n) => ("signedint", Term::Int((*n).into())),
        FieldValue::U32(n) => ("unsignedint", Term::Int((*n).into())),
        FieldValue::I64(n) => ("long", Term::Int((*n).into())),
        FieldValue::I16(n) => ("short", Term::Int((*n).into())),
        FieldValue::U16(n) => ("unsignedshort", Term::Int((*n).into())),
        FieldValue::I8(n) => ("byte", Term::Int((*n).into())),
        FieldValue::U8(n) => ("unsignedbyte", Term::Int((*n).into())),
        FieldValue::Bool(b) => ("bool", Term::Atom(if *b { "true" } else { "false" })),
        FieldValue::F64(f) => ("double", Term::Float(*f)),
        FieldValue::F32(f) => ("float", Term::Float((*f).into())),
        FieldValue::Decimal { scale, value } => {
            ("decimal", Term::Tuple(vec![Term::Int((*scale).into()), Term::Int((*value).into())]))
        }
        FieldValue::Timestamp(t) => ("timestamp", Term::Int((*t).into())),
        FieldValue::Void => ("void", UNDEFINED),
        FieldValue::ByteArray(b) => ("binary", Term::Binary(b)),
        FieldValue::Array(items) => ("array", Term::List(items.iter().map(field_term).collect())),
        // A table is a list of {Name, Type, Value}.
        FieldValue::Table(t) => {
            let entries = t.0.iter().map(|(name, v)| {
                let (tag, v) = typed_value(v);
                Term::Tuple(vec![Term::Binary(name.as_bytes()), Term::Atom(tag), v])
            });
            ("table", Term::List(entries.collect()))
        }
    }
}

/// A binding key as a weight, or the plugin's PRECONDITION_FAILED text. Like Erlang's
/// `list_to_integer`, a sign is allowed and nothing else. The plugin makes one map entry per
/// unit of weight; Warren keeps runs instead, so any weight costs the same, and weights beyond
/// `u32::MAX` are taken as `u32::MAX` (the plugin would run out of memory long before).
pub(crate) fn parse_weight(key: &str) -> Result<u64, String> {
    let invalid =
        || format!("The binding key must be an integer: {}", warren_message::erlang::binary(key.as_bytes()));
    let (negative, digits) = match key.as_bytes().first() {
        Some(b'-') => (true, &key[1..]),
        Some(b'+') => (false, &key[1..]),
        _ => (false, key),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let all_zero = digits.bytes().all(|b| b == b'0');
    if negative || all_zero {
        return Err("The binding key must be greater than 0".to_owned());
    }
    Ok(digits.parse::<u64>().map_or(u64::from(u32::MAX), |w| w.min(u64::from(u32::MAX))))
}

/// The plugin's `jump_consistent_hash(Hash, Buckets)`: Lamping & Veach's jump hash, with its
/// random draws taken from exs1024 seeded with `{Hash, Hash, Hash}`. Each step jumps from
/// bucket b to `trunc((b + 1) / r)` for a uniform r; the last bucket before a jump past the
/// end is chosen. `buckets` must be at least 1.
pub(crate) fn jump_consistent_hash(hash: u32, buckets: u64) -> u64 {
    if buckets <= 1 {
        return 0;
    }
    let seed = u64::from(hash);
    let mut rng = Exs1024::seed([seed, seed, seed]);
    let mut bucket = 0;
    loop {
        // Erlang divides as doubles, then truncates to an integer of any size.
        let next = ((bucket + 1) as f64 / rng.uniform()).trunc();
        if at_least(next, buckets) {
            return bucket;
        }
        bucket = next as u64;
    }
}

/// Whether the whole number `x` (a double) is at least `n`, exactly, even where `n` has no
/// exact double (above 2^53).
fn at_least(x: f64, n: u64) -> bool {
    x >= 18_446_744_073_709_551_616.0 || x as u64 >= n
}

/// The plugin's bucket row, kept as runs: member `i` owns the `weight` buckets after those of
/// members `0..i`. `D` identifies a destination.
#[derive(Debug, Clone)]
pub(crate) struct Buckets<D> {
    /// (destination, weight), in the order they were added.
    members: Vec<(D, u64)>,
    /// `ends[i]`: one past member `i`'s last bucket (running sums of the weights).
    ends: Vec<u64>,
}

impl<D> Default for Buckets<D> {
    fn default() -> Self {
        Buckets { members: Vec::new(), ends: Vec::new() }
    }
}

impl<D: PartialEq> Buckets<D> {
    /// A binding to `destination` with this weight: its buckets go at the end, unless the
    /// destination already has buckets (the plugin ignores a second binding to it).
    pub(crate) fn add(&mut self, destination: D, weight: u64) {
        if weight == 0 || self.members.iter().any(|(d, _)| *d == destination) {
            return;
        }
        self.ends.push(self.total() + weight);
        self.members.push((destination, weight));
    }

    /// Unbinding from `destination`: all its buckets go (whichever of its bindings it was), and
    /// the buckets after them move down.
    pub(crate) fn remove(&mut self, destination: &D) {
        if let Some(i) = self.members.iter().position(|(d, _)| d == destination) {
            self.members.remove(i);
            self.ends.truncate(i);
            let mut end = self.total();
            for (_, w) in &self.members[i..] {
                end += w;
                self.ends.push(end);
            }
        }
    }

    /// How many buckets there are.
    pub(crate) fn total(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    /// The destination owning bucket `jump_consistent_hash(hash, total)`; none if no buckets.
    pub(crate) fn pick(&self, hash: u32) -> Option<&D> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let bucket = jump_consistent_hash(hash, total);
        let i = self.ends.partition_point(|end| *end <= bucket);
        self.members.get(i).map(|(d, _)| d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(s: &str) -> FieldValue {
        FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn with_headers(headers: FieldTable) -> Bytes {
        let mut out = bytes::BytesMut::new();
        BasicProperties { headers: Some(headers), ..Default::default() }.encode(&mut out);
        out.freeze()
    }

    fn encoded(p: BasicProperties) -> Bytes {
        let mut out = bytes::BytesMut::new();
        p.encode(&mut out);
        out.freeze()
    }

    fn header_table(pairs: &[(&str, FieldValue)]) -> FieldTable {
        FieldTable(pairs.iter().map(|(k, v)| ((*k).into(), v.clone())).collect())
    }

    fn row(weights: &[u64]) -> Buckets<usize> {
        let mut b = Buckets::default();
        for (i, w) in weights.iter().enumerate() {
            b.add(i, *w);
        }
        b
    }

    /// The plugin's own `route/2` (rabbit_exchange_type_consistent_hash.beam of RabbitMQ
    /// 3.10.8 on OTP 25), called with N one-bucket destinations: (routing key, N, bucket).
    const PLUGIN_ROUTES: &[(&str, u64, u64)] = &[
        ("", 2, 0),
        ("", 3, 0),
        ("", 7, 6),
        ("", 10, 9),
        ("", 64, 45),
        ("", 1000, 161),
        ("", 100000, 14052),
        ("a", 2, 1),
        ("a", 3, 1),
        ("a", 7, 6),
        ("a", 10, 6),
        ("a", 64, 47),
        ("a", 1000, 47),
        ("a", 100000, 59500),
        ("orders.created", 2, 0),
        ("orders.created", 10, 7),
        ("orders.created", 64, 63),
        ("orders.created", 1000, 71),
        ("orders.created", 100000, 28205),
        ("key-0", 3, 2),
        ("key-0", 7, 6),
        ("key-0", 64, 17),
        ("key-0", 1000, 910),
        ("key-0", 100000, 20662),
        ("key-1", 7, 1),
        ("key-1", 64, 27),
        ("key-1", 1000, 935),
        ("key-1", 100000, 16561),
        ("key-2", 7, 5),
        ("key-2", 10, 7),
        ("key-2", 64, 22),
        ("key-2", 1000, 147),
        ("key-2", 100000, 59495),
        ("key-17", 10, 0),
        ("key-17", 64, 38),
        ("key-17", 1000, 103),
        ("key-17", 100000, 46237),
        ("key-199", 64, 45),
        ("key-199", 1000, 824),
        ("key-199", 100000, 87150),
        ("café", 3, 2),
        ("café", 64, 2),
        ("café", 1000, 731),
        ("café", 100000, 76944),
    ];

    #[test]
    fn routing_keys_land_where_the_plugin_puts_them() {
        for &(key, n, want) in PLUGIN_ROUTES {
            let hash = HashOn::RoutingKey.hash(key, &Bytes::new());
            assert_eq!(jump_consistent_hash(hash, n), want, "key {key:?} over {n} buckets");
        }
        assert_eq!(jump_consistent_hash(phash2_binary(b"anything"), 1), 0);
    }

    /// More buckets than the plugin could hold in memory, so more than 16 draws (the
    /// generator's whole state): the same function transcribed in Erlang, on OTP 25.
    #[test]
    fn long_jumps_match_erlang() {
        let cases: &[(&str, u64, u64)] = &[
            ("", 1_000_000, 792163),
            ("", 1_000_000_000, 429670698),
            ("", 1 << 40, 584470236581),
            ("", 1 << 62, 605798121760362880),
            ("a", 1_000_000_000, 819257555),
            ("a", 1 << 62, 96697154964978944),
            ("orders.created", 1 << 40, 1065786776438),
            ("key-0", 1 << 62, 1882408804777965312),
            ("key-1", 1_000_000, 706614),
            ("key-199", 1 << 40, 1062555163759),
        ];
        for &(key, n, want) in cases {
            assert_eq!(jump_consistent_hash(phash2_binary(key.as_bytes()), n), want, "{key:?} over {n}");
        }
        for (hash, want) in
            [(0, 1205487178950602496), (1, 3409751693622587904), (134217727, 3219068999671983104)]
        {
            assert_eq!(jump_consistent_hash(hash, 1 << 62), want, "hash {hash}");
        }
    }

    /// Headers and properties, through the plugin's `route/2` as above, over 10 or 1000 buckets.
    #[test]
    fn headers_and_properties_land_where_the_plugin_puts_them() {
        let by_header = HashOn::Header(Bytes::from_static(b"h"));
        let cases: Vec<(FieldValue, u64, u64)> = vec![
            (text("eu-west"), 10, 1),
            (text("eu-west"), 1000, 560),
            (FieldValue::I32(42), 10, 8),
            (FieldValue::I32(42), 1000, 775),
            (FieldValue::I64(1 << 40), 10, 3),
            (FieldValue::I64(1 << 40), 1000, 47),
            (FieldValue::Bool(true), 10, 4),
            (FieldValue::Bool(true), 1000, 885),
            (FieldValue::Void, 10, 0),
            (FieldValue::Void, 1000, 588),
            (FieldValue::F64(2.5), 10, 4),
            (FieldValue::F64(2.5), 1000, 659),
        ];
        for (value, n, want) in cases {
            let props = with_headers(header_table(&[("h", value.clone())]));
            assert_eq!(jump_consistent_hash(by_header.hash("rk", &props), n), want, "{value:?} over {n}");
        }
        // No such header, or no headers at all: `undefined`.
        let other = with_headers(header_table(&[("other", text("v"))]));
        assert_eq!(jump_consistent_hash(by_header.hash("rk", &other), 10), 1);
        assert_eq!(jump_consistent_hash(by_header.hash("rk", &Bytes::new()), 10), 1);
        // A repeated header: the first counts.
        let twice = with_headers(header_table(&[("h", text("one")), ("h", text("two"))]));
        assert_eq!(jump_consistent_hash(by_header.hash("rk", &twice), 1000), 89);

        let property = |p| HashOn::Property(p);
        let id = encoded(BasicProperties { message_id: Some("m-1".into()), ..Default::default() });
        assert_eq!(jump_consistent_hash(property(Property::MessageId).hash("rk", &id), 1000), 918);
        let corr = encoded(BasicProperties { correlation_id: Some("c-1".into()), ..Default::default() });
        assert_eq!(jump_consistent_hash(property(Property::CorrelationId).hash("rk", &corr), 1000), 143);
        let ts = encoded(BasicProperties { timestamp: Some(1662000000), ..Default::default() });
        assert_eq!(jump_consistent_hash(property(Property::Timestamp).hash("rk", &ts), 1000), 362);
        assert_eq!(jump_consistent_hash(property(Property::MessageId).hash("rk", &Bytes::new()), 1000), 491);
    }

    #[test]
    fn weights_parse_as_the_plugin_does() {
        assert_eq!(parse_weight("1"), Ok(1));
        assert_eq!(parse_weight("+20"), Ok(20));
        assert_eq!(parse_weight("007"), Ok(7));
        assert_eq!(parse_weight("99999999999999999999999"), Ok(u64::from(u32::MAX)));
        assert_eq!(parse_weight("0"), Err("The binding key must be greater than 0".to_owned()));
        assert_eq!(parse_weight("-3"), Err("The binding key must be greater than 0".to_owned()));
        assert_eq!(parse_weight("abc"), Err("The binding key must be an integer: <<\"abc\">>".to_owned()));
        assert!(parse_weight("").unwrap_err().starts_with("The binding key must be an integer: "));
        assert!(parse_weight(" 1").is_err());
        assert!(parse_weight("1.5").is_err());
    }

    #[test]
    fn hash_arguments_are_checked() {
        let precondition = |text: &str| Err(BrokerError::PreconditionFailed(text.to_owned()));
        let mut args = FieldTable::new();
        assert_eq!(HashOn::from_arguments(&args), Ok(HashOn::RoutingKey));
        args.insert("hash-property", text("message_id"));
        assert_eq!(HashOn::from_arguments(&args), Ok(HashOn::Property(Property::MessageId)));
        args.insert("hash-header", text("h"));
        assert_eq!(
            HashOn::from_arguments(&args),
            precondition("hash-header and hash-property are mutually exclusive")
        );
        let mut args = FieldTable::new();
        args.insert("hash-property", text("app_id"));
        assert_eq!(HashOn::from_arguments(&args), precondition("Unsupported property: app_id"));
        let mut args = FieldTable::new();
        args.insert("hash-header", text("h"));
        assert_eq!(HashOn::from_arguments(&args), Ok(HashOn::Header(Bytes::from_static(b"h"))));
        args.insert("hash-header", FieldValue::I32(5));
        assert!(matches!(HashOn::from_arguments(&args), Err(BrokerError::ExchangeTypeFailure(_))));
    }

    #[test]
    fn buckets_follow_binding_order_and_weights() {
        let b = row(&[2, 1, 3]);
        assert_eq!(b.total(), 6);
        // Buckets 0-1 are member 0's, 2 is member 1's, 3-5 are member 2's.
        for bucket in 0..6 {
            let owner = match bucket {
                0 | 1 => 0,
                2 => 1,
                _ => 2,
            };
            let i = b.ends.partition_point(|end| *end <= bucket);
            assert_eq!(i, owner, "bucket {bucket}");
        }
        assert_eq!(row(&[]).pick(7), None);
    }

    #[test]
    fn a_second_binding_to_a_destination_adds_nothing_and_unbinding_removes_all() {
        let mut b = row(&[1, 2]);
        b.add(0, 5);
        assert_eq!(b.total(), 3);
        b.remove(&0);
        assert_eq!((b.total(), b.members.len()), (2, 1));
        // Member 1's buckets moved down to 0 and 1: every key now goes to it.
        for k in 0..100u32 {
            assert_eq!(b.pick(phash2_binary(&k.to_be_bytes())), Some(&1));
        }
        b.remove(&1);
        assert_eq!(b.pick(1), None);
    }

    fn shares(b: &Buckets<usize>, members: usize, keys: usize) -> Vec<usize> {
        let mut c = vec![0; members];
        for k in 0..keys {
            c[*b.pick(phash2_binary(format!("key-{k}").as_bytes())).unwrap()] += 1;
        }
        c
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Each binding's share of keys is within tolerance of its share of the weight.
        #[test]
        fn distribution_follows_weights(weights in prop::collection::vec(1u64..6, 2..7)) {
            let b = row(&weights);
            let keys = 20_000;
            let c = shares(&b, weights.len(), keys);
            let total: u64 = weights.iter().sum();
            for (i, w) in weights.iter().enumerate() {
                let expected = keys as f64 * *w as f64 / total as f64;
                let got = c[i] as f64;
                prop_assert!((got - expected).abs() <= expected * 0.25,
                    "binding {} (weight {}) got {} keys, expected about {:.0}: {:?}", i, w, got, expected, c);
            }
        }

        /// The same key always lands in the same place, for rows built the same way.
        #[test]
        fn routing_is_stable(weights in prop::collection::vec(1u64..50, 1..10), key in ".{0,40}") {
            let (a, b) = (row(&weights), row(&weights));
            let hash = phash2_binary(key.as_bytes());
            prop_assert_eq!(a.pick(hash), b.pick(hash));
            prop_assert!(*a.pick(hash).unwrap() < weights.len());
        }

        /// Adding a binding at the end moves only keys onto it (jump hashing's promise).
        #[test]
        fn adding_a_binding_moves_keys_only_to_it(weights in prop::collection::vec(1u64..4, 1..8), added in 1u64..4) {
            let before = row(&weights);
            let mut after = row(&weights);
            after.add(weights.len(), added);
            for k in 0..2_000 {
                let hash = phash2_binary(format!("key-{k}").as_bytes());
                let (x, y) = (before.pick(hash).unwrap(), after.pick(hash).unwrap());
                prop_assert!(x == y || *y == weights.len(), "key-{} moved from {} to {}", k, x, y);
            }
        }

        /// Jump hashing stays in range for any bucket count.
        #[test]
        fn jumps_stay_in_range(hash in 0u32..(1 << 27), buckets in 1u64..u64::MAX) {
            prop_assert!(jump_consistent_hash(hash, buckets) < buckets);
        }
    }
}
