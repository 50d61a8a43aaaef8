//! The HTTP API (DESIGN.md §3): routes, the middleware stack, and the translation between HTTP
//! and the use cases in [`crate::broker`]. Handlers authenticate with the [`auth::Caller`]
//! extractor and authorise on their first line.

pub mod auth;
mod health;
mod issuances;
mod links;
mod lint;
pub mod openapi;
pub mod problem;
pub(crate) mod tokens;

use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, header};
use axum::{Extension, Router};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::sensitive_headers::SetSensitiveHeadersLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
    /// When sasgate serves HTTPS: the certificate in service (for its expiry metric) and the
    /// TLS handshake failure counters.
    pub tls: Option<crate::tls::TlsState>,
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

/// Every route. `routes!` takes each path and method from the handler's `#[utoipa::path]`
/// annotation and adds the operation to the document, so a route cannot exist undocumented.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(tokens::create))
        .routes(routes!(links::create))
        .routes(routes!(links::redeem))
        .routes(routes!(issuances::list))
        .routes(routes!(issuances::lookup))
        .routes(routes!(lint::lint))
        .routes(routes!(issuances::show))
        .routes(routes!(issuances::revoke))
        .routes(routes!(issuances::revoke_bulk))
        .routes(routes!(issuances::emergency))
        .routes(routes!(issuances::emergency_keys))
        .routes(routes!(issuances::ledger_verify))
        .routes(routes!(issuances::ledger_head))
        .routes(routes!(health::metrics))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(openapi::serve))
}

/// The OpenAPI document of [`router`], as served at `GET /openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    split().1
}

/// The routes and their finished document.
fn split() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, mut document) = routes().split_for_parts();
    openapi::every_operation_can_time_out(&mut document);
    (routes, document)
}

/// The router with the whole middleware stack, in one visible place. Outermost first: request
/// id, sensitive headers hidden from every later layer's logs, tracing (method, path, status,
/// latency; never headers or bodies), panics turned into an opaque 500, a timeout and a body
/// limit.
pub fn router(state: AppState, timeout: Duration, max_body_bytes: usize) -> Router {
    let (api, document) = split();
    let api = api
        .merge(crate::web::router(&state))
        .layer(Extension(openapi::Document::new(&document)))
        .fallback(|| async {
            problem::Problem::new(
                problem::Code::NotFound,
                "no such endpoint; see /openapi.json",
            )
        })
        .method_not_allowed_fallback(|| async {
            problem::Problem::new(
                problem::Code::MethodNotAllowed,
                "this endpoint does not take that method; see /openapi.json",
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
        // A request over `server.request_timeout` is cut off with a problem document. What it
        // had committed stays committed (a mint whose record was written but whose answer was
        // cut off leaves a record without a delivered token, never the reverse).
        .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
            problem::Problem::server(problem::Code::RequestTimeout, &"the request took longer than server.request_timeout")
        }))
        .layer(tower::timeout::TimeoutLayer::new(timeout));
    api.layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(stack)
}
