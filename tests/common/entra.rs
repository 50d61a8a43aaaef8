//! A local stand-in for Microsoft Entra ID and Azure Resource Manager (ARM), which cannot run
//! here, speaking their documented protocol over plain HTTP on a free loopback port.
//!
//! ```ignore
//! mod common;
//! use common::entra::{CLIENT_ID, CLIENT_SECRET, FakeEntra, TENANT};
//!
//! #[tokio::test]
//! async fn something() {
//!     let entra = FakeEntra::start().await;
//!     // point sasgate at entra.authority_host(), entra.imds_endpoint(),
//!     // entra.app_service_endpoint() or entra.arm_endpoint(), then look at
//!     // entra.token_requests_for("https://storage.azure.com") and entra.revocations()
//! } // the server stops here
//! ```
//!
//! What it serves, and what it checks the way the real service does:
//!
//! * **OAuth 2.0 client credentials, v2.0 endpoint** — `POST /{tenant}/oauth2/v2.0/token`, an
//!   `application/x-www-form-urlencoded` body with `grant_type=client_credentials`, `client_id`,
//!   one `scope` ending in `/.default`, and either `client_secret` or a `client_assertion` of type
//!   `urn:ietf:params:oauth:client-assertion-type:jwt-bearer` (workload identity federation).
//!   Refusals carry Entra's error JSON (`error`, `error_description` starting `AADSTSnnnn:`,
//!   `error_codes`, `timestamp`, `trace_id`, `correlation_id`, `error_uri`) and its status codes.
//! * **Managed identity on a VM (IMDS)** — `GET /metadata/identity/oauth2/token` with
//!   `Metadata: true`, `api-version` and `resource`, no `X-Forwarded-For`; every field of the
//!   answer is a JSON *string*, as IMDS sends them.
//! * **Managed identity on App Service / Container Apps** — `GET /msi/token`, api-version
//!   `2019-08-01`, header `X-IDENTITY-HEADER`; `expires_on` is a string of epoch seconds.
//! * **ARM** — `POST /arm/subscriptions/{sub}/resourceGroups/{rg}/providers/
//!   Microsoft.Storage/storageAccounts/{name}/revokeUserDelegationKeys?api-version=…` with a
//!   bearer token that this server issued for ARM (`https://management.azure.com` or
//!   `https://management.core.windows.net`, with or without a trailing slash) and that has not
//!   expired. Refusals carry ARM's `{"error":{"code","message"}}` JSON.
//!
//! The refusals, as the real services word them:
//!
//! | endpoint | what is wrong | status | `error` / `code` |
//! | --- | --- | --- | --- |
//! | token | tenant other than [`TENANT`] | 400 | `invalid_request` AADSTS90002 |
//! | token | GET instead of POST | 400 | `invalid_request` AADSTS900561 |
//! | token | body not form-encoded, or `grant_type`/`client_id`/`scope`/`client_assertion_type` missing | 400 | `invalid_request` AADSTS900144 |
//! | token | `grant_type` other than `client_credentials` | 400 | `unsupported_grant_type` AADSTS70003 |
//! | token | `client_id` other than [`CLIENT_ID`] | 400 | `unauthorized_client` AADSTS700016 |
//! | token | neither secret nor assertion | 401 | `invalid_client` AADSTS7000218 |
//! | token | both, or a repeated parameter | 400 | `invalid_request` AADSTS9002313 |
//! | token | wrong secret | 401 | `invalid_client` AADSTS7000215 |
//! | token | `client_assertion_type` not jwt-bearer | 400 | `invalid_request` AADSTS90011 |
//! | token | assertion not a JWT | 400 | `invalid_request` AADSTS50027 |
//! | token | assertion issuer / subject / audience unknown | 400 | `invalid_client` AADSTS700211 / 700213 / 700212 |
//! | token | assertion expired or not yet valid | 400 | `invalid_client` AADSTS700024 |
//! | token | scope without `/.default` | 400 | `invalid_scope` AADSTS1002012 |
//! | token | two `.default` scopes / `.default` with another scope | 400 | `invalid_scope` AADSTS28000 / 70011 |
//! | token, IMDS | unknown resource | 400 | `invalid_resource` AADSTS500011 |
//! | IMDS | `Metadata: true` missing; `X-Forwarded-For` present; `api-version` or `resource` missing; unknown api-version; more than one of `client_id`/`object_id`/`msi_res_id`; another identity ("Identity not found") | 400 | `invalid_request` |
//! | App Service | `X-IDENTITY-HEADER` missing or wrong | 401 | `{"statusCode","message","correlationId"}` |
//! | App Service | api-version not `2019-08-01`, `resource` missing or unknown, another identity (`client_id`/`principal_id`/`mi_res_id`) | 400 | same shape |
//! | ARM | no `Authorization`, or not `Bearer …` | 401 | `AuthenticationFailed` |
//! | ARM | a token this server did not issue | 401 | `InvalidAuthenticationToken` |
//! | ARM | a token for another audience (e.g. Storage) | 401 | `InvalidAuthenticationTokenAudience` |
//! | ARM | an expired token | 401 | `ExpiredAuthenticationToken` |
//! | ARM | `api-version` missing / not a date / before 2019-04-01 | 400 | `MissingApiVersionParameter` / `InvalidApiVersionParameter` / `NoRegisteredProviderFound` |
//! | ARM | subscription not a GUID | 400 | `InvalidSubscriptionId` |
//! | ARM | account name impossible | 404 | `ResourceNotFound` |
//! | ARM | any other path; another method | 404; 405 | `NotFound`; `MethodNotAllowed` |
//! | all | [`FakeEntra::set_down`]`(true)` | 503 | `temporarily_unavailable` AADSTS50196; ARM `ServiceUnavailable` |
//!
//! Access tokens are JWTs shaped like Entra's v1.0 access tokens (`iss`
//! `https://sts.windows.net/{TENANT}/`, `aud` the requested resource, `oid`/`tid`/`appid`...),
//! which `azurite --oauth basic` accepts for Storage. Their signature is random bytes: Azurite
//! does not verify it, and ARM here checks a token by looking it up among the ones it issued,
//! which is what a signature check proves. Likewise the federated `client_assertion` is matched
//! against the one federated credential configured here ([`FEDERATED_ISSUER`],
//! [`FEDERATED_SUBJECT`], [`FEDERATED_AUDIENCE`]) and its time range, but its signature (which
//! Entra would verify against the issuer's published keys) is not checked.
//!
//! Known resources are Storage (`https://storage.azure.com`,
//! `https://{account}.blob.core.windows.net`) and ARM; any other gets Entra's `AADSTS500011`
//! "resource principal not found". Only the tenant [`TENANT`] exists, only the app [`CLIENT_ID`]
//! is registered, and the managed identity is that same app (client id [`CLIENT_ID`], object id
//! [`OBJECT_ID`], resource id [`IDENTITY_RESOURCE_ID`]).
//!
//! Knobs: [`FakeEntra::set_down`], [`FakeEntra::set_audience_override`] (Storage tokens get
//! another `aud`, which Azurite refuses), [`FakeEntra::set_token_lifetime`]. Records:
//! [`FakeEntra::token_requests`], [`FakeEntra::token_requests_for`], [`FakeEntra::revocations`].

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher as _, Hasher as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The only tenant (directory) that exists.
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The application (client) id of the only registered app, which is also the managed identity.
pub const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
/// A client secret of that app.
pub const CLIENT_SECRET: &str = "fake-client-secret-value";
/// The object id of the app's service principal: the `oid` (and `sub`) of every token.
pub const OBJECT_ID: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
/// The ARM resource id of the (user-assigned) managed identity, for `msi_res_id`/`mi_res_id`.
pub const IDENTITY_RESOURCE_ID: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/\
     resourceGroups/sasgate/providers/Microsoft.ManagedIdentity/userAssignedIdentities/sasgate";

