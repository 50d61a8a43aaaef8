//! `GET /v1/issuances` (admins) and `GET /v1/issuances/{id}` (admins, or the principal that got
//! it).

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::Caller;
use super::problem::{Code, Problem};
use crate::ledger::{IssuanceRecord, LedgerError, ListFilter, Status};

/// Query parameters of the listing. Unknown parameters are refused.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this principal's issuances (`user:alice`, `oidc:<issuer>#<subject>`).
    principal: Option<String>,
    /// Only this storage account.
    account: Option<String>,
    /// Only this container.
    container: Option<String>,
    /// Only issuances with this status as of now.
    #[param(inline)]
    status: Option<Status>,
    /// Issued at or after (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Issued before (RFC 3339).
    until: Option<DateTime<Utc>>,
    /// Page size, 1 to 1000; default 50.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// An issuance as shown to callers, with its status as of now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IssuanceView {
    #[serde(flatten)]
    record: IssuanceRecord,
    /// `active`, `expired` or `revoked`, as of the response.
    current_status: Status,
}

fn view(record: IssuanceRecord, now: DateTime<Utc>) -> IssuanceView {
    IssuanceView {
        current_status: record.status_at(now),
        record,
    }
}

/// The listing page.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ListResponse {
    /// Newest first.
    items: Vec<IssuanceView>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// Lists issuances, newest first (admins).
