//! Authentication as an extractor: a handler that takes a [`Caller`] only runs for an
//! authenticated principal. Authorisation is the handler's first line.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

use super::AppState;
use super::problem::{Code, Problem};
use crate::auth::oidc::OidcError;
use crate::auth::{API_KEY_PREFIX, Principal, authenticate_api_key};

/// The authenticated caller.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let result = authenticate(parts, state).await;
        if let Err(p) = &result {
            state.broker.metrics.auth_failure(p.code.as_str());
        }
        result
    }
}

/// The principal behind the request's bearer credential, or the 401 (503) to answer.
async fn authenticate(parts: &Parts, state: &AppState) -> Result<Caller, Problem> {
    let mut values = parts.headers.get_all(header::AUTHORIZATION).iter();
    let (first, second) = (values.next(), values.next());
    // Authorization is a singleton field (RFC 9110 §11.6.2): with two, which one is meant (and
    // which one a proxy in front checked) is ambiguous, so neither is used.
    if second.is_some() {
        return Err(Problem::new(
            Code::Unauthenticated,
            "send exactly one Authorization header",
        ));
    }
    let header = first.and_then(|v| v.to_str().ok());
    let Some(value) = header else {
        return Err(Problem::new(
            Code::Unauthenticated,
            "send Authorization: Bearer <your sasgate API key or your CI job's OIDC token>",
        ));
    };
    let credential = value.strip_prefix("Bearer ").map(str::trim).unwrap_or("");
    // An OIDC ID token (a JWT) from a configured issuer.
    if !credential.starts_with(API_KEY_PREFIX)
        && credential.matches('.').count() == 2
        && !state.oidc.is_empty()
    {
        return match state.oidc.verify(credential, chrono::Utc::now()).await {
            Ok(token) => Ok(Caller(Principal::from_oidc(token))),
            Err(e) => {
                tracing::warn!(
                    client = client_addr(parts).as_deref().unwrap_or("-"),
                    code = e.code(),
                    "rejected OIDC token"
                );
                Err(oidc_problem(&e))
            }
        };
    }
    match authenticate_api_key(&state.principals, credential) {
        Some(p) => Ok(Caller(p)),
        None => {
            tracing::warn!(
                client = client_addr(parts).as_deref().unwrap_or("-"),
                "rejected credential"
            );
            Err(Problem::new(
                Code::Unauthenticated,
                "the credential is not valid; check your API key",
            ))
        }
    }
}

/// The refusal for an OIDC token: 401 with the check that failed (503 when the issuer's keys
/// cannot be fetched at all).
fn oidc_problem(e: &OidcError) -> Problem {
    let code = match e {
        OidcError::Malformed(_) => Code::MalformedToken,
        OidcError::AlgorithmNotAllowed(..) => Code::AlgorithmNotAllowed,
        OidcError::UntrustedIssuer => Code::UntrustedIssuer,
        OidcError::UnknownKey(_) => Code::UnknownSigningKey,
        OidcError::BadSignature => Code::BadSignature,
        OidcError::Expired(_) => Code::TokenExpired,
        OidcError::NotYetValid(_) => Code::TokenNotYetValid,
        OidcError::WrongAudience(_) => Code::WrongAudience,
        OidcError::MissingClaim(_) => Code::MissingClaim,
        OidcError::Unavailable(_) => return Problem::server(Code::OidcUnavailable, e),
    };
    Problem::new(code, e.to_string())
}

/// The peer address, when the server was started with connect info.
pub fn client_addr(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}
