//! Each `warren ctl` command as management API requests (method, path, body) and what it
//! prints from the answers. Changes print rabbitmqctl's line, as over the control socket;
//! listings print a table of the chosen columns (or JSON).

use hyper::Method;
use serde_json::{json, Value};

use super::client::Request;
use super::session::{Api, CtlError, Session};
use super::table::{Columns, Table};
use super::target::segment as seg;
use crate::ctl::command::{CtlCommand, PolicyArgs};

const USERS: Columns = Columns { default: &["user", "tags"], aliases: &[("user", "name")] };
const VHOSTS: Columns = Columns { default: &["name"], aliases: &[] };
const PERMISSIONS: Columns = Columns { default: &["user", "configure", "write", "read"], aliases: &[] };
const USER_PERMISSIONS: Columns = Columns { default: &["vhost", "configure", "write", "read"], aliases: &[] };
const TOPIC_PERMISSIONS: Columns = Columns { default: &["user", "exchange", "write", "read"], aliases: &[] };
const POLICIES: Columns =
    Columns { default: &["vhost", "name", "pattern", "apply-to", "definition", "priority"], aliases: &[] };
const QUEUES: Columns = Columns { default: &["name", "messages"], aliases: &[("policy_name", "policy")] };
const EXCHANGES: Columns = Columns { default: &["name", "type"], aliases: &[] };
const BINDINGS: Columns = Columns {
    default: &[
        "source_name",
        "source_kind",
        "destination_name",
        "destination_kind",
        "routing_key",
        "arguments",
    ],
    aliases: &[
        ("source_name", "source"),
        ("destination_name", "destination"),
        ("destination_kind", "destination_type"),
    ],
};
const CONNECTIONS: Columns =
    Columns { default: &["name", "user", "vhost", "state", "channels"], aliases: &[] };
const CHANNELS: Columns = Columns {
    default: &["name", "user", "consumer_count", "messages_unacknowledged"],
    aliases: &[("pid", "name")],
};
const CONSUMERS: Columns = Columns {
    default: &[
        "queue_name",
        "channel_pid",
        "consumer_tag",
        "ack_required",
        "prefetch_count",
        "active",
        "arguments",
    ],
    aliases: &[("queue_name", "queue.name"), ("channel_pid", "channel_details.name")],
};

