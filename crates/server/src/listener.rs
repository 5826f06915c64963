//! Accepts AMQP connections on every listening address and hands each to its own task (on a TLS
//! listener that task starts with the TLS handshake). On Ctrl-C or SIGTERM it stops accepting,
//! has every connection closed (320 CONNECTION_FORCED, as RabbitMQ), gives clients a moment to
//! answer, and makes what was written durable.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;
use tracing::Instrument;
use warren_amqp::Node;
use warren_broker::{Broker, FlowBound};
use warren_connection::ConnectionConfig;

use crate::alarms::Alarms;
use crate::backoff::AcceptBackoff;
use crate::bind::Bound;
use crate::config::Config;
use crate::connection::Accepted;
use crate::connections::Connections;
use crate::tls::ReloadableTls;

/// What every connection task is started with.
pub struct Shared {
    pub node: Arc<Node>,
    pub config: ConnectionConfig,
    pub alarm: watch::Receiver<Alarms>,
    pub connections: Arc<Connections>,
}

/// What `run` serves: AMQP on its bound addresses, metrics on theirs.
pub struct Listeners {
    pub amqp: Vec<Bound>,
    pub prometheus: Vec<Bound>,
    /// What the metrics read about the node.
    pub node: crate::metrics::NodeProbe,
}

/// How long connections get to answer connection.close at shutdown. Each one's own close
/// timeout (3 s) ends it first; this bounds the whole, with a margin for their clean-up.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(3500);

pub async fn run(
    config: Config,
    listeners: Listeners,
    broker: Arc<Broker>,
    alarm: watch::Receiver<Alarms>,
    tls: Option<Arc<ReloadableTls>>,
) -> anyhow::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    if let Some(tls) = &tls {
        crate::tls::reload_on_sighup(tls.clone())?;
    }
    broker.set_consumer_timeout(config.consumer_timeout);
    broker.set_flow_bound(if config.flow_control {
        FlowBound { bytes: config.queue_memory, ..FlowBound::default() }
    } else {
        FlowBound::OFF
    });
    broker.set_max_failed_logins_per_minute(config.max_failed_logins_per_minute);
    broker.set_loopback_users(&config.loopback_users);
    spawn_ticker(broker.clone());
    crate::ctl::socket::spawn(&config.data_dir, broker.clone());
    let Listeners { amqp: bound, prometheus, node: probe } = listeners;
    let probe = Arc::new(probe);
    let metrics = crate::metrics::spawn(prometheus, broker.clone(), probe.clone(), &config.node_name)?;
    let connections = Connections::new(config.max_connections);
    let node = Node::new(broker);
    let shared =
        Arc::new(Shared { node, config: config.connection, alarm, connections: connections.clone() });
    let mut acceptors = Vec::with_capacity(bound.len());
    let mut amqp_addresses = Vec::with_capacity(bound.len());
    for b in bound {
        let secured = if b.is_tls() {
            Some(tls.clone().ok_or_else(|| anyhow::anyhow!("a TLS listener without a TLS configuration"))?)
        } else {
            None
        };
        let listener = b.listen()?;
        let protocol = if secured.is_some() { "amqps" } else { "amqp" };
        tracing::info!(address = %listener.local_addr()?, protocol, data_dir = %config.data_dir.display(), "warren is accepting AMQP connections");
        // The management API lists listeners by RabbitMQ's protocol names (`amqp/ssl` for TLS).
        let listed = if secured.is_some() { "amqp/ssl" } else { "amqp" };
        amqp_addresses.push((listed.to_owned(), listener.local_addr()?));
        acceptors.push(tokio::spawn(accept_loop(listener, shared.clone(), secured)));
    }
    let management = crate::management::Listen {
        http: &config.management_listen,
        https: &config.management_tls_listen,
        tls: tls.clone(),
    };
    crate::management::spawn(
        management,
        &config.node_name,
        &config.product,
        shared.node.broker.clone(),
        amqp_addresses,
        crate::management::Status {
            alarms: shared.alarm.clone(),
            stats_interval: config.collect_statistics_interval,
            header_timeout: config.management_header_timeout,
            node_stats: probe,
        },
    )
    .await;
    stop_signal(&mut terminate).await;
    for a in &acceptors {
        a.abort();
    }
    for a in acceptors {
        let _ = a.await;
    }
    for m in metrics {
        m.abort();
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

/// Accepts connections until aborted; with `tls`, each connection starts with a TLS handshake.
/// A failed accept is retried after a pause that grows while failures go on (see
/// [`AcceptBackoff`]); connections already accepted are served meanwhile.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, tls: Option<Arc<ReloadableTls>>) {
    let mut backoff = AcceptBackoff::default();
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let failures = backoff.succeeded();
                if failures > 0 {
                    tracing::info!(failures, "accepting connections again");
                }
                let registered = shared.connections.register();
                let _ = stream.set_nodelay(true);
                let endpoint = stream
                    .local_addr()
                    .ok()
                    .map(|local| warren_broker::Endpoint { local, tls: tls.is_some() });
                let accepted =
                    Accepted { peer, at: std::time::Instant::now(), certificate_login: None, endpoint };
                let span = tracing::info_span!("connection", id = tracing::field::Empty, %peer);
                match &tls {
                    None => tokio::spawn(
                        crate::connection::serve(stream, accepted, shared.clone(), registered)
                            .instrument(span),
                    ),
                    Some(tls) => tokio::spawn(
                        serve_tls(stream, accepted, tls.clone(), shared.clone(), registered).instrument(span),
                    ),
                };
            }
            // One client's trouble (it reset the connection before we took it): nothing to wait for.
            Err(e) if is_per_connection(&e) => tracing::debug!(error = %e, "accept failed"),
            Err(e) => {
                let after = backoff.failed(std::time::Instant::now());
                if let Some(not_logged) = after.log {
                    log_accept_failure(&e, after.pause, not_logged);
                }
                tokio::time::sleep(after.pause).await;
            }
        }
    }
}

/// The TLS handshake, then the connection as any other. The handshake counts against the
/// handshake timeout: what it took is not left to the AMQP handshake.
async fn serve_tls(
    stream: tokio::net::TcpStream,
    accepted: Accepted,
    tls: Arc<ReloadableTls>,
    shared: Arc<Shared>,
    registered: crate::connections::Registered,
) {
    let limit = shared.config.handshake_timeout;
    let Some(secured) = crate::tls::handshake(&tls, stream, limit).await else {
        return;
    };
    let accepted = Accepted { certificate_login: secured.certificate_login, ..accepted };
    crate::connection::serve(secured.stream, accepted, shared, registered).await;
}

/// Errors about the one connection being accepted, not about the listener or the process.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused)
}

fn log_accept_failure(e: &std::io::Error, pause: Duration, not_logged: u64) {
    // EMFILE (24), ENFILE (23): the process's or the system's limit on open files.
    let hint = match e.raw_os_error() {
        Some(24) => Some("the process has as many files and sockets open as its limit (ulimit -n) allows"),
        Some(23) => Some("the system has as many files open as it allows"),
        _ => None,
    };
    let retry_ms = pause.as_millis() as u64;
    tracing::warn!(error = %e, hint, not_logged, retry_ms, "accept failed; retrying after a pause");
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
