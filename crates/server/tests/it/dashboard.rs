//! The web dashboard in a real browser: starts warren with its management listener, runs the
//! browser test script (`crates/management/tests/browser/dashboard.test.js`, Debian's chromium
//! driven by playwright-core) with node, and does the AMQP side of its tests when the script
//! asks: declare a queue with messages, run a publisher while the overview chart is watched,
//! log in as the user the users page created (in a vhost, to see a limit refuse it), hold a
//! connection open and tell when the connection page has closed it.
//!
//! The script asks over stdio: one stderr line `@@warren <id> <json>` per request, answered by
//! one stdin line `<id> {"ok": ...}`. Its other output is passed through.
//!
//! Without node, chromium or the script's `npm ci`, the test is skipped with a note, except when
//! `BROWSER_REQUIRE=1` (set by `.ci/run`): then it fails. `WARREN_SCREENSHOTS=<dir>` makes the
//! script save screenshots of the main pages there (docs/images is where the docs take them).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use serde_json::{json, Value};

use crate::common::durable::DurableBroker;
use crate::common::*;

/// How long the whole browser run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(240);

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../management/tests/browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// What is missing to run the browser tests, if anything.
fn missing_tools() -> Option<String> {
    if Command::new("node").arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
        return Some("node is not installed".into());
    }
    if !chromium().exists() {
        return Some(format!("{} is missing (apt-get install chromium)", chromium().display()));
    }
    if !browser_dir().join("node_modules/playwright-core").exists() {
        return Some(format!(
            "playwright-core is not installed (run `npm ci` in {})",
            browser_dir().display()
        ));
    }
    None
}

