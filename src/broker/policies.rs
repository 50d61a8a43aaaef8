//! Stored access policies that sasgate manages on containers, so that a service SAS can be
//! revoked (AZURE-SAS.md §5, DESIGN.md §6).
//!
//! Each policy holds only a permission set; each token bound to it (`si`) carries its own
//! `st`/`se` and no `sp`. Policy ids are `sg-<generation>-<permissions>`, with the generation
//! drawn from a per-container counter in the ledger, so an id is never reused (re-creating a
//! deleted id would revive its revoked tokens). A generation takes new issuances for
//! `rotation`; after that the next one is created, so revoking one token takes down at most the
//! cohort issued in one rotation period. A generation is deleted from the container once none
//! of its issuances is live. A container holds at most 5 policies, sasgate's and others'
//! together; sasgate never touches a policy it does not own, nor the container's public-access
//! setting.
//!
//! Concurrency: within a process a per-container mutex serialises the slow path; across
//! replicas a 15-second container lease guards each read-modify-write of the container ACL
//! (Set Container ACL takes no ETag condition), retried while another replica holds it.
//!
//! A generation is recorded in the ledger *before* it is written to the container (its number
//! must be taken first), so the ledger may name one that never reached Azure: the write was cut
//! off by the request timeout or hung, or another replica's write is still in progress. A token
//! bound to it would be a 201 that Azure refuses for the whole rotation. So a process binds
//! tokens only to generations it has seen on the container, written by itself or read back from
//! the container's ACL under the lease; a recorded generation the container does not hold is
//! retired (its id is never reused) and the next one is made.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};

use crate::azure::{
    AzureError, BlobServiceClient, ContainerAcl, MAX_STORED_POLICIES, SignedIdentifier,
};
use crate::ledger::{Ledger, LedgerError};
use crate::sas::name::ContainerName;

/// The prefix of every policy id sasgate owns.
pub const OWNED_PREFIX: &str = "sg-";
/// How long one lease is taken for.
const LEASE_SECONDS: u32 = 15;
/// How long to keep retrying a lease held by another replica.
const LEASE_PATIENCE: StdDuration = StdDuration::from_secs(20);

