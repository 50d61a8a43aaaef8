//! sasgate's own identity in Microsoft Entra ID: access tokens for Azure Storage (to get user
//! delegation keys) and for Azure Resource Manager (the emergency stop).
//!
//! Three credentials, each over its documented protocol:
//!
//! - **Client secret**: OAuth 2.0 client credentials grant at
//!   `{authority}/{tenant}/oauth2/v2.0/token` with `client_secret`.
//! - **Workload identity** (Kubernetes, GitHub Actions, any federated issuer): the same grant with a
//!   `client_assertion` read from a token file. The file is read again for every request, because
//!   the platform rotates it.
//! - **Managed identity**: the Azure Instance Metadata Service (`GET …/metadata/identity/oauth2/token`,
//!   `api-version=2018-02-01`, header `Metadata: true`), or the App Service and Container Apps
//!   endpoint (`IDENTITY_ENDPOINT`, `api-version=2019-08-01`, header `X-IDENTITY-HEADER`).
//!
//! Why not the `azure_identity` crate: it brings its own HTTP pipeline, `azure_core` and a
//! runtime abstraction for three HTTP calls whose protocol is short and stable, and its endpoints
//! are harder to point at a local test server. sasgate already has an HTTP client; this module
//! speaks the protocol directly, in about the size of the configuration the crate would need.
//!
//! Tokens are cached per scope and fetched again five minutes before they expire (or at half
//! their lifetime, if shorter). Concurrent callers share one fetch. "Now" is a parameter, so the
//! renewal logic is testable. No secret, assertion or token appears in `Debug`, in an error or in
//! a log line: errors keep the HTTP status, Entra's error code (`invalid_client`), its `AADSTS`
//! number and the correlation id, which is what Microsoft support asks for.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use url::Url;

pub(crate) use super::error::chain;
use crate::secret::Secret;

/// The public cloud's authority.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// Azure IMDS, reachable from every Azure VM, AKS node and scale set.
pub const DEFAULT_IMDS_ENDPOINT: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
/// The scope of Azure Storage data-plane tokens.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
/// How long before its expiry a cached token is replaced.
const REFRESH_BEFORE: Duration = Duration::minutes(5);
/// The longest error code kept from a response.
const MAX_CODE_CHARS: usize = 64;

/// How sasgate proves its identity to Entra ID.
#[derive(Clone, Debug)]
pub enum CredentialKind {
    /// An app registration's client secret.
    ClientSecret {
        tenant_id: String,
        client_id: String,
        secret: Secret,
    },
    /// A federated credential: the platform writes a token to `token_file`, which is exchanged
    /// for an Entra token (Kubernetes workload identity, CI).
    WorkloadIdentity {
        tenant_id: String,
        client_id: String,
        token_file: PathBuf,
    },
    /// The Azure-managed identity of the host.
    ManagedIdentity {
        /// For a user-assigned identity; `None` for the system-assigned one.
        client_id: Option<String>,
        endpoint: ManagedIdentityEndpoint,
    },
}

/// Where a managed identity gets its tokens.
#[derive(Clone, Debug)]
pub enum ManagedIdentityEndpoint {
    /// Azure Instance Metadata Service (VMs, scale sets, AKS nodes).
    Imds(Url),
    /// App Service, Functions and Container Apps (`IDENTITY_ENDPOINT` and `IDENTITY_HEADER`).
    AppService { endpoint: Url, header: Secret },
}

impl CredentialKind {
    /// The stable name used in configuration and logs.
    pub fn name(&self) -> &'static str {
        match self {
            CredentialKind::ClientSecret { .. } => "client_secret",
            CredentialKind::WorkloadIdentity { .. } => "workload_identity",
            CredentialKind::ManagedIdentity { .. } => "managed_identity",
        }
    }
}

/// An access token and when it stops working. The token is a [`Secret`].
#[derive(Clone, Debug)]
pub struct AccessToken {
    pub token: Secret,
    pub expires_on: DateTime<Utc>,
}

