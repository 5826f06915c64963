//! The `x-consistent-hash` exchange type (RabbitMQ's consistent-hash exchange plugin): each
//! binding's routing key is a weight, and a message goes to exactly one binding, chosen by
//! hashing the message's routing key (or a header, or a property) onto a hash ring.
//!
//! Every binding owns `weight × POINTS_PER_WEIGHT` points on a 64-bit ring, placed by hashing
//! the binding's identity (destination and key) with the point's index. A message's hash picks
//! the first point at or after it (wrapping round). The points depend only on the bindings
//! themselves, not on the order they were made, so routing is the same after a restart, and
//! adding or removing a binding only moves the keys that land on (or leave) its points.

use warren_protocol::{BasicProperties, FieldTable, FieldValue};

/// Ring points per unit of weight: enough that shares stay within a few percent of the weights.
pub const POINTS_PER_WEIGHT: u64 = 100;
/// The most points a ring holds; beyond it every binding's points are scaled down
/// proportionally (at least one each).
pub const MAX_POINTS: u64 = 1 << 20;

/// The message properties an exchange may hash on instead of the routing key.
pub const HASH_PROPERTIES: &[&str] = &["message_id", "correlation_id", "timestamp"];

/// What a consistent-hash exchange hashes, from its `hash-header` / `hash-property` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    RoutingKey,
    Header(String),
    Property(String),
}

impl HashOn {
    /// Reads (and checks, as the plugin does) the exchange's arguments; the error is the
    /// PRECONDITION_FAILED reply text.
    pub fn from_arguments(args: &FieldTable) -> Result<HashOn, String> {
        let header = args.get("hash-header").and_then(FieldValue::as_str);
        let property = args.get("hash-property").and_then(FieldValue::as_str);
        match (header, property) {
            (None, None) => Ok(HashOn::RoutingKey),
            (Some(h), None) => Ok(HashOn::Header(h.to_owned())),
            (None, Some(p)) if HASH_PROPERTIES.contains(&p) => Ok(HashOn::Property(p.to_owned())),
            (None, Some(p)) => Err(format!("Unsupported property: {p}")),
            (Some(_), Some(_)) => Err("hash-header and hash-property are mutually exclusive".to_owned()),
        }
    }

    /// The bytes hashed for a message; a missing header or property hashes as empty (all such
    /// messages go to the same destination).
    pub fn value(&self, routing_key: &str, raw_properties: &bytes::Bytes) -> Vec<u8> {
        match self {
            HashOn::RoutingKey => routing_key.as_bytes().to_vec(),
            HashOn::Header(name) => {
                let props = BasicProperties::decode(raw_properties).ok();
                let value = props.as_ref().and_then(|p| p.headers.as_ref()).and_then(|h| h.get(name));
                value.map(field_bytes).unwrap_or_default()
            }
            HashOn::Property(name) => {
                let Ok(p) = BasicProperties::decode(raw_properties) else { return Vec::new() };
                match name.as_str() {
                    "message_id" => p.message_id.map(|s| s.as_bytes().to_vec()),
                    "correlation_id" => p.correlation_id.map(|s| s.as_bytes().to_vec()),
                    _ => p.timestamp.map(|t| t.to_string().into_bytes()),
                }
                .unwrap_or_default()
            }
        }
    }
}

/// A header value as hashed: strings by their bytes, integers in decimal, anything else by a
/// stable textual form.
fn field_bytes(value: &FieldValue) -> Vec<u8> {
    match value {
        FieldValue::LongStr(b) => b.to_vec(),
        FieldValue::Timestamp(t) => t.to_string().into_bytes(),
        other => match other.as_i64() {
            Some(n) => n.to_string().into_bytes(),
            None => format!("{other:?}").into_bytes(),
        },
    }
}

