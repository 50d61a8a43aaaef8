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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    principal: Option<String>,
    account: Option<String>,
    container: Option<String>,
    status: Option<Status>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// An issuance as shown to callers, with its status as of now.
#[derive(Serialize)]
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
#[derive(Serialize)]
pub struct ListResponse {
    items: Vec<IssuanceView>,
    next_cursor: Option<String>,
}

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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupBody {
    /// A SAS URL or query string, e.g. one found leaked in a repository or a chat.
    url: String,
}

/// What a lookup found: the issuance, and what revoking it would take.
#[derive(Serialize)]
pub struct LookupResponse {
    #[serde(flatten)]
    issuance: IssuanceView,
    /// How to revoke it (`POST /v1/issuances/{id}/revoke`), or why that would not stop it.
    revoke: String,
}

/// Finds the issuance behind a leaked SAS by the SHA-256 of its signature (admins only). The
/// URL is parsed, never logged or stored.
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
    let hash = match link_code(&body.url) {
        // A leaked broker link: its code's hash is the issuance's signature hash.
        Some(code) => crate::sas::sign::hex_sha256(code.as_bytes()),
        None => {
            let parsed = crate::sas::parse::parse(&body.url).map_err(|e| {
                Problem::new(
                    Code::InvalidRequest,
                    format!("not a SAS or a broker link: {e}"),
                )
            })?;
            parsed
                .signature_sha256()
                .ok_or_else(|| Problem::new(Code::InvalidRequest, "the SAS has no signature"))?
        }
    };
    let record = state
        .ledger
        .find_by_signature(&hash)
        .await
        .map_err(|e| Problem::server(Code::LedgerUnavailable, &e))?
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

/// The code of a broker link URL (`…/l/<code>`), if `text` is one.
fn link_code(text: &str) -> Option<String> {
    let url = url::Url::parse(text.trim()).ok()?;
    let mut segments = url.path_segments()?;
    match (segments.next(), segments.next(), segments.next()) {
        (Some("l"), Some(code), None) if !code.is_empty() && url.query().is_none() => {
            Some(code.to_owned())
        }
        _ => None,
    }
}

/// Body of `POST /v1/issuances/{id}/revoke`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    reason: String,
}

/// Revokes one issuance (admins) and says what that achieved.
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
    body.map(|Json(b)| b)
        .map_err(|_| Problem::new(Code::InvalidRequest, usage))
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

/// The emergency stop for user delegation SAS (admins): revokes every user delegation key of
/// the account in Azure and records it.
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

/// Body of `POST /v1/revocations`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    principal: Option<String>,
    account: Option<String>,
    container: Option<String>,
    rule: Option<String>,
    reason: String,
}

/// Revokes every active issuance of a principal, account, container or rule (admins).
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

/// Body of `POST /v1/emergency/revoke-policies`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmergencyBody {
    account: String,
    reason: String,
}

/// The emergency stop (admins): deletes every stored access policy sasgate owns on every
/// container of the account.
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
    if b.reason.trim().is_empty() {
        return Err(Problem::new(Code::InvalidRequest, "give a reason"));
    }
    state
        .broker
        .emergency_revoke_policies(&b.account, &caller, b.reason.trim(), Utc::now())
        .await
        .map(Json)
        .map_err(revoke_problem)
}

/// The ledger's verification report (admins): the whole chain and every issuance row.
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

/// The chain head `{seq, hash}` (admins), to anchor elsewhere.
pub async fn ledger_head(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<serde_json::Value>, Problem> {
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
    Ok(Json(serde_json::json!({
        "seq": head.seq,
        "hash": crate::ledger::chain::hex(&head.hash),
        "head": head.text(),
    })))
}