/// Getting a token failed. Carries no secret and no token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EntraError {
    /// Entra (or the managed identity endpoint) answered with an error.
    #[error(
        "Microsoft Entra ID answered HTTP {status}{}{}{}",
        code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default(),
        aadsts.map(|n| format!(", AADSTS{n}")).unwrap_or_default(),
        correlation_id.as_deref().map(|c| format!(", correlation id {c}")).unwrap_or_default()
    )]
    Status {
        status: u16,
        /// The OAuth error code, e.g. `invalid_client`.
        code: Option<String>,
        /// The first `AADSTS` error number, e.g. 7000215 (invalid client secret).
        aadsts: Option<u64>,
        correlation_id: Option<String>,
    },
    /// The request could not be sent or its answer not received.
    #[error("could not reach Microsoft Entra ID at {host}: {detail}")]
    Transport { host: String, detail: String },
    /// The answer was not a token response.
    #[error("unreadable token response from Microsoft Entra ID: {0}")]
    InvalidResponse(String),
    /// The federated token file could not be read.
    #[error("cannot read the federated token file {path}: {kind}")]
    TokenFile { path: String, kind: String },
    /// The credential cannot be used as configured.
    #[error("Microsoft Entra ID credential: {0}")]
    Config(String),
}

/// A token source for one identity, with its cache.
pub struct EntraCredential {
    kind: CredentialKind,
    authority: Url,
    http: reqwest::Client,
    cache: Mutex<HashMap<String, AccessToken>>,
    /// Held while a token is fetched, so that concurrent callers wait for one fetch.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for EntraCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraCredential")
            .field("kind", &self.kind.name())
            .field("authority", &self.authority.as_str())
            .finish_non_exhaustive()
    }
}

/// The token endpoint's answer (client credentials). `expires_in` is a number from Entra and a
/// string from IMDS; both are accepted.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    expires_on: Option<serde_json::Value>,
}

/// Entra's error body.
#[derive(Deserialize, Default)]
struct ErrorResponse {
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    error_codes: Option<Vec<u64>>,
    #[serde(default)]
    correlation_id: Option<String>,
}

