//! User delegation keys: obtained with sasgate's Entra identity, cached, renewed before they run
//! out, and dropped by the emergency stop.
//!
//! Every user delegation SAS must end before its key (`se ≤ ske`). A key is therefore renewed once
//! less than `limits.max_ttl` plus [`RENEW_MARGIN`] of it is left, so the longest token a policy
//! allows always fits. Renewal happens on the first mint that needs it:
//!
//! - at most one renewal runs at a time per account; a mint that the current key still covers does
//!   not wait for it, one that it does not cover waits for the renewal to finish and uses its key;
//! - if renewal fails while the current key still covers the mint, the current key is used (and
//!   renewal is tried again by a later mint);
//! - if there is no usable key, the mint fails (503, no token), and for [`FAILURE_HOLD`] after a
//!   failure further mints fail at once instead of queueing on a dead endpoint; then the next mint
//!   tries again. Recovery needs no restart.
//!
//! "Now" is a parameter throughout, so renewal is testable without waiting for a day.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Duration, Utc};
use url::Url;

use crate::azure::arm::{self, ArmError};
use crate::azure::entra::{EntraCredential, EntraError, STORAGE_SCOPE};
use crate::azure::{AzureError, BlobServiceClient};
use crate::config::{Delegation, RENEW_MARGIN};
use crate::sas::udk::UserDelegationKey;

/// After a failed renewal, mints needing a new key fail at once for this long.
pub const FAILURE_HOLD: Duration = Duration::seconds(2);

/// A key and its validity, as parsed from the service's answer.
#[derive(Debug)]
pub struct CachedKey {
    pub key: UserDelegationKey,
    pub start: DateTime<Utc>,
    pub expiry: DateTime<Utc>,
    /// When sasgate obtained it ("now" of the fetch).
    pub fetched_at: DateTime<Utc>,
}

impl CachedKey {
    /// True when a SAS from `start` to `end` fits inside the key's validity.
    fn covers(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        self.start <= start && end <= self.expiry
    }
}

/// Why no key could be had. Carries no secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DelegationError {
    #[error("no Entra token for Azure Storage: {0}")]
    Token(#[from] EntraError),
    #[error("Get User Delegation Key failed: {0}")]
    Key(String),
    #[error("the last attempt failed {seconds}s ago ({last}); trying again shortly")]
    Holding { seconds: i64, last: String },
}

impl From<AzureError> for DelegationError {
    fn from(e: AzureError) -> Self {
        DelegationError::Key(e.to_string())
    }
}

/// Counters for operators (and `/metrics`).
#[derive(Debug, Default)]
pub struct DelegationStats {
    pub renewals: AtomicU64,
    pub failures: AtomicU64,
}

struct RenewState {
    /// When the last renewal failed, and why.
    last_failure: Option<(DateTime<Utc>, String)>,
}

/// The user delegation keys of one account.
pub struct DelegationKeys {
    account: String,
    client: BlobServiceClient,
    credential: Arc<EntraCredential>,
    settings: Delegation,
    /// The longest SAS lifetime any policy can grant.
    max_ttl: Duration,
    /// How far `st` lies before the time of issue.
    backdate: Duration,
    current: RwLock<Option<Arc<CachedKey>>>,
    renewing: tokio::sync::Mutex<RenewState>,
    pub stats: DelegationStats,
}

