//! Pages for every signed-in principal: request a broker link or a SAS (the policy decides, as
//! for `POST /v1/links` and `POST /v1/tokens`), list one's own issuances, revoke one's own link.

use std::fmt::Write as _;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use serde::Deserialize;

use super::WebState;
use super::extract::{Client, Posted, Signed};
use super::html::{self, Nav, csrf_field, esc, opt, time};
use super::session::SessionView;
use super::views;
use crate::api::problem::{Code, Problem};
use crate::auth::Principal;
use crate::broker::{CreatedLink, FromJson as _, MAX_USES, MintError, MintRequest, Minted};
use crate::ledger::{LedgerError, ListFilter};
use crate::policy::Principal as RulePrincipal;

/// The request form, as posted (every field text; empty means "not given").
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct RequestForm {
    account: String,
    container: String,
    blob: String,
    permissions: String,
    ttl: String,
    /// `link` (default) or `sas`.
    kind: String,
    uses: String,
    ip: String,
    reason: String,
}

impl RequestForm {
    fn wants_sas(&self) -> bool {
        self.kind == "sas"
    }

    /// The JSON body `POST /v1/tokens` would get: only the fields given, a TTL of digits only
    /// as a number of seconds.
    fn to_json(&self) -> serde_json::Value {
        let mut body = serde_json::Map::new();
        let mut put = |k: &str, v: &str| {
            let v = v.trim();
            if !v.is_empty() {
                body.insert(k.to_owned(), serde_json::Value::String(v.to_owned()));
            }
        };
        put("account", &self.account);
        put("blob", &self.blob);
        put("permissions", &self.permissions);
        put("ip", &self.ip);
        put("reason", &self.reason);
        // An empty container is kept, so that the request is refused as the API refuses it.
        body.insert(
            "container".into(),
            serde_json::Value::String(self.container.trim().to_owned()),
        );
        let ttl = self.ttl.trim();
        if !ttl.is_empty() {
            let value = match ttl.parse::<i64>() {
                Ok(seconds) => serde_json::Value::from(seconds),
                Err(_) => serde_json::Value::String(ttl.to_owned()),
            };
            body.insert("ttl".into(), value);
        }
        serde_json::Value::Object(body)
    }

    /// `uses`, as `POST /v1/links` reads it.
    fn uses(&self) -> Result<Option<u32>, MintError> {
        let u = self.uses.trim();
        if u.is_empty() {
            return Ok(None);
        }
        u.parse::<u32>().map(Some).map_err(|_| {
            MintError::InvalidRequest(format!(
                "uses: a whole number of redemptions, 1 to {MAX_USES}"
            ))
        })
    }
}

/// The empty request form.
pub async fn form(State(state): State<WebState>, Signed(session): Signed) -> Response {
    let form = RequestForm {
        account: state
            .app
            .broker
            .accounts
            .keys()
            .next()
            .cloned()
            .unwrap_or_default(),
        permissions: "r".into(),
        kind: "link".into(),
        ..RequestForm::default()
    };
    request_page(&state, &session, &form, None, StatusCode::OK)
}

/// What a request gave.
enum Answer {
    Link(CreatedLink),
    Sas(Minted),
    Refused(Problem),
}

