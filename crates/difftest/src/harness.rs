//! Scenario context, running a scenario against one broker, comparing two
//! transcripts and the report.
//!
//! A scenario is plain client code. It writes what it observes to the
//! transcript through [`Ctx::log`] (the raw client and the lapin helpers do
//! this for every frame or outcome they see). It never branches on which
//! broker it talks to. After it ends the transcript is normalized
//! ([`crate::differences`]) and compared line by line with the other
//! broker's.

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::differences;

/// Scenarios whose difference is a known Warren bug (not yet fixed in
/// Warren). They still run and still count as failed; the report lists them
/// separately, with what RabbitMQ does.
pub struct KnownBug {
    pub scenario: &'static str,
    /// What Warren does wrong, and what RabbitMQ does.
    pub summary: &'static str,
}

pub const KNOWN_WARREN_BUGS: &[KnownBug] = &[];

/// Upper bound for a whole scenario on one broker.
pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(40);
/// Upper bound for one expected reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long polling for a condition (queue counts after asynchronous work
/// such as dead-lettering or expiry) may take before the last observation is
/// recorded as is.
pub const POLL_DEADLINE: Duration = Duration::from_secs(5);

/// A scenario gave up (unexpected reply, timeout). The reason is appended
/// to the transcript, so it is compared like any other line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Abort(pub String);

pub type Res<T = ()> = Result<T, Abort>;

impl From<lapin::Error> for Abort {
    fn from(e: lapin::Error) -> Abort {
        Abort(format!("unexpected lapin error: {}", crate::lapin_client::describe_error(&e)))
    }
}

/// Awaits `f` for at most [`REPLY_TIMEOUT`].
pub async fn within<F: Future>(what: &str, f: F) -> Res<F::Output> {
    tokio::time::timeout(REPLY_TIMEOUT, f).await.map_err(|_| Abort(format!("timeout: {what}")))
}

/// The broker a scenario runs against.
#[derive(Clone, Debug)]
pub struct Target {
    /// `rabbitmq` or `warren`: for reports only, never for scenario logic.
    pub label: &'static str,
    pub addr: SocketAddr,
    /// The operator command prefix (see [`crate::ctl`]); empty when there is none.
    pub ctl: Vec<String>,
    /// The management HTTP API, for the `mgmt_` scenarios (None: those abort).
    pub mgmt: Option<SocketAddr>,
}

struct CtxInner {
    target: Target,
    scenario: &'static str,
    run_id: String,
    lines: Mutex<Vec<String>>,
    names: Mutex<Vec<String>>,
    /// Users and vhosts made for the scenario and not deleted by it yet.
    users: Mutex<Vec<String>>,
    vhosts: Mutex<Vec<String>>,
}

/// What a scenario gets: where the broker is, the transcript, names.
#[derive(Clone)]
pub struct Ctx(Arc<CtxInner>);

impl Ctx {
    pub fn new(target: Target, scenario: &'static str, run_id: &str) -> Ctx {
        Ctx(Arc::new(CtxInner {
            target,
            scenario,
            run_id: run_id.to_string(),
            lines: Mutex::new(Vec::new()),
            names: Mutex::new(Vec::new()),
            users: Mutex::new(Vec::new()),
            vhosts: Mutex::new(Vec::new()),
        }))
    }

    /// Appends a line to the transcript.
    pub fn log(&self, line: impl Into<String>) {
        self.0.lines.lock().unwrap().push(line.into());
    }

    pub fn lines(&self) -> Vec<String> {
        self.0.lines.lock().unwrap().clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.0.target.addr
    }

    /// The management HTTP API's address, if the broker serves it.
    pub fn mgmt_addr(&self) -> Option<SocketAddr> {
        self.0.target.mgmt
    }

