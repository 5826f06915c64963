//! What the handshake asks of the broker, with the node's connection limit in front of the
//! session: RabbitMQ (3.11.x and later) checks it at connection.open, before the vhost.

use std::time::Instant;

use warren_amqp::Session;
use warren_connection::{AmqpError, Host, LoginRefused};

use crate::connections::Connections;

pub struct Admission<'a> {
    pub session: &'a mut Session,
    pub connections: &'a Connections,
}

impl Host for Admission<'_> {
    fn authenticate(&mut self, username: &str, password: &str, now: Instant) -> Result<(), LoginRefused> {
        self.session.authenticate(username, password, now)
    }

    fn authenticate_external(&mut self, username: &str, now: Instant) -> Result<(), LoginRefused> {
        self.session.authenticate_external(username, now)
    }

    fn login_refused(&mut self, username: &str, mechanism: &str, reason: LoginRefused, now: Instant) {
        self.session.login_refused(username, mechanism, reason, now)
    }

    fn open_vhost(&mut self, username: &str, vhost: &str) -> Result<(), AmqpError> {
        if let Some(limit) = self.connections.over_limit() {
            return Err(over_limit(limit));
        }
        self.session.open_vhost(username, vhost)
    }

    fn open_channel(&mut self) -> Result<(), AmqpError> {
        self.session.open_channel()
    }
}

/// RabbitMQ's refusal (rabbit_reader's is_over_node_connection_limit).
fn over_limit(limit: usize) -> AmqpError {
    AmqpError::not_allowed(format!("connection refused: node connection limit ({limit}) is reached"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_refusal_reads_as_rabbitmqs() {
        assert_eq!(
            super::over_limit(2).reply_text(),
            "NOT_ALLOWED - connection refused: node connection limit (2) is reached"
        );
    }
}
