//! Deduplication settings from exchange and queue arguments, in both conventions: LavinMQ's
//! (`x-message-deduplication: true` on any exchange or queue) and the RabbitMQ plugin's (the
//! `x-message-deduplication` exchange type, the `x-message-deduplication` queue argument), with
//! the arguments they share (`x-cache-size`, `x-cache-ttl`), the plugin's
//! `x-cache-persistence`, LavinMQ's `x-deduplication-header` and Warren's `x-deduplication-key`.

use warren_message::{FieldTable, FieldValue, ShortStr};

use crate::error::BrokerError;

/// The message header that holds the key unless `x-deduplication-header` names another.
pub(crate) const DEFAULT_HEADER: &str = "x-deduplication-header";

/// The per-message header that overrides the cache's TTL for one message's key.
pub(crate) const TTL_HEADER: &str = "x-cache-ttl";

/// Entries kept when `x-cache-size` is not given.
pub const DEFAULT_CACHE_SIZE: usize = 100_000;

/// The largest `x-cache-size` accepted: a client may not make the broker keep more than this
/// many keys (about 350 MB) for one exchange or queue.
pub const MAX_CACHE_SIZE: usize = 10_000_000;

/// Where a message's key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeySource {
    /// The value of this header.
    Header(ShortStr),
    /// The `message-id` property (`x-deduplication-key: message-id`).
    MessageId,
}

/// How an exchange or queue deduplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DedupConfig {
    /// Most keys kept.
    pub(crate) size: usize,
    /// How long a key counts, unless its message's `x-cache-ttl` header says otherwise.
    pub(crate) ttl_ms: Option<u64>,
    pub(crate) key: KeySource,
    /// Kept on disk when the exchange or queue is durable (`x-cache-persistence` is not
    /// `memory`).
    pub(crate) on_disk: bool,
}

fn refused(text: &str) -> BrokerError {
    BrokerError::PreconditionFailed(text.to_owned())
}

/// A positive integer argument: an integer, or a string of digits (as the plugin takes it).
fn positive(value: &FieldValue) -> Option<u64> {
    let n = match value {
        FieldValue::LongStr(s) => std::str::from_utf8(s).ok()?.trim().parse::<i64>().ok()?,
        other => other.as_i64()?,
    };
    u64::try_from(n).ok().filter(|n| *n > 0)
}

impl DedupConfig {
    /// The deduplication an exchange of type `kind_is_dedup` (the plugin's type) or with these
    /// arguments asks for; `None` when it asks for none. Bad values are refused as the plugin
    /// refuses them.
    pub(crate) fn for_exchange(kind_is_dedup: bool, args: &FieldTable) -> Result<Option<Self>, BrokerError> {
        if !kind_is_dedup && !enabled(args)? {
            return Ok(None);
        }
        Self::from_arguments(args).map(Some)
    }

    /// The deduplication a queue with these arguments asks for (`x-message-deduplication:
    /// true`); `None` when it asks for none.
    pub(crate) fn for_queue(args: &FieldTable) -> Result<Option<Self>, BrokerError> {
        if !enabled(args)? {
            return Ok(None);
        }
        Self::from_arguments(args).map(Some)
    }

    fn from_arguments(args: &FieldTable) -> Result<Self, BrokerError> {
        let size = match args.get("x-cache-size") {
            None => DEFAULT_CACHE_SIZE,
            Some(v) => match positive(v) {
                Some(n) if n as usize <= MAX_CACHE_SIZE => n as usize,
                Some(_) => {
                    return Err(refused(&format!(
                        "Invalid argument, 'x-cache-size' must not be greater than {MAX_CACHE_SIZE}"
                    )))
                }
                None => {
                    return Err(refused(
                        "Missing or invalid argument, 'x-cache-size' must be an integer greater than 0",
                    ))
                }
            },
        };
        let ttl_ms = match args.get("x-cache-ttl") {
            None => None,
            Some(v) => Some(positive(v).ok_or_else(|| {
                refused("Invalid argument, 'x-cache-ttl' must be an integer greater than 0")
            })?),
        };
        let on_disk = match args.get("x-cache-persistence") {
            None => true,
            Some(FieldValue::LongStr(s)) if &s[..] == b"disk" => true,
            Some(FieldValue::LongStr(s)) if &s[..] == b"memory" => false,
            Some(_) => {
                return Err(refused(
                    "Invalid argument, 'x-cache-persistence' must be either 'disk' or 'memory'",
                ))
            }
        };
        let header = match args.get("x-deduplication-header") {
            None => ShortStr::from(DEFAULT_HEADER),
            Some(FieldValue::LongStr(s)) if !s.is_empty() && s.len() <= 255 => {
                ShortStr::from(String::from_utf8_lossy(s).as_ref())
            }
            Some(_) => {
                return Err(refused("Invalid argument, 'x-deduplication-header' must be a header name"))
            }
        };
        let key = match args.get("x-deduplication-key") {
            None => KeySource::Header(header),
            Some(FieldValue::LongStr(s)) if &s[..] == b"header" => KeySource::Header(header),
            Some(FieldValue::LongStr(s)) if &s[..] == b"message-id" => KeySource::MessageId,
            Some(_) => {
                return Err(refused(
                    "Invalid argument, 'x-deduplication-key' must be either 'header' or 'message-id'",
                ))
            }
        };
        Ok(DedupConfig { size, ttl_ms, key, on_disk })
    }
}