#[utoipa::path(
    get,
    path = "/v1/issuances",
    tag = "issuances",
    operation_id = "list_issuances",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "One page of issuances", body = ListResponse),
        (status = 400, description = "`invalid_request`: an unknown or malformed filter, a limit \
            outside 1 to 1000, or a cursor this server did not return", body = Problem,
            content_type = "application/problem+json"),
        (status = 401, response = super::openapi::Unauthenticated),
        (status = 403, description = "`forbidden`: listing needs the admin role", body = Problem,
            content_type = "application/problem+json"),
        (status = 500, response = super::openapi::Internal),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ListResponse>, Problem> {
    if !caller.is_admin() {
        return Err(Problem::new(
            Code::Forbidden,
            "listing issuances needs the admin role",
        ));
    }
    let Query(q) = query.map_err(|e| {
        Problem::new(
            Code::InvalidRequest,
            format!("bad query: {}; filters are principal, account, container, status (active|expired|revoked), since, until (RFC 3339), limit (1-1000), cursor", e.body_text()),
        )
    })?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::new(
            Code::InvalidRequest,
            "limit must be between 1 and 1000",
        ));
    }
    let filter = ListFilter {
        principal: q.principal,
        account: q.account,
        container: q.container,
        status: q.status,
        since: q.since,
        until: q.until,
    };
    let now = Utc::now();
    let page = state
        .ledger
        .list(&filter, now, limit, q.cursor.as_deref())
        .await
        .map_err(|e| match e {
            LedgerError::InvalidCursor => Problem::new(
                Code::InvalidRequest,
                "the cursor is not one this server returned; start again without it",
            ),
            other => Problem::server(Code::LedgerUnavailable, &other),
        })?;
    Ok(Json(ListResponse {
        items: page.items.into_iter().map(|r| view(r, now)).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One issuance (admins, or the principal that got it).
#[utoipa::path(
    get,
    path = "/v1/issuances/{id}",
    tag = "issuances",
    operation_id = "show_issuance",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The issuance id (`iss_…`)")),
    responses(
        (status = 200, description = "The issuance", body = IssuanceView),
        (status = 401, response = super::openapi::Unauthenticated),
        (status = 404, description = "`not_found`: no issuance with that id is visible to the \
            caller (another principal's issuance answers the same)", body = Problem,
            content_type = "application/problem+json"),
        (status = 500, response = super::openapi::Internal),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<IssuanceView>, Problem> {
    let not_found = || Problem::new(Code::NotFound, "no issuance with that id is visible to you");
    let record = state
        .ledger
        .get(&id)
        .await
        .map_err(|e| Problem::server(Code::LedgerUnavailable, &e))?
        .ok_or_else(not_found)?;
    // Another principal's issuance answers as if it did not exist.
    if !caller.is_admin() && record.principal != caller.ledger_name() {
        return Err(not_found());
    }
    Ok(Json(view(record, Utc::now())))
}

/// Body of `POST /v1/issuances/lookup`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupBody {
    /// A SAS URL or query string, e.g. one found leaked in a repository or a chat.
    url: String,
}

/// What a lookup found: the issuance, and what revoking it would take.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LookupResponse {
    #[serde(flatten)]
    issuance: IssuanceView,
    /// How to revoke it (`POST /v1/issuances/{id}/revoke`), or why that would not stop it.
    revoke: String,
}

/// Finds the issuance behind a leaked SAS or broker link (admins).
///
/// By the SHA-256 of its signature. The URL is parsed, never logged or stored.
#[utoipa::path(
    post,
    path = "/v1/issuances/lookup",
    tag = "issuances",
    operation_id = "lookup_issuance",
    security(("bearer" = [])),
    request_body(content = LookupBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The issuance behind the SAS or broker link", body = LookupResponse),
        (status = 400, description = "`invalid_request`: the body is not `{\"url\": …}`, or the \
            text is neither a SAS nor a broker link", body = Problem,
            content_type = "application/problem+json"),
        (status = 401, response = super::openapi::Unauthenticated),
        (status = 403, description = "`forbidden`: lookup needs the admin role", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: sasgate did not issue a SAS with this signature",
            body = Problem, content_type = "application/problem+json"),
        (status = 500, response = super::openapi::Internal),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn lookup(
    State(state): State<AppState>,
    Caller(caller): Caller,
    body: Result<Json<LookupBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<LookupResponse>, Problem> {
    let body = admin_body(
        &caller,
        "looking up issuances needs the admin role",
        body,
        "send {\"url\": \"<the SAS URL or query string>\"}",
    )?;
    let record = state
        .broker
        .lookup(&body.url)
        .await
        .map_err(|e| match e {
            crate::broker::LookupError::NotASas(m) => Problem::new(Code::InvalidRequest, m),
            crate::broker::LookupError::Ledger(e) => Problem::server(Code::LedgerUnavailable, &e),
        })?
        .ok_or_else(|| {
            Problem::new(
                Code::NotFound,
                "no issuance has this signature: sasgate did not issue it (it may have been signed with the account key elsewhere; rotate the key to stop it)",
            )
        })?;
    let revoke = format!(
        "POST /v1/issuances/{}/revoke with {{\"reason\": \"…\"}} (sasgate revoke {} --reason …)",
        record.id, record.id
    );
    Ok(Json(LookupResponse {
        issuance: view(record, Utc::now()),
        revoke,
    }))
}

/// Body of `POST /v1/issuances/{id}/revoke`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    /// Why it is revoked: 1 to 500 characters, no control characters.
    #[schema(max_length = 500, example = "leaked in a public repository")]
    reason: String,
}

/// Revokes one issuance (admins) and says what that achieved.
#[utoipa::path(
    post,
    path = "/v1/issuances/{id}/revoke",
    tag = "revocation",
    operation_id = "revoke_issuance",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The issuance id (`iss_…`)")),
    request_body(content = RevokeBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Revoked (or already revoked), with what that achieved and \
            when it takes effect", body = crate::broker::RevokeOutcome),
        (status = 400, description = "`invalid_request`: the body is not `{\"reason\": …}` with a \
            reason of 1 to 500 characters, or the issuance's account is no longer configured",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, response = super::openapi::Unauthenticated),
        (status = 403, description = "`forbidden`: revoking needs the admin role", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no issuance with that id", body = Problem,
            content_type = "application/problem+json"),
        (status = 500, response = super::openapi::Internal),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    body: Result<Json<RevokeBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<crate::broker::RevokeOutcome>, Problem> {
    let body = admin_body(
        &caller,
        "revoking needs the admin role",
        body,
        "send {\"reason\": \"why it is revoked\"}",
    )?;
    state
        .broker
        .revoke(&id, &caller, &body.reason, Utc::now())
        .await
        .map(Json)
        .map_err(revoke_problem)
}

/// The admin check and the JSON body shared by the admin POSTs: 403 with `forbidden` if the
/// caller is not an admin, 400 with `usage` if the body is not the expected JSON.
fn admin_body<T>(
    caller: &crate::auth::Principal,
    forbidden: &str,
    body: Result<Json<T>, axum::extract::rejection::JsonRejection>,
    usage: &str,
) -> Result<T, Problem> {
    if !caller.is_admin() {
        return Err(Problem::new(Code::Forbidden, forbidden));
    }
    body.map(|Json(b)| b).map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(Code::PayloadTooLarge, "the request body is too large")
        } else {
            Problem::new(Code::InvalidRequest, usage)
        }
    })
}

fn revoke_problem(e: crate::broker::RevokeError) -> Problem {
    use crate::broker::RevokeError;
    match e {
        RevokeError::NotFound => Problem::new(Code::NotFound, "no issuance with that id"),
        RevokeError::InvalidRequest(m) => Problem::new(Code::InvalidRequest, m),
        e @ RevokeError::Policy(_) => {
            let mut p = Problem::server(Code::StoredPolicyUnavailable, &e);
            p.detail = "a stored access policy could not be deleted, so its tokens are NOT revoked; retry, and quote the error id if it persists".into();
            p
        }
        RevokeError::Ledger(e) => Problem::server(Code::LedgerUnavailable, &e),
        e @ RevokeError::Azure(_) => {
            let mut p = Problem::server(Code::AzureUnavailable, &e);
            p.detail = "Azure Resource Manager did not revoke the user delegation keys, so nothing is revoked; retry, and quote the error id if it persists (the log says why: permission, endpoint or Entra ID)".into();
            p
        }
    }
}

/// Emergency stop for user delegation SAS (admins).
///
/// Revokes every user delegation key of the account in Azure (which ends every user delegation
/// SAS of the account, sasgate's or not) and records it.
#[utoipa::path(
    post,
    path = "/v1/emergency/revoke-delegation-keys",
    tag = "revocation",
    operation_id = "emergency_revoke_delegation_keys",
    security(("bearer" = [])),
    request_body(content = EmergencyBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Every user delegation key of the account was revoked in \
            Azure, and the account's user delegation issuances are recorded as revoked",
            body = crate::broker::KeyStopOutcome),
        (status = 400, description = "`invalid_request`: the body is not `{\"account\", \
            \"reason\"}`, the reason is empty or too long, or the account does not sign with \
            Microsoft Entra ID (no `[accounts.entra]` with a `resource_id`)", body = Problem,
            content_type = "application/problem+json"),
        (status = 401, response = super::openapi::Unauthenticated),
        (status = 403, description = "`forbidden`: the emergency stop needs the admin role",
            body = Problem, content_type = "application/problem+json"),
        (status = 500, response = super::openapi::Internal),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn emergency_keys(
    State(state): State<AppState>,
    Caller(caller): Caller,
    body: Result<Json<EmergencyBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<crate::broker::KeyStopOutcome>, Problem> {
    let b = admin_body(
        &caller,
        "the emergency stop needs the admin role",
        body,
        "send {\"account\": \"…\", \"reason\": \"…\"}",
    )?;
    state
        .broker
        .emergency_revoke_delegation_keys(&b.account, &caller, &b.reason, Utc::now())
        .await
        .map(Json)
        .map_err(revoke_problem)
}

/// Body of `POST /v1/revocations`: every filter given must match; at least one is required.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    /// Issuances of this principal (`user:alice`, `oidc:<issuer>#<subject>`).
    principal: Option<String>,
    /// Issuances on this storage account.
    account: Option<String>,
    /// Issuances on this container.
    container: Option<String>,
    /// Issuances granted by this policy rule.
    rule: Option<String>,
    /// Why they are revoked: 1 to 500 characters, no control characters.
    #[schema(max_length = 500)]
    reason: String,
}

/// Revokes every active issuance of a principal, account, container or rule (admins).
#[utoipa::path(
    post,
    path = "/v1/revocations",
    tag = "revocation",
    operation_id = "revoke_matching",
    security(("bearer" = [])),
    request_body(content = BulkBody, content_type = "application/json"),
    responses(
        (status = 200, description = "What each revocation achieved", body = crate::broker::BulkOutcome),
        (status = 400, description = "`invalid_request`: no filter, a bad reason, more matches \
            than one call takes, or a body that is not the expected JSON", body = Problem,
            content_type = "application/problem+json"),
        (status = 401, response = super::openapi::Unauthenticated),
        (status = 403, description = "`forbidden`: revoking needs the admin role", body = Problem,
            content_type = "application/problem+json"),
        (status = 500, response = super::openapi::Internal),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn revoke_bulk(
    State(state): State<AppState>,
    Caller(caller): Caller,
    body: Result<Json<BulkBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<crate::broker::BulkOutcome>, Problem> {
    let b = admin_body(
        &caller,
        "revoking needs the admin role",
        body,
        "send {\"reason\": \"…\"} with at least one of principal, account, container, rule",
    )?;
    let filter = crate::broker::BulkFilter {
        principal: b.principal,
        account: b.account,
        container: b.container,
        rule: b.rule,
    };
    state
        .broker
        .revoke_matching(&filter, &caller, &b.reason, Utc::now())
        .await
        .map(Json)
        .map_err(revoke_problem)
}

/// Body of the emergency stops (`POST /v1/emergency/…`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmergencyBody {
    /// The storage account, as configured in `[[accounts]]`.
    #[schema(example = "devstoreaccount1")]
    account: String,
    /// Why: 1 to 500 characters, no control characters.
    #[schema(max_length = 500)]
    reason: String,
}

/// Emergency stop for stored access policies (admins).
///
/// Deletes every stored access policy sasgate owns on every container of the account, which
/// revokes every token bound to one.
#[utoipa::path(
    post,
    path = "/v1/emergency/revoke-policies",
    tag = "revocation",
    operation_id = "emergency_revoke_policies",
    security(("bearer" = [])),
    request_body(content = EmergencyBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Every stored access policy sasgate owns on the account was \
            deleted", body = crate::broker::EmergencyOutcome),
        (status = 400, description = "`invalid_request`: the body is not `{\"account\", \
            \"reason\"}`, the reason is empty, too long or has control characters, or the account \
            is not configured", body = Problem,
            content_type = "application/problem+json"),
        (status = 401, response = super::openapi::Unauthenticated),
        (status = 403, description = "`forbidden`: the emergency stop needs the admin role",
            body = Problem, content_type = "application/problem+json"),
        (status = 500, response = super::openapi::Internal),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn emergency(
    State(state): State<AppState>,
    Caller(caller): Caller,
    body: Result<Json<EmergencyBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<crate::broker::EmergencyOutcome>, Problem> {
    let b = admin_body(
        &caller,
        "the emergency stop needs the admin role",
        body,
        "send {\"account\": \"…\", \"reason\": \"…\"}",
    )?;
    state
        .broker
        .emergency_revoke_policies(&b.account, &caller, &b.reason, Utc::now())
        .await
        .map(Json)
        .map_err(revoke_problem)
}

/// Verifies the ledger (admins): the whole hash chain and every issuance row.
#[utoipa::path(
    get,
    path = "/v1/ledger/verify",
    tag = "ledger",
    operation_id = "verify_ledger",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The report; `first_bad` is null when the ledger is intact",
            body = crate::ledger::chain::VerifyReport),
        (status = 401, response = super::openapi::Unauthenticated),
        (status = 403, description = "`forbidden`: verifying needs the admin role", body = Problem,
            content_type = "application/problem+json"),
        (status = 500, response = super::openapi::Internal),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn ledger_verify(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<crate::ledger::chain::VerifyReport>, Problem> {
    if !caller.is_admin() {
        return Err(Problem::new(
            Code::Forbidden,
            "verifying the ledger needs the admin role",
        ));
    }
    state
        .ledger
        .verify()
        .await
        .map(Json)
        .map_err(|e| Problem::server(Code::LedgerUnavailable, &e))
}

/// The chain head, to anchor elsewhere.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LedgerHead {
    /// The last entry's sequence number; 0 for an empty ledger.
    seq: u64,
    /// The last entry's hash, lowercase hex.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    hash: String,
    /// `<seq>:<hash>`, as `sasgate ledger head` prints it.
    head: String,
}

/// The ledger's chain head (admins), to anchor elsewhere.
#[utoipa::path(
    get,
    path = "/v1/ledger/head",
    tag = "ledger",
    operation_id = "ledger_head",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The chain head", body = LedgerHead),
        (status = 401, response = super::openapi::Unauthenticated),
        (status = 403, description = "`forbidden`: reading the head needs the admin role",
            body = Problem, content_type = "application/problem+json"),
        (status = 500, response = super::openapi::Internal),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub async fn ledger_head(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<LedgerHead>, Problem> {
    if !caller.is_admin() {
        return Err(Problem::new(
            Code::Forbidden,
            "reading the ledger head needs the admin role",
        ));
    }
    let head = state
        .ledger
        .chain_head()
        .await
        .map_err(|e| Problem::server(Code::LedgerUnavailable, &e))?;
    Ok(Json(LedgerHead {
        seq: head.seq,
        hash: crate::ledger::chain::hex(&head.hash),
        head: head.text(),
    }))
}
