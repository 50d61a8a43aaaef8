//! Extractors of the pages: the session behind a GET ([`Signed`], [`MaybeSigned`]), and the
//! checked form behind a POST ([`Posted`]): session, origin and CSRF token are all verified
//! before a handler runs, so a handler that takes a [`Posted`] cannot act on a forged request.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use serde::de::DeserializeOwned;

use super::WebState;
use super::csrf;
use super::html;
use super::session::SessionView;

/// A signed-in principal's session; without one, a GET is sent to the sign-in page.
pub struct Signed(pub SessionView);

impl FromRequestParts<WebState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Response> {
        state
            .session(&parts.headers, chrono::Utc::now())
            .map(Signed)
            .ok_or_else(|| Redirect::to("/ui/signin").into_response())
    }
}

/// The session, if the request has a live one.
pub struct MaybeSigned(pub Option<SessionView>);

impl FromRequestParts<WebState> for MaybeSigned {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &WebState,
    ) -> Result<Self, Self::Rejection> {
        Ok(MaybeSigned(
            state.session(&parts.headers, chrono::Utc::now()),
        ))
    }
}

/// The client's address, when the server runs with connect info (it always does).
pub struct Client(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Client(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
        ))
    }
}

/// A form POSTed from one of our pages by a signed-in principal: the session is live, the
/// request's origin is ours and the form's `csrf` field is the session's token. Otherwise the
/// request is refused with 403 (a plain page) before any handler runs.
pub struct Posted<T> {
    pub session: SessionView,
    pub form: T,
}

/// The 403 of a failed CSRF check.
pub fn csrf_refused() -> Response {
    html::message(
        StatusCode::FORBIDDEN,
        "Request refused",
        None,
        "This form did not come from a sasgate page of this session (cross-site request check), \
         so nothing was done. Open the page again and resubmit it from there.",
    )
}

impl<T: DeserializeOwned> FromRequest<WebState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &WebState) -> Result<Self, Response> {
        let path = req.uri().path().to_owned();
        let Some(session) = state.session(req.headers(), chrono::Utc::now()) else {
            return Err(html::message(
                StatusCode::FORBIDDEN,
                "Signed out",
                None,
                "Your session has ended (30 minutes without activity, 8 hours at most, or you \
                 signed out), so nothing was done. Sign in again.",
            ));
        };
        if let Err(e) = csrf::same_origin(req.headers(), &state.origin) {
            tracing::warn!(path = %path, principal = %session.principal.name, check = e.as_str(), "web form refused: not from our origin");
            return Err(csrf_refused());
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|_| too_large())?;
        let mut fields = FormFields::parse(&body).ok_or_else(bad_form)?;
        let token = fields.take("csrf").unwrap_or_default();
        if !csrf::tokens_match(&session.csrf, &token) {
            tracing::warn!(path = %path, principal = %session.principal.name, check = "token", "web form refused: CSRF token missing or wrong");
            return Err(csrf_refused());
        }
        let form = fields.into_form().map_err(|_| bad_form())?;
        Ok(Posted { session, form })
    }
}

fn too_large() -> Response {
    html::message(
        StatusCode::PAYLOAD_TOO_LARGE,
        "Too large",
        None,
        "The form is larger than this server takes (server.max_body_bytes).",
    )
}

fn bad_form() -> Response {
    html::message(
        StatusCode::BAD_REQUEST,
        "Unreadable form",
        None,
        "The form could not be read. Open the page again and resubmit it from there.",
    )
}

/// The fields of an `application/x-www-form-urlencoded` body; a field given twice is refused.
pub struct FormFields(serde_json::Map<String, serde_json::Value>);

impl FormFields {
    /// Parses `body`; `None` when a field is given twice.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let mut map = serde_json::Map::new();
        for (k, v) in url::form_urlencoded::parse(body) {
            if map
                .insert(k.into_owned(), serde_json::Value::String(v.into_owned()))
                .is_some()
            {
                return None;
            }
        }
        Some(FormFields(map))
    }

    /// Removes and returns the field `name`.
    pub fn take(&mut self, name: &str) -> Option<String> {
        match self.0.remove(name) {
            Some(serde_json::Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// The remaining fields as `T` (fields are strings; unknown ones are ignored).
    pub fn into_form<T: DeserializeOwned>(self) -> Result<T, serde_json::Error> {
        serde_json::from_value(serde_json::Value::Object(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Revoke {
        reason: String,
        #[serde(default)]
        note: Option<String>,
    }

    #[test]
    fn forms_are_read_once_per_field() {
        let mut f = FormFields::parse(b"csrf=abc&reason=leaked+in+a%20chat&x=1").unwrap();
        assert_eq!(f.take("csrf").as_deref(), Some("abc"));
        assert_eq!(f.take("csrf"), None);
        let r: Revoke = f.into_form().unwrap();
        assert_eq!(
            r,
            Revoke {
                reason: "leaked in a chat".into(),
                note: None
            }
        );
        assert!(
            FormFields::parse(b"csrf=a&csrf=b").is_none(),
            "no second token"
        );
        assert!(
            FormFields::parse(b"x=1")
                .unwrap()
                .into_form::<Revoke>()
                .is_err()
        );
    }
}
