//! The `warren` binary: reads configuration and the TLS certificate files, binds the listening
//! addresses, opens the data directory, serves AMQP clients (over TCP and TLS), reloads the TLS
//! certificate files on SIGHUP, stops cleanly on Ctrl-C/SIGTERM (exit status 0).

mod admission;
mod alarms;
mod backoff;
mod bind;
mod config;
mod connection;
mod connections;
mod ctl;
mod definitions;
mod disk_alarm;
mod exit_code;
mod http_server;
mod limits;
mod listener;
mod management;
mod memory;
mod metrics;
mod shell;
mod storage;
mod tls;
mod tls_client;
mod transport;
mod url_parts;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    metrics::mark_start();
    let mut settings = config::Settings::try_parse().unwrap_or_else(|e| {
        let _ = e.print();
        // --help and --version are not mistakes; anything else is a wrong command line, with
        // its own status so scripts can tell it from an unreachable broker (2).
        std::process::exit(if e.use_stderr() { exit_code::USAGE } else { exit_code::OK });
    });
    let command = settings.command.take();
    // The AMQP tools need no configuration, data directory or log.
    match command {
        Some(config::Command::Publish(args)) => std::process::exit(shell::publish(args)),
        Some(config::Command::Consume(args)) => std::process::exit(shell::consume(args)),
        _ => {}
    }
    let config = config::Settings::load(settings)?;
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if let Some(config::Command::Ctl { target, command }) = command {
        std::process::exit(ctl::run(&config, &target, command));
    }
    // Before the data directory: an unreadable certificate or an address in use must not cost a
    // recovery, nor hold the directory's lock while it fails.
    let tls = match config.tls.clone() {
        Some(settings) => Some(std::sync::Arc::new(tls::ReloadableTls::load(settings)?)),
        None => None,
    };
    let bound = bind::bind_all(&config.listen)?;
    let prometheus = bind::bind_each(&config.prometheus_listen)?;
    let storage::Opened { broker, watched, corruption } = storage::open_broker(&config)?;
    if let Some(path) = &config.load_definitions {
        definitions::load(&broker, path)?;
    }
    let health = watched.health.clone();
    let (alarms, readings) = alarms::spawn(&config, watched)?;
    let node = metrics::NodeProbe {
        alarms: alarms.clone(),
        readings,
        health,
        corruption,
        data_dir: config.data_dir.clone(),
        max_connections: config.max_connections,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let listeners = listener::Listeners { amqp: bound, prometheus, node };
    runtime.block_on(listener::run(config, listeners, broker, alarms, tls))?;
    // Connections that outlived the grace period are dropped here; the broker and its store go
    // with the last of them, and the store's syncer finishes what it was asked to sync.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}