/// The issuer of the federated identity credential configured on the app (an AKS OIDC issuer).
pub const FEDERATED_ISSUER: &str =
    "https://oidc.prod-aks.azure.com/00000000-0000-0000-0000-000000000000/";
/// The subject of that federated credential (a Kubernetes service account).
pub const FEDERATED_SUBJECT: &str = "system:serviceaccount:sasgate:sasgate";
/// The audience Entra requires in federated assertions.
pub const FEDERATED_AUDIENCE: &str = "api://AzureADTokenExchange";
/// A projected service-account token as AKS workload identity writes to
/// `AZURE_FEDERATED_TOKEN_FILE`: issuer [`FEDERATED_ISSUER`], subject [`FEDERATED_SUBJECT`],
/// audience [`FEDERATED_AUDIENCE`], valid from 2025-01-01 to 2100-01-01. Accepted as
/// `client_assertion`.
pub const FEDERATED_TOKEN: &str = concat!(
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImZha2Utb2lkYy1zaWduaW5nLWtleSIsInR5cCI6IkpXVCJ9",
    ".",
    "eyJhdWQiOlsiYXBpOi8vQXp1cmVBRFRva2VuRXhjaGFuZ2UiXSwiZXhwIjo0MTAyNDQ0ODAwLCJpYXQiOjE3MzU2OD",
    "k2MDAsImlzcyI6Imh0dHBzOi8vb2lkYy5wcm9kLWFrcy5henVyZS5jb20vMDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAt",
    "MDAwMDAwMDAwMDAwLyIsImt1YmVybmV0ZXMuaW8iOnsibmFtZXNwYWNlIjoic2FzZ2F0ZSIsInNlcnZpY2VhY2NvdW",
    "50Ijp7Im5hbWUiOiJzYXNnYXRlIn19LCJuYmYiOjE3MzU2ODk2MDAsInN1YiI6InN5c3RlbTpzZXJ2aWNlYWNjb3Vu",
    "dDpzYXNnYXRlOnNhc2dhdGUifQ",
    ".",
    "CzBVep_E6Q4zWH2ix-wRNluApcrvFDleg6jN8hc8YYar0PUaP2SJrtP4HUJnjLHW-yBFao-02f4jSG2St9wBJg",
);

