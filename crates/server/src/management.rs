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
    let mut listeners = amqp;
    listeners.extend(listen.http.iter().map(|a| ("http".to_owned(), *a)));
    listeners.extend(listen.https.iter().map(|a| ("https".to_owned(), *a)));
    let node = NodeInfo {
        name: node_name.to_owned(),
        product_name: product.to_owned(),
        product_version: env!("CARGO_PKG_VERSION").to_owned(),
        listeners,
        started_at: std::time::Instant::now(),
    };
    let mut ctx = ApiContext::new(broker.clone(), node);
    ctx.health = Arc::new(WatchedAlarms(status.alarms));
    ctx.rates = Arc::new(rates::Rates::new(status.stats_interval));
    rates::spawn_sampler(ctx.rates.clone(), broker);
    let ctx = Arc::new(ctx);
    let server = HttpServer::new(api::router(ctx), status.header_timeout);
    let plain = listen.http.iter().map(|a| (a, None, "http"));
    let secured =
        listen.tls.iter().flat_map(|tls| listen.https.iter().map(move |a| (a, Some(tls.clone()), "https")));
    for (addr, tls, scheme) in plain.chain(secured) {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                // The bound address: with port 0 the system picked it (tests read it here).
                let address = listener.local_addr().unwrap_or(*addr);
                tracing::info!(%address, "management API and dashboard listening ({scheme})");
                tokio::spawn(server.clone().serve(listener, tls));
            }
            Err(error) => {
                tracing::error!(address = %addr, %error, "cannot listen for the management API ({scheme})")
            }
        }
    }
}
