//! Revocation, and what it really achieves (DESIGN.md §6, AZURE-SAS.md §6). Azure cannot revoke
//! one SAS; each answer says which mechanism applied and when it bites.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::Broker;
use super::policies::PolicyError;
use crate::auth::Principal;
use crate::ledger::{IssuanceRecord, LedgerError, RevocationMode, StoredStatus};
use crate::sas::name::ContainerName;

/// Azure documents up to 30 seconds before a deleted stored access policy stops its tokens.
pub const POLICY_PROPAGATION: Duration = Duration::seconds(30);
/// The longest SAS a broker link mints.
pub const LINK_SAS_TTL: Duration = Duration::minutes(5);

/// Another issuance revoked together with the one asked for (same stored access policy).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Collateral {
    pub id: String,
    pub principal: String,
    pub container: String,
    pub blob: Option<String>,
    pub expires_on: DateTime<Utc>,
}

/// What a revocation achieved, honestly.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RevokeOutcome {
    pub id: String,
    pub mechanism: RevocationMode,
    /// True when the issuance was already revoked; nothing was done again.
    pub already_revoked: bool,
    /// When the token stops working: the latest moment Azure may still honour it.
    pub effective_by: DateTime<Utc>,
    /// One sentence a person can act on.
    pub takes_effect: String,
    /// Other issuances revoked with it; their holders must ask again.
    pub collateral: Vec<Collateral>,
}

/// Why a revocation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    #[error("no issuance with that id")]
    NotFound,
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the stored access policy could not be deleted, so the token is NOT revoked: {0}")]
    Policy(#[from] PolicyError),
    #[error("{0}")]
    Ledger(#[from] LedgerError),
    /// Azure Resource Manager refused or could not be reached: nothing was revoked.
    #[error("the user delegation keys were NOT revoked: {0}")]
    Azure(String),
}

impl Broker {
    /// Revokes issuance `id` for `by`, as of `now`.
    pub async fn revoke(
        &self,
        id: &str,
        by: &Principal,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<RevokeOutcome, RevokeError> {
        let reason = checked_reason(reason)?;
        let record = self.ledger.get(id).await?.ok_or(RevokeError::NotFound)?;
        let already = record.status == StoredStatus::Revoked;
        let who = by.ledger_name();
        let mut collateral = Vec::new();
        match record.revocation {
            RevocationMode::StoredAccessPolicy if !already => {
                let policy = record.policy_id.clone().ok_or_else(|| {
                    RevokeError::Ledger(LedgerError::Unavailable(format!(
                        "issuance {id} has no stored access policy recorded"
                    )))
                })?;
                let client = self.clients.get(&record.account).ok_or_else(|| {
                    RevokeError::InvalidRequest(format!(
                        "account '{}' is no longer configured; rotate its key to stop the token",
                        record.account
                    ))
                })?;
                let container = ContainerName::parse(&record.container).map_err(|e| {
                    RevokeError::Ledger(LedgerError::Unavailable(format!(
                        "recorded container: {e}"
                    )))
                })?;
                // Azure first: only a deleted policy is a revocation.
                self.stored.delete(client, &container, &policy).await?;
                let revoked = self
                    .ledger
                    .revoke_policy(
                        &record.account,
                        &record.container,
                        &policy,
                        &who,
                        reason,
                        now,
                    )
                    .await?;
                collateral = revoked
                    .into_iter()
                    .filter(|r| r.id != record.id)
                    .map(|r| Collateral {
                        id: r.id,
                        principal: r.principal,
                        container: r.container,
                        blob: r.blob,
                        expires_on: r.expires_on,
                    })
                    .collect();
                tracing::info!(issuance = %id, policy = %policy, collateral = collateral.len(), by = %by.name, "revoked by deleting the stored access policy");
                self.metrics
                    .revocations("stored_access_policy", collateral.len() + 1);
            }
            _ if !already => {
                self.ledger.revoke(id, &who, reason, now).await?;
                self.metrics.revocations(record.revocation.as_str(), 1);
                tracing::info!(issuance = %id, mechanism = record.revocation.as_str(), by = %by.name, "revoked");
            }
            _ => {}
        }
        Ok(outcome(&record, already, collateral, now))
    }
}

/// The longest revocation reason kept.
pub const MAX_REASON_CHARS: usize = 500;

/// A revocation's reason, trimmed: 1 to [`MAX_REASON_CHARS`] characters, no control characters.
fn checked_reason(reason: &str) -> Result<&str, RevokeError> {
    let reason = reason.trim();
    if reason.is_empty()
        || reason.chars().count() > MAX_REASON_CHARS
        || reason.chars().any(char::is_control)
    {
        return Err(RevokeError::InvalidRequest(format!(
            "give a reason of 1 to {MAX_REASON_CHARS} characters, without control characters"
        )));
    }
    Ok(reason)
}

fn outcome(
    record: &IssuanceRecord,
    already: bool,
    collateral: Vec<Collateral>,
    now: DateTime<Utc>,
) -> RevokeOutcome {
    let at = record.revoked_at.unwrap_or(now);
    let (effective_by, takes_effect) = match record.revocation {
        RevocationMode::StoredAccessPolicy => (
            (at + POLICY_PROPAGATION).min(record.expires_on),
            format!(
                "the stored access policy '{}' was deleted from container '{}'; Azure documents up to 30 seconds before every token bound to it fails (the issuances listed as collateral stop too; their holders must ask again)",
                record.policy_id.as_deref().unwrap_or("?"),
                record.container
            ),
        ),
        RevocationMode::LinkOnly => (
            (at + LINK_SAS_TTL).min(record.expires_on),
            "the link stops at once; a SAS already minted from it (at most 5 minutes each) works until it expires".into(),
        ),
        RevocationMode::ExpiryOnly => (
            record.expires_on,
            format!(
                "recorded as revoked, but Azure cannot revoke a single SAS: this token stays valid until {}. Emergency stop: rotate the account key that signed it (this ends every service SAS signed with that key) or, for a user delegation SAS, revoke all user delegation keys of the account",
                record.expires_on.to_rfc3339()
            ),
        ),
    };
    RevokeOutcome {
        id: record.id.clone(),
        mechanism: record.revocation,
        already_revoked: already,
        effective_by,
        takes_effect,
        collateral,
    }
}

/// One container touched by the emergency stop.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct EmergencyContainer {
    pub container: String,
    pub deleted_policies: Vec<String>,
    pub revoked_issuances: usize,
}

/// What the emergency stop did.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct EmergencyOutcome {
    pub account: String,
    pub containers: Vec<EmergencyContainer>,
    pub effective_by: DateTime<Utc>,
    pub takes_effect: String,
}

