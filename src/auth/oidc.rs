//! OIDC callers: CI jobs (GitHub Actions, GitLab) present the ID token their platform issued, and
//! sasgate verifies it against the issuer's published keys (JWKS).
//!
//! The order of checks, each with its own refusal code (all 401):
//!
//! 1. The token is three base64url parts with JSON header and payload, and its header has no
//!    `crit` (`malformed_token`).
//! 2. Its `iss` is a configured issuer, compared exactly (`untrusted_issuer`).
//! 3. The header's `alg` is one the issuer allows: RS256 and/or ES256, never `none` and never an
//!    HMAC algorithm, whatever the token says (`algorithm_not_allowed`). This is also what stops
//!    an HS256 token "signed" with the issuer's RSA public key.
//! 4. Its `kid` names a key of that issuer whose type fits the algorithm (`unknown_signing_key`).
//!    An unknown `kid` makes sasgate fetch the JWKS again, at most once per
//!    `jwks_min_refresh_interval`, so a key rotation is picked up at once and a flood of made-up
//!    `kid`s costs at most one fetch per interval.
//! 5. The signature verifies with that key (`bad_signature`).
//! 6. `exp` is present and not passed, `nbf` (if present) has come, both with the issuer's clock
//!    leeway (`token_expired`, `token_not_yet_valid`).
//! 7. `aud` contains one of the issuer's audiences (`wrong_audience`).
//! 8. `sub` and every `required_claims` entry are present and non-empty (`missing_claim`).
//!
//! Only then are the claims trusted. "Now" is a parameter. The token itself is never logged or
//! kept; the ledger keeps the claims that decided.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::Duration as StdDuration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use url::Url;

/// The longest token accepted, in bytes (GitHub's are about 1.5 KB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The longest subject accepted (it becomes the principal name, kept whole).
pub const MAX_SUBJECT_BYTES: usize = 512;
/// The largest JWKS document read.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Where an issuer's keys come from.
#[derive(Clone, Debug)]
pub enum JwksSource {
    File(PathBuf),
    Url(Url),
}

/// One trusted issuer, as configured under `[[auth.oidc]]`.
#[derive(Clone, Debug)]
pub struct IssuerConfig {
    /// The name policies use: `oidc:<name>`.
    pub name: String,
    /// The exact `iss` value.
    pub issuer: String,
    /// Accepted `aud` values; a token must carry at least one.
    pub audiences: Vec<String>,
    /// RS256 and/or ES256.
    pub algorithms: Vec<Algorithm>,
    pub leeway: Duration,
    /// Claims that must be present and non-empty (besides `sub`).
    pub required_claims: Vec<String>,
    pub jwks: JwksSource,
    /// The shortest time between two JWKS fetches caused by unknown `kid`s.
    pub jwks_min_refresh_interval: Duration,
    /// How long fetched keys are used before they are fetched again.
    pub jwks_cache_ttl: Duration,
    /// Extra CA certificates (PEM) for the JWKS URL.
    pub ca_file: Option<PathBuf>,
}

/// Why a token was refused. The `Display` text is for the caller: it says what to fix and never
/// echoes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    #[error("the token is not a well-formed JWT: {0}")]
    Malformed(String),
    #[error(
        "the token's algorithm '{0}' is not accepted; this issuer's tokens are signed with {1}"
    )]
    AlgorithmNotAllowed(String, String),
    #[error("the token's issuer is not trusted by this sasgate; ask an admin to configure it")]
    UntrustedIssuer,
    #[error(
        "no key of issuer '{0}' has the token's key id; if the issuer rotated its keys, retry in a minute"
    )]
    UnknownKey(String),
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token expired at {0}; request a fresh one")]
    Expired(String),
    #[error("the token is not valid before {0}; check this machine's clock")]
    NotYetValid(String),
    #[error("the token's audience is not accepted; request it with audience {0}")]
    WrongAudience(String),
    #[error("the token lacks the claim '{0}', which this issuer requires")]
    MissingClaim(String),
    /// The issuer's keys could not be fetched and none are cached: not the caller's fault.
    #[error("the keys of issuer '{0}' cannot be fetched right now")]
    Unavailable(String),
}

