//! A small Blob service REST client: the handful of calls sasgate makes to a storage account.
//!
//! Account-level data calls are authorized with Shared Key (see [`super::shared_key`]); Get User
//! Delegation Key with a Microsoft Entra bearer token, which is sent over HTTPS only. Nothing here
//! logs, and no error carries a key, a signature or a token.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use url::Url;

use super::error::AzureError;
use super::{shared_key, xml};
use crate::sas::name::{BlobName, ContainerName};
use crate::sas::udk::UserDelegationKey;
use crate::secret::SigningKey;

/// The `x-ms-version` this client speaks.
pub const API_VERSION: &str = "2025-11-05";

/// Azure's limit on stored access policies per container.
pub const MAX_STORED_POLICIES: usize = 5;
/// Azure's limit on a stored access policy `Id`, in characters.
pub const MAX_POLICY_ID_CHARS: usize = 64;

/// Characters left as they are in a URL path: RFC 3986 unreserved, plus `/` between segments.
const PATH_SEGMENT_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

const X_MS_DATE: HeaderName = HeaderName::from_static("x-ms-date");
const X_MS_VERSION: HeaderName = HeaderName::from_static("x-ms-version");
const X_MS_BLOB_TYPE: HeaderName = HeaderName::from_static("x-ms-blob-type");
const X_MS_BLOB_PUBLIC_ACCESS: HeaderName = HeaderName::from_static("x-ms-blob-public-access");
const X_MS_ERROR_CODE: HeaderName = HeaderName::from_static("x-ms-error-code");
const X_MS_REQUEST_ID: HeaderName = HeaderName::from_static("x-ms-request-id");
const X_MS_LEASE_ID: HeaderName = HeaderName::from_static("x-ms-lease-id");
const X_MS_LEASE_ACTION: HeaderName = HeaderName::from_static("x-ms-lease-action");
const X_MS_LEASE_DURATION: HeaderName = HeaderName::from_static("x-ms-lease-duration");

/// One stored access policy (a `<SignedIdentifier>`) on a container. Times and permissions are
/// kept as the text Azure stores (e.g. `2025-11-29T04:00:00.0000000Z`, `rl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIdentifier {
    /// The policy id, referenced by a SAS as `si`. At most 64 characters.
    pub id: String,
    /// `AccessPolicy/Start`, if the policy sets one.
    pub start: Option<String>,
    /// `AccessPolicy/Expiry`, if the policy sets one.
    pub expiry: Option<String>,
    /// `AccessPolicy/Permission`, if the policy sets one.
    pub permission: Option<String>,
}

/// A container's access control list: its stored access policies and its anonymous access level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerAcl {
    /// The stored access policies, in the order Azure returned them.
    pub identifiers: Vec<SignedIdentifier>,
    /// `x-ms-blob-public-access`: `Some("container")`, `Some("blob")`, or `None` for private.
    pub public_access: Option<String>,
    /// The container's `ETag` when read; ignored when setting.
    pub etag: Option<String>,
}

/// A client for one storage account's Blob service.
#[derive(Clone, Debug)]
pub struct BlobServiceClient {
    account: String,
    endpoint: Url,
    /// `None` for an account that signs only with Entra ID: Shared Key calls are refused.
    key: Option<SigningKey>,
    http: reqwest::Client,
}

/// How a request is authorized.
enum Auth<'a> {
    SharedKey,
    Bearer(&'a str),
}

impl BlobServiceClient {
    /// A client for `account` at `endpoint`, authorizing with the account `key` (Shared Key).
    ///
    /// `endpoint` is the Blob service root: `https://<account>.blob.core.windows.net` on Azure
    /// (see [`Self::default_endpoint`]), or a path-style emulator URL such as
    /// `https://127.0.0.1:10000/devstoreaccount1`. A trailing `/` is ignored. `ca_pem_file`, if
    /// given, is a PEM file of certificates to trust in addition to the public roots (for
    /// Azurite's self-signed certificate or a private endpoint).
    pub fn new(
        account: &str,
        endpoint: Url,
        ca_pem_file: Option<&Path>,
        key: SigningKey,
    ) -> Result<Self, AzureError> {
        Self::build(account, endpoint, ca_pem_file, Some(key))
    }

