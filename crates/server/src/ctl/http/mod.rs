//! `warren ctl --url`: the same commands as over the control socket, carried out through the
//! management HTTP API, so they reach a broker on another machine, as another user, and cover
//! what only the running broker knows (queues, connections, channels, consumers, status).

mod await_startup;
mod client;
mod mapping;
mod session;
mod table;
mod target;

use std::io::Write;

pub use target::HttpTarget;

use super::CtlCommand;
use crate::exit_code;
use client::HttpClient;
use target::BaseUrl;

/// Runs `command` against the API at `url`; the process's exit status.
pub fn run(target: &HttpTarget, url: &str, command: CtlCommand) -> i32 {
    let base = match BaseUrl::parse(url) {
        Ok(base) => base,
        Err(e) => {
            eprintln!("Error: {e}");
            return exit_code::USAGE;
        }
    };
    if base.tls && target.cacert.is_none() {
        // No public root store is built in: a broker's certificate is usually its owner CA's.
        eprintln!("Error: an https URL needs --cacert FILE (the CA that signed the broker's certificate)");
        return exit_code::USAGE;
    }
    let (user, password) = credentials(target, &base);
    let client = match HttpClient::new(base, (&user, &password), target.cacert.as_deref()) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("Error: {e}");
            return exit_code::FAILED;
        }
    };
    match mapping::execute(&client, command, target.json) {
        Ok(text) => {
            // A closed pipe (`| head`) is the reader's choice, not a failure.
            let _ = writeln!(std::io::stdout().lock(), "{}", text.trim_end());
            exit_code::OK
        }
        Err(e) => {
            let text = e.to_string();
            if text.starts_with("Error") {
                eprintln!("{text}");
            } else {
                eprintln!("Error: {text}");
            }
            e.exit_code()
        }
    }
}

/// The flags (or their environment variables) win over the URL's user:password@, which wins
/// over guest/guest.
fn credentials(target: &HttpTarget, base: &BaseUrl) -> (String, String) {
    let (url_user, url_password) =
        base.credentials.clone().unwrap_or_else(|| ("guest".into(), "guest".into()));
    (target.user.clone().unwrap_or(url_user), target.password.clone().unwrap_or(url_password))
}