/// Asks the broker for a link or a SAS, exactly as the API does, and shows its answer.
pub async fn submit(
    State(state): State<WebState>,
    Client(client): Client,
    posted: Posted<RequestForm>,
) -> Response {
    let Posted { session, form } = posted;
    let principal = &session.principal;
    let now = Utc::now();
    let answer = match state.app.rate.take(&principal.ledger_name(), now) {
        Err(seconds) => {
            tracing::warn!(principal = %principal.name, retry_after = seconds, "mint rate limit reached");
            Answer::Refused(Problem::new(
                Code::RateLimited,
                format!(
                    "you have asked for too many links and tokens in a short time; retry in {seconds} s"
                ),
            ))
        }
        Ok(()) => {
            let request = MintRequest::from_json(&form.to_json());
            let broker = &state.app.broker;
            let result = if form.wants_sas() {
                broker
                    .mint(principal, request, now, client)
                    .await
                    .map(Answer::Sas)
            } else {
                let (request, uses) = match form.uses() {
                    Ok(uses) => (request, uses),
                    Err(e) => (Err(e), None),
                };
                broker
                    .link(principal, request, uses, now, client)
                    .await
                    .map(Answer::Link)
            };
            crate::api::tokens::count(
                &state.app,
                result.as_ref().map(|a| match a {
                    Answer::Link(l) => l.rule.as_str(),
                    Answer::Sas(m) => m.rule.as_str(),
                    Answer::Refused(_) => "",
                }),
            );
            result.unwrap_or_else(|e| Answer::Refused(crate::api::tokens::problem_of(e)))
        }
    };
    let (status, result) = match &answer {
        Answer::Link(l) => (StatusCode::OK, created_link(l)),
        Answer::Sas(m) => (StatusCode::OK, created_sas(m)),
        Answer::Refused(p) => (
            StatusCode::from_u16(p.status).unwrap_or(StatusCode::FORBIDDEN),
            refusal(p),
        ),
    };
    request_page(&state, &session, &form, Some(result), status)
}

fn refusal(p: &Problem) -> String {
    let mut out = format!(
        "<section id=\"result\" class=\"result refusal\" aria-labelledby=\"result-h\">\n\
         <h2 id=\"result-h\">Refused: {}</h2>\n\
         <p>Code <code id=\"refusal-code\">{}</code> (HTTP {})</p>\n<p id=\"refusal-detail\">{}</p>\n",
        esc(p.title),
        esc(p.code.as_str()),
        p.status,
        esc(&p.detail)
    );
    if !p.reasons.is_empty() {
        out.push_str("<h3>Why, rule by rule</h3>\n<ul id=\"refusal-reasons\">\n");
        for r in &p.reasons {
            let _ = writeln!(out, "<li>{}</li>", esc(r));
        }
        out.push_str("</ul>\n");
    }
    if let Some(id) = &p.error_id {
        let _ = writeln!(out, "<p>Error id: <code>{}</code></p>", esc(id));
    }
    out.push_str("</section>\n");
    out
}

/// The secret, shown once, with a copy button (which the script un-hides).
fn secret(label: &str, value: &str) -> String {
    format!(
        "<p class=\"notice\">Shown once: copy it now. sasgate keeps only its hash, and no page \
         shows it again.</p>\n<div class=\"secret\">\n<label for=\"secret\">{}</label>\n\
         <textarea id=\"secret\" readonly rows=\"3\" spellcheck=\"false\">{}</textarea>\n\
         <button type=\"button\" class=\"copy\" data-copy=\"secret\" hidden>Copy to clipboard</button>\n\
         <span class=\"copy-status\" role=\"status\" aria-live=\"polite\"></span>\n</div>\n",
        esc(label),
        esc(value)
    )
}

fn created_link(l: &CreatedLink) -> String {
    let mut out = String::from(
        "<section id=\"result\" class=\"result created\" aria-labelledby=\"result-h\">\n\
         <h2 id=\"result-h\">Your broker link</h2>\n",
    );
    out.push_str(&secret("Link", &l.link));
    out.push_str(&html::definitions(&[
        (
            "Issuance",
            format!("<code id=\"issuance-id\">{}</code>", esc(&l.id)),
        ),
        ("Expires", time(l.expires_on)),
        (
            "Uses",
            l.max_uses
                .map_or("unlimited until it expires".to_owned(), |u| u.to_string()),
        ),
        (
            "Permissions",
            format!("<code>{}</code>", esc(&l.permissions)),
        ),
        ("Rule", esc(&l.rule).to_string()),
        (
            "Revocation",
            "each use gets a fresh SAS of at most 5 minutes; you can revoke the link at once \
             from <a href=\"/ui/links\">My links</a>"
                .to_owned(),
        ),
    ]));
    out.push_str("</section>\n");
    out
}

