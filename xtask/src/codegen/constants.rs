//! Emits `generated/constants.rs`: spec constants and class ids.

use std::fmt::Write;

use super::spec::{Constant, Spec};

pub fn emit(spec: &Spec) -> String {
    let mut s = String::new();
    s.push_str("//! Constants of the AMQP 0-9-1 spec (RabbitMQ edition) and class ids.\n\n");
    for c in &spec.constants {
        let ty = if c.name == "FRAME_MIN_SIZE" {
            "u32"
        } else if c.class.is_none() && c.name.starts_with("FRAME_") {
            "u8"
        } else {
            "u16"
        };
        let _ = writeln!(s, "/// {}", describe(c));
        let _ = writeln!(s, "pub const {}: {ty} = {};", c.name, c.value);
    }
    let _ = writeln!(s, "/// Default AMQP port.\npub const PORT: u16 = {};", spec.port);
    s.push('\n');
    for class in &spec.classes {
        let _ = writeln!(s, "/// Class id of `{}`.", class.name);
        let _ = writeln!(s, "pub const {}: u16 = {};", class.const_name(), class.id);
    }
    let hard: Vec<String> = spec
        .constants
        .iter()
        .filter(|c| c.class.as_deref() == Some("hard-error"))
        .map(|c| c.name.clone())
        .collect();
    let _ = writeln!(
        s,
        "\n/// Whether `reply_code` is a hard error (closes the connection, not just the channel).\n\
         pub fn is_hard_error(reply_code: u16) -> bool {{ matches!(reply_code, {}) }}",
        hard.join(" | ")
    );
    s
}

/// What a spec constant is, from its class (reply codes) or its name (frame constants).
fn describe(c: &Constant) -> String {
    let n = &c.spec_name;
    match (c.class.as_deref(), n.as_str()) {
        (Some("soft-error"), _) => format!("Reply code `{n}`, a soft error (channel level)."),
        (Some("hard-error"), _) => format!("Reply code `{n}`, a hard error (connection level)."),
        (_, "REPLY-SUCCESS") => format!("Reply code `{n}`: a close that is not an error."),
        (_, "FRAME-END") => format!("The octet that ends every frame (`{n}`)."),
        (_, "FRAME-MIN-SIZE") => format!("The smallest frame size a peer may negotiate (`{n}`)."),
        (_, "FRAME-METHOD") => format!("Frame type of method frames (`{n}`)."),
        (_, "FRAME-HEADER") => format!("Frame type of content header frames (`{n}`)."),
        (_, "FRAME-BODY") => format!("Frame type of content body frames (`{n}`)."),
        (_, "FRAME-HEARTBEAT") => format!("Frame type of heartbeat frames (`{n}`)."),
        _ => format!("Spec constant `{n}`."),
    }
}
