//! Restart support for durability tests: a `warren` process on a data directory that outlives
//! it, which the test stops (SIGTERM or SIGKILL) and starts again on the same directory, on the
//! same port or a new one.
//!
//! Unlike [`super::Broker`] this never uses `WARREN_TEST_URL`: an external broker cannot be
//! killed and restarted by a test.
//!
//! Each start writes the broker's stdout and stderr to their own files (`run-<n>.stdout`,
//! `run-<n>.stderr`) next to the data directory, so a test can check what one run logged.
#![allow(dead_code)]

use std::ffi::OsString;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use lapin::{Connection, ConnectionProperties};

use super::{free_port, Client, STARTUP_TIMEOUT, TIMEOUT};

/// How a running broker is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM: the broker shuts down on its own.
    Term,
    /// SIGKILL: a crash, nothing runs after it.
    Kill,
}

/// How long a broker gets to exit after SIGTERM (or to die after SIGKILL).
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// A `warren` process on a data directory that outlives it.
pub struct DurableBroker {
    /// Holds the data directory (unless one was given) and the logs.
    dir: tempfile::TempDir,
    data_dir: PathBuf,
    addr: SocketAddr,
    args: Vec<OsString>,
    child: Option<Child>,
    /// Number of starts so far; run `n` logs to `run-<n>.stdout`/`.stderr`.
    runs: u32,
    /// When the current run's process was spawned and when it accepted a TCP connection.
    started_at: Option<Instant>,
    ready_after: Option<Duration>,
    /// The process's limit on open files (`ulimit -n`), when the test lowers it.
    fd_limit: Option<u32>,
}

impl DurableBroker {
    /// Starts a broker on a fresh data directory and a free port, with extra flags.
    pub async fn start(args: &[&str]) -> DurableBroker {
        let mut b = Self::new(None, args);
        b.spawn().await;
        b
    }

    /// Starts a broker on the given data directory (e.g. on a small tmpfs).
    pub async fn start_in(data_dir: &Path, args: &[&str]) -> DurableBroker {
        let mut b = Self::new(Some(data_dir.to_owned()), args);
        b.spawn().await;
        b
    }

    /// A handle that is not running yet (see [`DurableBroker::spawn`]).
    pub fn new(data_dir: Option<PathBuf>, args: &[&str]) -> DurableBroker {
        let dir = tempfile::Builder::new().prefix("warren-durable-").tempdir().expect("create temp dir");
        let data_dir = data_dir.unwrap_or_else(|| dir.path().join("data"));
        std::fs::create_dir_all(&data_dir).expect("create data dir");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        DurableBroker {
            dir,
            data_dir,
            addr,
            args: args.iter().map(OsString::from).collect(),
            child: None,
            runs: 0,
            started_at: None,
            ready_after: None,
            fd_limit: None,
        }
    }

    /// Starts a broker as [`DurableBroker::start`] does, limited to `fd_limit` open files.
    pub async fn start_with_fd_limit(args: &[&str], fd_limit: u32) -> DurableBroker {
        let mut b = Self::new(None, args);
        b.fd_limit = Some(fd_limit);
        b.spawn().await;
        b
    }

    /// Replaces the extra flags used by the next start.
    pub fn set_args(&mut self, args: &[&str]) {
        self.args = args.iter().map(OsString::from).collect();
    }

