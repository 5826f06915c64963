//! The `warren` binary: reads configuration, binds the listening addresses, opens the data
//! directory, serves AMQP clients, stops cleanly on Ctrl-C/SIGTERM (exit status 0).

mod admission;
mod alarms;
mod backoff;
mod bind;
mod config;
mod connection;
mod connections;
mod definitions;
mod disk_alarm;
mod limits;
mod listener;
mod memory;
mod storage;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let config = config::Settings::load(config::Settings::parse())?;
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // Before the data directory: an address in use must not cost a recovery, nor hold the
    // directory's lock while it fails.
    let bound = bind::bind_all(&config.listen)?;
    let (broker, store) = storage::open_broker(&config)?;
    if let Some(path) = &config.load_definitions {
        definitions::load(&broker, path)?;
    }
    let alarms = alarms::spawn(&config, store)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(listener::run(config, bound, broker, alarms))?;
    // Connections that outlived the grace period are dropped here; the broker and its store go
    // with the last of them, and the store's syncer finishes what it was asked to sync.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}