/// Carries out `command` over the API; what to print.
pub fn execute(api: &dyn Api, command: CtlCommand, json: bool) -> Result<String, CtlError> {
    use CtlCommand::*;
    let s = Session::new(api);
    let user_what = |u: &str| format!("user \"{u}\"");
    let vhost_what = |v: &str| format!("vhost \"{v}\"");
    let list = |path: String, what: &str, asked: &[String], columns: Columns| -> Result<String, CtlError> {
        let answer = s.get(path, what)?;
        render(answer.as_array().map(Vec::as_slice).unwrap_or_default(), asked, columns, json)
    };
    match command {
        AddUser { username, password } => {
            let path = format!("/api/users/{}", seg(&username));
            // rabbitmqctl refuses an existing user; a PUT would quietly replace it.
            if s.get(path.clone(), &user_what(&username)).is_ok() {
                return Err(CtlError::Local(format!("Error: user \"{username}\" already exists")));
            }
            s.put(path, &with_password(json!({"tags": ""}), &password), &user_what(&username))?;
            Ok(format!("Adding user \"{username}\" ..."))
        }
        DeleteUser { username } => {
            s.delete(format!("/api/users/{}", seg(&username)), &user_what(&username))?;
            Ok(format!("Deleting user \"{username}\" ..."))
        }
        ChangePassword { username, password } => {
            update_user(&s, &username, |body| with_password(body, &password))?;
            Ok(format!("Changing password for user \"{username}\" ..."))
        }
        ClearPassword { username } => {
            update_user(&s, &username, |body| with_password(body, ""))?;
            Ok(format!("Clearing password for user \"{username}\" ..."))
        }
        AuthenticateUser { username, password } => {
            let mut whoami = Request::new(Method::GET, "/api/whoami");
            whoami.credentials = Some((username.clone(), password));
            match s.call(whoami, "whoami") {
                Ok(_) => Ok(format!("Authenticating user \"{username}\" ...\nSuccess")),
                Err(CtlError::NotAuthorised { .. }) => Err(CtlError::Local(format!(
                    "Error: failed to authenticate user \"{username}\"\nuser '{username}' - invalid credentials"
                ))),
                Err(other) => Err(other),
            }
        }
        SetUserTags { username, tags } => {
            let joined = tags.join(",");
            update_user(&s, &username, |mut body| {
                body["tags"] = json!(joined);
                body
            })?;
            Ok(format!("Setting tags for user \"{username}\" to [{}] ...", tags.join(", ")))
        }
        ListUsers { columns } => list("/api/users".into(), "users", &columns, USERS),
        AddVhost { vhost, description, tags } => {
            let tags: Vec<String> = tags.into_iter().filter(|t| !t.is_empty()).collect();
            let body = json!({"description": description, "tags": tags.join(",")});
            s.put(format!("/api/vhosts/{}", seg(&vhost)), &body, &vhost_what(&vhost))?;
            Ok(format!("Adding vhost \"{vhost}\" ..."))
        }
        DeleteVhost { vhost } => {
            s.delete(format!("/api/vhosts/{}", seg(&vhost)), &vhost_what(&vhost))?;
            Ok(format!("Deleting vhost \"{vhost}\" ..."))
        }
        ListVhosts { columns } => list("/api/vhosts".into(), "vhosts", &columns, VHOSTS),
        SetPermissions { vhost, username, configure, write, read } => {
            let body = json!({"configure": configure, "write": write, "read": read});
            let path = format!("/api/permissions/{}/{}", seg(&vhost), seg(&username));
            s.put(path, &body, &format!("vhost \"{vhost}\" or user \"{username}\""))?;
            Ok(format!("Setting permissions for user \"{username}\" in vhost \"{vhost}\" ..."))
        }
        ClearPermissions { vhost, username } => {
            let path = format!("/api/permissions/{}/{}", seg(&vhost), seg(&username));
            s.delete(path, &format!("permissions of user \"{username}\" in vhost \"{vhost}\""))?;
            Ok(format!("Clearing permissions for user \"{username}\" in vhost \"{vhost}\" ..."))
        }
        ListPermissions { vhost } => {
            let path = format!("/api/vhosts/{}/permissions", seg(&vhost));
            list(path, &vhost_what(&vhost), &[], PERMISSIONS)
        }
        ListUserPermissions { username } => {
            let path = format!("/api/users/{}/permissions", seg(&username));
            list(path, &user_what(&username), &[], USER_PERMISSIONS)
        }
        SetTopicPermissions { vhost, username, exchange, write, read } => {
            let body = json!({"exchange": exchange, "write": write, "read": read});
            let path = format!("/api/topic-permissions/{}/{}", seg(&vhost), seg(&username));
            s.put(path, &body, &format!("vhost \"{vhost}\" or user \"{username}\""))?;
            Ok(format!("Setting topic permissions on \"{exchange}\" for user \"{username}\" in vhost \"{vhost}\" ..."))
        }
        ClearTopicPermissions { vhost, username, exchange } => {
            clear_topic_permissions(&s, &vhost, &username, exchange.as_deref())?;
            Ok(format!("Clearing topic permissions for user \"{username}\" in vhost \"{vhost}\" ..."))
        }
        ListTopicPermissions { vhost } => {
            let path = format!("/api/vhosts/{}/topic-permissions", seg(&vhost));
            list(path, &vhost_what(&vhost), &[], TOPIC_PERMISSIONS)
        }
        SetVhostLimits { vhost, definition } => {
            let base = format!("/api/vhost-limits/{}", seg(&vhost));
            let named = limits_object(&definition)?;
            let set = current_limits(&s, &base, &vhost_what(&vhost))?;
            put_limits(&s, &base, &named, &vhost_what(&vhost))?;
            // rabbitmqctl's set_vhost_limits replaces: limits left out go.
            for name in set.keys().filter(|name| !named.contains_key(*name)) {
                s.delete_if_there(format!("{base}/{}", seg(name)), &vhost_what(&vhost))?;
            }
            Ok(format!("Setting vhost limits to \"{definition}\" for vhost \"{vhost}\" ..."))
        }
        ClearVhostLimits { vhost } => {
            let base = format!("/api/vhost-limits/{}", seg(&vhost));
            for name in current_limits(&s, &base, &vhost_what(&vhost))?.keys() {
                s.delete_if_there(format!("{base}/{}", seg(name)), &vhost_what(&vhost))?;
            }
            Ok(format!("Clearing vhost \"{vhost}\" limits ..."))
        }
        ListVhostLimits { vhost } => {
            let limits =
                current_limits(&s, &format!("/api/vhost-limits/{}", seg(&vhost)), &vhost_what(&vhost))?;
            Ok(format!("Listing limits for vhost \"{vhost}\" ...\n{}", Value::Object(limits)))
        }
        SetUserLimits { username, definition } => {
            let base = format!("/api/user-limits/{}", seg(&username));
            let named = limits_object(&definition)?;
            current_limits(&s, &base, &user_what(&username))?;
            put_limits(&s, &base, &named, &user_what(&username))?;
            Ok(format!("Setting user limits to \"{definition}\" for user \"{username}\" ..."))
        }
        ClearUserLimits { username, limit } => {
            // A limit never set answers 404 like a missing one: the name is checked here.
            if limit != "all" && !warren_broker::UserLimits::NAMES.contains(&limit.as_str()) {
                let known = warren_broker::UserLimits::NAMES.join(", ");
                return Err(CtlError::Usage(format!("Error: unknown limit \"{limit}\" ({known} or all)")));
            }
            let base = format!("/api/user-limits/{}", seg(&username));
            let set = current_limits(&s, &base, &user_what(&username))?;
            let names: Vec<String> =
                if limit == "all" { set.keys().cloned().collect() } else { vec![limit.clone()] };
            for name in names {
                s.delete_if_there(format!("{base}/{}", seg(&name)), &user_what(&username))?;
            }
            Ok(format!("Clearing \"{limit}\" limit for user \"{username}\" ..."))
        }
        ListUserLimits { username } => {
            let limits =
                current_limits(&s, &format!("/api/user-limits/{}", seg(&username)), &user_what(&username))?;
            Ok(format!("Listing limits for user \"{username}\" ...\n{}", Value::Object(limits)))
        }
        ImportDefinitions { path } => {
            let body = std::fs::read(&path)
                .map_err(|e| CtlError::Local(format!("Error: reading {}: {e}", path.display())))?;
            let mut request = Request::new(Method::POST, "/api/definitions");
            request.body = Some(body);
            s.call(request, "definitions")?;
            Ok(format!("Importing definitions in JSON from a file at \"{}\" ...", path.display()))
        }
        ExportDefinitions { path } => {
            let answer = s.call(Request::new(Method::GET, "/api/definitions"), "definitions")?;
            if path.as_os_str() == "-" {
                return Ok(String::from_utf8_lossy(&answer.body).into_owned());
            }
            std::fs::write(&path, &answer.body)
                .map_err(|e| CtlError::Local(format!("Error: writing {}: {e}", path.display())))?;
            Ok(format!("Exporting definitions in JSON to a file at \"{}\" ...", path.display()))
        }
        SetPolicy(a) => {
            set_policy(&s, "policies", &a)?;
            let PolicyArgs { name, pattern, definition, priority, .. } = a;
            Ok(format!("Setting policy \"{name}\" for pattern \"{pattern}\" to \"{definition}\" with priority \"{priority}\" ..."))
        }
        SetOperatorPolicy(a) => {
            set_policy(&s, "operator-policies", &a)?;
            let PolicyArgs { name, pattern, definition, priority, .. } = a;
            Ok(format!("Setting operator policy override \"{name}\" for pattern \"{pattern}\" to \"{definition}\" with priority \"{priority}\" ..."))
        }
        ClearPolicy { vhost, name } => {
            let path = format!("/api/policies/{}/{}", seg(&vhost), seg(&name));
            s.delete(path, &format!("policy \"{name}\" in vhost \"{vhost}\""))?;
            Ok(format!("Clearing policy \"{name}\" on vhost \"{vhost}\" ..."))
        }
        ClearOperatorPolicy { vhost, name } => {
            let path = format!("/api/operator-policies/{}/{}", seg(&vhost), seg(&name));
            s.delete(path, &format!("operator policy \"{name}\" in vhost \"{vhost}\""))?;
            Ok(format!("Clearing operator policy \"{name}\" on vhost \"{vhost}\" ..."))
        }
        ListPolicies { vhost } => {
            list(format!("/api/policies/{}", seg(&vhost)), &vhost_what(&vhost), &[], POLICIES)
        }
        ListOperatorPolicies { vhost } => {
            list(format!("/api/operator-policies/{}", seg(&vhost)), &vhost_what(&vhost), &[], POLICIES)
        }
        Status => status(&s, json),
        AwaitStartup { timeout } => super::await_startup::wait(&s, std::time::Duration::from_secs(timeout)),
        ListQueues { vhost, columns } => {
            list(format!("/api/queues/{}", seg(&vhost)), &vhost_what(&vhost), &columns, QUEUES)
        }
        ListExchanges { vhost, columns } => {
            list(format!("/api/exchanges/{}", seg(&vhost)), &vhost_what(&vhost), &columns, EXCHANGES)
        }
        ListBindings { vhost, columns } => {
            let answer = s.get(format!("/api/bindings/{}", seg(&vhost)), &vhost_what(&vhost))?;
            // rabbitmqctl shows a binding's source kind; the API's bindings come from exchanges.
            let objects: Vec<Value> = answer
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|binding| {
                    let mut binding = binding.clone();
                    binding["source_kind"] = json!("exchange");
                    binding
                })
                .collect();
            render(&objects, &columns, BINDINGS, json)
        }
        ListConnections { columns } => list("/api/connections".into(), "connections", &columns, CONNECTIONS),
        ListChannels { columns } => list("/api/channels".into(), "channels", &columns, CHANNELS),
        ListConsumers { vhost, columns } => {
            list(format!("/api/consumers/{}", seg(&vhost)), &vhost_what(&vhost), &columns, CONSUMERS)
        }
        CloseConnection { name, reason } => {
            let mut request = Request::new(Method::DELETE, format!("/api/connections/{}", seg(&name)));
            request.headers.push(("X-Reason", reason));
            s.call(request, &format!("connection \"{name}\""))?;
            Ok(format!("Closing connection \"{name}\" ..."))
        }
        PurgeQueue { vhost, queue } => {
            let path = format!("/api/queues/{}/{}/contents", seg(&vhost), seg(&queue));
            s.delete(path, &format!("queue \"{queue}\" in vhost \"{vhost}\""))?;
            Ok(format!("Purging queue \"{queue}\" in vhost \"{vhost}\" ..."))
        }
        DeleteQueue { vhost, queue, if_empty, if_unused } => {
            let mut path = format!("/api/queues/{}/{}", seg(&vhost), seg(&queue));
            let conditions: Vec<&str> = [(if_empty, "if-empty=true"), (if_unused, "if-unused=true")]
                .into_iter()
                .filter_map(|(on, query)| on.then_some(query))
                .collect();
            if !conditions.is_empty() {
                path = format!("{path}?{}", conditions.join("&"));
            }
            s.delete(path, &format!("queue \"{queue}\" in vhost \"{vhost}\""))?;
            Ok(format!("Deleting queue \"{queue}\" in vhost \"{vhost}\" ..."))
        }
    }
}

