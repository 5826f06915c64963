//! The command-line tools against a running broker: `warren ctl --url` (every command over the
//! management API, tables and `--json`, errors and their exit statuses) and `warren publish` /
//! `warren consume` (a round trip, lines from stdin, properties, an exchange's messages through
//! a private queue, the progress line).

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::Instant;

use crate::common::durable::DurableBroker;
use crate::common::*;

/// A broker with its management API on a known port.
struct Target {
    broker: DurableBroker,
    api: String,
}

impl Target {
    async fn start() -> Target {
        let broker = DurableBroker::start(&[]).await;
        let listen = broker.management_addr().await;
        let target = Target { broker, api: format!("http://{listen}") };
        // await_startup is itself under test: it must return once the API answers.
        target.ctl_ok(&["await_startup", "--timeout", "10"]);
        target
    }

    fn amqp(&self) -> String {
        format!("amqp://guest:guest@{}/%2F", self.broker.addr())
    }

    /// `warren ctl --url API args`.
    fn ctl(&self, args: &[&str]) -> Run {
        run(warren().arg("ctl").arg("--url").arg(&self.api).args(args))
    }

    fn ctl_ok(&self, args: &[&str]) -> String {
        self.ctl(args).ok(args)
    }

    /// A listing's rows as JSON.
    fn list_json(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(args);
        let out = self.ctl_ok(&with_json);
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap_or_else(|e| panic!("{args:?} --json is not JSON ({e}): {out}"))
            .as_array()
            .cloned()
            .expect("a JSON array")
    }

    fn publish(&self, args: &[&str]) -> Run {
        run(warren().arg("publish").arg("--url").arg(self.amqp()).args(args))
    }

    fn consume(&self, args: &[&str]) -> Run {
        run(warren().arg("consume").arg("--url").arg(self.amqp()).args(args))
    }
}

/// The binary, with none of the tools' environment variables from the caller's shell.
fn warren() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warren"));
    for var in ["WARREN_URL", "WARREN_USER", "WARREN_PASS", "WARREN_AMQP_URL"] {
        command.env_remove(var);
    }
    command.arg("--log").arg("warn");
    command
}

/// A finished run of the binary.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self, what: &[&str]) -> String {
        assert_eq!(self.code, 0, "{what:?} failed: {}{}", self.stdout, self.stderr);
        self.stdout
    }
}

fn finished(out: Output) -> Run {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Run { code: out.status.code().unwrap_or(-1), stdout: text(&out.stdout), stderr: text(&out.stderr) }
}

fn run(command: &mut Command) -> Run {
    finished(command.stdin(Stdio::null()).output().expect("run warren"))
}

/// Runs with `input` on stdin.
fn run_with_input(command: &mut Command, input: &[u8]) -> Run {
    let mut child =
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    finished(wait_within(child))
}

