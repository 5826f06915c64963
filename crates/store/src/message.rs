//! A published message as queues hold it: cheap to clone, whatever the body size.

use std::time::Duration;

use bytes::Bytes;
use warren_message::{BasicProperties, ShortStr};

/// Every field is a reference-counted slice, usually of the publisher's read buffer: a message
/// routed to N queues is N sets of reference counts, not N copies.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// The exchange it was published to.
    pub exchange: ShortStr,
    /// The routing key it was published with.
    pub routing_key: ShortStr,
    /// The content header's property flags and list, byte for byte as published.
    pub properties: Bytes,
    /// The body, all its body frames joined.
    pub body: Bytes,
}

impl Message {
    /// The per-message `expiration` property as a duration, when set and valid.
    /// Only messages whose property flags say it is present pay for decoding.
    pub fn expiration(&self) -> Option<Duration> {
        if !warren_message::properties::has_property(&self.properties, warren_message::properties::EXPIRATION)
        {
            return None;
        }
        let props = BasicProperties::decode(&self.properties).ok()?;
        let ms: u64 = props.expiration?.parse().ok()?;
        Some(Duration::from_millis(ms))
    }
}

/// A message in a queue: its queue-local offset orders it, and a requeue puts it back by offset.
#[derive(Clone, Debug)]
pub struct QueuedMessage {
    /// Where the message stands in its queue: offsets only grow, in append order.
    pub offset: u64,
    /// Whether the message was delivered before (or may have been, after a restart).
    pub redelivered: bool,
    /// How many times the message was delivered and returned to the queue (`x-delivery-limit`
    /// queues count; deliveries then carry it as `x-delivery-count`). Kept on disk for stored
    /// messages (see [`crate::QueueLog::note_return`]).
    pub delivery_count: u32,
    /// When the message expires (queue TTL or per-message expiration), if ever.
    pub expires_at: Option<std::time::Instant>,
    /// Whether the message has a record in the queue's log on disk (settling it writes an ack).
    pub stored: bool,
    /// The message itself.
    pub message: Message,
}
