//! Broker errors, with RabbitMQ's reply texts. Protocol faces map them to their own codes
//! (the AMQP session maps them to reply codes).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    #[error("no exchange '{name}' in vhost '{vhost}'")]
    ExchangeNotFound { name: String, vhost: String },
    #[error("no queue '{name}' in vhost '{vhost}'")]
    QueueNotFound { name: String, vhost: String },
    #[error("{0}")]
    Inequivalent(Box<Inequivalence>),
    #[error("{kind} name '{name}' contains reserved prefix 'amq.*'")]
    ReservedName { kind: &'static str, name: String },
    #[error("operation not permitted on the default exchange")]
    DefaultExchange,
    #[error("unknown exchange type '{0}'")]
    UnknownExchangeType(String),
    #[error("cannot obtain exclusive access to locked queue '{name}' in vhost '{vhost}'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.")]
    ExclusiveLocked { name: String, vhost: String },
    #[error("queue '{name}' in vhost '{vhost}' in exclusive use")]
    ExclusiveConsumer { name: String, vhost: String },
    #[error("{kind} '{name}' in vhost '{vhost}' in use")]
    InUse { kind: &'static str, name: String, vhost: String },
    #[error("queue '{name}' in vhost '{vhost}' not empty")]
    NotEmpty { name: String, vhost: String },
    #[error("cannot publish to internal exchange '{name}' in vhost '{vhost}'")]
    InternalExchange { name: String, vhost: String },
    #[error("deletion of system exchange '{name}' in vhost '{vhost}' not allowed")]
    SystemExchange { name: String, vhost: String },
    #[error("{0}")]
    InvalidXMatch(String),
    /// A PRECONDITION_FAILED whose text is given whole (exchange-type plugin checks).
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("user_id property set to '{claimed}' but authenticated user was '{user}'")]
    UserIdMismatch { claimed: String, user: String },
    #[error("{0}")]
    Storage(String),
    /// An exchange type's code failed on its input, where RabbitMQ's plugin crashes (which
    /// closes the connection with INTERNAL_ERROR).
    #[error("{0}")]
    ExchangeTypeFailure(String),
    #[error("invalid arg '{arg}' for queue '{queue}' in vhost '{vhost}': {reason}")]
    InvalidArg { arg: String, queue: String, vhost: String, reason: String },
    /// An exchange argument naming another entity given as something other than a string.
    #[error("invalid type '{type_name}' for arg '{arg}' in exchange '{exchange}' in vhost '{vhost}'")]
    InvalidArgType { arg: &'static str, type_name: &'static str, exchange: String, vhost: String },
    #[error("invalid message: {{delivery_mode_unknown,{0}}}")]
    DeliveryModeUnknown(u8),
    #[error("invalid expiration '{value}': {reason}")]
    InvalidExpiration { value: String, reason: String },
    #[error("vhost {0} not found")]
    VhostNotFound(String),
    #[error("access to vhost '{vhost}' refused for user '{user}'")]
    VhostAccessRefused { vhost: String, user: String },
}

/// A redeclare whose property or argument differs from the existing entity's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("inequivalent arg '{arg}' for {kind} '{name}' in vhost '{vhost}': received {received} but current is {current}")]
pub struct Inequivalence {
    pub kind: &'static str,
    pub name: String,
    pub vhost: String,
    pub arg: String,
    pub received: String,
    pub current: String,
}
