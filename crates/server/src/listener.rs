//! Accepts AMQP connections and hands each to its own task; stops on Ctrl-C or SIGTERM.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use warren_broker::Broker;

use crate::config::Config;

pub async fn run(config: Config, broker: Arc<Broker>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen).await?;
    tracing::info!(address = %listener.local_addr()?, data_dir = %config.data_dir.display(), "warren is accepting AMQP connections");
    let connection_config = Arc::new(config.connection);
    let mut terminate = signal(SignalKind::terminate())?;
    let alarm = crate::disk_alarm::spawn(config.data_dir.clone(), config.disk_free_limit);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let broker = broker.clone();
                    let config = connection_config.clone();
                    let alarm = alarm.clone();
                    tokio::spawn(async move { crate::connection::serve(stream, peer, broker, config, alarm).await });
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
