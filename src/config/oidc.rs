//! `[[auth.oidc]]`: issuers whose ID tokens sasgate accepts (GitHub Actions, GitLab CI, …).
//!
//! ```toml
//! [[auth.oidc]]
//! name = "github"                                   # policies say oidc:github
//! issuer = "https://token.actions.githubusercontent.com"
//! audiences = ["sasgate"]
//! jwks_url = "https://token.actions.githubusercontent.com/.well-known/jwks"   # or jwks_file
//! algorithms = ["RS256"]                            # RS256 and/or ES256; nothing else
//! leeway = "60s"
//! required_claims = ["repository", "ref"]
//! ```

use std::path::PathBuf;

use chrono::Duration;
use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};
use url::Url;

use super::is_loopback;
use crate::auth::oidc::{IssuerConfig, JwksSource};
use crate::policy::parse_duration;

/// The most clock leeway allowed.
pub const MAX_LEEWAY: Duration = Duration::minutes(5);

/// The raw `[auth]` table.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    #[serde(default)]
    pub oidc: Vec<OidcSection>,
}

/// One raw `[[auth.oidc]]` entry.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSection {
    /// The name policies use in `oidc:<name>`.
    pub name: String,
    /// The exact `iss` of the tokens.
    pub issuer: String,
    /// Accepted audiences (at least one).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// A JWKS file (keys rotated by replacing the file).
    pub jwks_file: Option<PathBuf>,
    /// The issuer's JWKS URL.
    pub jwks_url: Option<String>,
    /// Default `["RS256"]`; `ES256` may be added. Nothing else is accepted.
    pub algorithms: Option<Vec<String>>,
    /// Clock leeway for `exp`, `nbf` and `iat`; default 60s, at most 5m.
    pub leeway: Option<String>,
    /// Claims every token must carry, besides `sub`.
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// The shortest time between two JWKS fetches caused by unknown key ids; default 60s.
    pub jwks_min_refresh_interval: Option<String>,
    /// How long fetched keys are used before they are fetched again; default 1h.
    pub jwks_cache_ttl: Option<String>,
    /// Extra CA certificates (PEM) for the JWKS URL.
    pub ca_file: Option<PathBuf>,
}