impl OidcError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            OidcError::Malformed(_) => "malformed_token",
            OidcError::AlgorithmNotAllowed(..) => "algorithm_not_allowed",
            OidcError::UntrustedIssuer => "untrusted_issuer",
            OidcError::UnknownKey(_) => "unknown_signing_key",
            OidcError::BadSignature => "bad_signature",
            OidcError::Expired(_) => "token_expired",
            OidcError::NotYetValid(_) => "token_not_yet_valid",
            OidcError::WrongAudience(_) => "wrong_audience",
            OidcError::MissingClaim(_) => "missing_claim",
            OidcError::Unavailable(_) => "oidc_unavailable",
        }
    }
}

/// A verified token: the issuer's configured name, the subject and every claim.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedToken {
    pub issuer_name: String,
    pub subject: String,
    pub claims: Map<String, Value>,
}

/// One verification key.
struct Key {
    key: DecodingKey,
    algorithm: Algorithm,
}

#[derive(Default)]
struct KeySet {
    keys: HashMap<String, std::sync::Arc<Key>>,
    /// Keys without a `kid`, tried when the token has none.
    anonymous: Vec<std::sync::Arc<Key>>,
    fetched_at: Option<DateTime<Utc>>,
    last_attempt: Option<DateTime<Utc>>,
}

struct Issuer {
    config: IssuerConfig,
    keys: RwLock<KeySet>,
    refreshing: tokio::sync::Mutex<()>,
    http: reqwest::Client,
}

/// Every trusted issuer and its keys.
pub struct OidcVerifier {
    issuers: Vec<Issuer>,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.issuers.iter().map(|i| &i.config.name))
            .finish()
    }
}

/// The JWKS could not be loaded. For the log and start-up errors.
#[derive(Debug, Clone, thiserror::Error)]
#[error("JWKS of issuer '{issuer}': {detail}")]
pub struct JwksError {
    pub issuer: String,
    pub detail: String,
}

