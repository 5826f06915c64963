//! The differential behaviour tests: every scenario against a reference
//! RabbitMQ 3.10 and against Warren, transcripts compared. Two suites, each
//! one test with its own pair of brokers: `differential` (AMQP) and
//! `mgmt_differential` (the management HTTP API: the reference runs with the
//! management plugin, statistics emitted every 500 ms on both sides). They
//! take turns (a lock), so that neither's timing suffers from the other's
//! broker starts on a small machine.
//!
//! * Warren: `WARREN_BIN`, or `cargo build -p warren-server` into this
//!   build's target directory; run on a free port with a fresh data dir.
//! * RabbitMQ: `DIFF_RABBITMQ_URL` (host and port are used; guest/guest on
//!   "/"), or a private node started with `scripts/rabbitmq-ref.sh start`
//!   and stopped when the test ends, also on failure. Starting it needs
//!   root; without root and without `DIFF_RABBITMQ_URL` the test is skipped
//!   with a message, unless `DIFF_REQUIRE=1` (CI), which makes it fail.
//! * `DIFF_SCENARIOS=a,b` runs only scenarios whose names contain a or b.
//! * `DIFF_WARREN_URL` replaces the warren process by any broker;
//!   `DIFF_BUDGET_SECS` bounds each suite's run (default 240 s).
//! * For brokers given by URL, `DIFF_RABBITMQ_MGMT_URL` / `DIFF_WARREN_MGMT_URL`
//!   (`http://host:port`) name their management API.
//! * Operator commands (users, vhosts, permissions, limits) run through
//!   `scripts/rabbitmq-ref.sh ctl` and `warren --data-dir DIR ctl`; for
//!   brokers given by URL, `DIFF_RABBITMQ_CTL` / `DIFF_WARREN_CTL` name the
//!   command (e.g. `rabbitmqctl -n rabbit@host`).
//! * Transcripts of every scenario are written to
//!   `<target>/tmp/difftest/<scenario>.{rabbitmq,warren}.txt`.

use std::path::Path;
use std::sync::Mutex;

use warren_difftest::brokers::{addr_from_url, mgmt_addr_from_env, warren_binary, RabbitMq, Warren};
use warren_difftest::harness::{report, write_transcripts, Scenario, Target};

/// Held by the suite that runs.
static ONE_SUITE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

#[test]
fn differential() {
    run_suite("differential", warren_difftest::scenarios::all(), false);
}

#[test]
fn mgmt_differential() {
    run_suite("mgmt_differential", warren_difftest::scenarios::mgmt_all(), true);
}

/// Starts both brokers (the reference with its management plugin if `management`), runs the
/// selected scenarios of `suite`, prints the report and fails on any difference.
fn run_suite(name: &str, suite: Vec<Scenario>, management: bool) {
    let external = std::env::var("DIFF_RABBITMQ_URL").map(|u| !u.trim().is_empty()).unwrap_or(false);
    let required = std::env::var("DIFF_REQUIRE").map(|v| v == "1").unwrap_or(false);
    if !external && !is_root() {
        let msg =
            format!("{name}: SKIPPED: starting the reference RabbitMQ needs root; set DIFF_RABBITMQ_URL");
        assert!(!required, "{msg} (DIFF_REQUIRE=1)");
        eprintln!("{msg}");
        return;
    }
    let scenarios = warren_difftest::selected(suite);
    if scenarios.is_empty() {
        println!("{name}: no scenario selected by DIFF_SCENARIOS");
        return;
    }
    // A suite that failed while holding the lock leaves it poisoned; the next still runs.
    let _turn = ONE_SUITE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // DIFF_WARREN_URL replaces the warren process by any broker (pointing
    // it at a second RabbitMQ checks that the scenarios are deterministic).
    let other = std::env::var("DIFF_WARREN_URL").ok().filter(|u| !u.trim().is_empty());
    let bin = match other {
        Some(_) => None,
        None => Some(warren_binary().unwrap_or_else(|e| panic!("warren binary: {e}"))),
    };
    // Start RabbitMQ first: its guard stops it when this function returns or
    // unwinds.
    let rabbitmq = RabbitMq::start(management).unwrap_or_else(|e| panic!("reference RabbitMQ: {e}"));
    let mut warren = bin.as_ref().map(|b| Warren::start(b).unwrap_or_else(|e| panic!("warren: {e}")));
    let (warren_addr, warren_mgmt) = match (&warren, &other) {
        (Some(w), _) => (w.addr, Some(w.mgmt)),
        (None, Some(url)) => (
            addr_from_url(url.trim()).unwrap_or_else(|e| panic!("DIFF_WARREN_URL: {e}")),
            mgmt_addr_from_env("DIFF_WARREN_MGMT_URL").unwrap_or_else(|e| panic!("{e}")),
        ),
        (None, None) => unreachable!(),
    };
    println!("reference: {}", rabbitmq.describe());
    match &bin {
        Some(b) => println!("warren:    {} on {warren_addr}", b.display()),
        None => println!("warren:    replaced by DIFF_WARREN_URL at {warren_addr}"),
    }

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let rt_rabbit =
        Target { label: "rabbitmq", addr: rabbitmq.addr, ctl: rabbitmq.ctl_prefix(), mgmt: rabbitmq.mgmt };
    let warren_ctl = match &warren {
        Some(w) => w.ctl_prefix(),
        None => warren_difftest::ctl::prefix_from_env("DIFF_WARREN_CTL"),
    };
    let rt_warren = Target { label: "warren", addr: warren_addr, ctl: warren_ctl, mgmt: warren_mgmt };
    let outcomes = rt.block_on(warren_difftest::run(&rt_rabbit, &rt_warren, &scenarios, |o| {
        let r = if o.diff.is_none() { "PASS" } else { "DIFF" };
        eprintln!("  {r} {} ({:.2}s)", o.name, o.seconds);
    }));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("difftest");
    if let Err(e) = write_transcripts(&dir, &outcomes) {
        eprintln!("could not write transcripts to {}: {e}", dir.display());
    }
    let (text, failed) = report(&outcomes);
    println!("{text}");
    println!("transcripts: {}", dir.display());
    if let Some(w) = warren.as_mut() {
        if !w.alive() {
            println!("warren is no longer running; last log lines:\n{}", w.log_tail(40));
        }
    }
    assert_eq!(failed, 0, "{name}: {failed} scenario(s) differ between RabbitMQ and Warren (see above)");
}
