//! Authentication as an extractor: a handler that takes a [`Caller`] only runs for an
//! authenticated principal. Authorisation is the handler's first line.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

use super::AppState;
use super::problem::{Code, Problem};
use crate::auth::{Principal, authenticate_api_key};

/// The authenticated caller.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let Some(value) = header else {
            return Err(Problem::new(
                Code::Unauthenticated,
                "send Authorization: Bearer <your sasgate API key>",
            ));
        };
        let credential = value.strip_prefix("Bearer ").map(str::trim).unwrap_or("");
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
}

/// The peer address, when the server was started with connect info.
pub fn client_addr(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}
