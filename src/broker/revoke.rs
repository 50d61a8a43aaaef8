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

/// The most cohort members a [`RevokePreview`] lists.
pub const MAX_PREVIEW_COHORT: usize = 1000;

/// What revoking an issuance *would* achieve, for a confirmation before the revocation (the web
/// pages show it). Nothing is changed by computing it.
#[derive(Clone, Debug)]
pub struct RevokePreview {
    /// The issuance as recorded.
    pub record: IssuanceRecord,
    /// True when it is already revoked: revoking again changes nothing.
    pub already_revoked: bool,
    /// When the token would stop working if revoked at the time asked about.
    pub effective_by: DateTime<Utc>,
    /// One sentence, in the future tense: what revoking does.
    pub will_take_effect: String,
    /// For a stored access policy: the other *active* issuances bound to the same policy, which
    /// stop too (at most [`MAX_PREVIEW_COHORT`]).
    pub cohort: Vec<Collateral>,
    /// True when the cohort has more members than listed.
    pub cohort_truncated: bool,
}

impl Broker {
    /// What revoking issuance `id` at `now` would achieve: the mechanism, when it bites, and for
    /// a stored access policy the cohort that stops with it. Reads the ledger only.
    pub async fn revoke_preview(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<RevokePreview, RevokeError> {
        let record = self.ledger.get(id).await?.ok_or(RevokeError::NotFound)?;
        let already_revoked = record.status == StoredStatus::Revoked;
        let (mut cohort, mut cohort_truncated) = (Vec::new(), false);
        if record.revocation == RevocationMode::StoredAccessPolicy
            && !already_revoked
            && let Some(policy) = record.policy_id.as_deref()
        {
            (cohort, cohort_truncated) = self.cohort(&record, policy, now).await?;
        }
        let expires = record.expires_on.to_rfc3339();
        let (effective_by, will_take_effect) = match record.revocation {
            RevocationMode::StoredAccessPolicy => (
                (now + POLICY_PROPAGATION).min(record.expires_on),
                format!(
                    "sasgate will delete the stored access policy '{}' from container '{}'. Every token bound to it stops: this one and the {} other active issuance(s) listed (their holders must ask again). Azure documents up to 30 seconds before they fail.",
                    record.policy_id.as_deref().unwrap_or("?"),
                    record.container,
                    cohort.len()
                ),
            ),
            RevocationMode::LinkOnly => (
                (now + LINK_SAS_TTL).min(record.expires_on),
                "The link stops at once: every later use of it gets 410. A SAS already minted from it (at most 5 minutes each) works until it expires.".to_owned(),
            ),
            RevocationMode::ExpiryOnly => (
                record.expires_on,
                format!(
                    "Azure cannot revoke a single SAS: the revocation is only recorded, and this token stays valid until {expires}. To stop it sooner, rotate the account key that signed it (which ends every service SAS signed with that key) or, for a user delegation SAS, use the emergency stop that revokes the account's user delegation keys."
                ),
            ),
        };
        Ok(RevokePreview {
            record,
            already_revoked,
            effective_by,
            will_take_effect,
            cohort,
            cohort_truncated,
        })
    }

    /// The other active issuances bound to `policy` on `record`'s container.
    async fn cohort(
        &self,
        record: &IssuanceRecord,
        policy: &str,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Collateral>, bool), RevokeError> {
        let filter = crate::ledger::ListFilter {
            account: Some(record.account.clone()),
            container: Some(record.container.clone()),
            status: Some(crate::ledger::Status::Active),
            ..Default::default()
        };
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .ledger
                .list(&filter, now, 1000, cursor.as_deref())
                .await?;
            for r in page.items {
                if r.id != record.id && r.policy_id.as_deref() == Some(policy) {
                    if out.len() == MAX_PREVIEW_COHORT {
                        return Ok((out, true));
                    }
                    out.push(Collateral {
                        id: r.id,
                        principal: r.principal,
                        container: r.container,
                        blob: r.blob,
                        expires_on: r.expires_on,
                    });
                }
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok((out, false)),
            }
        }
    }

