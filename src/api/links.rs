//! `POST /v1/links` and `GET /l/{code}` (broker links).

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::auth::Caller;
use super::problem::{Code, Problem};
use super::tokens::problem_of;
use crate::broker::{FromJson as _, MintError, MintRequest, Redeemed};
use crate::ledger::GoneReason;

// The body of `POST /v1/links`, for the document only (see `super::tokens::MintBody`); written
// out rather than flattened, because `additionalProperties: false` does not compose with allOf.
/// A broker link request: the mint request plus `uses`. Unknown fields are refused.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documentation only
pub struct LinkBody {
    /// The storage account, as configured in `[[accounts]]`.
    #[schema(min_length = 1, example = "devstoreaccount1")]
    account: String,
    /// One container.
    #[schema(min_length = 1, example = "shared")]
    container: String,
    /// One blob; leave it out for a container link, where a rule allows that scope.
    #[schema(min_length = 1, example = "paper.txt")]
    blob: Option<String>,
    /// Azure permission letters; default `r`.
    #[schema(min_length = 1, example = "r")]
    permissions: Option<String>,
    /// How long the link lives; default the rule's default.
    ttl: Option<super::tokens::Ttl>,
    /// Restrict each minted SAS to an address or range (`sip`).
    ip: Option<String>,
    /// Why the link is needed; recorded, and required by some rules.
    #[schema(max_length = 500)]
    reason: Option<String>,
    /// How many redemptions the link allows; unlimited within its lifetime if absent.
    #[schema(minimum = 1, maximum = 1000)]
    uses: Option<u32>,
}

/// Creates a broker link (same body as `POST /v1/tokens`, plus optional `uses`).
#[utoipa::path(
    post,
    path = "/v1/links",
    tag = "links",
    operation_id = "create_link",
    security(("bearer" = [])),
    request_body(content = LinkBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The link. It is a secret: shown once, and only its hash is \
            stored.", body = crate::broker::CreatedLink,
            headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 400, description = "The request cannot be read: `invalid_request`, \
            `invalid_name` or `unknown_account`", body = Problem, content_type = "application/problem+json"),
        (status = 401, response = super::openapi::Unauthenticated),
        (status = 403, description = "Refused: `account_scope_forbidden`, or by policy \
            (`no_matching_rule`, `scope_not_allowed`, `permission_not_allowed`, \
            `ttl_exceeds_policy`, `reason_required`, `ip_required`) with one reason per rule considered",
            body = Problem, content_type = "application/problem+json"),
        (status = 413, response = super::openapi::PayloadTooLarge),
        (status = 429, response = super::openapi::RateLimited),
        (status = 500, response = super::openapi::Internal),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Caller(principal): Caller,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let Ok(body) = body else {
        return Problem::new(Code::PayloadTooLarge, "the request body is too large")
            .into_response();
    };
    let now = chrono::Utc::now();
    if let Err(problem) = super::tokens::rate_limit(&state, &principal, now) {
        return problem.into_response();
    }
    let client = Some(peer.ip().to_string());
    let parsed = serde_json::from_slice::<serde_json::Value>(&body)
        .map_err(|_| MintError::InvalidRequest("the body must be JSON".into()))
        .and_then(|mut v| {
            let uses = match v.as_object_mut().and_then(|o| o.remove("uses")) {
                None | Some(serde_json::Value::Null) => None,
                Some(u) => Some(u.as_u64().and_then(|u| u32::try_from(u).ok()).ok_or_else(
                    || MintError::InvalidRequest("uses: a whole number of redemptions".into()),
                )?),
            };
            Ok((MintRequest::from_json(&v)?, uses))
        });
    let (request, uses) = match parsed {
        Ok((req, uses)) => (Ok(req), uses),
        Err(e) => (Err(e), None),
    };
    let result = state
        .broker
        .link(&principal, request, uses, now, client)
        .await;
    super::tokens::count(&state, result.as_ref().map(|l| l.rule.as_str()));
    match result {
        Ok(link) => {
            let mut response = (StatusCode::CREATED, axum::Json(link)).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => super::tokens::for_caller(problem_of(e), &principal).into_response(),
    }
}

/// Redeems a broker link.
///
/// 302 to a fresh SAS of at most 5 minutes, or 410 when the link is revoked, expired or used up.
/// Anyone holding the link may call it; every call is recorded. `HEAD` is a redemption too (it
/// must mint to give a `Location`).
#[utoipa::path(
    get,
    path = "/l/{code}",
    tag = "links",
    operation_id = "redeem_link",
    params(("code" = String, Path, description = "The link's code (a secret)")),
    responses(
        (status = 302, description = "Redirect to a fresh SAS URL of at most 5 minutes (a secret)",
            headers(
                ("Location" = String, description = "The SAS URL"),
                ("Cache-Control" = String, description = "`no-store`"),
                ("Referrer-Policy" = String, description = "`no-referrer`"),
            )),
        (status = 404, description = "`not_found`: no such link", body = Problem,
            content_type = "application/problem+json"),
        (status = 410, description = "`link_gone`: the link was revoked, has expired or is used up",
            body = Problem, content_type = "application/problem+json"),
        (status = 500, response = super::openapi::Internal),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn redeem(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(code): Path<String>,
    headers: HeaderMap,
) -> Response {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match state
        .broker
        .redeem_link(
            &code,
            chrono::Utc::now(),
            Some(peer.ip().to_string()),
            agent,
        )
        .await
    {
        Ok(Some(Redeemed::Redirect(url))) => {
            let Ok(location) = HeaderValue::from_str(&url) else {
                return Problem::server(Code::Internal, &"the SAS URL is not a header value")
                    .into_response();
            };
            let mut response = StatusCode::FOUND.into_response();
            let h = response.headers_mut();
            h.insert(header::LOCATION, location);
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            response
        }
        Ok(Some(Redeemed::Gone(reason))) => {
            let detail = match reason {
                GoneReason::Revoked => "this link was revoked; ask its owner for a new one",
                GoneReason::Expired => "this link has expired; ask its owner for a new one",
                GoneReason::UsedUp => "this link has been used as many times as it allows",
                GoneReason::Unknown => "no such link",
            };
            Problem::new(Code::LinkGone, detail).into_response()
        }
        Ok(None) => Problem::new(Code::NotFound, "no such link").into_response(),
        Err(e) => super::tokens::problem_of(e).into_response(),
    }
}
