//! The session's permission checks, made where RabbitMQ's channel makes them: each operation
//! asks for configure, write or read on the exchanges and queues it names (see
//! `docs/access-control.md` for the table), plus topic permissions on topic exchanges.

use warren_broker::{ExchangeKind, Permission, Resource, UserAccess};
use warren_connection::AmqpError;
use warren_protocol::ShortStr;

use super::Session;
use crate::error::amqp_error;

impl Session {
    fn checks(&mut self) -> Result<&mut UserAccess, AmqpError> {
        self.checks.as_mut().ok_or_else(|| AmqpError::command_invalid("connection is not open"))
    }

    /// Refuses (403) unless the user has `permission` on the named exchange or queue.
    pub(super) fn check(
        &mut self,
        permission: Permission,
        kind: Resource,
        name: &ShortStr,
    ) -> Result<(), AmqpError> {
        self.checks()?.check(permission, kind, name).map_err(amqp_error)
    }

    /// Refuses (403) a routing or binding key the user's topic permissions on `exchange` do not
    /// allow, if it is a topic exchange (others, and exchanges that do not exist, are not
    /// checked here).
    pub(super) fn check_topic(
        &mut self,
        permission: Permission,
        exchange: &str,
        key: &str,
    ) -> Result<(), AmqpError> {
        if !self.checks()?.has_topic_permissions() {
            return Ok(());
        }
        let is_topic = self.vhost()?.exchange(exchange).is_ok_and(|x| x.kind == ExchangeKind::Topic);
        if !is_topic {
            return Ok(());
        }
        self.checks()?.check_topic(permission, exchange, key).map_err(amqp_error)
    }

    /// A publish's checks: write on the exchange, then the routing key against topic
    /// permissions on a topic exchange.
    #[inline]
    pub(super) fn check_publish(
        &mut self,
        exchange: &ShortStr,
        routing_key: &ShortStr,
    ) -> Result<(), AmqpError> {
        if self.checks.as_ref().is_some_and(|c| c.publish_allowed_fast(exchange)) {
            return Ok(());
        }
        self.check_publish_fully(exchange, routing_key)
    }

    #[cold]
    #[inline(never)]
    fn check_publish_fully(&mut self, exchange: &ShortStr, routing_key: &ShortStr) -> Result<(), AmqpError> {
        self.check(Permission::Write, Resource::Exchange, exchange)?;
        self.check_topic(Permission::Write, exchange, routing_key)
    }

    /// Whether the user may put another user's name in `user_id` (tag `impersonator`).
    pub(super) fn may_impersonate(&mut self) -> bool {
        self.checks.as_mut().is_some_and(|c| c.may_impersonate())
    }
}