/// The publisher the overview chart watches: publishes with confirms to a consumed queue (so
/// publish, deliver, ack and confirm rates move) and to a backlog queue (so queued messages
/// grow), until stopped.
struct Publisher {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    async fn start(url: &str, queue: &str) -> Publisher {
        let client = Client::connect(url).await;
        let ch = client.channel().await;
        let backlog = format!("{queue}.backlog");
        declare_queue(&ch, queue).await;
        declare_queue(&ch, &backlog).await;
        within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
        let consumer_ch = client.channel().await;
        let mut consumer = within(consumer_ch.basic_consume(
            queue.into(),
            "dashboard".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ))
        .await
        .unwrap();
        let conn = client.conn;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let queue = queue.to_owned();
        let task = tokio::spawn(async move {
            let acker = tokio::spawn(async move {
                while let Some(Ok(delivery)) = consumer.next().await {
                    if delivery.ack(BasicAckOptions::default()).await.is_err() {
                        break;
                    }
                }
            });
            while !stopping.load(Ordering::Relaxed) {
                let mut confirms = Vec::new();
                for i in 0..20 {
                    let key = if i % 4 == 0 { &backlog } else { &queue };
                    let p = ch
                        .basic_publish(
                            "".into(),
                            key.as_str().into(),
                            BasicPublishOptions::default(),
                            b"dashboard rates",
                            BasicProperties::default(),
                        )
                        .await
                        .expect("publish");
                    confirms.push(p);
                }
                for c in confirms {
                    c.await.expect("confirm");
                }
                // A steady, modest rate: the chart needs movement, not load.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            acker.abort();
            let _ = conn.close(200, "OK".into()).await;
        });
        Publisher { stop, task }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        within(self.task).await.expect("the publisher task");
    }
}

/// What the script's requests leave running: a publisher, a connection held open.
#[derive(Default)]
struct Held {
    publisher: Option<Publisher>,
    /// The connection with its channel and consumer (lapin closes a channel when it is dropped).
    connection: Option<(lapin::Connection, lapin::Channel, lapin::Consumer)>,
}

/// Opens a connection named `name` (the client property `connection_name`) with a channel that
/// consumes from the queue `name`, and keeps it.
async fn hold_open(
    broker: &DurableBroker,
    name: &str,
) -> Result<(lapin::Connection, lapin::Channel, lapin::Consumer), lapin::Error> {
    let properties = lapin::ConnectionProperties::default().with_connection_name(name.into());
    let conn = within(lapin::Connection::connect(&broker.url(), properties)).await?;
    let ch = conn.create_channel().await?;
    declare_queue(&ch, name).await;
    let consumer = ch
        .basic_consume(
            name.into(),
            "dashboard-held".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((conn, ch, consumer))
}

/// Waits (up to 10 s) for the held connection to be closed by the broker.
async fn held_closed(connection: Option<(lapin::Connection, lapin::Channel, lapin::Consumer)>) -> Value {
    let Some((conn, _channel, _consumer)) = connection else {
        return json!({"ok": false, "error": "no connection is held"});
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while conn.status().connected() {
        if Instant::now() >= deadline {
            return json!({"ok": false, "error": "the held connection is still open after 10 s"});
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    json!({"ok": true})
}

/// Carries out one request of the script.
async fn handle(request: &Value, broker: &DurableBroker, held: &mut Held) -> Value {
    let publisher = &mut held.publisher;
    match request["command"].as_str().unwrap_or("") {
        "declare" => {
            let queue = request["queue"].as_str().unwrap_or("dashboard");
            let client = Client::connect(&broker.url()).await;
            let ch = client.channel().await;
            declare_queue(&ch, queue).await;
            within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
            for i in 0..request["messages"].as_u64().unwrap_or(0) {
                publish(&ch, "", queue, format!("message {i}").as_bytes()).await;
            }
            client.close().await;
            json!({"ok": true})
        }
        "publish-start" => {
            let queue = request["queue"].as_str().unwrap_or("dashboard.rates");
            *publisher = Some(Publisher::start(&broker.url(), queue).await);
            json!({"ok": true})
        }
        "publish-stop" => {
            if let Some(p) = publisher.take() {
                p.stop().await;
            }
            json!({"ok": true})
        }
        "amqp-login" => {
            let user = request["user"].as_str().unwrap_or("");
            let password = request["password"].as_str().unwrap_or("");
            let vhost = request["vhost"].as_str().unwrap_or("/");
            let vhost: String = vhost.bytes().map(|b| format!("%{b:02X}")).collect();
            let url = format!("amqp://{user}:{password}@{}/{vhost}", broker.addr());
            match within(lapin::Connection::connect(&url, lapin::ConnectionProperties::default())).await {
                Ok(conn) => {
                    let opened = conn.create_channel().await.is_ok();
                    let _ = conn.close(200, "OK".into()).await;
                    json!({"ok": opened, "error": "the connection opened but no channel did"})
                }
                Err(e) => json!({"ok": false, "error": format!("{user} could not connect: {e}")}),
            }
        }
        "hold-open" => {
            let name = request["name"].as_str().unwrap_or("dashboard.held");
            match hold_open(broker, name).await {
                Ok(held_open) => {
                    held.connection = Some(held_open);
                    json!({"ok": true})
                }
                Err(e) => json!({"ok": false, "error": format!("could not hold a connection open: {e}")}),
            }
        }
        "held-closed" => held_closed(held.connection.take()).await,
        other => json!({"ok": false, "error": format!("unknown request {other}")}),
    }
}

fn answer(stdin: &mut ChildStdin, id: &str, reply: &Value) {
    writeln!(stdin, "{id} {reply}").expect("answer the browser script");
    stdin.flush().expect("flush the answer");
}

/// Runs the script against `http` while answering its requests; returns its status and output.
async fn run_script(broker: &DurableBroker, http: &str) -> (bool, String) {
    let mut command = Command::new("node");
    command
        .arg("--test-reporter=spec")
        .arg("dashboard.test.js")
        .current_dir(browser_dir())
        .env("WARREN_URL", http)
        .env("WARREN_CONTROL", "stdio")
        .env("CHROMIUM", chromium())
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = std::env::var_os("WARREN_SCREENSHOTS") {
        // Relative to the repository root, where one runs cargo.
        let dir = PathBuf::from(dir);
        let dir = if dir.is_absolute() {
            dir
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(dir)
        };
        command.env("WARREN_SCREENSHOTS", dir);
    }
    let mut child: Child = command.spawn().expect("start node");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (output_tx, output) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        let _ = output_tx.send(text);
    });
    let (requests, mut incoming) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            match line.strip_prefix("@@warren ") {
                Some(request) => {
                    if requests.send(request.to_owned()).is_err() {
                        break;
                    }
                }
                None => eprintln!("{line}"),
            }
        }
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    let mut held = Held::default();
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll node") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the browser tests did not finish within {RUN_TIMEOUT:?}");
        }
        // Requests come while node runs; between them, look again whether it has exited.
        if let Ok(Some(line)) = tokio::time::timeout(Duration::from_millis(100), incoming.recv()).await {
            let (id, body) = line.split_once(' ').expect("a request: <id> <json>");
            let request: Value = serde_json::from_str(body).expect("a JSON request");
            let reply = handle(&request, broker, &mut held).await;
            answer(&mut stdin, id, &reply);
        }
    };
    if let Some(p) = held.publisher {
        p.stop().await;
    }
    let report = output
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| "(no report: stdout stayed open)".into());
    (status.success(), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_pages_work_in_a_real_browser() {
    if let Some(missing) = missing_tools() {
        if std::env::var("BROWSER_REQUIRE").is_ok_and(|v| v == "1") {
            panic!("BROWSER_REQUIRE=1 but the browser tests cannot run: {missing}");
        }
        eprintln!("SKIPPED dashboard browser tests: {missing} (BROWSER_REQUIRE=1 makes this a failure)");
        return;
    }
    let broker = DurableBroker::start(&[]).await;
    let listen = broker.management_addr().await;
    let (passed, report) = run_script(&broker, &format!("http://{listen}")).await;
    println!("{report}");
    assert!(passed, "the browser tests failed:\n{report}");
    assert!(report.contains("ℹ fail 0"), "no failure line in the report:\n{report}");
}