impl OidcVerifier {
    /// Builds the verifier; JWKS files are read now (an unreadable file is an error), URLs on
    /// first use or by [`OidcVerifier::prefetch`].
    pub fn new(configs: Vec<IssuerConfig>, now: DateTime<Utc>) -> Result<Self, JwksError> {
        let mut issuers = Vec::with_capacity(configs.len());
        for config in configs {
            let fail = |detail: String| JwksError {
                issuer: config.name.clone(),
                detail,
            };
            let mut builder = reqwest::Client::builder()
                .user_agent(concat!("sasgate/", env!("CARGO_PKG_VERSION")))
                .redirect(reqwest::redirect::Policy::limited(3))
                // A redirect must not downgrade the key fetch to plain HTTP.
                .https_only(matches!(&config.jwks, JwksSource::Url(u) if u.scheme() == "https"))
                .connect_timeout(StdDuration::from_secs(5))
                .timeout(StdDuration::from_secs(10));
            if let Some(ca) = &config.ca_file {
                let pem = std::fs::read(ca)
                    .map_err(|e| fail(format!("cannot read {}: {}", ca.display(), e.kind())))?;
                for cert in reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|_| fail(format!("{} is not PEM certificates", ca.display())))?
                {
                    builder = builder.add_root_certificate(cert);
                }
            }
            let http = builder
                .build()
                .map_err(|e| fail(format!("cannot build the HTTP client: {e}")))?;
            let mut set = KeySet::default();
            if let JwksSource::File(path) = &config.jwks {
                let text = std::fs::read(path)
                    .map_err(|e| fail(format!("cannot read {}: {}", path.display(), e.kind())))?;
                set = parse_jwks(&text, &config.algorithms).map_err(fail)?;
                set.fetched_at = Some(now);
                set.last_attempt = Some(now);
            }
            issuers.push(Issuer {
                config,
                keys: RwLock::new(set),
                refreshing: tokio::sync::Mutex::new(()),
                http,
            });
        }
        Ok(Self { issuers })
    }

    /// True when no issuer is configured.
    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// The configured issuer names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.issuers.iter().map(|i| i.config.name.as_str())
    }

    /// Fetches every URL-sourced JWKS once (at start-up); failures are logged, not fatal.
    pub async fn prefetch(&self, now: DateTime<Utc>) {
        for issuer in &self.issuers {
            if matches!(issuer.config.jwks, JwksSource::Url(_))
                && let Err(e) = issuer.refresh(now, true).await
            {
                tracing::warn!(error = %e, "OIDC keys not fetched at start-up; the first token will try again");
            }
        }
    }

    /// Verifies `token` as of `now`; see the module docs for the order of checks.
    pub async fn verify(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedToken, OidcError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(OidcError::Malformed(format!(
                "longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(_s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(OidcError::Malformed(
                "a JWT has three dot-separated parts".into(),
            ));
        };
        let header = decode_json(h, "header")?;
        let payload = decode_json(p, "payload")?;
        // RFC 7515 §4.1.11: a token whose `crit` lists an extension the recipient does not
        // understand is invalid, and sasgate understands none (not even RFC 7797's `b64`).
        if header.get("crit").is_some() {
            return Err(OidcError::Malformed(
                "the header's 'crit' names extensions sasgate does not support".into(),
            ));
        }
        let alg_text = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| OidcError::Malformed("the header has no 'alg'".into()))?;
        let iss = payload
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(OidcError::UntrustedIssuer)?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.config.issuer == iss)
            .ok_or(OidcError::UntrustedIssuer)?;
        let allowed = issuer
            .config
            .algorithms
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(" or ");
        let algorithm = match alg_text {
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            other => {
                return Err(OidcError::AlgorithmNotAllowed(bounded(other), allowed));
            }
        };
        if !issuer.config.algorithms.contains(&algorithm) {
            return Err(OidcError::AlgorithmNotAllowed(bounded(alg_text), allowed));
        }
        let kid = header.get("kid").and_then(Value::as_str);
        let key = issuer.key(kid, algorithm, now).await?;
        let mut validation = Validation::new(algorithm);
        // Times, audience and issuer are checked below, against "now" and with our codes.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Value>(token, &key.key, &validation).map_err(|e| {
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => OidcError::BadSignature,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => {
                    OidcError::AlgorithmNotAllowed(bounded(alg_text), allowed.clone())
                }
                _ => OidcError::Malformed("the token cannot be decoded".into()),
            }
        })?;
        check_claims(&issuer.config, &payload, now)?;
        let Value::Object(claims) = payload else {
            return Err(OidcError::Malformed(
                "the payload is not a JSON object".into(),
            ));
        };
        // The subject names the principal: a string, short enough to keep whole.
        let subject = match claims.get("sub") {
            Some(Value::String(s)) if s.len() <= MAX_SUBJECT_BYTES => s.clone(),
            Some(Value::String(_)) => {
                return Err(OidcError::Malformed(format!(
                    "'sub' is longer than {MAX_SUBJECT_BYTES} bytes"
                )));
            }
            _ => return Err(OidcError::MissingClaim("sub".into())),
        };
        Ok(VerifiedToken {
            issuer_name: issuer.config.name.clone(),
            subject,
            claims,
        })
    }
}

impl Issuer {
    /// The key for `kid` fitting `algorithm`, fetching the JWKS again if it is unknown (rate
    /// limited) or the cache is stale.
    async fn key(
        &self,
        kid: Option<&str>,
        algorithm: Algorithm,
        now: DateTime<Utc>,
    ) -> Result<std::sync::Arc<Key>, OidcError> {
        let stale = self.read(|s| {
            s.fetched_at
                .is_none_or(|t| now - t > self.config.jwks_cache_ttl)
        });
        if stale {
            // A failed refresh of a stale cache keeps the old keys.
            if let Err(e) = self.refresh(now, false).await {
                tracing::warn!(error = %e, "OIDC keys could not be refreshed");
            }
        }
        if let Some(k) = self.lookup(kid, algorithm) {
            return Ok(k);
        }
        if !stale {
            if let Err(e) = self.refresh(now, false).await {
                tracing::warn!(error = %e, "OIDC keys could not be refreshed");
            }
            if let Some(k) = self.lookup(kid, algorithm) {
                return Ok(k);
            }
        }
        if self.read(|s| s.fetched_at.is_none()) {
            return Err(OidcError::Unavailable(self.config.name.clone()));
        }
        Err(OidcError::UnknownKey(self.config.name.clone()))
    }

