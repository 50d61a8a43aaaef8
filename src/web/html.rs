//! Hand-written HTML: [`esc`] is the one escaping function, and every value interpolated into a
//! page (from a request, the ledger, the policy or the configuration) goes through it. Markup
//! written here as literals is the only unescaped text. Attribute values are always
//! double-quoted, so escaping `"` (and `'`, `&`, `<`, `>`) is enough for text and attributes
//! alike; no value is ever put into a `<script>`, a `style`, an event handler or a URL scheme.

use std::fmt::{self, Write as _};
use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::session::SessionView;

/// `value`, escaped for HTML text and double-quoted attribute values.
pub fn esc(value: &str) -> Escaped<'_> {
    Escaped(value)
}

/// A value escaped as it is written out (see [`esc`]).
pub struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#x27;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// A static file embedded in the binary, served under a name that carries a hash of its
/// content, so that it can be cached for a year and still change with a new release.
pub struct Asset {
    /// `/ui/static/<stem>.<hash>.<ext>`
    pub path: String,
    pub content_type: &'static str,
    pub body: &'static str,
}

impl Asset {
    fn new(stem: &str, ext: &str, content_type: &'static str, body: &'static str) -> Self {
        let hash = crate::sas::sign::hex_sha256(body.as_bytes());
        Self {
            path: format!("/ui/static/{stem}.{}.{ext}", &hash[..12]),
            content_type,
            body,
        }
    }
}

/// The stylesheet, the copy button's script and the icon.
pub struct Assets {
    pub css: Asset,
    pub js: Asset,
    pub icon: Asset,
}

/// The embedded assets, with their hashed paths.
pub static ASSETS: LazyLock<Assets> = LazyLock::new(|| Assets {
    css: Asset::new(
        "sasgate",
        "css",
        "text/css; charset=utf-8",
        include_str!("static/sasgate.css"),
    ),
    js: Asset::new(
        "copy",
        "js",
        "text/javascript; charset=utf-8",
        include_str!("static/copy.js"),
    ),
    icon: Asset::new(
        "icon",
        "svg",
        "image/svg+xml",
        include_str!("static/icon.svg"),
    ),
});

/// Which entry of the navigation a page belongs to (marked `aria-current`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    None,
    Home,
    Request,
    MyLinks,
    Issuances,
    Inspect,
    Ledger,
}

/// A full page: the layout around `body` (already escaped markup), with the navigation of
/// `session`'s principal, sent with `status`.
pub fn page(
    status: StatusCode,
    title: &str,
    nav: Nav,
    session: Option<&SessionView>,
    body: &str,
) -> Response {
    let a = &*ASSETS;
    let mut out = String::with_capacity(body.len() + 2048);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · sasgate</title>\n<link rel=\"icon\" href=\"{}\" type=\"image/svg+xml\">\n\
         <link rel=\"stylesheet\" href=\"{}\">\n<script src=\"{}\" defer></script>\n</head>\n<body>\n\
         <a class=\"skip\" href=\"#main\">Skip to main content</a>\n<header class=\"top\">\n\
         <a class=\"brand\" href=\"/ui/\">sasgate</a>\n",
        esc(title),
        esc(&a.icon.path),
        esc(&a.css.path),
        esc(&a.js.path),
    );
    if let Some(s) = session {
        out.push_str("<nav aria-label=\"Main\"><ul>\n");
        let mut item = |href: &str, label: &str, this: Nav| {
            let current = if this == nav {
                " aria-current=\"page\""
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "<li><a href=\"{}\"{current}>{}</a></li>",
                esc(href),
                esc(label)
            );
        };
        item("/ui/", "Home", Nav::Home);
        item("/ui/request", "Request access", Nav::Request);
        item("/ui/links", "My links", Nav::MyLinks);
        if s.principal.is_admin() {
            item("/ui/issuances", "Issuances", Nav::Issuances);
            item("/ui/inspect", "Inspect a SAS", Nav::Inspect);
            item("/ui/ledger", "Ledger", Nav::Ledger);
        }
        let roles = if s.principal.roles.is_empty() {
            "no role".to_owned()
        } else {
            s.principal.roles.join(", ")
        };
        let _ = write!(
            out,
            "</ul></nav>\n<form class=\"signout\" method=\"post\" action=\"/ui/signout\">\
             <span>Signed in as <strong>{}</strong> ({})</span> {}\
             <button type=\"submit\">Sign out</button></form>\n",
            esc(&s.principal.name),
            esc(&roles),
            csrf_field(s),
        );
    }
    let _ = write!(
        out,
        "</header>\n<main id=\"main\" tabindex=\"-1\">\n<h1>{}</h1>\n{body}\n</main>\n</body>\n</html>\n",
        esc(title)
    );
    let mut response = (status, out).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// The hidden CSRF field every form that POSTs carries.
pub fn csrf_field(session: &SessionView) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(&session.csrf)
    )
}

/// A page that only says something (an error, a refusal), with a way back.
pub fn message(
    status: StatusCode,
    title: &str,
    session: Option<&SessionView>,
    text: &str,
) -> Response {
    let back = if session.is_some() {
        "<p><a href=\"/ui/\">Back to the start page</a></p>"
    } else {
        "<p><a href=\"/ui/signin\">Sign in</a></p>"
    };
    page(
        status,
        title,
        Nav::None,
        session,
        &format!("<p class=\"notice\">{}</p>\n{back}", esc(text)),
    )
}

/// A time as the pages show it, in a `<time>` element.
pub fn time(t: DateTime<Utc>) -> String {
    format!(
        "<time datetime=\"{}\">{}</time>",
        esc(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        esc(&t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
    )
}

/// An optional text, or an em dash.
pub fn opt(value: Option<&str>) -> String {
    match value {
        Some(v) if !v.is_empty() => esc(v).to_string(),
        _ => "—".to_owned(),
    }
}

/// A `<dl>` of label/value rows; values are markup already escaped by the caller.
pub fn definitions(rows: &[(&str, String)]) -> String {
    let mut out = String::from("<dl class=\"fields\">\n");
    for (label, value) in rows {
        let _ = writeln!(out, "<dt>{}</dt><dd>{value}</dd>", esc(label));
    }
    out.push_str("</dl>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_special_character_is_escaped() {
        assert_eq!(
            esc("<script>alert('x') & \"y\"</script>").to_string(),
            "&lt;script&gt;alert(&#x27;x&#x27;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(esc("").to_string(), "");
        assert_eq!(esc("plain/text_1.bin").to_string(), "plain/text_1.bin");
        // Non-ASCII text passes through whole (the page is UTF-8).
        assert_eq!(esc("données → ok").to_string(), "données → ok");
        assert_eq!(esc("&amp;").to_string(), "&amp;amp;", "no double-decoding");
        assert_eq!(esc("a\"b").to_string(), "a&quot;b");
    }

    #[test]
    fn interpolated_values_cannot_break_out_of_the_page() {
        let hostile = "\"><img src=x onerror=alert(1)>";
        let body = definitions(&[
            ("blob", esc(hostile).to_string()),
            ("x", opt(Some(hostile))),
        ]);
        assert!(!body.contains("<img"), "{body}");
        let r = message(StatusCode::OK, hostile, None, hostile);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
    }

    #[test]
    fn asset_paths_carry_a_content_hash() {
        let a = &*ASSETS;
        for asset in [&a.css, &a.js, &a.icon] {
            assert!(asset.path.starts_with("/ui/static/"), "{}", asset.path);
            assert!(!asset.body.is_empty());
        }
        assert_ne!(a.css.path, a.js.path);
    }
}
