//! The `warren` binary: reads configuration, binds the listening addresses, opens the data
//! directory, serves AMQP clients, stops on Ctrl-C/SIGTERM.

mod bind;
mod config;
mod connection;
mod disk_alarm;
mod listener;
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
    let broker = storage::open_broker(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(listener::run(config, bound, broker))
}