/// The `client_assertion_type` Entra accepts (RFC 7523).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The api-versions of the IMDS identity endpoint accepted here.
pub const IMDS_API_VERSIONS: &[&str] = &["2018-02-01", "2019-08-01"];
/// The api-version of the App Service / Container Apps identity endpoint.
pub const APP_SERVICE_API_VERSION: &str = "2019-08-01";
/// The first Microsoft.Storage api-version that has `revokeUserDelegationKeys`.
pub const FIRST_REVOKE_API_VERSION: &str = "2019-04-01";

/// The token lifetime when none is set, in seconds.
const DEFAULT_LIFETIME: i64 = 3600;
/// How long before issuance tokens are valid (`nbf`), in seconds.
const NOT_BEFORE_SKEW: i64 = 60;
/// The audiences ARM accepts.
const ARM_AUDIENCES: &[&str] = &[
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
    "https://management.azure.com/",
    "https://management.azure.com",
];

/// A running fake Entra ID + ARM; stops when dropped.
pub struct FakeEntra {
    base: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
}

/// A freshly issued access token and its times (epoch seconds; `expires_in` as announced).
struct Minted {
    token: String,
    not_before: i64,
    expires_on: i64,
    expires_in: i64,
}

/// One issued access token, as ARM needs to judge it.
struct Issued {
    audience: String,
    not_before: i64,
    expires_on: i64,
}

#[derive(Default)]
struct Records {
    /// Every issued access token.
    tokens: HashMap<String, Issued>,
    /// The scope (v2.0) or resource (managed identity) of every successful token response.
    requests: Vec<String>,
    /// Accepted `revokeUserDelegationKeys` calls: the storage account resource ids.
    revocations: Vec<String>,
}

struct Shared {
    down: AtomicBool,
    lifetime: AtomicI64,
    audience_override: Mutex<Option<String>>,
    records: Mutex<Records>,
    counter: AtomicU64,
}

impl Shared {
    fn records(&self) -> MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn audience_override(&self) -> Option<String> {
        self.audience_override
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `n` bytes nobody can predict well enough to matter here (and never twice the same).
    fn random_bytes(&self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            let mut hasher = RandomState::new().build_hasher();
            hasher.write_u64(self.counter.fetch_add(1, Ordering::Relaxed));
            out.extend_from_slice(&hasher.finish().to_le_bytes());
        }
        out.truncate(n);
        out
    }

    /// A random GUID, for trace and correlation ids.
    fn guid(&self) -> String {
        let b = self.random_bytes(16);
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }

    /// Issues an access token for `resource` (an identifier Entra knows, see [`known_resource`]),
    /// and records it under `requested` (the scope or resource as the client sent it).
    fn mint(&self, resource: &str, requested: &str, appidacr: &str) -> Minted {
        let now = now();
        let lifetime = self.lifetime.load(Ordering::SeqCst);
        let not_before = now - NOT_BEFORE_SKEW;
        let expires_on = now + lifetime;
        let audience = match self.audience_override() {
            Some(aud) if is_storage(resource) => aud,
            _ => resource.to_owned(),
        };
        let header = r#"{"alg":"RS256","typ":"JWT","kid":"fake"}"#;
        let claims = json!({
            "aud": audience,
            "iss": format!("https://sts.windows.net/{TENANT}/"),
            "iat": not_before,
            "nbf": not_before,
            "exp": expires_on,
            "aio": URL_SAFE_NO_PAD.encode(self.random_bytes(24)),
            "appid": CLIENT_ID,
            "appidacr": appidacr,
            "idp": format!("https://sts.windows.net/{TENANT}/"),
            "idtyp": "app",
            "oid": OBJECT_ID,
            "rh": "0.fake.",
            "sub": OBJECT_ID,
            "tid": TENANT,
            "uti": URL_SAFE_NO_PAD.encode(self.random_bytes(16)),
            "ver": "1.0",
        });
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode(self.random_bytes(256)),
        );
        let mut records = self.records();
        records.tokens.insert(
            token.clone(),
            Issued {
                audience,
                not_before,
                expires_on,
            },
        );
        records.requests.push(requested.to_owned());
        Minted {
            token,
            not_before,
            expires_on,
            // Entra and IMDS announce one second less than the lifetime (3599 for an hour).
            expires_in: (lifetime - 1).max(0),
        }
    }

    /// Entra's error JSON: `AADSTS{code}: {message}` plus trace and correlation ids.
    fn aad_error(&self, status: StatusCode, error: &str, code: u32, message: &str) -> Response {
        let trace_id = self.guid();
        let correlation_id = self.guid();
        let timestamp = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
        let body = json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {message} Trace ID: {trace_id} Correlation ID: {correlation_id} \
                 Timestamp: {timestamp}"
            ),
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        });
        json_response(status, &body)
    }

    /// App Service's identity endpoint error JSON.
    fn app_service_error(&self, status: StatusCode, message: &str) -> Response {
        let body = json!({
            "statusCode": status.as_u16(),
            "message": message,
            "correlationId": self.guid(),
        });
        json_response(status, &body)
    }
}

