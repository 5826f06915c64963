//! A minimal HTTP/1.1 client for the management API tests: one request per connection, basic
//! auth, the status and the body back.

use std::net::SocketAddr;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    /// The status line and header lines, as sent.
    pub head: String,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends `method path` with basic auth as `user:password` and an optional JSON body.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    user: &str,
    password: &str,
    body: Option<&str>,
) -> Answer {
    request_with(addr, method, path, (user, password), body, "").await
}

/// As [`request`], with `extra` header lines (each ending in `\r\n`).
pub async fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    (user, password): (&str, &str),
    body: Option<&str>,
    extra: &str,
) -> Answer {
    let mut stream =
        super::within(tokio::net::TcpStream::connect(addr)).await.expect("connect to the management port");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    super::within(stream.read_to_end(&mut raw)).await.expect("read the answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    let body = if chunked { dechunk(rest) } else { rest.to_owned() };
    Answer { status, body, head: head.to_owned() }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}
