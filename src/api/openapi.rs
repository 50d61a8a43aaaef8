//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! annotations (DESIGN.md §3). `routes()` in `src/api/mod.rs` registers every route through
//! utoipa-axum's `routes!`, which takes the path and method from the annotation, so a route
//! cannot be served without being documented. The document is built once, when the router is,
//! and served as bytes at `GET /openapi.json`.
//!
//! The `Code` enum of the `Problem` schema is derived from [`Code`], so it lists every code;
//! `tests/openapi.rs` keeps the committed snapshot (`tests/snapshots/openapi.json`) in step.

use axum::Extension;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToResponse};

use super::problem::{Code, Problem};

/// The name of the bearer security scheme in the document.
pub const BEARER: &str = "bearer";

/// Problem documents' media type.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The parts of the document that no handler annotation carries: info, tags, the security
/// scheme and the reusable responses.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "sasgate",
        description = "Issues short-lived, scoped Azure Storage SAS tokens from policy and records every issuance. \
Errors are `application/problem+json` documents with a stable `code`. \
Authenticate with `Authorization: Bearer <credential>`: a sasgate API key (`sgk_…`) or an OIDC ID token \
from a configured issuer.",
    ),
    modifiers(&BearerScheme),
    components(responses(Unauthenticated, PayloadTooLarge, RateLimited, Unavailable, Internal)),
    tags(
        (name = "tokens", description = "Minting SAS tokens"),
        (name = "links", description = "Broker download links"),
        (name = "issuances", description = "The issuance record: listing, lookup of a leaked SAS"),
        (name = "revocation", description = "Revoking issuances, and the emergency stops"),
        (name = "ledger", description = "The tamper-evident ledger"),
        (name = "operations", description = "Health, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// Adds the `bearer` security scheme: an API key or an OIDC ID token.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A sasgate API key (`sgk_…`; only its SHA-256 is configured) or an OIDC ID \
                         token (a JWT) from an issuer in `[[auth.oidc]]`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// No credential, or one that is not valid: `unauthenticated`, or for an OIDC token the check
/// that failed (`malformed_token`, `algorithm_not_allowed`, `untrusted_issuer`,
/// `unknown_signing_key`, `bad_signature`, `token_expired`, `token_not_yet_valid`,
/// `wrong_audience`, `missing_claim`).
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("WWW-Authenticate" = String, description = "Always `Bearer`"))
)]
#[allow(dead_code)] // documentation only
pub struct Unauthenticated(Problem);

/// The request body is larger than `server.max_body_bytes` (`payload_too_large`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)] // documentation only
pub struct PayloadTooLarge(Problem);

/// The principal has minted too often (`rate_limited`; `limits.mint_rate_per_minute`,
/// `limits.mint_burst`).
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("Retry-After" = u32, description = "Seconds until a retry can succeed"))
)]
#[allow(dead_code)] // documentation only
pub struct RateLimited(Problem);

/// A dependency is unavailable and nothing was done: `ledger_unavailable`,
/// `stored_policy_unavailable`, `signing_unavailable`, `azure_unavailable` or
/// `oidc_unavailable`; or the request took longer than `server.request_timeout`
/// (`request_timeout`, possible on every operation). The problem carries an `error_id` to quote.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))
)]
#[allow(dead_code)] // documentation only
pub struct Unavailable(Problem);

/// An unexpected failure (`internal`); the problem carries only an `error_id` to quote.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)] // documentation only
pub struct Internal(Problem);

/// Every operation can answer 503 `request_timeout` (the timeout layer wraps them all): adds the
/// shared `Unavailable` response where an operation does not list a 503 of its own.
pub fn every_operation_can_time_out(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{Ref, RefOr};
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            operation
                .responses
                .responses
                .entry("503".to_owned())
                .or_insert_with(|| RefOr::Ref(Ref::from_response_name("Unavailable")));
        }
    }
}

/// The document as served, built once with the router.
#[derive(Clone)]
pub struct Document(Bytes);

impl Document {
    /// Serialises `openapi`. Serialising a document cannot fail in practice; if it did, the
    /// endpoint answers 500 and the log says why, rather than the server refusing to start.
    pub fn new(openapi: &utoipa::openapi::OpenApi) -> Self {
        match serde_json::to_vec(openapi) {
            Ok(bytes) => Self(Bytes::from(bytes)),
            Err(e) => {
                tracing::error!(error = %e, "the OpenAPI document could not be serialised");
                Self(Bytes::new())
            }
        }
    }
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    responses(
        (status = 200, description = "This document", content_type = "application/json",
            body = Object),
        (status = 500, response = Internal),
    )
)]
pub async fn serve(Extension(document): Extension<Document>) -> Response {
    if document.0.is_empty() {
        return Problem::server(Code::Internal, &"the OpenAPI document is unavailable")
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        document.0,
    )
        .into_response()
}