impl FakeEntra {
    /// The header value App Service puts in `IDENTITY_HEADER`, expected in `X-IDENTITY-HEADER`.
    pub const APP_SERVICE_HEADER: &'static str = "fake-app-service-identity-header";

    /// Binds 127.0.0.1 on a free port and serves in the background.
    pub async fn start() -> FakeEntra {
        let shared = Arc::new(Shared {
            down: AtomicBool::new(false),
            lifetime: AtomicI64::new(DEFAULT_LIFETIME),
            audience_override: Mutex::new(None),
            records: Mutex::new(Records::default()),
            counter: AtomicU64::new(0),
        });
        let router = Router::new()
            .route(
                "/{tenant}/oauth2/v2.0/token",
                get(token_wrong_method).post(token_v2),
            )
            .route("/metadata/identity/oauth2/token", get(imds))
            .route("/msi/token", get(app_service))
            .route("/arm", any(arm))
            .route("/arm/{*path}", any(arm))
            .layer(middleware::from_fn_with_state(shared.clone(), outage))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("bind 127.0.0.1:0 for the fake Entra ID");
        let port = listener
            .local_addr()
            .expect("the fake Entra ID's local address")
            .port();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = stopped.await;
        });
        tokio::spawn(async move {
            let _ = server.await;
        });
        FakeEntra {
            base: format!("http://127.0.0.1:{port}"),
            shared,
            stop: Some(stop),
        }
    }

    /// `http://127.0.0.1:PORT`, the authority host: the token URL is
    /// `{host}/{tenant}/oauth2/v2.0/token`.
    pub fn authority_host(&self) -> String {
        self.base.clone()
    }

    /// The IMDS token endpoint, `http://127.0.0.1:PORT/metadata/identity/oauth2/token`.
    pub fn imds_endpoint(&self) -> String {
        format!("{}/metadata/identity/oauth2/token", self.base)
    }

    /// The App Service `IDENTITY_ENDPOINT`, `http://127.0.0.1:PORT/msi/token`.
    pub fn app_service_endpoint(&self) -> String {
        format!("{}/msi/token", self.base)
    }

    /// The ARM base URL, `http://127.0.0.1:PORT/arm`.
    pub fn arm_endpoint(&self) -> String {
        format!("{}/arm", self.base)
    }

    /// While `true`, every endpoint answers 503 (Entra's or ARM's error JSON).
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// While `Some`, Storage tokens carry this `aud` instead of the requested resource.
    pub fn set_audience_override(&self, aud: Option<&str>) {
        *self
            .shared
            .audience_override
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = aud.map(str::to_owned);
    }

    /// Successful token responses so far, all endpoints together.
    pub fn token_requests(&self) -> usize {
        self.shared.records().requests.len()
    }

    /// Successful token responses whose scope (v2.0) or resource (managed identity), as the
    /// client sent it, starts with `scope_or_resource_prefix`.
    pub fn token_requests_for(&self, scope_or_resource_prefix: &str) -> usize {
        self.shared
            .records()
            .requests
            .iter()
            .filter(|r| r.starts_with(scope_or_resource_prefix))
            .count()
    }

    /// Accepted `revokeUserDelegationKeys` calls: the storage account resource ids
    /// (`/subscriptions/…/storageAccounts/{name}`, as sent), in order.
    pub fn revocations(&self) -> Vec<String> {
        self.shared.records().revocations.clone()
    }

    /// The lifetime of tokens issued from now on, in seconds (default 3600). Zero or negative
    /// issues tokens that are already expired.
    pub fn set_token_lifetime(&self, secs: i64) {
        self.shared.lifetime.store(secs, Ordering::SeqCst);
    }
}