fn created_sas(m: &Minted) -> String {
    let mut out = String::from(
        "<section id=\"result\" class=\"result created\" aria-labelledby=\"result-h\">\n\
         <h2 id=\"result-h\">Your SAS URL</h2>\n",
    );
    out.push_str(&secret("SAS URL", &m.url));
    out.push_str(&html::definitions(&[
        (
            "Issuance",
            format!("<code id=\"issuance-id\">{}</code>", esc(&m.id)),
        ),
        (
            "Valid",
            format!("{} to {}", time(m.starts_on), time(m.expires_on)),
        ),
        (
            "Permissions",
            format!("<code>{}</code>", esc(&m.permissions)),
        ),
        ("Rule", esc(&m.rule).to_string()),
        (
            "Revocation",
            esc(views::mechanism(m.revocation)).to_string(),
        ),
    ]));
    out.push_str("</section>\n");
    out
}

/// True when `rule` names `p` (by user name or role). For display only: the decision is the
/// policy's.
fn names(rule: &crate::policy::Rule, p: &Principal) -> bool {
    rule.principals().iter().any(|r| match r {
        RulePrincipal::User(name) => *name == p.name,
        RulePrincipal::Role(role) => p.roles.iter().any(|x| x == role),
        RulePrincipal::Oidc(_) => false,
    })
}

fn policy_table(state: &WebState, p: &Principal) -> String {
    let rules: Vec<_> = state
        .app
        .broker
        .policy
        .rules()
        .iter()
        .filter(|r| names(r, p))
        .collect();
    let mut out = String::from(
        "<section aria-labelledby=\"rules-h\">\n<h2 id=\"rules-h\">Rules that name you</h2>\n",
    );
    if rules.is_empty() {
        out.push_str("<p>No policy rule names you or your roles, so every request will be refused.</p>\n</section>\n");
        return out;
    }
    out.push_str(
        "<div class=\"scroll\"><table>\n<thead><tr><th scope=\"col\">Rule</th>\
         <th scope=\"col\">Account</th><th scope=\"col\">Containers</th><th scope=\"col\">Blobs</th>\
         <th scope=\"col\">Scope</th><th scope=\"col\">Permissions</th><th scope=\"col\">Lifetime</th>\
         <th scope=\"col\">Revocation</th></tr></thead>\n<tbody>\n",
    );
    for r in rules {
        let containers = r.containers().collect::<Vec<_>>().join(", ");
        let blobs = r
            .blobs()
            .map_or("any".to_owned(), |b| b.collect::<Vec<_>>().join(", "));
        let scopes = r
            .scopes()
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let mut notes = Vec::new();
        if r.require_reason() {
            notes.push("a reason is required");
        }
        if r.require_ip() {
            notes.push("an IP restriction is required");
        }
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\"><code>{}</code><br><span class=\"help\">{}{}</span></th>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td>\
             <td>{} by default, at most {}</td><td>{}</td></tr>",
            esc(r.id()),
            esc(r.description()),
            esc(&if notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", notes.join("; "))
            }),
            esc(r.account()),
            esc(&containers),
            esc(&blobs),
            esc(&scopes),
            esc(&r.permissions().as_string()),
            esc(&views::duration(r.default_ttl())),
            esc(&views::duration(r.max_ttl())),
            esc(views::mechanism(r.revocation())),
        );
    }
    out.push_str("</tbody>\n</table></div>\n</section>\n");
    out
}

