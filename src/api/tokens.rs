//! `POST /v1/tokens`.

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::auth::Caller;
use super::problem::{Code, Problem};
use crate::broker::{FromJson as _, MintError, MintRequest};

// The body of `POST /v1/tokens`, for the document only: the handler parses with
// `crate::broker::FromJson`, which gives account-wide requests their own refusal
// (`account_scope_forbidden`) rather than "unknown field".
/// A mint request. Unknown fields are refused; account-wide requests (`ss`, `srt`, no
/// container, wildcards) are refused with `account_scope_forbidden`.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documentation only
pub struct MintBody {
    /// The storage account, as configured in `[[accounts]]`.
    #[schema(min_length = 1, example = "devstoreaccount1")]
    account: String,
    /// One container; wildcards and account-wide requests are refused.
    #[schema(min_length = 1, example = "models")]
    container: String,
    /// One blob; leave it out for a container SAS (`sr=c`), where a rule allows that scope.
    #[schema(min_length = 1, example = "published/model.bin")]
    blob: Option<String>,
    /// Azure permission letters, in any order; default `r`.
    #[schema(min_length = 1, example = "r")]
    permissions: Option<String>,
    /// The lifetime; default the rule's default.
    ttl: Option<Ttl>,
    /// Restrict the SAS to an address or range (`sip`), e.g. `203.0.113.0/24`.
    #[schema(example = "203.0.113.0/24")]
    ip: Option<String>,
    /// Why the token is needed; recorded, and required by some rules.
    #[schema(max_length = 500, example = "paper reproduction")]
    reason: Option<String>,
}

/// A lifetime, for the document only: a duration (`90s`, `15m`, `1h`, `1d`) or a whole number
/// of seconds ([`crate::broker::parse_ttl`]).
pub struct Ttl;

impl utoipa::PartialSchema for Ttl {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .description(Some(
                "A duration (`90s`, `15m`, `1h`, `1d`) or a whole number of seconds",
            ))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[0-9]+[smhd]$"))
                    .examples(["15m"]),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(315_359_999)),
            )
            .into()
    }
}

impl utoipa::ToSchema for Ttl {}

/// Mints a SAS for the caller (any principal), if policy allows.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    tag = "tokens",
    operation_id = "mint_token",
    security(("bearer" = [])),
    request_body(content = MintBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The token, and the id of its issuance record. The URL and \
            `sas` are secrets: they are shown once and never stored.", body = crate::broker::Minted,
            headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 400, description = "The request cannot be read: `invalid_request`, \
            `invalid_name` or `unknown_account`", body = Problem, content_type = "application/problem+json"),
        (status = 401, response = super::openapi::Unauthenticated),
        (status = 403, description = "Refused. Account-wide requests: `account_scope_forbidden`. \
            By policy: `no_matching_rule`, `scope_not_allowed`, `permission_not_allowed`, \
            `ttl_exceeds_policy`, `reason_required`, `ip_required`, with one reason per rule \
            considered; `link_required` when the rule issues broker links only (use POST /v1/links)",
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
        return Problem::new(
            Code::PayloadTooLarge,
            "the request body is too large; a mint request is a small JSON object",
        )
        .into_response();
    };
    let now = chrono::Utc::now();
    if let Err(problem) = rate_limit(&state, &principal, now) {
        return problem.into_response();
    }
    let client = Some(peer.ip().to_string());
    let request = serde_json::from_slice::<serde_json::Value>(&body)
        .map_err(|_| MintError::InvalidRequest("the body must be JSON, for example {\"account\": \"…\", \"container\": \"…\", \"blob\": \"…\"}".into()))
        .and_then(|v| MintRequest::from_json(&v));
    let result = state.broker.mint(&principal, request, now, client).await;
    count(&state, result.as_ref().map(|m| m.rule.as_str()));
    match result {
        Ok(minted) => {
            let mut response = (StatusCode::CREATED, axum::Json(minted)).into_response();
            // The body holds a secret: no cache may keep it.
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => for_caller(problem_of(e), &principal).into_response(),
    }
}

/// Counts a mint (token or link) for `/metrics`: issued under its rule, or refused with its
/// code (a server-side failure counts as `error`).
pub fn count(state: &AppState, result: Result<&str, &MintError>) {
    let m = &state.broker.metrics;
    match result {
        Ok(rule) => m.mint(Some(rule), "issued"),
        Err(
            e @ (MintError::Ledger(_)
            | MintError::StoredPolicy(_)
            | MintError::SigningUnavailable(_)),
        ) => {
            m.mint(None, "error");
            m.denial(e.code());
        }
        Err(e) => {
            m.mint(None, "denied");
            m.denial(e.code());
        }
    }
}

/// A refusal as the caller may see it. An OIDC caller gets no per-rule reasons: anyone can
/// obtain a token from a public CI issuer, and the reasons would spell out the claim values
/// other teams' rules require. The reasons stay in the denial log (and `sasgate policy explain`).
pub fn for_caller(mut p: Problem, principal: &crate::auth::Principal) -> Problem {
    if principal.oidc.is_some() && !p.reasons.is_empty() {
        p.reasons = Box::default();
        p.detail
            .push_str(" (the reasons per rule are in the denial log; an admin can look them up)");
    }
    p
}

/// Takes one mint from the caller's bucket, or refuses with 429 and `Retry-After`.
pub fn rate_limit(
    state: &AppState,
    principal: &crate::auth::Principal,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Problem> {
    state
        .rate
        .take(&principal.ledger_name(), now)
        .map_err(|seconds| {
            tracing::warn!(principal = %principal.name, retry_after = seconds, "mint rate limit reached");
            let mut p = Problem::new(
                Code::RateLimited,
                format!(
                    "this principal has minted too many tokens in a short time; retry in {seconds} s (limits.mint_rate_per_minute, limits.mint_burst)"
                ),
            );
            p.retry_after = Some(u32::try_from(seconds).unwrap_or(u32::MAX));
            p
        })
}

/// The one mapping from mint errors to problems.
pub fn problem_of(e: MintError) -> Problem {
    use crate::policy::DenyCode;
    match e {
        MintError::AccountScope(m) => Problem::new(Code::AccountScopeForbidden, m),
        MintError::InvalidRequest(m) => Problem::new(Code::InvalidRequest, m),
        MintError::InvalidName(m) => Problem::new(Code::InvalidName, m),
        MintError::UnknownAccount(m) => Problem::new(Code::UnknownAccount, m),
        MintError::Sign(s) => Problem::new(Code::InvalidRequest, s.to_string()),
        MintError::Denied(d) => {
            let code = match d.code {
                DenyCode::NoMatchingRule => Code::NoMatchingRule,
                DenyCode::ScopeNotAllowed => Code::ScopeNotAllowed,
                DenyCode::PermissionNotAllowed => Code::PermissionNotAllowed,
                DenyCode::TtlExceedsPolicy => Code::TtlExceedsPolicy,
                DenyCode::ReasonRequired => Code::ReasonRequired,
                DenyCode::IpRequired => Code::IpRequired,
            };
            let reasons = d
                .reasons
                .iter()
                .map(|r| format!("{}: {}", r.rule_id, r.reason))
                .collect();
            Problem::new(code, d.message).with_reasons(reasons)
        }
        MintError::Ledger(l) => Problem::server(Code::LedgerUnavailable, &l),
        MintError::LinkRequired(m) => Problem::new(Code::LinkRequired, m),
        MintError::StoredPolicy(p) => Problem::server(Code::StoredPolicyUnavailable, &p),
        MintError::SigningUnavailable(m) => Problem::server(Code::SigningUnavailable, &m),
    }
}