impl Drop for FakeEntra {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store, no-cache"),
            (header::PRAGMA, "no-cache"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// `set_down(true)`: everything answers 503, in the voice of the service behind the path.
async fn outage(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    if !shared.down.load(Ordering::SeqCst) {
        return next.run(request).await;
    }
    let path = request.uri().path();
    if path == "/arm" || path.starts_with("/arm/") {
        arm_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The server (fake ARM) is currently unable to handle the request. Please retry.",
        )
    } else {
        shared.aad_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            50196,
            "The server is temporarily unavailable: the service (fake Entra ID) is down. \
             Please retry the request.",
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Resources

/// Whether Entra knows this resource identifier (a scope without `/.default`, or a managed
/// identity `resource`). Tokens carry it in `aud` as the client spelled it, trailing slash
/// included, as Entra does.
fn known_resource(resource: &str) -> bool {
    let trimmed = resource
        .strip_suffix('/')
        .unwrap_or(resource)
        .to_ascii_lowercase();
    is_storage(resource)
        || ARM_AUDIENCES
            .iter()
            .any(|a| a.strip_suffix('/').unwrap_or(a) == trimmed)
}

/// Azure Storage: `https://storage.azure.com` or `https://{account}.blob.core.windows.net`.
fn is_storage(resource: &str) -> bool {
    let trimmed = resource
        .strip_suffix('/')
        .unwrap_or(resource)
        .to_ascii_lowercase();
    if trimmed == "https://storage.azure.com" {
        return true;
    }
    trimmed
        .strip_prefix("https://")
        .and_then(|rest| rest.strip_suffix(".blob.core.windows.net"))
        .is_some_and(is_account_name)
}

/// A storage account name: 3 to 24 lowercase letters and digits.
fn is_account_name(name: &str) -> bool {
    (3..=24).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An Entra refusal, turned into its error JSON (with fresh trace ids) by [`Shared::aad_error`].
struct Refusal {
    status: StatusCode,
    error: &'static str,
    code: u32,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, error: &'static str, code: u32, message: impl Into<String>) -> Self {
        Refusal {
            status,
            error,
            code,
            message: message.into(),
        }
    }

    fn bad_request(error: &'static str, code: u32, message: impl Into<String>) -> Self {
        Refusal::new(StatusCode::BAD_REQUEST, error, code, message)
    }

    fn into_response(self, shared: &Shared) -> Response {
        shared.aad_error(self.status, self.error, self.code, &self.message)
    }
}

fn resource_not_found(resource: &str) -> Refusal {
    Refusal::bad_request(
        "invalid_resource",
        500011,
        format!(
            "The resource principal named {resource} was not found in the tenant named {TENANT}. \
             This can happen if the application has not been installed by the administrator of \
             the tenant or consented to by any user in the tenant. You might have sent your \
             authentication request to the wrong tenant."
        ),
    )
}

/// Query parameters, decoded; a repeated name keeps its first value.
fn query_pairs(query: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

// ---------------------------------------------------------------------------------------------
// OAuth 2.0 client credentials, v2.0 endpoint

async fn token_wrong_method(State(shared): State<Arc<Shared>>) -> Response {
    shared.aad_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        900561,
        "The endpoint only accepts POST requests. Received a GET request.",
    )
}

async fn token_v2(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    client_credentials(&shared, &tenant, &headers, &body)
        .unwrap_or_else(|refusal| refusal.into_response(&shared))
}

fn client_credentials(
    shared: &Shared,
    tenant: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Refusal> {
    if !tenant.eq_ignore_ascii_case(TENANT) {
        return Err(Refusal::bad_request(
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID \
                 and are signing into the correct cloud. Check with your subscription \
                 administrator, this may happen if there are no active subscriptions for the \
                 tenant."
            ),
        ));
    }

    // Entra reads the parameters only from a form-encoded body.
    let form_encoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    let mut form: HashMap<String, String> = HashMap::new();
    if form_encoded {
        for (k, v) in url::form_urlencoded::parse(body) {
            if form.insert(k.to_string(), v.into_owned()).is_some() {
                return Err(Refusal::bad_request(
                    "invalid_request",
                    9002313,
                    format!("Invalid request. Request is malformed or invalid: '{k}' repeated."),
                ));
            }
        }
    }
    // An empty value counts as absent.
    form.retain(|_, v| !v.is_empty());
    let missing = |name: &str| {
        Refusal::bad_request(
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    };

    let grant_type = form
        .get("grant_type")
        .ok_or_else(|| missing("grant_type"))?;
    if grant_type != "client_credentials" {
        return Err(Refusal::bad_request(
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{grant_type}'."),
        ));
    }
    let client_id = form.get("client_id").ok_or_else(|| missing("client_id"))?;
    let scope = form.get("scope").ok_or_else(|| missing("scope"))?;
    if !client_id.eq_ignore_ascii_case(CLIENT_ID) {
        return Err(Refusal::bad_request(
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory \
                 '{TENANT}'. This can happen if the application has not been installed by the \
                 administrator of the tenant or consented to by any user in the tenant. You may \
                 have sent your authentication request to the wrong tenant."
            ),
        ));
    }

    // The client's credential: a secret, or a federated assertion.
    let appidacr = match (form.get("client_secret"), form.get("client_assertion")) {
        (Some(_), Some(_)) => {
            return Err(Refusal::bad_request(
                "invalid_request",
                9002313,
                "Invalid request. Request is malformed or invalid: both 'client_secret' and \
                 'client_assertion' were presented; send exactly one client credential.",
            ));
        }
        (None, None) => {
            return Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or \
                 'client_secret'.",
            ));
        }
        (Some(secret), None) => {
            if secret != CLIENT_SECRET {
                return Err(Refusal::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000215,
                    format!(
                        "Invalid client secret provided. Ensure the secret being sent in the \
                         request is the client secret value, not the client secret ID, for a \
                         secret added to app '{CLIENT_ID}'."
                    ),
                ));
            }
            "1"
        }
        (None, Some(assertion)) => {
            match form.get("client_assertion_type").map(String::as_str) {
                None => return Err(missing("client_assertion_type")),
                Some(JWT_BEARER) => {}
                Some(_) => {
                    return Err(Refusal::bad_request(
                        "invalid_request",
                        90011,
                        "Unexpected client assertion type.",
                    ));
                }
            }
            check_federated_assertion(assertion)?;
            "2"
        }
    };

