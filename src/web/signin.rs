//! Signing in with an API key, and signing out.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use zeroize::Zeroizing;

use super::extract::{Client, FormFields, MaybeSigned, Posted, csrf_refused};
use super::html::{self, Nav, esc};
use super::session::{self, COOKIE, SIGNIN_COOKIE, SIGNIN_TTL};
use super::{WebState, csrf};
use crate::auth::authenticate_api_key;

/// The sign-in form (or the start page, for a signed-in browser).
pub async fn form(MaybeSigned(session): MaybeSigned) -> Response {
    if session.is_some() {
        return Redirect::to("/ui/").into_response();
    }
    signin_page(StatusCode::OK, None)
}

/// The form, with a fresh sign-in token in its field and in the sign-in cookie.
fn signin_page(status: StatusCode, error: Option<&str>) -> Response {
    let Ok(token) = session::random_token() else {
        return html::message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            None,
            "The server has no randomness right now; try again in a moment.",
        );
    };
    let error = error
        .map(|e| {
            format!(
                "<p class=\"notice error\" role=\"alert\" id=\"signin-error\">{}</p>\n",
                esc(e)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "{error}<form method=\"post\" action=\"/ui/signin\" class=\"stack narrow\">\n\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\n\
         <label for=\"api_key\">API key</label>\n\
         <input id=\"api_key\" name=\"api_key\" type=\"password\" required autocomplete=\"off\" \
         spellcheck=\"false\" aria-describedby=\"api_key_help\">\n\
         <p id=\"api_key_help\" class=\"help\">Your sasgate API key (it starts with \
         <code>sgk_</code>). It is sent once, in the body of this form; a session cookie then \
         keeps you signed in for 30 minutes without activity, 8 hours at most.</p>\n\
         <button type=\"submit\">Sign in</button>\n</form>\n",
        esc(&token)
    );
    let mut response = html::page(status, "Sign in", Nav::None, None, &body);
    if let Ok(cookie) =
        HeaderValue::from_str(&session::set_cookie(SIGNIN_COOKIE, &token, SIGNIN_TTL))
    {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// Checks the sign-in form (origin, rate, token, key) and starts a session.
pub async fn submit(
    State(state): State<WebState>,
    Client(client): Client,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let who = client.as_deref().unwrap_or("-");
    if let Err(e) = csrf::same_origin(&headers, &state.origin) {
        tracing::warn!(
            client = who,
            check = e.as_str(),
            "web sign-in refused: not from our origin"
        );
        return csrf_refused();
    }
    let now = Utc::now();
    if let Err(seconds) = state.signin_rate.take(&format!("signin:{who}"), now) {
        tracing::warn!(
            client = who,
            retry_after = seconds,
            "web sign-in refused: too many attempts"
        );
        let mut r = html::message(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            None,
            &format!("Too many sign-in attempts from your address; try again in {seconds} s."),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return r;
    }
    let Some(mut fields) = body.ok().and_then(|b| FormFields::parse(&b)) else {
        return html::message(
            StatusCode::BAD_REQUEST,
            "Unreadable form",
            None,
            "The form could not be read; open the sign-in page again.",
        );
    };
    let token = fields.take("csrf").unwrap_or_default();
    if !session::cookie_values(&headers, SIGNIN_COOKIE).any(|c| csrf::tokens_match(c, &token)) {
        tracing::warn!(
            client = who,
            check = "token",
            "web sign-in refused: sign-in token missing or wrong"
        );
        return csrf_refused();
    }
    let key = Zeroizing::new(fields.take("api_key").unwrap_or_default());
    let Some(principal) = authenticate_api_key(&state.app.principals, key.trim()) else {
        state.app.broker.metrics.auth_failure("unauthenticated");
        tracing::warn!(
            client = who,
            "web sign-in refused: the API key is not valid"
        );
        return signin_page(
            StatusCode::FORBIDDEN,
            Some("That API key is not valid. Check it and try again."),
        );
    };
    let Ok((id, _)) = state.sessions.create(principal.clone(), now) else {
        return html::message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            None,
            "The server has no randomness right now; try again in a moment.",
        );
    };
    tracing::info!(principal = %principal.name, client = who, "web sign-in");
    let mut response = Redirect::to("/ui/").into_response();
    let limits = state.sessions.limits();
    for cookie in [
        session::set_cookie(COOKIE, id.expose(), limits.absolute),
        session::clear_cookie(SIGNIN_COOKIE),
    ] {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// No fields besides the CSRF token.
#[derive(serde::Deserialize)]
pub struct Nothing {}

/// Ends the session and deletes its cookie.
pub async fn signout(
    State(state): State<WebState>,
    headers: HeaderMap,
    posted: Posted<Nothing>,
) -> Response {
    for id in session::cookie_values(&headers, COOKIE) {
        state.sessions.remove(id);
    }
    tracing::info!(principal = %posted.session.principal.name, "web sign-out");
    let mut response = Redirect::to("/ui/signin").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie(COOKIE)) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}
