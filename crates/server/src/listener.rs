//! Accepts AMQP connections on every listening address and hands each to its own task. On Ctrl-C
//! or SIGTERM it stops accepting, has every connection closed (320 CONNECTION_FORCED, as
//! RabbitMQ), gives clients a moment to answer, and makes what was written durable.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;
use tracing::Instrument;
use warren_amqp::Node;
use warren_broker::Broker;
use warren_connection::ConnectionConfig;

use crate::alarms::Alarms;
use crate::bind::Bound;
use crate::config::Config;
use crate::connections::Connections;

/// What every connection task is started with.
pub struct Shared {
    pub node: Arc<Node>,
    pub config: ConnectionConfig,
    pub alarm: watch::Receiver<Alarms>,
    pub connections: Arc<Connections>,
}

/// How long connections get to answer connection.close at shutdown. Each one's own close
/// timeout (3 s) ends it first; this bounds the whole, with a margin for their clean-up.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(3500);

pub async fn run(
    config: Config,
    bound: Vec<Bound>,
    broker: Arc<Broker>,
    alarm: watch::Receiver<Alarms>,
) -> anyhow::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    broker.set_consumer_timeout(config.consumer_timeout);
    spawn_ticker(broker.clone());
    let connections = Connections::new(config.max_connections);
    let node = Node::new(broker);
    let shared =
        Arc::new(Shared { node, config: config.connection, alarm, connections: connections.clone() });
    let mut acceptors = Vec::with_capacity(bound.len());
    for b in bound {
        let listener = b.listen()?;
        tracing::info!(address = %listener.local_addr()?, data_dir = %config.data_dir.display(), "warren is accepting AMQP connections");
        acceptors.push(tokio::spawn(accept_loop(listener, shared.clone())));
    }
    stop_signal(&mut terminate).await;
    for a in &acceptors {
        a.abort();
    }
    for a in acceptors {
        let _ = a.await;
    }
    tracing::info!(connections = connections.open(), "shutting down: closing client connections");
    connections.shut_down();
    tokio::select! {
        done = tokio::time::timeout(SHUTDOWN_GRACE, connections.all_closed()) => if done.is_err() {
            tracing::warn!(connections = connections.open(), "connections still open at the end of the shutdown grace period");
        },
        _ = stop_signal(&mut terminate) => tracing::warn!("second stop signal: not waiting for connections"),
    }
    crate::storage::flush_and_sync(&shared.node.broker).await;
    tracing::info!("stopped");
    Ok(())
}

async fn stop_signal(terminate: &mut Signal) {
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let registered = shared.connections.register();
                let span = tracing::info_span!("connection", id = tracing::field::Empty, %peer);
                tokio::spawn(
                    crate::connection::serve(stream, peer, shared.clone(), registered).instrument(span),
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