/// Waits for a child, killing it (and failing) past the tests' deadline.
fn wait_within(mut child: Child) -> Output {
    let deadline = Instant::now() + TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("still running after {TIMEOUT:?}: {:?}", child.wait_with_output().unwrap());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[tokio::test]
async fn access_control_policies_and_definitions_over_http() {
    let t = Target::start().await;
    let status = t.ctl_ok(&["status"]);
    assert!(status.contains("Product: Warren"), "{status}");
    assert!(status.contains(&format!("amqp {}", t.broker.addr())), "{status}");
    assert!(status.contains("Alarms: none"), "{status}");
    let overview: serde_json::Value = serde_json::from_str(&t.ctl_ok(&["--json", "status"])).unwrap();
    assert_eq!(overview["alarms"], serde_json::json!([]));
    assert!(overview["object_totals"]["exchanges"].as_u64().unwrap() > 0, "{overview}");

    assert_eq!(t.ctl_ok(&["add_user", "alice", "s3cret"]), "Adding user \"alice\" ...\n");
    let again = t.ctl(&["add_user", "alice", "other"]);
    assert_eq!((again.code, again.stderr.as_str()), (1, "Error: user \"alice\" already exists\n"));
    t.ctl_ok(&["set_user_tags", "alice", "monitoring", "policymaker"]);
    t.ctl_ok(&["change_password", "alice", "n3w"]);
    assert!(t.ctl_ok(&["authenticate_user", "alice", "n3w"]).ends_with("Success\n"));
    assert_eq!(t.ctl(&["authenticate_user", "alice", "s3cret"]).code, 1);
    // The tags survived the password change; a listing in the default columns, then chosen ones.
    assert_eq!(
        lines(&t.ctl_ok(&["list_users"])),
        ["user\ttags", "alice\t[\"monitoring\",\"policymaker\"]", "guest\t[\"administrator\"]"]
    );
    let users = t.list_json(&["list_users", "name"]);
    assert_eq!(users, [serde_json::json!({"name": "alice"}), serde_json::json!({"name": "guest"})]);
    // Logging in as alice with the URL's credentials.
    let as_alice =
        run(warren().args(["ctl", "--url", &t.api.replace("http://", "http://alice:n3w@"), "list_vhosts"]));
    assert_eq!((as_alice.code, as_alice.stdout.as_str()), (0, "name\n/\n"), "{}", as_alice.stderr);

    t.ctl_ok(&["add_vhost", "shop", "--description", "the shop"]);
    let vhosts = t.list_json(&["list_vhosts", "name", "description"]);
    assert!(vhosts.contains(&serde_json::json!({"name": "shop", "description": "the shop"})), "{vhosts:?}");
    t.ctl_ok(&["set_permissions", "-p", "shop", "alice", "^alice\\.", ".*", ".*"]);
    // Over the API, as with rabbitmqadmin, whoever creates a vhost may use it (guest here).
    assert_eq!(
        lines(&t.ctl_ok(&["list_permissions", "-p", "shop"])),
        ["user\tconfigure\twrite\tread", "alice\t^alice\\.\t.*\t.*", "guest\t.*\t.*\t.*"]
    );
    assert_eq!(
        lines(&t.ctl_ok(&["list_user_permissions", "alice"])),
        ["vhost\tconfigure\twrite\tread", "shop\t^alice\\.\t.*\t.*"]
    );
    t.ctl_ok(&["set_topic_permissions", "-p", "shop", "alice", "amq.topic", "^a", ".*"]);
    t.ctl_ok(&["set_topic_permissions", "-p", "shop", "alice", "events", "^e", ".*"]);
    t.ctl_ok(&["clear_topic_permissions", "-p", "shop", "alice", "amq.topic"]);
    assert_eq!(
        lines(&t.ctl_ok(&["list_topic_permissions", "-p", "shop"])),
        ["user\texchange\twrite\tread", "alice\tevents\t^e\t.*"]
    );
    t.ctl_ok(&["clear_topic_permissions", "-p", "shop", "alice"]);
    assert_eq!(lines(&t.ctl_ok(&["list_topic_permissions", "-p", "shop"])), ["user\texchange\twrite\tread"]);

    t.ctl_ok(&["set_vhost_limits", "-p", "shop", r#"{"max-connections": 10, "max-queues": 5}"#]);
    t.ctl_ok(&["set_vhost_limits", "-p", "shop", r#"{"max-queues": 7}"#]);
    assert!(
        t.ctl_ok(&["list_vhost_limits", "-p", "shop"]).ends_with("\n{\"max-queues\":7}\n"),
        "set_vhost_limits replaces"
    );
    t.ctl_ok(&["clear_vhost_limits", "-p", "shop"]);
    assert!(t.ctl_ok(&["list_vhost_limits", "-p", "shop"]).ends_with("\n{}\n"));
    t.ctl_ok(&["set_user_limits", "alice", r#"{"max-channels": 4}"#]);
    t.ctl_ok(&["set_user_limits", "alice", r#"{"max-connections": 2}"#]);
    assert!(t
        .ctl_ok(&["list_user_limits", "--user", "alice"])
        .ends_with("\n{\"max-channels\":4,\"max-connections\":2}\n"));
    t.ctl_ok(&["clear_user_limits", "alice", "max-channels"]);
    t.ctl_ok(&["clear_user_limits", "alice", "all"]);
    assert!(t.ctl_ok(&["list_user_limits", "--user", "alice"]).ends_with("\n{}\n"));

    t.ctl_ok(&[
        "set_policy",
        "-p",
        "shop",
        "--apply-to",
        "queues",
        "--priority",
        "3",
        "short",
        "^alice\\.",
        r#"{"max-length": 5}"#,
    ]);
    t.ctl_ok(&["set_operator_policy", "-p", "shop", "cap", ".*", r#"{"max-length": 100}"#]);
    assert_eq!(
        lines(&t.ctl_ok(&["list_policies", "-p", "shop"]))[1],
        "shop\tshort\t^alice\\.\tqueues\t{\"max-length\":5}\t3"
    );
    let operator = t.list_json(&["list_operator_policies", "-p", "shop"]);
    assert_eq!(operator[0]["definition"], serde_json::json!({"max-length": 100}));
    let bad = t.ctl(&["set_policy", "-p", "shop", "bad", ".*", r#"{"message-ttl": -1}"#]);
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("-1 is not a valid message TTL")
            && bad.stderr.contains("/api/policies/shop/bad: 400"),
        "{}",
        bad.stderr
    );
    t.ctl_ok(&["clear_operator_policy", "-p", "shop", "cap"]);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("definitions.json");
    let exported = t.ctl_ok(&["export_definitions", file.to_str().unwrap()]);
    assert!(exported.starts_with("Exporting definitions in JSON to a file at"), "{exported}");
    let definitions: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert!(
        definitions["policies"].as_array().unwrap().iter().any(|p| p["name"] == "short"),
        "{definitions}"
    );
    let to_stdout: serde_json::Value = serde_json::from_str(&t.ctl_ok(&["export_definitions", "-"])).unwrap();
    assert_eq!(to_stdout["users"], definitions["users"]);
    t.ctl_ok(&["clear_policy", "-p", "shop", "short"]);
    t.ctl_ok(&["delete_user", "alice"]);
    t.ctl_ok(&["import_definitions", file.to_str().unwrap()]);
    assert!(
        t.ctl_ok(&["authenticate_user", "alice", "n3w"]).ends_with("Success\n"),
        "imported with its hash"
    );
    assert_eq!(t.list_json(&["list_policies", "-p", "shop"]).len(), 1);

    t.ctl_ok(&["clear_permissions", "-p", "shop", "alice"]);
    t.ctl_ok(&["clear_password", "alice"]);
    assert_eq!(t.ctl(&["authenticate_user", "alice", "n3w"]).code, 1);
    t.ctl_ok(&["delete_vhost", "shop"]);
    t.ctl_ok(&["delete_user", "alice"]);
    assert!(!t.ctl_ok(&["list_vhosts"]).contains("shop"));
}

#[tokio::test]
async fn live_objects_are_listed_closed_purged_and_deleted() {
    let t = Target::start().await;
    let mut client = Client::connect(&t.broker.url()).await;
    let ch = client.channel().await;
    declare_queue(&ch, "orders").await;
    declare_queue(&ch, "idle").await;
    within(ch.queue_bind(
        "orders".into(),
        "amq.topic".into(),
        "orders.#".into(),
        Default::default(),
        Default::default(),
    ))
    .await
    .unwrap();
    for n in 0..3 {
        publish(&ch, "", "orders", format!("order {n}").as_bytes()).await;
    }
    within(ch.basic_consume("idle".into(), "watcher".into(), Default::default(), Default::default()))
        .await
        .unwrap();

    let queues = eventually("the queue shows its messages", || async {
        let rows = t.list_json(&["list_queues", "name", "messages", "consumers"]);
        rows.iter().any(|q| q["name"] == "orders" && q["messages"] == 3).then_some(rows)
    })
    .await;
    assert!(
        queues.contains(&serde_json::json!({"name": "idle", "messages": 0, "consumers": 1})),
        "{queues:?}"
    );
    let table = t.ctl_ok(&["list_queues"]);
    assert_eq!(lines(&table)[0], "name\tmessages");
    assert!(lines(&table).contains(&"orders\t3"), "{table}");
    assert!(lines(&t.ctl_ok(&["list_exchanges"])).contains(&"amq.topic\ttopic"));
    let bindings = t.ctl_ok(&["list_bindings", "source_name", "destination_name", "routing_key"]);
    assert!(lines(&bindings).contains(&"amq.topic\torders\torders.#"), "{bindings}");
    assert!(lines(&bindings).contains(&"\torders\torders"), "the default exchange's: {bindings}");
    let consumers = t.list_json(&["list_consumers"]);
    assert_eq!(consumers.len(), 1, "{consumers:?}");
    assert_eq!(
        (&consumers[0]["queue_name"], &consumers[0]["consumer_tag"]),
        (&serde_json::json!("idle"), &serde_json::json!("watcher"))
    );
    assert_eq!(t.list_json(&["list_channels"]).len(), 1);
    let connections = t.list_json(&["list_connections", "name", "user", "vhost"]);
    assert_eq!(
        (&connections[0]["user"], &connections[0]["vhost"]),
        (&serde_json::json!("guest"), &serde_json::json!("/"))
    );

    t.ctl_ok(&["purge_queue", "orders"]);
    assert!(lines(&t.ctl_ok(&["list_queues"])).contains(&"orders\t0"));
    let in_use = t.ctl(&["delete_queue", "idle", "--if-unused"]);
    assert_eq!(in_use.code, 1, "a queue with a consumer stays: {}", in_use.stderr);
    t.ctl_ok(&["delete_queue", "orders"]);
    let gone = t.ctl(&["purge_queue", "orders"]);
    assert_eq!(gone.code, 4);
    assert!(
        gone.stderr.contains("queue \"orders\" in vhost \"/\" not found")
            && gone.stderr.contains(&format!("{}/api/queues/%2F/orders/contents: 404", t.api)),
        "{}",
        gone.stderr
    );

    let name = connections[0]["name"].as_str().unwrap();
    t.ctl_ok(&["close_connection", name, "maintenance"]);
    let (code, text) = client.next_error().await;
    assert_eq!((code, text.as_str()), (320, "CONNECTION_FORCED - maintenance"));
    eventually("the connection is gone", || async {
        t.list_json(&["list_connections"]).is_empty().then_some(())
    })
    .await;
    assert_eq!(t.ctl(&["close_connection", name, "again"]).code, 4);
}

#[tokio::test]
async fn errors_name_the_url_and_exit_with_their_status() {
    let t = Target::start().await;
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let unreachable = run(warren().args(["ctl", "--url", &nowhere, "list_queues"]));
    assert_eq!(unreachable.code, 2);
    assert!(
        unreachable.stderr.starts_with(&format!("Error: cannot reach {nowhere}/api/queues/%2F: ")),
        "{}",
        unreachable.stderr
    );
    let waited = run(warren().args(["ctl", "--url", &nowhere, "await_startup", "--timeout", "1"]));
    assert_eq!(waited.code, 2, "{}", waited.stderr);
    assert!(waited.stderr.contains("not ready within 1 s"), "{}", waited.stderr);

    let refused =
        run(warren().args(["ctl", "--url", &t.api, "-u", "guest", "--password", "wrong", "list_queues"]));
    assert_eq!(refused.code, 3);
    assert_eq!(
        refused.stderr,
        format!("Error: not authorised: Login failed (GET {}/api/queues/%2F: 401)\n", t.api)
    );
    // The same credentials from the environment.
    let from_env =
        run(warren().env("WARREN_URL", &t.api).env("WARREN_PASS", "wrong").args(["ctl", "status"]));
    assert_eq!(from_env.code, 3, "{}", from_env.stderr);
    let missing = t.ctl(&["delete_user", "nobody"]);
    assert_eq!(
        (missing.code, missing.stderr.lines().next().unwrap_or("")),
        (4, format!("Error: user \"nobody\" not found (DELETE {}/api/users/nobody: 404)", t.api).as_str())
    );
    // A column is checked against the objects listed: a queue to list first.
    declare_queue(&t.broker.connect().await.channel().await, "q").await;
    let column = t.ctl(&["list_queues", "nmae"]);
    assert_eq!(column.code, 64);
    assert!(
        column.stderr.starts_with("Error: unknown column \"nmae\"; these objects have: "),
        "{}",
        column.stderr
    );

    let bad_url = run(warren().args(["ctl", "--url", "localhost:15672", "status"]));
    assert_eq!(bad_url.code, 64, "{}", bad_url.stderr);
    let usage = run(warren().args(["ctl", "--url", &t.api, "no_such_command"]));
    assert_eq!(usage.code, 64);
    // Without --url, the live-object commands say what they need.
    let dir = tempfile::tempdir().unwrap();
    let socket = run(warren().arg("--data-dir").arg(dir.path()).args(["ctl", "list_queues"]));
    assert_eq!(socket.code, 64);
    assert!(
        socket.stderr.contains("list_queues needs the management API: give its address with --url"),
        "{}",
        socket.stderr
    );
}

#[tokio::test]
async fn published_messages_come_back_from_consume() {
    let t = Target::start().await;
    declare_queue(&t.broker.connect().await.channel().await, "jobs").await;
    let published =
        t.publish(&["-r", "jobs", "-b", "same body", "-n", "250", "--confirm", "--persistent", "--progress"]);
    assert_eq!(published.code, 0, "{}", published.stderr);
    let last = published.stderr.lines().last().unwrap_or("");
    assert!(
        last.starts_with("published 250 messages in ") && last.ends_with(" msg/s)"),
        "{}",
        published.stderr
    );
    let quiet = t.publish(&["-r", "jobs", "-b", "x", "-n", "2"]);
    assert_eq!(
        (quiet.code, quiet.stderr.as_str()),
        (0, ""),
        "no progress line unless asked or on a terminal"
    );
    let purged = t.ctl_ok(&["purge_queue", "jobs"]);
    assert!(purged.starts_with("Purging"));

    let input = (0..100).map(|n| format!("line {n}\n")).collect::<String>();
    let published = run_with_input(
        warren().args([
            "publish",
            "--url",
            &t.amqp(),
            "-r",
            "jobs",
            "--lines",
            "--confirm",
            "--content-type",
            "text/plain",
            "-H",
            "origin=test",
        ]),
        input.as_bytes(),
    );
    assert_eq!(published.code, 0, "{}", published.stderr);
    let first = t.consume(&["-q", "jobs", "-n", "2", "--format", "json"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let message: serde_json::Value = serde_json::from_str(first.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(message["body"], "line 0");
    assert_eq!(message["routing_key"], "jobs");
    assert_eq!(
        message["properties"],
        serde_json::json!({"content_type": "text/plain", "headers": {"origin": "test"}})
    );
    let rest = t.consume(&["-q", "jobs", "-n", "98", "--progress"]);
    assert_eq!(rest.code, 0, "{}", rest.stderr);
    let expected: Vec<String> = (2..100).map(|n| format!("line {n}")).collect();
    assert_eq!(lines(&rest.stdout), expected);
    assert!(
        rest.stderr.lines().last().unwrap_or("").starts_with("consumed 98 messages in "),
        "{}",
        rest.stderr
    );
    // Acknowledged: nothing is left, nothing waits unacknowledged.
    let queue = t.list_json(&["list_queues", "name", "messages"]);
    assert!(queue.contains(&serde_json::json!({"name": "jobs", "messages": 0})), "{queue:?}");

    // An exchange's messages through a queue of the consumer's own.
    let consumer = warren()
        .args(["consume", "--url", &t.amqp(), "-e", "amq.topic", "-r", "orders.*", "-n", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually("the consumer is bound", || async {
        let bindings = t.ctl_ok(&["list_bindings", "source_name", "routing_key"]);
        lines(&bindings).contains(&"amq.topic\torders.*").then_some(())
    })
    .await;
    t.publish(&["-e", "amq.topic", "-r", "orders.new", "-b", "one"]).ok(&["publish"]);
    t.publish(&["-e", "amq.topic", "-r", "invoices.new", "-b", "not routed"]).ok(&["publish"]);
    t.publish(&["-e", "amq.topic", "-r", "orders.paid", "-b", "two"]).ok(&["publish"]);
    let consumed = finished(wait_within(consumer));
    assert_eq!((consumed.code, consumed.stdout.as_str()), (0, "one\ntwo\n"), "{}", consumed.stderr);

    let unroutable = t.publish(&["-e", "amq.topic", "-r", "nowhere", "-b", "x", "--mandatory"]);
    assert_eq!(unroutable.code, 1);
    assert!(
        unroutable.stderr.contains("1 of 1 messages were returned as unroutable"),
        "{}",
        unroutable.stderr
    );
    let no_exchange = t.publish(&["-e", "missing", "-b", "x"]);
    assert_eq!(no_exchange.code, 4);
    assert!(
        no_exchange.stderr.contains("404 NOT_FOUND - no exchange 'missing' in vhost '/'"),
        "{}",
        no_exchange.stderr
    );
    let no_queue = t.consume(&["-q", "missing", "-n", "1"]);
    assert_eq!(no_queue.code, 4, "{}", no_queue.stderr);
    let bad_login = run(warren().args([
        "publish",
        "--url",
        &format!("amqp://guest:wrong@{}/", t.broker.addr()),
        "-b",
        "x",
    ]));
    assert_eq!(bad_login.code, 3, "{}", bad_login.stderr);
    assert!(bad_login.stderr.contains("403 ACCESS_REFUSED"), "{}", bad_login.stderr);
    let nowhere =
        run(warren().args(["consume", "--url", &format!("amqp://127.0.0.1:{}/", free_port()), "-q", "jobs"]));
    assert_eq!(nowhere.code, 2);
    assert!(nowhere.stderr.starts_with("Error: cannot reach amqp://guest@127.0.0.1:"), "{}", nowhere.stderr);
}

/// A CA, a server certificate for 127.0.0.1 it signed, and a CA that signed nothing here, as
/// files: `ca.pem`, `server.pem`, `server.key`, `other-ca.pem`.
fn certificates() -> tempfile::TempDir {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = |file: &str| {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.path().join(file), ca.pem()).unwrap();
        ca
    };
    let signer = ca("ca.pem");
    ca("other-ca.pem");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let certificate = params.signed_by(&key, &signer).unwrap();
    std::fs::write(dir.path().join("server.pem"), certificate.pem()).unwrap();
    std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
    dir
}

#[tokio::test]
async fn amqps_urls_publish_and_consume_over_tls() {
    let certs = certificates();
    let file = |name: &str| certs.path().join(name).display().to_string();
    let tls_port = free_port();
    let tls_listen = format!("127.0.0.1:{tls_port}");
    let broker = DurableBroker::start(&[
        "--tls-listen",
        &tls_listen,
        "--tls-certfile",
        &file("server.pem"),
        "--tls-keyfile",
        &file("server.key"),
    ])
    .await;
    crate::common::durable::wait_port(tls_listen.parse().unwrap()).await;
    declare_queue(&broker.connect().await.channel().await, "secure").await;
    let url = format!("amqps://guest:guest@{tls_listen}/%2F");
    let ca = file("ca.pem");
    let published = run(warren().args([
        "publish",
        "--url",
        &url,
        "--cacert",
        &ca,
        "-r",
        "secure",
        "-b",
        "sealed",
        "--confirm",
    ]));
    assert_eq!(published.code, 0, "{}", published.stderr);
    let consumed = run(warren().args(["consume", "--url", &url, "--cacert", &ca, "-q", "secure", "-n", "1"]));
    assert_eq!((consumed.code, consumed.stdout.as_str()), (0, "sealed\n"), "{}", consumed.stderr);

    let other = run(warren().args(["publish", "--url", &url, "--cacert", &file("other-ca.pem"), "-b", "x"]));
    assert_eq!(other.code, 2, "a certificate from another CA: {}", other.stderr);
    assert!(other.stderr.contains("TLS: invalid peer certificate"), "{}", other.stderr);
    let without = run(warren().args(["publish", "--url", &url, "-b", "x"]));
    assert_eq!(without.code, 64, "{}", without.stderr);
    assert!(without.stderr.contains("amqps needs --cacert FILE"), "{}", without.stderr);
    let unreadable =
        run(warren().args(["consume", "--url", &url, "--cacert", &file("none.pem"), "-q", "secure"]));
    assert_eq!(unreadable.code, 1, "{}", unreadable.stderr);
    assert!(unreadable.stderr.contains("none.pem"), "{}", unreadable.stderr);
}

/// Serves HTTPS with `server.pem` on a free port, answering every request `{"status":"ok"}`:
/// the client's TLS, checked apart from any listener of the broker's.
async fn https_stand_in(certs: &std::path::Path) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let chain = vec![CertificateDer::from_pem_file(certs.join("server.pem")).unwrap()];
    let key = PrivateKeyDer::from_pem_file(certs.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"status":"ok"}"#;
                let answer = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    format!("https://{address}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_urls_are_checked_against_the_given_ca() {
    let certs = certificates();
    let url = https_stand_in(certs.path()).await;
    let file = |name: &str| certs.path().join(name).display().to_string();
    // The stand-in runs on this test's runtime: the blocking runs go to other threads.
    let ctl = |args: Vec<String>| tokio::task::spawn_blocking(move || run(warren().arg("ctl").args(args)));
    let args = |more: &[&str]| more.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let ready = ctl(args(&["--url", &url, "--cacert", &file("ca.pem"), "await_startup", "--timeout", "5"]))
        .await
        .unwrap();
    assert_eq!(
        (ready.code, ready.stdout.as_str()),
        (0, "Broker is up and serving clients\n"),
        "{}",
        ready.stderr
    );
    let other = ctl(args(&["--url", &url, "--cacert", &file("other-ca.pem"), "list_vhosts"])).await.unwrap();
    assert_eq!(other.code, 2, "{}", other.stderr);
    assert!(
        other
            .stderr
            .contains(&format!("Error: cannot reach {url}/api/vhosts: TLS: invalid peer certificate")),
        "{}",
        other.stderr
    );
    let without = ctl(args(&["--url", &url, "list_vhosts"])).await.unwrap();
    assert_eq!(without.code, 64, "{}", without.stderr);
    assert!(without.stderr.contains("needs --cacert FILE"), "{}", without.stderr);
}
