//! The forms RabbitMQ accepts for its resource limits, and what they come to in bytes:
//! `disk_free_limit` (bytes, a size with a unit, or relative to memory) and
//! `vm_memory_high_watermark` (a fraction of memory, or an absolute size).
//!
//! On the command line and in strings: `50000000`, `50MB`, `500MiB`, `mem_relative:1.0`;
//! `0.4`, `absolute:1GB`. In the TOML file also tables: `{ mem_relative = 1.0 }`,
//! `{ absolute = "1GB" }`, `{ relative = 0.4 }`.

use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// RabbitMQ's default `disk_free_limit`: 50 MB.
pub const DEFAULT_DISK_FREE_LIMIT: u64 = 50_000_000;
/// RabbitMQ's default `vm_memory_high_watermark`: 40% of the memory available.
pub const DEFAULT_MEMORY_WATERMARK: f64 = 0.4;

/// How much free disk space publishers need.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DiskFreeLimit {
    /// A number of bytes; 0 turns the free-space alarm off.
    Bytes(u64),
    /// A multiple of the memory available to the broker (RabbitMQ's `{mem_relative, 1.0}`):
    /// room to write out everything that memory could hold.
    MemRelative(f64),
}

impl Default for DiskFreeLimit {
    fn default() -> Self {
        DiskFreeLimit::Bytes(DEFAULT_DISK_FREE_LIMIT)
    }
}

impl DiskFreeLimit {
    /// The limit in bytes, given the memory available to the broker.
    pub fn bytes(&self, memory: u64) -> u64 {
        match *self {
            DiskFreeLimit::Bytes(n) => n,
            DiskFreeLimit::MemRelative(f) => scale(memory, f),
        }
    }
}

/// The memory use above which publishers are blocked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MemoryWatermark {
    /// A fraction of the memory available to the broker (RAM, or its cgroup's limit if lower).
    Relative(f64),
    /// A number of bytes.
    Absolute(u64),
}

impl Default for MemoryWatermark {
    fn default() -> Self {
        MemoryWatermark::Relative(DEFAULT_MEMORY_WATERMARK)
    }
}

impl MemoryWatermark {
    /// The watermark in bytes, given the memory available to the broker.
    pub fn bytes(&self, memory: u64) -> u64 {
        match *self {
            MemoryWatermark::Relative(f) => scale(memory, f),
            MemoryWatermark::Absolute(n) => n,
        }
    }
}

fn scale(bytes: u64, factor: f64) -> u64 {
    // Saturates: f64 to u64 casts clamp.
    (bytes as f64 * factor) as u64
}

/// A size in bytes as RabbitMQ reads one: digits and an optional unit, `k`/`kiB`, `M`/`MiB`,
/// `G`/`GiB` (powers of 1024) or `kB`, `MB`, `GB` (powers of 1000), in any case.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let bad =
        || format!("{text:?} is not a size: give bytes, or a number with a unit such as 50MB or 500MiB");
    let n: u64 = number.parse().map_err(|_| bad())?;
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(factor).ok_or_else(|| format!("{text:?} is too large"))
}

fn parse_fraction(text: &str, what: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(f) => fraction(f, what),
        Err(_) => Err(format!("{what} {text:?} is not a number")),
    }
}

fn fraction(f: f64, what: &str) -> Result<f64, String> {
    if f.is_finite() && f >= 0.0 {
        Ok(f)
    } else {
        Err(format!("{what} must be a number of at least 0, not {f}"))
    }
}

impl FromStr for DiskFreeLimit {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().strip_prefix("mem_relative:") {
            Some(f) => parse_fraction(f, "mem_relative").map(DiskFreeLimit::MemRelative),
            None => parse_size(text).map(DiskFreeLimit::Bytes),
        }
    }
}