    /// Runs `warren ctl` on this broker's data directory: whether it succeeded, its stdout and
    /// its stderr.
    pub fn ctl(&self, args: &[&str]) -> (bool, String, String) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_warren"))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--log")
            .arg("warn")
            .arg("ctl")
            .args(args)
            .output()
            .expect("run warren ctl");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    }

    /// Runs `warren ctl` and requires it to succeed.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.ctl(args);
        assert!(ok, "warren ctl {args:?} failed: {stdout}{stderr}");
        stdout
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The management API's plain (http) address, as the broker logged it once bound: the
    /// port is the system's pick unless the test gave one (a port picked ahead by the test
    /// could be taken by another test's broker in between).
    pub async fn management_addr(&self) -> SocketAddr {
        self.logged_address("management API and dashboard listening (http)").await
    }

    /// The address of the first log line of this run that contains `what`, once it is written.
    pub async fn logged_address(&self, what: &str) -> SocketAddr {
        super::eventually(what, || async {
            let log = self.log();
            let line = log.lines().find(|l| l.contains(what))?;
            let address = line.split("address=").nth(1)?.split_whitespace().next()?;
            address.trim_matches('"').parse().ok()
        })
        .await
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2F", self.addr)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// How many times a broker was started on this directory.
    pub fn runs(&self) -> u32 {
        self.runs
    }

    /// How long the current run took from spawn until it accepted a TCP connection.
    pub fn ready_after(&self) -> Option<Duration> {
        self.ready_after
    }

    pub async fn connect(&self) -> Client {
        Client::connect(&self.url()).await
    }

    pub async fn try_connect(&self) -> lapin::Result<Connection> {
        super::within(Connection::connect(&self.url(), ConnectionProperties::default())).await
    }

    fn command(&self, addr: SocketAddr, stdout: File, stderr: File) -> Command {
        let warren = env!("CARGO_BIN_EXE_warren");
        let mut cmd = match self.fd_limit {
            None => Command::new(warren),
            // The shell lowers its limit and becomes warren (exec): the pid stays the broker's.
            Some(n) => {
                let mut sh = Command::new("sh");
                sh.arg("-c").arg(format!("ulimit -n {n} && exec \"$0\" \"$@\"")).arg(warren);
                sh
            }
        };
        cmd.arg("--listen").arg(addr.to_string()).arg("--data-dir").arg(&self.data_dir);
        // Any free port, unless the test chose one: tests run many brokers at once.
        if !self.args.iter().any(|a| a == "--management-listen") {
            cmd.arg("--management-listen").arg("127.0.0.1:0");
        }
        cmd.args(&self.args).stdin(Stdio::null()).stdout(Stdio::from(stdout)).stderr(Stdio::from(stderr));
        cmd
    }

    fn log_path(&self, run: u32, stream: &str) -> PathBuf {
        self.dir.path().join(format!("run-{run}.{stream}"))
    }

    /// Starts the broker (it must not be running) and waits until it accepts TCP connections.
    pub async fn spawn(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        self.runs += 1;
        let out = File::create(self.log_path(self.runs, "stdout")).expect("create log");
        let err = File::create(self.log_path(self.runs, "stderr")).expect("create log");
        let started = Instant::now();
        let child = self.command(self.addr, out, err).spawn().expect("spawn warren binary");
        self.child = Some(child);
        self.started_at = Some(started);
        self.ready_after = None;
        self.wait_ready().await;
        self.ready_after = Some(started.elapsed());
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!("warren exited during startup with {status}; log:\n{}", self.log());
                }
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "warren did not accept connections on {} within {STARTUP_TIMEOUT:?}; log:\n{}",
                    self.addr,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the running broker; returns its exit status.
    pub fn stop(&mut self, how: Stop) -> ExitStatus {
        match how {
            Stop::Term => self.terminate(),
            Stop::Kill => self.kill(),
        }
    }

    /// SIGKILL, then reaps the process.
    pub fn kill(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("broker is not running");
        let _ = child.kill();
        child.wait().expect("wait for killed broker")
    }

    /// SIGTERM, then waits (polling, with a deadline) for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("broker is not running");
        let sent = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        assert!(sent.is_ok_and(|s| s.success()), "could not send SIGTERM to {}", child.id());
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("wait for broker") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("warren did not exit within {EXIT_TIMEOUT:?} of SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the broker (as given) and starts it again on the same data directory and port.
    pub async fn restart(&mut self, how: Stop) -> ExitStatus {
        let status = self.stop(how);
        self.spawn().await;
        status
    }

    /// Like [`DurableBroker::restart`], on a new port.
    pub async fn restart_on_new_port(&mut self, how: Stop) -> ExitStatus {
        let status = self.stop(how);
        self.addr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        self.spawn().await;
        status
    }

    /// Runs a second broker on the same data directory (and a new port) while this one runs,
    /// expecting it to exit by itself; returns its status, stdout and stderr.
    pub fn run_second(&self) -> (ExitStatus, String, String) {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let (out_path, err_path) =
            (self.dir.path().join("second.stdout"), self.dir.path().join("second.stderr"));
        let out = File::create(&out_path).expect("create log");
        let err = File::create(&err_path).expect("create log");
        let mut child = self.command(addr, out, err).spawn().expect("spawn second warren");
        let deadline = Instant::now() + EXIT_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for second broker") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("a second warren on the same data directory did not exit within {EXIT_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let read = |p: &Path| strip_ansi(&std::fs::read_to_string(p).unwrap_or_default());
        (status, read(&out_path), read(&err_path))
    }

    /// What run `n` (1-based) wrote to stdout and stderr (terminal colour codes removed).
    pub fn run_output(&self, run: u32) -> (String, String) {
        let read = |s: &str| strip_ansi(&std::fs::read_to_string(self.log_path(run, s)).unwrap_or_default());
        (read("stdout"), read("stderr"))
    }

    /// Everything the current (or last) run wrote, stdout then stderr.
    pub fn log(&self) -> String {
        let (out, err) = self.run_output(self.runs);
        format!("{out}{err}")
    }

    /// Everything every run wrote, in order.
    pub fn all_logs(&self) -> String {
        let mut all = String::new();
        for run in 1..=self.runs {
            let (out, err) = self.run_output(run);
            all.push_str(&format!("==== run {run} ====\n{out}{err}"));
        }
        all
    }
}

impl Drop for DurableBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let logs = self.all_logs();
            let tail: Vec<&str> = logs.lines().rev().take(80).collect();
            eprintln!("---- last lines of the warren logs ({}) ----", self.data_dir.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// Removes terminal escape sequences (`ESC [ ... letter`), which the broker's log contains
/// even when it does not write to a terminal.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Waits (polling with a deadline) until `addr` accepts a TCP connection.
pub async fn wait_port(addr: SocketAddr) {
    let deadline = Instant::now() + TIMEOUT;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "{addr} did not accept connections within {TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The directory of durable queue `queue` of vhost `vhost` (names as hex of their bytes, as
/// the store lays them out; short names only).
pub fn queue_dir(data_dir: &Path, vhost: &str, queue: &str) -> PathBuf {
    fn hex(s: &str) -> String {
        s.bytes().map(|b| format!("{b:02x}")).collect()
    }
    assert!(!vhost.is_empty() && vhost.len() <= 100 && !queue.is_empty() && queue.len() <= 100);
    data_dir.join("queues").join(hex(vhost)).join(hex(queue))
}

/// The files of a queue directory with this extension ("seg" or "ack"), sorted by name (which
/// is by first offset).
pub fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    files
}

/// Byte ranges of the records of a segment file: (start, length) of each, by walking the
/// length prefixes after the 8-byte file header (no checksum checks: this is for tests that
/// damage files on purpose, and must know where records are).
pub fn record_spans(segment: &[u8]) -> Vec<(usize, usize)> {
    const HEADER: usize = 8;
    const PREFIX: usize = 8;
    let mut spans = Vec::new();
    let mut pos = HEADER;
    while pos + PREFIX <= segment.len() {
        let len = u32::from_le_bytes(segment[pos..pos + 4].try_into().unwrap()) as usize;
        let total = PREFIX + len;
        if pos + total > segment.len() {
            break;
        }
        spans.push((pos, total));
        pos += total;
    }
    spans
}
