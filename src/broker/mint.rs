//! Minting: the one flow of DESIGN.md §1, as plain functions of their inputs ("now" included).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::delegation::DelegationKeys;
use crate::auth::Principal;
use crate::azure::BlobServiceClient;
use crate::broker::{PolicyError, StoredPolicies};
use crate::config::Account;
use crate::ledger::{
    DenialRecord, IssuanceRecord, Ledger, LedgerError, RevocationMode, SigningMode, StoredStatus,
    new_id,
};
use crate::policy::{AccessRequest, Decision, Denial, Grant, PolicySet, Subject, parse_duration};
use crate::sas::ip::IpRange;
use crate::sas::name::{BlobName, ContainerName};
use crate::sas::perms::{Permissions, Resource};
use crate::sas::sign::{
    BlobSas, DelegationFields, Protocol, ResponseOverrides, SasToken, SignError, Target,
    sign_service, sign_user_delegation,
};

/// The fields a mint request may carry. Anything else is refused.
const FIELDS: &[&str] = &[
    "account",
    "container",
    "blob",
    "permissions",
    "ttl",
    "ip",
    "reason",
];
/// Fields that only an account SAS has, or that ask for account or service scope.
const ACCOUNT_FIELDS: &[&str] = &[
    "ss",
    "srt",
    "services",
    "resource_types",
    "signed_services",
    "signed_resource_types",
];
/// The longest reason kept.
const MAX_REASON_CHARS: usize = 500;

/// A parsed, canonicalised mint request: exactly what policy decides on.
pub type MintRequest = AccessRequest;

/// Why a mint was refused. Each maps to one problem code.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("{0}")]
    AccountScope(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("{0}")]
    UnknownAccount(String),
    #[error("{}", .0.message)]
    Denied(Denial),
    #[error("the token could not be signed: {0}")]
    Sign(#[from] SignError),
    #[error("{0}")]
    Ledger(#[from] LedgerError),
    #[error("{0}")]
    LinkRequired(String),
    #[error("{0}")]
    StoredPolicy(#[from] PolicyError),
    /// No key to sign with right now (Entra ID or Get User Delegation Key failed). For the log
    /// only; callers see `signing_unavailable` and an error id.
    #[error("{0}")]
    SigningUnavailable(String),
}

impl MintError {
    /// The stable code of the refusal, as recorded in denials.
    pub fn code(&self) -> &'static str {
        match self {
            MintError::AccountScope(_) => "account_scope_forbidden",
            MintError::InvalidRequest(_) | MintError::Sign(_) => "invalid_request",
            MintError::InvalidName(_) => "invalid_name",
            MintError::UnknownAccount(_) => "unknown_account",
            MintError::Denied(d) => d.code.as_str(),
            MintError::Ledger(_) => "ledger_unavailable",
            MintError::LinkRequired(_) => "link_required",
            MintError::StoredPolicy(_) => "stored_policy_unavailable",
            MintError::SigningUnavailable(_) => "signing_unavailable",
        }
    }
}

/// A minted token and its record. The URL and query are secrets: they go to the caller only.
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct Minted {
    pub id: String,
    pub url: String,
    pub sas: String,
    pub resource: &'static str,
    pub permissions: String,
    pub starts_on: DateTime<Utc>,
    pub expires_on: DateTime<Utc>,
    pub rule: String,
    pub revocation: RevocationMode,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted")
            .field("id", &self.id)
            .field("rule", &self.rule)
            .finish_non_exhaustive()
    }
}

/// Parsing the JSON body of `POST /v1/tokens` (and `sasgate policy explain`).
pub trait FromJson: Sized {
    /// Parses and canonicalises; see [`MintRequest`].
    fn from_json(body: &serde_json::Value) -> Result<Self, MintError>;
}