    /// The broker link `id` if `owner` holds it. Another principal's issuance answers
    /// [`RevokeError::NotFound`], as if it did not exist; an own issuance that is not a broker
    /// link answers [`RevokeError::InvalidRequest`].
    pub async fn owned_link(
        &self,
        id: &str,
        owner: &Principal,
    ) -> Result<IssuanceRecord, RevokeError> {
        let record = self.ledger.get(id).await?.ok_or(RevokeError::NotFound)?;
        if record.principal != owner.ledger_name() {
            return Err(RevokeError::NotFound);
        }
        if record.revocation != RevocationMode::LinkOnly {
            return Err(RevokeError::InvalidRequest(
                "only a broker link can be revoked by the principal that holds it; ask an admin to revoke a SAS".into(),
            ));
        }
        Ok(record)
    }

    /// Self-service revocation: `by` revokes one of *their own broker links*, without the admin
    /// role. Allowed for links only, because revoking a link stops it at once and touches no
    /// one else; revoking a stored-policy token would also stop other principals' tokens (its
    /// cohort), and an `expiry_only` token cannot be stopped at all, so those stay with admins.
    /// Refusals as [`Broker::owned_link`]; otherwise exactly [`Broker::revoke`].
    pub async fn revoke_own_link(
        &self,
        id: &str,
        by: &Principal,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<RevokeOutcome, RevokeError> {
        checked_reason(reason)?;
        self.owned_link(id, by).await?;
        self.revoke(id, by, reason, now).await
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use chrono::TimeZone as _;

    use super::*;
    use crate::ledger::conformance::sample_record;
    use crate::ledger::sqlite::{SqliteLedger, SqliteOptions};
    use crate::ledger::{Ledger, LinkRecord};

    /// A broker over a fresh SQLite ledger file (kept while the directory lives); no accounts
    /// and no policy, which revocation of links and previews do not need.
    fn broker() -> (tempfile::TempDir, Broker) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let ledger: Arc<dyn Ledger> =
            Arc::new(SqliteLedger::open(path.to_str().unwrap(), SqliteOptions::default()).unwrap());
        let broker = Broker {
            accounts: BTreeMap::new(),
            clients: BTreeMap::new(),
            policy: Arc::new(crate::policy::PolicySet::empty()),
            ledger,
            start_backdate: Duration::minutes(15),
            stored: super::super::StoredPolicies::new(Duration::hours(1)),
            public_url: url::Url::parse("http://127.0.0.1:8080").unwrap(),
            delegation: BTreeMap::new(),
            metrics: Arc::new(crate::metrics::Metrics::new()),
        };
        (dir, broker)
    }

    fn user(name: &str) -> Principal {
        Principal {
            name: name.into(),
            roles: vec!["researcher".into()],
            oidc: None,
        }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap()
    }

    /// A live broker link of `principal`, stored with its link row.
    async fn link_of(b: &Broker, principal: &str) -> IssuanceRecord {
        let mut r = sample_record(principal, "devstoreaccount1", t0()).unwrap();
        r.revocation = RevocationMode::LinkOnly;
        let link = LinkRecord {
            issuance_id: r.id.clone(),
            code_sha256: r.signature_sha256.clone(),
            expires_at: r.expires_on,
            max_uses: None,
            uses: 0,
        };
        b.ledger.append_link(r.clone(), link).await.unwrap();
        r
    }

    #[tokio::test]
    async fn a_researcher_revokes_their_own_link_and_nothing_else() {
        let (_dir, b) = broker();
        let (alice, bob) = (user("alice"), user("bob"));
        let mine = link_of(&b, "user:alice").await;
        let hers = link_of(&b, "user:alice").await;
        let now = t0() + Duration::minutes(1);

        // Another principal's link answers as if it did not exist, and stays active.
        assert!(matches!(
            b.revoke_own_link(&hers.id, &bob, "not mine", now).await,
            Err(RevokeError::NotFound)
        ));
        // A token that is not a link is for admins only.
        let token = sample_record("user:alice", "devstoreaccount1", t0()).unwrap();
        b.ledger.append(token.clone()).await.unwrap();
        assert!(matches!(
            b.revoke_own_link(&token.id, &alice, "done", now).await,
            Err(RevokeError::InvalidRequest(_))
        ));
        assert!(matches!(
            b.revoke_own_link(&mine.id, &alice, "  ", now).await,
            Err(RevokeError::InvalidRequest(_))
        ));
        assert!(matches!(
            b.revoke_own_link("iss_nope", &alice, "done", now).await,
            Err(RevokeError::NotFound)
        ));

        let out = b
            .revoke_own_link(&mine.id, &alice, "no longer needed", now)
            .await
            .unwrap();
        assert_eq!(out.mechanism, RevocationMode::LinkOnly);
        assert!(!out.already_revoked && out.collateral.is_empty());
        let stored = b.ledger.get(&mine.id).await.unwrap().unwrap();
        assert_eq!(stored.status, StoredStatus::Revoked);
        assert_eq!(stored.revoked_by.as_deref(), Some("user:alice"));
        assert_eq!(stored.revoke_reason.as_deref(), Some("no longer needed"));
        for id in [&hers.id, &token.id] {
            let r = b.ledger.get(id).await.unwrap().unwrap();
            assert_eq!(r.status, StoredStatus::Active, "{id} untouched");
        }
        // Again: idempotent, and says so.
        let again = b
            .revoke_own_link(&mine.id, &alice, "twice", now)
            .await
            .unwrap();
        assert!(again.already_revoked);
    }

    #[tokio::test]
    async fn a_preview_names_the_mechanism_and_the_cohort_and_changes_nothing() {
        let (_dir, b) = broker();
        let now = t0() + Duration::minutes(1);
        let bound = |principal: &str, policy: &str| {
            let mut r = sample_record(principal, "devstoreaccount1", t0()).unwrap();
            r.revocation = RevocationMode::StoredAccessPolicy;
            r.policy_id = Some(policy.into());
            r
        };
        let target = bound("user:alice", "sg-1-r");
        let peer = bound("user:bob", "sg-1-r");
        let other_policy = bound("user:carol", "sg-2-r");
        let mut revoked_peer = bound("user:dave", "sg-1-r");
        revoked_peer.status = StoredStatus::Revoked;
        revoked_peer.revoked_at = Some(t0());
        revoked_peer.revoked_by = Some("user:admin".into());
        revoked_peer.revoke_reason = Some("earlier".into());
        for r in [&target, &peer, &other_policy, &revoked_peer] {
            b.ledger.append(r.clone()).await.unwrap();
        }

        let p = b.revoke_preview(&target.id, now).await.unwrap();
        assert!(!p.already_revoked && !p.cohort_truncated);
        assert_eq!(
            p.cohort.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            [peer.id.as_str()],
            "only the other active issuance of the same policy"
        );
        assert!(
            p.will_take_effect.contains("sg-1-r"),
            "{}",
            p.will_take_effect
        );
        assert_eq!(p.effective_by, now + POLICY_PROPAGATION);
        assert_eq!(
            b.ledger.get(&target.id).await.unwrap().unwrap().status,
            StoredStatus::Active,
            "a preview changes nothing"
        );

        let link = link_of(&b, "user:alice").await;
        let p = b.revoke_preview(&link.id, now).await.unwrap();
        assert!(p.will_take_effect.contains("at once") && p.cohort.is_empty());
        let token = sample_record("user:alice", "devstoreaccount1", t0()).unwrap();
        b.ledger.append(token.clone()).await.unwrap();
        let p = b.revoke_preview(&token.id, now).await.unwrap();
        assert!(p.will_take_effect.contains("stays valid until"));
        assert_eq!(p.effective_by, token.expires_on);
        assert!(
            b.revoke_preview(&revoked_peer.id, now)
                .await
                .unwrap()
                .already_revoked
        );
        assert!(matches!(
            b.revoke_preview("iss_nope", now).await,
            Err(RevokeError::NotFound)
        ));
    }

    #[tokio::test]
    async fn a_refused_link_is_recorded_as_a_denial() {
        let (_dir, b) = broker();
        let request =
            serde_json::json!({"account": "nowhere", "container": "models", "blob": "a.bin"});
        let parsed = <crate::broker::MintRequest as crate::broker::FromJson>::from_json(&request);
        let e = b
            .link(&user("alice"), parsed, None, t0(), Some("127.0.0.1".into()))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "unknown_account");
        let bad = Err(crate::broker::MintError::InvalidRequest("bad".into()));
        assert!(b.link(&user("alice"), bad, None, t0(), None).await.is_err());
        // Denials are written in the background, best effort: wait for both, with a deadline.
        let mut codes = Vec::new();
        for _ in 0..200 {
            codes = b
                .ledger
                .denials(10)
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.code)
                .collect();
            if codes.len() == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        codes.sort();
        assert_eq!(codes, ["invalid_request", "unknown_account"]);
    }
}
