//! The parts of the URLs the command-line tools take (`http://`, `amqp://`): percent escapes
//! (RFC 3986) and `host[:port]` with IPv6 in brackets; also the management API's path segments.

/// `s` with everything but unreserved characters escaped: one path segment (`/` is `%2F`).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `s` with its `%XX` escapes decoded; None if one is malformed or the result is not UTF-8.
pub fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`: the host (without brackets) and the port if
/// given; None if the host is empty or the port not a number.
pub fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match s.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse().ok()?),
        None => None,
    };
    Some((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    #[test]
    fn encoding_round_trips_and_escapes_what_a_segment_cannot_hold() {
        assert_eq!(super::encode("/"), "%2F");
        assert_eq!(super::encode("a b/c.d~e"), "a%20b%2Fc.d~e");
        assert_eq!(super::decode("%2Fx%20y").as_deref(), Some("/x y"));
        assert_eq!(super::decode("%2"), None);
        assert_eq!(super::decode("%ff"), None);
    }
}
