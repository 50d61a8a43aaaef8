//! Admin pages: the issuance listing with filters, one issuance with its redemptions and
//! revocation, revocation after a confirmation, grading and looking up a pasted SAS, and the
//! ledger's verification. Each handler's first line checks the admin role.

use std::fmt::Write as _;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use super::WebState;
use super::extract::{Posted, Signed};
use super::html::{self, Nav, csrf_field, definitions, esc, opt, time};
use super::researcher::ReasonForm;
use super::session::SessionView;
use super::views;
use crate::api::problem::Code;
use crate::broker::LookupError;
use crate::ledger::{IssuanceRecord, LedgerError, ListFilter, RevocationMode, Status};

/// Issuances a listing page shows.
const PAGE_SIZE: usize = 50;

/// The listing's filters, as the filter form sends them (empty means "any").
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    principal: String,
    account: String,
    container: String,
    status: String,
    since: String,
    until: String,
    cursor: String,
}

/// A time filter: RFC 3339, or a date (midnight UTC).
fn parse_time(text: &str) -> Result<Option<DateTime<Utc>>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(Some(d.with_timezone(&Utc)));
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| Some(d.and_utc()))
        .ok_or_else(|| {
            format!("'{t}' is not a date (2026-11-29) or an RFC 3339 time (2026-11-29T12:00:00Z)")
        })
}

impl ListQuery {
    /// The ledger filter, or what is wrong with the form.
    fn filter(&self) -> Result<ListFilter, String> {
        let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let status = match self.status.trim() {
            "" => None,
            "active" => Some(Status::Active),
            "expired" => Some(Status::Expired),
            "revoked" => Some(Status::Revoked),
            _ => return Err("status: active, expired or revoked".into()),
        };
        Ok(ListFilter {
            principal: text(&self.principal),
            account: text(&self.account),
            container: text(&self.container),
            status,
            since: parse_time(&self.since).map_err(|e| format!("issued from: {e}"))?,
            until: parse_time(&self.until).map_err(|e| format!("issued before: {e}"))?,
        })
    }

    /// The query string of these filters with `cursor`.
    fn with_cursor(&self, cursor: &str) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("principal", &self.principal),
            ("account", &self.account),
            ("container", &self.container),
            ("status", &self.status),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if !v.trim().is_empty() {
                q.append_pair(k, v.trim());
            }
        }
        q.append_pair("cursor", cursor);
        q.finish()
    }
}

fn filter_form(q: &ListQuery) -> String {
    let option = |value: &str, label: &str| {
        let selected = if q.status.trim() == value {
            " selected"
        } else {
            ""
        };
        format!(
            "<option value=\"{}\"{selected}>{}</option>",
            esc(value),
            esc(label)
        )
    };
    format!(
        "<form method=\"get\" action=\"/ui/issuances\" class=\"filters\" role=\"search\" aria-label=\"Filter issuances\">\n\
         <div><label for=\"f-principal\">Principal</label>\
         <input id=\"f-principal\" name=\"principal\" value=\"{}\" placeholder=\"user:alice\" spellcheck=\"false\"></div>\n\
         <div><label for=\"f-account\">Account</label>\
         <input id=\"f-account\" name=\"account\" value=\"{}\" spellcheck=\"false\"></div>\n\
         <div><label for=\"f-container\">Container</label>\
         <input id=\"f-container\" name=\"container\" value=\"{}\" spellcheck=\"false\"></div>\n\
         <div><label for=\"f-status\">Status</label><select id=\"f-status\" name=\"status\">{}{}{}{}</select></div>\n\
         <div><label for=\"f-since\">Issued from</label>\
         <input id=\"f-since\" name=\"since\" value=\"{}\" placeholder=\"2026-11-29\"></div>\n\
         <div><label for=\"f-until\">Issued before</label>\
         <input id=\"f-until\" name=\"until\" value=\"{}\" placeholder=\"2026-11-30T12:00:00Z\"></div>\n\
         <div class=\"actions\"><button type=\"submit\">Filter</button> <a href=\"/ui/issuances\">Clear</a></div>\n\
         </form>\n",
        esc(&q.principal),
        esc(&q.account),
        esc(&q.container),
        option("", "any"),
        option("active", "active"),
        option("expired", "expired"),
        option("revoked", "revoked"),
        esc(&q.since),
        esc(&q.until),
    )
}