impl FromStr for MemoryWatermark {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().strip_prefix("absolute:") {
            Some(size) => parse_size(size).map(MemoryWatermark::Absolute),
            None => parse_fraction(text, "vm_memory_high_watermark").map(MemoryWatermark::Relative),
        }
    }
}

/// A size in the file: an integer, or a string with a unit.
fn size_value(value: &toml::Value) -> Result<u64, String> {
    match value {
        toml::Value::Integer(n) => u64::try_from(*n).map_err(|_| format!("a size cannot be negative: {n}")),
        toml::Value::String(s) => parse_size(s),
        other => Err(format!("expected a size such as 50000000 or \"50MB\", found {other}")),
    }
}

fn fraction_value(value: &toml::Value, what: &str) -> Result<f64, String> {
    match value {
        toml::Value::Float(f) => fraction(*f, what),
        toml::Value::Integer(n) => fraction(*n as f64, what),
        other => Err(format!("{what} must be a number, found {other}")),
    }
}

/// The one entry of a table such as `{ absolute = "1GB" }`.
fn single_entry(table: &toml::Table) -> Result<(&str, &toml::Value), String> {
    let mut entries = table.iter();
    match (entries.next(), entries.next()) {
        (Some((key, value)), None) => Ok((key.as_str(), value)),
        _ => Err(format!("expected a table with one entry, found {table}")),
    }
}

impl TryFrom<toml::Value> for DiskFreeLimit {
    type Error = String;

    fn try_from(value: toml::Value) -> Result<Self, String> {
        match &value {
            toml::Value::String(s) => s.parse(),
            toml::Value::Table(table) => match single_entry(table)? {
                ("mem_relative", f) => fraction_value(f, "mem_relative").map(DiskFreeLimit::MemRelative),
                ("absolute", size) => size_value(size).map(DiskFreeLimit::Bytes),
                (key, _) => Err(format!("disk_free_limit takes mem_relative or absolute, not {key}")),
            },
            other => size_value(other).map(DiskFreeLimit::Bytes),
        }
    }
}

impl TryFrom<toml::Value> for MemoryWatermark {
    type Error = String;

    fn try_from(value: toml::Value) -> Result<Self, String> {
        const WHAT: &str = "vm_memory_high_watermark";
        match &value {
            toml::Value::String(s) => s.parse(),
            toml::Value::Table(table) => match single_entry(table)? {
                ("relative", f) => fraction_value(f, WHAT).map(MemoryWatermark::Relative),
                ("absolute", size) => size_value(size).map(MemoryWatermark::Absolute),
                (key, _) => Err(format!("{WHAT} takes relative or absolute, not {key}")),
            },
            other => fraction_value(other, WHAT).map(MemoryWatermark::Relative),
        }
    }
}

