//! Starting the two brokers: a `warren` process on a free port with a fresh
//! data directory, and a private reference RabbitMQ through
//! `scripts/rabbitmq-ref.sh` (or an existing one from `DIFF_RABBITMQ_URL`).
//! Both are owned by guards that stop them when dropped, also on panic.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

fn port_free(port: u32) -> bool {
    port <= 65535 && TcpListener::bind(("127.0.0.1", port as u16)).is_ok()
}

/// A free port for the management plugin next to the AMQP port (in 20000..35000, below the
/// 35536 `rabbitmq-ref.sh` accepts, and so never one of the AMQP port's companions at +20000
/// and +30000).
fn free_mgmt_port(amqp: u16) -> u16 {
    (1..15000u32)
        .map(|i| 20000 + (u32::from(amqp) - 20000 + i) % 15000)
        .find(|&p| port_free(p))
        .map(|p| p as u16)
        .expect("a free port for the management plugin")
}

/// Any free loopback port.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind ephemeral port");
    l.local_addr().unwrap().port()
}

/// A port P in 20000..35000 such that P, P+20000 (Erlang distribution) and
/// P+30000 (epmd) are free, as `rabbitmq-ref.sh` needs.
pub fn free_rabbitmq_port() -> u16 {
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
        ^ std::process::id().wrapping_mul(2_654_435_761);
    for i in 0..2000u32 {
        let p = 20000 + (seed.wrapping_add(i.wrapping_mul(7919)) % 15000);
        if port_free(p) && port_free(p + 20000) && port_free(p + 30000) {
            return p as u16;
        }
    }
    panic!("no free port triple for the reference RabbitMQ");
}

