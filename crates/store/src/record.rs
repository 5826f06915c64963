//! The on-disk encoding of one message record and of one ack entry, each with its crc32c.
//!
//! A record, all integers little-endian:
//!
//! ```text
//! u32 len              bytes that follow the 8-byte prefix
//! u32 crc32c           over the `len` field's 4 bytes, then the `len` bytes that follow
//! u64 offset           queue-local, only grows
//! u8  flags            bit 0: persistent; bit 1: written by a transaction; bit 2: carries
//! u64 txid             only with flag bit 1: the transaction (see [`crate::transactions`])
//! u64 expiry           absolute, unix milliseconds; 0 = never
//! u8  exchange length,     exchange
//! u8  routing key length,  routing key
//! u32 properties length,   properties (the content header's flags and list, as published)
//! u16 carried length,      carried bytes: only with flag bit 2 (see [`crate::QueueLog::append_carrying`])
//! ... body             the rest
//! ```
//!
//! An ack-file entry is `u64 word, u32 crc32c(word bytes)`: fixed-size, so a torn entry shows as
//! a short tail and a corrupt one fails its checksum. The word is the offset of a settled
//! message, or, with bit 63 set, the offset of a message that was delivered and returned to its
//! queue (one entry per return: queues with `x-delivery-limit` count them, and the count must
//! survive a restart). A transaction's acks are a marker entry (bits 63 and 62 set, the rest the
//! transaction's id) followed by its settled offsets with bit 62 set: after a crash they apply
//! only if that transaction committed. Offsets never reach bit 62.

use bytes::Bytes;
use warren_message::ShortStr;

use crate::Message;

/// `len` and `crc32c`.
pub(crate) const PREFIX_LEN: usize = 8;
/// The payload fields before the variable-length ones: offset, flags, expiry, two name lengths
/// and the properties length.
const FIXED_PAYLOAD_LEN: usize = 8 + 1 + 8 + 1 + 1 + 4;
/// The smallest valid `len`.
pub(crate) const MIN_LEN: u32 = FIXED_PAYLOAD_LEN as u32;
/// A larger `len` can only be corruption (AMQP bodies are far smaller in practice; this also
/// bounds what a corrupt length can make recovery allocate).
pub(crate) const MAX_LEN: u32 = 1 << 30;

pub(crate) const FLAG_PERSISTENT: u8 = 1;
/// The record was written by a transaction; its id follows the flags.
pub(crate) const FLAG_TX: u8 = 2;
/// The record carries bytes for its writer (see [`crate::QueueLog::append_carrying`]).
pub(crate) const FLAG_CARRIES: u8 = 4;
/// What a transaction's id adds to a record.
const TXID_LEN: usize = 8;
/// The most bytes a record carries.
pub(crate) const MAX_CARRIED: usize = u16::MAX as usize;

/// What `carried` bytes add to a record (none: nothing).
fn carried_len(carried: &[u8]) -> usize {
    if carried.is_empty() {
        0
    } else {
        2 + carried.len()
    }
}

/// Size of an encoded ack entry.
pub(crate) const ACK_ENTRY_LEN: usize = 12;

/// The encoded size of a message's record (`tx`: written by a transaction; `carried`: what it
/// carries, at most [`MAX_CARRIED`] bytes).
pub(crate) fn encoded_len(message: &Message, tx: bool, carried: &[u8]) -> usize {
    PREFIX_LEN
        + FIXED_PAYLOAD_LEN
        + if tx { TXID_LEN } else { 0 }
        + carried_len(carried)
        + message.exchange.len()
        + message.routing_key.len()
        + message.properties.len()
        + message.body.len()
}