impl FromJson for MintRequest {
    /// Parses the JSON body. Account-wide requests in any form are refused with
    /// `account_scope_forbidden` before anything else is looked at, so that the refusal says
    /// what is wrong rather than "unknown field".
    fn from_json(body: &serde_json::Value) -> Result<Self, MintError> {
        let obj = body
            .as_object()
            .ok_or_else(|| MintError::InvalidRequest("the body must be a JSON object".into()))?;
        if let Some(k) = ACCOUNT_FIELDS.iter().find(|k| obj.contains_key(**k)) {
            return Err(MintError::AccountScope(format!(
                "'{k}' asks for an account SAS; sasgate only issues SAS scoped to one container or one blob"
            )));
        }
        if let Some(r) = obj.get("resource").and_then(|v| v.as_str())
            && matches!(r, "account" | "service" | "s")
        {
            return Err(MintError::AccountScope(format!(
                "resource '{r}' is account-wide; ask for one container or one blob"
            )));
        }
        if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(MintError::InvalidRequest(format!(
                "unknown field '{}'; the fields are {}",
                truncate(unknown, 40),
                FIELDS.join(", ")
            )));
        }
        let text = |k: &str| -> Result<Option<&str>, MintError> {
            match obj.get(k) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(MintError::InvalidRequest(format!("'{k}' must be a string"))),
            }
        };
        let account = text("account")?.filter(|a| !a.is_empty()).ok_or_else(|| {
            MintError::InvalidRequest("'account' is required: the storage account name".into())
        })?;
        let container = match text("container")? {
            None | Some("") => {
                return Err(MintError::AccountScope(
                    "no container given: that would be account-wide; name one container".into(),
                ));
            }
            Some(c) if c.contains(['*', '?', '[']) => {
                return Err(MintError::AccountScope(
                    "wildcards in the container would reach several containers; name one container"
                        .into(),
                ));
            }
            Some(c) => ContainerName::parse(c)
                .map_err(|e| MintError::InvalidName(format!("container: {e}")))?,
        };
        let blob = match text("blob")? {
            None => None,
            Some(b) if b.contains(['*', '?']) => {
                return Err(MintError::InvalidName(
                    "blob: wildcards are not supported; a SAS covers one blob, or leave 'blob' out for the container".into(),
                ));
            }
            Some(b) => {
                Some(BlobName::parse(b).map_err(|e| MintError::InvalidName(format!("blob: {e}")))?)
            }
        };
        let resource = if blob.is_some() {
            Resource::Blob
        } else {
            Resource::Container
        };
        let permissions = match text("permissions")? {
            None => Permissions::READ,
            Some(p) => Permissions::parse(p, resource)
                .map_err(|e| MintError::InvalidRequest(format!("permissions: {e}")))?,
        };
        let ttl = match obj.get("ttl") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(parse_ttl(v)?),
        };
        let ip = text("ip")?
            .map(|i| IpRange::parse(i).map_err(|e| MintError::InvalidRequest(format!("ip: {e}"))))
            .transpose()?;
        let reason = match text("reason")? {
            None => None,
            Some(r) if r.chars().count() > MAX_REASON_CHARS => {
                return Err(MintError::InvalidRequest(format!(
                    "reason: at most {MAX_REASON_CHARS} characters"
                )));
            }
            Some(r) if r.chars().any(char::is_control) => {
                return Err(MintError::InvalidRequest(
                    "reason: no control characters".into(),
                ));
            }
            Some(r) if r.trim().is_empty() => None,
            Some(r) => Some(r.trim().to_owned()),
        };
        Ok(Self {
            account: account.to_owned(),
            container,
            blob,
            permissions,
            ttl,
            ip,
            reason,
        })
    }
}

/// What a denial records of the request: bounded, and never the reason text.
fn summary(req: &MintRequest) -> serde_json::Value {
    {
        serde_json::json!({
            "account": truncate(&req.account, 64),
            "container": req.container.as_str(),
            "blob": req.blob.as_ref().map(|b| truncate(b.as_str(), 256)),
            "permissions": req.permissions.as_string(),
            "ttl_seconds": req.ttl.map(|t| t.num_seconds()),
            "ip": req.ip.map(|i| i.to_string()),
        })
    }
}

