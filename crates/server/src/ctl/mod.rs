//! `warren ctl`: operator commands shaped as `rabbitmqctl`'s (users, vhosts, permissions, topic
//! permissions, limits). Sent to the broker running on the data directory through its control
//! socket; applied to the data directory itself when no broker runs there (its definitions
//! file is locked while one does).

mod command;
pub mod socket;

use std::sync::Arc;

use anyhow::Context;
use warren_broker::Broker;
use warren_store::definitions::Definitions;
use warren_store::MemoryStore;

pub use command::CtlCommand;

use crate::config::Config;

/// Runs one command; the process's exit status: 0 done, 1 refused or failed, 2 unreachable data.
pub fn run(config: &Config, command: CtlCommand) -> i32 {
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
        socket::Reply::Ok(text) => {
            println!("{text}");
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
    let broker =
        Broker::open(Arc::new(MemoryStore), definitions, &config.first_start, crate::connection::now())
            .context("reading the definitions")?;
    broker.set_loopback_users(&config.loopback_users);
    Ok(match command::execute(&broker, command) {
        Ok(text) => socket::Reply::Ok(text),
        Err(text) => socket::Reply::Error(text),
    })
}
