//! The `x-delayed-message` exchange type (RabbitMQ's delayed-message exchange plugin): a message
//! published with an `x-delay` header (milliseconds) is held by the exchange and routed, with
//! the exchange's `x-delayed-type` routing, once the delay has passed.
//!
//! A durable exchange keeps its held messages in a log of the store, under the reserved queue
//! name [`log_name`] (`amq.` names cannot be declared by clients): each held message is appended
//! with its due time as the record's expiry (stored as wall-clock time, so a restart keeps the
//! schedule) and settled once it has been routed. A non-durable exchange holds them in memory.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use parking_lot::Mutex;
use warren_message::{BasicProperties, FieldTable, FieldValue, ShortStr};
use warren_store::QueueLog;

use warren_store::Message;

/// The longest delay the plugin honours (Erlang's timer limit); longer ones route at once.
pub(crate) const MAX_DELAY_MS: i64 = 4_294_967_295;

/// The store log name of a durable delayed-message exchange's held messages.
pub fn log_name(exchange: &str) -> String {
    format!("amq.x-delayed-message/{exchange}")
}

/// The delay a message asks for: its `x-delay` header as an integer (strings of digits and
/// floats are converted, as the plugin does). Only `1..=MAX_DELAY_MS` delays; anything else
/// (absent, negative, zero, too long, not a number) routes at once.
pub(crate) fn requested_delay(raw_properties: &bytes::Bytes) -> Option<Duration> {
    if !warren_message::properties::has_property(raw_properties, warren_message::properties::HEADERS) {
        return None;
    }
    let props = BasicProperties::decode(raw_properties).ok()?;
    let ms = delay_value(props.headers.as_ref()?.get("x-delay")?)?;
    (1..=MAX_DELAY_MS).contains(&ms).then(|| Duration::from_millis(ms as u64))
}

fn delay_value(value: &FieldValue) -> Option<i64> {
    match value {
        FieldValue::LongStr(s) => std::str::from_utf8(s).ok()?.parse().ok(),
        FieldValue::F32(f) => Some(f.trunc() as i64),
        FieldValue::F64(f) => Some(f.trunc() as i64),
        other => other.as_i64(),
    }
}

/// The properties of a released message: `x-delay` becomes the negated delay (as the plugin
/// does), so it is not delayed again and consumers can tell it was.
pub(crate) fn released_properties(raw: &bytes::Bytes) -> bytes::Bytes {
    let Ok(mut props) = BasicProperties::decode(raw) else { return raw.clone() };
    let Some(headers) = props.headers.as_mut() else { return raw.clone() };
    let Some(ms) = headers.get("x-delay").and_then(delay_value) else { return raw.clone() };
    let negated = i32::try_from(-ms).map_or(FieldValue::I64(-ms), FieldValue::I32);
    headers.insert("x-delay", negated);
    let mut out = BytesMut::new();
    props.encode(&mut out);
    out.freeze()
}

