//! Accepts AMQP connections on every listening address and hands each to its own task; stops on
//! Ctrl-C or SIGTERM.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use warren_broker::Broker;
use warren_connection::ConnectionConfig;

use crate::bind::Bound;
use crate::config::Config;

/// What every connection task is started with.
struct Shared {
    broker: Arc<Broker>,
    config: Arc<ConnectionConfig>,
    alarm: watch::Receiver<bool>,
}

pub async fn run(config: Config, bound: Vec<Bound>, broker: Arc<Broker>) -> anyhow::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    let alarm = crate::disk_alarm::spawn(config.data_dir.clone(), config.disk_free_limit);
    broker.set_consumer_timeout(config.consumer_timeout);
    spawn_expiry(broker.clone());
    let shared = Arc::new(Shared { broker, config: Arc::new(config.connection), alarm });
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
                let broker = shared.broker.clone();
                let config = shared.config.clone();
                let alarm = shared.alarm.clone();
                tokio::spawn(
                    async move { crate::connection::serve(stream, peer, broker, config, alarm).await },
                );
            }
            Err(e) => tracing::warn!(error = %e, "accept failed"),
        }
    }
}

/// How often queues drop or dead-letter expired messages nobody is reading.
const EXPIRY_TICK: std::time::Duration = std::time::Duration::from_millis(50);

/// Consumer timeouts are checked every this many ticks (one second); RabbitMQ checks less often.
const CONSUMER_TIMEOUT_TICKS: u32 = 20;

/// Expires messages at the head of every queue on a timer, so TTLs hold for idle queues too;
/// every second it also marks channels past their consumer timeout (their connections close them).
fn spawn_expiry(broker: Arc<Broker>) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(EXPIRY_TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u32;
        loop {
            ticker.tick().await;
            broker.expire_all();
            ticks += 1;
            if ticks == CONSUMER_TIMEOUT_TICKS {
                ticks = 0;
                broker.check_consumer_timeouts();
            }
        }
    });
}