    /// A client for an account configured without a key: only calls authorized with a bearer
    /// token ([`Self::get_user_delegation_key`]) work; Shared Key calls fail with
    /// [`AzureError::InvalidInput`].
    pub fn keyless(
        account: &str,
        endpoint: Url,
        ca_pem_file: Option<&Path>,
    ) -> Result<Self, AzureError> {
        Self::build(account, endpoint, ca_pem_file, None)
    }

    fn build(
        account: &str,
        endpoint: Url,
        ca_pem_file: Option<&Path>,
        key: Option<SigningKey>,
    ) -> Result<Self, AzureError> {
        if account.is_empty() {
            return Err(AzureError::Config("the account name is empty".into()));
        }
        let endpoint = normalise_endpoint(endpoint)?;
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("sasgate/", env!("CARGO_PKG_VERSION")))
            // Azure Storage does not redirect; following one could carry a request elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120));
        if let Some(path) = ca_pem_file {
            let pem = std::fs::read(path).map_err(|e| {
                AzureError::Config(format!("cannot read the CA file {}: {e}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| {
                AzureError::Config(format!(
                    "the CA file {} is not PEM certificates",
                    path.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(AzureError::Config(format!(
                    "the CA file {} holds no certificate",
                    path.display()
                )));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| AzureError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            account: account.to_owned(),
            endpoint,
            key,
            http,
        })
    }

    /// The public Azure Blob endpoint of `account`: `https://<account>.blob.core.windows.net`.
    pub fn default_endpoint(account: &str) -> Result<Url, AzureError> {
        Url::parse(&format!("https://{account}.blob.core.windows.net"))
            .map_err(|e| AzureError::Config(format!("invalid account name for a URL: {e}")))
    }

    /// The storage account name.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The Blob service endpoint, without a trailing `/`.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// The URL of a container: `<endpoint>/<container>`.
    pub fn container_url(&self, container: &ContainerName) -> Url {
        self.url_with_path(&encode_path(container.as_str()))
    }

    /// The URL of a blob: `<endpoint>/<container>/<blob>`, each character of the names other
    /// than RFC 3986 unreserved ones and `/` percent-encoded (UTF-8). No query.
    pub fn blob_url(&self, container: &ContainerName, blob: &BlobName) -> Url {
        self.url_with_path(&format!(
            "{}/{}",
            encode_path(container.as_str()),
            encode_path(blob.as_str())
        ))
    }

    /// Create Container, private. Returns `true` if it was created, `false` if it already
    /// existed (409 `ContainerAlreadyExists`); any other 409, such as `ContainerBeingDeleted`, is
    /// an error.
    pub async fn create_container(&self, container: &ContainerName) -> Result<bool, AzureError> {
        const OP: &str = "create_container";
        let mut url = self.container_url(container);
        url.query_pairs_mut().append_pair("restype", "container");
        let response = self
            .send(
                OP,
                Method::PUT,
                url,
                HeaderMap::new(),
                Some(Vec::new()),
                Auth::SharedKey,
            )
            .await?;
        match response.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::CONFLICT => {
                let err = status_error(OP, response).await;
                if err.code() == Some("ContainerAlreadyExists") {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
            _ => Err(status_error(OP, response).await),
        }
    }

    /// Put Blob as a block blob, replacing any existing blob of that name.
    pub async fn put_blob(
        &self,
        container: &ContainerName,
        blob: &BlobName,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), AzureError> {
        const OP: &str = "put_blob";
        let mut headers = HeaderMap::new();
        headers.insert(X_MS_BLOB_TYPE, HeaderValue::from_static("BlockBlob"));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).map_err(|_| AzureError::InvalidInput {
                operation: OP,
                reason: "the content type is not a valid header value".into(),
            })?,
        );
        let url = self.blob_url(container, blob);
        let response = self
            .send(OP, Method::PUT, url, headers, Some(body), Auth::SharedKey)
            .await?;
        expect_status(OP, response, StatusCode::CREATED).await?;
        Ok(())
    }

    /// Takes a snapshot of a blob and returns its time as the service wrote it (the
    /// `x-ms-snapshot` header), the value a snapshot SAS signs.
    pub async fn snapshot_blob(
        &self,
        container: &ContainerName,
        blob: &BlobName,
    ) -> Result<String, AzureError> {
        const OP: &str = "snapshot_blob";
        let mut url = self.blob_url(container, blob);
        url.set_query(Some("comp=snapshot"));
        let response = self
            .send(
                OP,
                Method::PUT,
                url,
                HeaderMap::new(),
                Some(Vec::new()),
                Auth::SharedKey,
            )
            .await?;
        let response = expect_status(OP, response, StatusCode::CREATED).await?;
        response
            .headers()
            .get("x-ms-snapshot")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or(AzureError::InvalidResponse {
                operation: OP,
                detail: "no x-ms-snapshot header".into(),
            })
    }

    /// Get Blob: the whole blob's content.
    pub async fn get_blob(
        &self,
        container: &ContainerName,
        blob: &BlobName,
    ) -> Result<Vec<u8>, AzureError> {
        const OP: &str = "get_blob";
        let url = self.blob_url(container, blob);
        let response = self
            .send(
                OP,
                Method::GET,
                url,
                HeaderMap::new(),
                None,
                Auth::SharedKey,
            )
            .await?;
        let response = expect_status(OP, response, StatusCode::OK).await?;
        read_body(OP, response).await
    }

    /// Acquires a lease on a container for `seconds` (15–60), returning the lease id. sasgate
    /// replicas take it around a read-modify-write of the container ACL, so that two of them
    /// never overwrite each other's stored access policies. Another holder gives a
    /// `Status { status: 409, code: "LeaseAlreadyPresent" }` error: retry.
    pub async fn acquire_container_lease(
        &self,
        container: &ContainerName,
        seconds: u32,
    ) -> Result<String, AzureError> {
        const OP: &str = "acquire_container_lease";
        let mut headers = HeaderMap::new();
        headers.insert(X_MS_LEASE_ACTION, HeaderValue::from_static("acquire"));
        headers.insert(
            X_MS_LEASE_DURATION,
            HeaderValue::from(seconds.clamp(15, 60)),
        );
        let url = lease_url(self.container_url(container));
        let response = self
            .send(
                OP,
                Method::PUT,
                url,
                headers,
                Some(Vec::new()),
                Auth::SharedKey,
            )
            .await?;
        let response = expect_status(OP, response, StatusCode::CREATED).await?;
        header_text(response.headers(), &X_MS_LEASE_ID).ok_or(AzureError::InvalidResponse {
            operation: OP,
            detail: "no x-ms-lease-id header".into(),
        })
    }

    /// Releases a container lease taken with [`BlobServiceClient::acquire_container_lease`].
    pub async fn release_container_lease(
        &self,
        container: &ContainerName,
        lease_id: &str,
    ) -> Result<(), AzureError> {
        const OP: &str = "release_container_lease";
        let mut headers = HeaderMap::new();
        headers.insert(X_MS_LEASE_ACTION, HeaderValue::from_static("release"));
        headers.insert(
            X_MS_LEASE_ID,
            HeaderValue::from_str(lease_id).map_err(|_| AzureError::InvalidInput {
                operation: OP,
                reason: "the lease id is not a header value".into(),
            })?,
        );
        let url = lease_url(self.container_url(container));
        let response = self
            .send(
                OP,
                Method::PUT,
                url,
                headers,
                Some(Vec::new()),
                Auth::SharedKey,
            )
            .await?;
        expect_status(OP, response, StatusCode::OK).await?;
        Ok(())
    }

    /// Every container of the account (List Containers, following markers). Names Azure
    /// returns that sasgate's name type refuses are skipped.
    pub async fn list_containers(&self) -> Result<Vec<ContainerName>, AzureError> {
        const OP: &str = "list_containers";
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut url = self.endpoint.clone();
            if !url.path().ends_with('/') {
                let path = format!("{}/", url.path());
                url.set_path(&path);
            }
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("comp", "list");
                if let Some(m) = &marker {
                    q.append_pair("marker", m);
                }
            }
            let response = self
                .send(
                    OP,
                    Method::GET,
                    url,
                    HeaderMap::new(),
                    None,
                    Auth::SharedKey,
                )
                .await?;
            let response = expect_status(OP, response, StatusCode::OK).await?;
            let body = read_body(OP, response).await?;
            let (names, next) =
                xml::parse_container_list(&body).map_err(|e| AzureError::InvalidResponse {
                    operation: OP,
                    detail: e.0,
                })?;
            out.extend(names.iter().filter_map(|n| ContainerName::parse(n).ok()));
            match next {
                Some(m) => marker = Some(m),
                None => return Ok(out),
            }
        }
    }

    /// Get Container ACL: the stored access policies, the public access level and the ETag.
    pub async fn get_container_acl(
        &self,
        container: &ContainerName,
    ) -> Result<ContainerAcl, AzureError> {
        const OP: &str = "get_container_acl";
        let url = acl_url(self.container_url(container));
        let response = self
            .send(
                OP,
                Method::GET,
                url,
                HeaderMap::new(),
                None,
                Auth::SharedKey,
            )
            .await?;
        let response = expect_status(OP, response, StatusCode::OK).await?;
        let public_access = header_text(response.headers(), &X_MS_BLOB_PUBLIC_ACCESS);
        let etag = header_text(response.headers(), &header::ETAG);
        let body = read_body(OP, response).await?;
        let identifiers =
            xml::parse_signed_identifiers(&body).map_err(|e| AzureError::InvalidResponse {
                operation: OP,
                detail: e.0,
            })?;
        Ok(ContainerAcl {
            identifiers,
            public_access,
            etag,
        })
    }

    /// Set Container ACL: **replaces** all stored access policies with `acl.identifiers`, and
    /// sets the public access level to `acl.public_access`.
    ///
    /// `x-ms-blob-public-access` is sent only when `acl.public_access` is `Some`; leaving it out
    /// makes the container **private**. To change only the policies, read the ACL first with
    /// [`Self::get_container_acl`] and pass its `public_access` back (read-modify-write is the
    /// caller's job). `acl.etag` is not sent.
    ///
    /// `if_match` is sent as `If-Match`. Caution: the Set Container ACL REST operation documents
    /// only `If-Modified-Since`/`If-Unmodified-Since`, and Azurite 3.37.0 ignores `If-Match`
    /// here (a stale ETag still succeeds), so it is not a reliable concurrency guard.
    ///
    /// Refuses, before sending, more than [`MAX_STORED_POLICIES`] policies (Azure answers 400;
    /// Azurite accepts them) and ids that are empty or longer than [`MAX_POLICY_ID_CHARS`].
    /// Returns the container's new ETag.
    pub async fn set_container_acl(
        &self,
        container: &ContainerName,
        acl: &ContainerAcl,
        if_match: Option<&str>,
        lease_id: Option<&str>,
    ) -> Result<Option<String>, AzureError> {
        const OP: &str = "set_container_acl";
        let invalid = |reason: String| AzureError::InvalidInput {
            operation: OP,
            reason,
        };
        if acl.identifiers.len() > MAX_STORED_POLICIES {
            return Err(invalid(format!(
                "a container holds at most {MAX_STORED_POLICIES} stored access policies, {} given",
                acl.identifiers.len()
            )));
        }
        for si in &acl.identifiers {
            let chars = si.id.chars().count();
            if chars == 0 || chars > MAX_POLICY_ID_CHARS {
                return Err(invalid(format!(
                    "a stored access policy id is 1 to {MAX_POLICY_ID_CHARS} characters"
                )));
            }
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        if let Some(access) = &acl.public_access {
            headers.insert(
                X_MS_BLOB_PUBLIC_ACCESS,
                HeaderValue::from_str(access)
                    .map_err(|_| invalid("the public access level is not a header value".into()))?,
            );
        }
        if let Some(etag) = if_match {
            headers.insert(
                header::IF_MATCH,
                HeaderValue::from_str(etag)
                    .map_err(|_| invalid("the ETag is not a header value".into()))?,
            );
        }
        if let Some(lease) = lease_id {
            headers.insert(
                X_MS_LEASE_ID,
                HeaderValue::from_str(lease)
                    .map_err(|_| invalid("the lease id is not a header value".into()))?,
            );
        }
        let url = acl_url(self.container_url(container));
        let body = xml::signed_identifiers(&acl.identifiers);
        let response = self
            .send(OP, Method::PUT, url, headers, Some(body), Auth::SharedKey)
            .await?;
        let response = expect_status(OP, response, StatusCode::OK).await?;
        Ok(header_text(response.headers(), &header::ETAG))
    }

    /// Get User Delegation Key, authorized with a Microsoft Entra access token for
    /// `https://storage.azure.com/`. The key is valid from `start` to `expiry` (Azure: at most 7
    /// days after the request). Times are sent as `YYYY-MM-DDThh:mm:ssZ`.
    ///
    /// The token is sent only over HTTPS, and never appears in an error.
    pub async fn get_user_delegation_key(
        &self,
        bearer_token: &str,
        start: DateTime<Utc>,
        expiry: DateTime<Utc>,
    ) -> Result<UserDelegationKey, AzureError> {
        const OP: &str = "get_user_delegation_key";
        let invalid = |reason: &str| AzureError::InvalidInput {
            operation: OP,
            reason: reason.into(),
        };
        if self.endpoint.scheme() != "https" {
            return Err(invalid(
                "a bearer token is only sent over HTTPS (the endpoint is not https)",
            ));
        }
        if expiry <= start {
            return Err(invalid("the key expiry must be after its start"));
        }
        let mut url = self.url_with_path("");
        url.query_pairs_mut()
            .append_pair("restype", "service")
            .append_pair("comp", "userdelegationkey");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        let body = xml::key_info(&utc_seconds(start), &utc_seconds(expiry));
        let response = self
            .send(
                OP,
                Method::POST,
                url,
                headers,
                Some(body),
                Auth::Bearer(bearer_token),
            )
            .await?;
        let response = expect_status(OP, response, StatusCode::OK).await?;
        let body = read_body(OP, response).await?;
        xml::parse_user_delegation_key(&body).map_err(|e| AzureError::InvalidResponse {
            operation: OP,
            detail: e.0,
        })
    }

    /// `<endpoint path>/<encoded_path>`; the endpoint's own path is kept as it is.
    fn url_with_path(&self, encoded_path: &str) -> Url {
        let mut url = self.endpoint.clone();
        let base = self.endpoint.path().trim_end_matches('/');
        url.set_path(&format!("{base}/{encoded_path}"));
        url
    }

    /// Sends one request: adds `x-ms-date`, `x-ms-version`, `Content-Length` (whenever there is
    /// a body, even an empty one) and the authorization, signing exactly what is sent.
    async fn send(
        &self,
        operation: &'static str,
        method: Method,
        url: Url,
        mut headers: HeaderMap,
        body: Option<Vec<u8>>,
        auth: Auth<'_>,
    ) -> Result<reqwest::Response, AzureError> {
        let now = Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let invalid_header = || AzureError::InvalidInput {
            operation,
            reason: "a header value could not be encoded".into(),
        };
        headers.insert(
            X_MS_DATE,
            HeaderValue::from_str(&now).map_err(|_| invalid_header())?,
        );
        headers.insert(X_MS_VERSION, HeaderValue::from_static(API_VERSION));
        if let Some(body) = &body {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        let mut authorization = match auth {
            Auth::SharedKey => HeaderValue::from_str(&shared_key::authorization(
                &self.account,
                self.key.as_ref().ok_or_else(|| AzureError::InvalidInput {
                    operation,
                    reason: "this account has no key configured (it signs with Microsoft Entra ID); the call needs Shared Key".into(),
                })?,
                &method,
                &url,
                &headers,
            ))
            .map_err(|_| invalid_header())?,
            Auth::Bearer(token) => {
                HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                    AzureError::InvalidInput {
                        operation,
                        reason: "the bearer token holds characters not allowed in a header".into(),
                    }
                })?
            }
        };
        authorization.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, authorization);
        let mut request = self.http.request(method, url).headers(headers);
        if let Some(body) = body {
            request = request.body(body);
        }
        request
            .send()
            .await
            .map_err(|source| AzureError::Transport { operation, source })
    }
}

