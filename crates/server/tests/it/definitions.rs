//! `load_definitions`: a definitions file exported from the reference RabbitMQ 3.10.8
//! (`crates/broker/tests/fixtures/rabbitmq-3.10.8-definitions.json`, made by the script next to
//! it) loaded at startup: its users log in with the passwords they had in RabbitMQ, their
//! permissions and topic permissions are enforced, its queues and exchanges are there, and a
//! restart loads it again without duplicating anything. A file that cannot be imported stops
//! the start and says which file and which entry.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lapin::options::{BasicAckOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

use crate::common::durable::{strip_ansi, DurableBroker, Stop, EXIT_TIMEOUT};
use crate::common::*;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../broker/tests/fixtures/rabbitmq-3.10.8-definitions.json")
}

fn url(broker: &DurableBroker, user: &str, password: &str, vhost: &str) -> String {
    format!("amqp://{user}:{password}@{}/{}", broker.addr(), vhost.replace('/', "%2F"))
}

/// alice, as RabbitMQ had her: she may configure `alice.*`, write to `alice.*` and `events`
/// (topic keys `orders.*` only), read `alice.*` and `events`.
async fn alice_works_as_in_rabbitmq(broker: &DurableBroker, body: &str) {
    let alice = Client::connect(&url(broker, "alice", "s3cret", "prod")).await;
    let ch = alice.channel().await;
    // The queue is there, with the arguments RabbitMQ had: a redeclare without them differs
    // in x-message-ttl, a long (as RabbitMQ's import makes JSON integers).
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    assert_err(
        ch.queue_declare("alice.orders".into(), durable, FieldTable::default()),
        406,
        "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'alice.orders' in vhost 'prod': \
         received none but current is the value '60000' of type 'long'",
    )
    .await;
    let ch = alice.channel().await;
    publish(&ch, "events", "orders.new", body.as_bytes()).await;
    let message = eventually("the message reaches alice.orders through the imported binding", || async {
        get(&ch, "alice.orders").await
    })
    .await;
    assert_eq!(text(&message.delivery.data), body);
    within(message.delivery.ack(BasicAckOptions::default())).await.unwrap();
    assert!(get(&ch, "alice.orders").await.is_none(), "one binding, one copy");

    // Her configure permission does not cover other names.
    assert_err(
        ch.queue_declare("bob.q".into(), QueueDeclareOptions::default(), FieldTable::default()),
        403,
        "ACCESS_REFUSED - access to queue 'bob.q' in vhost 'prod' refused for user 'alice'",
    )
    .await;
    alice.close().await;
    // Her topic permission on `events` lets her publish orders.* only (a connection of its own:
    // the refusal comes as an event, after those of the channels closed above).
    let mut alice = Client::connect(&url(broker, "alice", "s3cret", "prod")).await;
    let ch = alice.channel().await;
    publish(&ch, "events", "audit.x", b"not hers").await;
    alice
        .assert_next_error(
            403,
            "ACCESS_REFUSED - access to topic 'audit.x' in exchange 'events' in vhost 'prod' refused for user 'alice'",
        )
        .await;
    alice.close().await;
}

