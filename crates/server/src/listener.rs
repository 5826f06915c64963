//! Accepts AMQP connections on every listening address and hands each to its own task; stops on
//! Ctrl-C or SIGTERM.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use warren_amqp::Node;
use warren_broker::Broker;
use warren_connection::ConnectionConfig;

use crate::bind::Bound;
use crate::config::Config;

/// What every connection task is started with.
struct Shared {
    node: Arc<Node>,
    config: Arc<ConnectionConfig>,
    alarm: watch::Receiver<bool>,
}

pub async fn run(config: Config, bound: Vec<Bound>, broker: Arc<Broker>) -> anyhow::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    let alarm = crate::disk_alarm::spawn(config.data_dir.clone(), config.disk_free_limit);
    broker.set_consumer_timeout(config.consumer_timeout);
    spawn_ticker(broker.clone());
    let shared = Arc::new(Shared { node: Node::new(broker), config: Arc::new(config.connection), alarm });
    let mut acceptors = Vec::with_capacity(bound.len());
    for b in bound {
        let listener = b.listen()?;
        tracing::info!(address = %listener.local_addr()?, data_dir = %config.data_dir.display(), "warren is accepting AMQP connections");
        acceptors.push(tokio::spawn(accept_loop(listener, shared.clone())));
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
    for a in &acceptors {
        a.abort();
    }
    Ok(())
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let node = shared.node.clone();
                let config = shared.config.clone();
                let alarm = shared.alarm.clone();
                tokio::spawn(
                    async move { crate::connection::serve(stream, peer, node, config, alarm).await },
                );
            }
            Err(e) => tracing::warn!(error = %e, "accept failed"),
        }
    }
}

/// How often time is applied to the broker: queues drop or dead-letter expired messages nobody
/// is reading, delayed messages fall due, consumer timeouts are checked (once a second).
const TICK: std::time::Duration = std::time::Duration::from_millis(50);

/// Drives the broker's timers.
fn spawn_ticker(broker: Arc<Broker>) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            broker.tick(crate::connection::now());
        }
    });
}
