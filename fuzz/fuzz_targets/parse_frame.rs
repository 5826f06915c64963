//! Feed arbitrary bytes to `parse_frame` until it needs more input or fails.
//! Every decoded method and property list must re-encode to bytes that decode
//! and re-encode identically.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use warren_protocol::{parse_frame, BasicProperties, Frame, Method};

fuzz_target!(|data: &[u8]| {
    // First byte picks a frame_max (0 = unlimited), the rest is the stream.
    let Some((&sel, stream)) = data.split_first() else {
        return;
    };
    let frame_max = match sel % 4 {
        0 => 0,
        1 => 4096,
        2 => 131_072,
        _ => u32::from(sel),
    };
    let mut buf = BytesMut::from(stream);
    while let Ok(Some(frame)) = parse_frame(&mut buf, frame_max) {
        match frame {
            Frame::Method { method, .. } => {
                let mut once = BytesMut::new();
                method.encode(&mut once);
                let again = Method::decode(once.clone().freeze()).expect("re-decode method");
                let mut twice = BytesMut::new();
                again.encode(&mut twice);
                assert_eq!(once, twice);
            }
            Frame::Header { header, .. } => {
                if let Ok(props) = header.decode_properties() {
                    let mut once = BytesMut::new();
                    props.encode(&mut once);
                    let again = BasicProperties::decode(&once.clone().freeze())
                        .expect("re-decode properties");
                    let mut twice = BytesMut::new();
                    again.encode(&mut twice);
                    assert_eq!(once, twice);
                }
            }
            Frame::Body { .. } | Frame::Heartbeat { .. } => {}
        }
    }
});
