//! Arguments of the methods tests send most, written field by field as the spec lists them
//! (`W`), and what a close says. Frames around them come from [`crate::method_frame`].

use crate::{content_header_frame, frame, method_frame, Frame, FRAME_BODY, R, W};

/// Client properties announcing `product` and every capability in `capabilities` as true;
/// the encoded table content, for [`W::raw_table`].
pub fn client_properties(product: &str, capabilities: &[&str]) -> Vec<u8> {
    let caps = capabilities.iter().fold(W::new(), |w, name| w.shortstr(name).u8(b't').u8(1)).build();
    W::new()
        .shortstr("product")
        .u8(b'S')
        .longstr(product.as_bytes())
        .shortstr("capabilities")
        .u8(b'F')
        .raw_table(&caps)
        .build()
}

/// connection.start-ok: `properties` (table content), PLAIN login, locale en_US.
pub fn start_ok_plain(properties: &[u8], user: &str, password: &str) -> Vec<u8> {
    let response = format!("\0{user}\0{password}");
    W::new().raw_table(properties).shortstr("PLAIN").longstr(response.as_bytes()).shortstr("en_US").build()
}

/// connection.tune-ok.
pub fn tune_ok(channel_max: u16, frame_max: u32, heartbeat: u16) -> Vec<u8> {
    W::new().u16(channel_max).u32(frame_max).u16(heartbeat).build()
}

/// connection.open of `vhost`.
pub fn connection_open(vhost: &str) -> Vec<u8> {
    W::new().shortstr(vhost).shortstr("").u8(0).build()
}

/// connection.close or channel.close (the same arguments).
pub fn close(code: u16, text: &str, class_id: u16, method_id: u16) -> Vec<u8> {
    W::new().u16(code).shortstr(text).u16(class_id).u16(method_id).build()
}

/// basic.publish.
pub fn publish(exchange: &str, routing_key: &str, mandatory: bool, immediate: bool) -> Vec<u8> {
    W::new().u16(0).shortstr(exchange).shortstr(routing_key).bits(&[mandatory, immediate]).build()
}

/// A whole publish on `channel`: basic.publish, a content header without properties and the
/// body in one frame (none when it is empty).
pub fn publish_frames(channel: u16, exchange: &str, routing_key: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = method_frame(channel, 60, 40, &publish(exchange, routing_key, false, false));
    bytes.extend(content_header_frame(channel, body.len() as u64));
    if !body.is_empty() {
        bytes.extend(frame(FRAME_BODY, channel, body));
    }
    bytes
}

/// A connection.close or channel.close as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// The reply code.
    pub code: u16,
    /// The reply text.
    pub text: String,
    /// The class id of the method that caused the close (0 if none).
    pub class_id: u16,
    /// The method id of the method that caused the close (0 if none).
    pub method_id: u16,
}

/// The arguments of a received connection.close or channel.close.
pub fn parse_close(f: &Frame) -> Close {
    let mut a: R<'_> = f.args();
    Close { code: a.u16(), text: a.shortstr(), class_id: a.u16(), method_id: a.u16() }
}

/// An encoded field-table value (type octet and all) nested `depth` tables deep, each holding
/// one entry `n` with the next, the innermost `n` the string "hi": deeper than a decoder's
/// depth limit, to check what a broker does with headers it cannot decode whole.
pub fn nested_table_value(depth: usize) -> Vec<u8> {
    let mut value = b"S\x00\x00\x00\x02hi".to_vec();
    for _ in 0..depth {
        let entry = [&[1, b'n'][..], &value].concat();
        value = [&[b'F'][..], &(entry.len() as u32).to_be_bytes(), &entry].concat();
    }
    value
}
