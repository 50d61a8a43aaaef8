//! Broker links (DESIGN.md §6, `link_only`): the holder gets `<public_url>/l/<code>`, each
//! redemption mints a SAS of at most 5 minutes and is recorded before the redirect, and revoking
//! the link's issuance stops it at once. The code (256 random bits) is never stored, only its
//! SHA-256, which also serves as the issuance's signature hash so that a leaked link can be
//! looked up like a leaked SAS.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Broker;
use super::mint::{MintError, MintRequest, truncate};
use super::revoke::LINK_SAS_TTL;
use crate::auth::Principal;
use crate::ledger::{
    GoneReason, IssuanceRecord, LedgerError, LinkRecord, RedeemOutcome, Redemption, RevocationMode,
    StoredStatus, new_id,
};
use crate::sas::ip::IpRange;
use crate::sas::name::{BlobName, ContainerName};
use crate::sas::perms::{Permissions, Resource};
use crate::sas::sign::{BlobSas, Protocol, ResponseOverrides, Target, hex_sha256};

/// The most uses a link may be given.
pub const MAX_USES: u32 = 1000;

/// A created link. `link` is a secret: it goes to the caller only.
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct CreatedLink {
    pub id: String,
    pub link: String,
    pub resource: &'static str,
    pub permissions: String,
    pub expires_on: DateTime<Utc>,
    pub max_uses: Option<u32>,
    pub rule: String,
    pub revocation: RevocationMode,
}

impl std::fmt::Debug for CreatedLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedLink")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What a redemption gives.
pub enum Redeemed {
    /// Redirect here: a fresh SAS URL (a secret).
    Redirect(String),
    /// The link is revoked, expired or used up; nothing was minted.
    Gone(GoneReason),
}