    fn read<T>(&self, f: impl FnOnce(&KeySet) -> T) -> T {
        match self.keys.read() {
            Ok(s) => f(&s),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    fn lookup(&self, kid: Option<&str>, algorithm: Algorithm) -> Option<std::sync::Arc<Key>> {
        self.read(|s| match kid {
            Some(kid) => s
                .keys
                .get(kid)
                .filter(|k| k.algorithm == algorithm)
                .cloned(),
            // Without a kid, only an unambiguous key will do.
            None => {
                let mut fitting = s
                    .anonymous
                    .iter()
                    .chain(s.keys.values())
                    .filter(|k| k.algorithm == algorithm);
                match (fitting.next(), fitting.next()) {
                    (Some(k), None) => Some(k.clone()),
                    _ => None,
                }
            }
        })
    }

    /// Fetches the JWKS, unless the last attempt was less than the minimum interval ago (and
    /// `force` is false). One fetch at a time.
    async fn refresh(&self, now: DateTime<Utc>, force: bool) -> Result<(), JwksError> {
        let _guard = self.refreshing.lock().await;
        let recent = self.read(|s| {
            s.last_attempt
                .is_some_and(|t| now >= t && now - t < self.config.jwks_min_refresh_interval)
        });
        if recent && !force {
            return Ok(());
        }
        if let Ok(mut s) = self.keys.write() {
            s.last_attempt = Some(now);
        }
        let fail = |detail: String| JwksError {
            issuer: self.config.name.clone(),
            detail,
        };
        let bytes = match &self.config.jwks {
            JwksSource::File(path) => std::fs::read(path)
                .map_err(|e| fail(format!("cannot read {}: {}", path.display(), e.kind())))?,
            JwksSource::Url(url) => {
                let response = self
                    .http
                    .get(url.clone())
                    .send()
                    .await
                    .map_err(|e| fail(crate::azure::entra::chain(&e)))?;
                if !response.status().is_success() {
                    return Err(fail(format!("HTTP {}", response.status().as_u16())));
                }
                let body = response
                    .bytes()
                    .await
                    .map_err(|e| fail(crate::azure::entra::chain(&e)))?;
                if body.len() > MAX_JWKS_BYTES {
                    return Err(fail(format!("larger than {MAX_JWKS_BYTES} bytes")));
                }
                body.to_vec()
            }
        };
        let mut set = parse_jwks(&bytes, &self.config.algorithms).map_err(fail)?;
        set.fetched_at = Some(now);
        set.last_attempt = Some(now);
        tracing::info!(issuer = %self.config.name, keys = set.keys.len() + set.anonymous.len(), "OIDC keys loaded");
        if let Ok(mut s) = self.keys.write() {
            *s = set;
        }
        Ok(())
    }
}

/// Reads a JWKS: RSA keys (for RS256, at least 2048 bits) and P-256 EC keys (for ES256) that are
/// not marked for encryption. Other keys are skipped.
fn parse_jwks(bytes: &[u8], algorithms: &[Algorithm]) -> Result<KeySet, String> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|_| "not a JSON document".to_owned())?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| "no \"keys\" array".to_owned())?;
    let mut set = KeySet::default();
    for k in keys {
        let text = |name: &str| k.get(name).and_then(Value::as_str);
        if text("use").is_some_and(|u| u != "sig") {
            continue;
        }
        let parsed = match (text("kty"), text("alg")) {
            (Some("RSA"), None | Some("RS256")) if algorithms.contains(&Algorithm::RS256) => {
                match (text("n"), text("e")) {
                    (Some(n), Some(e))
                        if URL_SAFE_NO_PAD
                            .decode(n.trim_end_matches('='))
                            .is_ok_and(|b| b.len() >= 256) =>
                    {
                        DecodingKey::from_rsa_components(n, e)
                            .ok()
                            .map(|key| (key, Algorithm::RS256))
                    }
                    _ => None,
                }
            }
            (Some("EC"), None | Some("ES256"))
                if algorithms.contains(&Algorithm::ES256) && text("crv") == Some("P-256") =>
            {
                match (text("x"), text("y")) {
                    (Some(x), Some(y)) => DecodingKey::from_ec_components(x, y)
                        .ok()
                        .map(|key| (key, Algorithm::ES256)),
                    _ => None,
                }
            }
            _ => None,
        };
        let Some((key, algorithm)) = parsed else {
            continue;
        };
        let key = std::sync::Arc::new(Key { key, algorithm });
        match text("kid") {
            Some(kid) => {
                set.keys.insert(kid.to_owned(), key);
            }
            None => set.anonymous.push(key),
        }
    }
    if set.keys.is_empty() && set.anonymous.is_empty() {
        return Err("no usable signing key (RSA ≥ 2048 bits for RS256, P-256 for ES256)".into());
    }
    Ok(set)
}