/// The `CC` keys of a message recovered from the log (sender-selected distribution; `BCC`
/// was removed at publish and is not kept across a restart).
fn cc_keys(raw: &bytes::Bytes) -> Vec<ShortStr> {
    let headers: Option<FieldTable> = BasicProperties::decode(raw).ok().and_then(|p| p.headers);
    match headers.as_ref().and_then(|h| h.get("CC")) {
        Some(FieldValue::Array(items)) => items
            .iter()
            .filter_map(|item| match item {
                FieldValue::LongStr(k) => Some(ShortStr::from(String::from_utf8_lossy(k).as_ref())),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A message the exchange holds.
pub(crate) struct Held {
    pub(crate) message: Message,
    pub(crate) extra_keys: Vec<ShortStr>,
    /// The message's offset in the exchange's log, when it is stored.
    pub(crate) offset: Option<u64>,
}

#[derive(Default)]
struct State {
    /// By due time, then arrival.
    held: BTreeMap<(Instant, u64), Held>,
    next_seq: u64,
    log: Option<Box<dyn QueueLog>>,
}

/// The messages a delayed-message exchange holds.
#[derive(Default)]
pub struct DelayedMessages {
    state: Mutex<State>,
}

impl std::fmt::Debug for DelayedMessages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelayedMessages").field("held", &self.len()).finish()
    }
}

impl DelayedMessages {
    /// Messages held now.
    pub fn len(&self) -> usize {
        self.state.lock().held.len()
    }

    /// Whether no message is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps held messages in `log` from now on, first taking back what it recovered.
    pub(crate) fn attach_log(&self, mut log: Box<dyn QueueLog>, now: Instant) {
        let mut st = self.state.lock();
        while let Some(m) = log.pop_front() {
            let seq = st.next_seq;
            st.next_seq += 1;
            let extra_keys = cc_keys(&m.message.properties);
            let held = Held { message: m.message, extra_keys, offset: Some(m.offset) };
            st.held.insert((m.expires_at.unwrap_or(now), seq), held);
        }
        st.log = Some(log);
    }

    /// Holds `message` until `delay` has passed; a durable exchange writes it to its log first
    /// (handed to the OS; durable with the store's next sync). True when it was written.
    pub(crate) fn hold(
        &self,
        message: Message,
        extra_keys: Vec<ShortStr>,
        due: Instant,
    ) -> std::io::Result<bool> {
        let mut st = self.state.lock();
        let offset = match st.log.as_mut() {
            Some(log) => {
                let offset = log.append(message.clone(), Some(due), true)?;
                // Taken at once: the log only keeps it until it is settled on release.
                log.pop_front();
                log.flush()?;
                Some(offset)
            }
            None => None,
        };
        let seq = st.next_seq;
        st.next_seq += 1;
        st.held.insert((due, seq), Held { message, extra_keys, offset });
        Ok(offset.is_some())
    }

    /// Takes the messages due by `now`, in due order.
    pub(crate) fn take_due(&self, now: Instant) -> Vec<Held> {
        let mut st = self.state.lock();
        let Some((&first, _)) = st.held.first_key_value() else { return Vec::new() };
        if first.0 > now {
            return Vec::new();
        }
        let later = st.held.split_off(&(now, u64::MAX));
        std::mem::replace(&mut st.held, later).into_values().collect()
    }

    /// Forgets released messages in the log.
    pub(crate) fn settle(&self, offsets: impl IntoIterator<Item = u64>) {
        let mut st = self.state.lock();
        if let Some(log) = st.log.as_mut() {
            let mut any = false;
            for offset in offsets {
                log.settle(offset, true);
                any = true;
            }
            if any {
                if let Err(error) = log.flush() {
                    tracing::error!(%error, "writing to a delayed-message exchange's log failed");
                }
            }
        }
    }

    /// The exchange is gone: its held messages are dropped and its log removed.
    pub(crate) fn delete(&self) {
        let mut st = self.state.lock();
        st.held.clear();
        if let Some(mut log) = st.log.take() {
            log.delete();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn props_with_delay(value: FieldValue) -> Bytes {
        let mut headers = FieldTable::new();
        headers.insert("x-delay", value);
        let mut out = BytesMut::new();
        BasicProperties { headers: Some(headers), ..Default::default() }.encode(&mut out);
        out.freeze()
    }

    #[test]
    fn delays_are_read_as_the_plugin_does() {
        let d = |v| requested_delay(&props_with_delay(v));
        assert_eq!(d(FieldValue::I32(500)), Some(Duration::from_millis(500)));
        assert_eq!(d(FieldValue::U8(5)), Some(Duration::from_millis(5)));
        assert_eq!(d(FieldValue::LongStr("250".into())), Some(Duration::from_millis(250)));
        assert_eq!(d(FieldValue::F64(99.9)), Some(Duration::from_millis(99)));
        assert_eq!(d(FieldValue::I32(0)), None);
        assert_eq!(d(FieldValue::I32(-10)), None);
        assert_eq!(d(FieldValue::I64(MAX_DELAY_MS + 1)), None);
        assert_eq!(d(FieldValue::LongStr("soon".into())), None);
        assert_eq!(d(FieldValue::Bool(true)), None);
        assert_eq!(requested_delay(&Bytes::new()), None);
    }

    #[test]
    fn released_messages_carry_the_negated_delay() {
        let out = released_properties(&props_with_delay(FieldValue::I64(1500)));
        let h = BasicProperties::decode(&out).unwrap().headers.unwrap();
        assert_eq!(h.get("x-delay"), Some(&FieldValue::I32(-1500)));
        assert_eq!(requested_delay(&out), None);
    }

    #[test]
    fn due_messages_come_out_in_order() {
        let d = DelayedMessages::default();
        let m = |rk: &str| Message {
            exchange: "x".into(),
            routing_key: rk.into(),
            properties: Bytes::new(),
            body: Bytes::new(),
        };
        let start = Instant::now();
        d.hold(m("late"), Vec::new(), start + Duration::from_secs(3600)).unwrap();
        d.hold(m("b"), Vec::new(), start + Duration::from_millis(2)).unwrap();
        d.hold(m("a"), Vec::new(), start + Duration::from_millis(1)).unwrap();
        assert!(d.take_due(start).is_empty(), "nothing is due yet");
        let later = start + Duration::from_millis(5);
        let due: Vec<_> = d.take_due(later).into_iter().map(|h| h.message.routing_key).collect();
        let due: Vec<&str> = due.iter().map(|k| &**k).collect();
        assert_eq!(due, ["a", "b"]);
        assert_eq!(d.len(), 1);
    }
}