impl<'de> Deserialize<'de> for DiskFreeLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Not `Value::try_into`: that one deserializes, and would come back here.
        DiskFreeLimit::try_from(toml::Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for MemoryWatermark {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        MemoryWatermark::try_from(toml::Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        disk_free_limit: Option<DiskFreeLimit>,
        vm_memory_high_watermark: Option<MemoryWatermark>,
    }

    fn disk(toml_value: &str) -> Result<DiskFreeLimit, toml::de::Error> {
        toml::from_str::<File>(&format!("disk_free_limit = {toml_value}")).map(|f| f.disk_free_limit.unwrap())
    }

    fn memory(toml_value: &str) -> Result<MemoryWatermark, toml::de::Error> {
        toml::from_str::<File>(&format!("vm_memory_high_watermark = {toml_value}"))
            .map(|f| f.vm_memory_high_watermark.unwrap())
    }

    #[test]
    fn sizes_take_rabbitmq_units() {
        let cases = [
            ("0", 0),
            ("50000000", 50_000_000),
            ("50MB", 50_000_000),
            ("50mb", 50_000_000),
            ("1GB", 1_000_000_000),
            ("2kB", 2_000),
            ("500MiB", 500 << 20),
            ("500M", 500 << 20),
            ("500m", 500 << 20),
            ("3k", 3 << 10),
            ("3KiB", 3 << 10),
            ("1G", 1 << 30),
            ("1GiB", 1 << 30),
            (" 7 ", 7),
        ];
        for (text, bytes) in cases {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
        for bad in ["", "MB", "-1", "1.5GB", "50 MB", "50TB", "1e9", "99999999999999999999"] {
            assert!(parse_size(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_size("18446744073709551615").is_ok());
        assert!(parse_size("18446744073709551615k").is_err(), "overflow");
    }

    #[test]
    fn disk_free_limit_forms() {
        assert_eq!(disk("50000000").unwrap(), DiskFreeLimit::Bytes(50_000_000));
        assert_eq!(disk("\"1GB\"").unwrap(), DiskFreeLimit::Bytes(1_000_000_000));
        assert_eq!(disk("{ mem_relative = 1.5 }").unwrap(), DiskFreeLimit::MemRelative(1.5));
        assert_eq!(disk("{ mem_relative = 2 }").unwrap(), DiskFreeLimit::MemRelative(2.0));
        assert_eq!(disk("{ absolute = \"50MiB\" }").unwrap(), DiskFreeLimit::Bytes(50 << 20));
        assert_eq!(disk("\"mem_relative:1.0\"").unwrap(), DiskFreeLimit::MemRelative(1.0));
        assert_eq!("mem_relative:1.0".parse(), Ok(DiskFreeLimit::MemRelative(1.0)));
        assert_eq!("50MB".parse(), Ok(DiskFreeLimit::Bytes(50_000_000)));
        assert_eq!("9223372036854775807".parse(), Ok(DiskFreeLimit::Bytes(i64::MAX as u64)));
        for bad in ["-5", "1.5", "\"lots\"", "{ relative = 1.0 }", "{ mem_relative = -1.0 }", "{}", "[1]"] {
            assert!(disk(bad).is_err(), "{bad} was accepted");
        }
        assert!("mem_relative:x".parse::<DiskFreeLimit>().is_err());
        assert_eq!(DiskFreeLimit::default(), DiskFreeLimit::Bytes(50_000_000));
        assert_eq!(DiskFreeLimit::MemRelative(1.5).bytes(1000), 1500);
        assert_eq!(DiskFreeLimit::Bytes(7).bytes(1000), 7);
    }

    #[test]
    fn memory_watermark_forms() {
        assert_eq!(memory("0.4").unwrap(), MemoryWatermark::Relative(0.4));
        assert_eq!(memory("1").unwrap(), MemoryWatermark::Relative(1.0));
        assert_eq!(memory("{ relative = 0.6 }").unwrap(), MemoryWatermark::Relative(0.6));
        assert_eq!(memory("{ absolute = \"1GB\" }").unwrap(), MemoryWatermark::Absolute(1_000_000_000));
        assert_eq!(memory("{ absolute = 1073741824 }").unwrap(), MemoryWatermark::Absolute(1 << 30));
        assert_eq!(memory("\"absolute:2GiB\"").unwrap(), MemoryWatermark::Absolute(2 << 30));
        assert_eq!("0.5".parse(), Ok(MemoryWatermark::Relative(0.5)));
        assert_eq!("absolute:100MB".parse(), Ok(MemoryWatermark::Absolute(100_000_000)));
        for bad in ["-0.4", "\"1GB\"", "{ absolute = \"lots\" }", "{ mem_relative = 1.0 }", "nan"] {
            assert!(memory(bad).is_err(), "{bad} was accepted");
        }
        assert_eq!(MemoryWatermark::default(), MemoryWatermark::Relative(0.4));
        assert_eq!(MemoryWatermark::Relative(0.4).bytes(1000), 400);
        assert_eq!(MemoryWatermark::Absolute(5).bytes(1000), 5);
    }
}
