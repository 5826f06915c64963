//! Why a connection ended, for the broker's log; and why a login was refused, which only the log
//! says (the client is told RabbitMQ's generic text).

use std::time::Duration;

use crate::error::{AmqpError, CONNECTION_FORCED};

/// Why a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoginRefused {
    /// No user has the name given.
    #[error("unknown user")]
    UnknownUser,
    /// The user exists but the password does not match.
    #[error("invalid password")]
    BadPassword,
    /// A loopback-only user (guest by default) connecting from another machine.
    #[error("user can only connect via localhost")]
    NotFromLoopback,
    /// The PLAIN or AMQPLAIN response could not be read.
    #[error("malformed credentials")]
    Malformed,
    /// The client's address failed to log in too often lately; the credentials were not checked.
    #[error("too many failed logins from this address")]
    TooManyFailures,
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// The client sent connection.close.
    #[error("client closed the connection")]
    ClientClosed,
    /// We sent connection.close with this error (the broker shutting down is a 320).
    #[error("{0}")]
    Error(AmqpError),
    /// The socket ended without connection.close.
    #[error("client closed the TCP connection without connection.close")]
    Eof,
    /// The socket ended before a single byte came (a TCP health check, most likely).
    #[error("client closed the TCP connection before sending anything")]
    NothingReceived,
    /// The client sent nothing for two heartbeat intervals (the negotiated interval).
    #[error("missed heartbeats from client, timeout: {}s", .0.as_secs())]
    MissedHeartbeats(Duration),
    /// The client did not reach connection.open within the handshake timeout (the timeout).
    #[error("handshake not completed within {} ms", .0.as_millis())]
    HandshakeTimeout(Duration),
    /// The credentials were refused (why).
    #[error("login refused: {0}")]
    LoginRefused(LoginRefused),
    /// The first bytes were not the AMQP 0-9-1 protocol header.
    #[error("client did not start with the AMQP 0-9-1 protocol header")]
    BadHeader,
}

impl CloseReason {
    /// Whether the end deserves a warning: the client vanished or stalled. Errors and refused
    /// logins were warned about when they happened; a shutdown or a client's close is routine.
    pub fn is_abnormal(&self) -> bool {
        matches!(self, CloseReason::Eof | CloseReason::MissedHeartbeats(_) | CloseReason::HandshakeTimeout(_))
    }

    /// Whether the broker forced it (e.g. shutting down).
    pub fn is_forced(&self) -> bool {
        matches!(self, CloseReason::Error(e) if e.code == CONNECTION_FORCED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_well_in_a_log() {
        let shutdown = CloseReason::Error(AmqpError::broker_forced("shutdown"));
        assert_eq!(
            shutdown.to_string(),
            "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
        );
        assert!(shutdown.is_forced() && !shutdown.is_abnormal());
        let missed = CloseReason::MissedHeartbeats(Duration::from_secs(60));
        assert_eq!(missed.to_string(), "missed heartbeats from client, timeout: 60s");
        assert!(missed.is_abnormal());
        let refused = CloseReason::LoginRefused(LoginRefused::NotFromLoopback);
        assert_eq!(refused.to_string(), "login refused: user can only connect via localhost");
    }
}