    /// amqp URL for guest/guest on vhost "/".
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.0.target.addr)
    }

    /// A queue/exchange name for this scenario: the same on both brokers in
    /// one run (the run id is shared), distinct between runs so that a
    /// long-lived reference broker can be reused. Remembered for cleanup.
    pub fn name(&self, suffix: &str) -> String {
        let n = format!("dt.{}.{}.{}", self.0.run_id, self.0.scenario, suffix);
        self.0.names.lock().unwrap().push(n.clone());
        n
    }

    fn names(&self) -> Vec<String> {
        self.0.names.lock().unwrap().clone()
    }

    fn unique(&self, suffix: &str) -> String {
        format!("dt.{}.{}.{}", self.0.run_id, self.0.scenario, suffix)
    }

    /// A user name for this scenario (like [`Ctx::name`]); users are broker-wide, so the
    /// harness deletes it after the scenario unless the scenario did.
    pub fn user(&self, suffix: &str) -> String {
        let n = self.unique(suffix);
        self.0.users.lock().unwrap().push(n.clone());
        n
    }

    /// A vhost name for this scenario, deleted after it like [`Ctx::user`].
    pub fn vhost(&self, suffix: &str) -> String {
        let n = self.unique(suffix);
        self.0.vhosts.lock().unwrap().push(n.clone());
        n
    }

    /// Runs an operator command on the broker, with `rabbitmqctl`'s arguments (see
    /// [`crate::ctl`]), logged as `ctl ARGS`. Its output is not compared (the tools word
    /// it differently); a failure aborts the scenario.
    pub async fn ctl(&self, args: &[&str]) -> Res {
        self.log(format!("ctl {}", args.join(" ")));
        match crate::ctl::run(&self.0.target.ctl, args).await {
            Ok(_) => {
                // Deleted here: nothing left for the cleanup.
                let list = match args {
                    ["delete_user", name] => Some((&self.0.users, *name)),
                    ["delete_vhost", name] => Some((&self.0.vhosts, *name)),
                    _ => None,
                };
                if let Some((list, name)) = list {
                    list.lock().unwrap().retain(|n| n != name);
                }
                Ok(())
            }
            Err(e) => Err(Abort(format!("ctl {} failed: {e}", args.join(" ")))),
        }
    }

    /// The scenario deleted this vhost or user itself (through the management API): nothing
    /// left for the cleanup.
    pub fn forget(&self, name: &str) {
        self.0.users.lock().unwrap().retain(|n| n != name);
        self.0.vhosts.lock().unwrap().retain(|n| n != name);
    }

    /// Deletes the vhosts and users the scenario left (best effort, not logged).
    async fn cleanup_access(&self) {
        let vhosts = std::mem::take(&mut *self.0.vhosts.lock().unwrap());
        let users = std::mem::take(&mut *self.0.users.lock().unwrap());
        let deletes = vhosts.iter().map(|v| ["delete_vhost", v.as_str()]);
        for args in deletes.chain(users.iter().map(|u| ["delete_user", u.as_str()])) {
            let _ = crate::ctl::run(&self.0.target.ctl, &args).await;
        }
    }
}

pub type ScenarioFuture = Pin<Box<dyn Future<Output = Res> + Send>>;

pub struct Scenario {
    pub name: &'static str,
    pub run: fn(Ctx) -> ScenarioFuture,
}

/// `scenario!(function)` builds a [`Scenario`] named after the function.
#[macro_export]
macro_rules! scenario {
    ($f:path) => {
        $crate::harness::Scenario {
            name: $crate::harness::last_segment(stringify!($f)),
            run: |cx| Box::pin($f(cx)),
        }
    };
}

/// `a::b::c` -> `c` (const so the macro can use it).
pub const fn last_segment(path: &'static str) -> &'static str {
    let bytes = path.as_bytes();
    let mut i = bytes.len();
    while i > 0 && bytes[i - 1] != b':' && bytes[i - 1] != b' ' {
        i -= 1;
    }
    let (_, tail) = bytes.split_at(i);
    match std::str::from_utf8(tail) {
        Ok(s) => s,
        Err(_) => path,
    }
}

/// Runs one scenario against one broker and returns its normalized
/// transcript. Panics and timeouts become transcript lines.
pub async fn run_scenario(target: &Target, sc: &Scenario, run_id: &str) -> Vec<String> {
    let cx = Ctx::new(target.clone(), sc.name, run_id);
    let handle = tokio::spawn((sc.run)(cx.clone()));
    let abort = handle.abort_handle();
    match tokio::time::timeout(SCENARIO_TIMEOUT, handle).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(Abort(m)))) => cx.log(format!("ABORT: {m}")),
        Ok(Err(e)) if e.is_panic() => {
            let p = e.into_panic();
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            cx.log(format!("PANIC: {msg}"));
        }
        Ok(Err(e)) => cx.log(format!("ABORT: task failed: {e}")),
        Err(_) => {
            abort.abort();
            cx.log(format!("ABORT: scenario did not finish within {SCENARIO_TIMEOUT:?}"));
        }
    }
    crate::raw::cleanup(target, &cx.names()).await;
    cx.cleanup_access().await;
    differences::normalize_transcript(&cx.lines())
}

/// The first line where two transcripts differ (0-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    pub line: usize,
    pub rabbitmq: Option<String>,
    pub warren: Option<String>,
}

pub fn compare(rabbitmq: &[String], warren: &[String]) -> Option<Diff> {
    let n = rabbitmq.len().max(warren.len());
    (0..n).find(|&i| rabbitmq.get(i) != warren.get(i)).map(|i| Diff {
        line: i,
        rabbitmq: rabbitmq.get(i).cloned(),
        warren: warren.get(i).cloned(),
    })
}

/// The result of one scenario on both brokers.
pub struct Outcome {
    pub name: &'static str,
    pub rabbitmq: Vec<String>,
    pub warren: Vec<String>,
    pub diff: Option<Diff>,
    pub seconds: f64,
}

impl Outcome {
    pub fn known_bug(&self) -> Option<&'static KnownBug> {
        KNOWN_WARREN_BUGS.iter().find(|b| b.scenario == self.name)
    }
}

