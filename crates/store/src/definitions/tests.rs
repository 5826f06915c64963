use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use warren_message::{FieldTable, FieldValue};

use super::*;

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        Self::new_in(&std::env::temp_dir())
    }

    fn new_in(parent: &Path) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = parent.join(format!("warren-definitions-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.join("definitions.redb")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One value of every field type, nested ones included.
fn every_field_type() -> FieldTable {
    let inner = FieldTable(vec![
        ("deep".into(), FieldValue::Table(FieldTable(vec![("x".into(), FieldValue::Void)]))),
        ("s".into(), FieldValue::LongStr(Bytes::from_static(b"inner"))),
    ]);
    FieldTable(vec![
        ("bool".into(), FieldValue::Bool(true)),
        ("i8".into(), FieldValue::I8(-8)),
        ("u8".into(), FieldValue::U8(200)),
        ("i16".into(), FieldValue::I16(-1600)),
        ("u16".into(), FieldValue::U16(60_000)),
        ("i32".into(), FieldValue::I32(i32::MIN)),
        ("u32".into(), FieldValue::U32(u32::MAX)),
        ("i64".into(), FieldValue::I64(i64::MIN + 1)),
        ("f32".into(), FieldValue::F32(-1.5e-7)),
        ("f64".into(), FieldValue::F64(std::f64::consts::PI)),
        ("decimal".into(), FieldValue::Decimal { scale: 3, value: 123_456 }),
        ("longstr".into(), FieldValue::LongStr(Bytes::from_static(b"caf\xc3\xa9 \x00\xff binary"))),
        (
            "array".into(),
            FieldValue::Array(vec![
                FieldValue::I32(1),
                FieldValue::LongStr(Bytes::from_static(b"two")),
                FieldValue::Array(vec![]),
                FieldValue::Table(FieldTable::new()),
            ]),
        ),
        ("timestamp".into(), FieldValue::Timestamp(1_700_000_000)),
        ("table".into(), FieldValue::Table(inner)),
        ("void".into(), FieldValue::Void),
        ("bytes".into(), FieldValue::ByteArray(Bytes::from_static(&[0, 1, 2, 255]))),
        ("x-max-length".into(), FieldValue::I64(10)),
        ("".into(), FieldValue::Bool(false)),
    ])
}

fn encoded(table: &FieldTable) -> Vec<u8> {
    let mut out = BytesMut::new();
    table.encode(&mut out);
    out.to_vec()
}

fn user(name: &str) -> UserDef {
    UserDef {
        name: name.into(),
        password_hash: vec![0xde, 0xad, 0, 0xbe, 0xef],
        hashing_algorithm: "rabbit_password_hashing_sha256".into(),
        tags: vec!["administrator".into(), "monitoring".into()],
        limits: UserLimitsDef::default(),
    }
}

fn permission(user: &str, vhost: &str, configure: &str) -> PermissionDef {
    PermissionDef {
        user: user.into(),
        vhost: vhost.into(),
        configure: configure.into(),
        write: ".*".into(),
        read: "^$".into(),
    }
}

fn access_json(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

fn vhost(name: &str) -> VhostDef {
    VhostDef { name: name.into(), ..VhostDef::default() }
}

fn exchange(vhost: &str, name: &str) -> ExchangeDef {
    ExchangeDef {
        vhost: vhost.into(),
        name: name.into(),
        kind: "topic".into(),
        durable: true,
        auto_delete: false,
        internal: false,
        arguments: FieldTable::new(),
    }
}

fn queue(vhost: &str, name: &str) -> QueueDef {
    QueueDef {
        vhost: vhost.into(),
        name: name.into(),
        durable: true,
        auto_delete: false,
        arguments: FieldTable::new(),
    }
}

fn binding(vhost: &str, source: &str, destination: &str, to_queue: bool, rk: &str) -> BindingDef {
    BindingDef {
        vhost: vhost.into(),
        source: source.into(),
        destination: destination.into(),
        destination_is_queue: to_queue,
        routing_key: rk.into(),
        arguments: FieldTable::new(),
    }
}

/// The bindings table and its by-destination index hold the same bindings.
fn assert_binding_index_consistent(defs: &Definitions) {
    let txn = defs.db.begin_read().unwrap();
    let mut forward = Vec::new();
    for entry in txn.open_table(BINDINGS).unwrap().iter().unwrap() {
        forward.push(codec::decode_binding_key(entry.unwrap().0.value()).unwrap());
    }
    let mut reverse = Vec::new();
    for entry in txn.open_table(BINDINGS_BY_DESTINATION).unwrap().iter().unwrap() {
        let def = codec::decode_binding_destination_key(entry.unwrap().0.value()).unwrap();
        reverse.push(def);
    }
    reverse.sort_by_key(codec::binding_key);
    assert_eq!(forward, reverse);
}

/// Writes `value` under `key` in `table`, bypassing the encoders.
fn write_raw(path: &Path, table: Tbl, key: &[u8], value: &[u8]) {
    let db = Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(table).unwrap().insert(key, value).unwrap();
    txn.commit().unwrap();
}

#[test]
fn definitions_round_trip_every_kind() {
    let dir = TempDir::new();
    let defs = Definitions::open(&dir.file()).unwrap();
    assert_eq!(defs.load().unwrap(), AllDefinitions::default());

    let args = every_field_type();
    let u = UserDef {
        name: "guest".into(),
        password_hash: (0..=255).collect(),
        hashing_algorithm: "rabbit_password_hashing_sha512".into(),
        tags: vec!["administrator".into(), "".into(), "policymaker".into()],
        limits: UserLimitsDef { max_connections: Some(0), max_channels: Some(u64::MAX) },
    };
    let e = ExchangeDef {
        vhost: "/".into(),
        name: "amq.topic\0odd".into(),
        kind: "x-consistent-hash".into(),
        durable: true,
        auto_delete: true,
        internal: true,
        arguments: args.clone(),
    };
    let q = QueueDef {
        vhost: "/".into(),
        name: "q \u{1F407}".into(),
        durable: true,
        auto_delete: true,
        arguments: args.clone(),
    };
    let b = BindingDef {
        vhost: "/".into(),
        source: e.name.clone(),
        destination: q.name.clone(),
        destination_is_queue: true,
        routing_key: "a.*.#".into(),
        arguments: args.clone(),
    };
    let e2e = BindingDef { destination: "sink".into(), destination_is_queue: false, ..b.clone() };

    defs.put_vhost("/").unwrap();
    defs.put_user(&u).unwrap();
    defs.put_exchange(&e).unwrap();
    defs.put_queue(&q).unwrap();
    defs.put_binding(&b).unwrap();
    defs.put_binding(&e2e).unwrap();

    let all = defs.load().unwrap();
    assert_eq!(all.vhosts, vec![vhost("/")]);
    assert_eq!(all.users, vec![u]);
    assert_eq!(all.exchanges, vec![e]);
    assert_eq!(all.queues, vec![q]);
    // Exchange destinations sort before queue destinations.
    assert_eq!(all.bindings, vec![e2e, b]);
    for table in [&all.exchanges[0].arguments, &all.queues[0].arguments, &all.bindings[0].arguments] {
        assert_eq!(encoded(table), encoded(&args), "arguments round-trip byte for byte");
    }
    assert_binding_index_consistent(&defs);

    // Flags one at a time, and the empty user.
    for (durable, auto_delete, internal) in [(true, false, false), (false, true, false), (false, false, true)]
    {
        let e = ExchangeDef { durable, auto_delete, internal, ..exchange("/", "flags") };
        defs.put_exchange(&e).unwrap();
        let q = QueueDef { durable, auto_delete, ..queue("/", "flags") };
        defs.put_queue(&q).unwrap();
        let all = defs.load().unwrap();
        assert!(all.exchanges.contains(&e));
        assert!(all.queues.contains(&q));
    }
    let empty = UserDef {
        name: "".into(),
        password_hash: vec![],
        hashing_algorithm: "".into(),
        tags: vec![],
        limits: UserLimitsDef::default(),
    };
    defs.put_user(&empty).unwrap();
    assert_eq!(defs.load().unwrap().users[0], empty);
}

#[test]
fn definitions_float_arguments_keep_their_bits() {
    let dir = TempDir::new();
    let defs = Definitions::open(&dir.file()).unwrap();
    let args = FieldTable(vec![
        ("nan32".into(), FieldValue::F32(f32::from_bits(0x7fc0_1234))),
        ("nan64".into(), FieldValue::F64(f64::from_bits(0xfff8_0000_dead_beef))),
        ("negzero".into(), FieldValue::F64(-0.0)),
        ("inf".into(), FieldValue::F32(f32::INFINITY)),
    ]);
    defs.put_queue(&QueueDef { arguments: args.clone(), ..queue("/", "q") }).unwrap();
    assert_eq!(encoded(&defs.load().unwrap().queues[0].arguments), encoded(&args));
}

#[test]
fn definitions_put_replaces_and_load_is_sorted() {
    let dir = TempDir::new();
    let defs = Definitions::open(&dir.file()).unwrap();
    for v in ["b", "a\0", "a", "", "ab"] {
        defs.put_vhost(v).unwrap();
        defs.put_user(&user(v)).unwrap();
        for n in ["z", "m", "a\0", "a"] {
            defs.put_exchange(&exchange(v, n)).unwrap();
            defs.put_queue(&queue(v, n)).unwrap();
            defs.put_binding(&binding(v, n, "z", true, "k")).unwrap();
            defs.put_binding(&binding(v, "m", n, false, "")).unwrap();
        }
    }
    // A second put of the same key replaces the first.
    defs.put_vhost("a").unwrap();
    let replaced = ExchangeDef { kind: "fanout".into(), ..exchange("a", "m") };
    defs.put_exchange(&replaced).unwrap();
    let admin = UserDef { tags: vec![], ..user("a") };
    defs.put_user(&admin).unwrap();

    let all = defs.load().unwrap();
    assert_eq!(all, defs.load().unwrap());
    let mut sorted_vhosts = all.vhosts.clone();
    sorted_vhosts.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(all.vhosts, sorted_vhosts);
    assert_eq!(all.vhosts.len(), 5);
    assert!(all.users.windows(2).all(|w| w[0].name < w[1].name));
    assert!(all.users.contains(&admin));
    let key = |v: &str, n: &str| (v.to_string(), n.to_string());
    assert!(all.exchanges.windows(2).all(|w| key(&w[0].vhost, &w[0].name) < key(&w[1].vhost, &w[1].name)));
    assert!(all.queues.windows(2).all(|w| key(&w[0].vhost, &w[0].name) < key(&w[1].vhost, &w[1].name)));
    assert_eq!(all.exchanges.len(), 20);
    assert!(all.exchanges.contains(&replaced));
    // 4 per vhost to "z", 4 from "m", one ("m" -> queue "z") counted in both.
    assert_eq!(all.bindings.len(), 5 * 8);
    let bkey =
        |b: &BindingDef| (b.vhost.clone(), b.source.clone(), b.destination_is_queue, b.destination.clone());
    assert!(all.bindings.windows(2).all(|w| bkey(&w[0]) < bkey(&w[1])));
    assert_binding_index_consistent(&defs);
}

#[test]
fn definitions_bindings_are_identified_by_every_field() {
    let dir = TempDir::new();
    let defs = Definitions::open(&dir.file()).unwrap();
    let plain = binding("/", "x", "q", true, "k");
    let with_args = BindingDef {
        arguments: FieldTable(vec![("x-match".into(), FieldValue::LongStr("all".into()))]),
        ..plain.clone()
    };
    let other_args = BindingDef {
        arguments: FieldTable(vec![("x-match".into(), FieldValue::LongStr("any".into()))]),
        ..plain.clone()
    };
    let to_exchange = BindingDef { destination_is_queue: false, ..plain.clone() };
    let other_key = BindingDef { routing_key: "k2".into(), ..plain.clone() };
    let all = [&plain, &with_args, &other_args, &to_exchange, &other_key];
    for b in all {
        defs.put_binding(b).unwrap();
        defs.put_binding(b).unwrap(); // idempotent
    }
    assert_eq!(defs.load().unwrap().bindings.len(), 5);

    defs.delete_binding(&with_args).unwrap();
    defs.delete_binding(&with_args).unwrap(); // deleting what is gone is fine
    let left = defs.load().unwrap().bindings;
    assert_eq!(left.len(), 4);
    assert!(!left.contains(&with_args));
    for b in [&plain, &other_args, &to_exchange, &other_key] {
        assert!(left.contains(b));
    }
    assert_binding_index_consistent(&defs);
}

#[test]
fn definitions_delete_exchange_removes_its_bindings_both_ways() {
    let dir = TempDir::new();
    let defs = Definitions::open(&dir.file()).unwrap();
    for x in ["x", "x2", "up", "down"] {
        defs.put_exchange(&exchange("/", x)).unwrap();
        defs.put_exchange(&exchange("other", x)).unwrap();
    }
    defs.put_queue(&queue("/", "x")).unwrap(); // a queue named like the exchange
    let doomed = [
        binding("/", "x", "q", true, "a"),
        binding("/", "x", "q", true, "b"),
        binding("/", "x", "down", false, ""),
        binding("/", "up", "x", false, "#"),
        binding("/", "x", "x", false, "self"),
    ];
    let kept = [
        binding("/", "up", "x", true, "#"),    // to the queue named x
        binding("/", "x2", "q", true, "a"),    // a source that starts with "x"
        binding("/", "up", "x2", false, "#"),  // a destination that starts with "x"
        binding("other", "x", "q", true, "a"), // another vhost
        binding("other", "up", "x", false, "#"),
    ];
    for b in doomed.iter().chain(&kept) {
        defs.put_binding(b).unwrap();
    }
    defs.delete_exchange("/", "x").unwrap();

    let all = defs.load().unwrap();
    assert!(!all.exchanges.contains(&exchange("/", "x")));
    assert_eq!(all.exchanges.len(), 7);
    assert_eq!(all.queues, vec![queue("/", "x")]);
    let mut expected = kept.to_vec();
    expected.sort_by_key(codec::binding_key);
    assert_eq!(all.bindings, expected);
    assert_binding_index_consistent(&defs);
    defs.delete_exchange("/", "x").unwrap(); // already gone
}

#[test]
fn definitions_delete_queue_removes_its_bindings() {
    let dir = TempDir::new();
    let defs = Definitions::open(&dir.file()).unwrap();
    defs.put_queue(&queue("/", "q")).unwrap();
    defs.put_queue(&queue("/", "q2")).unwrap();
    for x in ["a", "b"] {
        defs.put_binding(&binding("/", x, "q", true, "k")).unwrap();
        defs.put_binding(&BindingDef {
            arguments: FieldTable(vec![("n".into(), FieldValue::U8(1))]),
            ..binding("/", x, "q", true, "k")
        })
        .unwrap();
    }
    let kept = [
        binding("/", "a", "q", false, "k"),   // an exchange named q
        binding("/", "a", "q2", true, "k"),   // a longer name
        binding("v", "a", "q", true, "k"),    // another vhost
        binding("/", "q", "other", true, ""), // an exchange q as source
    ];
    for b in &kept {
        defs.put_binding(b).unwrap();
    }
    defs.delete_queue("/", "q").unwrap();

    let all = defs.load().unwrap();
    assert_eq!(all.queues, vec![queue("/", "q2")]);
    let mut expected = kept.to_vec();
    expected.sort_by_key(codec::binding_key);
    assert_eq!(all.bindings, expected);
    assert_binding_index_consistent(&defs);
}

#[test]
fn definitions_delete_vhost_removes_everything_in_it() {
    let dir = TempDir::new();
    let defs = Definitions::open(&dir.file()).unwrap();
    for v in ["v", "v\0", "vv", "w"] {
        defs.put_vhost(v).unwrap();
        defs.put_exchange(&exchange(v, "x")).unwrap();
        defs.put_queue(&queue(v, "q")).unwrap();
        defs.put_binding(&binding(v, "x", "q", true, "")).unwrap();
        defs.put_binding(&binding(v, "x", "x", false, "")).unwrap();
    }
    defs.put_user(&user("alice")).unwrap();
    defs.put_user(&user("bob")).unwrap();
    for (u, v) in [("alice", "v"), ("alice", "w"), ("alice", "v\0"), ("bob", "w")] {
        defs.put_permission(&permission(u, v, ".*")).unwrap();
        let topic = TopicPermissionDef {
            user: u.into(),
            vhost: v.into(),
            exchange: "amq.topic".into(),
            write: "^a".into(),
            read: "".into(),
        };
        defs.put_topic_permission(&topic).unwrap();
    }
    defs.delete_vhost("v").unwrap();

    let all = defs.load().unwrap();
    assert_eq!(all.vhosts, [vhost("v\0"), vhost("vv"), vhost("w")]);
    assert!(all.exchanges.iter().all(|e| e.vhost != "v"));
    assert_eq!(all.exchanges.len(), 3);
    assert_eq!(all.queues.len(), 3);
    assert!(all.queues.iter().all(|q| q.vhost != "v"));
    assert_eq!(all.bindings.len(), 6);
    assert!(all.bindings.iter().all(|b| b.vhost != "v"));
    assert_eq!(all.users, vec![user("alice"), user("bob")]);
    let held = |all: &AllDefinitions| -> Vec<(String, String)> {
        all.permissions.iter().map(|p| (p.vhost.clone(), p.user.clone())).collect()
    };
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    };
    assert_eq!(held(&all), pairs(&[("v\0", "alice"), ("w", "alice"), ("w", "bob")]));
    let topics: Vec<_> = all.topic_permissions.iter().map(|p| (p.vhost.clone(), p.user.clone())).collect();
    assert_eq!(topics, held(&all));
    assert_binding_index_consistent(&defs);

    defs.delete_user("alice").unwrap();
    defs.delete_user("nobody").unwrap();
    let all = defs.load().unwrap();
    assert_eq!(all.users, vec![user("bob")]);
    assert_eq!(held(&all), pairs(&[("w", "bob")]));
    assert_eq!(all.topic_permissions.len(), 1);
}

#[test]
fn definitions_survive_reopen_and_take_puts_after_it() {
    let dir = TempDir::new();
    let before = {
        let defs = Definitions::open(&dir.file()).unwrap();
        defs.put_vhost("/").unwrap();
        defs.put_user(&user("guest")).unwrap();
        defs.put_permission(&permission("guest", "/", "")).unwrap();
        defs.put_vhost_def(&VhostDef {
            name: "limited".into(),
            description: "d".into(),
            tags: vec!["t".into()],
            limits: VhostLimitsDef { max_connections: Some(3), max_queues: None },
        })
        .unwrap();
        defs.put_exchange(&ExchangeDef { arguments: every_field_type(), ..exchange("/", "x") }).unwrap();
        defs.put_queue(&QueueDef { arguments: every_field_type(), ..queue("/", "q") }).unwrap();
        defs.put_binding(&binding("/", "x", "q", true, "k")).unwrap();
        defs.load().unwrap()
    };
    let defs = Definitions::open(&dir.file()).unwrap();
    assert_eq!(defs.load().unwrap(), before);

    defs.put_queue(&queue("/", "q2")).unwrap();
    defs.put_binding(&binding("/", "x", "q2", true, "k")).unwrap();
    defs.delete_queue("/", "q").unwrap();
    drop(defs);

    let defs = Definitions::open(&dir.file()).unwrap();
    let all = defs.load().unwrap();
    assert_eq!(all.vhosts, before.vhosts);
    assert_eq!(all.users, before.users);
    assert_eq!(all.permissions, before.permissions);
    assert_eq!(all.exchanges, before.exchanges);
    assert_eq!(all.queues, vec![queue("/", "q2")]);
    assert_eq!(all.bindings, vec![binding("/", "x", "q2", true, "k")]);
    assert_binding_index_consistent(&defs);
}

#[test]
fn definitions_corrupt_values_are_errors() {
    let good_queue = codec::encode_queue(&queue("/", "q"));
    let cases: Vec<(Tbl, Vec<u8>, Vec<u8>)> = vec![
        (QUEUES, codec::entity_key("/", "q"), vec![]),
        (QUEUES, codec::entity_key("/", "q"), vec![0x80, 0, 0, 0, 4]),
        (QUEUES, codec::entity_key("/", "q"), [good_queue.as_slice(), &[0]].concat()),
        (QUEUES, codec::entity_key("/", "q"), vec![1, 0, 0, 0, 2, 1, b'k']),
        (QUEUES, b"no-terminator".to_vec(), good_queue.clone()),
        (EXCHANGES, codec::entity_key("/", "x"), vec![1, 200, b't']),
        (EXCHANGES, codec::entity_key("/", "x"), vec![1, 2, 0xff, 0xfe, 0, 0, 0, 0]),
        (USERS, b"u".to_vec(), vec![0, 3, 1, 2]),
        (USERS, b"u".to_vec(), b"{}".to_vec()),
        (USERS, b"\xff".to_vec(), access_json(&user("x"))),
        (VHOSTS, b"\xc3".to_vec(), vec![]),
        (VHOSTS, b"v".to_vec(), b"{\"limits\": 3}".to_vec()),
        (PERMISSIONS, b"v".to_vec(), access_json(&permission("u", "v", ""))),
        (PERMISSIONS, codec::entity_key("v", "u"), b"{\"configure\": \"\"}".to_vec()),
        (BINDINGS, [codec::entity_key("/", "x").as_slice(), b"z"].concat(), vec![]),
        (BINDINGS, [codec::entity_key("/", "x").as_slice(), b"q\0\x01\0\x01\0\0\0\x09"].concat(), vec![]),
    ];
    let dir = TempDir::new();
    let defs = Definitions::open(&dir.file()).unwrap();
    for (table, key, value) in cases {
        defs.write(|txn| {
            txn.open_table(table)?.insert(key.as_slice(), value.as_slice())?;
            Ok(())
        })
        .unwrap();
        match defs.load() {
            Err(DefinitionsError::Corrupt(_)) => {}
            other => panic!("{table} {key:?} {value:?}: {other:?}"),
        }
        defs.write(|txn| {
            txn.open_table(table)?.remove(key.as_slice())?;
            Ok(())
        })
        .unwrap();
        assert_eq!(defs.load().unwrap(), AllDefinitions::default());
    }
}

#[test]
fn definitions_corrupt_binding_key_fails_a_cascade_without_changing_anything() {
    let dir = TempDir::new();
    {
        let defs = Definitions::open(&dir.file()).unwrap();
        defs.put_queue(&queue("/", "q")).unwrap();
        defs.put_binding(&binding("/", "x", "q", true, "k")).unwrap();
    }
    // A by-destination key for queue q whose arguments do not decode.
    let bad = [codec::binding_destination_prefix("/", "q", true).as_slice(), b"x\0\x01k\0\x01\xff"].concat();
    write_raw(&dir.file(), BINDINGS_BY_DESTINATION, &bad, &[]);
    let defs = Definitions::open(&dir.file()).unwrap();
    assert!(matches!(defs.delete_queue("/", "q"), Err(DefinitionsError::Corrupt(_))));
    // The failed transaction was not committed.
    let all = defs.load().unwrap();
    assert_eq!(all.queues, vec![queue("/", "q")]);
    assert_eq!(all.bindings.len(), 1);
}

#[test]
fn definitions_unknown_format_is_refused() {
    let dir = TempDir::new();
    Definitions::open(&dir.file()).unwrap();
    write_raw(&dir.file(), META, FORMAT_KEY, &3u32.to_be_bytes());
    match Definitions::open(&dir.file()) {
        Err(DefinitionsError::UnsupportedFormat { found: 3, supported: 2 }) => {}
        other => panic!("{other:?}"),
    }
    write_raw(&dir.file(), META, FORMAT_KEY, &[1]);
    assert!(matches!(Definitions::open(&dir.file()), Err(DefinitionsError::Corrupt(_))));
}

#[test]
fn definitions_file_errors_are_errors() {
    let dir = TempDir::new();
    let defs = Definitions::open(&dir.file()).unwrap();
    // Open twice in one process.
    assert!(matches!(Definitions::open(&dir.file()), Err(DefinitionsError::Redb(_))));
    drop(defs);
    // Not a redb file.
    let junk = dir.0.join("junk");
    std::fs::write(&junk, vec![0x5a; 8192]).unwrap();
    assert!(matches!(Definitions::open(&junk), Err(DefinitionsError::Redb(_))));
    // A missing directory.
    assert!(Definitions::open(&dir.0.join("missing/definitions.redb")).is_err());
}

#[test]
fn definitions_store_is_shareable() {
    fn check<T: Send + Sync>() {}
    check::<Definitions>();
    let dir = TempDir::new();
    let defs = std::sync::Arc::new(Definitions::open(&dir.file()).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let defs = defs.clone();
            std::thread::spawn(move || {
                for i in 0..5 {
                    defs.put_queue(&queue("/", &format!("q{t}-{i}"))).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(defs.load().unwrap().queues.len(), 20);
}

/// The time one durable `put_queue` commit takes. Run with
/// `cargo test -p warren-store --release definitions_commit_latency -- --ignored --nocapture`;
/// `WARREN_DEFINITIONS_BENCH_DIR` picks the file system (the system temporary directory
/// otherwise).
#[test]
#[ignore]
fn definitions_commit_latency() {
    let parent = std::env::var_os("WARREN_DEFINITIONS_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = TempDir::new_in(&parent);
    let defs = Definitions::open(&dir.file()).unwrap();
    let args = FieldTable(vec![("x-queue-type".into(), FieldValue::LongStr("classic".into()))]);
    for i in 0..10 {
        defs.put_queue(&QueueDef { arguments: args.clone(), ..queue("/", &format!("warmup-{i}")) }).unwrap();
    }
    let mut samples: Vec<Duration> = (0..100)
        .map(|i| {
            let def = QueueDef { arguments: args.clone(), ..queue("/", &format!("queue-{i}")) };
            let start = Instant::now();
            defs.put_queue(&def).unwrap();
            start.elapsed()
        })
        .collect();
    samples.sort();
    println!(
        "put_queue commit in {}: min {:?} median {:?} p90 {:?} max {:?}",
        parent.display(),
        samples[0],
        samples[50],
        samples[90],
        samples[99]
    );
}

#[test]
fn definitions_format_1_users_become_permissions_on_their_vhosts() {
    let dir = TempDir::new();
    {
        let db = Database::builder().create_with_file_format_v3(true).create(dir.file()).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert(FORMAT_KEY, 1u32.to_be_bytes().as_slice()).unwrap();
        let mut vhosts = txn.open_table(VHOSTS).unwrap();
        vhosts.insert(b"/".as_slice(), [].as_slice()).unwrap();
        vhosts.insert(b"prod".as_slice(), [].as_slice()).unwrap();
        drop(vhosts);
        let old = codec::encode_user_format_1(
            &[1, 2, 3, 4, 5],
            &["administrator".into()],
            &["/".into(), "prod".into()],
        );
        txn.open_table(USERS).unwrap().insert(b"guest".as_slice(), old.as_slice()).unwrap();
        drop(txn.open_table(USERS).unwrap());
        txn.commit().unwrap();
    }
    let defs = Definitions::open(&dir.file()).unwrap();
    let all = defs.load().unwrap();
    assert_eq!(all.vhosts, vec![vhost("/"), vhost("prod")]);
    assert_eq!(
        all.users,
        vec![UserDef {
            name: "guest".into(),
            password_hash: vec![1, 2, 3, 4, 5],
            hashing_algorithm: "rabbit_password_hashing_sha256".into(),
            tags: vec!["administrator".into()],
            limits: UserLimitsDef::default(),
        }]
    );
    let every = |v: &str| PermissionDef { read: ".*".into(), ..permission("guest", v, ".*") };
    assert_eq!(all.permissions, vec![every("/"), every("prod")]);
    drop(defs);
    // Migrated once: the file now says format 2, and opening it again changes nothing.
    let defs = Definitions::open(&dir.file()).unwrap();
    assert_eq!(defs.load().unwrap(), all);
}
