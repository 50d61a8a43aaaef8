//! Web pages for admins and researchers, served by sasgate itself under `/ui/` (issue 10), so
//! that nobody needs curl. They are HTML, not API: they are not in `/openapi.json`.
//!
//! # Pages
//!
//! | path | who | what |
//! |---|---|---|
//! | `GET /ui/` | signed in | start page by role (else to the sign-in page) |
//! | `GET`/`POST /ui/signin`, `POST /ui/signout` | anyone | sign in with an API key; sign out |
//! | `GET`/`POST /ui/request` | any principal | request a broker link or a SAS; the policy's answer |
//! | `GET /ui/links`, `GET`/`POST /ui/links/{id}/revoke` | any principal | one's own issuances; revoke one's own link |
//! | `GET /ui/issuances`, `GET /ui/issuances/{id}` | admin | filtered listing; one issuance, redemptions, revocation |
//! | `GET`/`POST /ui/issuances/{id}/revoke` | admin | what a revocation would achieve; revoke with a reason |
//! | `GET`/`POST /ui/inspect` | admin | grade a pasted SAS URL and find its issuance |
//! | `GET /ui/ledger` | admin | the ledger's hash-chain verification |
//! | `GET /ui/static/…` | anyone | the stylesheet, the copy button's script and the icon |
//!
//! # Design decisions
//!
//! - **No second implementation.** Every page calls what the JSON API calls: the ledger's
//!   `list`/`get`/`link`/`verify`, [`Broker::mint`](crate::broker::Broker::mint),
//!   [`Broker::link`](crate::broker::Broker::link) (`create_link` plus the denial record),
//!   [`Broker::revoke`](crate::broker::Broker::revoke), [`crate::sas::lint::lint`] and
//!   [`Broker::lookup`](crate::broker::Broker::lookup). Mints take the same per-principal rate
//!   limit (`limits.mint_*`), write the same ledger records and count in the same metrics, with
//!   the signed-in principal as the caller.
//! - **Rendering** is hand-written ([`html`]): one escaping function, [`html::esc`], for every
//!   interpolated value (request, ledger, policy, configuration). No template engine: the pages
//!   are few and small, and a dependency less is a dependency less.
//! - **Static files** (CSS, a few lines of JS, an icon) are embedded with `include_str!` and
//!   served from `/ui/static/<name>.<content hash>.<ext>` with a one-year immutable cache. Pages
//!   have no inline script or style, so the Content-Security-Policy is strict:
//!   `default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action
//!   'self'; frame-ancestors 'none'; base-uri 'none'`. Every `/ui/` response also carries
//!   `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`, `Cross-Origin-Opener-Policy` and
//!   `Cross-Origin-Resource-Policy: same-origin`, and pages `Cache-Control: no-store`.
//! - **JavaScript is optional.** Everything works without it; the script only adds the
//!   copy-to-clipboard button next to a new link or SAS (the button is `hidden` until it runs).
//! - **Referrer policy `same-origin`, not `no-referrer`.** With `no-referrer`, browsers send
//!   `Origin: null` on a page's *own* form POSTs (Fetch standard, "serializing a request
//!   origin"; checked in Chromium), which would defeat the Origin check below. `same-origin`
//!   still sends no `Referer` to any other origin (Azure, a link's target), and no `/ui/` URL
//!   carries a secret.
//! - **Sign-in** is a form that POSTs the API key (never in a URL). Keys are checked by
//!   [`crate::auth::authenticate_api_key`], as the API checks them; only API-key principals sign
//!   in (OIDC principals are CI jobs). Attempts are rate-limited per client address
//!   ([`SIGNIN_RATE`]; behind a proxy, all clients share the proxy's address) and failures are
//!   logged with the client address, never the key. The
//!   sign-in form has its own CSRF token (double-submit cookie `__Host-sasgate_signin`), so that
//!   another site cannot sign a browser into someone else's session.
//! - **Sessions** ([`session`]): a random 256-bit id in the cookie `__Host-sasgate_session`
//!   (`HttpOnly; Secure; SameSite=Strict; Path=/`), mapped in memory (bounded) to the principal;
//!   30 minutes idle, 8 hours at most; sign-out deletes it. Browsers accept `Secure` cookies
//!   from `http://127.0.0.1` and `http://localhost` (potentially trustworthy origins), so the
//!   pages work on the loopback dev server too. Sessions are per process: with several replicas,
//!   use sticky sessions or sign in again.
//! - **CSRF** ([`csrf`]): every form that changes anything POSTs a per-session synchronizer token
//!   (hidden field `csrf`), checked in constant time, *and* its `Origin` (or `Referer` when there
//!   is no `Origin`) must be the origin of `server.public_url`. Set `server.public_url` to the
//!   address people type into the browser: a page opened under another name (say `localhost`
//!   for `127.0.0.1`) cannot POST. A failed check answers 403 with a plain page and changes
//!   nothing. Forms that only read (the issuance filters) use GET and carry no token.
//! - **Revocation** by an admin goes through a confirmation page that says what it will achieve
//!   ([`Broker::revoke_preview`](crate::broker::Broker::revoke_preview): the mechanism, when it
//!   bites, and for a stored access policy the cohort that stops with it), then POSTs the reason.
//! - **Self-service revocation** ([`Broker::revoke_own_link`](crate::broker::Broker::revoke_own_link)):
//!   a principal may revoke only *broker links* it holds itself. A link stops at once and
//!   affects no one else; a stored-policy token would take its cohort (other people's tokens)
//!   down with it, and an `expiry_only` token cannot be stopped, so those stay with admins.
//! - **Secrets.** A new link or SAS is shown once, in the answer to the POST that made it
//!   (`no-store`); listings never show a SAS or a link code (the ledger holds neither). The API
//!   key, session id, CSRF tokens, SAS and link codes travel only in bodies and cookies, never in
//!   a path or query, so the request log (paths only) never holds one. A pasted SAS URL is
//!   graded and looked up, never echoed back, stored or logged.
//! - **Keyboard and screen readers**: semantic HTML, a label for every input, real buttons, a
//!   skip link, visible focus, tables with `th scope`, and a tab order that follows the page.
//! - The pages assume sasgate is served at the root of its origin (no path prefix).