fn decode_json(part: &str, what: &str) -> Result<Value, OidcError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| OidcError::Malformed(format!("the {what} is not base64url")))?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|_| OidcError::Malformed(format!("the {what} is not JSON")))?;
    if !value.is_object() {
        return Err(OidcError::Malformed(format!(
            "the {what} is not a JSON object"
        )));
    }
    Ok(value)
}

/// Time, audience and required claims, against `now`.
fn check_claims(
    config: &IssuerConfig,
    payload: &Value,
    now: DateTime<Utc>,
) -> Result<(), OidcError> {
    let time = |name: &str| -> Result<Option<DateTime<Utc>>, OidcError> {
        match payload.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .or_else(|| v.as_f64().map(|f| f as i64))
                .and_then(|s| DateTime::from_timestamp(s, 0))
                .map(Some)
                .ok_or_else(|| OidcError::Malformed(format!("'{name}' is not a time"))),
        }
    };
    let exp = time("exp")?.ok_or_else(|| OidcError::MissingClaim("exp".into()))?;
    if exp
        .checked_add_signed(config.leeway)
        .is_none_or(|end| now >= end)
    {
        return Err(OidcError::Expired(exp.to_rfc3339()));
    }
    if let Some(nbf) = time("nbf")?
        && now
            .checked_add_signed(config.leeway)
            .is_some_and(|n| n < nbf)
    {
        return Err(OidcError::NotYetValid(nbf.to_rfc3339()));
    }
    if let Some(iat) = time("iat")?
        && now
            .checked_add_signed(config.leeway)
            .is_some_and(|n| n < iat)
    {
        return Err(OidcError::NotYetValid(iat.to_rfc3339()));
    }
    let audiences: Vec<&str> = match payload.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences
        .iter()
        .any(|a| config.audiences.iter().any(|c| c == a))
    {
        return Err(OidcError::WrongAudience(
            config.audiences.first().cloned().unwrap_or_default(),
        ));
    }
    for name in std::iter::once("sub").chain(config.required_claims.iter().map(String::as_str)) {
        let present = match payload.get(name) {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(_) => true,
        };
        if !present {
            return Err(OidcError::MissingClaim(bounded(name)));
        }
    }
    Ok(())
}