/// A TTL: a duration text (`90s`, `15m`, `1h`) or a positive number of seconds.
pub fn parse_ttl(v: &serde_json::Value) -> Result<Duration, MintError> {
    let bad = || {
        MintError::InvalidRequest(
            "ttl: give a duration such as 90s, 15m or 1h, or a number of seconds".into(),
        )
    };
    let ttl = match v {
        serde_json::Value::String(s) => parse_duration(s).map_err(|_| bad())?,
        serde_json::Value::Number(n) => Duration::seconds(
            n.as_i64()
                .filter(|s| *s > 0 && *s < 10 * 365 * 86_400)
                .ok_or_else(bad)?,
        ),
        _ => return Err(bad()),
    };
    if ttl <= Duration::zero() {
        return Err(bad());
    }
    Ok(ttl)
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Everything a mint needs, shared by all requests.
pub struct Broker {
    pub accounts: BTreeMap<String, Account>,
    /// One Blob service client per account, for stored access policies.
    pub clients: BTreeMap<String, BlobServiceClient>,
    pub policy: Arc<PolicySet>,
    pub ledger: Arc<dyn Ledger>,
    /// How far `st` is set before the time of issue (clock skew).
    pub start_backdate: Duration,
    /// The stored access policies sasgate manages.
    pub stored: StoredPolicies,
    /// Base of broker links (`<public_url>/l/<code>`).
    pub public_url: url::Url,
    /// User delegation keys of the accounts that sign with Entra ID.
    pub delegation: BTreeMap<String, Arc<DelegationKeys>>,
    /// Counters for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// A signed token and how it was signed, for the record.
pub(super) struct Signed {
    pub token: SasToken,
    pub mode: SigningMode,
    /// `skoid`/`sktid` of the user delegation key.
    pub key_oid: Option<String>,
    pub key_tid: Option<String>,
}

impl Broker {
    /// Decides, signs and records. The token is returned only once its record is durable; a
    /// refusal is recorded as a denial (best effort, never delaying the refusal).
    pub async fn mint(
        &self,
        principal: &Principal,
        request: Result<MintRequest, MintError>,
        now: DateTime<Utc>,
        client_addr: Option<String>,
    ) -> Result<Minted, MintError> {
        let result = match request {
            Ok(req) => self
                .mint_parsed(principal, &req, now, client_addr.clone())
                .await
                .map_err(|e| (e, Some(req))),
            Err(e) => Err((e, None)),
        };
        match result {
            Ok(m) => Ok(m),
            Err((e, req)) => {
                if !matches!(
                    e,
                    MintError::Ledger(_)
                        | MintError::StoredPolicy(_)
                        | MintError::SigningUnavailable(_)
                ) {
                    self.deny(Some(principal), &e, req.as_ref(), now, client_addr)
                        .await;
                }
                Err(e)
            }
        }
    }

    /// Records a refusal, best effort.
    pub async fn deny(
        &self,
        principal: Option<&Principal>,
        error: &MintError,
        request: Option<&MintRequest>,
        now: DateTime<Utc>,
        client_addr: Option<String>,
    ) {
        let Ok(id) = new_id("den_", now) else { return };
        let reasons = match error {
            MintError::Denied(d) => d
                .reasons
                .iter()
                .map(|r| format!("{}: {}", r.rule_id, r.reason))
                .collect(),
            other => vec![other.to_string()],
        };
        self.ledger
            .record_denial(DenialRecord {
                id,
                at: now,
                principal: principal.map(Principal::ledger_name),
                client_addr,
                code: error.code().to_owned(),
                request: request.map(summary).unwrap_or(serde_json::Value::Null),
                reasons,
            })
            .await;
    }

    /// The account and the policy grant for `req`: the first two steps shared by tokens and
    /// links.
    pub(super) fn authorize(
        &self,
        principal: &Principal,
        req: &MintRequest,
    ) -> Result<(&Account, Grant), MintError> {
        let account = self.accounts.get(&req.account).ok_or_else(|| {
            MintError::UnknownAccount(format!(
                "no storage account '{}' is configured; ask an admin which accounts sasgate serves",
                truncate(&req.account, 64)
            ))
        })?;
        let subject = Subject {
            name: principal.name.clone(),
            roles: principal.roles.clone(),
            oidc: principal.oidc.clone(),
        };
        match self.policy.decide(&subject, req) {
            Decision::Allow(g) => Ok((account, g)),
            Decision::Deny(d) => Err(MintError::Denied(d)),
        }
    }

    async fn mint_parsed(
        &self,
        principal: &Principal,
        req: &MintRequest,
        now: DateTime<Utc>,
        client_addr: Option<String>,
    ) -> Result<Minted, MintError> {
        let (account, grant) = self.authorize(principal, req)?;
        if grant.revocation == RevocationMode::LinkOnly {
            return Err(MintError::LinkRequired(format!(
                "rule '{}' hands out broker links only, so that access can be cut at once; POST the same body to /v1/links",
                grant.rule_id
            )));
        }
        // Bind to a stored access policy first: if the container ACL cannot be updated, no
        // token is signed at all.
        let policy_id = match grant.revocation {
            RevocationMode::StoredAccessPolicy => {
                let client = self.clients.get(&req.account).ok_or_else(|| {
                    MintError::UnknownAccount(format!(
                        "no client for account '{}'",
                        truncate(&req.account, 64)
                    ))
                })?;
                let perms = grant.permissions.as_string();
                Some(
                    self.stored
                        .acquire(self.ledger.as_ref(), client, &req.container, &perms, now)
                        .await?,
                )
            }
            _ => None,
        };
        let starts_on = now - self.start_backdate;
        let expires_on = now + grant.ttl;
        let target = match &req.blob {
            Some(b) => Target::Blob(b.clone()),
            None => Target::Container,
        };
        let sas = BlobSas {
            account: account.name.clone(),
            container: req.container.clone(),
            target,
            // With a stored policy, the policy holds the permissions and the token carries none.
            permissions: if policy_id.is_some() {
                None
            } else {
                Some(grant.permissions)
            },
            start: Some(starts_on),
            expiry: Some(expires_on),
            ip: grant.ip,
            protocol: Some(if account.insecure_allow_http {
                Protocol::HttpsAndHttp
            } else {
                Protocol::HttpsOnly
            }),
            encryption_scope: None,
            overrides: ResponseOverrides::default(),
            version: account.sas_version,
        };
        let id = new_id("iss_", now)?;
        let signed = self
            .sign(account, &sas, policy_id.as_deref(), &id, now)
            .await?;
        let token = signed.token;
        let record = IssuanceRecord {
            id: id.clone(),
            issued_at: now,
            principal: principal.ledger_name(),
            principal_claims: self.decided_claims(principal, &grant.rule_id),
            client_addr,
            account: req.account.clone(),
            container: req.container.as_str().to_owned(),
            blob: req.blob.as_ref().map(|b| b.as_str().to_owned()),
            resource: sas.target.resource().code().to_owned(),
            permissions: grant.permissions.as_string(),
            starts_on: token_time(starts_on),
            expires_on: token_time(expires_on),
            ip: grant.ip.map(|i| i.to_string()),
            protocol: token.param("spr").unwrap_or("").to_owned(),
            version: token.param("sv").unwrap_or("").to_owned(),
            rule: grant.rule_id.clone(),
            reason: req.reason.clone(),
            signing_mode: signed.mode,
            revocation: grant.revocation,
            policy_id,
            signature_sha256: token.signature_sha256(),
            status: StoredStatus::Active,
            revoked_at: None,
            revoked_by: None,
            revoke_reason: None,
            key_oid: signed.key_oid,
            key_tid: signed.key_tid,
        };
        // Fail closed: the token exists only in this function until the record is durable.
        let started = std::time::Instant::now();
        let stored = self.ledger.append(record).await;
        self.metrics
            .ledger_commit(started.elapsed(), stored.is_ok());
        stored?;
        tracing::info!(issuance = %id, principal = %principal.name, rule = %grant.rule_id, account = %req.account, container = %req.container, "issued");
        Ok(Minted {
            id,
            url: token.url(&account.blob_endpoint, &req.container, req.blob.as_ref()),
            sas: token.query(),
            resource: if req.blob.is_some() {
                "blob"
            } else {
                "container"
            },
            permissions: grant.permissions.as_string(),
            starts_on: token_time(starts_on),
            expires_on: token_time(expires_on),
            rule: grant.rule_id,
            revocation: grant.revocation,
        })
    }
}

impl Broker {
    /// For an OIDC caller, the claims that decided: `iss`, `sub`, `aud`, `jti` (when present)
    /// and every claim the granting rule matched on. Recorded with the issuance.
    pub(super) fn decided_claims(
        &self,
        principal: &Principal,
        rule_id: &str,
    ) -> Option<serde_json::Value> {
        let oidc = principal.oidc.as_ref()?;
        let mut out = serde_json::Map::new();
        let rule = self.policy.rules().iter().find(|r| r.id() == rule_id);
        let names = ["iss", "sub", "aud", "jti"]
            .into_iter()
            .chain(rule.into_iter().flat_map(|r| r.claims().map(|(k, _)| k)));
        for name in names {
            if let Some(v) = oidc.claims.get(name) {
                out.insert(name.to_owned(), v.clone());
            }
        }
        Some(serde_json::Value::Object(out))
    }

    /// Signs `sas` the way its account and revocation mode require: with the account key when
    /// it is bound to a stored access policy or the account signs with its key, else with the
    /// account's current user delegation key (`scid` = `issuance_id` unless switched off).
    pub(super) async fn sign(
        &self,
        account: &Account,
        sas: &BlobSas,
        policy_id: Option<&str>,
        issuance_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Signed, MintError> {
        if policy_id.is_some() || account.signing == SigningMode::AccountKey {
            let key = account.key.as_ref().ok_or_else(|| {
                MintError::SigningUnavailable(format!(
                    "account {} has no account key, which a service SAS needs",
                    account.name
                ))
            })?;
            return Ok(Signed {
                token: sign_service(sas, policy_id, key)?,
                mode: SigningMode::AccountKey,
                key_oid: None,
                key_tid: None,
            });
        }
        let keys = self.delegation.get(account.name.as_str()).ok_or_else(|| {
            MintError::SigningUnavailable(format!(
                "account {} has no Entra identity configured",
                account.name
            ))
        })?;
        let until = sas.expiry.ok_or(SignError::MissingExpiry)?;
        let key = keys
            .key(now, until)
            .await
            .map_err(|e| MintError::SigningUnavailable(format!("account {}: {e}", account.name)))?;
        let extra = DelegationFields {
            correlation_id: keys
                .settings()
                .correlation_id
                .then(|| issuance_id.to_owned()),
            ..DelegationFields::default()
        };
        Ok(Signed {
            token: sign_user_delegation(sas, &extra, &key.key)?,
            mode: SigningMode::UserDelegation,
            key_oid: Some(key.key.signed_oid.clone()),
            key_tid: Some(key.key.signed_tid.clone()),
        })
    }
}

/// The time as the token carries it (whole seconds).
fn token_time(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}
