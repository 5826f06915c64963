//! Filesystem-safe directory names for vhosts and queues.
//!
//! A name (any UTF-8 up to 255 bytes in AMQP) becomes lowercase hex of its bytes, so no name can
//! contain a path separator, clash by case on a case-insensitive filesystem or be `.`/`..`.
//! Hex doubles the length and filenames are limited to 255 bytes, so a name longer than
//! [`MAX_HEX_BYTES`] is encoded as `~<hex of its first bytes>-<64-bit hash>` and the full name is
//! kept in a [`NAME_FILE`] inside the directory. The empty name is `_`.

use std::fs;
use std::io;
use std::path::Path;

/// Names up to this many bytes are encoded as plain hex.
pub(crate) const MAX_HEX_BYTES: usize = 100;
/// Bytes of a long name kept readable (as hex) in its directory name.
const LONG_PREFIX_BYTES: usize = 60;
/// Holds the full name of a directory whose name is a hashed (long) encoding.
pub(crate) const NAME_FILE: &str = "NAME";

/// The directory name for `name`.
pub(crate) fn encode(name: &str) -> String {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return "_".to_owned();
    }
    if bytes.len() <= MAX_HEX_BYTES {
        return hex(bytes);
    }
    let mut prefix_len = LONG_PREFIX_BYTES;
    while !name.is_char_boundary(prefix_len) {
        prefix_len -= 1;
    }
    format!("~{}-{:016x}", hex(&bytes[..prefix_len]), fnv1a64(bytes))
}

/// Whether the encoding of a name needs a [`NAME_FILE`] to be decoded.
pub(crate) fn needs_name_file(dir_name: &str) -> bool {
    dir_name.starts_with('~')
}

/// The name a directory stands for, or `None` if `dir_name` is not one of ours. `dir` is the
/// directory itself, read only for long names.
pub(crate) fn decode(dir_name: &str, dir: &Path) -> Option<String> {
    if dir_name == "_" {
        return Some(String::new());
    }
    if needs_name_file(dir_name) {
        let name = fs::read_to_string(dir.join(NAME_FILE)).ok()?;
        return (encode(&name) == dir_name).then_some(name);
    }
    let bytes = unhex(dir_name)?;
    if bytes.len() > MAX_HEX_BYTES {
        return None;
    }
    String::from_utf8(bytes).ok()
}

/// Creates `parent/encode(name)` if needed (with its [`NAME_FILE`] for a long name) and returns
/// the path. Fails if a long name's directory belongs to another name (a hash collision).
pub(crate) fn ensure_dir(parent: &Path, name: &str) -> io::Result<std::path::PathBuf> {
    let encoded = encode(name);
    let dir = parent.join(&encoded);
    fs::create_dir_all(&dir)?;
    if needs_name_file(&encoded) {
        let file = dir.join(NAME_FILE);
        match fs::read_to_string(&file) {
            Ok(existing) if existing == name => {}
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "directory {} already belongs to another name",
                    dir.display()
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::write(&file, name)?,
            Err(e) => return Err(e),
        }
    }
    Ok(dir)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let s = s.as_bytes();
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks_exact(2).map(|p| Some(digit(p[0])? << 4 | digit(p[1])?)).collect()
}

/// FNV-1a, 64 bits: stable across Rust versions, unlike `DefaultHasher`.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_round_trip_as_hex() {
        let dir = Path::new("/nonexistent");
        for name in ["/", "orders", "a/b\\c", "..", "Ünïcødé queue", "amq.gen-XYZ"] {
            let enc = encode(name);
            assert!(enc.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{enc}");
            assert_eq!(decode(&enc, dir).as_deref(), Some(name));
        }
        assert_eq!(encode("/"), "2f");
        assert_eq!(decode(&encode(""), dir).as_deref(), Some(""));
    }

    #[test]
    fn long_names_fit_a_filename_and_round_trip_through_the_name_file() {
        let tmp = tempfile::tempdir().unwrap();
        let name: String = "é".repeat(127) + "x"; // 255 bytes, multi-byte chars at the cut
        let enc = encode(&name);
        assert!(enc.len() < 255, "{}", enc.len());
        let dir = ensure_dir(tmp.path(), &name).unwrap();
        assert_eq!(decode(&enc, &dir).as_deref(), Some(name.as_str()));
        // Same prefix, different tail: different directory.
        let other: String = "é".repeat(127) + "y";
        assert_ne!(encode(&other), enc);
        ensure_dir(tmp.path(), &name).unwrap();
    }

    #[test]
    fn foreign_names_are_not_decoded() {
        let dir = Path::new("/nonexistent");
        for bad in ["LOCK", "abc", "2F", "zz", "~00-0000000000000000"] {
            assert_eq!(decode(bad, dir), None, "{bad}");
        }
    }
}