/// Lists issuances, newest first, with the API's filters.
pub async fn list(
    State(state): State<WebState>,
    Signed(session): Signed,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    if !session.principal.is_admin() {
        return views::admins_only(&session);
    }
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let mut body = filter_form(&q);
    let filter = match q.filter() {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(
                body,
                "<p class=\"notice error\" role=\"alert\">{}</p>",
                esc(&e)
            );
            return html::page(
                StatusCode::BAD_REQUEST,
                "Issuances",
                Nav::Issuances,
                Some(&session),
                &body,
            );
        }
    };
    let now = Utc::now();
    let cursor = Some(q.cursor.trim()).filter(|c| !c.is_empty());
    let page = match state.app.ledger.list(&filter, now, PAGE_SIZE, cursor).await {
        Ok(p) => p,
        Err(LedgerError::InvalidCursor) => {
            body.push_str("<p class=\"notice error\" role=\"alert\">That page of the listing does not exist; filter again.</p>\n");
            return html::page(
                StatusCode::BAD_REQUEST,
                "Issuances",
                Nav::Issuances,
                Some(&session),
                &body,
            );
        }
        Err(e) => return views::unavailable(Some(&session), Code::LedgerUnavailable, &e),
    };
    if page.items.is_empty() {
        body.push_str("<p id=\"no-issuances\">No issuance matches.</p>\n");
    } else {
        body.push_str(
            "<div class=\"scroll\"><table id=\"issuances\">\n<caption>Issuances, newest first</caption>\n\
             <thead><tr><th scope=\"col\">Issued</th><th scope=\"col\">Issuance</th>\
             <th scope=\"col\">Principal</th><th scope=\"col\">Account / container / blob</th>\
             <th scope=\"col\">Permissions</th><th scope=\"col\">Rule</th><th scope=\"col\">Kind</th>\
             <th scope=\"col\">Status</th></tr></thead>\n<tbody>\n",
        );
        for r in &page.items {
            let _ = writeln!(
                body,
                "<tr data-id=\"{}\"><td>{}</td><td><a href=\"/ui/issuances/{}\"><code>{}</code></a></td>\
                 <td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.id),
                time(r.issued_at),
                esc(&r.id),
                esc(&r.id),
                esc(&r.principal),
                views::target(r),
                esc(&r.permissions),
                esc(&r.rule),
                esc(views::kind(r)),
                views::status(r.status_at(now)),
            );
        }
        body.push_str("</tbody>\n</table></div>\n");
    }
    if let Some(next) = &page.next_cursor {
        let _ = writeln!(
            body,
            "<p><a href=\"/ui/issuances?{}\" rel=\"next\">Older issuances</a></p>",
            esc(&q.with_cursor(next))
        );
    }
    html::page(
        StatusCode::OK,
        "Issuances",
        Nav::Issuances,
        Some(&session),
        &body,
    )
}

async fn record_or_page(
    state: &WebState,
    session: &SessionView,
    id: &str,
) -> Result<IssuanceRecord, Response> {
    match state.app.ledger.get(id).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(html::message(
            StatusCode::NOT_FOUND,
            "Not found",
            Some(session),
            "No issuance with that id.",
        )),
        Err(e) => Err(views::unavailable(
            Some(session),
            Code::LedgerUnavailable,
            &e,
        )),
    }
}