/// Appends the record of `message` to `buf`; returns its encoded size. Allocates nothing
/// beyond `buf`'s growth. `txid` is the transaction writing it, if any; `carried` (at most
/// [`MAX_CARRIED`] bytes, longer is cut) is kept with the record.
///
/// Exchange and routing key are AMQP short strings (at most 255 bytes); a longer one is cut to
/// 255 bytes so the record stays well-formed.
pub(crate) fn encode(
    buf: &mut Vec<u8>,
    offset: u64,
    persistent: bool,
    expiry_ms: u64,
    txid: Option<u64>,
    message: &Message,
    carried: &[u8],
) -> usize {
    let carried = &carried[..carried.len().min(MAX_CARRIED)];
    let exchange = short(message.exchange.as_bytes());
    let routing_key = short(message.routing_key.as_bytes());
    let payload_len = FIXED_PAYLOAD_LEN
        + if txid.is_some() { TXID_LEN } else { 0 }
        + carried_len(carried)
        + exchange.len()
        + routing_key.len()
        + message.properties.len()
        + message.body.len();
    let start = buf.len();
    buf.reserve(PREFIX_LEN + payload_len);
    let len = u32::try_from(payload_len).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&[0; 4]); // crc, filled in below
    buf.extend_from_slice(&offset.to_le_bytes());
    let flags =
        if persistent { FLAG_PERSISTENT } else { 0 } | if carried.is_empty() { 0 } else { FLAG_CARRIES };
    match txid {
        Some(txid) => {
            buf.push(flags | FLAG_TX);
            buf.extend_from_slice(&txid.to_le_bytes());
        }
        None => buf.push(flags),
    }
    buf.extend_from_slice(&expiry_ms.to_le_bytes());
    buf.push(exchange.len() as u8);
    buf.extend_from_slice(exchange);
    buf.push(routing_key.len() as u8);
    buf.extend_from_slice(routing_key);
    buf.extend_from_slice(&(message.properties.len() as u32).to_le_bytes());
    buf.extend_from_slice(&message.properties);
    if !carried.is_empty() {
        buf.extend_from_slice(&(carried.len() as u16).to_le_bytes());
        buf.extend_from_slice(carried);
    }
    buf.extend_from_slice(&message.body);
    let crc = checksum(&buf[start..start + 4], &buf[start + PREFIX_LEN..]);
    buf[start + 4..start + PREFIX_LEN].copy_from_slice(&crc.to_le_bytes());
    buf.len() - start
}

fn short(s: &[u8]) -> &[u8] {
    &s[..s.len().min(255)]
}

fn checksum(len_bytes: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(len_bytes), payload)
}

/// A record read from a buffer, borrowing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordRef<'a> {
    pub offset: u64,
    pub flags: u8,
    /// The transaction that wrote it, if one did.
    pub txid: Option<u64>,
    pub expiry_ms: u64,
    pub exchange: &'a [u8],
    pub routing_key: &'a [u8],
    pub properties: &'a [u8],
    /// What the record carries (empty: nothing).
    pub carried: &'a [u8],
    pub body: &'a [u8],
    /// The whole payload (everything after the prefix), for copying the message out at once.
    payload: &'a [u8],
}

impl RecordRef<'_> {
    pub(crate) fn persistent(&self) -> bool {
        self.flags & FLAG_PERSISTENT != 0
    }

    /// The message, copied out of the read buffer in one allocation (its fields are slices of
    /// it), so a message kept long does not pin a whole read buffer.
    pub(crate) fn to_message(&self) -> Option<Message> {
        let all = Bytes::copy_from_slice(self.payload);
        let base = self.payload.as_ptr() as usize;
        let slice = |part: &[u8]| {
            let at = part.as_ptr() as usize - base;
            all.slice(at..at + part.len())
        };
        Some(Message {
            exchange: ShortStr::try_from(slice(self.exchange)).ok()?,
            routing_key: ShortStr::try_from(slice(self.routing_key)).ok()?,
            properties: slice(self.properties),
            body: slice(self.body),
        })
    }
}

/// What the start of a buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded<'a> {
    /// A whole, valid record of `len` bytes (prefix included).
    Record(RecordRef<'a>, usize),
    /// The buffer ends inside a record that claims `need` bytes in all (0 if even the prefix is
    /// incomplete): more bytes may complete it.
    Incomplete { need: usize },
    /// No valid record starts here.
    Corrupt(&'static str),
}

/// The `len` field of the record at the start of `buf`, if its prefix is there.
pub(crate) fn peek_len(buf: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(buf.get(..4)?.try_into().ok()?))
}

/// The bytes [`plausible`] looks at: the prefix and the fixed payload fields.
pub(crate) const PROBE_LEN: usize = PREFIX_LEN + FIXED_PAYLOAD_LEN;

