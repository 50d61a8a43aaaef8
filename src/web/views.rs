//! Page fragments shared by the admin and researcher pages: statuses, issuance summaries,
//! revocation previews and outcomes, and the pages for failures.

use std::fmt::Write as _;

use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Duration, Utc};

use super::html::{self, esc, opt, time};
use super::session::SessionView;
use crate::api::problem::{Code, Problem};
use crate::broker::{Collateral, RevokeError, RevokeOutcome, RevokePreview};
use crate::ledger::{IssuanceRecord, RevocationMode, Status};

/// A status as a labelled badge.
pub fn status(s: Status) -> String {
    let (class, label) = match s {
        Status::Active => ("active", "active"),
        Status::Expired => ("expired", "expired"),
        Status::Revoked => ("revoked", "revoked"),
    };
    format!("<span class=\"status status-{class}\">{label}</span>")
}

/// How an issuance can be revoked, for people.
pub fn mechanism(m: RevocationMode) -> &'static str {
    match m {
        RevocationMode::LinkOnly => "broker link (revocable at once)",
        RevocationMode::StoredAccessPolicy => "stored access policy (revocable with its cohort)",
        RevocationMode::ExpiryOnly => "expiry only (lives until it expires)",
    }
}

/// What an issuance is, for people.
pub fn kind(r: &IssuanceRecord) -> &'static str {
    match r.revocation {
        RevocationMode::LinkOnly => "broker link",
        _ => "SAS",
    }
}

/// `account / container / blob` (escaped).
pub fn target(r: &IssuanceRecord) -> String {
    let mut out = format!("{} / {}", esc(&r.account), esc(&r.container));
    match &r.blob {
        Some(b) => {
            let _ = write!(out, " / {}", esc(b));
        }
        None => out.push_str(" (whole container)"),
    }
    out
}

/// A duration as policy files write it (`90s`, `15m`, `1h`, `1d`).
pub fn duration(d: Duration) -> String {
    let s = d.num_seconds();
    if s != 0 && s % 86_400 == 0 {
        format!("{}d", s / 86_400)
    } else if s != 0 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s != 0 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// The 403 page of a non-admin on an admin page.
pub fn admins_only(session: &SessionView) -> Response {
    html::message(
        StatusCode::FORBIDDEN,
        "Admins only",
        Some(session),
        "This page needs the admin role.",
    )
}

/// A 5xx page: `cause` is logged under a fresh error id (as the API does) and only the id is
/// shown.
pub fn unavailable(
    session: Option<&SessionView>,
    code: Code,
    cause: &dyn std::fmt::Display,
) -> Response {
    let p = Problem::server(code, cause);
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    html::message(
        status,
        p.title,
        session,
        &format!(
            "{} Error id: {}.",
            p.detail,
            p.error_id.as_deref().unwrap_or("-")
        ),
    )
}

/// The page of a revocation that did not happen (or an issuance that is not there).
pub fn revoke_failed(session: &SessionView, e: RevokeError) -> Response {
    match e {
        RevokeError::NotFound => html::message(
            StatusCode::NOT_FOUND,
            "Not found",
            Some(session),
            "No issuance with that id is visible to you.",
        ),
        RevokeError::InvalidRequest(m) => {
            html::message(StatusCode::BAD_REQUEST, "Not revoked", Some(session), &m)
        }
        e @ RevokeError::Policy(_) => unavailable(Some(session), Code::StoredPolicyUnavailable, &e),
        RevokeError::Ledger(e) => unavailable(Some(session), Code::LedgerUnavailable, &e),
        e @ RevokeError::Azure(_) => unavailable(Some(session), Code::AzureUnavailable, &e),
    }
}

fn collateral_table(rows: &[Collateral], caption: &str) -> String {
    let mut out = format!(
        "<table>\n<caption>{}</caption>\n<thead><tr><th scope=\"col\">Issuance</th>\
         <th scope=\"col\">Principal</th><th scope=\"col\">Container / blob</th>\
         <th scope=\"col\">Expires</th></tr></thead>\n<tbody>\n",
        esc(caption)
    );
    for c in rows {
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{} / {}</td><td>{}</td></tr>",
            esc(&c.id),
            esc(&c.principal),
            esc(&c.container),
            opt(c.blob.as_deref()),
            time(c.expires_on)
        );
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// What revoking will achieve (the confirmation page's text).
pub fn preview(p: &RevokePreview) -> String {
    let mut out = format!(
        "<section class=\"effect\" aria-labelledby=\"effect-h\">\n<h2 id=\"effect-h\">What revoking \
         does</h2>\n<p><strong>Mechanism:</strong> {}.</p>\n<p id=\"effect\">{}</p>\n\
         <p>It takes effect by {} at the latest.</p>\n",
        esc(mechanism(p.record.revocation)),
        esc(&p.will_take_effect),
        time(p.effective_by)
    );
    if !p.cohort.is_empty() {
        out.push_str(&collateral_table(
            &p.cohort,
            "Other active issuances that stop too (same stored access policy)",
        ));
        if p.cohort_truncated {
            out.push_str("<p>…and more, not listed.</p>\n");
        }
    }
    out.push_str("</section>\n");
    out
}

/// What a revocation achieved.
pub fn outcome(o: &RevokeOutcome) -> String {
    let mut out = String::new();
    if o.already_revoked {
        out.push_str("<p class=\"notice\">It was already revoked; nothing was done again.</p>\n");
    } else {
        out.push_str("<p class=\"notice success\" role=\"status\">Revoked.</p>\n");
    }
    out.push_str(&html::definitions(&[
        ("Issuance", format!("<code>{}</code>", esc(&o.id))),
        ("Mechanism", esc(mechanism(o.mechanism)).to_string()),
        ("Takes effect", esc(&o.takes_effect).to_string()),
        ("Effective by", time(o.effective_by)),
    ]));
    if !o.collateral.is_empty() {
        out.push_str(&collateral_table(
            &o.collateral,
            "Revoked with it (same stored access policy); their holders must ask again",
        ));
    }
    out
}

/// A time relative to `now`, for listings: "in 14 min", "3 h ago".
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let d = t - now;
    let (n, ago) = if d < Duration::zero() {
        (-d, true)
    } else {
        (d, false)
    };
    let text = if n < Duration::minutes(1) {
        format!("{} s", n.num_seconds())
    } else if n < Duration::hours(2) {
        format!("{} min", n.num_minutes())
    } else if n < Duration::days(2) {
        format!("{} h", n.num_hours())
    } else {
        format!("{} d", n.num_days())
    };
    if ago {
        format!("{text} ago")
    } else {
        format!("in {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_in_policy_files() {
        assert_eq!(duration(Duration::minutes(15)), "15m");
        assert_eq!(duration(Duration::hours(1)), "1h");
        assert_eq!(duration(Duration::days(7)), "7d");
        assert_eq!(duration(Duration::seconds(90)), "90s");
        assert_eq!(duration(Duration::zero()), "0s");
    }

    #[test]
    fn relative_times() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(relative(now + Duration::minutes(14), now), "in 14 min");
        assert_eq!(relative(now - Duration::hours(3), now), "3 h ago");
        assert_eq!(relative(now + Duration::seconds(5), now), "in 5 s");
    }
}