/// A binding key as a weight, or the plugin's PRECONDITION_FAILED text. Like Erlang's
/// `list_to_integer`, a sign is allowed and nothing else; weights beyond `u32::MAX` saturate.
pub fn parse_weight(key: &str) -> Result<u64, String> {
    let invalid = || {
        format!("The binding key must be an integer: {}", warren_connection::erlang::binary(key.as_bytes()))
    };
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

/// A stable 64-bit hash (FNV-1a, then a SplitMix64 finish to spread the bits): the same on
/// every platform and every run, so routing survives a restart.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The points of a set of weighted members; `pick` says which member a hash lands on.
#[derive(Debug, Default, Clone)]
pub struct Ring {
    /// (point, member index), sorted by point.
    points: Vec<(u64, u32)>,
}

impl Ring {
    /// Builds the ring of `members` (identity bytes, weight), member `i` being the `i`th.
    pub fn build<'a>(members: impl IntoIterator<Item = (&'a [u8], u64)>) -> Ring {
        let members: Vec<(&[u8], u64)> = members.into_iter().collect();
        let total: u128 = members.iter().map(|(_, w)| u128::from(*w)).sum();
        let budget = u128::from(MAX_POINTS);
        let points_for = |w: u64| -> u64 {
            let wanted = u128::from(w) * u128::from(POINTS_PER_WEIGHT);
            if total * u128::from(POINTS_PER_WEIGHT) <= budget {
                wanted as u64
            } else {
                (u128::from(w) * budget / total).max(1) as u64
            }
        };
        let mut points = Vec::new();
        for (index, (identity, weight)) in members.iter().enumerate() {
            let seed = hash_bytes(identity);
            for j in 0..points_for(*weight) {
                points.push((mix(seed ^ mix(j.wrapping_add(0x9e37_79b9_7f4a_7c15))), index as u32));
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The member owning the first point at or after `hash`, wrapping round.
    pub fn pick(&self, hash: u64) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let i = self.points.partition_point(|(p, _)| *p < hash);
        let (_, member) = self.points[if i == self.points.len() { 0 } else { i }];
        Some(member as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ring(weights: &[u64]) -> (Ring, Vec<Vec<u8>>) {
        let ids: Vec<Vec<u8>> = (0..weights.len()).map(|i| format!("queue-{i}").into_bytes()).collect();
        let r = Ring::build(ids.iter().map(|i| i.as_slice()).zip(weights.iter().copied()));
        (r, ids)
    }

    fn counts(r: &Ring, n: usize, keys: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for k in 0..keys {
            c[r.pick(hash_bytes(format!("key-{k}").as_bytes())).unwrap()] += 1;
        }
        c
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
        let mut args = FieldTable::new();
        assert_eq!(HashOn::from_arguments(&args), Ok(HashOn::RoutingKey));
        args.insert("hash-property", FieldValue::LongStr("message_id".into()));
        assert_eq!(HashOn::from_arguments(&args), Ok(HashOn::Property("message_id".into())));
        args.insert("hash-header", FieldValue::LongStr("h".into()));
        assert_eq!(
            HashOn::from_arguments(&args),
            Err("hash-header and hash-property are mutually exclusive".into())
        );
        let mut args = FieldTable::new();
        args.insert("hash-property", FieldValue::LongStr("app_id".into()));
        assert_eq!(HashOn::from_arguments(&args), Err("Unsupported property: app_id".into()));
    }

    #[test]
    fn hashing_is_stable_across_builds() {
        let (a, _) = ring(&[1, 2, 3]);
        let (b, _) = ring(&[1, 2, 3]);
        for k in 0..1000u32 {
            let h = hash_bytes(&k.to_le_bytes());
            assert_eq!(a.pick(h), b.pick(h));
        }
        // A known value pins the hash function itself (it must never change: routing would).
        assert_eq!(hash_bytes(b"orders"), 5_014_895_673_036_534_313);
    }

    #[test]
    fn an_empty_ring_picks_nothing() {
        assert_eq!(Ring::build(std::iter::empty()).pick(42), None);
    }

    #[test]
    fn huge_weights_are_scaled_to_the_point_budget() {
        let (r, _) = ring(&[u64::from(u32::MAX), u64::from(u32::MAX), 1]);
        assert!(r.points.len() as u64 <= MAX_POINTS + 3);
        let c = counts(&r, 3, 20_000);
        assert!(c[0] > 8_000 && c[1] > 8_000, "{c:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Each binding's share of keys is within tolerance of its share of the weight.
        #[test]
        fn distribution_follows_weights(weights in prop::collection::vec(1u64..6, 2..7)) {
            let (r, _) = ring(&weights);
            let keys = 40_000;
            let c = counts(&r, weights.len(), keys);
            let total: u64 = weights.iter().sum();
            for (i, w) in weights.iter().enumerate() {
                let expected = keys as f64 * *w as f64 / total as f64;
                let got = c[i] as f64;
                prop_assert!((got - expected).abs() <= expected * 0.30,
                    "binding {} (weight {}) got {} keys, expected about {:.0}: {:?}", i, w, got, expected, c);
            }
        }

        /// Adding a binding moves only the keys it takes (about its share), all of them to it.
        #[test]
        fn adding_a_binding_moves_about_its_share(weights in prop::collection::vec(1u64..4, 1..8), added in 1u64..4) {
            let (before, _) = ring(&weights);
            let mut more = weights.clone();
            more.push(added);
            let (after, _) = ring(&more);
            let keys = 20_000;
            let mut moved = 0;
            for k in 0..keys {
                let h = hash_bytes(format!("key-{k}").as_bytes());
                let (a, b) = (before.pick(h).unwrap(), after.pick(h).unwrap());
                if a != b {
                    prop_assert_eq!(b, weights.len(), "a key moved between existing bindings");
                    moved += 1;
                }
            }
            let share = added as f64 / more.iter().sum::<u64>() as f64;
            let fraction = moved as f64 / keys as f64;
            prop_assert!((fraction - share).abs() <= share * 0.35 + 0.01,
                "moved {:.3} of the keys, the new binding's share is {:.3}", fraction, share);
        }
    }
}