/// Whether a record could start at `buf[0]`, judged without its checksum: a length in range that
/// fits in the `available` bytes, an offset in `offsets`, known flags and an exchange name that
/// fits. Resynchronising after damage tries every byte position; these checks reject nearly all
/// of them before a checksum over up to `len` bytes is computed, so a scan over garbage costs
/// about as much as reading it. `buf` must hold [`PROBE_LEN`] bytes (fewer: not plausible).
pub(crate) fn plausible(buf: &[u8], available: u64, offsets: &std::ops::Range<u64>) -> bool {
    let Some(probe) = buf.get(..PROBE_LEN) else { return false };
    let len = u32::from_le_bytes([probe[0], probe[1], probe[2], probe[3]]);
    if !(MIN_LEN..=MAX_LEN).contains(&len) || PREFIX_LEN as u64 + u64::from(len) > available {
        return false;
    }
    let offset = u64::from_le_bytes(probe[8..16].try_into().unwrap_or_default());
    let flags = probe[16];
    if !offsets.contains(&offset) || flags & !(FLAG_PERSISTENT | FLAG_TX | FLAG_CARRIES) != 0 {
        return false;
    }
    if flags & FLAG_TX != 0 {
        // The exchange's length sits past the probe, behind the transaction's id.
        return MIN_LEN + TXID_LEN as u32 <= len;
    }
    let exchange_len = u32::from(probe[PREFIX_LEN + 17]);
    MIN_LEN + exchange_len <= len
}

/// Decodes the record at the start of `buf`.
pub(crate) fn decode(buf: &[u8]) -> Decoded<'_> {
    let Some(prefix) = buf.get(..PREFIX_LEN) else {
        return Decoded::Incomplete { need: 0 };
    };
    let len = u32::from_le_bytes(prefix[0..4].try_into().unwrap_or_default());
    let crc = u32::from_le_bytes(prefix[4..8].try_into().unwrap_or_default());
    if !(MIN_LEN..=MAX_LEN).contains(&len) {
        return Decoded::Corrupt("record length out of range");
    }
    let total = PREFIX_LEN + len as usize;
    let Some(payload) = buf.get(PREFIX_LEN..total) else {
        return Decoded::Incomplete { need: total };
    };
    if checksum(&prefix[0..4], payload) != crc {
        return Decoded::Corrupt("record checksum mismatch");
    }
    match parse_payload(payload) {
        Some(record) => Decoded::Record(record, total),
        None => Decoded::Corrupt("record fields overrun its length"),
    }
}

fn parse_payload(payload: &[u8]) -> Option<RecordRef<'_>> {
    let mut rest = payload;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = rest.split_at_checked(n)?;
        rest = tail;
        Some(head)
    };
    let offset = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let flags = take(1)?[0];
    let txid = match flags & FLAG_TX {
        0 => None,
        _ => Some(u64::from_le_bytes(take(TXID_LEN)?.try_into().ok()?)),
    };
    let expiry_ms = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let n = usize::from(take(1)?[0]);
    let exchange = take(n)?;
    let n = usize::from(take(1)?[0]);
    let routing_key = take(n)?;
    let n = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
    let properties = take(n)?;
    let carried = match flags & FLAG_CARRIES {
        0 => &[][..],
        _ => {
            let n = usize::from(u16::from_le_bytes(take(2)?.try_into().ok()?));
            take(n)?
        }
    };
    let body = rest;
    Some(RecordRef {
        offset,
        flags,
        txid,
        expiry_ms,
        exchange,
        routing_key,
        properties,
        carried,
        body,
        payload,
    })
}

/// Marks a return entry in an ack file's word.
const RETURNED_BIT: u64 = 1 << 63;
/// Marks an entry of a transaction: with [`RETURNED_BIT`] a marker naming the transaction, alone
/// an offset that transaction settled.
const TX_BIT: u64 = 1 << 62;
/// The largest offset (and transaction id) an ack entry can name.
pub(crate) const WORD_VALUE: u64 = TX_BIT - 1;