/// Why a policy could not be provided or removed. No token is issued on any of these.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "the container already holds {MAX_STORED_POLICIES} stored access policies and none of sasgate's can be retired yet"
    )]
    NoSlot,
    #[error("the container ACL could not be updated: {0}")]
    Azure(#[from] AzureError),
    #[error("{0}")]
    Ledger(#[from] LedgerError),
    #[error("another replica held the container lease for too long")]
    LeaseBusy,
}

/// One async mutex per (account, container).
type ContainerLocks = HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>;

/// (account, container, policy id).
type PolicyKey = (String, String, String);

/// The manager: shared by all requests of a process.
pub struct StoredPolicies {
    /// How long a generation takes new issuances.
    pub rotation: Duration,
    locks: std::sync::Mutex<ContainerLocks>,
    /// Generations this process has seen on their container (see the module documentation).
    confirmed: std::sync::Mutex<HashSet<PolicyKey>>,
}

impl StoredPolicies {
    /// A manager rotating generations every `rotation`.
    pub fn new(rotation: Duration) -> Self {
        Self {
            rotation,
            locks: std::sync::Mutex::new(HashMap::new()),
            confirmed: std::sync::Mutex::new(HashSet::new()),
        }
    }

    fn key(account: &str, container: &str, policy_id: &str) -> PolicyKey {
        (
            account.to_owned(),
            container.to_owned(),
            policy_id.to_owned(),
        )
    }

    fn is_confirmed(&self, account: &str, container: &str, policy_id: &str) -> bool {
        let confirmed = self.confirmed.lock().unwrap_or_else(|p| p.into_inner());
        confirmed.contains(&Self::key(account, container, policy_id))
    }

    /// Records that `policy_id` is on the container (`true`) or may no longer be (`false`).
    fn set_confirmed(&self, account: &str, container: &str, policy_id: &str, on: bool) {
        let mut confirmed = self.confirmed.lock().unwrap_or_else(|p| p.into_inner());
        let key = Self::key(account, container, policy_id);
        if on {
            confirmed.insert(key);
        } else {
            confirmed.remove(&key);
        }
    }

    /// The current generation, if this process has seen it on the container.
    async fn current_confirmed(
        &self,
        ledger: &dyn Ledger,
        account: &str,
        container: &str,
        permissions: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, PolicyError> {
        Ok(self
            .current(ledger, account, container, permissions, now)
            .await?
            .filter(|id| self.is_confirmed(account, container, id)))
    }

    fn lock_for(&self, account: &str, container: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks
            .entry((account.to_owned(), container.to_owned()))
            .or_default()
            .clone()
    }

    /// The id of the policy a new token for `permissions` on this container binds to: the
    /// current generation if it is younger than `rotation` and on the container, else a new one
    /// (pruning retired generations to make room). Fails closed: on any error no policy id is
    /// returned.
    pub async fn acquire(
        &self,
        ledger: &dyn Ledger,
        client: &BlobServiceClient,
        container: &ContainerName,
        permissions: &str,
        now: DateTime<Utc>,
    ) -> Result<String, PolicyError> {
        let account = client.account().to_owned();
        if let Some(id) = self
            .current_confirmed(ledger, &account, container.as_str(), permissions, now)
            .await?
        {
            return Ok(id);
        }
        let lock = self.lock_for(&account, container.as_str());
        let _guard = lock.lock().await;
        // Another request may have made it while this one waited.
        if let Some(id) = self
            .current_confirmed(ledger, &account, container.as_str(), permissions, now)
            .await?
        {
            return Ok(id);
        }
        let lease = take_lease(client, container).await?;
        // Another replica may have made it while this one waited for the lease, or a write of
        // this process may have been cut off: the container says which.
        let usable = match self
            .current(ledger, &account, container.as_str(), permissions, now)
            .await
        {
            Ok(Some(id)) => self.verify(ledger, client, container, id, now).await,
            other => other,
        };
        let result = match usable {
            Ok(Some(id)) => Ok(id),
            Ok(None) => {
                self.rotate(ledger, client, container, permissions, now, &lease)
                    .await
            }
            Err(e) => Err(e),
        };
        release(client, container, &lease).await;
        result
    }

    /// Under the lease: `id` (the ledger's current generation) if the container holds it; else
    /// `None`, after retiring it in the ledger (its write never completed, and its id is never
    /// used again).
    async fn verify(
        &self,
        ledger: &dyn Ledger,
        client: &BlobServiceClient,
        container: &ContainerName,
        id: String,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, PolicyError> {
        let account = client.account().to_owned();
        let acl = client.get_container_acl(container).await?;
        if acl.identifiers.iter().any(|si| si.id == id) {
            self.set_confirmed(&account, container.as_str(), &id, true);
            return Ok(Some(id));
        }
        tracing::warn!(account = %account, container = %container, policy = %id, "the ledger's current stored access policy is not on the container (its write did not complete); retiring it");
        ledger
            .remove_policy(&account, container.as_str(), &id, now)
            .await?;
        Ok(None)
    }

    async fn current(
        &self,
        ledger: &dyn Ledger,
        account: &str,
        container: &str,
        permissions: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, PolicyError> {
        let live = ledger.live_policies(account, container).await?;
        Ok(live
            .into_iter()
            .rev()
            .find(|(p, _)| p.permissions == permissions && now - p.created_at < self.rotation)
            .map(|(p, _)| p.policy_id))
    }

    async fn rotate(
        &self,
        ledger: &dyn Ledger,
        client: &BlobServiceClient,
        container: &ContainerName,
        permissions: &str,
        now: DateTime<Utc>,
        lease: &str,
    ) -> Result<String, PolicyError> {
        let account = client.account().to_owned();
        let mut acl = client.get_container_acl(container).await?;
        // Retire sasgate generations with nothing live, and that no longer take issuances.
        let live = ledger.live_policies(&account, container.as_str()).await?;
        let mut retired = Vec::new();
        for (p, live_until) in &live {
            let taking = now - p.created_at < self.rotation;
            let dead = live_until.is_none_or(|t| t <= now);
            if dead && !taking {
                retired.push(p.policy_id.clone());
            }
        }
        acl.identifiers.retain(|si| !retired.contains(&si.id));
        if acl.identifiers.len() >= MAX_STORED_POLICIES {
            // Retire nothing in the ledger if the ACL is not written.
            return Err(PolicyError::NoSlot);
        }
        let record = ledger
            .create_policy(&account, container.as_str(), permissions, now)
            .await?;
        acl.identifiers.push(SignedIdentifier {
            id: record.policy_id.clone(),
            start: None,
            expiry: None,
            permission: Some(permissions.to_owned()),
        });
        if let Err(e) = client
            .set_container_acl(container, &acl, None, Some(lease))
            .await
        {
            // The generation was never on the container: retire it so it is never used.
            let _ = ledger
                .remove_policy(&account, container.as_str(), &record.policy_id, now)
                .await;
            return Err(e.into());
        }
        self.set_confirmed(&account, container.as_str(), &record.policy_id, true);
        for id in retired {
            self.set_confirmed(&account, container.as_str(), &id, false);
            ledger
                .remove_policy(&account, container.as_str(), &id, now)
                .await?;
        }
        tracing::info!(account = %account, container = %container, policy = %record.policy_id, "stored access policy created");
        Ok(record.policy_id)
    }

    /// Deletes `policy_id` from the container (keeping every other policy and the public-access
    /// setting). Succeeds when it is already gone.
    pub async fn delete(
        &self,
        client: &BlobServiceClient,
        container: &ContainerName,
        policy_id: &str,
    ) -> Result<(), PolicyError> {
        let lock = self.lock_for(client.account(), container.as_str());
        let _guard = lock.lock().await;
        // From now on no new token binds to it without reading the container again.
        self.set_confirmed(client.account(), container.as_str(), policy_id, false);
        let lease = take_lease(client, container).await?;
        let result = async {
            let mut acl = client.get_container_acl(container).await?;
            let before = acl.identifiers.len();
            acl.identifiers.retain(|si| si.id != policy_id);
            if acl.identifiers.len() != before {
                client
                    .set_container_acl(container, &acl, None, Some(&lease))
                    .await?;
            }
            Ok::<(), PolicyError>(())
        }
        .await;
        release(client, container, &lease).await;
        result
    }

    /// Deletes every policy sasgate owns on the container (the emergency stop); returns their
    /// ids.
    pub async fn delete_all_owned(
        &self,
        client: &BlobServiceClient,
        container: &ContainerName,
    ) -> Result<Vec<String>, PolicyError> {
        let lock = self.lock_for(client.account(), container.as_str());
        let _guard = lock.lock().await;
        {
            let mut confirmed = self.confirmed.lock().unwrap_or_else(|p| p.into_inner());
            confirmed.retain(|(a, c, _)| !(a == client.account() && c == container.as_str()));
        }
        let lease = take_lease(client, container).await?;
        let result = async {
            let acl = client.get_container_acl(container).await?;
            let (owned, kept): (Vec<SignedIdentifier>, Vec<SignedIdentifier>) = acl
                .identifiers
                .into_iter()
                .partition(|si| si.id.starts_with(OWNED_PREFIX));
            if !owned.is_empty() {
                let next = ContainerAcl {
                    identifiers: kept,
                    public_access: acl.public_access,
                    etag: None,
                };
                client
                    .set_container_acl(container, &next, None, Some(&lease))
                    .await?;
            }
            Ok::<Vec<String>, PolicyError>(owned.into_iter().map(|si| si.id).collect())
        }
        .await;
        release(client, container, &lease).await;
        result
    }
}

/// Takes the container lease, retrying while another replica holds it (polling, bounded).
async fn take_lease(
    client: &BlobServiceClient,
    container: &ContainerName,
) -> Result<String, PolicyError> {
    let deadline = tokio::time::Instant::now() + LEASE_PATIENCE;
    let mut wait = StdDuration::from_millis(50);
    loop {
        match client
            .acquire_container_lease(container, LEASE_SECONDS)
            .await
        {
            Ok(id) => return Ok(id),
            Err(e) if e.status() == Some(409) => {
                if tokio::time::Instant::now() + wait > deadline {
                    return Err(PolicyError::LeaseBusy);
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(StdDuration::from_secs(1));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Releases a lease; a failure only delays the next holder by at most the lease duration.
async fn release(client: &BlobServiceClient, container: &ContainerName, lease: &str) {
    if let Err(e) = client.release_container_lease(container, lease).await {
        tracing::warn!(container = %container, error = %e, "container lease not released; it expires by itself");
    }
}