/// What the account-wide emergency stop for user delegation SAS did.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct KeyStopOutcome {
    /// The ledger's record of the stop (`krv_…`).
    pub id: String,
    pub account: String,
    /// Issuances (user delegation SAS and the broker links that mint them) marked revoked.
    pub revoked_issuances: Vec<String>,
    pub takes_effect: String,
}

/// What a bulk revocation did.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct BulkOutcome {
    /// One entry per issuance revoked by this call (collateral included in its entry).
    pub revoked: Vec<RevokeOutcome>,
}

/// Which issuances a bulk revocation takes: every filter given must match.
#[derive(Clone, Debug, Default)]
pub struct BulkFilter {
    pub principal: Option<String>,
    pub account: Option<String>,
    pub container: Option<String>,
    pub rule: Option<String>,
}

/// The most issuances one bulk revocation takes.
pub const MAX_BULK: usize = 10_000;

impl Broker {
    /// Deletes every stored access policy sasgate owns on every container of `account` (found by
    /// listing the account, so policies the ledger lost are caught too), revoking every token
    /// bound to them at once, and records it.
    pub async fn emergency_revoke_policies(
        &self,
        account: &str,
        by: &Principal,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<EmergencyOutcome, RevokeError> {
        let reason = checked_reason(reason)?;
        let client = self.clients.get(account).ok_or_else(|| {
            RevokeError::InvalidRequest(format!("account '{account}' is not configured"))
        })?;
        let who = by.ledger_name();
        let mut containers = Vec::new();
        for container in client.list_containers().await.map_err(PolicyError::from)? {
            let deleted = self.stored.delete_all_owned(client, &container).await?;
            let mut revoked = 0;
            for id in &deleted {
                revoked += self
                    .ledger
                    .revoke_policy(account, container.as_str(), id, &who, reason, now)
                    .await?
                    .len();
            }
            self.metrics.revocations("stored_access_policy", revoked);
            if !deleted.is_empty() {
                containers.push(EmergencyContainer {
                    container: container.to_string(),
                    deleted_policies: deleted,
                    revoked_issuances: revoked,
                });
            }
        }
        tracing::warn!(account = %account, by = %by.name, containers = containers.len(), "emergency stop: every stored access policy sasgate owns was deleted");
        Ok(EmergencyOutcome {
            account: account.to_owned(),
            containers,
            effective_by: now + POLICY_PROPAGATION,
            takes_effect: "every token bound to a sasgate stored access policy on this account stops within 30 seconds (Azure's documented delay); tokens without a policy (expiry_only) need the account key rotated".into(),
        })
    }

    /// Revokes every active issuance matching `filter` (at least one filter is required).
    /// Revokes every user delegation key of `account` through Azure Resource Manager, which
    /// ends every user delegation SAS of the account (sasgate's and any other), then records the
    /// stop and marks the account's user delegation issuances revoked in one commit. New tokens
    /// are signed with a fresh key. If ARM refuses, nothing is recorded as revoked.
    pub async fn emergency_revoke_delegation_keys(
        &self,
        account: &str,
        by: &Principal,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<KeyStopOutcome, RevokeError> {
        let reason = checked_reason(reason)?;
        let keys = self.delegation.get(account).ok_or_else(|| {
            RevokeError::InvalidRequest(format!(
                "account '{}' does not sign with Microsoft Entra ID (no [accounts.entra]); its tokens are service SAS: use revoke-policies or rotate the account key",
                super::mint::truncate(account, 64)
            ))
        })?;
        if keys.settings().resource_id.is_none() {
            return Err(RevokeError::InvalidRequest(format!(
                "account '{account}' has no entra.resource_id; set it to the storage account's Azure resource id to enable this stop"
            )));
        }
        keys.revoke_all(now)
            .await
            .map_err(|e| RevokeError::Azure(e.to_string()))?;
        // When the stop took effect: every token issued up to now carries a revoked key (the
        // cached key was dropped, and no renewal ran across the call). This is a clock read after
        // an outside call, not issuance logic.
        let now = Utc::now().max(now);
        tracing::warn!(account = %account, by = %by.name, "emergency stop: every user delegation key of the account was revoked in Azure");
        let (stop, revoked) = self
            .ledger
            .revoke_delegation_keys(crate::ledger::KeyRevocation {
                id: crate::ledger::new_id("krv_", now)?,
                at: now,
                account: account.to_owned(),
                revoked_by: by.ledger_name(),
                reason: reason.to_owned(),
                revoked_issuances: 0,
            })
            .await
            .map_err(|e| {
                tracing::error!(account = %account, error = %e, "the user delegation keys WERE revoked in Azure, but the ledger could not record it; retry the stop to record it");
                RevokeError::Ledger(e)
            })?;
        self.metrics
            .revocations("user_delegation_keys", revoked.len());
        Ok(KeyStopOutcome {
            id: stop.id,
            account: account.to_owned(),
            revoked_issuances: revoked.into_iter().map(|r| r.id).collect(),
            takes_effect: "Azure revoked every user delegation key of the account: every user delegation SAS signed with them (sasgate's or anyone's) stops once Azure's caches expire (Azure documents a delay). Broker links of this account were revoked too. New tokens are signed with a new key.".into(),
        })
    }

    pub async fn revoke_matching(
        &self,
        filter: &BulkFilter,
        by: &Principal,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<BulkOutcome, RevokeError> {
        if filter.principal.is_none()
            && filter.account.is_none()
            && filter.container.is_none()
            && filter.rule.is_none()
        {
            return Err(RevokeError::InvalidRequest(
                "give at least one of principal, account, container or rule; to stop everything use the emergency stop".into(),
            ));
        }
        // Checked up front too, so that a bad reason is refused even when nothing matches.
        checked_reason(reason)?;
        let list_filter = crate::ledger::ListFilter {
            principal: filter.principal.clone(),
            account: filter.account.clone(),
            container: filter.container.clone(),
            status: Some(crate::ledger::Status::Active),
            ..Default::default()
        };
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .ledger
                .list(&list_filter, now, 1000, cursor.as_deref())
                .await?;
            ids.extend(
                page.items
                    .into_iter()
                    .filter(|r| filter.rule.as_ref().is_none_or(|rule| &r.rule == rule))
                    .map(|r| r.id),
            );
            if ids.len() > MAX_BULK {
                return Err(RevokeError::InvalidRequest(format!(
                    "more than {MAX_BULK} issuances match; narrow the filter"
                )));
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let mut revoked = Vec::new();
        for id in ids {
            let outcome = self.revoke(&id, by, reason, now).await?;
            // Issuances already revoked as collateral of an earlier one are reported there.
            if !outcome.already_revoked {
                revoked.push(outcome);
            }
        }
        Ok(BulkOutcome { revoked })
    }
}
