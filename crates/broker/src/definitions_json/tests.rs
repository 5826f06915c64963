//! Importing and exporting whole files: RabbitMQ 3.10.8's own exports (the fixtures under
//! `crates/broker/tests/fixtures`, made by the script next to them), idempotence, files that
//! change nothing because an entry is wrong, and Warren's export round-tripping.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use warren_message::{FieldTable, FieldValue};

use super::*;
use crate::{Actor, Broker, Command, Effects, Now, QueueSpec, VhostLimits};

const RABBITMQ_CTL_EXPORT: &str = include_str!("../../tests/fixtures/rabbitmq-3.10.8-definitions.json");
const RABBITMQ_API_EXPORT: &str = include_str!("../../tests/fixtures/rabbitmq-3.10.8-api-definitions.json");

fn now() -> Now {
    Now::new(Instant::now(), 1_700_000_000_000)
}

fn import(broker: &Broker, json: &Value) -> Result<ImportSummary, DefinitionsImportError> {
    broker.import_definitions(json.to_string().as_bytes(), now())
}

fn problems(result: Result<ImportSummary, DefinitionsImportError>) -> Vec<String> {
    match result {
        Err(DefinitionsImportError::Invalid(problems)) => problems.iter().map(ToString::to_string).collect(),
        other => panic!("expected problems, got {other:?}"),
    }
}

fn logs_in(broker: &Broker, user: &str, password: &str) -> bool {
    let afar = Some("10.1.2.3".parse().unwrap());
    broker.authenticate(user, password, afar, Instant::now()) == Ok(())
}

/// What both RabbitMQ exports of the fixture broker hold, checked in a Warren that imported one.
fn check_the_reference_definitions(broker: &Broker) {
    for (user, password) in
        [("alice", "s3cret"), ("bob", "b0b-pass"), ("carol", "c4rol-512"), ("dave", "d4ve-md5")]
    {
        assert!(logs_in(broker, user, password), "{user} logs in with the password RabbitMQ had");
        assert!(!logs_in(broker, user, "wrong"), "{user}");
    }
    let access = broker.access();
    let alice = access.user("alice").unwrap();
    assert_eq!(alice.tags, ["monitoring", "management"]);
    assert_eq!((alice.limits.max_connections, alice.limits.max_channels), (Some(10), Some(20)));
    assert_eq!(access.user("carol").unwrap().password.algorithm, crate::HashAlgorithm::Sha512);
    assert_eq!(access.user("dave").unwrap().password.algorithm, crate::HashAlgorithm::Md5);
    assert!(access.user("dave").unwrap().tags.is_empty());
    let prod = access.vhost("prod").unwrap();
    assert_eq!(prod.limits, VhostLimits { max_connections: Some(100), max_queues: Some(50) });
    let alice_prod = access.permissions("alice", "prod").unwrap();
    assert_eq!(alice_prod.configure.as_str(), "^alice\\..*");
    assert!(alice_prod.allows(crate::Permission::Write, "events"));
    assert!(!alice_prod.allows(crate::Permission::Configure, "events"));
    let topic = access.all_topic_permissions();
    assert_eq!(topic.len(), 1);
    assert_eq!((topic[0].2.exchange.as_str(), topic[0].2.write.as_str()), ("events", "^orders\\..*"));

    let prod = broker.vhost("prod").unwrap();
    assert_eq!(prod.max_queues(), Some(50));
    let orders = prod.queue("alice.orders").unwrap();
    assert!(orders.durable && !orders.auto_delete);
    assert_eq!(orders.arguments.get("x-message-ttl"), Some(&FieldValue::I64(60000)));
    assert_eq!(orders.arguments.get("x-dead-letter-exchange"), Some(&FieldValue::LongStr("dlx".into())));
    assert_eq!(orders.arguments.get("x-max-priority"), Some(&FieldValue::I64(5)));
    assert!(prod.queue("quorum-one").is_ok() && broker.vhost("/").unwrap().queue("plain").is_ok());
    let with_ae = prod.exchange("with-ae").unwrap();
    assert_eq!(with_ae.arguments.get("alternate-exchange"), Some(&FieldValue::LongStr("dlx".into())));
    let events = prod.exchange("events").unwrap();
    let keys: Vec<String> = events.bindings().iter().map(|b| b.key.to_string()).collect();
    assert_eq!(keys.len(), 2);
    assert!(keys.contains(&"orders.#".to_owned()) && keys.contains(&"audit.*".to_owned()));
    let headers = prod.exchange("by-headers").unwrap().bindings();
    assert_eq!(headers[0].args.get("x-match"), Some(&FieldValue::LongStr("any".into())));
    assert_eq!(headers[0].args.get("level"), Some(&FieldValue::I64(3)));
}