/// The chosen columns of `objects`, as a table or JSON.
fn render(objects: &[Value], asked: &[String], columns: Columns, json: bool) -> Result<String, CtlError> {
    let table = Table::pick(objects, asked, columns).map_err(|e| CtlError::Usage(e.to_string()))?;
    Ok(if json { table.to_json() } else { table.to_text() })
}

/// A user PUT body with a password: "" means none (certificate login only), as in
/// rabbitmqctl, which the API takes as an empty password hash.
fn with_password(mut body: Value, password: &str) -> Value {
    if password.is_empty() {
        body["password_hash"] = json!("");
    } else {
        body["password"] = json!(password);
    }
    body
}

/// Reads a user and writes it back changed: the API's PUT replaces the tags, so they travel.
fn update_user(s: &Session, username: &str, change: impl FnOnce(Value) -> Value) -> Result<(), CtlError> {
    let path = format!("/api/users/{}", seg(username));
    let what = format!("user \"{username}\"");
    let user = s.get(path.clone(), &what)?;
    let tags = match &user["tags"] {
        Value::Array(tags) => tags.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
        Value::String(tags) => tags.clone(),
        _ => String::new(),
    };
    s.put(path, &change(json!({"tags": tags})), &what)
}

/// The API clears all of a user's topic permissions in a vhost at once; clearing one
/// exchange's puts the others back.
fn clear_topic_permissions(
    s: &Session,
    vhost: &str,
    username: &str,
    exchange: Option<&str>,
) -> Result<(), CtlError> {
    let path = format!("/api/topic-permissions/{}/{}", seg(vhost), seg(username));
    let what = format!("topic permissions of user \"{username}\" in vhost \"{vhost}\"");
    let Some(exchange) = exchange else { return s.delete(path, &what) };
    let current = s.get(path.clone(), &what)?;
    let keep: Vec<Value> = current
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|p| p["exchange"] != exchange)
        .cloned()
        .collect();
    s.delete(path.clone(), &what)?;
    for p in keep {
        s.put(
            path.clone(),
            &json!({"exchange": p["exchange"], "write": p["write"], "read": p["read"]}),
            &what,
        )?;
    }
    Ok(())
}

