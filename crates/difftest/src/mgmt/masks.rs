//! What the management scenarios do not compare, field by field: values that change from run
//! to run or name the node (masked: the key is still compared), and fields Warren leaves out
//! because it cannot know them (left out of both renderings). Each rule names the entry of
//! [`crate::differences::DIFFERENCES`] that explains it, so `docs/differences.md` covers them.

/// What happens to one field of a JSON answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Compared as is.
    Keep,
    /// The key is compared, the value becomes this placeholder.
    Mask(&'static str),
    /// Left out of the rendering on both sides.
    Omit,
}

/// `mgmt-volatile`: values that differ between any two runs, even of the same broker.
const VOLATILE: [&str; 11] = [
    // Rates: the change between two samples per second, and the samples themselves.
    "rate",
    "samples",
    "avg",
    "avg_rate",
    // Wall-clock times.
    "connected_at",
    // Ephemeral client ports and the listener ports, which the harness picks per run.
    "peer_port",
    "port",
    // Octets on the wire depend on the server's own properties (product, version).
    "recv_oct",
    "send_oct",
    // The ports a failing port-listener check lists: the harness's, per run.
    "ports",
    // Salted: two hashes of one password differ.
    "password_hash",
];

/// `mgmt-server-identity`: values that say which server answers and on which host.
const IDENTITY: [&str; 10] = [
    "node",
    "cluster_name",
    "product_name",
    "product_version",
    "rabbitmq_version",
    "rabbit_version",
    "erlang_version",
    "erlang_full_version",
    "release_series_support_status",
    "statistics_db_event_queue",
];

/// `mgmt-omitted-fields`: what Warren leaves out because it cannot know it (docs/management.md,
/// "What differs"): Erlang process details, consumer timing, paging and persistence counters
/// of RabbitMQ's classic queue implementation, idle timestamps, the internal user who made an
/// object, frame counts.
pub const OMITTED: [&str; 20] = [
    "memory",
    "reductions",
    "reductions_details",
    "garbage_collection",
    "backing_queue_status",
    "consumer_utilisation",
    "consumer_capacity",
    "messages_persistent",
    "messages_paged_out",
    "message_bytes_paged_out",
    "message_bytes_unacknowledged",
    "message_bytes_persistent",
    "idle_since",
    "send_cnt",
    "recv_cnt",
    "send_pend",
    // The node's message store reads and writes (RabbitMQ's persister statistics).
    "disk_reads",
    "disk_reads_details",
    "disk_writes",
    "disk_writes_details",
];

/// `mgmt-no-trace-exchange`: listing items left out on both sides (RabbitMQ's firehose
/// exchange `amq.rabbitmq.trace`, which every one of its vhosts has and Warren's do not).
pub fn omitted_item(item: &serde_json::Value) -> bool {
    item.get("name").and_then(serde_json::Value::as_str) == Some("amq.rabbitmq.trace")
}

/// `mgmt-ready-to-serve-clients`: RabbitMQ 3.10 has no such check (404); Warren serves it as
/// later versions do (200). Either status is shown as `200|404`; any other still differs.
pub fn status_shown(method: &str, path: &str, status: u16) -> String {
    if method == "GET" && path == "/api/health/checks/ready-to-serve-clients" && matches!(status, 200 | 404) {
        return "200|404".to_string();
    }
    status.to_string()
}

/// Whether an object is an exchange (it has `type` and `internal`).
fn is_exchange(object: &serde_json::Map<String, serde_json::Value>) -> bool {
    object.contains_key("type") && object.contains_key("internal")
}

/// The rule for the field `key` of `object` (`parent` is the key of the object's own
/// enclosing field, if any).
pub fn rule(parent: Option<&str>, key: &str, object: &serde_json::Map<String, serde_json::Value>) -> Rule {
    if OMITTED.contains(&key) {
        return Rule::Omit;
    }
    // `mgmt-omitted-fields`: who declared an exchange (Warren does not record it; connections
    // and channels have theirs, and it is compared there).
    if key == "user_who_performed_action" && is_exchange(object) {
        return Rule::Omit;
    }
    // `mgmt-newer-fields`: what later RabbitMQ versions added and Warren serves for the
    // clients written for them.
    if (key == "consumer_timeout" && object.contains_key("consumer_tag"))
        || (key == "being_drained" && object.contains_key("running"))
    {
        return Rule::Omit;
    }
    if IDENTITY.contains(&key) {
        return Rule::Mask("<server>");
    }
    let in_details = parent.is_some_and(|p| p.ends_with("_details"));
    if VOLATILE.contains(&key) {
        // `rate` and friends only inside a `*_details` object; the others anywhere.
        if !matches!(key, "rate" | "samples" | "avg" | "avg_rate") || in_details {
            return Rule::Mask("<volatile>");
        }
    }
    Rule::Keep
}

