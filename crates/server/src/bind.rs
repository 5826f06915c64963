//! Binds the listening addresses before anything else starts, so that an address in use stops
//! the broker at once, with the address in the error, before it opens the data directory.
//!
//! The sockets are bound here but only listen once the broker is ready ([`Bound::listen`]):
//! until then a client is refused rather than left waiting in the backlog while the data
//! directory is recovered, and an open port means a serving broker (as RabbitMQ, which starts its
//! listeners last).

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Listen;

/// Connections the kernel queues for a listener before we accept them (tokio's default).
const BACKLOG: i32 = 1024;

/// A bound socket, not listening yet.
pub struct Bound {
    socket: Socket,
    addr: SocketAddr,
    tls: bool,
    optional: bool,
}

/// Binds every address. An optional one (a default the machine may lack) that fails is skipped
/// with a warning; any other failure is an error naming the address.
pub fn bind_all(listen: &[Listen]) -> anyhow::Result<Vec<Bound>> {
    let bound = bind_each(listen)?;
    if bound.is_empty() {
        anyhow::bail!("no address to listen on");
    }
    Ok(bound)
}

/// As [`bind_all`], where binding nothing is fine (an endpoint turned off, or whose only,
/// optional, default address is taken).
pub fn bind_each(listen: &[Listen]) -> anyhow::Result<Vec<Bound>> {
    let mut bound = Vec::with_capacity(listen.len());
    for l in listen {
        match bind(l, listen) {
            Ok(b) => bound.push(b),
            Err(error) if l.optional => {
                tracing::warn!(address = %l.addr, %error, "not listening on a default address this machine cannot bind");
            }
            Err(error) => anyhow::bail!("cannot listen on {}: {error}", l.addr),
        }
    }
    Ok(bound)
}

fn bind(listen: &Listen, all: &[Listen]) -> std::io::Result<Bound> {
    let addr = listen.addr;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // A restarted broker must not wait for its old connections' TIME_WAIT to end.
    socket.set_reuse_address(true)?;
    if v6_only(addr, all) {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(Bound { socket, addr, tls: listen.tls, optional: listen.optional })
}

/// An IPv6 wildcard also takes IPv4 connections on Linux (unless the system says otherwise),
/// which would collide with an IPv4 listener on the same port: with one configured, the IPv6
/// socket keeps to IPv6.
fn v6_only(addr: SocketAddr, all: &[Listen]) -> bool {
    addr.is_ipv6()
        && addr.ip().is_unspecified()
        && all.iter().any(|l| l.addr.is_ipv4() && l.addr.port() == addr.port())
}

impl Bound {
    /// A default address the broker may go without (see [`Listen::optional`]): with
    /// SO_REUSEADDR a second process binds an address in use, and finds out only when it
    /// starts listening.
    pub fn is_optional(&self) -> bool {
        self.optional
    }

    /// Whether connections on it start with a TLS handshake (amqps).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Starts listening; call inside the runtime.
    pub fn listen(self) -> anyhow::Result<tokio::net::TcpListener> {
        let addr = self.addr;
        let listen = || -> std::io::Result<tokio::net::TcpListener> {
            self.socket.listen(BACKLOG)?;
            tokio::net::TcpListener::from_std(self.socket.into())
        };
        listen().map_err(|error| anyhow::anyhow!("cannot listen on {addr}: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(addr: &str) -> Listen {
        Listen { addr: addr.parse().unwrap(), optional: false, tls: false }
    }

    #[test]
    fn an_address_in_use_is_named_in_the_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let error = bind_all(&[given(&addr)]).err().expect("bound an address in use").to_string();
        assert!(error.starts_with(&format!("cannot listen on {addr}: ")), "{error}");
        assert!(error.contains("in use"), "{error}");
    }

    #[test]
    fn an_optional_address_that_fails_is_skipped() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let optional = Listen { addr: taken.local_addr().unwrap(), optional: true, tls: false };
        let bound = bind_all(&[given("127.0.0.1:0"), optional]).unwrap();
        assert_eq!(bound.len(), 1);
        assert!(bind_all(&[optional]).is_err(), "nothing bound is an error");
    }

    #[test]
    fn an_ipv6_wildcard_keeps_to_ipv6_beside_an_ipv4_listener_on_its_port() {
        let all = [given("0.0.0.0:5672"), given("[::]:5672"), given("[::]:5673"), given("[::1]:5672")];
        let flags: Vec<bool> = all.iter().map(|l| v6_only(l.addr, &all)).collect();
        assert_eq!(flags, [false, true, false, false]);
    }
}