/// Whether `x-message-deduplication` asks for deduplication; a value that is not a bool is
/// refused.
fn enabled(args: &FieldTable) -> Result<bool, BrokerError> {
    match args.get("x-message-deduplication") {
        None => Ok(false),
        Some(FieldValue::Bool(b)) => Ok(*b),
        Some(_) => Err(refused("Invalid argument, 'x-message-deduplication' must be a boolean")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, FieldValue)]) -> FieldTable {
        let mut t = FieldTable::new();
        for (k, v) in pairs {
            t.insert(*k, v.clone());
        }
        t
    }

    fn s(v: &str) -> FieldValue {
        FieldValue::LongStr(bytes::Bytes::copy_from_slice(v.as_bytes()))
    }

    #[test]
    fn nothing_asked_nothing_done() {
        assert_eq!(DedupConfig::for_queue(&FieldTable::new()).unwrap(), None);
        assert_eq!(
            DedupConfig::for_exchange(false, &args(&[("x-cache-size", FieldValue::I32(5))])).unwrap(),
            None
        );
        let off = args(&[("x-message-deduplication", FieldValue::Bool(false))]);
        assert_eq!(DedupConfig::for_queue(&off).unwrap(), None);
    }

    #[test]
    fn defaults_and_both_conventions() {
        let plugin = DedupConfig::for_exchange(true, &args(&[("x-cache-size", s("20"))])).unwrap().unwrap();
        assert_eq!(plugin.size, 20);
        assert_eq!(plugin.key, KeySource::Header(DEFAULT_HEADER.into()));
        assert!(plugin.on_disk);
        let lavin = args(&[
            ("x-message-deduplication", FieldValue::Bool(true)),
            ("x-cache-ttl", FieldValue::I64(1000)),
            ("x-deduplication-header", s("my-id")),
        ]);
        let lavin = DedupConfig::for_exchange(false, &lavin).unwrap().unwrap();
        assert_eq!((lavin.size, lavin.ttl_ms), (DEFAULT_CACHE_SIZE, Some(1000)));
        assert_eq!(lavin.key, KeySource::Header("my-id".into()));
        let by_id = args(&[
            ("x-message-deduplication", FieldValue::Bool(true)),
            ("x-deduplication-key", s("message-id")),
            ("x-cache-persistence", s("memory")),
        ]);
        let by_id = DedupConfig::for_queue(&by_id).unwrap().unwrap();
        assert_eq!(by_id.key, KeySource::MessageId);
        assert!(!by_id.on_disk);
    }

    #[test]
    fn bad_values_are_refused_with_the_plugins_texts() {
        let text = |pairs: &[(&str, FieldValue)]| {
            DedupConfig::for_exchange(true, &args(pairs)).unwrap_err().to_string()
        };
        let size = "Missing or invalid argument, 'x-cache-size' must be an integer greater than 0";
        assert!(text(&[("x-cache-size", FieldValue::I32(0))]).contains(size));
        assert!(text(&[("x-cache-size", s("ten"))]).contains(size));
        assert!(text(&[("x-cache-size", FieldValue::I64(-3))]).contains(size));
        assert!(text(&[("x-cache-size", FieldValue::I64(100_000_000))]).contains("must not be greater"));
        assert!(text(&[("x-cache-ttl", FieldValue::I32(0))])
            .contains("Invalid argument, 'x-cache-ttl' must be an integer greater than 0"));
        assert!(text(&[("x-cache-persistence", s("tape"))])
            .contains("Invalid argument, 'x-cache-persistence' must be either 'disk' or 'memory'"));
        assert!(text(&[("x-deduplication-key", s("body"))]).contains("'x-deduplication-key'"));
        assert!(text(&[("x-deduplication-header", FieldValue::I32(1))]).contains("'x-deduplication-header'"));
        let e = DedupConfig::for_queue(&args(&[("x-message-deduplication", s("yes"))])).unwrap_err();
        assert!(e.to_string().contains("'x-message-deduplication' must be a boolean"));
    }
}