fn wait_for_tcp(
    addr: SocketAddr,
    timeout: Duration,
    mut alive: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        alive()?;
        if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("nothing accepted connections on {addr} within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Resolves host:port of an amqp URL.
pub fn addr_from_url(url: &str) -> Result<SocketAddr, String> {
    let rest = url.split_once("://").map(|(_, r)| r).ok_or_else(|| format!("URL without scheme: {url}"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let hostport = authority.rsplit('@').next().unwrap_or(authority);
    let hostport = if hostport.contains(':') { hostport.to_string() } else { format!("{hostport}:5672") };
    hostport
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {hostport}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {hostport}"))
}

/// How often both brokers emit statistics when their management API is compared (RabbitMQ
/// shows an object's counters only after an emission; its default of 5 s would make every
/// scenario wait).
pub const MGMT_STATS_INTERVAL_MS: u32 = 500;

/// The management API address from an environment variable (`host:port` or an http URL), for
/// brokers the test did not start.
pub fn mgmt_addr_from_env(var: &str) -> Result<Option<SocketAddr>, String> {
    let Ok(value) = std::env::var(var) else { return Ok(None) };
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let hostport = value.strip_prefix("http://").unwrap_or(value).trim_end_matches('/');
    let resolved =
        hostport.to_socket_addrs().map_err(|e| format!("{var}: cannot resolve {hostport}: {e}"))?;
    Ok(resolved.into_iter().next())
}

/// The reference RabbitMQ: started by us (stopped on drop) or external.
pub struct RabbitMq {
    pub addr: SocketAddr,
    /// The management plugin's HTTP address, when it runs.
    pub mgmt: Option<SocketAddr>,
    started_port: Option<u16>,
    script: PathBuf,
}

impl RabbitMq {
    /// Uses `DIFF_RABBITMQ_URL` (and `DIFF_RABBITMQ_MGMT_URL`) if set, else starts a private
    /// node, with the management plugin if `management`.
    pub fn start(management: bool) -> Result<RabbitMq, String> {
        let script = workspace_root().join("scripts/rabbitmq-ref.sh");
        if let Ok(url) = std::env::var("DIFF_RABBITMQ_URL") {
            if !url.trim().is_empty() {
                let mgmt = mgmt_addr_from_env("DIFF_RABBITMQ_MGMT_URL")?;
                return Ok(RabbitMq { addr: addr_from_url(url.trim())?, mgmt, started_port: None, script });
            }
        }
        let port = free_rabbitmq_port();
        let mgmt = management.then(|| SocketAddr::from(([127, 0, 0, 1], free_mgmt_port(port))));
        // The guard exists before the start, so a half-started node is
        // stopped too.
        let guard = RabbitMq {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            mgmt,
            started_port: Some(port),
            script,
        };
        let mut cmd = Command::new("bash");
        cmd.arg(&guard.script).arg("start").arg(port.to_string());
        if let Some(mgmt) = mgmt {
            cmd.arg("--management")
                .arg(mgmt.port().to_string())
                .arg("--stats-interval")
                .arg(MGMT_STATS_INTERVAL_MS.to_string());
        }
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", guard.script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} start {port} failed ({}):\n{}{}",
                guard.script.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(guard)
    }

    /// The operator command prefix: `scripts/rabbitmq-ref.sh ctl PORT` for a node started
    /// here, else `DIFF_RABBITMQ_CTL` (e.g. `rabbitmqctl -n rabbit@host`; empty: none).
    pub fn ctl_prefix(&self) -> Vec<String> {
        match self.started_port {
            Some(port) => vec![
                "bash".to_string(),
                self.script.display().to_string(),
                "ctl".to_string(),
                port.to_string(),
            ],
            None => crate::ctl::prefix_from_env("DIFF_RABBITMQ_CTL"),
        }
    }

    pub fn describe(&self) -> String {
        match self.started_port {
            Some(p) => format!("private RabbitMQ on 127.0.0.1:{p} (scripts/rabbitmq-ref.sh)"),
            None => format!("RabbitMQ from DIFF_RABBITMQ_URL at {}", self.addr),
        }
    }
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        if let Some(port) = self.started_port.take() {
            let _ = Command::new("bash")
                .arg(&self.script)
                .arg("stop")
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Finds the warren binary: `WARREN_BIN`, else builds `warren-server` with
/// cargo into this build's target directory and profile.
pub fn warren_binary() -> Result<PathBuf, String> {
    if let Ok(bin) = std::env::var("WARREN_BIN") {
        if !bin.trim().is_empty() {
            return Ok(PathBuf::from(bin.trim()));
        }
    }
    // This test executable lives in <target>/<profile>/deps/.
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("unexpected test executable path {}", exe.display()))?;
    let target_dir = profile_dir.parent().ok_or("no target dir")?;
    let profile = profile_dir.file_name().and_then(|s| s.to_str()).unwrap_or("debug").to_string();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--quiet")
        .arg("-p")
        .arg("warren-server")
        .arg("--bin")
        .arg("warren")
        .arg("--manifest-path")
        .arg(workspace_root().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.arg("--profile").arg(other);
        }
    }
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build -p warren-server failed ({status})"));
    }
    let bin = profile_dir.join(if cfg!(windows) { "warren.exe" } else { "warren" });
    if !bin.exists() {
        return Err(format!("{} not found after the build", bin.display()));
    }
    Ok(bin)
}

/// A `warren` process on a free loopback port (killed on drop).
pub struct Warren {
    pub addr: SocketAddr,
    /// Its management API.
    pub mgmt: SocketAddr,
    child: Child,
    log: PathBuf,
    bin: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

impl Warren {
    pub fn start(bin: &Path) -> Result<Warren, String> {
        let dir = tempfile::Builder::new().prefix("warren-difftest-").tempdir().map_err(|e| e.to_string())?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
        let log = dir.path().join("warren.log");
        let out = File::create(&log).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mgmt = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new(bin)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(&data)
            .arg("--management-listen")
            .arg(mgmt.to_string())
            .arg("--collect-statistics-interval")
            .arg(MGMT_STATS_INTERVAL_MS.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let mut w = Warren { addr, mgmt, child, log, bin: bin.to_path_buf(), data, _dir: dir };
        let log_path = w.log.clone();
        let child = &mut w.child;
        for listener in [addr, mgmt] {
            wait_for_tcp(listener, Duration::from_secs(20), || match child.try_wait() {
                Ok(Some(status)) => Err(format!(
                    "warren exited during startup ({status}):\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                )),
                _ => Ok(()),
            })?;
        }
        Ok(w)
    }

    /// The operator command prefix: `warren --data-dir DIR ctl` (it reaches the running broker
    /// through the control socket in DIR).
    pub fn ctl_prefix(&self) -> Vec<String> {
        vec![
            self.bin.display().to_string(),
            "--data-dir".to_string(),
            self.data.display().to_string(),
            "ctl".to_string(),
        ]
    }

    /// The last lines of the broker's log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Warren {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