fn show(line: &Option<String>) -> String {
    match line {
        Some(l) => l.clone(),
        None => "<transcript ended>".to_string(),
    }
}

fn diff_details(out: &mut String, o: &Outcome, d: &Diff) {
    let _ = writeln!(out, "--- {}: first difference at transcript line {}", o.name, d.line + 1);
    let _ = writeln!(out, "    rabbitmq: {}", show(&d.rabbitmq));
    let _ = writeln!(out, "    warren:   {}", show(&d.warren));
    let from = d.line.saturating_sub(3);
    let _ = writeln!(out, "    context (rabbitmq transcript from line {}):", from + 1);
    for (i, l) in o.rabbitmq.iter().enumerate().skip(from).take(10) {
        let _ = writeln!(out, "      {:>3} {l}", i + 1);
    }
    let _ = writeln!(out, "    context (warren transcript from line {}):", from + 1);
    for (i, l) in o.warren.iter().enumerate().skip(from).take(10) {
        let _ = writeln!(out, "      {:>3} {l}", i + 1);
    }
}

/// The PASS/DIFF table, details of each difference, known bugs, and the
/// closing `differential: N passed, M failed` line. Returns (text, failed).
pub fn report(outcomes: &[Outcome]) -> (String, usize) {
    let mut out = String::new();
    let width = outcomes.iter().map(|o| o.name.len()).max().unwrap_or(8).max(8);
    let _ = writeln!(out, "{:<width$}  result     time  lines", "scenario");
    for o in outcomes {
        let result = match (&o.diff, o.known_bug()) {
            (None, _) => "PASS",
            (Some(_), None) => "DIFF",
            (Some(_), Some(_)) => "DIFF(bug)",
        };
        let _ = writeln!(out, "{:<width$}  {result:<9} {:>5.2}s  {}", o.name, o.seconds, o.rabbitmq.len());
    }
    let new: Vec<&Outcome> =
        outcomes.iter().filter(|o| o.diff.is_some() && o.known_bug().is_none()).collect();
    let known: Vec<&Outcome> =
        outcomes.iter().filter(|o| o.diff.is_some() && o.known_bug().is_some()).collect();
    if !new.is_empty() {
        let _ = writeln!(out, "\n== differences ({})", new.len());
        for o in &new {
            diff_details(&mut out, o, o.diff.as_ref().unwrap());
        }
    }
    if !known.is_empty() {
        let _ = writeln!(out, "\n== known Warren bugs ({}), counted as failed", known.len());
        for o in &known {
            let _ = writeln!(out, "*** {}: {}", o.name, o.known_bug().unwrap().summary);
            diff_details(&mut out, o, o.diff.as_ref().unwrap());
        }
    }
    let fixed: Vec<&Outcome> =
        outcomes.iter().filter(|o| o.diff.is_none() && o.known_bug().is_some()).collect();
    for o in &fixed {
        let _ = writeln!(out, "note: {} is listed in KNOWN_WARREN_BUGS but now passes; remove it", o.name);
    }
    let failed = new.len() + known.len();
    let passed = outcomes.len() - failed;
    let _ = writeln!(out, "differential: {passed} passed, {failed} failed");
    (out, failed)
}

/// Writes both transcripts of every scenario to `dir` for inspection.
pub fn write_transcripts(dir: &Path, outcomes: &[Outcome]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for o in outcomes {
        std::fs::write(dir.join(format!("{}.rabbitmq.txt", o.name)), o.rabbitmq.join("\n") + "\n")?;
        std::fs::write(dir.join(format!("{}.warren.txt", o.name)), o.warren.join("\n") + "\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_reports_first_difference() {
        let a: Vec<String> = ["x", "y", "z"].iter().map(|s| s.to_string()).collect();
        let b: Vec<String> = ["x", "y"].iter().map(|s| s.to_string()).collect();
        assert_eq!(compare(&a, &a), None);
        assert_eq!(compare(&a, &b), Some(Diff { line: 2, rabbitmq: Some("z".into()), warren: None }));
    }

    #[test]
    fn last_segment_of_paths() {
        assert_eq!(last_segment("a::b::c"), "c");
        assert_eq!(last_segment("c"), "c");
    }

    #[test]
    fn known_bugs_name_real_scenarios() {
        let suites = [crate::scenarios::all(), crate::scenarios::mgmt_all()];
        let names: Vec<&str> = suites.iter().flatten().map(|s| s.name).collect();
        for b in KNOWN_WARREN_BUGS {
            assert!(names.contains(&b.scenario), "KNOWN_WARREN_BUGS names unknown scenario {}", b.scenario);
        }
    }

    #[test]
    fn scenario_names_are_unique() {
        let suites = [crate::scenarios::all(), crate::scenarios::mgmt_all()];
        let mut names: Vec<&str> = suites.iter().flatten().map(|s| s.name).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
        assert!(n >= 40, "only {n} scenarios");
    }
}