impl std::fmt::Debug for DelegationKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelegationKeys")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl DelegationKeys {
    /// Keys for `account` through `client` (a client of the account's Blob endpoint), obtained
    /// with `credential`.
    pub fn new(
        account: &str,
        client: BlobServiceClient,
        credential: Arc<EntraCredential>,
        settings: Delegation,
        max_ttl: Duration,
        backdate: Duration,
    ) -> Self {
        Self {
            account: account.to_owned(),
            client,
            credential,
            settings,
            max_ttl,
            backdate,
            current: RwLock::new(None),
            renewing: tokio::sync::Mutex::new(RenewState { last_failure: None }),
            stats: DelegationStats::default(),
        }
    }

    /// The settings (correlation id, resource id, …).
    pub fn settings(&self) -> &Delegation {
        &self.settings
    }

    /// A key that covers a SAS from `now - backdate` to `until`.
    pub async fn key(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Arc<CachedKey>, DelegationError> {
        let start = now - self.backdate;
        let current = self.current();
        if let Some(k) = &current
            && k.covers(start, until)
            && !self.due(k, now)
        {
            return Ok(k.clone());
        }
        // Renewal is due, or the key does not cover this SAS.
        let covered = current.as_ref().filter(|k| k.covers(start, until)).cloned();
        let mut state = match (self.renewing.try_lock(), &covered) {
            (Ok(state), _) => state,
            // Someone is renewing and the current key will do: do not wait.
            (Err(_), Some(k)) => return Ok(k.clone()),
            (Err(_), None) => self.renewing.lock().await,
        };
        // The key may have been renewed while this caller waited.
        if let Some(k) = self.current()
            && k.covers(start, until)
            && !self.due(&k, now)
        {
            return Ok(k);
        }
        if let Some((at, last)) = &state.last_failure
            && now - *at < FAILURE_HOLD
            && now >= *at
        {
            return match covered {
                Some(k) => Ok(k),
                None => Err(DelegationError::Holding {
                    seconds: (now - *at).num_seconds(),
                    last: last.clone(),
                }),
            };
        }
        match self.fetch(now).await {
            Ok(k) => {
                state.last_failure = None;
                let k = Arc::new(k);
                if let Ok(mut slot) = self.current.write() {
                    *slot = Some(k.clone());
                }
                self.stats.renewals.fetch_add(1, Ordering::Relaxed);
                tracing::info!(account = %self.account, expires = %k.expiry, "user delegation key obtained");
                if k.covers(start, until) {
                    Ok(k)
                } else {
                    Err(DelegationError::Key(
                        "the new key does not cover the token (is this machine's clock right?)"
                            .into(),
                    ))
                }
            }
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                state.last_failure = Some((now, e.to_string()));
                match covered {
                    Some(k) => {
                        tracing::warn!(account = %self.account, error = %e, key_expires = %k.expiry, "user delegation key renewal failed; the current key still serves");
                        Ok(k)
                    }
                    None => {
                        tracing::error!(account = %self.account, error = %e, "no user delegation key: minting for this account fails until Entra ID and Azure Storage answer");
                        Err(e)
                    }
                }
            }
        }
    }

    /// Drops the cached key, so that the next mint obtains a new one (after the emergency stop,
    /// which makes every existing key useless).
    pub fn forget(&self) {
        if let Ok(mut slot) = self.current.write() {
            *slot = None;
        }
    }

    /// Drops the cached key if it was obtained at or before `stop`: another replica ran the
    /// emergency stop, which revoked it. Returns true when a key was dropped.
    pub fn forget_if_older_than(&self, stop: DateTime<Utc>) -> bool {
        let stale = self.current().is_some_and(|k| k.fetched_at <= stop);
        if stale {
            self.forget();
            tracing::warn!(account = %self.account, "the cached user delegation key predates an emergency stop; a new one will be obtained");
        }
        stale
    }

    /// The current key's validity, if there is one.
    pub fn current_validity(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        self.current().map(|k| (k.start, k.expiry))
    }

    /// Revokes every user delegation key of the account through Azure Resource Manager, then
    /// forgets the cached key.
    pub async fn revoke_all(&self, now: DateTime<Utc>) -> Result<(), ArmError> {
        let resource_id = self.settings.resource_id.as_deref().ok_or_else(|| {
            ArmError::Config(format!(
                "account '{}' has no entra.resource_id; set it to the storage account's resource id to enable the emergency stop",
                self.account
            ))
        })?;
        // No renewal may run across the stop: one that began before it would store a key the
        // stop kills. Mints the current key covers go on meanwhile (with a key about to die;
        // the stop's record revokes them with the rest).
        let _renewing = self.renewing.lock().await;
        arm::revoke_user_delegation_keys(
            &self.credential,
            &self.settings.arm_endpoint,
            &self.settings.arm_scope,
            resource_id,
            now,
        )
        .await?;
        self.forget();
        Ok(())
    }

    /// The ARM endpoint the emergency stop calls.
    pub fn arm_endpoint(&self) -> &Url {
        &self.settings.arm_endpoint
    }

    fn current(&self) -> Option<Arc<CachedKey>> {
        self.current.read().ok().and_then(|k| k.clone())
    }

    /// True when less than the longest TTL plus the margin is left.
    fn due(&self, k: &CachedKey, now: DateTime<Utc>) -> bool {
        k.expiry - now < self.max_ttl + RENEW_MARGIN
    }

    async fn fetch(&self, now: DateTime<Utc>) -> Result<CachedKey, DelegationError> {
        let token = self.credential.token(STORAGE_SCOPE, now).await?;
        let start = now - self.backdate;
        let expiry = now + self.settings.key_lifetime;
        let result = self
            .client
            .get_user_delegation_key(token.token.expose(), start, expiry)
            .await;
        let key = match result {
            Ok(k) => k,
            Err(e) => {
                if e.status() == Some(401) || e.status() == Some(403) {
                    // The token may be stale or wrong for this account: get a fresh one next time.
                    self.credential.forget();
                }
                return Err(e.into());
            }
        };
        let parse = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| DelegationError::Key("the key's start or expiry is unreadable".into()))
        };
        let key_start = parse(&key.signed_start)?;
        let key_expiry = parse(&key.signed_expiry)?;
        Ok(CachedKey {
            key,
            start: key_start,
            expiry: key_expiry,
            fetched_at: now,
        })
    }
}
