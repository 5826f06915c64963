//! `/api/bindings`: list every binding (with the default exchange's implicit binding of every
//! queue, as RabbitMQ lists them), bindings between an exchange and a queue or another exchange
//! (GET lists, POST adds and answers 201 with a Location naming the new binding's
//! `properties_key`), and one binding by that key (GET, DELETE).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use warren_broker::{
    binding_args_hash, BindingSpec, Command, Destination, DestinationKind, Permission, VHost,
};
use warren_message::FieldTable;

use super::auth::Caller;
use super::body;
use super::error::ApiError;
use super::exchanges::exchange_name;
use super::format;
use super::list::{self, ListQuery};
use super::queues::apply;
use super::scope;
use super::ApiContext;

pub(super) fn routes() -> Router<Arc<ApiContext>> {
    Router::new()
        .route("/api/bindings", get(|s, c, q| list_all(s, c, None, q)))
        .route("/api/bindings/{vhost}", get(|s, c, Path(v), q| list_all(s, c, Some(v), q)))
        .route(
            "/api/bindings/{vhost}/e/{source}/q/{destination}",
            get(|s, c, p| between(s, c, p, DestinationKind::Queue))
                .post(|s, c, p, b| create(s, c, p, b, DestinationKind::Queue)),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/e/{destination}",
            get(|s, c, p| between(s, c, p, DestinationKind::Exchange))
                .post(|s, c, p, b| create(s, c, p, b, DestinationKind::Exchange)),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/q/{destination}/{props}",
            get(|s, c, p| one(s, c, p, DestinationKind::Queue))
                .delete(|s, c, p| remove(s, c, p, DestinationKind::Queue)),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/e/{destination}/{props}",
            get(|s, c, p| one(s, c, p, DestinationKind::Exchange))
                .delete(|s, c, p| remove(s, c, p, DestinationKind::Exchange)),
        )
}

/// `rabbit_http_util:quote_plus` with `~` escaped, as `rabbit_mgmt_format:quote_binding`:
/// letters, digits, `.`, `-` and `_` stay, a space is `+`, every other byte `%XX`.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A path segment of the `Location` a POST answers: everything but RFC 3986's unreserved
/// characters percent-encoded, so a `properties_key` is quoted a second time (`a.%2A` becomes
/// `a.%252A`), as RabbitMQ sends it.
fn location_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The `properties_key` RabbitMQ names a binding by (`pack_binding_props`): `~` for an empty
/// key without arguments, the quoted key, and with arguments `~` and the base64url of their
/// hash.
pub(crate) fn properties_key(key: &str, args: &FieldTable) -> String {
    if args.is_empty() {
        if key.is_empty() {
            return "~".to_owned();
        }
        return quote(key);
    }
    format!("{}~{}", quote(key), quote(&args_hash(args)))
}

/// The base64url of the arguments' hash, as a `properties_key` carries it.
fn args_hash(args: &FieldTable) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(binding_args_hash(args).to_be_bytes())
}

/// Undoes [`quote`]: `+` is a space, `%XX` a byte; anything else (a stray `%`) stays.
fn unquote(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a binding is the one a `properties_key` names. The path segment may be the listed
/// key as it was (quoted, then percent-encoded again by the client) or the routing key itself
/// (`rabbitmqadmin delete binding ... properties_key=order.*`): as RabbitMQ does, the segment
/// is split at `~` and each part unquoted once more, so both name the same binding.
fn named_by(props: &str, key: &str, args: &FieldTable) -> bool {
    let (wanted_key, wanted_hash) = match props.split_once('~') {
        Some((k, hash)) => (unquote(k), unquote(hash)),
        None => (unquote(props), String::new()),
    };
    wanted_key == key
        && if wanted_hash.is_empty() {
            args.is_empty()
        } else {
            !args.is_empty() && args_hash(args) == wanted_hash
        }
}

/// One binding as RabbitMQ lists it.
struct Listed {
    source: String,
    destination: String,
    kind: DestinationKind,
    key: String,
    args: FieldTable,
}

impl Listed {
    fn json(&self, vhost: &str) -> Value {
        json!({
            "source": self.source,
            "vhost": vhost,
            "destination": self.destination,
            "destination_type": match self.kind {
                DestinationKind::Queue => "queue",
                DestinationKind::Exchange => "exchange",
            },
            "routing_key": self.key,
            "arguments": format::table(&self.args),
            "properties_key": properties_key(&self.key, &self.args),
        })
    }
}

/// Every binding of a vhost: the default exchange's to each queue first, then the declared
/// exchanges' in source order.
fn bindings_of(v: &VHost) -> Vec<Listed> {
    let mut queues: Vec<String> = v.queues().iter().map(|q| q.name.to_string()).collect();
    queues.sort();
    let mut out: Vec<Listed> = queues
        .into_iter()
        .map(|q| Listed {
            source: String::new(),
            destination: q.clone(),
            kind: DestinationKind::Queue,
            key: q,
            args: FieldTable::new(),
        })
        .collect();
    let mut exchanges = v.exchanges();
    exchanges.sort_by(|a, b| a.name.cmp(&b.name));
    for x in exchanges {
        for b in x.bindings() {
            let (destination, kind) = match &b.destination {
                Destination::Queue(q) => (q.name.to_string(), DestinationKind::Queue),
                Destination::Exchange(e) => (e.name.to_string(), DestinationKind::Exchange),
            };
            out.push(Listed {
                source: x.name.to_string(),
                destination,
                kind,
                key: b.key.to_string(),
                args: b.args,
            });
        }
    }
    // RabbitMQ lists bindings sorted by source, destination, its kind, key, then arguments
    // (none first).
    fn rank(l: &Listed) -> (&str, &str, bool, &str, bool) {
        let to_queue = matches!(l.kind, DestinationKind::Queue);
        (&l.source, &l.destination, to_queue, &l.key, !l.args.is_empty())
    }
    out.sort_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then_with(|| format::table(&a.args).to_string().cmp(&format::table(&b.args).to_string()))
    });
    out
}