/// One issuance: who, what, why, its revocation, and (for a link) its redemptions.
pub async fn show(
    State(state): State<WebState>,
    Signed(session): Signed,
    Path(id): Path<String>,
) -> Response {
    if !session.principal.is_admin() {
        return views::admins_only(&session);
    }
    let r = match record_or_page(&state, &session, &id).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    let now = Utc::now();
    let link = if r.revocation == RevocationMode::LinkOnly {
        match state.app.ledger.link(&r.id).await {
            Ok(l) => l,
            Err(e) => return views::unavailable(Some(&session), Code::LedgerUnavailable, &e),
        }
    } else {
        None
    };
    let status = r.status_at(now);
    let mut body = format!(
        "<p class=\"lead\">{} {} for <strong>{}</strong></p>\n",
        views::status(status),
        esc(views::kind(&r)),
        esc(&r.principal)
    );
    body.push_str("<section aria-labelledby=\"who-h\"><h2 id=\"who-h\">Issuance</h2>\n");
    body.push_str(&definitions(&[
        ("Id", format!("<code>{}</code>", esc(&r.id))),
        ("Issued", time(r.issued_at)),
        ("Principal", esc(&r.principal).to_string()),
        ("Client address", opt(r.client_addr.as_deref())),
        ("Reason", opt(r.reason.as_deref())),
        ("Rule", format!("<code>{}</code>", esc(&r.rule))),
        ("Account / container / blob", views::target(&r)),
        (
            "Permissions",
            format!("<code>{}</code>", esc(&r.permissions)),
        ),
        (
            "Valid",
            format!("{} to {}", time(r.starts_on), time(r.expires_on)),
        ),
        ("IP restriction", opt(r.ip.as_deref())),
        (
            "Protocol, version",
            format!("{}, {}", esc(&r.protocol), esc(&r.version)),
        ),
        (
            "Signed with",
            match r.signing_mode {
                crate::ledger::SigningMode::AccountKey => "the account key".to_owned(),
                crate::ledger::SigningMode::UserDelegation => format!(
                    "a user delegation key (object id {})",
                    opt(r.key_oid.as_deref())
                ),
            },
        ),
        ("Stored access policy", opt(r.policy_id.as_deref())),
        (
            "Signature SHA-256",
            format!("<code class=\"hash\">{}</code>", esc(&r.signature_sha256)),
        ),
    ]));
    if let Some(claims) = &r.principal_claims {
        let _ = writeln!(
            body,
            "<details><summary>OIDC claims that decided</summary><pre>{}</pre></details>",
            esc(&serde_json::to_string_pretty(claims).unwrap_or_default())
        );
    }
    body.push_str("</section>\n");

    body.push_str(
        "<section aria-labelledby=\"rev-h\" id=\"revocation\"><h2 id=\"rev-h\">Revocation</h2>\n",
    );
    let _ = writeln!(
        body,
        "<p>Mechanism: {}.</p>",
        esc(views::mechanism(r.revocation))
    );
    match (r.revoked_at, status) {
        (Some(at), _) => {
            let _ = writeln!(
                body,
                "<ol class=\"history\"><li>{}: revoked by <strong>{}</strong>, reason: \
                 <q id=\"revoke-reason\">{}</q></li></ol>",
                time(at),
                opt(r.revoked_by.as_deref()),
                opt(r.revoke_reason.as_deref())
            );
        }
        (None, Status::Expired) => {
            body.push_str("<p>Never revoked; it has expired.</p>\n");
        }
        _ => {
            let _ = writeln!(
                body,
                "<p>Not revoked.</p>\n<p><a class=\"button danger\" href=\"/ui/issuances/{}/revoke\">Revoke…</a></p>",
                esc(&r.id)
            );
        }
    }
    body.push_str("</section>\n");

    if let Some((l, redemptions)) = &link {
        body.push_str("<section aria-labelledby=\"red-h\"><h2 id=\"red-h\">Broker link</h2>\n");
        body.push_str(&definitions(&[
            (
                "Redeemed",
                match l.max_uses {
                    Some(max) => format!("{} of {max} times", l.uses),
                    None => format!("{} times (no limit)", l.uses),
                },
            ),
            ("Link expires", time(l.expires_at)),
        ]));
        if redemptions.is_empty() {
            body.push_str("<p id=\"no-redemptions\">Not redeemed yet.</p>\n");
        } else {
            body.push_str(
                "<div class=\"scroll\"><table id=\"redemptions\">\n<caption>Redemptions, newest first \
                 (each minted a SAS of at most 5 minutes)</caption>\n<thead><tr>\
                 <th scope=\"col\">At</th><th scope=\"col\">Client address</th>\
                 <th scope=\"col\">User agent</th><th scope=\"col\">SAS expires</th>\
                 <th scope=\"col\">Redemption</th></tr></thead>\n<tbody>\n",
            );
            for d in redemptions {
                let _ = writeln!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                    time(d.at),
                    opt(d.client_addr.as_deref()),
                    opt(d.user_agent.as_deref()),
                    time(d.expires_on),
                    esc(&d.id)
                );
            }
            body.push_str("</tbody>\n</table></div>\n");
        }
        body.push_str("</section>\n");
    }
    let title = format!("Issuance {}", r.id);
    html::page(
        StatusCode::OK,
        &title,
        Nav::Issuances,
        Some(&session),
        &body,
    )
}

