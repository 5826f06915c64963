//! Every difference between RabbitMQ and Warren that the differential tests
//! accept, in one place, each with its reason. `docs/differences.md` lists
//! the same entries for people (a unit test keeps the two in step).
//!
//! A transcript is normalized in two ways, both defined here:
//! * field level: while a field table or property list is rendered,
//!   [`field_placeholder`] may replace a value by a placeholder (the key,
//!   its position and its type octet are still compared);
//! * line level: [`normalize_transcript`] rewrites whole transcripts (names
//!   the server makes up).
//!
//! Publisher confirms are summarized by [`summarize_confirms`] before they
//! are logged (how acks are grouped with `multiple` is timing).

/// One accepted difference.
pub struct Difference {
    /// Short identifier, also the heading in `docs/differences.md`.
    pub id: &'static str,
    /// What is normalized.
    pub what: &'static str,
    /// Why the difference is intentional or unavoidable.
    pub reason: &'static str,
}

pub const DIFFERENCES: &[Difference] = &[
    Difference {
        id: "unknown-method-close",
        what: "A connection.close with 540 NOT_IMPLEMENTED answering an unknown class or method id \
               is logged as the end of the stream (`<- EOF`).",
        reason: "RabbitMQ has no answer for an unknown method id: its connection process crashes and \
                 the socket just drops. Warren tells the client why, with the spec's code; both end \
                 the connection.",
    },
    Difference {
        id: "generated-names",
        what: "Server-generated queue names (`amq.gen-…`) and consumer tags (`amq.ctag-…`) become \
               `amq.gen-<N>` / `amq.ctag-<N>`, numbered by first appearance in the transcript. A \
               suffix that is not 22 characters of base64url is rendered `<N:len=L>` and still differs.",
        reason: "Both servers draw the suffix from a random GUID; only its shape and where the same \
                 name reappears are observable behaviour.",
    },
    Difference {
        id: "reply-to-names",
        what: "Direct reply-to names (`amq.rabbitmq.reply-to.` followed by base64 characters and dots) \
               become `amq.rabbitmq.reply-to.<N>`, numbered by first appearance in the transcript.",
        reason: "RabbitMQ encodes its channel process id (node name, pid) and a random key; Warren a \
                 consumer id and a random key. Only where the same name reappears is behaviour.",
    },
    Difference {
        id: "server-identity",
        what: "The values (not the presence, position or type) of the `product`, `version`, \
               `platform`, `cluster_name`, `copyright` and `information` entries of \
               connection.start's server-properties become `<server-specific>`.",
        reason: "They describe which server answers (name, version, Erlang/OTP vs Rust, node \
                 name, vendor copyright and web site). Warren must not claim to be RabbitMQ by \
                 default; the `capabilities` table is compared exactly.",
    },
    Difference {
        id: "x-death-time",
        what: "The `time` timestamp inside each `x-death` header entry of a dead-lettered message \
               becomes `<timestamp>`.",
        reason: "It is the wall-clock second at which the server dead-lettered the message.",
    },
    Difference {
        id: "confirm-grouping",
        what: "Publisher confirms are logged as the set of acked and nacked sequence numbers \
               (`ack 1-3`), not as the individual basic.ack/basic.nack frames and their \
               `multiple` flags.",
        reason: "RabbitMQ coalesces confirms that become ready together into one `multiple` ack; \
                 which ones do depends on scheduling, so the grouping is not deterministic even \
                 between two RabbitMQ runs. The set and the order of returns before acks are \
                 behaviour and are compared.",
    },
    Difference {
        id: "last-death-headers",
        what: "The `x-last-death-exchange`, `x-last-death-queue` and `x-last-death-reason` message \
               headers are left out of both transcripts.",
        reason: "Warren writes them on every dead-lettering, as RabbitMQ does since 3.13; the \
                 reference RabbitMQ 3.10 predates them. Their values are tested against Warren \
                 alone (crates/broker/tests/session.rs); `x-death` and `x-first-death-*` are \
                 compared.",
    },
    Difference {
        id: "vhost-deleted-close",
        what: "In the 320 CONNECTION_FORCED that closes a connection on a vhost being deleted, \
               `vhost 'V' is down` becomes `vhost 'V' is deleted`.",
        reason: "RabbitMQ 3.10 sends either: deleting a vhost raises `vhost_deleted` and then stops \
                 the vhost (`vhost_down`), and the two handlers race to close its connections. \
                 Warren always says `is deleted`, the event RabbitMQ raises first.",
    },
    // The management HTTP API (`mgmt_differential`; rules in `mgmt::masks`).
    Difference {
        id: "mgmt-volatile",
        what: "In management API answers, the values (not the keys) of rates (`rate`, `samples`, \
               `avg`, `avg_rate` inside `*_details`), `connected_at`, ports (`port`, \
               `peer_port`, the port of any `IP:PORT` in a name, the `ports` of a failing \
               port-listener check), octet counts (`recv_oct`, `send_oct`) and `password_hash` \
               become placeholders.",
        reason: "They differ between two runs of the same broker: clocks, ephemeral ports, the \
                 ports the harness picks, salted hashes. Octets on the wire differ by the \
                 server's own connection.start properties.",
    },
    Difference {
        id: "mgmt-server-identity",
        what: "The values of `node`, `cluster_name`, `product_name`, `product_version`, \
               `rabbitmq_version`, `rabbit_version`, `erlang_version`, `erlang_full_version`, \
               `release_series_support_status` and `statistics_db_event_queue`, and node names \
               (`rabbit@host`, `warren@host`) wherever they appear (also as keys, e.g. of \
               `cluster_state`), become placeholders.",
        reason: "They say which server answers, on which host; Warren must not claim to be \
                 RabbitMQ by default.",
    },
    Difference {
        id: "mgmt-omitted-fields",
        what: "Left out of both renderings: `memory`, `reductions`, `reductions_details`, \
               `garbage_collection`, `backing_queue_status`, `consumer_utilisation`, \
               `consumer_capacity`, `messages_persistent`, `messages_paged_out`, \
               `message_bytes_paged_out`, `message_bytes_unacknowledged`, \
               `message_bytes_persistent`, `idle_since`, `send_cnt`, `recv_cnt`, `send_pend`, \
               `disk_reads`, `disk_writes` (and their `_details`), and an exchange's \
               `user_who_performed_action`.",
        reason: "Warren cannot know them (docs/management.md): Erlang process details, consumer \
                 timing, the paging and persistence counters of RabbitMQ's classic queue \
                 implementation and message store, idle timestamps, frame counts, and who \
                 declared an exchange. Everything else RabbitMQ shows must be there.",
    },
    Difference {
        id: "mgmt-regex-error-text",
        what: "In a policy refusal, what follows `pattern should be regular expression but is \
               invalid: ` becomes `<regex error>`.",
        reason: "It is the regular expression engine's own description (PCRE's `{\"missing \
                 )\",1}` in RabbitMQ, the Rust regex crate's in Warren); the refusal, its status \
                 and the rest of its text are compared.",
    },
    Difference {
        id: "mgmt-no-trace-exchange",
        what: "Listing items named `amq.rabbitmq.trace` are left out.",
        reason: "Every RabbitMQ vhost has the firehose tracing exchange; Warren has no firehose \
                 tracing, so no such exchange.",
    },
    Difference {
        id: "mgmt-ready-to-serve-clients",
        what: "The status of `GET /api/health/checks/ready-to-serve-clients` is shown as \
               `200|404` when it is either (its body is not compared).",
        reason: "RabbitMQ 3.10 has no such check (404); Warren serves it as later RabbitMQ \
                 versions document it (200 `{\"status\":\"ok\"}`), for the load balancers and \
                 orchestrators that probe it.",
    },
    Difference {
        id: "mgmt-newer-fields",
        what: "A consumer's `consumer_timeout` and a node's `being_drained` are left out of both \
               answers.",
        reason: "RabbitMQ 3.10 does not have them; later versions do, and HTTP clients written \
                 for those (the `rabbitmq_http_client` crate) fail to read a consumer or a node \
                 without them, so Warren serves them.",
    },
    Difference {
        id: "mgmt-unordered-lists",
        what: "Topic permissions and definitions exports are compared with their items sorted \
               (by exchange; by their JSON text).",
        reason: "RabbitMQ lists them in the order of its tables (hashes), which differs from one \
                 node to the next; Warren lists them sorted. Every other listing's order is \
                 compared (RabbitMQ sorts them by vhost and name unless told otherwise).",
    },
];

