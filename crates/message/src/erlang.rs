//! Erlang's way of printing terms, which RabbitMQ's reply texts quote (binaries in frame errors
//! and argument errors): clients and operators match on these texts, so Warren prints the same.

/// A binary as Erlang's `~p` prints it: `<<"text">>` when every byte is printable Latin-1,
/// `<<1,2,3>>` otherwise.
pub fn binary(bytes: &[u8]) -> String {
    if !bytes.is_empty() && bytes.iter().all(|&b| printable(b)) {
        let mut out = String::from("<<\"");
        for &b in bytes {
            match b {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                b'\n' => out.push_str("\\n"),
                b'\r' => out.push_str("\\r"),
                b'\t' => out.push_str("\\t"),
                0x0b => out.push_str("\\v"),
                0x08 => out.push_str("\\b"),
                0x0c => out.push_str("\\f"),
                0x1b => out.push_str("\\e"),
                _ => out.push(char::from(b)),
            }
        }
        out.push_str("\">>");
        return out;
    }
    let numbers: Vec<String> = bytes.iter().map(u8::to_string).collect();
    format!("<<{}>>", numbers.join(","))
}

fn printable(b: u8) -> bool {
    matches!(b, 0x20..=0x7e | 0xa0..=0xff | b'\n' | b'\r' | b'\t' | 0x0b | 0x08 | 0x0c | 0x1b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binaries_print_like_erlang() {
        assert_eq!(binary(b""), "<<>>");
        assert_eq!(binary(b"xx"), "<<\"xx\">>");
        assert_eq!(binary(&[0, 20, 0, 10, 0]), "<<0,20,0,10,0>>");
        assert_eq!(binary(b"a\"b"), "<<\"a\\\"b\">>");
    }
}