fn bounded(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use jsonwebtoken::{EncodingKey, Header};

    const RSA: &[u8] = include_bytes!("../../tests/keys/oidc-rsa.pem");
    const RSA_NEXT: &[u8] = include_bytes!("../../tests/keys/oidc-rsa-next.pem");
    const JWKS: &str = include_str!("../../tests/keys/oidc-jwks.json");
    const ROTATED: &str = include_str!("../../tests/keys/oidc-jwks-rotated.json");

    fn config(file: PathBuf) -> IssuerConfig {
        IssuerConfig {
            name: "ci".into(),
            issuer: "https://ci.example".into(),
            audiences: vec!["sasgate".into()],
            algorithms: vec![Algorithm::RS256, Algorithm::ES256],
            leeway: Duration::seconds(30),
            required_claims: vec!["repository".into()],
            jwks: JwksSource::File(file),
            jwks_min_refresh_interval: Duration::seconds(60),
            jwks_cache_ttl: Duration::hours(1),
            ca_file: None,
        }
    }

    fn token(kid: &str, pem: &[u8], now: DateTime<Utc>, extra: Value) -> String {
        let mut claims = serde_json::json!({
            "iss": "https://ci.example", "aud": ["other", "sasgate"], "sub": "job",
            "repository": "lab/models", "iat": now.timestamp(), "exp": now.timestamp() + 300,
        });
        if let (Value::Object(c), Value::Object(e)) = (&mut claims, extra) {
            c.extend(e);
        }
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_pem(pem).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn unknown_kids_refetch_at_most_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jwks.json");
        std::fs::write(&file, JWKS).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        let verifier = OidcVerifier::new(vec![config(file.clone())], t).unwrap();
        let ok = verifier
            .verify(&token("test-rsa-1", RSA, t, Value::Null), t)
            .await
            .unwrap();
        assert_eq!(
            (ok.issuer_name.as_str(), ok.subject.as_str()),
            ("ci", "job")
        );

        let next = |at| token("test-rsa-2", RSA_NEXT, at, Value::Null);
        assert_eq!(
            verifier.verify(&next(t), t).await.unwrap_err().code(),
            "unknown_signing_key"
        );
        std::fs::write(&file, ROTATED).unwrap();
        // Within the interval: not fetched again, whatever the number of attempts.
        let soon = t + Duration::seconds(30);
        assert_eq!(
            verifier.verify(&next(soon), soon).await.unwrap_err().code(),
            "unknown_signing_key"
        );
        let later = t + Duration::seconds(61);
        assert!(verifier.verify(&next(later), later).await.is_ok());
    }

    #[tokio::test]
    async fn times_are_checked_against_now_with_leeway() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jwks.json");
        std::fs::write(&file, JWKS).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        let verifier = OidcVerifier::new(vec![config(file)], t).unwrap();
        let tok = token("test-rsa-1", RSA, t, Value::Null);
        // exp = t + 300, leeway 30 s.
        assert!(
            verifier
                .verify(&tok, t + Duration::seconds(329))
                .await
                .is_ok()
        );
        assert_eq!(
            verifier
                .verify(&tok, t + Duration::seconds(330))
                .await
                .unwrap_err()
                .code(),
            "token_expired"
        );
        // iat = t: 20 s early is within the leeway, 60 s is not.
        assert!(
            verifier
                .verify(&tok, t - Duration::seconds(20))
                .await
                .is_ok()
        );
        assert_eq!(
            verifier
                .verify(&tok, t - Duration::seconds(60))
                .await
                .unwrap_err()
                .code(),
            "token_not_yet_valid"
        );
        // A required claim that is present but empty counts as missing.
        let empty = token("test-rsa-1", RSA, t, serde_json::json!({"repository": ""}));
        assert_eq!(
            verifier.verify(&empty, t).await.unwrap_err().code(),
            "missing_claim"
        );
    }

    #[test]
    fn jwks_skips_unusable_keys() {
        let doc = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "small", "n": "AQAB", "e": "AQAB"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
        ]});
        assert!(parse_jwks(doc.to_string().as_bytes(), &[Algorithm::RS256]).is_err());
        let set = parse_jwks(JWKS.as_bytes(), &[Algorithm::RS256]).unwrap();
        assert!(set.keys.contains_key("test-rsa-1"));
        assert!(
            !set.keys.contains_key("test-ec-1"),
            "ES256 not allowed here"
        );
    }
}