mod admin;
pub mod csrf;
mod extract;
pub mod html;
mod researcher;
pub mod session;
mod signin;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::api::AppState;
use crate::auth::rate::{RateLimit, RateLimiter};
use extract::MaybeSigned;
use html::{ASSETS, Nav, esc};
use session::{SessionLimits, SessionView, Sessions};

/// The Content-Security-Policy of every `/ui/` response.
pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Sign-in attempts per client address: 10 at once, then 10 a minute.
pub const SIGNIN_RATE: RateLimit = RateLimit {
    per_minute: 10,
    burst: 10,
};

/// What the page handlers share.
#[derive(Clone)]
pub struct WebState(Arc<WebInner>);

/// The API's state (broker, ledger, principals, rate limit) and the pages' own.
pub struct WebInner {
    pub app: AppState,
    pub sessions: Sessions,
    /// Sign-in attempts, by client address.
    pub signin_rate: RateLimiter,
    /// `server.public_url`'s origin: the only origin whose pages may POST.
    pub origin: String,
}

impl std::ops::Deref for WebState {
    type Target = WebInner;
    fn deref(&self) -> &WebInner {
        &self.0
    }
}

impl WebState {
    /// The pages' state over `app`, with default session limits.
    pub fn new(app: &AppState) -> Self {
        Self::with_limits(app, SessionLimits::default())
    }

    /// As [`WebState::new`], with these session limits.
    pub fn with_limits(app: &AppState, limits: SessionLimits) -> Self {
        let origin = app.broker.public_url.origin().ascii_serialization();
        WebState(Arc::new(WebInner {
            app: app.clone(),
            sessions: Sessions::new(limits),
            signin_rate: RateLimiter::new(SIGNIN_RATE),
            origin,
        }))
    }