    // The scope: exactly one, `{resource}/.default`, for a resource Entra knows.
    let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
    if scopes.len() > 1 {
        let defaults = scopes.iter().filter(|s| s.ends_with("/.default")).count();
        return Err(if defaults == scopes.len() {
            Refusal::bad_request(
                "invalid_scope",
                28000,
                format!(
                    "Provided value for the input parameter scope '{scope}' is not valid because \
                     it contains more than one resource. Scope {scope} is not valid."
                ),
            )
        } else {
            Refusal::bad_request(
                "invalid_scope",
                70011,
                format!(
                    "The provided request must include a 'scope' input parameter. The provided \
                     value for the input parameter 'scope' is not valid. The scope {scope} is \
                     not valid. .default scope can't be combined with resource-specific scopes."
                ),
            )
        });
    }
    let Some(resource) = scope.strip_suffix("/.default") else {
        return Err(Refusal::bad_request(
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must \
                 have a scope value with /.default suffixed to the resource identifier \
                 (application ID URI)."
            ),
        ));
    };
    if !known_resource(resource) {
        return Err(resource_not_found(resource));
    }

    let Minted {
        token, expires_in, ..
    } = shared.mint(resource, scope, appidacr);
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "token_type": "Bearer",
            "expires_in": expires_in,
            "ext_expires_in": expires_in,
            "access_token": token,
        }),
    ))
}

