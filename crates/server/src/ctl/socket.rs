//! The control socket: a Unix socket in the data directory (`warren.sock`) through which
//! `warren ctl` sends one command to the running broker and reads the answer. Only the user the
//! broker runs as (and root) may use it: the socket file is private to that user, and each
//! peer's credentials are checked as well.
//!
//! The exchange is one JSON line each way: a [`CtlCommand`], then `{"ok": "text"}` or
//! `{"error": "text"}`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use warren_broker::Broker;

use super::command::{execute, CtlCommand};

/// The socket's file name in the data directory.
const SOCKET_FILE: &str = "warren.sock";

/// The longest request read: definitions imports travel as files, not through the socket.
const MAX_REQUEST: u64 = 1 << 20;

/// How long a client may take to send its command: a connection that says nothing is closed.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The longest path a Unix socket address holds (sun_path, less its terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// A command's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reply {
    /// Done; what to print.
    Ok(String),
    /// Refused or failed; why.
    Error(String),
}

/// Where the control socket of the broker using `data_dir` is.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE)
}

/// Listens on the control socket until the runtime stops; without it (the path too long for a
/// socket address, a read-only directory), `warren ctl` cannot reach the running broker and
/// the log says so.
pub fn spawn(data_dir: &Path, broker: Arc<Broker>) {
    let path = socket_path(data_dir);
    match listen(&path) {
        Ok(listener) => {
            tracing::info!(path = %path.display(), "control socket for warren ctl");
            tokio::spawn(accept_loop(listener, broker));
        }
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "no control socket: warren ctl cannot reach this broker while it runs")
        }
    }
}

fn listen(path: &Path) -> std::io::Result<UnixListener> {
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(std::io::Error::other("the path is too long for a Unix socket"));
    }
    // A socket file left by a broker that was killed: the data directory's lock says no other
    // broker runs here now.
    let _ = std::fs::remove_file(path);
    // Created private: no moment where another user could connect.
    let old_umask = unsafe { libc::umask(0o077) };
    let listener = UnixListener::bind(path);
    unsafe { libc::umask(old_umask) };
    listener
}

async fn accept_loop(listener: UnixListener, broker: Arc<Broker>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve(stream, broker.clone()));
            }
            Err(error) => {
                tracing::warn!(%error, "control socket accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve(stream: UnixStream, broker: Arc<Broker>) {
    let me = unsafe { libc::geteuid() };
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == me || cred.uid() == 0 => {}
        _ => return,
    }
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST));
    let read = tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await;
    let reply = match read {
        Err(_) => Reply::Error("Error: no command within 10 s".to_owned()),
        Ok(Err(e)) => Reply::Error(format!("Error: reading the command: {e}")),
        Ok(Ok(_)) => match serde_json::from_str::<CtlCommand>(&line) {
            Err(e) => Reply::Error(format!("Error: not a command: {e}")),
            Ok(command) => {
                tracing::info!(command = command.name(), "warren ctl");
                // Admin commands write the definitions store (an fsync): off the async threads.
                let done = tokio::task::spawn_blocking(move || execute(&broker, command)).await;
                match done {
                    Ok(Ok(text)) => Reply::Ok(text),
                    Ok(Err(text)) => Reply::Error(text),
                    Err(e) => Reply::Error(format!("Error: {e}")),
                }
            }
        },
    };
    let mut out = serde_json::to_vec(&reply).expect("a reply serializes");
    out.push(b'\n');
    let _ = write.write_all(&out).await;
}

/// Sends `command` to the broker running on `data_dir`; None if none answers there.
pub fn request(data_dir: &Path, command: &CtlCommand) -> Option<std::io::Result<Reply>> {
    use std::io::{BufRead, Write};
    let stream = std::os::unix::net::UnixStream::connect(socket_path(data_dir)).ok()?;
    let exchange = || -> std::io::Result<Reply> {
        let mut out = serde_json::to_vec(command)?;
        out.push(b'\n');
        (&stream).write_all(&out)?;
        let mut line = String::new();
        std::io::BufReader::new(&stream).read_line(&mut line)?;
        serde_json::from_str(&line).map_err(std::io::Error::other)
    };
    Some(exchange())
}
