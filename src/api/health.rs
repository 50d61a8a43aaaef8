//! Liveness, readiness and metrics.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse as _, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Caller;
use super::problem::{Code, Problem};

/// The liveness answer.
#[derive(Serialize, ToSchema)]
pub struct Live {
    /// Always `ok`.
    #[schema(value_type = String, example = "ok")]
    status: &'static str,
}

/// The readiness answer.
#[derive(Serialize, ToSchema)]
pub struct Ready {
    /// Always `ready`.
    #[schema(value_type = String, example = "ready")]
    status: &'static str,
    /// Always `ok`: the ledger was read and written.
    #[schema(value_type = String, example = "ok")]
    ledger: &'static str,
}

/// Liveness: the process serves requests.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    responses(
        (status = 200, description = "The process serves requests", body = Live),
        (status = 500, response = super::openapi::Internal),
    )
)]
pub async fn healthz() -> Json<Live> {
    Json(Live { status: "ok" })
}

/// Readiness: the ledger can be read and written, so tokens can be issued.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "readyz",
    responses(
        (status = 200, description = "Ready to issue tokens", body = Ready),
        (status = 500, response = super::openapi::Internal),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Ready>, Problem> {
    state
        .ledger
        .check()
        .await
        .map_err(|e| Problem::server(Code::LedgerUnavailable, &e))?;
    Ok(Json(Ready {
        status: "ready",
        ledger: "ok",
    }))
}

/// Prometheus metrics, for principals with the `metrics` or `admin` role.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4",
            content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
        (status = 401, response = super::openapi::Unauthenticated),
        (status = 403, description = "`forbidden`: the principal has neither the `metrics` nor the `admin` role",
            content_type = "application/problem+json", body = Problem),
        (status = 500, response = super::openapi::Internal),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn metrics(State(state): State<AppState>, Caller(caller): Caller) -> Response {
    if !(caller.is_admin() || caller.roles.iter().any(|r| r == "metrics")) {
        return Problem::new(Code::Forbidden, "metrics need the metrics or admin role")
            .into_response();
    }
    let keys: Vec<crate::metrics::KeyFigures> = state
        .broker
        .delegation
        .iter()
        .map(|(account, k)| crate::metrics::KeyFigures {
            account: account.clone(),
            renewals: k.stats.renewals.load(std::sync::atomic::Ordering::Relaxed),
            failures: k.stats.failures.load(std::sync::atomic::Ordering::Relaxed),
            expires_at: k.current_validity().map(|(_, end)| end.timestamp()),
        })
        .collect();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.broker.metrics.render(
            &keys,
            state
                .tls
                .as_ref()
                .map(|t| crate::metrics::TlsFigures {
                    expiry: t.store.current().not_after().map(|at| at.timestamp()),
                    handshake_failures: t
                        .handshakes
                        .failures()
                        .map(|(reason, n)| (reason.label(), n)),
                })
                .as_ref(),
        ),
    )
        .into_response()
}