    /// The live session the request's cookie names, if any.
    pub fn session(
        &self,
        headers: &axum::http::HeaderMap,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<SessionView> {
        session::cookie_values(headers, session::COOKIE).find_map(|id| self.sessions.get(id, now))
    }
}

/// The pages, to merge into the API's router (outside the OpenAPI document).
pub fn router(app: &AppState) -> Router<AppState> {
    routes().with_state(WebState::new(app))
}

/// Every page route, with the security headers.
fn routes() -> Router<WebState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(home))
        .route("/ui/signin", get(signin::form).post(signin::submit))
        .route("/ui/signout", axum::routing::post(signin::signout))
        .route("/ui/static/{name}", get(asset))
        .route(
            "/ui/request",
            get(researcher::form).post(researcher::submit),
        )
        .route("/ui/links", get(researcher::links))
        .route(
            "/ui/links/{id}/revoke",
            get(researcher::confirm_revoke).post(researcher::revoke),
        )
        .route("/ui/issuances", get(admin::list))
        .route("/ui/issuances/{id}", get(admin::show))
        .route(
            "/ui/issuances/{id}/revoke",
            get(admin::confirm_revoke).post(admin::revoke),
        )
        .route("/ui/inspect", get(admin::inspect_form).post(admin::inspect))
        .route("/ui/ledger", get(admin::ledger))
        .route("/ui/{*rest}", get(not_found))
        .layer(axum::middleware::map_response(security_headers))
}

/// The headers of every `/ui/` response (see the module documentation).
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// An embedded static file, by its hashed name; cached for a year (the name changes with the
/// content).
async fn asset(Path(name): Path<String>) -> Response {
    let a = &*ASSETS;
    let Some(asset) = [&a.css, &a.js, &a.icon]
        .into_iter()
        .find(|x| x.path.strip_prefix("/ui/static/") == Some(name.as_str()))
    else {
        return html::message(
            StatusCode::NOT_FOUND,
            "Not found",
            None,
            "There is no such file.",
        );
    };
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        asset.body,
    )
        .into_response()
}

/// The start page: what the signed-in principal can do here.
async fn home(MaybeSigned(session): MaybeSigned) -> Response {
    let Some(session) = session else {
        return Redirect::to("/ui/signin").into_response();
    };
    let p = &session.principal;
    let mut body = format!(
        "<p>You are signed in as <strong>{}</strong>. What you may request is decided by the \
         policy, rule by rule; every link and token is recorded in the ledger.</p>\n",
        esc(&p.name)
    );
    body.push_str(
        "<ul class=\"cards\">\n\
         <li><a href=\"/ui/request\">Request access</a>: a download link or a SAS for a blob \
         the policy allows, with the policy's answer.</li>\n\
         <li><a href=\"/ui/links\">My links</a>: what you were given, and revoking your own \
         links.</li>\n",
    );
    if p.is_admin() {
        body.push_str(
            "<li><a href=\"/ui/issuances\">Issuances</a>: list and filter every issuance, see \
             its redemptions, revoke it.</li>\n\
             <li><a href=\"/ui/inspect\">Inspect a SAS</a>: grade a SAS URL and find who it \
             was issued to.</li>\n\
             <li><a href=\"/ui/ledger\">Ledger</a>: verify the hash chain.</li>\n",
        );
    }
    body.push_str("</ul>\n");
    html::page(StatusCode::OK, "sasgate", Nav::Home, Some(&session), &body)
}

/// Any other `/ui/` path.
async fn not_found(MaybeSigned(session): MaybeSigned) -> Response {
    html::message(
        StatusCode::NOT_FOUND,
        "Not found",
        session.as_ref(),
        "There is no such page.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_response_gets_the_security_headers() {
        let r = security_headers(StatusCode::OK.into_response()).await;
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(r.headers()[header::REFERRER_POLICY], "same-origin");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        assert!(!CSP.contains("unsafe"), "no unsafe-inline, no unsafe-eval");
        // A static file keeps its long cache.
        let a = asset(Path(
            ASSETS.css.path.trim_start_matches("/ui/static/").to_owned(),
        ))
        .await;
        let a = security_headers(a).await;
        assert_eq!(
            a.headers()[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(a.headers()[header::CONTENT_TYPE], "text/css; charset=utf-8");
        assert_eq!(
            asset(Path("sasgate.css".into())).await.status(),
            StatusCode::NOT_FOUND
        );
    }
}
