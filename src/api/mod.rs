//! The HTTP API (DESIGN.md §3): routes, the middleware stack, and the translation between HTTP
//! and the use cases in [`crate::broker`]. Handlers authenticate with the [`auth::Caller`]
//! extractor and authorise on their first line.

pub mod auth;
mod health;
mod issuances;
mod links;
pub mod problem;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, header};
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::sensitive_headers::SetSensitiveHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::auth::oidc::OidcVerifier;
use crate::auth::rate::RateLimiter;
use crate::broker::Broker;
use crate::config::ApiKeyPrincipal;
use crate::ledger::Ledger;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

/// What the handlers share.
pub struct Inner {
    pub broker: Broker,
    pub principals: Vec<ApiKeyPrincipal>,
    /// Trusted OIDC issuers and their keys.
    pub oidc: Arc<OidcVerifier>,
    /// The per-principal mint rate.
    pub rate: RateLimiter,
    pub ledger: Arc<dyn Ledger>,
    /// The last readiness verdict and when it was taken (see `health::readyz`).
    pub readiness: tokio::sync::Mutex<Option<(std::time::Instant, Result<(), String>)>>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// `req_<process prefix>_<counter>` on every request: unique per process run without a
/// system call per request (request ids correlate logs; they are not secrets).
#[derive(Clone)]
struct MakeId {
    prefix: Arc<str>,
    counter: Arc<std::sync::atomic::AtomicU64>,
}

impl MakeId {
    fn new() -> Self {
        let mut b = [0u8; 4];
        let _ = getrandom::fill(&mut b);
        let prefix = b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        Self {
            prefix: prefix.into(),
            counter: Arc::default(),
        }
    }
}

impl MakeRequestId for MakeId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("req_{}_{n}", self.prefix);
        axum::http::HeaderValue::from_str(&id)
            .ok()
            .map(RequestId::new)
    }
}

/// The path as logged: a broker link's code is a secret, so `/l/<code>` is logged without it.
fn loggable_path(path: &str) -> &str {
    if path.starts_with("/l/") {
        "/l/<code>"
    } else {
        path
    }
}

/// The router with the whole middleware stack, in one visible place. Outermost first: request
/// id, sensitive headers hidden from every later layer's logs, tracing (method, path, status,
/// latency; never headers or bodies), panics turned into an opaque 500, a timeout and a body
/// limit.
pub fn router(state: AppState, timeout: Duration, max_body_bytes: usize) -> Router {
    let api = Router::new()
        .route("/v1/tokens", post(tokens::create))
        .route("/v1/links", post(links::create))
        .route("/l/{code}", get(links::redeem))
        .route("/v1/issuances", get(issuances::list))
        .route("/v1/issuances/lookup", post(issuances::lookup))
        .route("/v1/issuances/{id}", get(issuances::show))
        .route("/v1/issuances/{id}/revoke", post(issuances::revoke))
        .route("/v1/revocations", post(issuances::revoke_bulk))
        .route("/v1/emergency/revoke-policies", post(issuances::emergency))
        .route("/metrics", get(health::metrics))
        .route("/v1/ledger/verify", get(issuances::ledger_verify))
        .route("/v1/ledger/head", get(issuances::ledger_head))
        .route(
            "/v1/emergency/revoke-delegation-keys",
            post(issuances::emergency_keys),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(|| async {
            problem::Problem::new(
                problem::Code::NotFound,
                "no such endpoint; see /openapi.json",
            )
        })
        .with_state(state);
    let stack = ServiceBuilder::new()
        // A client-supplied x-request-id is dropped: ids in our logs are ours.
        .map_request(|mut req: Request<axum::body::Body>| {
            req.headers_mut().remove(&X_REQUEST_ID);
            req
        })
        .layer(SetRequestIdLayer::new(X_REQUEST_ID.clone(), MakeId::new()))
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID.clone()))
        .layer(SetSensitiveHeadersLayer::new([header::AUTHORIZATION, header::COOKIE, header::SET_COOKIE]))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let id = req.headers().get(&X_REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), path = %loggable_path(req.uri().path()), request_id = %id)
                })
                .on_request(())
                .on_response(|res: &axum::http::Response<_>, latency: Duration, _span: &tracing::Span| {
                    tracing::info!(status = res.status().as_u16(), latency_ms = latency.as_secs_f64() * 1000.0, "response");
                }),
        )
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(problem::Problem::server(
                problem::Code::Internal,
                &"a handler panicked",
            ))
        }))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::SERVICE_UNAVAILABLE, timeout));
    api.layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(stack)
}
