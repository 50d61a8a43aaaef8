//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::problem::{Code, Problem};

/// Liveness: the process serves requests.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: the ledger can be read and written, so tokens can be issued.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, Problem> {
    state
        .ledger
        .check()
        .await
        .map_err(|e| Problem::server(Code::LedgerUnavailable, &e))?;
    Ok(Json(json!({"status": "ready", "ledger": "ok"})))
}

/// Prometheus metrics (`src/metrics.rs`), for principals with the `metrics` or `admin` role.
pub async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
    super::auth::Caller(caller): super::auth::Caller,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    if !(caller.is_admin() || caller.roles.iter().any(|r| r == "metrics")) {
        return super::problem::Problem::new(
            super::problem::Code::Forbidden,
            "metrics need the metrics or admin role",
        )
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
        state.broker.metrics.render(&keys),
    )
        .into_response()
}