/// Message headers RabbitMQ 3.13 added (last-death-headers).
const LAST_DEATH_HEADERS: [&str; 3] = ["x-last-death-exchange", "x-last-death-queue", "x-last-death-reason"];

/// Field-level normalization: whether the entry at `path` (see [`field_placeholder`]) is left
/// out of the rendering altogether.
pub fn field_omitted(path: &[String]) -> bool {
    matches!(path, [root, key] if root == "headers" && LAST_DEATH_HEADERS.contains(&key.as_str()))
}

/// Server-properties entries whose values identify the server.
const SERVER_IDENTITY_KEYS: [&str; 6] =
    ["product", "version", "platform", "cluster_name", "copyright", "information"];

/// Field-level normalization, called by the renderer for every field of a
/// table. `path` is the chain of keys from the root (`headers`,
/// `server-properties`), array items as their index; `ty` the type octet.
/// Returns the placeholder to print instead of the value, if any.
pub fn field_placeholder(path: &[String], ty: u8) -> Option<&'static str> {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    match p.as_slice() {
        // server-identity
        ["server-properties", key] if SERVER_IDENTITY_KEYS.contains(key) => Some("<server-specific>"),
        // x-death-time
        ["headers", "x-death", _, "time"] if ty == b'T' => Some("<timestamp>"),
        _ => None,
    }
}