/// What an ack-file entry says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckEntry {
    /// The message at this offset left the queue for good.
    Settled(u64),
    /// The message at this offset was delivered and returned once more.
    Returned(u64),
    /// The entries that follow (up to the next marker) were written by this transaction.
    TxMarker(u64),
    /// The message at this offset left the queue in the transaction of the last marker.
    TxSettled(u64),
}

/// Appends the ack entry of `offset` to `buf`.
pub(crate) fn encode_ack(buf: &mut Vec<u8>, offset: u64) {
    encode_ack_word(buf, offset);
}

/// Appends the entry recording one more return of the message at `offset` to `buf`.
pub(crate) fn encode_return(buf: &mut Vec<u8>, offset: u64) {
    encode_ack_word(buf, offset | RETURNED_BIT);
}

/// Appends the entries recording that transaction `txid` settled the message at `offset`.
pub(crate) fn encode_tx_ack(buf: &mut Vec<u8>, txid: u64, offset: u64) {
    encode_ack_word(buf, txid | RETURNED_BIT | TX_BIT);
    encode_ack_word(buf, offset | TX_BIT);
}

fn encode_ack_word(buf: &mut Vec<u8>, word: u64) {
    let bytes = word.to_le_bytes();
    buf.extend_from_slice(&bytes);
    buf.extend_from_slice(&crc32c::crc32c(&bytes).to_le_bytes());
}

