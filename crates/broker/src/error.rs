//! Broker errors, with RabbitMQ's reply texts. Protocol faces map them to their own codes
//! (the AMQP session maps them to reply codes).

/// Why the core refused an operation. The texts are RabbitMQ's; a protocol face adds its own
/// code (the AMQP session: `warren_amqp::amqp_error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// The exchange named does not exist.
    #[error("no exchange '{name}' in vhost '{vhost}'")]
    ExchangeNotFound {
        /// The exchange's name.
        name: String,
        /// The vhost looked in.
        vhost: String,
    },
    /// The queue named does not exist.
    #[error("no queue '{name}' in vhost '{vhost}'")]
    QueueNotFound {
        /// The queue's name.
        name: String,
        /// The vhost looked in.
        vhost: String,
    },
    /// A redeclare differs from the existing entity (boxed: it is the largest variant).
    #[error("{0}")]
    Inequivalent(Box<Inequivalence>),
    /// A declare of an exchange or queue whose name starts with `amq.`.
    #[error("{kind} name '{name}' contains reserved prefix 'amq.*'")]
    ReservedName {
        /// `"exchange"` or `"queue"`.
        kind: &'static str,
        /// The name declared.
        name: String,
    },
    /// Anything but publishing done to the default exchange (named ""): declaring it, deleting
    /// it, binding to or from it.
    #[error("operation not permitted on the default exchange")]
    DefaultExchange,
    /// An exchange type Warren does not have (the type named).
    #[error("unknown exchange type '{0}'")]
    UnknownExchangeType(String),
    /// An exclusive queue used by a connection other than its owner, or a redeclare whose
    /// `exclusive` differs.
    #[error("cannot obtain exclusive access to locked queue '{name}' in vhost '{vhost}'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.")]
    ExclusiveLocked {
        /// The queue's name.
        name: String,
        /// Its vhost.
        vhost: String,
    },
    /// A consume on a queue that has an exclusive consumer, or an exclusive consume on a queue
    /// that has consumers.
    #[error("queue '{name}' in vhost '{vhost}' in exclusive use")]
    ExclusiveConsumer {
        /// The queue's name.
        name: String,
        /// Its vhost.
        vhost: String,
    },
    /// A delete with `if-unused` of an exchange that has bindings or a queue that has consumers.
    #[error("{kind} '{name}' in vhost '{vhost}' in use")]
    InUse {
        /// `"exchange"` or `"queue"`.
        kind: &'static str,
        /// The name.
        name: String,
        /// Its vhost.
        vhost: String,
    },
    /// A delete with `if-empty` of a queue that has ready messages.
    #[error("queue '{name}' in vhost '{vhost}' not empty")]
    NotEmpty {
        /// The queue's name.
        name: String,
        /// Its vhost.
        vhost: String,
    },
    /// A publish to an internal exchange (only exchange-to-exchange bindings reach those).
    #[error("cannot publish to internal exchange '{name}' in vhost '{vhost}'")]
    InternalExchange {
        /// The exchange's name.
        name: String,
        /// Its vhost.
        vhost: String,
    },
    /// A delete of an `amq.` exchange.
    #[error("deletion of system exchange '{name}' in vhost '{vhost}' not allowed")]
    SystemExchange {
        /// The exchange's name.
        name: String,
        /// Its vhost.
        vhost: String,
    },
    /// A binding to a headers exchange whose `x-match` is not a known mode (the whole text).
    #[error("{0}")]
    InvalidXMatch(String),
    /// A PRECONDITION_FAILED whose text is given whole (exchange-type plugin checks).
    #[error("{0}")]
    PreconditionFailed(String),
    /// A message whose `user-id` property is not the user who published it.
    #[error("user_id property set to '{claimed}' but authenticated user was '{user}'")]
    UserIdMismatch {
        /// The `user-id` the message carries.
        claimed: String,
        /// The authenticated user.
        user: String,
    },
    /// The store failed (the whole text, with the store's error).
    #[error("{0}")]
    Storage(String),
    /// An exchange type's code failed on its input, where RabbitMQ's plugin crashes (which
    /// closes the connection with INTERNAL_ERROR).
    #[error("{0}")]
    ExchangeTypeFailure(String),
    /// A queue.declare or basic.consume argument of the wrong type or out of range.
    #[error("invalid arg '{arg}' for queue '{queue}' in vhost '{vhost}': {reason}")]
    InvalidArg {
        /// The argument's name.
        arg: String,
        /// The queue declared or consumed from.
        queue: String,
        /// Its vhost.
        vhost: String,
        /// What is wrong, as RabbitMQ prints it (an Erlang term).
        reason: String,
    },
    /// An exchange argument naming another entity given as something other than a string.
    #[error("invalid type '{type_name}' for arg '{arg}' in exchange '{exchange}' in vhost '{vhost}'")]
    InvalidArgType {
        /// The argument's name.
        arg: &'static str,
        /// The type it has, as RabbitMQ names field types (see [`type_name`](crate::type_name)).
        type_name: &'static str,
        /// The exchange declared.
        exchange: String,
        /// Its vhost.
        vhost: String,
    },
    /// A message whose `delivery-mode` is neither 1 nor 2 (the value).
    #[error("invalid message: {{delivery_mode_unknown,{0}}}")]
    DeliveryModeUnknown(u8),
    /// A message whose `expiration` property is not a non-negative integer of milliseconds.
    #[error("invalid expiration '{value}': {reason}")]
    InvalidExpiration {
        /// The property as sent.
        value: String,
        /// What is wrong, as RabbitMQ prints it.
        reason: String,
    },
    /// A vhost that does not exist (its name).
    #[error("vhost {0} not found")]
    VhostNotFound(String),
    /// A vhost the user may not use.
    #[error("access to vhost '{vhost}' refused for user '{user}'")]
    VhostAccessRefused {
        /// The vhost.
        vhost: String,
        /// The user.
        user: String,
    },
    /// An operation the user's permissions do not allow.
    #[error("access to {kind} '{name}' in vhost '{vhost}' refused for user '{user}'")]
    AccessRefused {
        /// `"exchange"` or `"queue"`.
        kind: &'static str,
        /// The resource (`amq.default` for the default exchange).
        name: String,
        /// Its vhost.
        vhost: String,
        /// The user.
        user: String,
    },
    /// A routing or binding key the user's topic permissions do not allow.
    #[error("access to topic '{routing_key}' in exchange '{exchange}' in vhost '{vhost}' refused for user '{user}'")]
    TopicAccessRefused {
        /// The key.
        routing_key: String,
        /// The topic exchange.
        exchange: String,
        /// Its vhost.
        vhost: String,
        /// The user.
        user: String,
    },
    /// The vhost's `max-connections` is reached.
    #[error("access to vhost '{vhost}' refused for user '{user}': connection limit ({limit}) is reached")]
    VhostConnectionLimit {
        /// The vhost.
        vhost: String,
        /// The user connecting.
        user: String,
        /// The limit.
        limit: u64,
    },
    /// The user's `max-connections` is reached.
    #[error("connection refused for user '{user}': user connection limit ({limit}) is reached")]
    UserConnectionLimit {
        /// The user.
        user: String,
        /// The limit.
        limit: u64,
    },
    /// The user's `max-channels` is reached.
    #[error(
        "number of channels opened for user '{user}' has reached the maximum allowed user limit of ({limit})"
    )]
    UserChannelLimit {
        /// The user.
        user: String,
        /// The limit.
        limit: u64,
    },
    /// The vhost's `max-queues` is reached.
    #[error("cannot declare queue '{queue}': queue limit in vhost '{vhost}' ({limit}) is reached")]
    VhostQueueLimit {
        /// The queue declared.
        queue: String,
        /// The vhost.
        vhost: String,
        /// The limit.
        limit: u64,
    },
    /// An admin command naming a user that does not exist.
    #[error("no such user '{0}'")]
    UserNotFound(String),
    /// Adding a user that exists.
    #[error("user '{0}' already exists")]
    UserExists(String),
    /// Adding a vhost that exists.
    #[error("vhost '{0}' already exists")]
    VhostExists(String),
    /// A permission expression that does not compile.
    #[error("invalid regular expression: {0}")]
    InvalidPattern(String),
    /// A policy refused or not found.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
}

/// A redeclare whose property or argument differs from the existing entity's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("inequivalent arg '{arg}' for {kind} '{name}' in vhost '{vhost}': received {received} but current is {current}")]
pub struct Inequivalence {
    /// `"exchange"` or `"queue"`.
    pub kind: &'static str,
    /// The entity's name.
    pub name: String,
    /// Its vhost.
    pub vhost: String,
    /// The property or argument that differs (`durable`, `type`, `x-message-ttl`...).
    pub arg: String,
    /// The value the redeclare gave, as RabbitMQ describes it.
    pub received: String,
    /// The existing entity's value, as RabbitMQ describes it.
    pub current: String,
}
