//! `warren ctl`: operator commands shaped as `rabbitmqctl`'s (users, vhosts, permissions, topic
//! permissions, limits, policies, definitions, listings). With `--url` they go through the
//! management HTTP API ([`http`]); without, to the broker running on the data directory through
//! its control socket, or applied to the data directory itself when no broker runs there (its
//! definitions file is locked while one does).

mod command;
pub mod http;
pub mod socket;

use std::sync::Arc;

use anyhow::Context;
use warren_broker::Broker;
use warren_store::definitions::Definitions;
use warren_store::MemoryStore;

pub use command::CtlCommand;

use crate::config::Config;

/// Runs one command; the process's exit status (see [`crate::exit_code`]).
pub fn run(config: &Config, target: &http::HttpTarget, mut command: CtlCommand) -> i32 {
    if let Some(url) = &target.url {
        return http::run(target, url, command);
    }
    if command.needs_http() {
        eprintln!("{}", command::needs_url(&command));
        return crate::exit_code::USAGE;
    }
    if target.json {
        eprintln!("Error: --json needs the management API: give its address with --url");
        return crate::exit_code::USAGE;
    }
    // The broker may run elsewhere in the file system than this command: paths go absolute.
    if let CtlCommand::ImportDefinitions { path } = &mut command {
        match std::fs::canonicalize(&*path) {
            Ok(absolute) => *path = absolute,
            Err(e) => {
                eprintln!("Error: {}: {e}", path.display());
                return 1;
            }
        }
    }
    let export_to = match &command {
        CtlCommand::ExportDefinitions { path } if path.as_os_str() != "-" => Some(path.clone()),
        _ => None,
    };
    let (reply, where_) = match socket::request(&config.data_dir, &command) {
        Some(Ok(reply)) => (reply, "the running broker"),
        Some(Err(error)) => {
            eprintln!("Error: the broker on {} did not answer: {error}", config.data_dir.display());
            return 2;
        }
        None => match offline(config, command) {
            Ok(reply) => (reply, "the data directory (no broker running)"),
            Err(error) => {
                eprintln!("Error: {error:#}");
                return 2;
            }
        },
    };
    tracing::debug!(target = where_, "warren ctl");
    match reply {
        socket::Reply::Ok(json) if export_to.is_some() => {
            let path = export_to.expect("checked");
            match std::fs::write(&path, json) {
                Ok(()) => {
                    println!("Exporting definitions in JSON to a file at \"{}\" ...", path.display());
                    0
                }
                Err(e) => {
                    eprintln!("Error: writing {}: {e}", path.display());
                    1
                }
            }
        }
        socket::Reply::Ok(text) => {
            println!("{}", text.trim_end());
            0
        }
        socket::Reply::Error(text) => {
            eprintln!("{text}");
            1
        }
    }
}

/// Applies a command to a stopped broker's definitions. Queue contents are not opened (an
/// in-memory store stands in): a deleted vhost's message logs are removed at the next start,
/// as every log of a queue that no longer exists is.
fn offline(config: &Config, command: CtlCommand) -> anyhow::Result<socket::Reply> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let path = config.data_dir.join(crate::storage::DEFINITIONS_FILE);
    let definitions = Arc::new(
        Definitions::open(&path)
            .with_context(|| format!("opening {} (is a broker starting there?)", path.display()))?,
    );
    // As the broker's own start does: with definitions to load, no default user or vhost.
    let first_start = config.load_definitions.is_none().then_some(&config.first_start);
    let broker = Broker::open(Arc::new(MemoryStore), definitions, first_start, crate::connection::now())
        .context("reading the definitions")?;
    broker.set_loopback_users(&config.loopback_users);
    Ok(match command::execute(&broker, command) {
        Ok(text) => socket::Reply::Ok(text),
        Err(text) => socket::Reply::Error(text),
    })
}