/// The request page: the answer to the last request (if any), the form, the rules.
fn request_page(
    state: &WebState,
    session: &SessionView,
    form: &RequestForm,
    result: Option<String>,
    status: StatusCode,
) -> Response {
    let mut body = result.unwrap_or_default();
    let accounts = &state.app.broker.accounts;
    let mut options = String::new();
    for name in accounts.keys() {
        let selected = if *name == form.account {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            options,
            "<option value=\"{}\"{selected}>{}</option>",
            esc(name),
            esc(name)
        );
    }
    let checked = |sas: bool| {
        if form.wants_sas() == sas {
            " checked"
        } else {
            ""
        }
    };
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/ui/request\" class=\"stack\">\n{}\n\
         <fieldset>\n<legend>What you need</legend>\n\
         <label for=\"account\">Storage account</label>\n<select id=\"account\" name=\"account\">{options}</select>\n\
         <label for=\"container\">Container</label>\n\
         <input id=\"container\" name=\"container\" required value=\"{}\" spellcheck=\"false\">\n\
         <label for=\"blob\">Blob</label>\n\
         <input id=\"blob\" name=\"blob\" value=\"{}\" spellcheck=\"false\" aria-describedby=\"blob-help\">\n\
         <p id=\"blob-help\" class=\"help\">For example <code>published/model.bin</code>. Leave it \
         empty for the whole container, where a rule allows container scope.</p>\n\
         <label for=\"permissions\">Permissions</label>\n\
         <input id=\"permissions\" name=\"permissions\" value=\"{}\" spellcheck=\"false\" aria-describedby=\"permissions-help\">\n\
         <p id=\"permissions-help\" class=\"help\">Azure's letters: <code>r</code> read, \
         <code>c</code> create, <code>w</code> write, <code>l</code> list…; default <code>r</code>.</p>\n\
         <label for=\"ttl\">Lifetime</label>\n\
         <input id=\"ttl\" name=\"ttl\" value=\"{}\" placeholder=\"15m\" spellcheck=\"false\" aria-describedby=\"ttl-help\">\n\
         <p id=\"ttl-help\" class=\"help\"><code>90s</code>, <code>15m</code>, <code>1h</code>, or \
         seconds; empty for the rule's default. Longer than the rule allows is refused, never shortened.</p>\n\
         </fieldset>\n<fieldset>\n<legend>What you get</legend>\n\
         <div class=\"choice\"><input type=\"radio\" id=\"kind-link\" name=\"kind\" value=\"link\"{}>\n\
         <label for=\"kind-link\">A broker link: each use gets a fresh SAS of at most 5 minutes, \
         and you can revoke it at once</label></div>\n\
         <div class=\"choice\"><input type=\"radio\" id=\"kind-sas\" name=\"kind\" value=\"sas\"{}>\n\
         <label for=\"kind-sas\">A SAS URL, straight to Azure Storage (where the rule issues one)</label></div>\n\
         <label for=\"uses\">Uses (links only)</label>\n\
         <input id=\"uses\" name=\"uses\" type=\"number\" min=\"1\" max=\"{MAX_USES}\" inputmode=\"numeric\" value=\"{}\" aria-describedby=\"uses-help\">\n\
         <p id=\"uses-help\" class=\"help\">Empty: as often as needed until it expires.</p>\n\
         </fieldset>\n<fieldset>\n<legend>Optional</legend>\n\
         <label for=\"reason\">Reason</label>\n\
         <input id=\"reason\" name=\"reason\" maxlength=\"500\" value=\"{}\" aria-describedby=\"reason-help\">\n\
         <p id=\"reason-help\" class=\"help\">Recorded in the ledger; some rules require one.</p>\n\
         <label for=\"ip\">Client IP address or range</label>\n\
         <input id=\"ip\" name=\"ip\" value=\"{}\" spellcheck=\"false\" aria-describedby=\"ip-help\">\n\
         <p id=\"ip-help\" class=\"help\">For example <code>203.0.113.0/24</code>: Azure accepts the \
         SAS only from there. Some rules require one.</p>\n\
         </fieldset>\n<button type=\"submit\">Request</button>\n</form>\n",
        csrf_field(session),
        esc(&form.container),
        esc(&form.blob),
        esc(&form.permissions),
        esc(&form.ttl),
        checked(false),
        checked(true),
        esc(&form.uses),
        esc(&form.reason),
        esc(&form.ip),
    );
    body.push_str(&policy_table(state, &session.principal));
    html::page(status, "Request access", Nav::Request, Some(session), &body)
}

