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

/// Creates a broker link (same body as `POST /v1/tokens`, plus optional `uses`).
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
    let result = match parsed {
        Ok((req, uses)) => match state
            .broker
            .create_link(&principal, &req, uses, now, client.clone())
            .await
        {
            Ok(link) => Ok(link),
            Err(e) => {
                if !matches!(e, MintError::Ledger(_)) {
                    state
                        .broker
                        .deny(Some(&principal), &e, Some(&req), now, client)
                        .await;
                }
                Err(e)
            }
        },
        Err(e) => {
            state
                .broker
                .deny(Some(&principal), &e, None, now, client)
                .await;
            Err(e)
        }
    };
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

/// Redeems a link: 302 to a fresh SAS of at most 5 minutes, or 410 when it is revoked, expired
/// or used up. Anyone holding the link may call it; every call is recorded. `HEAD` is a
/// redemption too (it must mint to give a `Location`).
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