#[test]
fn a_rabbitmqctl_export_imports_and_its_users_log_in_with_their_passwords() {
    let broker = Broker::new();
    let summary = broker.import_definitions(RABBITMQ_CTL_EXPORT.as_bytes(), now()).unwrap();
    check_the_reference_definitions(&broker);
    assert_eq!((summary.users, summary.vhosts, summary.permissions, summary.topic_permissions), (5, 2, 6, 1));
    assert_eq!((summary.exchanges_declared, summary.queues_declared, summary.bindings), (4, 4, 4));
    assert_eq!((summary.vhost_limits, summary.policies), (1, 2));
    let skipped = summary.skipped.join("\n");
    assert!(
        skipped.contains("global_parameters[0] 'cluster_name': global parameters are not supported"),
        "{skipped}"
    );
    assert!(!skipped.contains("polic"), "policies are applied: {skipped}");
    let prod = broker.vhost("prod").unwrap();
    let policy = &prod.policies(crate::PolicyKind::Policy)[0];
    assert_eq!(
        (policy.name.as_str(), policy.pattern.as_str(), policy.priority),
        ("ttl-and-length", "^alice\\.", 1)
    );
    let operator = &prod.policies(crate::PolicyKind::Operator)[0];
    assert!(
        operator.name == "cap-length" && operator.definition.json()["max-length"] == 5000,
        "{operator:?}"
    );
}

#[test]
fn a_management_api_export_imports_too() {
    let broker = Broker::new();
    let summary = broker.import_definitions(RABBITMQ_API_EXPORT.as_bytes(), now()).unwrap();
    check_the_reference_definitions(&broker);
    assert!(!summary.skipped.iter().any(|s| s.contains("internal_cluster_id")), "RabbitMQ's own bookkeeping");
}

#[test]
fn importing_the_same_file_twice_changes_nothing() {
    let broker = Broker::new();
    broker.import_definitions(RABBITMQ_CTL_EXPORT.as_bytes(), now()).unwrap();
    let first = broker.export_definitions();
    let again = broker.import_definitions(RABBITMQ_CTL_EXPORT.as_bytes(), now()).unwrap();
    assert_eq!((again.queues_declared, again.queues_existing), (0, 4));
    assert_eq!((again.exchanges_declared, again.exchanges_existing), (0, 4));
    assert_eq!(broker.export_definitions(), first);
    let events = broker.vhost("prod").unwrap().exchange("events").unwrap();
    assert_eq!(events.bindings().len(), 2, "bindings are not doubled");
    check_the_reference_definitions(&broker);
}

#[test]
fn an_existing_queue_with_other_arguments_is_left_alone_as_rabbitmq_does() {
    let broker = Broker::new();
    let mut args = FieldTable::new();
    args.insert("x-max-length", FieldValue::I64(1));
    let spec =
        QueueSpec { name: "plain".into(), durable: true, arguments: args.clone(), ..Default::default() };
    let vhost = broker.vhost("/").unwrap();
    vhost.apply(Command::DeclareQueue(spec), Actor::BROKER, Instant::now(), &mut Effects::default()).unwrap();
    let file = json!({"queues": [{"name": "plain", "vhost": "/", "durable": false, "arguments": {"x-message-ttl": 5}}]});
    let summary = import(&broker, &file).unwrap();
    assert_eq!((summary.queues_declared, summary.queues_existing), (0, 1));
    let q = vhost.queue("plain").unwrap();
    assert!(q.durable);
    assert_eq!(q.arguments, args);
}