impl EntraCredential {
    /// A credential talking to `authority` (e.g. [`DEFAULT_AUTHORITY`], or a sovereign cloud's),
    /// trusting the extra CA certificates in `ca_pem`, if any.
    pub fn new(
        kind: CredentialKind,
        authority: Url,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, EntraError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("sasgate/", env!("CARGO_PKG_VERSION")))
            // A redirect could carry the secret elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(StdDuration::from_secs(5))
            .timeout(StdDuration::from_secs(20));
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|_| EntraError::Config("the CA file is not PEM certificates".into()))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| EntraError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            kind,
            authority,
            http,
            cache: Mutex::new(HashMap::new()),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The kind of credential.
    pub fn kind(&self) -> &CredentialKind {
        &self.kind
    }

    /// An HTTP client with the same TLS settings, for the calls the token is used on.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A token for `scope` (e.g. [`STORAGE_SCOPE`]) valid for at least a few more minutes at
    /// `now`: the cached one, or a new one. Concurrent callers share one request.
    pub async fn token(&self, scope: &str, now: DateTime<Utc>) -> Result<AccessToken, EntraError> {
        if let Some(t) = self.cached(scope, now) {
            return Ok(t);
        }
        let _guard = self.fetching.lock().await;
        // Someone else may have fetched it while this caller waited.
        if let Some(t) = self.cached(scope, now) {
            return Ok(t);
        }
        let token = self.fetch(scope, now).await?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(scope.to_owned(), token.clone());
        }
        Ok(token)
    }

    /// Forgets every cached token (after a credential change or a refusal that suggests the
    /// token is no longer accepted).
    pub fn forget(&self) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.clear();
        }
    }

    fn cached(&self, scope: &str, now: DateTime<Utc>) -> Option<AccessToken> {
        let cache = self.cache.lock().ok()?;
        let t = cache.get(scope)?;
        (t.expires_on - now > REFRESH_BEFORE).then(|| t.clone())
    }

    async fn fetch(&self, scope: &str, now: DateTime<Utc>) -> Result<AccessToken, EntraError> {
        let request = match &self.kind {
            CredentialKind::ClientSecret {
                tenant_id,
                client_id,
                secret,
            } => self.http.post(self.token_url(tenant_id)?).form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id.as_str()),
                ("scope", scope),
                ("client_secret", secret.expose()),
            ]),
            CredentialKind::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            } => {
                let assertion = read_token_file(token_file)?;
                self.http.post(self.token_url(tenant_id)?).form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.as_str()),
                    ("scope", scope),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", assertion.expose()),
                ])
            }
            CredentialKind::ManagedIdentity {
                client_id,
                endpoint,
            } => {
                let resource = resource_of(scope);
                let (url, api_version) = match endpoint {
                    ManagedIdentityEndpoint::Imds(u) => (u, "2018-02-01"),
                    ManagedIdentityEndpoint::AppService { endpoint, .. } => {
                        (endpoint, "2019-08-01")
                    }
                };
                let mut url = url.clone();
                url.query_pairs_mut()
                    .append_pair("api-version", api_version)
                    .append_pair("resource", &resource);
                if let Some(id) = client_id {
                    url.query_pairs_mut().append_pair("client_id", id);
                }
                let request = self.http.get(url);
                match endpoint {
                    ManagedIdentityEndpoint::Imds(_) => request.header("Metadata", "true"),
                    ManagedIdentityEndpoint::AppService { header, .. } => {
                        request.header("X-IDENTITY-HEADER", header.expose())
                    }
                }
            }
        };
        let host = self.host_for_errors();
        let response = request.send().await.map_err(|e| EntraError::Transport {
            host: host.clone(),
            detail: chain(&e),
        })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| EntraError::Transport {
            host,
            detail: chain(&e),
        })?;
        if !status.is_success() {
            let parsed: ErrorResponse = serde_json::from_slice(&body).unwrap_or_default();
            return Err(EntraError::Status {
                status: status.as_u16(),
                code: parsed.error.and_then(|e| match e {
                    serde_json::Value::String(s) => Some(bounded(&s)),
                    // ARM-style `{"error":{"code":…}}` from some managed identity endpoints.
                    serde_json::Value::Object(o) => {
                        o.get("code").and_then(|c| c.as_str()).map(bounded)
                    }
                    _ => None,
                }),
                aadsts: parsed.error_codes.and_then(|c| c.first().copied()),
                correlation_id: parsed.correlation_id.map(|c| bounded(&c)),
            });
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| EntraError::InvalidResponse("not a JSON token response".into()))?;
        if parsed.access_token.is_empty() {
            return Err(EntraError::InvalidResponse(
                "the access token is empty".into(),
            ));
        }
        let expires_on = expiry(&parsed, now).ok_or_else(|| {
            EntraError::InvalidResponse("no usable expires_in or expires_on".into())
        })?;
        if expires_on <= now {
            return Err(EntraError::InvalidResponse(
                "the token is already expired (is this machine's clock right?)".into(),
            ));
        }
        tracing::debug!(credential = self.kind.name(), scope = %scope, expires_on = %expires_on, "access token obtained");
        Ok(AccessToken {
            token: Secret::new(&parsed.access_token),
            expires_on,
        })
    }

    fn token_url(&self, tenant_id: &str) -> Result<Url, EntraError> {
        let base = self.authority.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}/{tenant_id}/oauth2/v2.0/token"))
            .map_err(|_| EntraError::Config("the authority host and tenant make no URL".into()))
    }

    fn host_for_errors(&self) -> String {
        let url = match &self.kind {
            CredentialKind::ManagedIdentity {
                endpoint: ManagedIdentityEndpoint::Imds(u),
                ..
            }
            | CredentialKind::ManagedIdentity {
                endpoint: ManagedIdentityEndpoint::AppService { endpoint: u, .. },
                ..
            } => u,
            _ => &self.authority,
        };
        match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => "?".into(),
        }
    }
}

