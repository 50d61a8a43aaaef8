//! Cross-site request forgery checks, both required on every POST of the web pages:
//!
//! 1. the form's synchronizer token (hidden field `csrf`) equals its session's token, compared
//!    in constant time ([`tokens_match`]);
//! 2. the request's `Origin` (or, when a browser sends none, its `Referer`) is this server's own
//!    origin, the origin of `server.public_url` ([`same_origin`]).
//!
//! `Origin: null` is refused: browsers send it from sandboxed frames and opaque origins, and
//! also for a same-origin POST from a page whose referrer policy is `no-referrer`, which is why
//! the pages use `Referrer-Policy: same-origin` (see `super` for the reasoning).

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq as _;

/// True when `given` is the session's token `expected`. Constant time in the content (the
/// length of a token is no secret); an empty token never matches.
pub fn tokens_match(expected: &str, given: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// Why a request was not accepted as coming from our own pages.
#[derive(Debug, PartialEq, Eq)]
pub enum OriginError {
    /// Neither `Origin` nor `Referer` was sent.
    Missing,
    /// `Origin: null`, or a header that is not a URL.
    Opaque,
    /// Another origin (not logged: it could carry anything).
    Foreign,
}

impl OriginError {
    /// A stable word for the log.
    pub fn as_str(&self) -> &'static str {
        match self {
            OriginError::Missing => "no_origin",
            OriginError::Opaque => "opaque_origin",
            OriginError::Foreign => "foreign_origin",
        }
    }
}

/// Checks that the request comes from `own_origin` (`scheme://host[:port]`, as
/// [`url::Origin::ascii_serialization`] writes it): by its `Origin` header, or by its `Referer`
/// when `Origin` is absent.
pub fn same_origin(headers: &HeaderMap, own_origin: &str) -> Result<(), OriginError> {
    let value = |name| {
        headers
            .get(name)
            .map(|v| v.to_str().map_err(|_| OriginError::Opaque))
    };
    let claimed = match (value(header::ORIGIN), value(header::REFERER)) {
        (Some(origin), _) => origin?,
        (None, Some(referer)) => referer?,
        (None, None) => return Err(OriginError::Missing),
    };
    let url = url::Url::parse(claimed.trim()).map_err(|_| OriginError::Opaque)?;
    let origin = url.origin();
    if !origin.is_tuple() {
        return Err(OriginError::Opaque);
    }
    if origin.ascii_serialization() == own_origin {
        Ok(())
    } else {
        Err(OriginError::Foreign)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "http://127.0.0.1:8080";

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn tokens_must_match_exactly() {
        let t = "Q2hlY2sgdGhlIHRva2VuIGluIGNvbnN0YW50IHRpbWU";
        assert!(tokens_match(t, t));
        assert!(!tokens_match(t, ""));
        assert!(!tokens_match(t, &t[..42]));
        assert!(!tokens_match(t, &format!("{t}x")));
        assert!(!tokens_match(t, &t.to_uppercase()));
        assert!(!tokens_match("", ""), "an empty token never matches");
    }

    #[test]
    fn only_our_own_origin_may_post() {
        assert_eq!(same_origin(&headers(&[(header::ORIGIN, OWN)]), OWN), Ok(()));
        // Default ports and case are normalised as browsers do.
        assert_eq!(
            same_origin(
                &headers(&[(header::ORIGIN, "HTTPS://Sasgate.Example:443")]),
                "https://sasgate.example"
            ),
            Ok(())
        );
        for foreign in [
            "http://127.0.0.1:8081",
            "https://127.0.0.1:8080",
            "http://localhost:8080",
            "http://evil.example",
        ] {
            assert_eq!(
                same_origin(&headers(&[(header::ORIGIN, foreign)]), OWN),
                Err(OriginError::Foreign),
                "{foreign}"
            );
        }
        assert_eq!(
            same_origin(&headers(&[(header::ORIGIN, "null")]), OWN),
            Err(OriginError::Opaque)
        );
        assert_eq!(same_origin(&headers(&[]), OWN), Err(OriginError::Missing));
        // Without Origin, the Referer decides; with Origin, Origin does.
        assert_eq!(
            same_origin(
                &headers(&[(header::REFERER, "http://127.0.0.1:8080/ui/issuances?x=1")]),
                OWN
            ),
            Ok(())
        );
        assert_eq!(
            same_origin(
                &headers(&[(header::REFERER, "http://evil.example/ui/")]),
                OWN
            ),
            Err(OriginError::Foreign)
        );
        assert_eq!(
            same_origin(
                &headers(&[
                    (header::ORIGIN, "http://evil.example"),
                    (header::REFERER, "http://127.0.0.1:8080/ui/")
                ]),
                OWN
            ),
            Err(OriginError::Foreign)
        );
    }
}