fn to_json(v: &VHost, keep: impl Fn(&Listed) -> bool) -> Vec<Value> {
    bindings_of(v).iter().filter(|b| keep(b)).map(|b| b.json(&v.name)).collect()
}

async fn list_all(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    vhost: Option<String>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let mut items = Vec::new();
    for v in scope::vhosts(&ctx, &caller, vhost.as_deref())? {
        items.extend(to_json(&v, |_| true));
    }
    let default_sorts =
        ["vhost", "source", "destination_type", "destination", "routing_key", "properties_key"];
    list::order_as_projected(&mut items, &query, &default_sorts);
    Ok(Json(list::respond(items, &query)?))
}

/// `/api/queues/{vhost}/{name}/bindings`.
pub(super) async fn of_queue(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let v = scope::vhost(&ctx, &caller, &vhost)?;
    v.queue(&name).map_err(|_| ApiError::NotFound)?;
    Ok(Json(Value::Array(to_json(&v, |b| b.kind == DestinationKind::Queue && b.destination == name))))
}

/// `/api/exchanges/{vhost}/{name}/bindings/source`.
pub(super) async fn from_exchange(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    exchange_bindings(&ctx, &caller, &vhost, &name, |b, name| b.source == name)
}

/// `/api/exchanges/{vhost}/{name}/bindings/destination`.
pub(super) async fn to_exchange(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    exchange_bindings(&ctx, &caller, &vhost, &name, |b, name| {
        b.kind == DestinationKind::Exchange && b.destination == name
    })
}

/// The bindings of exchange `name` (the default exchange too) that `keep` picks; 404 when the
/// exchange does not exist.
fn exchange_bindings(
    ctx: &ApiContext,
    caller: &Caller,
    vhost: &str,
    name: &str,
    keep: impl Fn(&Listed, &str) -> bool,
) -> Result<Json<Value>, ApiError> {
    let v = scope::vhost(ctx, caller, vhost)?;
    let name = exchange_name(name);
    if !name.is_empty() {
        v.exchange(name).map_err(|_| ApiError::NotFound)?;
    }
    Ok(Json(Value::Array(to_json(&v, |b| keep(b, name)))))
}

/// Checks that both ends exist (404 otherwise).
fn ends(v: &VHost, source: &str, destination: &str, kind: DestinationKind) -> Result<(), ApiError> {
    if !source.is_empty() {
        v.exchange(source).map_err(|_| ApiError::NotFound)?;
    }
    match kind {
        DestinationKind::Queue => v.queue(destination).map(|_| ()),
        DestinationKind::Exchange => v.exchange(destination).map(|_| ()),
    }
    .map_err(|_| ApiError::NotFound)
}

fn matching(v: &VHost, source: &str, destination: &str, kind: DestinationKind) -> Vec<Listed> {
    bindings_of(v)
        .into_iter()
        .filter(|b| b.source == source && b.destination == destination && b.kind == kind)
        .collect()
}

async fn between(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, source, destination)): Path<(String, String, String)>,
    kind: DestinationKind,
) -> Result<Json<Value>, ApiError> {
    let v = scope::vhost(&ctx, &caller, &vhost)?;
    let source = exchange_name(&source);
    ends(&v, source, &destination, kind)?;
    let items = matching(&v, source, &destination, kind).iter().map(|b| b.json(&v.name)).collect();
    Ok(Json(Value::Array(items)))
}

#[derive(Deserialize, Default)]
struct BindBody {
    routing_key: Option<String>,
    arguments: Option<Value>,
}