/// A limits argument: a JSON object of integers, as rabbitmqctl takes it.
fn limits_object(definition: &str) -> Result<serde_json::Map<String, Value>, CtlError> {
    let value: Value = serde_json::from_str(definition)
        .map_err(|e| CtlError::Local(format!("Error: the limits are not valid JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(CtlError::Local("Error: the limits must be a JSON object".into()));
    };
    Ok(object)
}

/// The limits set now (`{}` for none); a 404 names the vhost or user.
fn current_limits(s: &Session, path: &str, what: &str) -> Result<serde_json::Map<String, Value>, CtlError> {
    let answer = s.get(path.to_owned(), what)?;
    Ok(answer.get(0).and_then(|l| l["value"].as_object()).cloned().unwrap_or_default())
}

fn put_limits(
    s: &Session,
    base: &str,
    named: &serde_json::Map<String, Value>,
    what: &str,
) -> Result<(), CtlError> {
    for (name, value) in named {
        s.put(format!("{base}/{}", seg(name)), &json!({"value": value}), what)?;
    }
    Ok(())
}

fn set_policy(s: &Session, kind: &str, a: &PolicyArgs) -> Result<(), CtlError> {
    let definition: Value = serde_json::from_str(&a.definition).map_err(|e| {
        CtlError::Local(format!("Error:\nValidation failed\n\ncould not parse JSON document: {e}"))
    })?;
    let body = json!({
        "pattern": a.pattern,
        "definition": definition,
        "priority": a.priority,
        "apply-to": a.apply_to,
    });
    let path = format!("/api/{kind}/{}/{}", seg(&a.vhost), seg(&a.name));
    s.put(path, &body, &format!("vhost \"{}\"", a.vhost))
}

/// The node's overview, with its alarms.
fn status(s: &Session, json: bool) -> Result<String, CtlError> {
    let overview = s.get("/api/overview".into(), "overview")?;
    let alarms = s.send(&Request::new(Method::GET, "/api/health/checks/alarms"))?;
    let alarms: Value = serde_json::from_slice(&alarms.body).unwrap_or(Value::Null);
    let alarm_names: Vec<&str> = alarms["alarms"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|a| a["resource"].as_str())
        .collect();
    if json {
        let mut overview = overview;
        overview["alarms"] = json!(alarm_names);
        return Ok(serde_json::to_string_pretty(&overview).expect("JSON values serialize"));
    }
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "?".into(),
        other => other.to_string(),
    };
    let listeners: Vec<String> = overview["listeners"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|l| format!("{} {}:{}", text(&l["protocol"]), text(&l["ip_address"]), text(&l["port"])))
        .collect();
    let totals = &overview["object_totals"];
    let queued = &overview["queue_totals"];
    Ok(format!(
        "Status of node {} ...\nProduct: {} {} (management API {})\nListeners: {}\nConnections: {}, channels: {}, consumers: {}, queues: {}, exchanges: {}\nMessages: {} ({} ready, {} unacknowledged)\nAlarms: {}",
        text(&overview["node"]),
        text(&overview["product_name"]),
        text(&overview["product_version"]),
        text(&overview["management_version"]),
        listeners.join(", "),
        text(&totals["connections"]),
        text(&totals["channels"]),
        text(&totals["consumers"]),
        text(&totals["queues"]),
        text(&totals["exchanges"]),
        text(&queued["messages"]),
        text(&queued["messages_ready"]),
        text(&queued["messages_unacknowledged"]),
        if alarm_names.is_empty() { "none".to_owned() } else { alarm_names.join(", ") },
    ))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::ctl::http::client::{HttpError, Response};

    /// Answers from a script, in order, and records what was asked.
    struct Scripted {
        answers: RefCell<Vec<(u16, &'static str)>>,
        asked: RefCell<Vec<String>>,
    }

    impl Scripted {
        fn new(answers: &[(u16, &'static str)]) -> Scripted {
            Scripted {
                answers: RefCell::new(answers.iter().rev().cloned().collect()),
                asked: RefCell::default(),
            }
        }

        fn asked(&self) -> Vec<String> {
            self.asked.borrow().clone()
        }
    }

    impl Api for Scripted {
        fn send(&self, request: &Request) -> Result<Response, HttpError> {
            let body = request.body.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            let headers: String = request.headers.iter().map(|(n, v)| format!(" {n}={v}")).collect();
            self.asked
                .borrow_mut()
                .push(format!("{} {}{headers} {body}", request.method, request.path).trim_end().to_owned());
            let (status, body) = self.answers.borrow_mut().pop().expect("a scripted answer");
            Ok(Response { status, body: body.as_bytes().to_vec().into() })
        }

        fn url(&self, path: &str) -> String {
            format!("http://api{path}")
        }
    }

    #[test]
    fn a_password_change_keeps_the_tags_the_api_would_replace() {
        let api =
            Scripted::new(&[(200, r#"{"name": "al/ice", "tags": ["monitoring", "management"]}"#), (204, "")]);
        let command = CtlCommand::ChangePassword { username: "al/ice".into(), password: "n3w".into() };
        assert_eq!(execute(&api, command, false).unwrap(), "Changing password for user \"al/ice\" ...");
        assert_eq!(
            api.asked(),
            [
                "GET /api/users/al%2Fice",
                r#"PUT /api/users/al%2Fice {"password":"n3w","tags":"monitoring,management"}"#
            ]
        );
    }

    #[test]
    fn set_vhost_limits_replaces_the_limits_there_were() {
        let api = Scripted::new(&[
            (200, r#"[{"vhost": "/", "value": {"max-connections": 3, "max-queues": 9}}]"#),
            (204, ""),
            (204, ""),
        ]);
        let command =
            CtlCommand::SetVhostLimits { vhost: "/".into(), definition: r#"{"max-queues": 5}"#.into() };
        execute(&api, command, false).unwrap();
        assert_eq!(
            api.asked(),
            [
                "GET /api/vhost-limits/%2F",
                r#"PUT /api/vhost-limits/%2F/max-queues {"value":5}"#,
                "DELETE /api/vhost-limits/%2F/max-connections"
            ]
        );
    }

    #[test]
    fn queue_and_connection_commands_carry_their_conditions_and_reason() {
        let api = Scripted::new(&[(204, ""), (204, "")]);
        let delete = CtlCommand::DeleteQueue {
            vhost: "/".into(),
            queue: "q 1".into(),
            if_empty: true,
            if_unused: true,
        };
        execute(&api, delete, false).unwrap();
        let close = CtlCommand::CloseConnection { name: "a -> b".into(), reason: "bye now".into() };
        execute(&api, close, false).unwrap();
        assert_eq!(
            api.asked(),
            [
                "DELETE /api/queues/%2F/q%201?if-empty=true&if-unused=true",
                "DELETE /api/connections/a%20-%3E%20b X-Reason=bye now"
            ]
        );
    }

    #[test]
    fn statuses_become_errors_that_name_what_and_where() {
        let api = Scripted::new(&[(404, r#"{"error": "Object Not Found", "reason": "Not Found"}"#)]);
        let purge = CtlCommand::PurgeQueue { vhost: "/".into(), queue: "q".into() };
        let error = execute(&api, purge, false).unwrap_err();
        assert_eq!(
            error.to_string(),
            "queue \"q\" in vhost \"/\" not found (DELETE http://api/api/queues/%2F/q/contents: 404)"
        );
        assert_eq!(error.exit_code(), crate::exit_code::NOT_FOUND);
        let api =
            Scripted::new(&[(400, r#"{"error": "bad_request", "reason": "inequivalent arg 'durable'"}"#)]);
        let error = execute(&api, CtlCommand::DeleteUser { username: "x".into() }, false).unwrap_err();
        assert_eq!(error.to_string(), "inequivalent arg 'durable' (DELETE http://api/api/users/x: 400)");
        assert_eq!(error.exit_code(), crate::exit_code::FAILED);
        let api =
            Scripted::new(&[(401, r#"{"error": "not_authorised", "reason": "Not administrator user"}"#)]);
        let error = execute(&api, CtlCommand::ListUsers { columns: vec![] }, false).unwrap_err();
        assert_eq!(error.exit_code(), crate::exit_code::NOT_AUTHORISED);
        let api = Scripted::new(&[]);
        let unknown = CtlCommand::ClearUserLimits { username: "a".into(), limit: "max-queues".into() };
        let error = execute(&api, unknown, false).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Error: unknown limit \"max-queues\" (max-connections, max-channels or all)"
        );
        assert!(api.asked().is_empty());
    }
}