impl Broker {
    /// Creates a broker link for `req`, if policy allows; `uses` bounds its redemptions.
    pub async fn create_link(
        &self,
        principal: &Principal,
        req: &MintRequest,
        uses: Option<u32>,
        now: DateTime<Utc>,
        client_addr: Option<String>,
    ) -> Result<CreatedLink, MintError> {
        if uses.is_some_and(|u| u == 0 || u > MAX_USES) {
            return Err(MintError::InvalidRequest(format!(
                "uses: 1 to {MAX_USES}, or leave it out"
            )));
        }
        let (account, grant) = self.authorize(principal, req)?;
        let mut code_bytes = [0u8; 32];
        getrandom::fill(&mut code_bytes).map_err(|e| {
            MintError::Ledger(LedgerError::Unavailable(format!("no randomness: {e}")))
        })?;
        let code = URL_SAFE_NO_PAD.encode(code_bytes);
        let code_sha256 = hex_sha256(code.as_bytes());
        let id = new_id("iss_", now)?;
        let expires_on = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now) + grant.ttl;
        let resource = if req.blob.is_some() {
            Resource::Blob
        } else {
            Resource::Container
        };
        let record = IssuanceRecord {
            id: id.clone(),
            issued_at: now,
            principal: principal.ledger_name(),
            principal_claims: self.decided_claims(principal, &grant.rule_id),
            client_addr,
            account: req.account.clone(),
            container: req.container.as_str().to_owned(),
            blob: req.blob.as_ref().map(|b| b.as_str().to_owned()),
            resource: resource.code().to_owned(),
            permissions: grant.permissions.as_string(),
            starts_on: now,
            expires_on,
            ip: grant.ip.map(|i| i.to_string()),
            protocol: protocol(account.insecure_allow_http).as_str().to_owned(),
            version: account.sas_version.to_string(),
            rule: grant.rule_id.clone(),
            reason: req.reason.clone(),
            // How its redemptions are signed: the emergency stop for user delegation keys
            // revokes the link too, or it would mint new tokens at once.
            signing_mode: account.signing,
            revocation: RevocationMode::LinkOnly,
            policy_id: None,
            signature_sha256: code_sha256.clone(),
            status: StoredStatus::Active,
            revoked_at: None,
            revoked_by: None,
            revoke_reason: None,
            key_oid: None,
            key_tid: None,
        };
        let link = LinkRecord {
            issuance_id: id.clone(),
            code_sha256,
            expires_at: expires_on,
            max_uses: uses,
            uses: 0,
        };
        let started = std::time::Instant::now();
        let stored = self.ledger.append_link(record, link).await;
        self.metrics
            .ledger_commit(started.elapsed(), stored.is_ok());
        stored?;
        tracing::info!(issuance = %id, principal = %principal.name, rule = %grant.rule_id, "link created");
        let base = self.public_url.as_str().trim_end_matches('/');
        Ok(CreatedLink {
            id,
            link: format!("{base}/l/{code}"),
            resource: if req.blob.is_some() {
                "blob"
            } else {
                "container"
            },
            permissions: grant.permissions.as_string(),
            expires_on,
            max_uses: uses,
            rule: grant.rule_id,
            revocation: RevocationMode::LinkOnly,
        })
    }

    /// Creates a broker link for a parsed (or refused) request as [`Broker::create_link`] does
    /// and, like [`Broker::mint`], records a refusal as a denial (best effort; not a ledger
    /// failure, which is no refusal). The web pages call this; `POST /v1/links` does the same in
    /// its handler.
    pub async fn link(
        &self,
        principal: &Principal,
        request: Result<MintRequest, MintError>,
        uses: Option<u32>,
        now: DateTime<Utc>,
        client_addr: Option<String>,
    ) -> Result<CreatedLink, MintError> {
        let (error, req) = match request {
            Ok(req) => match self
                .create_link(principal, &req, uses, now, client_addr.clone())
                .await
            {
                Ok(link) => return Ok(link),
                Err(e) => (e, Some(req)),
            },
            Err(e) => (e, None),
        };
        if !matches!(error, MintError::Ledger(_)) {
            self.deny(Some(principal), &error, req.as_ref(), now, client_addr)
                .await;
        }
        Err(error)
    }

    /// Redeems a link code: checks it, mints a SAS of at most 5 minutes, records the redemption
    /// durably, and only then returns the redirect. `Ok(None)`: no such link.
    pub async fn redeem_link(
        &self,
        code: &str,
        now: DateTime<Utc>,
        client_addr: Option<String>,
        user_agent: Option<String>,
    ) -> Result<Option<Redeemed>, MintError> {
        let code_sha256 = hex_sha256(code.as_bytes());
        let Some(record) = self.ledger.find_by_signature(&code_sha256).await? else {
            return Ok(None);
        };
        if record.revocation != RevocationMode::LinkOnly {
            return Ok(None);
        }
        if record.status == StoredStatus::Revoked {
            return Ok(Some(Redeemed::Gone(GoneReason::Revoked)));
        }
        if record.expires_on <= now {
            return Ok(Some(Redeemed::Gone(GoneReason::Expired)));
        }
        let Some(account) = self.accounts.get(&record.account) else {
            return Err(MintError::Ledger(LedgerError::Unavailable(format!(
                "the link's account {} is no longer configured",
                record.account
            ))));
        };
        let bad =
            |what: &str| LedgerError::Unavailable(format!("the link's recorded {what} is invalid"));
        let container = ContainerName::parse(&record.container).map_err(|_| bad("container"))?;
        let target = match &record.blob {
            Some(b) => Target::Blob(BlobName::parse(b).map_err(|_| bad("blob"))?),
            None => Target::Container,
        };
        let permissions = Permissions::parse(&record.permissions, target.resource())
            .map_err(|_| bad("permissions"))?;
        let ip = record
            .ip
            .as_deref()
            .map(IpRange::parse)
            .transpose()
            .map_err(|_| bad("ip"))?;
        let expires_on = (now + LINK_SAS_TTL).min(record.expires_on);
        let sas = BlobSas {
            account: account.name.clone(),
            container: container.clone(),
            target,
            permissions: Some(permissions),
            start: Some(now - self.start_backdate),
            expiry: Some(expires_on),
            ip,
            protocol: Some(protocol(account.insecure_allow_http)),
            encryption_scope: None,
            overrides: ResponseOverrides::default(),
            version: account.sas_version,
        };
        let redemption_id = new_id("red_", now)?;
        let token = self
            .sign(account, &sas, None, &redemption_id, now)
            .await
            .map_err(|e| match e {
                // The link's recorded request no longer signs: a server-side fault, not the
                // holder's.
                MintError::Sign(e) => MintError::SigningUnavailable(format!("signing: {e}")),
                other => other,
            })?
            .token;
        let redemption = Redemption {
            id: redemption_id,
            issuance_id: String::new(),
            at: now,
            client_addr,
            user_agent: user_agent.map(|u| truncate(&u, 256)),
            signature_sha256: token.signature_sha256(),
            expires_on: DateTime::from_timestamp(expires_on.timestamp(), 0).unwrap_or(expires_on),
        };
        // Fail closed: the SAS leaves only after its redemption is durable.
        match self.ledger.redeem(&code_sha256, redemption).await? {
            RedeemOutcome::Gone(reason) => {
                self.metrics.redemption("gone");
                Ok(Some(Redeemed::Gone(reason)))
            }
            RedeemOutcome::Redeemed(_) => {
                self.metrics.redemption("redeemed");
                tracing::info!(issuance = %record.id, "link redeemed");
                Ok(Some(Redeemed::Redirect(token.url(
                    &account.blob_endpoint,
                    &container,
                    sas.target.path(),
                ))))
            }
        }
    }
}

fn protocol(insecure_allow_http: bool) -> Protocol {
    if insecure_allow_http {
        Protocol::HttpsAndHttp
    } else {
        Protocol::HttpsOnly
    }
}