/// `?cursor=` of the listing.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    cursor: Option<String>,
}

/// The signed-in principal's own issuances, newest first, 50 a page.
pub async fn links(
    State(state): State<WebState>,
    Signed(session): Signed,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let cursor = query.map(|Query(q)| q.cursor).unwrap_or_default();
    let now = Utc::now();
    let filter = ListFilter {
        principal: Some(session.principal.ledger_name()),
        ..ListFilter::default()
    };
    let page = match state
        .app
        .ledger
        .list(
            &filter,
            now,
            50,
            cursor.as_deref().filter(|c| !c.is_empty()),
        )
        .await
    {
        Ok(p) => p,
        Err(LedgerError::InvalidCursor) => {
            return html::message(
                StatusCode::BAD_REQUEST,
                "My links",
                Some(&session),
                "That page of the listing does not exist; start again from My links.",
            );
        }
        Err(e) => return views::unavailable(Some(&session), Code::LedgerUnavailable, &e),
    };
    let mut body = String::from(
        "<p>Everything issued to you, newest first. A broker link can be revoked here and stops \
         at once; a SAS cannot be revoked by its holder (ask an admin). Links and SAS are shown \
         only once, when they are made: this list never shows them.</p>\n",
    );
    if page.items.is_empty() {
        body.push_str("<p>Nothing yet. <a href=\"/ui/request\">Request access</a>.</p>\n");
    } else {
        body.push_str(
            "<div class=\"scroll\"><table id=\"my-links\">\n<caption>Your issuances</caption>\n\
             <thead><tr><th scope=\"col\">Issued</th><th scope=\"col\">Kind</th>\
             <th scope=\"col\">Account / container / blob</th><th scope=\"col\">Expires</th>\
             <th scope=\"col\">Status</th><th scope=\"col\">Issuance</th><th scope=\"col\">Action</th></tr></thead>\n<tbody>\n",
        );
        for r in &page.items {
            let status = r.status_at(now);
            let action = if r.revocation == crate::ledger::RevocationMode::LinkOnly
                && status == crate::ledger::Status::Active
            {
                format!(
                    "<a href=\"/ui/links/{}/revoke\">Revoke<span class=\"visually-hidden\"> link {}</span></a>",
                    esc(&r.id),
                    esc(&r.id)
                )
            } else {
                "—".to_owned()
            };
            let _ = writeln!(
                body,
                "<tr data-id=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td>{}</td>\
                 <td><code>{}</code></td><td>{action}</td></tr>",
                esc(&r.id),
                time(r.issued_at),
                esc(views::kind(r)),
                views::target(r),
                time(r.expires_on),
                esc(&views::relative(r.expires_on, now)),
                views::status(status),
                esc(&r.id),
            );
        }
        body.push_str("</tbody>\n</table></div>\n");
    }
    if let Some(next) = &page.next_cursor {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("cursor", next)
            .finish();
        let _ = writeln!(
            body,
            "<p><a href=\"/ui/links?{}\" rel=\"next\">Older</a></p>",
            esc(&q)
        );
    }
    html::page(
        StatusCode::OK,
        "My links",
        Nav::MyLinks,
        Some(&session),
        &body,
    )
}

/// The confirmation before revoking one's own link.
pub async fn confirm_revoke(
    State(state): State<WebState>,
    Signed(session): Signed,
    Path(id): Path<String>,
) -> Response {
    confirm_page(&state, &session, &id, None).await
}

