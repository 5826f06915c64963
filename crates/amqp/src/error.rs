//! RabbitMQ's reply codes for the broker core's errors: which are soft (the channel closes) and
//! which hard (the connection closes), with the core's RabbitMQ-worded texts.

use warren_broker::BrokerError;
use warren_connection::error as code;
use warren_connection::AmqpError;

/// The AMQP error a broker error is reported as.
pub fn amqp_error(e: BrokerError) -> AmqpError {
    use BrokerError::*;
    let c = match &e {
        ExchangeNotFound { .. } | QueueNotFound { .. } => code::NOT_FOUND,
        Inequivalent(_)
        | InUse { .. }
        | NotEmpty { .. }
        | InvalidXMatch(_)
        | PreconditionFailed(_)
        | UserIdMismatch { .. }
        | InvalidArg { .. }
        | InvalidArgType { .. }
        | DeliveryModeUnknown(_)
        | InvalidExpiration { .. } => code::PRECONDITION_FAILED,
        ReservedName { .. }
        | DefaultExchange
        | SystemExchange { .. }
        | ExclusiveConsumer { .. }
        | AccessRefused { .. }
        | TopicAccessRefused { .. }
        | InternalExchange { .. } => code::ACCESS_REFUSED,
        VhostQueueLimit { .. } => code::PRECONDITION_FAILED,
        VhostConnectionLimit { .. } | UserConnectionLimit { .. } | UserChannelLimit { .. } => {
            code::NOT_ALLOWED
        }
        UserNotFound(_) | UserExists(_) | VhostExists(_) | InvalidPattern(_) | Policy(_) => {
            code::PRECONDITION_FAILED
        }
        UnknownExchangeType(_) => code::COMMAND_INVALID,
        ExclusiveLocked { .. } => code::RESOURCE_LOCKED,
        VhostNotFound(_) | VhostAccessRefused { .. } => code::NOT_ALLOWED,
        Storage(_) | ExchangeTypeFailure(_) => code::INTERNAL_ERROR,
    };
    AmqpError::new(c, e.to_string())
}