#[test]
fn older_files_tags_as_text_and_hashes_without_an_algorithm() {
    let broker = Broker::new();
    // RabbitMQ 3.5 wrote MD5 hashes and no hashing_algorithm; tags were a comma-separated string.
    let md5 = "C63wDV0mWh9QoqTEJYkq0ogznEY="; // salt 0badf00d, password d4ve-md5
    let file = json!({
        "rabbit_version": "3.5.7",
        "users": [{"name": "old", "password_hash": md5, "tags": "administrator,monitoring"}],
    });
    import(&broker, &file).unwrap();
    let old = broker.access().user("old").unwrap();
    assert_eq!(old.tags, ["administrator", "monitoring"]);
    assert!(logs_in(&broker, "old", "d4ve-md5"));
    // The same hash named by a 3.6+ file is read as SHA-256, and its length gives it away.
    let file =
        json!({"rabbit_version": "3.8.0", "users": [{"name": "new", "password_hash": md5, "tags": ""}]});
    let problems = problems(import(&broker, &file));
    assert_eq!(
        problems,
        ["users[0] 'new': password_hash is 20 bytes; a rabbit_password_hashing_sha256 hash is 36 (a 4-byte salt, then the hash)"]
    );
    // A clear password is hashed; no password at all leaves a certificate-only user.
    let file = json!({"users": [
        {"name": "clear", "password": "pw", "tags": []},
        {"name": "certs", "tags": []},
        {"name": "blank", "password_hash": "", "tags": []},
    ]});
    import(&broker, &file).unwrap();
    assert!(logs_in(&broker, "clear", "pw"));
    assert!(broker.access().user("certs").unwrap().password.bytes.is_empty());
    assert!(broker.access().user("blank").unwrap().password.bytes.is_empty());
}

