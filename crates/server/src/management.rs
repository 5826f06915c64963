//! Serves the management HTTP API (and, with it, the dashboard) on its listeners. An address
//! that cannot be bound is logged and skipped: the broker's clients come first.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use warren_broker::Broker;
use warren_management::api::{self, rates, ApiContext, NodeHealth, NodeInfo};

use crate::alarms::Alarms;
use crate::http_server::HttpServer;
use crate::tls::ReloadableTls;

/// What the management API reads from the server besides the broker.
pub struct Status {
    /// The resource alarms.
    pub alarms: watch::Receiver<Alarms>,
    /// How often rates are sampled.
    pub stats_interval: std::time::Duration,
    /// How long a request's headers may take to arrive.
    pub header_timeout: std::time::Duration,
    /// The node's memory, disk and file descriptors (what the metrics read too).
    pub node_stats: Arc<dyn warren_management::metrics::NodeSource>,
}

/// The server's alarms, as the health checks read them.
struct WatchedAlarms(watch::Receiver<Alarms>);

impl NodeHealth for WatchedAlarms {
    fn alarms(&self) -> Vec<&'static str> {
        let alarms = *self.0.borrow();
        let mut on = Vec::new();
        if alarms.disk || alarms.write_fault {
            on.push("disk");
        }
        if alarms.memory {
            on.push("memory");
        }
        on
    }
}

/// Where the management API is served: plain (http) and, with the [tls] settings, https.
pub struct Listen<'a> {
    pub http: &'a [SocketAddr],
    pub https: &'a [SocketAddr],
    pub tls: Option<Arc<ReloadableTls>>,
}

/// Binds the management listeners and serves them until the runtime stops.
pub async fn spawn(
    listen: Listen<'_>,
    node_name: &str,
    product: &str,
    broker: Arc<Broker>,
    amqp: Vec<(String, SocketAddr)>,
    status: Status,
) {
    if listen.http.is_empty() && listen.https.is_empty() {
        return;
    }
    // Bound first, so the API lists the addresses it really serves (port 0: the system's pick).
    let plain = listen.http.iter().map(|a| (a, None, "http"));
    let secured =
        listen.tls.iter().flat_map(|tls| listen.https.iter().map(move |a| (a, Some(tls.clone()), "https")));
    let mut bound = Vec::new();
    for (addr, tls, scheme) in plain.chain(secured) {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                let address = listener.local_addr().unwrap_or(*addr);
                tracing::info!(%address, "management API and dashboard listening ({scheme})");
                bound.push((listener, tls, scheme, address));
            }
            Err(error) => {
                tracing::error!(address = %addr, %error, "cannot listen for the management API ({scheme})")
            }
        }
    }
    let mut listeners = amqp;
    listeners.extend(bound.iter().map(|(_, _, scheme, address)| (scheme.to_string(), *address)));
    let node = NodeInfo {
        name: node_name.to_owned(),
        product_name: product.to_owned(),
        product_version: env!("CARGO_PKG_VERSION").to_owned(),
        listeners,
        started_at: std::time::Instant::now(),
    };
    let mut ctx = ApiContext::new(broker.clone(), node);
    ctx.health = Arc::new(WatchedAlarms(status.alarms));
    ctx.node_stats = status.node_stats;
    ctx.rates = Arc::new(rates::Rates::new(status.stats_interval));
    rates::spawn_sampler(ctx.rates.clone(), broker);
    let server = HttpServer::new(api::router(Arc::new(ctx)), status.header_timeout);
    for (listener, tls, _, _) in bound {
        tokio::spawn(server.clone().serve(listener, tls));
    }
}