/// Workload identity federation: the assertion must be a JWT from the configured issuer and
/// subject, for [`FEDERATED_AUDIENCE`], within its time range. (Its signature is not checked.)
fn check_federated_assertion(assertion: &str) -> Result<(), Refusal> {
    let malformed = || {
        Refusal::bad_request(
            "invalid_request",
            50027,
            "JWT token is invalid or malformed.",
        )
    };
    let invalid =
        |code: u32, message: String| Refusal::bad_request("invalid_client", code, message);
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err(malformed());
    };
    let decode = |part: &str| -> Option<Value> {
        let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
        serde_json::from_slice::<Value>(&bytes)
            .ok()
            .filter(Value::is_object)
    };
    let (Some(header), Some(claims)) = (decode(header), decode(claims)) else {
        return Err(malformed());
    };
    if signature.is_empty() || header.get("alg").and_then(Value::as_str).is_none() {
        return Err(malformed());
    }
    let text = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or("");
    let (issuer, subject) = (text("iss"), text("sub"));
    if issuer != FEDERATED_ISSUER {
        return Err(invalid(
            700211,
            format!(
                "No matching federated identity record found for presented assertion issuer \
                 '{issuer}'. Please check your federated identity credential Subject, Audience \
                 and Issuer against the presented assertion."
            ),
        ));
    }
    if subject != FEDERATED_SUBJECT {
        return Err(invalid(
            700213,
            format!(
                "No matching federated identity record found for presented assertion subject \
                 '{subject}'. Please check your federated identity credential Subject, Audience \
                 and Issuer against the presented assertion."
            ),
        ));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&FEDERATED_AUDIENCE) {
        return Err(invalid(
            700212,
            format!(
                "No matching federated identity record found for presented assertion audience \
                 '{}'. Please check your federated identity credential Subject, Audience and \
                 Issuer against the presented assertion.",
                audiences.join(",")
            ),
        ));
    }
    let now = now();
    let expires = claims.get("exp").and_then(Value::as_i64);
    let not_before = claims.get("nbf").and_then(Value::as_i64);
    let in_range = expires.is_some_and(|exp| now < exp) && not_before.is_none_or(|nbf| nbf <= now);
    if !in_range {
        return Err(invalid(
            700024,
            "Client assertion is not within its valid time range.".to_owned(),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Managed identity: IMDS

/// IMDS's own (non-AADSTS) error JSON.
fn imds_error(error: &str, description: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({ "error": error, "error_description": description }),
    )
}

async fn imds(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if headers.contains_key("x-forwarded-for") {
        return imds_error(
            "invalid_request",
            "Requests with an X-Forwarded-For header are rejected: IMDS is not reachable \
             through a proxy.",
        );
    }
    let metadata = headers.get("metadata").and_then(|v| v.to_str().ok());
    if !metadata.is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return imds_error("invalid_request", "Required metadata header not specified");
    }
    let query = query_pairs(query.as_deref());
    let Some(api_version) = query.get("api-version").filter(|v| !v.is_empty()) else {
        return imds_error(
            "invalid_request",
            "Required query variable 'api-version' is missing",
        );
    };
    if !IMDS_API_VERSIONS.contains(&api_version.as_str()) {
        return imds_error(
            "invalid_request",
            &format!("Invalid api-version '{api_version}'"),
        );
    }
    let Some(resource) = query.get("resource").filter(|v| !v.is_empty()) else {
        return imds_error(
            "invalid_request",
            "Required query variable 'resource' is missing",
        );
    };
    let selectors: Vec<(&str, &str)> = [
        ("client_id", CLIENT_ID),
        ("object_id", OBJECT_ID),
        ("msi_res_id", IDENTITY_RESOURCE_ID),
    ]
    .into_iter()
    .filter(|(name, _)| query.contains_key(*name))
    .collect();
    if selectors.len() > 1 {
        return imds_error(
            "invalid_request",
            "Only one of client_id, object_id or msi_res_id may be specified",
        );
    }
    if let Some((name, expected)) = selectors.first()
        && !query[*name].eq_ignore_ascii_case(expected)
    {
        return imds_error("invalid_request", "Identity not found");
    }
    if !known_resource(resource) {
        return resource_not_found(resource).into_response(&shared);
    }
    let minted = shared.mint(resource, resource, "2");
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": minted.token,
            "client_id": CLIENT_ID,
            "expires_in": minted.expires_in.to_string(),
            "expires_on": minted.expires_on.to_string(),
            "ext_expires_in": minted.expires_in.to_string(),
            "not_before": minted.not_before.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// Managed identity: App Service / Container Apps

async fn app_service(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let presented = headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok());
    if presented != Some(FakeEntra::APP_SERVICE_HEADER) {
        return shared.app_service_error(
            StatusCode::UNAUTHORIZED,
            "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER.",
        );
    }
    let query = query_pairs(query.as_deref());
    match query.get("api-version").map(String::as_str) {
        Some(APP_SERVICE_API_VERSION) => {}
        Some(other) => {
            return shared.app_service_error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "The api-version '{other}' is not supported; use \
                     '{APP_SERVICE_API_VERSION}'."
                ),
            );
        }
        None => {
            return shared.app_service_error(
                StatusCode::BAD_REQUEST,
                "The api-version query parameter is required.",
            );
        }
    }
    let Some(resource) = query.get("resource").filter(|v| !v.is_empty()) else {
        return shared.app_service_error(
            StatusCode::BAD_REQUEST,
            "The resource query parameter is required.",
        );
    };
    let selectors: Vec<(&str, &str)> = [
        ("client_id", CLIENT_ID),
        ("principal_id", OBJECT_ID),
        ("mi_res_id", IDENTITY_RESOURCE_ID),
    ]
    .into_iter()
    .filter(|(name, _)| query.contains_key(*name))
    .collect();
    let identity_found = match selectors[..] {
        [] => true,
        [(name, expected)] => query[name].eq_ignore_ascii_case(expected),
        _ => false,
    };
    if !identity_found {
        return shared.app_service_error(
            StatusCode::BAD_REQUEST,
            "Unable to load the proper Managed Identity.",
        );
    }
    if !known_resource(resource) {
        return shared.app_service_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "AADSTS500011: The resource principal named {resource} was not found in the \
                 tenant named {TENANT}."
            ),
        );
    }
    let Minted {
        token, expires_on, ..
    } = shared.mint(resource, resource, "2");
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": token,
            "expires_on": expires_on.to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": CLIENT_ID,
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// Azure Resource Manager

fn arm_error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({ "error": { "code": code, "message": message } }),
    )
}