/// Checks the endpoint is a usable Blob service root and drops a trailing `/`.
fn normalise_endpoint(mut endpoint: Url) -> Result<Url, AzureError> {
    if !matches!(endpoint.scheme(), "http" | "https") {
        return Err(AzureError::Config(
            "the blob endpoint must be an http or https URL".into(),
        ));
    }
    if endpoint.host_str().is_none_or(str::is_empty) {
        return Err(AzureError::Config("the blob endpoint has no host".into()));
    }
    if endpoint.query().is_some() || endpoint.fragment().is_some() {
        return Err(AzureError::Config(
            "the blob endpoint must not have a query or fragment (a SAS is not an endpoint)".into(),
        ));
    }
    if !endpoint.username().is_empty() || endpoint.password().is_some() {
        return Err(AzureError::Config(
            "the blob endpoint must not carry credentials".into(),
        ));
    }
    let trimmed = endpoint.path().trim_end_matches('/').to_owned();
    endpoint.set_path(&trimmed);
    Ok(endpoint)
}

/// Percent-encodes a container or blob name for a URL path: all but RFC 3986 unreserved
/// characters and `/`.
fn encode_path(name: &str) -> String {
    utf8_percent_encode(name, PATH_SEGMENT_KEEP).to_string()
}

fn acl_url(mut container_url: Url) -> Url {
    container_url
        .query_pairs_mut()
        .append_pair("restype", "container")
        .append_pair("comp", "acl");
    container_url
}