/// The confirmation before an admin revokes: what it will achieve, and the reason field.
pub async fn confirm_revoke(
    State(state): State<WebState>,
    Signed(session): Signed,
    Path(id): Path<String>,
) -> Response {
    if !session.principal.is_admin() {
        return views::admins_only(&session);
    }
    confirm_page(&state, &session, &id, None).await
}

async fn confirm_page(
    state: &WebState,
    session: &SessionView,
    id: &str,
    error: Option<&str>,
) -> Response {
    let preview = match state.app.broker.revoke_preview(id, Utc::now()).await {
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
    body.push_str(&definitions(&[
        (
            "Issuance",
            format!(
                "<a href=\"/ui/issuances/{}\"><code>{}</code></a>",
                esc(&r.id),
                esc(&r.id)
            ),
        ),
        ("Principal", esc(&r.principal).to_string()),
        ("Account / container / blob", views::target(r)),
        ("Expires", time(r.expires_on)),
    ]));
    if preview.already_revoked {
        let _ = writeln!(
            body,
            "<p class=\"notice\">Already revoked. <a href=\"/ui/issuances/{}\">Back to the issuance</a></p>",
            esc(&r.id)
        );
        return html::page(
            StatusCode::OK,
            "Revoke",
            Nav::Issuances,
            Some(session),
            &body,
        );
    }
    body.push_str(&views::preview(&preview));
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/ui/issuances/{}/revoke\" class=\"stack\">\n{}\n\
         <label for=\"reason\">Reason (recorded in the ledger)</label>\n\
         <input id=\"reason\" name=\"reason\" required maxlength=\"500\" aria-describedby=\"reason-help\">\n\
         <p id=\"reason-help\" class=\"help\">For example: leaked in a public repository.</p>\n\
         <div class=\"actions\"><button type=\"submit\" class=\"danger\">Revoke</button> \
         <a href=\"/ui/issuances/{}\">Cancel</a></div>\n</form>\n",
        esc(&r.id),
        csrf_field(session),
        esc(&r.id),
    );
    html::page(
        StatusCode::OK,
        "Revoke",
        Nav::Issuances,
        Some(session),
        &body,
    )
}