/// `mgmt-server-identity` and `mgmt-volatile` inside strings: a node name (`rabbit@host`,
/// `rabbit-ref-PORT@localhost`, `warren@host`) becomes `<node>`; the port of an `IP:PORT`
/// (connection and channel names, `owner_pid_details`) becomes `<port>`.
pub fn normalize_text(text: &str) -> String {
    if is_node_name(text) {
        return "<node>".to_string();
    }
    if let Some(text) = regex_error(text) {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = find_ip_port(rest) {
        let (ip_end, port_end) = pos;
        out.push_str(&rest[..ip_end]);
        out.push_str(":<port>");
        rest = &rest[port_end..];
    }
    out.push_str(rest);
    out
}

/// `mgmt-regex-error-text`: what follows `pattern should be regular expression but is invalid: `
/// in a policy refusal (up to the end of its line) becomes `<regex error>`.
fn regex_error(text: &str) -> Option<String> {
    const LEAD: &str = "pattern should be regular expression but is invalid: ";
    let start = text.find(LEAD)? + LEAD.len();
    let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    Some(format!("{}<regex error>{}", &text[..start], &text[end..]))
}

fn is_node_name(text: &str) -> bool {
    let Some((name, host)) = text.split_once('@') else { return false };
    (name.starts_with("rabbit") || name.starts_with("warren"))
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !host.is_empty()
        && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// The first `a.b.c.d:port` in `text`: (end of the address, end of the port).
fn find_ip_port(text: &str) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) {
            let mut j = i;
            let mut dots = 0;
            while j < bytes.len() && (bytes[j].is_ascii_digit() || bytes[j] == b'.') {
                dots += usize::from(bytes[j] == b'.');
                j += 1;
            }
            if dots == 3 && j + 1 < bytes.len() && bytes[j] == b':' && bytes[j + 1].is_ascii_digit() {
                let mut k = j + 1;
                while k < bytes.len() && bytes[k].is_ascii_digit() {
                    k += 1;
                }
                return Some((j, k));
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_by_key_and_parent() {
        let none = serde_json::Map::new();
        assert_eq!(rule(Some("publish_details"), "rate", &none), Rule::Mask("<volatile>"));
        assert_eq!(rule(None, "rate", &none), Rule::Keep);
        assert_eq!(rule(None, "node", &none), Rule::Mask("<server>"));
        assert_eq!(rule(None, "idle_since", &none), Rule::Omit);
        assert_eq!(rule(None, "messages", &none), Rule::Keep);
        assert_eq!(rule(None, "user_who_performed_action", &none), Rule::Keep);
        let exchange = serde_json::json!({"type": "direct", "internal": false});
        let exchange = exchange.as_object().unwrap();
        assert_eq!(rule(None, "user_who_performed_action", exchange), Rule::Omit);
    }

    #[test]
    fn every_rule_names_a_listed_difference() {
        let ids: Vec<&str> = include_str!("masks.rs").split('`').filter(|w| w.starts_with("mgmt-")).collect();
        assert!(ids.len() >= 5, "{ids:?}");
        for id in ids {
            assert!(crate::differences::DIFFERENCES.iter().any(|d| d.id == id), "{id} is not in DIFFERENCES");
        }
    }

    #[test]
    fn node_names_and_ports_in_text() {
        assert_eq!(normalize_text("rabbit-ref-23456@localhost"), "<node>");
        assert_eq!(normalize_text("warren@vm"), "<node>");
        assert_eq!(normalize_text("guest@x"), "guest@x");
        assert_eq!(
            normalize_text("127.0.0.1:44876 -> 127.0.0.1:23456 (1)"),
            "127.0.0.1:<port> -> 127.0.0.1:<port> (1)"
        );
        assert_eq!(normalize_text("v1.2.3.4:5"), "v1.2.3.4:5");
        assert_eq!(
            normalize_text("Validation failed\n\npattern should be regular expression but is invalid: x\n"),
            "Validation failed\n\npattern should be regular expression but is invalid: <regex error>\n"
        );
    }
}