fn lease_url(mut container_url: Url) -> Url {
    container_url
        .query_pairs_mut()
        .append_pair("restype", "container")
        .append_pair("comp", "lease");
    container_url
}

fn utc_seconds(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn header_text(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn read_body(
    operation: &'static str,
    response: reqwest::Response,
) -> Result<Vec<u8>, AzureError> {
    response
        .bytes()
        .await
        .map(|b| b.to_vec())
        .map_err(|source| AzureError::Transport { operation, source })
}

/// Passes the response through if it has the `expected` status, else turns it into an error.
async fn expect_status(
    operation: &'static str,
    response: reqwest::Response,
    expected: StatusCode,
) -> Result<reqwest::Response, AzureError> {
    if response.status() == expected {
        Ok(response)
    } else {
        Err(status_error(operation, response).await)
    }
}

/// The error for an unexpected status: Azure's code from `x-ms-error-code`, else from the body.
async fn status_error(operation: &'static str, response: reqwest::Response) -> AzureError {
    let status = response.status().as_u16();
    let request_id = header_text(response.headers(), &X_MS_REQUEST_ID);
    let mut code = header_text(response.headers(), &X_MS_ERROR_CODE);
    if code.is_none()
        && let Ok(body) = response.bytes().await
    {
        code = xml::error_code(&body);
    }
    AzureError::Status {
        operation,
        status,
        code,
        request_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV_KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    fn client(endpoint: &str) -> BlobServiceClient {
        BlobServiceClient::new(
            "devstoreaccount1",
            Url::parse(endpoint).unwrap(),
            None,
            SigningKey::from_base64(DEV_KEY).unwrap(),
        )
        .unwrap()
    }

    fn names(container: &str, blob: &str) -> (ContainerName, BlobName) {
        (
            ContainerName::parse(container).unwrap(),
            BlobName::parse(blob).unwrap(),
        )
    }

    #[test]
    fn blob_urls_on_the_emulator_and_on_azure() {
        let (c, b) = names("data", "models/a.bin");
        assert_eq!(
            client("https://127.0.0.1:10000/devstoreaccount1")
                .blob_url(&c, &b)
                .as_str(),
            "https://127.0.0.1:10000/devstoreaccount1/data/models/a.bin"
        );
        assert_eq!(
            client("https://127.0.0.1:10000/devstoreaccount1/")
                .blob_url(&c, &b)
                .as_str(),
            "https://127.0.0.1:10000/devstoreaccount1/data/models/a.bin"
        );
        let azure = BlobServiceClient::default_endpoint("acct").unwrap();
        assert_eq!(azure.as_str(), "https://acct.blob.core.windows.net/");
        let azure = client(azure.as_str());
        assert_eq!(
            azure.blob_url(&c, &b).as_str(),
            "https://acct.blob.core.windows.net/data/models/a.bin"
        );
        assert_eq!(
            azure.container_url(&c).as_str(),
            "https://acct.blob.core.windows.net/data"
        );
    }

    #[test]
    fn blob_names_are_percent_encoded_except_unreserved_and_slash() {
        let (c, b) = names("data", "dir/a b+c#d?e&f=g;h,i'j(k)~_-.é/ü");
        let url = client("https://127.0.0.1:10000/devstoreaccount1").blob_url(&c, &b);
        assert_eq!(
            url.path(),
            "/devstoreaccount1/data/dir/a%20b%2Bc%23d%3Fe%26f%3Dg%3Bh%2Ci%27j%28k%29~_-.%C3%A9/%C3%BC"
        );
        assert_eq!(url.query(), None);
        assert_eq!(url.fragment(), None);
    }

    #[test]
    fn rejects_unusable_endpoints() {
        let key = || SigningKey::from_base64(DEV_KEY).unwrap();
        for bad in [
            "ftp://127.0.0.1/x",
            "https://acct.blob.core.windows.net/?sv=2025-11-05&sig=x",
            "https://user:pw@acct.blob.core.windows.net/",
        ] {
            let err =
                BlobServiceClient::new("acct", Url::parse(bad).unwrap(), None, key()).unwrap_err();
            assert!(matches!(err, AzureError::Config(_)), "{bad}: {err}");
        }
        let err = BlobServiceClient::new(
            "acct",
            Url::parse("https://a.blob.core.windows.net").unwrap(),
            Some(Path::new("/nonexistent/ca.pem")),
            key(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"));
    }

    #[tokio::test]
    async fn user_delegation_key_refuses_plain_http_and_reversed_times() {
        let now = Utc::now();
        let http = client("http://127.0.0.1:1/devstoreaccount1");
        let err = http
            .get_user_delegation_key("secret-token", now, now + chrono::Duration::hours(1))
            .await
            .unwrap_err();
        assert!(matches!(err, AzureError::InvalidInput { .. }), "{err}");
        assert!(!err.to_string().contains("secret-token"));
        let https = client("https://127.0.0.1:1/devstoreaccount1");
        let err = https
            .get_user_delegation_key("secret-token", now, now)
            .await
            .unwrap_err();
        assert!(matches!(err, AzureError::InvalidInput { .. }), "{err}");
    }

    #[tokio::test]
    async fn set_acl_refuses_too_many_or_bad_ids_before_sending() {
        // Port 1 on loopback: if anything were sent, this would be a Transport error instead.
        let c = client("https://127.0.0.1:1/devstoreaccount1");
        let container = ContainerName::parse("data").unwrap();
        let policy = |id: &str| SignedIdentifier {
            id: id.into(),
            start: None,
            expiry: None,
            permission: Some("r".into()),
        };
        let six = ContainerAcl {
            identifiers: (0..6).map(|i| policy(&format!("p{i}"))).collect(),
            ..ContainerAcl::default()
        };
        let err = c
            .set_container_acl(&container, &six, None, None)
            .await
            .unwrap_err();
        assert!(matches!(err, AzureError::InvalidInput { .. }), "{err}");
        for id in [String::new(), "x".repeat(65)] {
            let acl = ContainerAcl {
                identifiers: vec![policy(&id)],
                ..ContainerAcl::default()
            };
            let err = c
                .set_container_acl(&container, &acl, None, None)
                .await
                .unwrap_err();
            assert!(matches!(err, AzureError::InvalidInput { .. }), "{err}");
        }
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let shown = format!("{:?}", client("https://127.0.0.1:10000/devstoreaccount1"));
        assert!(!shown.contains("Eby8"), "{shown}");
    }
}