/// The v1 `resource` for a v2 `scope`: `https://storage.azure.com/.default` →
/// `https://storage.azure.com/`.
pub fn resource_of(scope: &str) -> String {
    match scope.strip_suffix(".default") {
        Some(r) => r.to_owned(),
        None => scope.to_owned(),
    }
}

/// When the token expires: `expires_in` seconds from `now`, else the absolute `expires_on`.
fn expiry(t: &TokenResponse, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let as_i64 = |v: &serde_json::Value| match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    if let Some(secs) = t.expires_in.as_ref().and_then(as_i64) {
        return (0..=366 * 86_400)
            .contains(&secs)
            .then(|| now + Duration::seconds(secs));
    }
    t.expires_on
        .as_ref()
        .and_then(as_i64)
        .and_then(|e| DateTime::from_timestamp(e, 0))
}

fn read_token_file(path: &std::path::Path) -> Result<Secret, EntraError> {
    // A small local file (a projected volume): read directly.
    let text = std::fs::read_to_string(path).map_err(|e| EntraError::TokenFile {
        path: path.display().to_string(),
        kind: e.kind().to_string(),
    })?;
    let secret = Secret::new(&text);
    if secret.is_empty() {
        return Err(EntraError::TokenFile {
            path: path.display().to_string(),
            kind: "the file is empty".into(),
        });
    }
    Ok(secret)
}

fn bounded(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(MAX_CODE_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn scope_to_resource() {
        assert_eq!(resource_of(STORAGE_SCOPE), "https://storage.azure.com/");
        assert_eq!(
            resource_of("https://management.azure.com/.default"),
            "https://management.azure.com/"
        );
        assert_eq!(resource_of("https://x/"), "https://x/");
    }

    #[test]
    fn expiry_reads_numbers_and_strings() {
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        let t: TokenResponse =
            serde_json::from_str(r#"{"access_token":"x","expires_in":3599}"#).unwrap();
        assert_eq!(expiry(&t, now), Some(now + Duration::seconds(3599)));
        let t: TokenResponse =
            serde_json::from_str(r#"{"access_token":"x","expires_in":"86399"}"#).unwrap();
        assert_eq!(expiry(&t, now), Some(now + Duration::seconds(86399)));
        let t: TokenResponse =
            serde_json::from_str(r#"{"access_token":"x","expires_on":"1796040000"}"#).unwrap();
        assert_eq!(expiry(&t, now), DateTime::from_timestamp(1_796_040_000, 0));
        let t: TokenResponse =
            serde_json::from_str(r#"{"access_token":"x","expires_in":-5}"#).unwrap();
        assert_eq!(expiry(&t, now), None);
    }

    #[test]
    fn debug_shows_no_secret() {
        let c = CredentialKind::ClientSecret {
            tenant_id: "t".into(),
            client_id: "c".into(),
            secret: Secret::new("super-secret-value"),
        };
        let cred =
            EntraCredential::new(c.clone(), Url::parse(DEFAULT_AUTHORITY).unwrap(), None).unwrap();
        let shown = format!("{c:?} {cred:?}");
        assert!(!shown.contains("super-secret"), "{shown}");
    }

    #[test]
    fn status_error_names_codes_not_descriptions() {
        let e = EntraError::Status {
            status: 401,
            code: Some("invalid_client".into()),
            aadsts: Some(7_000_215),
            correlation_id: Some("abc".into()),
        };
        assert_eq!(
            e.to_string(),
            "Microsoft Entra ID answered HTTP 401 (invalid_client), AADSTS7000215, correlation id abc"
        );
    }
}