#[test]
fn a_bad_file_changes_nothing_and_names_every_entry_at_fault() {
    let broker = Broker::new();
    let before = broker.export_definitions();
    let file = json!({
        "users": [
            {"name": "fine", "password": "pw", "tags": []},
            {"name": "bcrypt", "password_hash": "AAAA", "hashing_algorithm": "rabbit_password_hashing_bcrypt", "tags": []},
            {"name": "garbled", "password_hash": "not base64!", "tags": []},
            {"name": "greedy", "password": "pw", "tags": [], "limits": {"max-connections": 1, "max-queues": 2}},
        ],
        "vhosts": [{"name": "new"}],
        "permissions": [
            {"user": "fine", "vhost": "new", "configure": "(", "write": ".*", "read": ".*"},
            {"user": "nobody", "vhost": "nowhere", "configure": ".*", "write": ".*", "read": ".*"},
        ],
        "topic_permissions": [{"user": "fine", "vhost": "new", "exchange": "t", "write": "[", "read": ".*"}],
        "parameters": [{"vhost": "new", "component": "vhost-limits", "name": "limits", "value": {"max-queues": "ten"}}],
        "policies": [{"vhost": "new", "name": "p", "pattern": ".*", "apply-to": "topics", "definition": {"max-length": 1}}],
        "exchanges": [
            {"name": "x", "vhost": "new", "type": "x-random", "durable": true, "auto_delete": false, "internal": false, "arguments": {}},
            {"name": "ae", "vhost": "new", "type": "direct", "durable": true, "auto_delete": false, "internal": false, "arguments": {"alternate-exchange": 5}},
        ],
        "queues": [
            {"name": "q", "vhost": "new", "durable": true, "auto_delete": false, "arguments": {"x-message-ttl": "soon"}},
            {"name": "s", "vhost": "new", "durable": true, "auto_delete": false, "arguments": {"x-queue-type": "stream"}},
        ],
        "bindings": [
            {"source": "missing", "vhost": "new", "destination": "q", "destination_type": "queue", "routing_key": "", "arguments": {}},
            {"source": "amq.headers", "vhost": "new", "destination": "amq.direct", "destination_type": "exchange", "routing_key": "", "arguments": {"x-match": "some"}},
        ],
    });
    let found = problems(import(&broker, &file));
    let expected = [
        "users[1] 'bcrypt': unknown hashing_algorithm 'rabbit_password_hashing_bcrypt' (Warren knows rabbit_password_hashing_sha256, rabbit_password_hashing_sha512 and rabbit_password_hashing_md5)",
        "users[2] 'garbled': password_hash is not valid base64",
        "users[3] 'greedy': unknown limit 'max-queues' (known: max-connections, max-channels)",
        "permissions[0] (user 'fine') in vhost 'new': a permission pattern is not a valid regular expression",
        "permissions[1] (user 'nobody') in vhost 'nowhere': user 'nobody' does not exist and the file does not add it",
        "permissions[1] (user 'nobody') in vhost 'nowhere': vhost 'nowhere' does not exist and the file does not add it",
        "topic_permissions[0] (user 'fine', exchange 't') in vhost 'new': a topic permission pattern is not a valid regular expression",
        "exchanges[0] 'x' in vhost 'new': unknown exchange type 'x-random'",
        "exchanges[1] 'ae' in vhost 'new': invalid type 'long' for argument 'alternate-exchange'",
        "policies[0] 'p' in vhost 'new': Validation failed apply-to 'topics' unrecognised",
        "parameters[0] 'limits' (component 'vhost-limits') in vhost 'new': limit 'max-queues' must be an integer, not \"ten\"",
        "queues[0] 'q' in vhost 'new': invalid argument 'x-message-ttl': \"expected integer, got longstr\"",
        "queues[1] 's' in vhost 'new': invalid argument 'x-queue-type': \"unsupported queue type 'stream'\"",
        "bindings[0] (source 'missing', destination 'q') in vhost 'new': source exchange 'missing' does not exist and the file does not declare it",
        "bindings[1] (source 'amq.headers', destination 'amq.direct') in vhost 'new': Invalid x-match field value <<\"some\">>; expected all, any, all-with-x, or any-with-x",
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for (found, expected) in found.iter().zip(expected) {
        assert!(found.starts_with(expected), "{found}\n  does not start with\n{expected}");
    }
    assert_eq!(broker.export_definitions(), before, "nothing changed");
    assert!(broker.access().user("fine").is_none() && broker.vhost("new").is_none());
}

#[test]
fn files_that_are_not_definitions_say_where() {
    let broker = Broker::new();
    let e = broker.import_definitions(b"{\"users\": [", now()).unwrap_err();
    assert!(matches!(e, DefinitionsImportError::NotJson(_)));
    assert!(e.to_string().contains("line 1 column 11"), "{e}");
    let e = broker.import_definitions(b"[]", now()).unwrap_err();
    assert!(e.to_string().contains("must be a JSON object"), "{e}");
    let file = json!({"users": {"name": "x"}, "queues": [{"vhost": "/"}, 3]});
    assert_eq!(
        problems(import(&broker, &file)),
        [
            "users: expected a list of entries, not an object",
            "queues[0] in vhost '/': missing field `name`",
            "queues[1]: expected an object, not a number",
        ]
    );
    let e = import(&broker, &json!({"vhosts": [{"name": ""}]})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "1 entry of the definitions cannot be imported, so nothing was imported:\n  vhosts[0] '': a vhost needs a name"
    );
}

#[test]
fn amq_names_and_unsupported_parameters_are_skipped_not_refused() {
    let broker = Broker::new();
    let file = json!({
        "parameters": [{"vhost": "/", "component": "federation-upstream", "name": "up", "value": {"uri": "amqp://x"}}],
        "exchanges": [
            {"name": "amq.direct", "vhost": "/", "type": "direct", "durable": true, "auto_delete": false, "internal": false, "arguments": {}},
            {"name": "", "vhost": "/", "type": "direct", "durable": true, "auto_delete": false, "internal": false, "arguments": {}},
        ],
        "queues": [{"name": "amq.gen-x", "vhost": "/", "durable": true, "auto_delete": false, "arguments": {}}],
        "bindings": [{"source": "amq.topic", "vhost": "/", "destination": "amq.fanout", "destination_type": "exchange", "routing_key": "#", "arguments": {}}],
    });
    let summary = import(&broker, &file).unwrap();
    assert_eq!(summary.skipped.len(), 4, "{:#?}", summary.skipped);
    let federation =
        "parameters[0] 'up' (component 'federation-upstream') in vhost '/': parameters of component \
                      'federation-upstream' are not supported by Warren; not imported";
    assert!(summary.skipped.iter().any(|s| s == federation), "{:#?}", summary.skipped);
    assert_eq!(summary.bindings, 1);
    assert_eq!(broker.vhost("/").unwrap().exchange("amq.topic").unwrap().bindings().len(), 1);
}

#[test]
fn queues_beyond_a_vhost_limit_are_refused_before_anything_changes() {
    let broker = Broker::new();
    let queue = |name: &str| json!({"name": name, "vhost": "small", "durable": true, "auto_delete": false, "arguments": {}});
    let file = json!({
        "vhosts": [{"name": "small"}],
        "parameters": [{"vhost": "small", "component": "vhost-limits", "name": "limits", "value": {"max-queues": 1}}],
        "queues": [queue("a"), queue("b")],
    });
    assert_eq!(
        problems(import(&broker, &file)),
        ["queues of vhost 'small': adding 2 queue(s) would exceed the vhost's limit of 1 queue(s); it has 0"]
    );
    assert!(broker.vhost("small").is_none());
    // A negative limit is no limit, as in RabbitMQ.
    let mut file = file;
    file["parameters"][0]["value"]["max-queues"] = json!(-1);
    import(&broker, &file).unwrap();
    assert_eq!(broker.access().vhost("small").unwrap().limits.max_queues, None);
}

/// A broker with one of everything an export has to get right.
fn busy_broker() -> Broker {
    let broker = Broker::new();
    broker.import_definitions(RABBITMQ_CTL_EXPORT.as_bytes(), now()).unwrap();
    let extra = json!({
        "vhosts": [{"name": "ring", "description": "consistent hashing", "tags": ["a", "b"]}],
        "permissions": [{"user": "guest", "vhost": "ring", "configure": ".*", "write": ".*", "read": ".*"}],
        "exchanges": [
            {"name": "hash", "vhost": "ring", "type": "x-consistent-hash", "durable": true, "auto_delete": false, "internal": false, "arguments": {"hash-header": "h"}},
            {"name": "inner", "vhost": "ring", "type": "fanout", "durable": false, "auto_delete": true, "internal": true, "arguments": {}},
            {"name": "later", "vhost": "ring", "type": "x-delayed-message", "durable": true, "auto_delete": false, "internal": false, "arguments": {"x-delayed-type": "topic"}},
        ],
        "queues": [
            {"name": "q3", "vhost": "ring", "durable": true, "auto_delete": false, "arguments": {"x-single-active-consumer": true, "ratio": 0.25, "nested": {"l": [1, "x"]}}},
            {"name": "q1", "vhost": "ring", "durable": false, "auto_delete": true, "arguments": {}},
        ],
        "bindings": [
            {"source": "hash", "vhost": "ring", "destination": "q3", "destination_type": "queue", "routing_key": "10", "arguments": {}},
            {"source": "hash", "vhost": "ring", "destination": "q1", "destination_type": "queue", "routing_key": "2", "arguments": {}},
            {"source": "hash", "vhost": "ring", "destination": "inner", "destination_type": "exchange", "routing_key": "5", "arguments": {}},
            {"source": "later", "vhost": "ring", "destination": "q1", "destination_type": "queue", "routing_key": "a.*", "arguments": {}},
        ],
    });
    import(&broker, &extra).unwrap();
    // Exclusive and server-named queues are not exported, nor are their bindings.
    let vhost = broker.vhost("ring").unwrap();
    for (name, exclusive) in [("mine", true), ("", false)] {
        let spec = QueueSpec { name: name.into(), exclusive, ..Default::default() };
        let q = match vhost.apply(
            Command::DeclareQueue(spec),
            Actor::connection(7),
            Instant::now(),
            &mut Effects::default(),
        ) {
            Ok(crate::Outcome::Queue(q)) => q,
            other => panic!("{other:?}"),
        };
        let bind = crate::BindingSpec {
            source: "amq.direct".into(),
            destination: q.name.clone(),
            destination_kind: crate::DestinationKind::Queue,
            key: "k".into(),
            arguments: FieldTable::new(),
        };
        vhost
            .apply(Command::Bind(bind), Actor::connection(7), Instant::now(), &mut Effects::default())
            .unwrap();
    }
    broker
}

#[test]
fn an_export_round_trips_through_a_fresh_broker() {
    let broker = busy_broker();
    let exported = broker.export_definitions();
    let json = broker.export_definitions_json();
    let fresh = Broker::new();
    fresh.import_definitions(&json, now()).unwrap();
    assert_eq!(fresh.export_definitions(), exported);
    check_the_reference_definitions(&fresh);
    let ring = fresh.vhost("ring").unwrap();
    let ring_order: Vec<String> =
        ring.exchange("hash").unwrap().bindings().iter().map(|b| b.key.to_string()).collect();
    assert_eq!(ring_order, ["10", "2", "5"], "a consistent-hash exchange's bindings keep their order");
    assert!(ring.exchange("inner").unwrap().internal);
    assert!(ring.queue("mine").is_err());
}

#[test]
fn an_export_says_what_rabbitmq_3_10_reads() {
    let value = serde_json::to_value(busy_broker().export_definitions()).unwrap();
    assert_eq!(value["rabbit_version"], "3.10.8");
    assert_eq!(value["product_name"], "Warren");
    let user =
        |name: &str| value["users"].as_array().unwrap().iter().find(|u| u["name"] == name).unwrap().clone();
    assert_eq!(
        user("alice"),
        json!({
            "name": "alice",
            "password_hash": "8ncK0UGV5Vl2kl1lQsa2pTjt9ZdD9qOj5lIfiyE1FAzFBT43",
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": ["monitoring", "management"],
            "limits": {"max-connections": 10, "max-channels": 20},
        }),
        "the hash RabbitMQ exported, as it exported it"
    );
    assert_eq!(user("bob")["limits"], json!({}));
    let ring = value["vhosts"].as_array().unwrap().iter().find(|v| v["name"] == "ring").unwrap().clone();
    assert_eq!(
        ring,
        json!({"name": "ring", "description": "consistent hashing", "tags": ["a", "b"],
               "metadata": {"description": "consistent hashing", "tags": ["a", "b"]}})
    );
    assert_eq!(
        value["parameters"],
        json!([{"vhost": "prod", "component": "vhost-limits", "name": "limits",
                "value": {"max-connections": 100, "max-queues": 50}},
               {"vhost": "prod", "component": "operator_policy", "name": "cap-length",
                "value": {"apply-to": "queues", "definition": {"max-length": 5000}, "pattern": ".*", "priority": 0}}])
    );
    assert_eq!(
        value["policies"],
        json!([{"vhost": "prod", "name": "ttl-and-length", "pattern": "^alice\\.", "apply-to": "queues",
                "definition": {"max-length": 1000, "message-ttl": 60000}, "priority": 1}])
    );
    let queues: Vec<&str> =
        value["queues"].as_array().unwrap().iter().map(|q| q["name"].as_str().unwrap()).collect();
    assert_eq!(queues, ["plain", "alice.dead", "alice.orders", "quorum-one", "q1", "q3"]);
    let q3 = value["queues"].as_array().unwrap().iter().find(|q| q["name"] == "q3").unwrap().clone();
    assert_eq!(
        q3["arguments"],
        json!({"x-single-active-consumer": true, "ratio": 0.25, "nested": {"l": [1, "x"]}})
    );
    assert_eq!(q3["type"], "classic");
    let exchanges: Vec<&str> =
        value["exchanges"].as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(exchanges, ["by-headers", "dlx", "events", "with-ae", "hash", "inner", "later"]);
    let bindings = value["bindings"].as_array().unwrap();
    assert!(
        bindings.iter().all(|b| b["source"] != "amq.direct"),
        "no binding to an exclusive or server-named queue"
    );
}

#[test]
fn imported_definitions_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("definitions.redb");
    let open = || {
        let definitions = Arc::new(warren_store::definitions::Definitions::open(&path).unwrap());
        Broker::open(Arc::new(warren_store::MemoryStore), definitions, None, now()).unwrap()
    };
    let broker = open();
    assert!(broker.access().users().is_empty(), "no default user: definitions are loaded instead");
    broker.import_definitions(RABBITMQ_CTL_EXPORT.as_bytes(), now()).unwrap();
    let exported = broker.export_definitions();
    drop(broker);
    let broker = open();
    check_the_reference_definitions(&broker);
    assert_eq!(broker.export_definitions(), exported);
}