/// Revokes an issuance with the reason given, and shows what that achieved.
pub async fn revoke(
    State(state): State<WebState>,
    Path(id): Path<String>,
    posted: Posted<ReasonForm>,
) -> Response {
    let Posted { session, form } = posted;
    if !session.principal.is_admin() {
        return views::admins_only(&session);
    }
    match state
        .app
        .broker
        .revoke(&id, &session.principal, &form.reason, Utc::now())
        .await
    {
        Ok(outcome) => {
            let mut body = views::outcome(&outcome);
            let _ = writeln!(
                body,
                "<p><a href=\"/ui/issuances/{}\">Back to the issuance</a></p>",
                esc(&outcome.id)
            );
            html::page(
                StatusCode::OK,
                "Revoked",
                Nav::Issuances,
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

fn inspect_page(session: &SessionView, result: &str, status: StatusCode) -> Response {
    let body = format!(
        "{result}<form method=\"post\" action=\"/ui/inspect\" class=\"stack\">\n{}\n\
         <label for=\"url\">A SAS URL, its query string, or a broker link</label>\n\
         <textarea id=\"url\" name=\"url\" rows=\"4\" required spellcheck=\"false\" \
         aria-describedby=\"url-help\"></textarea>\n\
         <p id=\"url-help\" class=\"help\">It is graded and looked up by the hash of its \
         signature; it is not stored, logged or shown again.</p>\n\
         <button type=\"submit\">Inspect</button>\n</form>\n",
        csrf_field(session)
    );
    html::page(status, "Inspect a SAS", Nav::Inspect, Some(session), &body)
}

/// The form to paste a SAS URL into.
pub async fn inspect_form(Signed(session): Signed) -> Response {
    if !session.principal.is_admin() {
        return views::admins_only(&session);
    }
    inspect_page(&session, "", StatusCode::OK)
}

/// The pasted text (a secret: never echoed back).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct InspectForm {
    url: String,
}

fn kind_text(k: crate::sas::parse::SasKind) -> &'static str {
    match k {
        crate::sas::parse::SasKind::Account => "account SAS (account-wide)",
        crate::sas::parse::SasKind::UserDelegation => "user delegation SAS",
        crate::sas::parse::SasKind::Service => "service SAS (signed with an account key)",
    }
}

/// Grades the pasted SAS ([`crate::sas::lint::lint`], as `POST /v1/lint`) and finds its
/// issuance ([`crate::broker::Broker::lookup`], as `POST /v1/issuances/lookup`).
pub async fn inspect(State(state): State<WebState>, posted: Posted<InspectForm>) -> Response {
    let Posted { session, form } = posted;
    if !session.principal.is_admin() {
        return views::admins_only(&session);
    }
    let text = form.url.trim();
    let now = Utc::now();
    let mut out = String::from(
        "<section id=\"lookup\" class=\"result\" aria-labelledby=\"lookup-h\">\n<h2 id=\"lookup-h\">Who it was issued to</h2>\n",
    );
    match state.app.broker.lookup(text).await {
        Ok(Some(r)) => {
            let _ = writeln!(
                out,
                "<p id=\"lookup-found\">sasgate issued it: <a href=\"/ui/issuances/{}\"><code>{}</code></a>, \
                 {} {}.</p>",
                esc(&r.id),
                esc(&r.id),
                esc(views::kind(&r)),
                views::status(r.status_at(now))
            );
            out.push_str(&definitions(&[
                ("Principal", esc(&r.principal).to_string()),
                ("Issued", time(r.issued_at)),
                ("Account / container / blob", views::target(&r)),
                ("Expires", time(r.expires_on)),
                ("Reason", opt(r.reason.as_deref())),
                ("Revocation", esc(views::mechanism(r.revocation)).to_string()),
            ]));
            if r.status_at(now) == Status::Active {
                let _ = writeln!(
                    out,
                    "<p><a class=\"button danger\" href=\"/ui/issuances/{}/revoke\">Revoke…</a></p>",
                    esc(&r.id)
                );
            }
        }
        Ok(None) => out.push_str(
            "<p id=\"lookup-none\">No issuance has this signature: sasgate did not issue it (it may \
             have been signed with the account key elsewhere; rotate the key to stop it).</p>\n",
        ),
        Err(LookupError::NotASas(m)) => {
            let _ = writeln!(out, "<p id=\"lookup-none\">{}</p>", esc(&m));
        }
        Err(LookupError::Ledger(e)) => {
            return views::unavailable(Some(&session), Code::LedgerUnavailable, &e);
        }
    }
    out.push_str("</section>\n");
    out.push_str("<section id=\"grade\" class=\"result\" aria-labelledby=\"grade-h\">\n<h2 id=\"grade-h\">Grade</h2>\n");
    match crate::sas::parse::parse(text) {
        Err(e) => {
            let _ = writeln!(
                out,
                "<p>Not graded: {} (a broker link has no SAS of its own: each use mints one of at most 5 minutes).</p>",
                esc(&e.to_string())
            );
        }
        Ok(parsed) => {
            let report = crate::sas::lint::lint(&parsed, now);
            let _ = writeln!(
                out,
                "<p>A {}; worst finding: <strong id=\"worst\" class=\"severity-{}\">{}</strong>.</p>",
                esc(kind_text(report.kind)),
                esc(&report.worst.label().to_lowercase()),
                esc(report.worst.label())
            );
            if let Some(l) = &report.location {
                out.push_str(&definitions(&[
                    ("Host", esc(&l.host).to_string()),
                    ("Account", opt(l.account.as_deref())),
                    ("Container", opt(l.container.as_deref())),
                    ("Blob", opt(l.blob.as_deref())),
                ]));
            }
            out.push_str(
                "<table id=\"findings\">\n<caption>Findings</caption>\n<thead><tr>\
                 <th scope=\"col\">Severity</th><th scope=\"col\">Code</th><th scope=\"col\">Finding</th>\
                 </tr></thead>\n<tbody>\n",
            );
            for f in &report.findings {
                let _ = writeln!(
                    out,
                    "<tr><td class=\"severity-{}\">{}</td><td><code>{}</code></td><td>{}</td></tr>",
                    esc(&f.severity.label().to_lowercase()),
                    esc(f.severity.label()),
                    esc(f.code),
                    esc(&f.message)
                );
            }
            out.push_str("</tbody>\n</table>\n<table>\n<caption>Parameters (without the signature)</caption>\n\
                          <thead><tr><th scope=\"col\">Parameter</th><th scope=\"col\">Value</th></tr></thead>\n<tbody>\n");
            for (k, v) in &report.params {
                let _ = writeln!(
                    out,
                    "<tr><th scope=\"row\"><code>{}</code></th><td><code>{}</code></td></tr>",
                    esc(k),
                    esc(v)
                );
            }
            out.push_str("</tbody>\n</table>\n");
        }
    }
    out.push_str("</section>\n");
    inspect_page(&session, &out, StatusCode::OK)
}

/// The ledger's verification: the whole hash chain and every issuance row against it.
pub async fn ledger(State(state): State<WebState>, Signed(session): Signed) -> Response {
    if !session.principal.is_admin() {
        return views::admins_only(&session);
    }
    let report = match state.app.ledger.verify().await {
        Ok(r) => r,
        Err(e) => return views::unavailable(Some(&session), Code::LedgerUnavailable, &e),
    };
    let verdict = match &report.first_bad {
        None => {
            "<p class=\"notice success\" id=\"verdict\" role=\"status\">Intact: every chain entry \
                 links to the one before, and every issuance row matches the chain.</p>\n"
                .to_owned()
        }
        Some(bad) => format!(
            "<p class=\"notice error\" id=\"verdict\" role=\"alert\">Broken: the first record that \
             does not fit is {} <code>{}</code>: {}. Restore from a backup and compare with the \
             heads you anchored.</p>\n",
            esc(bad.table),
            esc(&bad.record),
            esc(&bad.problem)
        ),
    };
    let mut body = verdict;
    body.push_str(&definitions(&[
        ("Chain entries checked", report.entries.to_string()),
        ("Issuance rows checked", report.issuances.to_string()),
        (
            "Head",
            format!(
                "<code class=\"hash\" id=\"head\">{}</code>",
                esc(&report.head)
            ),
        ),
    ]));
    body.push_str(
        "<p class=\"help\">Record the head somewhere the ledger's writers cannot change it \
         (<code>sasgate ledger head</code>); a later verification against it shows whether \
         history was rewritten.</p>\n",
    );
    html::page(StatusCode::OK, "Ledger", Nav::Ledger, Some(&session), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_read_dates_and_statuses() {
        let q = ListQuery {
            principal: " user:alice ".into(),
            status: "revoked".into(),
            since: "2026-11-29".into(),
            until: "2026-11-30T12:00:00+01:00".into(),
            ..ListQuery::default()
        };
        let f = q.filter().unwrap();
        assert_eq!(f.principal.as_deref(), Some("user:alice"));
        assert_eq!(f.status, Some(Status::Revoked));
        assert_eq!(f.since.unwrap().to_rfc3339(), "2026-11-29T00:00:00+00:00");
        assert_eq!(f.until.unwrap().to_rfc3339(), "2026-11-30T11:00:00+00:00");
        assert!(f.account.is_none());
        assert!(
            ListQuery {
                status: "gone".into(),
                ..ListQuery::default()
            }
            .filter()
            .is_err()
        );
        assert!(
            ListQuery {
                since: "yesterday".into(),
                ..ListQuery::default()
            }
            .filter()
            .is_err()
        );
        assert_eq!(
            q.with_cursor("abc"),
            "principal=user%3Aalice&status=revoked&since=2026-11-29&until=2026-11-30T12%3A00%3A00%2B01%3A00&cursor=abc"
        );
    }
}
