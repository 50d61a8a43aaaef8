//! `POST /v1/lint`: grade a SAS URL (DESIGN.md §3, §7), the HTTP face of `sasgate lint`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use serde::Deserialize;

use super::auth::Caller;
use super::problem::{Code, Problem};
use crate::sas::lint::{Report, lint as grade};

/// A SAS to grade: a full URL, or its query string.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LintBody {
    /// The SAS URL or query string. It is parsed and graded, never logged or stored.
    #[schema(
        example = "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sr=b&sp=r&se=2030-01-01T00:00:00Z&spr=https&sig=…"
    )]
    pub url: String,
}

/// Grades a SAS: what it reaches, for how long, and how it could be revoked.
///
/// Any authenticated principal may ask. The answer holds the decoded parameters without `sig`,
/// and one finding per problem with a stable `code` and a severity.
#[utoipa::path(
    post,
    path = "/v1/lint",
    tag = "issuances",
    operation_id = "lint",
    security(("bearer" = [])),
    request_body(content = LintBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The grade of the SAS; `worst` is its worst finding", body = Report),
        (status = 400, description = "`invalid_request`: the body is not `{\"url\": …}`, or the \
            text is not a SAS", body = Problem, content_type = "application/problem+json"),
        (status = 401, response = super::openapi::Unauthenticated),
        (status = 413, response = super::openapi::PayloadTooLarge),
        (status = 500, response = super::openapi::Internal),
    )
)]
pub async fn lint(
    Caller(_caller): Caller,
    body: Result<Json<LintBody>, JsonRejection>,
) -> Result<Json<Report>, Problem> {
    let Json(body) = body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(Code::PayloadTooLarge, "the request body is too large")
        } else {
            Problem::new(
                Code::InvalidRequest,
                "send {\"url\": \"<a SAS URL or query string>\"}",
            )
        }
    })?;
    let parsed = crate::sas::parse::parse(&body.url)
        .map_err(|e| Problem::new(Code::InvalidRequest, format!("not a SAS: {e}")))?;
    Ok(Json(grade(&parsed, chrono::Utc::now())))
}