/// The generated-name prefixes and the length of their random suffix.
const GENERATED: [(&str, usize); 2] = [("amq.gen-", 22), ("amq.ctag-", 22)];

/// reply-to-names: the names direct reply-to hands out.
const REPLY_TO_PREFIX: &str = "amq.rabbitmq.reply-to.";

fn is_reply_to_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '.' | '-' | '_')
}

fn is_suffix_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Line-level normalization of a whole transcript (generated-names).
pub fn normalize_transcript(lines: &[String]) -> Vec<String> {
    let mut seen: Vec<(String, usize)> = Vec::new();
    lines
        .iter()
        .map(|line| unknown_method_close(line).unwrap_or_else(|| line.clone()))
        .map(|line| vhost_deleted_close(&line).unwrap_or(line))
        .map(|line| {
            let mut out = String::with_capacity(line.len());
            let mut rest = line.as_str();
            'scan: while !rest.is_empty() {
                if let Some(after) = rest.strip_prefix(REPLY_TO_PREFIX) {
                    let end = after.find(|c: char| !is_reply_to_char(c)).unwrap_or(after.len());
                    if end > 0 {
                        let name = &rest[..REPLY_TO_PREFIX.len() + end];
                        let n = match seen.iter().find(|(s, _)| s == name) {
                            Some((_, n)) => *n,
                            None => {
                                let n =
                                    seen.iter().filter(|(s, _)| s.starts_with(REPLY_TO_PREFIX)).count() + 1;
                                seen.push((name.to_string(), n));
                                n
                            }
                        };
                        out.push_str(&format!("{REPLY_TO_PREFIX}<{n}>"));
                        rest = &after[end..];
                        continue 'scan;
                    }
                }
                for (prefix, len) in GENERATED {
                    if let Some(after) = rest.strip_prefix(prefix) {
                        let end = after.find(|c: char| !is_suffix_char(c)).unwrap_or(after.len());
                        let name = &rest[..prefix.len() + end];
                        let n = match seen.iter().find(|(s, _)| s == name) {
                            Some((_, n)) => *n,
                            None => {
                                let n = seen.iter().filter(|(s, _)| s.starts_with(prefix)).count() + 1;
                                seen.push((name.to_string(), n));
                                n
                            }
                        };
                        if end == len {
                            out.push_str(&format!("{prefix}<{n}>"));
                        } else {
                            out.push_str(&format!("{prefix}<{n}:len={end}>"));
                        }
                        rest = &after[end..];
                        continue 'scan;
                    }
                }
                let c = rest.chars().next().unwrap();
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
            out
        })
        .collect()
}

