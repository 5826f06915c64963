//! A published message as queues hold it: cheap to clone, whatever the body size.

use bytes::Bytes;
use warren_protocol::ShortStr;

/// Every field is a reference-counted slice, usually of the publisher's read buffer: a message
/// routed to N queues is N sets of reference counts, not N copies.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    /// The content header's property flags and list, byte for byte as published.
    pub properties: Bytes,
    pub body: Bytes,
}

/// A message in a queue: its queue-local offset orders it, and a requeue puts it back by offset.
#[derive(Clone, Debug)]
pub struct QueuedMessage {
    pub offset: u64,
    pub redelivered: bool,
    pub message: Message,
}