async fn confirm_page(
    state: &WebState,
    session: &SessionView,
    id: &str,
    error: Option<&str>,
) -> Response {
    let broker = &state.app.broker;
    if let Err(e) = broker.owned_link(id, &session.principal).await {
        return views::revoke_failed(session, e);
    }
    let preview = match broker.revoke_preview(id, Utc::now()).await {
        Ok(p) => p,
        Err(e) => return views::revoke_failed(session, e),
    };
    let r = &preview.record;
    let mut body = String::new();
    if let Some(e) = error {
        let _ = writeln!(
            body,
            "<p class=\"notice error\" role=\"alert\">{}</p>",
            esc(e)
        );
    }
    body.push_str(&html::definitions(&[
        ("Issuance", format!("<code>{}</code>", esc(&r.id))),
        ("Link to", views::target(r)),
        ("Issued", time(r.issued_at)),
        ("Expires", time(r.expires_on)),
        ("Reason given", opt(r.reason.as_deref())),
    ]));
    if preview.already_revoked {
        body.push_str("<p class=\"notice\">This link is already revoked.</p>\n<p><a href=\"/ui/links\">Back to My links</a></p>\n");
        return html::page(
            StatusCode::OK,
            "Revoke a link",
            Nav::MyLinks,
            Some(session),
            &body,
        );
    }
    body.push_str(&views::preview(&preview));
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/ui/links/{}/revoke\" class=\"stack\">\n{}\n\
         <label for=\"reason\">Reason</label>\n\
         <input id=\"reason\" name=\"reason\" required maxlength=\"500\" value=\"no longer needed\">\n\
         <div class=\"actions\"><button type=\"submit\" class=\"danger\">Revoke this link</button> \
         <a href=\"/ui/links\">Cancel</a></div>\n</form>\n",
        esc(&r.id),
        csrf_field(session)
    );
    html::page(
        StatusCode::OK,
        "Revoke a link",
        Nav::MyLinks,
        Some(session),
        &body,
    )
}

/// The reason of a revocation form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReasonForm {
    pub reason: String,
}

/// Revokes one's own link.
pub async fn revoke(
    State(state): State<WebState>,
    Path(id): Path<String>,
    posted: Posted<ReasonForm>,
) -> Response {
    let Posted { session, form } = posted;
    match state
        .app
        .broker
        .revoke_own_link(&id, &session.principal, &form.reason, Utc::now())
        .await
    {
        Ok(outcome) => {
            let mut body = views::outcome(&outcome);
            body.push_str("<p><a href=\"/ui/links\">Back to My links</a></p>\n");
            html::page(
                StatusCode::OK,
                "Link revoked",
                Nav::MyLinks,
                Some(&session),
                &body,
            )
        }
        Err(crate::broker::RevokeError::InvalidRequest(m)) => {
            let mut r = confirm_page(&state, &session, &id, Some(&m)).await;
            if r.status() == StatusCode::OK {
                *r.status_mut() = StatusCode::BAD_REQUEST;
            }
            r
        }
        Err(e) => views::revoke_failed(&session, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_becomes_the_api_body() {
        let f = RequestForm {
            account: "devstoreaccount1".into(),
            container: " models ".into(),
            blob: "published/model.bin".into(),
            permissions: "r".into(),
            ttl: "900".into(),
            kind: "link".into(),
            uses: "3".into(),
            ip: String::new(),
            reason: "  ".into(),
        };
        assert_eq!(
            f.to_json(),
            serde_json::json!({"account": "devstoreaccount1", "container": "models",
                "blob": "published/model.bin", "permissions": "r", "ttl": 900})
        );
        assert_eq!(f.uses().unwrap(), Some(3));
        let f = RequestForm {
            ttl: "15m".into(),
            uses: "many".into(),
            ..f
        };
        assert_eq!(f.to_json()["ttl"], "15m");
        assert!(f.uses().is_err());
        assert!(!f.wants_sas());
        // No container: kept empty, so that the API's own refusal applies.
        let empty = RequestForm::default();
        assert!(matches!(
            MintRequest::from_json(&empty.to_json()),
            Err(MintError::InvalidRequest(_) | MintError::AccountScope(_))
        ));
    }
}