/// unknown-method-close: `cN ch0 <- connection.close { reply_code: 540, reply_text:
/// "NOT_IMPLEMENTED - unknown …" … }` becomes `cN <- EOF`.
fn unknown_method_close(line: &str) -> Option<String> {
    let (client, rest) = line.split_once(' ')?;
    rest.strip_prefix("ch0 <- connection.close { reply_code: 540, reply_text: \"NOT_IMPLEMENTED - unknown ")?;
    Some(format!("{client} <- EOF"))
}

/// vhost-deleted-close: `… reply_text: "CONNECTION_FORCED - vhost 'V' is down" …` reads
/// `is deleted`.
fn vhost_deleted_close(line: &str) -> Option<String> {
    let start = line.find("reply_text: \"CONNECTION_FORCED - vhost '")?;
    let end = start + line[start..].find("' is down\"")?;
    Some(format!("{}' is deleted\"{}", &line[..end], &line[end + "' is down\"".len()..]))
}

/// confirm-grouping: renders the sets of acked and nacked sequence numbers
/// as ranges, e.g. `ack 1-3,5 nack 4`.
pub fn summarize_confirms(acked: &[u64], nacked: &[u64]) -> String {
    fn ranges(v: &[u64]) -> String {
        let mut v = v.to_vec();
        v.sort_unstable();
        v.dedup();
        let mut parts = Vec::new();
        let mut i = 0;
        while i < v.len() {
            let mut j = i;
            while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
                j += 1;
            }
            parts.push(if i == j { v[i].to_string() } else { format!("{}-{}", v[i], v[j]) });
            i = j + 1;
        }
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(",")
        }
    }
    format!("ack {} nack {}", ranges(acked), ranges(nacked))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_are_numbered_by_first_appearance() {
        let a = "amq.gen-AAAAAAAAAAAAAAAAAAAAAA";
        let b = "amq.gen-BBBBBBBBBBBBBBBBBBBBBB";
        let lines = vec![
            format!("declare-ok {a} x"),
            format!("\"{b}\" and \"{a}\", amq.ctag-CCCCCCCCCCCCCCCCCCCCCC"),
            "amq.gen-short.".to_string(),
        ];
        assert_eq!(
            normalize_transcript(&lines),
            vec![
                "declare-ok amq.gen-<1> x".to_string(),
                "\"amq.gen-<2>\" and \"amq.gen-<1>\", amq.ctag-<1>".to_string(),
                "amq.gen-<3:len=5>.".to_string(),
            ]
        );
    }

    #[test]
    fn vhost_down_reads_deleted() {
        let close = |t: &str| {
            format!("c1 ch0 <- connection.close {{ reply_code: 320, reply_text: \"CONNECTION_FORCED - vhost 'v' {t}\", class_id: 0 }}")
        };
        assert_eq!(normalize_transcript(&[close("is down")]), vec![close("is deleted")]);
        assert_eq!(normalize_transcript(&[close("is deleted")]), vec![close("is deleted")]);
        let other = "c1 ch1 <- basic.get-ok | body: \"vhost 'v' is down\"".to_string();
        assert_eq!(normalize_transcript(std::slice::from_ref(&other)), vec![other]);
    }

    #[test]
    fn confirm_summary_ranges() {
        assert_eq!(summarize_confirms(&[3, 1, 2, 5], &[4]), "ack 1-3,5 nack 4");
        assert_eq!(summarize_confirms(&[], &[]), "ack none nack none");
    }

    #[test]
    fn placeholders() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(field_placeholder(&p(&["server-properties", "product"]), b'S'), Some("<server-specific>"));
        assert_eq!(field_placeholder(&p(&["server-properties", "capabilities"]), b'F'), None);
        assert_eq!(field_placeholder(&p(&["headers", "x-death", "0", "time"]), b'T'), Some("<timestamp>"));
        assert_eq!(field_placeholder(&p(&["headers", "time"]), b'T'), None);
        assert!(field_omitted(&p(&["headers", "x-last-death-queue"])));
        assert!(!field_omitted(&p(&["headers", "x-first-death-queue"])));
        assert!(!field_omitted(&p(&["headers", "x-death", "0", "x-last-death-queue"])));
    }

    #[test]
    fn docs_list_every_difference() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/differences.md");
        let doc = std::fs::read_to_string(path).expect("docs/differences.md");
        for d in DIFFERENCES {
            assert!(doc.contains(&format!("`{}`", d.id)), "docs/differences.md does not list `{}`", d.id);
        }
    }
}