/// ARM's 401, with its `WWW-Authenticate` challenge.
fn arm_unauthorized(code: &str, message: &str) -> Response {
    let mut response = arm_error(StatusCode::UNAUTHORIZED, code, message);
    let challenge = format!(
        "Bearer authorization_uri=\"https://login.microsoftonline.com/{TENANT}\", \
         error=\"invalid_token\", error_description=\"{message}\""
    );
    if let Ok(value) = challenge.replace('\'', "").parse() {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

async fn arm(
    State(shared): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    request: Request,
) -> Response {
    // Authentication comes first, whatever the path.
    let Some(authorization) = headers.get(header::AUTHORIZATION) else {
        return arm_unauthorized(
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        );
    };
    let token = authorization
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
        .map(|(_, token)| token.trim().to_owned());
    let Some(token) = token else {
        return arm_unauthorized(
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is provided in an invalid format.",
        );
    };
    let issued = shared
        .records()
        .tokens
        .get(&token)
        .map(|t| (t.audience.clone(), t.not_before, t.expires_on));
    let Some((audience, not_before, expires_on)) = issued else {
        return arm_unauthorized("InvalidAuthenticationToken", "The access token is invalid.");
    };
    if !ARM_AUDIENCES.contains(&audience.as_str()) {
        return arm_unauthorized(
            "InvalidAuthenticationTokenAudience",
            &format!(
                "The access token has been obtained for wrong audience or resource \
                 '{audience}'. It should exactly match with one of the allowed audiences \
                 '{}'.",
                ARM_AUDIENCES.join("','")
            ),
        );
    }
    let now = now();
    if now >= expires_on || now < not_before {
        let at = |t: i64| {
            chrono::DateTime::from_timestamp(t, 0)
                .map(|d| d.format("%m/%d/%Y %H:%M:%S").to_string())
                .unwrap_or_default()
        };
        return arm_unauthorized(
            "ExpiredAuthenticationToken",
            &format!(
                "The access token expiry UTC time '{}' is earlier than current UTC time '{}'.",
                at(expires_on),
                at(now)
            ),
        );
    }

    let query = query_pairs(request.uri().query());
    let Some(api_version) = query.get("api-version").filter(|v| !v.is_empty()) else {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    };
    if !is_api_version(api_version) {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidApiVersionParameter",
            &format!(
                "The api-version '{api_version}' is invalid. The supported versions are dates \
                 such as '2023-05-01'."
            ),
        );
    }

    let path = request
        .uri()
        .path()
        .strip_prefix("/arm")
        .unwrap_or_default();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let shape = [
        Some("subscriptions"),
        None,
        Some("resourceGroups"),
        None,
        Some("providers"),
        Some("Microsoft.Storage"),
        Some("storageAccounts"),
        None,
        Some("revokeUserDelegationKeys"),
    ];
    let matches = segments.len() == shape.len()
        && segments
            .iter()
            .zip(shape)
            .all(|(segment, literal)| match literal {
                Some(literal) => segment.eq_ignore_ascii_case(literal),
                None => !segment.is_empty(),
            });
    if !matches {
        return arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!(
                "No route for '{path}': this fake ARM implements only POST \
                 /subscriptions/{{sub}}/resourceGroups/{{rg}}/providers/Microsoft.Storage/\
                 storageAccounts/{{name}}/revokeUserDelegationKeys."
            ),
        );
    }
    let (subscription, group, account) = (segments[1], segments[3], segments[7]);
    if !is_guid(subscription) {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidSubscriptionId",
            &format!(
                "The provided subscription identifier '{subscription}' is malformed or invalid."
            ),
        );
    }
    if method != Method::POST {
        return arm_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("The requested resource does not support http method '{method}'."),
        );
    }
    if api_version.as_str() < FIRST_REVOKE_API_VERSION {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "NoRegisteredProviderFound",
            &format!(
                "No registered resource provider found for API version '{api_version}' and \
                 action 'revokeUserDelegationKeys' of type 'storageAccounts'. It is available \
                 from api-version '{FIRST_REVOKE_API_VERSION}'."
            ),
        );
    }
    if !is_account_name(account) {
        return arm_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            &format!(
                "The Resource 'Microsoft.Storage/storageAccounts/{account}' under resource group \
                 '{group}' was not found."
            ),
        );
    }
    let resource_id = path
        .rsplit_once('/')
        .map(|(id, _)| id.to_owned())
        .unwrap_or_default();
    shared.records().revocations.push(resource_id);
    StatusCode::OK.into_response()
}

/// `YYYY-MM-DD`, optionally followed by `-preview`.
fn is_api_version(v: &str) -> bool {
    let date = v.strip_suffix("-preview").unwrap_or(v);
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok() && date.len() == 10
}