/// What an ack-file entry says, if its checksum holds.
pub(crate) fn decode_ack(entry: &[u8; ACK_ENTRY_LEN]) -> Option<AckEntry> {
    let (bytes, crc) = entry.split_at(8);
    let crc = u32::from_le_bytes(crc.try_into().ok()?);
    if crc32c::crc32c(bytes) != crc {
        return None;
    }
    let word = u64::from_le_bytes(bytes.try_into().ok()?);
    let value = word & WORD_VALUE;
    Some(match (word & RETURNED_BIT != 0, word & TX_BIT != 0) {
        (false, false) => AckEntry::Settled(value),
        (true, false) => AckEntry::Returned(value),
        (true, true) => AckEntry::TxMarker(value),
        (false, true) => AckEntry::TxSettled(value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn message(exchange: &str, routing_key: &str, properties: &[u8], body: &[u8]) -> Message {
        Message {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            properties: Bytes::copy_from_slice(properties),
            body: Bytes::copy_from_slice(body),
        }
    }

    #[test]
    fn round_trip() {
        let m = message("amq.direct", "orders", &[0x10, 0x00, 2], b"hello");
        let mut buf = vec![0xAA]; // records are appended after what is there
        let n = encode(&mut buf, 42, true, 1_700_000_000_000, None, &m, &[]);
        assert_eq!(n, encoded_len(&m, false, &[]));
        assert_eq!(buf.len(), 1 + n);
        let Decoded::Record(r, len) = decode(&buf[1..]) else { panic!("not a record") };
        assert_eq!(len, n);
        assert_eq!((r.offset, r.persistent(), r.expiry_ms), (42, true, 1_700_000_000_000));
        assert_eq!(r.to_message().unwrap(), m);
    }

    #[test]
    fn every_prefix_is_incomplete_and_every_flip_is_corrupt() {
        let m = message("", "q", &[], b"0123456789abcdef");
        let mut buf = Vec::new();
        let n = encode(&mut buf, 7, false, 0, None, &m, b"kept");
        for cut in 0..n {
            assert!(matches!(decode(&buf[..cut]), Decoded::Incomplete { .. }), "cut at {cut}");
        }
        for i in 0..n {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[i] ^= 1 << bit;
                match decode(&bad) {
                    Decoded::Corrupt(_) | Decoded::Incomplete { .. } => {}
                    Decoded::Record(..) => panic!("flip of bit {bit} in byte {i} went unnoticed"),
                }
            }
        }
    }

    #[test]
    fn valid_records_are_plausible_and_most_garbage_is_not() {
        let m = message("amq.direct", "rk", &[1, 2, 3], b"body");
        let mut buf = Vec::new();
        let n = encode(&mut buf, 42, true, 7, None, &m, &[]) as u64;
        assert!(plausible(&buf, n, &(0..100)));
        assert!(!plausible(&buf, n - 1, &(0..100)), "does not fit");
        assert!(!plausible(&buf, n, &(43..100)), "offset below the range");
        assert!(!plausible(&buf, n, &(0..42)), "offset above the range");
        assert!(!plausible(&buf[..PROBE_LEN - 1], n, &(0..100)), "too short to judge");
        let mut bad_flags = buf.clone();
        bad_flags[16] = 8;
        assert!(!plausible(&bad_flags, n, &(0..100)));
        // Every position inside the record: none is plausible (its bytes are not a record).
        for at in 1..buf.len() {
            assert!(!plausible(&buf[at..], n - at as u64, &(0..100)), "at {at}");
        }
    }

    #[test]
    fn ack_entries_detect_corruption() {
        let mut buf = Vec::new();
        encode_ack(&mut buf, 123_456);
        let entry: [u8; ACK_ENTRY_LEN] = buf.clone().try_into().unwrap();
        assert_eq!(decode_ack(&entry), Some(AckEntry::Settled(123_456)));
        for i in 0..ACK_ENTRY_LEN {
            let mut bad = entry;
            bad[i] ^= 0x40;
            assert_eq!(decode_ack(&bad), None);
        }
    }

    #[test]
    fn return_entries_are_told_from_acks() {
        let mut buf = Vec::new();
        encode_return(&mut buf, 77);
        encode_ack(&mut buf, 77);
        let first: [u8; ACK_ENTRY_LEN] = buf[..ACK_ENTRY_LEN].try_into().unwrap();
        let second: [u8; ACK_ENTRY_LEN] = buf[ACK_ENTRY_LEN..].try_into().unwrap();
        assert_eq!(decode_ack(&first), Some(AckEntry::Returned(77)));
        assert_eq!(decode_ack(&second), Some(AckEntry::Settled(77)));
    }

    #[test]
    fn transaction_records_and_acks_round_trip() {
        let m = message("x", "rk", &[], b"tx body");
        let mut buf = Vec::new();
        let n = encode(&mut buf, 9, true, 0, Some(0xABCD_0000_0001), &m, &[]);
        assert_eq!(n, encoded_len(&m, true, &[]));
        let Decoded::Record(r, _) = decode(&buf) else { panic!("not a record") };
        assert_eq!((r.offset, r.txid, r.persistent()), (9, Some(0xABCD_0000_0001), true));
        assert_eq!(r.to_message().unwrap(), m);
        assert!(plausible(&buf, n as u64, &(0..100)));
        let mut acks = Vec::new();
        encode_tx_ack(&mut acks, 77, 12);
        let entries: Vec<_> =
            acks.chunks_exact(ACK_ENTRY_LEN).map(|e| decode_ack(e.try_into().unwrap()).unwrap()).collect();
        assert_eq!(entries, [AckEntry::TxMarker(77), AckEntry::TxSettled(12)]);
    }

    proptest! {
        #[test]
        fn encoding_round_trips(
            offset: u64,
            persistent: bool,
            expiry_ms: u64,
            txid: Option<u64>,
            exchange in "[a-z.]{0,40}",
            routing_key in "\\PC{0,60}",
            properties in proptest::collection::vec(any::<u8>(), 0..64),
            body in proptest::collection::vec(any::<u8>(), 0..512),
            carried in proptest::collection::vec(any::<u8>(), 0..80),
            garbage in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            let m = message(&exchange, &routing_key, &properties, &body);
            let mut buf = Vec::new();
            let n = encode(&mut buf, offset, persistent, expiry_ms, txid, &m, &carried);
            prop_assert_eq!(n, encoded_len(&m, txid.is_some(), &carried));
            buf.extend_from_slice(&garbage); // what follows a record does not matter
            let Decoded::Record(r, len) = decode(&buf) else { panic!("not a record") };
            prop_assert_eq!(len, n);
            prop_assert_eq!(r.offset, offset);
            prop_assert_eq!(r.persistent(), persistent);
            prop_assert_eq!(r.expiry_ms, expiry_ms);
            prop_assert_eq!(r.txid, txid);
            prop_assert_eq!(r.carried, &carried[..]);
            if let Some(next) = offset.checked_add(1) {
                prop_assert!(plausible(&buf, n as u64, &(offset..next)));
            }
            prop_assert_eq!(r.to_message().unwrap(), m);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }
    }
}
