//! Emits `generated/constants.rs`: spec constants and class ids.

use std::fmt::Write;

use super::spec::Spec;

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
        if let Some(class) = &c.class {
            let _ = writeln!(s, "/// Reply code ({class}).");
        }
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