async fn create(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, source, destination)): Path<(String, String, String)>,
    bytes: Bytes,
    kind: DestinationKind,
) -> Result<Response, ApiError> {
    let v = scope::vhost(&ctx, &caller, &vhost)?;
    let source = exchange_name(&source).to_owned();
    if source.is_empty() {
        // Nothing binds to the default exchange: RabbitMQ refuses it as an access.
        return Err(ApiError::NotAuthorised("Access refused."));
    }
    // A missing end is named, as the AMQP refusal RabbitMQ passes on names it.
    let missing =
        |what: &str, name: &str| ApiError::not_found_as(format!("no {what} '{name}' in vhost '{vhost}'"));
    v.exchange(&source).map_err(|_| missing("exchange", &source))?;
    match kind {
        DestinationKind::Queue => {
            v.queue(&destination).map(|_| ()).map_err(|_| missing("queue", &destination))?
        }
        DestinationKind::Exchange => {
            v.exchange(&destination).map(|_| ()).map_err(|_| missing("exchange", &destination))?
        }
    }
    scope::require(&ctx, &caller, &vhost, Permission::Write, &destination)?;
    scope::require(&ctx, &caller, &vhost, Permission::Read, &source)?;
    let body: BindBody = body::json(&bytes)?;
    let key = body.routing_key.unwrap_or_default();
    let arguments = format::arguments(body.arguments.as_ref())?;
    let location =
        format!("{}/{}", location_segment(&destination), location_segment(&properties_key(&key, &arguments)));
    let spec = BindingSpec {
        source: source.as_str().into(),
        destination: destination.as_str().into(),
        destination_kind: kind,
        key: key.as_str().into(),
        arguments,
    };
    apply(&v, Command::Bind(spec))?;
    Ok((StatusCode::CREATED, [(header::LOCATION, location)]).into_response())
}

fn find(
    v: &VHost,
    source: &str,
    destination: &str,
    kind: DestinationKind,
    props: &str,
) -> Result<Listed, ApiError> {
    ends(v, source, destination, kind)?;
    matching(v, source, destination, kind)
        .into_iter()
        .find(|b| named_by(props, &b.key, &b.args))
        .ok_or(ApiError::NotFound)
}

async fn one(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, source, destination, props)): Path<(String, String, String, String)>,
    kind: DestinationKind,
) -> Result<Json<Value>, ApiError> {
    let v = scope::vhost(&ctx, &caller, &vhost)?;
    let found = find(&v, exchange_name(&source), &destination, kind, &props)?;
    Ok(Json(found.json(&v.name)))
}

async fn remove(
    State(ctx): State<Arc<ApiContext>>,
    caller: Caller,
    Path((vhost, source, destination, props)): Path<(String, String, String, String)>,
    kind: DestinationKind,
) -> Result<StatusCode, ApiError> {
    let v = scope::vhost(&ctx, &caller, &vhost)?;
    let source = exchange_name(&source).to_owned();
    let found = find(&v, &source, &destination, kind, &props)?;
    scope::require(&ctx, &caller, &vhost, Permission::Write, &destination)?;
    scope::require(&ctx, &caller, &vhost, Permission::Read, &source)?;
    let spec = BindingSpec {
        source: source.as_str().into(),
        destination: destination.as_str().into(),
        destination_kind: kind,
        key: found.key.as_str().into(),
        arguments: found.args,
    };
    apply(&v, Command::Unbind(spec))?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_message::FieldValue;

    #[test]
    fn properties_keys_as_rabbitmq_packs_them() {
        assert_eq!(properties_key("", &FieldTable::new()), "~");
        assert_eq!(properties_key("q1", &FieldTable::new()), "q1");
        assert_eq!(properties_key("a~b c/d", &FieldTable::new()), "a%7Eb+c%2Fd");
        let mut args = FieldTable::new();
        args.insert("x", FieldValue::I64(1));
        assert_eq!(properties_key("k", &args), "k~9nmLZQ");
        args.insert("s", FieldValue::LongStr(b"v".to_vec().into()));
        assert_eq!(properties_key("k", &args), "k~GTPt3A");
    }

    #[test]
    fn a_properties_key_names_its_binding_quoted_or_not() {
        let none = FieldTable::new();
        for props in ["order.%2A", "order.*"] {
            assert!(named_by(props, "order.*", &none), "{props}");
        }
        assert!(named_by("a+b%2Fc%25d", "a b/c%d", &none));
        assert!(named_by("~", "", &none));
        assert!(!named_by("~", "x", &none));
        let mut args = FieldTable::new();
        args.insert("x", FieldValue::I64(1));
        assert!(named_by("k~9nmLZQ", "k", &args));
        assert!(!named_by("k", "k", &args), "without the hash it names the binding without arguments");
        assert!(!named_by("k~9nmLZQ", "k", &none));
        assert!(named_by("~9nmLZQ", "", &args));
    }
}