#[tokio::test]
async fn a_rabbitmq_export_loads_at_startup_and_its_users_log_in() {
    let fixture = fixture();
    let mut broker = DurableBroker::start(&["--load-definitions", fixture.to_str().unwrap()]).await;
    alice_works_as_in_rabbitmq(&broker, "first").await;
    // The other users, each with the hash RabbitMQ gave them: SHA-256, SHA-512, MD5.
    for (user, password) in [("bob", "b0b-pass"), ("carol", "c4rol-512"), ("dave", "d4ve-md5")] {
        let vhost = if user == "dave" { "/" } else { "prod" };
        let connected =
            lapin::Connection::connect(&url(&broker, user, password, vhost), Default::default()).await;
        match (user, connected) {
            // dave has no permissions anywhere: the password is right, the vhost is refused.
            ("dave", Err(e)) => assert_eq!(
                amqp_error(&e),
                Some((530, "NOT_ALLOWED - access to vhost '/' refused for user 'dave'".to_owned()))
            ),
            (_, Ok(conn)) => drop(conn),
            (user, Err(e)) => panic!("{user} could not log in: {e:?}"),
        }
    }
    let wrong = lapin::Connection::connect(&url(&broker, "alice", "nope", "prod"), Default::default()).await;
    assert_eq!(amqp_error(&wrong.unwrap_err()).map(|(code, _)| code), Some(403));
    let guest = Client::connect(&url(&broker, "guest", "guest", "/")).await;
    let plain = within(guest.channel().await.queue_declare(
        "plain".into(),
        QueueDeclareOptions { passive: true, ..Default::default() },
        FieldTable::default(),
    ))
    .await;
    assert!(plain.is_ok(), "queue 'plain' of vhost '/' is there: {plain:?}");
    guest.close().await;
    let first_log = broker.log();
    assert!(
        first_log.contains("4 exchanges (0 already there), 4 queues (0 already there), 4 bindings"),
        "{first_log}"
    );

    // A restart loads the file again: nothing is declared twice, nothing is bound twice.
    broker.restart(Stop::Term).await;
    let log = broker.log();
    assert!(log.contains("4 exchanges (4 already there), 4 queues (4 already there), 4 bindings"), "{log}");
    alice_works_as_in_rabbitmq(&broker, "second").await;
}

#[tokio::test]
async fn a_file_that_cannot_be_imported_stops_the_start_naming_it_and_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.json");
    std::fs::write(
        &file,
        r#"{"users": [{"name": "x", "password_hash": "AAAA", "hashing_algorithm": "bcrypt", "tags": []}]}"#,
    )
    .unwrap();
    let data_dir = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--load-definitions")
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn warren");
    let deadline = Instant::now() + EXIT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("warren did not stop on a broken definitions file");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let output = child.wait_with_output().unwrap();
    let stderr = strip_ansi(&String::from_utf8_lossy(&output.stderr));
    assert!(!status.success());
    assert!(stderr.contains(&format!("importing the definitions file {}", file.display())), "{stderr}");
    assert!(stderr.contains("users[0] 'x': unknown hashing_algorithm 'bcrypt'"), "{stderr}");
}

/// `warren ctl export_definitions` from a running broker, `import_definitions` into a stopped
/// one's data directory: the second starts with the first's users, permissions, policies and
/// topology, and exports the same file.
#[tokio::test]
async fn ctl_exports_from_a_running_broker_and_imports_into_a_stopped_one() {
    let source = DurableBroker::start(&[]).await;
    let imported = source.ctl_ok(&["import_definitions", fixture().to_str().unwrap()]);
    assert!(imported.contains("Importing definitions"), "{imported}");
    let file = source.data_dir().parent().unwrap().join("export.json");
    source.ctl_ok(&["export_definitions", file.to_str().unwrap()]);
    let exported = std::fs::read_to_string(&file).unwrap();
    assert!(
        exported.contains("\"ttl-and-length\"") && exported.contains("\"operator_policy\""),
        "{exported}"
    );
    let stdout = source.ctl_ok(&["export_definitions", "-"]);
    assert_eq!(stdout.trim_end(), exported.trim_end(), "to a file or to standard output, the same");

    let mut target = DurableBroker::new(None, &[]);
    let imported = target.ctl_ok(&["import_definitions", file.to_str().unwrap()]);
    assert!(imported.contains("Importing definitions"), "{imported}");
    target.spawn().await;
    alice_works_as_in_rabbitmq(&target, "moved").await;
    let again = target.ctl_ok(&["export_definitions", "-"]);
    assert_eq!(again.trim_end(), exported.trim_end(), "the same definitions");

    let broken = source.data_dir().parent().unwrap().join("broken.json");
    std::fs::write(&broken, r#"{"users": [{"name": "x", "password_hash": "!!", "tags": ""}]}"#).unwrap();
    let (ok, _, stderr) = target.ctl(&["import_definitions", broken.to_str().unwrap()]);
    assert!(!ok && stderr.contains("users[0] 'x'"), "{stderr}");
}
