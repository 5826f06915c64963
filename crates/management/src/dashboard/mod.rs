//! The web dashboard: a single-page app in plain JavaScript modules, embedded in the binary and
//! served beside the API (`/`, `/js/...`, `/css/...`), so it works offline and needs no build
//! step. It talks to the API under `/api` with the user's basic-auth credentials, as RabbitMQ's
//! management UI does. Every asset is answered with its content type, an `ETag` (revalidated
//! with `If-None-Match`), and headers that confine the page to its own origin (a CSP allowing
//! only self, no framing, no sniffing).

mod assets;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub use assets::{Asset, ASSETS};

/// The Content-Security-Policy of every dashboard answer: scripts, styles, images and API calls
/// from this origin only; no inline code, no plugins, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The dashboard's routes, to be merged into the management router (state-agnostic).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route("/favicon.ico", get(|headers: HeaderMap| async move { serve("favicon.svg", &headers) }))
        .route(
            "/{file}",
            get(|Path(file): Path<String>, headers: HeaderMap| async move { serve(&file, &headers) }),
        )
        .route(
            "/js/{*path}",
            get(|Path(p): Path<String>, headers: HeaderMap| async move { serve(&format!("js/{p}"), &headers) }),
        )
        .route(
            "/css/{*path}",
            get(|Path(p): Path<String>, headers: HeaderMap| async move {
                serve(&format!("css/{p}"), &headers)
            }),
        )
}

/// Answers one embedded asset (404 for a path that names none).
fn serve(path: &str, request: &HeaderMap) -> Response {
    let Some(asset) = assets::find(path) else {
        return with_security_headers(
            (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "Not Found")
                .into_response(),
        );
    };
    let etag = asset.etag();
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response =
        if fresh { StatusCode::NOT_MODIFIED.into_response() } else { asset.body.into_response() };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    // Revalidate on every load: the names carry no version, and a new binary must show its own UI.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    with_security_headers(response)
}

fn with_security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}
