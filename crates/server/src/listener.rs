//! Accepts AMQP connections and hands each to its own task; stops on Ctrl-C or SIGTERM.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use warren_amqp::Node;
use warren_broker::Broker;

use crate::config::Config;

pub async fn run(config: Config, broker: Arc<Broker>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen).await?;
    tracing::info!(address = %listener.local_addr()?, data_dir = %config.data_dir.display(), "warren is accepting AMQP connections");
    let connection_config = Arc::new(config.connection);
    let mut terminate = signal(SignalKind::terminate())?;
    let alarm = crate::disk_alarm::spawn(config.data_dir.clone(), config.disk_free_limit);
    broker.set_consumer_timeout(config.consumer_timeout);
    spawn_ticker(broker.clone());
    let node = Node::new(broker);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let node = node.clone();
                    let config = connection_config.clone();
                    let alarm = alarm.clone();
                    tokio::spawn(async move { crate::connection::serve(stream, peer, node, config, alarm).await });
                }
                Err(e) => tracing::warn!(error = %e, "accept failed"),
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
    }
    tracing::info!("shutting down");
    Ok(())
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
