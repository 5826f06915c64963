//! The HTTP face of the metrics: `/metrics`, `/metrics/per-object` and `/metrics/detailed`
//! (with RabbitMQ's `family=` and `vhost=` query parameters, each repeatable), as an axum
//! router the server binary serves on its Prometheus listeners.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::collect::{collect, Want};
use super::families::Group;
use super::render::Endpoint;
use super::text::CONTENT_TYPE;
use super::Metrics;

/// The router for the metrics endpoints.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(aggregated))
        .route("/metrics/per-object", get(per_object))
        .route("/metrics/detailed", get(detailed))
        .with_state(metrics)
}

async fn aggregated(State(metrics): State<Arc<Metrics>>) -> Response {
    scrape(metrics, Endpoint::Aggregated, Want::default()).await
}

async fn per_object(State(metrics): State<Arc<Metrics>>) -> Response {
    scrape(metrics, Endpoint::PerObject, Want::default()).await
}

async fn detailed(State(metrics): State<Arc<Metrics>>, RawQuery(query): RawQuery) -> Response {
    let query = DetailedQuery::parse(query.as_deref().unwrap_or(""));
    let want = Want {
        vhosts: query.vhosts,
        exchanges: query.groups.iter().any(|g| matches!(g, Group::ExchangeBindings | Group::ExchangeNames)),
    };
    scrape(metrics, Endpoint::Detailed(query.groups), want).await
}

/// Collects and renders off the async workers: with many queues it takes milliseconds.
async fn scrape(metrics: Arc<Metrics>, endpoint: Endpoint, want: Want) -> Response {
    let rendered = tokio::task::spawn_blocking(move || {
        let snapshot = collect(&metrics.broker, &*metrics.node, &want);
        metrics.render(snapshot, &endpoint)
    })
    .await;
    match rendered {
        Ok(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(error) => {
            tracing::error!(%error, "rendering metrics failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "rendering metrics failed\n").into_response()
        }
    }
}

/// `/metrics/detailed`'s query: `family=` groups (unknown names are ignored, as RabbitMQ
/// does) and `vhost=` filters on queue groups.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct DetailedQuery {
    /// Groups asked for, in the order they are written.
    pub(crate) groups: Vec<Group>,
    /// Vhosts asked for; None: all.
    pub(crate) vhosts: Option<HashSet<String>>,
}

impl DetailedQuery {
    pub(crate) fn parse(query: &str) -> DetailedQuery {
        let mut asked = HashSet::new();
        let mut vhosts: Option<HashSet<String>> = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value);
            match percent_decode(key).as_str() {
                "family" => {
                    if let Some(group) = Group::from_table(&value) {
                        asked.insert(group);
                    }
                }
                "vhost" => {
                    vhosts.get_or_insert_with(HashSet::new).insert(value);
                }
                _ => {}
            }
        }
        let groups = Group::ALL.into_iter().filter(|g| asked.contains(g)).collect();
        DetailedQuery { groups, vhosts }
    }
}

/// Decodes `%XX` escapes and `+` (a space in a query); malformed escapes stay as they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_vhosts_come_from_repeated_parameters() {
        let q = DetailedQuery::parse(
            "family=queue_coarse_metrics&family=connection_churn_metrics&family=nonsense&vhost=%2F&vhost=a+b",
        );
        assert_eq!(q.groups, [Group::ConnectionChurn, Group::QueueCoarse]);
        let vhosts = q.vhosts.unwrap();
        assert!(vhosts.contains("/") && vhosts.contains("a b") && vhosts.len() == 2);
        assert_eq!(DetailedQuery::parse(""), DetailedQuery::default());
    }

    #[test]
    fn malformed_escapes_stay() {
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%2"), "%zz%2");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }
}