/// Validates the issuers; problems go to `err` (key, message).
pub(super) fn validate(
    sections: &[OidcSection],
    err: &mut dyn FnMut(&str, String),
) -> Vec<IssuerConfig> {
    let mut out: Vec<IssuerConfig> = Vec::new();
    for (i, s) in sections.iter().enumerate() {
        let key = |k: &str| format!("auth.oidc[{i}].{k}");
        let mut ok = true;
        let mut fail = |k: &str, m: String| {
            err(&key(k), m);
            ok = false;
        };
        if s.name.is_empty()
            || s.name.len() > 64
            || !s
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_".contains(c))
        {
            fail(
                "name",
                "use lowercase letters, digits, '-' and '_' (policies refer to it as oidc:<name>)"
                    .into(),
            );
        } else if out.iter().any(|o| o.name == s.name) {
            fail("name", "is given twice".into());
        }
        match Url::parse(&s.issuer) {
            Ok(u) if u.scheme() == "https" => {}
            _ => fail(
                "issuer",
                "must be the issuer's https:// URL exactly as tokens carry it in 'iss'".into(),
            ),
        }
        if out.iter().any(|o| o.issuer == s.issuer) {
            fail("issuer", "is configured twice; one entry per issuer".into());
        }
        if s.audiences.is_empty() || s.audiences.iter().any(|a| a.trim().is_empty()) {
            fail(
                "audiences",
                "name at least one audience, e.g. [\"sasgate\"]; a token for another service must not work here".into(),
            );
        }
        let jwks = match (&s.jwks_file, &s.jwks_url) {
            (Some(_), Some(_)) => {
                fail("jwks_url", "set jwks_url or jwks_file, not both".into());
                None
            }
            (None, None) => {
                fail(
                    "jwks_url",
                    "set jwks_url (the issuer's JWKS) or jwks_file".into(),
                );
                None
            }
            (Some(f), None) => Some(JwksSource::File(f.clone())),
            (None, Some(u)) => match Url::parse(u) {
                Ok(u) if u.scheme() == "https" || (u.scheme() == "http" && is_loopback(&u)) => {
                    Some(JwksSource::Url(u))
                }
                _ => {
                    fail(
                        "jwks_url",
                        "must be an https:// URL (http:// only on loopback, for tests): the keys decide who may mint".into(),
                    );
                    None
                }
            },
        };
        let mut algorithms = Vec::new();
        for a in s.algorithms.clone().unwrap_or_else(|| vec!["RS256".into()]) {
            match a.as_str() {
                "RS256" => algorithms.push(Algorithm::RS256),
                "ES256" => algorithms.push(Algorithm::ES256),
                _ => fail(
                    "algorithms",
                    "only RS256 and ES256 are accepted (never none, never HMAC)".into(),
                ),
            }
        }
        if algorithms.is_empty() {
            fail("algorithms", "name RS256 and/or ES256".into());
        }
        let mut duration = |k: &str, text: Option<&str>, default: Duration| match text {
            None => default,
            Some(t) => match parse_duration(t) {
                Ok(d) if d >= Duration::zero() => d,
                _ => {
                    fail(k, "must be a duration such as 30s or 5m".into());
                    default
                }
            },
        };
        let leeway = duration("leeway", s.leeway.as_deref(), Duration::seconds(60));
        let min_refresh = duration(
            "jwks_min_refresh_interval",
            s.jwks_min_refresh_interval.as_deref(),
            Duration::seconds(60),
        );
        let cache_ttl = duration(
            "jwks_cache_ttl",
            s.jwks_cache_ttl.as_deref(),
            Duration::hours(1),
        );
        if leeway > MAX_LEEWAY {
            fail("leeway", "may not exceed 5m".into());
        }
        if s.required_claims.iter().any(|c| c.trim().is_empty()) {
            fail("required_claims", "a claim name is empty".into());
        }
        if let Some(ca) = &s.ca_file
            && !ca.exists()
        {
            fail("ca_file", format!("{} does not exist", ca.display()));
        }
        if let (true, Some(jwks)) = (ok, jwks) {
            out.push(IssuerConfig {
                name: s.name.clone(),
                issuer: s.issuer.clone(),
                audiences: s.audiences.clone(),
                algorithms,
                leeway,
                required_claims: s.required_claims.clone(),
                jwks,
                jwks_min_refresh_interval: min_refresh,
                jwks_cache_ttl: cache_ttl,
                ca_file: s.ca_file.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sections: &[OidcSection]) -> Result<Vec<IssuerConfig>, Vec<String>> {
        let mut errors = Vec::new();
        let got = validate(sections, &mut |k, m| errors.push(format!("{k}: {m}")));
        if errors.is_empty() {
            Ok(got)
        } else {
            Err(errors)
        }
    }

    fn github() -> OidcSection {
        OidcSection {
            name: "github".into(),
            issuer: "https://token.actions.githubusercontent.com".into(),
            audiences: vec!["sasgate".into()],
            jwks_url: Some("https://token.actions.githubusercontent.com/.well-known/jwks".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_github_issuer_with_defaults() {
        let got = check(&[github()]).unwrap();
        assert_eq!(got[0].algorithms, vec![Algorithm::RS256]);
        assert_eq!(got[0].leeway, Duration::seconds(60));
    }

    #[test]
    fn refuses_weak_or_ambiguous_settings() {
        let cases = [
            OidcSection {
                algorithms: Some(vec!["none".into()]),
                ..github()
            },
            OidcSection {
                algorithms: Some(vec!["HS256".into()]),
                ..github()
            },
            OidcSection {
                audiences: vec![],
                ..github()
            },
            OidcSection {
                jwks_url: Some("http://keys.example.org/jwks".into()),
                ..github()
            },
            OidcSection {
                issuer: "http://token.actions.githubusercontent.com".into(),
                ..github()
            },
            OidcSection {
                leeway: Some("1h".into()),
                ..github()
            },
            OidcSection {
                name: "GitHub Actions".into(),
                ..github()
            },
        ];
        for case in cases {
            assert!(check(std::slice::from_ref(&case)).is_err(), "{case:?}");
        }
        assert!(check(&[github(), github()]).is_err());
    }
}
