//! Runs RabbitMQ's own `rabbitmqadmin` (the Python 3 script Debian's rabbitmq-server package
//! installs) against a management port, and captures its exit code and output.
//!
//! Tests that need it call [`AdminCli::find`]: without the script (or python3) they are skipped
//! with a note, unless `RABBITMQADMIN_REQUIRE=1` (set by `.ci/run`), which makes that a failure.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where rabbitmqadmin is looked for: on PATH, then where the management plugin ships it.
const PLUGIN_COPY: &str =
    "/usr/lib/rabbitmq/lib/rabbitmq_server-3.10.8/plugins/rabbitmq_management-3.10.8/priv/www/cli/rabbitmqadmin";

/// What one run of rabbitmqadmin did.
#[derive(Debug)]
pub struct Run {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// rabbitmqadmin pointed at one management listener.
#[derive(Debug, Clone)]
pub struct AdminCli {
    script: PathBuf,
    api: SocketAddr,
}

impl AdminCli {
    /// The installed rabbitmqadmin for `api`, or None (after saying why) when the tests should
    /// skip; panics instead when `RABBITMQADMIN_REQUIRE=1`.
    pub fn find(api: SocketAddr) -> Option<AdminCli> {
        let found = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .map(|dir| dir.join("rabbitmqadmin"))
            .chain(std::iter::once(PathBuf::from(PLUGIN_COPY)))
            .find(|p| p.is_file());
        let python = Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success());
        let missing = match (&found, python) {
            (None, _) => "rabbitmqadmin is not installed (apt-get install rabbitmq-server)",
            (_, false) => "python3 is not installed",
            (Some(_), true) => return found.map(|script| AdminCli { script, api }),
        };
        if std::env::var("RABBITMQADMIN_REQUIRE").is_ok_and(|v| v == "1") {
            panic!("RABBITMQADMIN_REQUIRE=1 but {missing}");
        }
        eprintln!("SKIPPED rabbitmqadmin tests: {missing} (RABBITMQADMIN_REQUIRE=1 makes this a failure)");
        None
    }

    /// Runs `rabbitmqadmin -H host -P port -u user -p password ARGS...`, feeding `stdin`.
    pub async fn run_as(&self, (user, password): (&str, &str), args: &[&str], stdin: &str) -> Run {
        let mut command = Command::new("python3");
        command
            .arg(&self.script)
            .args(["-H", &self.api.ip().to_string(), "-P", &self.api.port().to_string()])
            .args(["-u", user, "-p", password])
            .args(args)
            // Keep a user's ~/.rabbitmqadmin.conf out of it.
            .env("HOME", std::env::temp_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let stdin = stdin.to_owned();
        let output = super::within(tokio::task::spawn_blocking(move || {
            let mut child = command.spawn().expect("start rabbitmqadmin");
            child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
            child.wait_with_output().expect("wait for rabbitmqadmin")
        }))
        .await
        .expect("rabbitmqadmin thread");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs it as guest, with no input.
    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_as(("guest", "guest"), args, "").await
    }

    /// Runs it as guest and asserts that it succeeded; its standard output.
    pub async fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args).await;
        assert_eq!(run.code, 0, "rabbitmqadmin {args:?} failed: {run:?}");
        assert!(!run.stderr.contains("Traceback"), "rabbitmqadmin {args:?}: {run:?}");
        run.stdout
    }

    /// Runs it with `-f raw_json` and parses what it printed.
    pub async fn json(&self, args: &[&str]) -> serde_json::Value {
        let args: Vec<&str> = ["-f", "raw_json"].iter().chain(args).copied().collect();
        let out = self.ok(&args).await;
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("rabbitmqadmin {args:?} printed no JSON ({e}): {out}"))
    }

    /// Runs it as guest and asserts that it failed as rabbitmqadmin fails on an error answer:
    /// exit code 1, and `*** {reason}` and a blank line on standard error.
    pub async fn fails(&self, args: &[&str], reason: &str) {
        let run = self.run(args).await;
        let stderr = format!("*** {reason}\n\n");
        assert_eq!((run.code, run.stderr.as_str()), (1, stderr.as_str()), "rabbitmqadmin {args:?}: {run:?}");
    }
}

/// A file in a fresh temporary directory (kept alive by the returned guard).
pub fn temp_file(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new().prefix("warren-rabbitmqadmin-").tempdir().expect("temp dir");
    let path = dir.path().join(name);
    (dir, path)
}

/// `path` as the UTF-8 text rabbitmqadmin's arguments are.
pub fn arg(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}
