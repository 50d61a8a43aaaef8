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
