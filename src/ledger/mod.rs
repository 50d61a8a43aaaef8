//! The issuance ledger: every token sasgate issues is recorded here, durably, before the token
//! leaves the service. Denials are recorded too, best effort and bounded.
//!
//! [`Ledger`] is the one storage trait; each backend implements it and passes the same
//! conformance suite. The SQLite backend is the embedded default.

pub mod chain;
pub mod conformance;
pub mod postgres;
mod query;
pub mod sqlite;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How an issuance can be revoked (DESIGN.md §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RevocationMode {
    /// Nothing to revoke but the record: the TTL is the bound.
    ExpiryOnly,
    /// The SAS is bound (`si`) to a stored access policy sasgate manages on the container.
    StoredAccessPolicy,
    /// The holder gets a broker link; each redemption mints a SAS of at most 5 minutes.
    LinkOnly,
}

impl RevocationMode {
    /// The stable text form, as in policy files and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationMode::ExpiryOnly => "expiry_only",
            RevocationMode::StoredAccessPolicy => "stored_access_policy",
            RevocationMode::LinkOnly => "link_only",
        }
    }
}

/// How the SAS was signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SigningMode {
    /// With the storage account key (service SAS).
    AccountKey,
    /// With a user delegation key from Microsoft Entra ID.
    UserDelegation,
}

/// The stored status. "Expired" is not stored: it is `Active` with `expires_on` in the past, and
/// [`IssuanceRecord::status_at`] derives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(
    description = "The stored status: `active` or `revoked`. An expired issuance stays `active` here; `current_status` says `expired`."
)]
pub enum StoredStatus {
    Active,
    Revoked,
}

/// The status a caller sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    Expired,
    Revoked,
}

/// One issued token, as recorded. Holds no secret: the signature only as its SHA-256.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IssuanceRecord {
    /// `iss_` + 26 Crockford base32 characters; time-ordered.
    pub id: String,
    pub issued_at: DateTime<Utc>,
    /// `user:alice`, or `oidc:<issuer>#<subject>` for OIDC callers.
    pub principal: String,
    /// The OIDC claims the decision used, when the caller authenticated with a JWT.
    pub principal_claims: Option<serde_json::Value>,
    pub client_addr: Option<String>,
    pub account: String,
    pub container: String,
    pub blob: Option<String>,
    /// The `sr` value: `b`, `c`, `bs`, `bv` or `d`.
    pub resource: String,
    pub permissions: String,
    pub starts_on: DateTime<Utc>,
    pub expires_on: DateTime<Utc>,
    /// The `sip` value, if any.
    pub ip: Option<String>,
    /// The `spr` value.
    pub protocol: String,
    /// The `sv` value.
    pub version: String,
    pub rule: String,
    pub reason: Option<String>,
    pub signing_mode: SigningMode,
    pub revocation: RevocationMode,
    /// The stored access policy id (`si`) the SAS is bound to, if any.
    pub policy_id: Option<String>,
    /// Lowercase hex SHA-256 of the raw `sig` text.
    pub signature_sha256: String,
    pub status: StoredStatus,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
    pub revoke_reason: Option<String>,
    /// User delegation SAS: the key's object id (`skoid`), i.e. sasgate's Entra identity.
    pub key_oid: Option<String>,
    /// User delegation SAS: the key's tenant (`sktid`).
    pub key_tid: Option<String>,
}

impl IssuanceRecord {
    /// The status as of `now`.
    pub fn status_at(&self, now: DateTime<Utc>) -> Status {
        match self.status {
            StoredStatus::Revoked => Status::Revoked,
            StoredStatus::Active if self.expires_on <= now => Status::Expired,
            StoredStatus::Active => Status::Active,
        }
    }
}

/// A refused request, recorded best effort. Holds no secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DenialRecord {
    /// `den_` + 26 Crockford base32 characters.
    pub id: String,
    pub at: DateTime<Utc>,
    /// Absent when the caller did not authenticate.
    pub principal: Option<String>,
    pub client_addr: Option<String>,
    /// The problem code, e.g. `ttl_exceeds_policy`.
    pub code: String,
    /// What was asked (account, container, blob, permissions, ttl), as given, bounded in size.
    pub request: serde_json::Value,
    /// The reason per rule considered.
    pub reasons: Vec<String>,
}

/// A stored access policy sasgate manages on a container (DESIGN.md §6). Ids are
/// `sg-<generation>-<permissions>`; the generation comes from a per-container counter in the
/// ledger and is never reused, because re-creating a deleted policy id would bring its revoked
/// tokens back to life.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub account: String,
    pub container: String,
    pub policy_id: String,
    pub generation: u64,
    /// The permission letters the policy holds (the tokens bound to it carry no `sp`).
    pub permissions: String,
    pub created_at: DateTime<Utc>,
    /// Set when the policy was deleted from the container (revocation or clean-up).
    pub removed_at: Option<DateTime<Utc>>,
}

/// A policy not yet removed, with the latest `expires_on` among its active issuances (`None`:
/// nothing bound to it is live).
pub type LivePolicy = (PolicyRecord, Option<DateTime<Utc>>);

/// A broker link: the issuance it belongs to and how it may be redeemed. The code itself is
/// never stored, only its SHA-256.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// The issuance (revocation `link_only`) that records who asked for the link and why.
    pub issuance_id: String,
    /// Lowercase hex SHA-256 of the link code.
    pub code_sha256: String,
    pub expires_at: DateTime<Utc>,
    /// `None`: unlimited until expiry.
    pub max_uses: Option<u32>,
    pub uses: u32,
}

/// One redemption of a link: the SAS it minted, recorded before the redirect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Redemption {
    /// `red_` + 26 characters.
    pub id: String,
    pub issuance_id: String,
    pub at: DateTime<Utc>,
    pub client_addr: Option<String>,
    pub user_agent: Option<String>,
    /// Lowercase hex SHA-256 of the minted SAS signature.
    pub signature_sha256: String,
    pub expires_on: DateTime<Utc>,
}

/// What a redemption attempt found.
#[derive(Clone, Debug, PartialEq)]
pub enum RedeemOutcome {
    /// Counted and recorded; the link's issuance, to mint from.
    Redeemed(Box<IssuanceRecord>),
    /// Nothing was recorded or counted.
    Gone(GoneReason),
}

/// Why a link cannot be redeemed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GoneReason {
    Unknown,
    Revoked,
    Expired,
    UsedUp,
}

/// One use of the account-wide emergency stop for user delegation SAS.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyRevocation {
    /// `krv_` + 26 characters.
    pub id: String,
    pub at: DateTime<Utc>,
    pub account: String,
    pub revoked_by: String,
    pub reason: String,
    /// How many active user delegation issuances it marked revoked.
    pub revoked_issuances: u64,
}

/// Filters for [`Ledger::list`]; every field narrows the result.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    pub principal: Option<String>,
    pub account: Option<String>,
    pub container: Option<String>,
    /// Compared as of `now`.
    pub status: Option<Status>,
    /// Issued at or after.
    pub since: Option<DateTime<Utc>>,
    /// Issued before.
    pub until: Option<DateTime<Utc>>,
}

/// One page of a listing, newest first.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Page {
    pub items: Vec<IssuanceRecord>,
    /// Opaque; pass back as `cursor` for the next page. `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Ledger failures. The `String`s are for the server log only (they may name paths or SQL
/// errors); the HTTP layer shows callers nothing but `ledger_unavailable` and an error id.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The record could not be stored or read: the caller must not hand out a token.
    #[error("ledger unavailable: {0}")]
    Unavailable(String),
    /// The cursor given to `list` was not made by this ledger.
    #[error("invalid cursor")]
    InvalidCursor,
    /// The ledger URL or settings are wrong.
    #[error("ledger configuration: {0}")]
    Config(String),
}

/// The storage behind every issuance.
#[async_trait::async_trait]
pub trait Ledger: Send + Sync + 'static {
    /// Stores `record` durably (committed and fsynced) and returns only then. Concurrent calls
    /// share commits. Any error means the record is not stored and no token may be issued.
    async fn append(&self, record: IssuanceRecord) -> Result<(), LedgerError>;

    /// Records a denial, best effort: never blocks the refusal for long, drops the record when
    /// the backlog is full, and keeps at most a configured number of denials (oldest dropped).
    async fn record_denial(&self, denial: DenialRecord);

    /// One issuance by id.
    async fn get(&self, id: &str) -> Result<Option<IssuanceRecord>, LedgerError>;

    /// Issuances matching `filter`, newest first, at most `limit` (1–1000), after `cursor`.
    async fn list(
        &self,
        filter: &ListFilter,
        now: DateTime<Utc>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page, LedgerError>;

    /// The newest issuance whose signature hashes to `signature_sha256` (lowercase hex). Two
    /// identical requests in the same second get byte-identical tokens; both are recorded.
    async fn find_by_signature(
        &self,
        signature_sha256: &str,
    ) -> Result<Option<IssuanceRecord>, LedgerError>;

    /// Recent denials, newest first, at most `limit`.
    async fn denials(&self, limit: usize) -> Result<Vec<DenialRecord>, LedgerError>;

    /// Readiness: the ledger can be read and written right now.
    async fn check(&self) -> Result<(), LedgerError>;

    /// Marks an issuance revoked, durably. Idempotent: an already revoked record is returned
    /// unchanged. `None` when there is no such id.
    async fn revoke(
        &self,
        id: &str,
        by: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<IssuanceRecord>, LedgerError>;

    /// Marks every active issuance bound to the stored access policy `policy_id` on
    /// `account`/`container` revoked, durably, and marks the policy removed. Returns the
    /// issuances it revoked.
    async fn revoke_policy(
        &self,
        account: &str,
        container: &str,
        policy_id: &str,
        by: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<IssuanceRecord>, LedgerError>;

    /// Allocates the next generation for `account`/`container` (strictly increasing, never
    /// reused, also across restarts and replicas) and records the policy, durably.
    async fn create_policy(
        &self,
        account: &str,
        container: &str,
        permissions: &str,
        at: DateTime<Utc>,
    ) -> Result<PolicyRecord, LedgerError>;

    /// The policies of `account`/`container` not yet removed, oldest first, each with the
    /// latest `expires_on` among its active issuances (`None`: none is live).
    async fn live_policies(
        &self,
        account: &str,
        container: &str,
    ) -> Result<Vec<LivePolicy>, LedgerError>;

    /// Marks a policy removed (deleted from the container because nothing live is bound to it).
    async fn remove_policy(
        &self,
        account: &str,
        container: &str,
        policy_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), LedgerError>;

    /// Stores an issuance and its link in one durable commit.
    async fn append_link(
        &self,
        record: IssuanceRecord,
        link: LinkRecord,
    ) -> Result<(), LedgerError>;

    /// Redeems the link whose code hashes to `code_sha256`: in one durable commit it checks
    /// that the link's issuance is active, the link unexpired at `redemption.at` and not used
    /// up, counts the use and stores `redemption` (its `issuance_id` is filled in here).
    async fn redeem(
        &self,
        code_sha256: &str,
        redemption: Redemption,
    ) -> Result<RedeemOutcome, LedgerError>;

    /// Records the emergency stop `revocation` (all user delegation keys of its account were
    /// revoked in Azure) and, in the same durable commit, marks every active user delegation
    /// issuance of the account issued at or before `revocation.at` revoked (later ones carry a
    /// key obtained after the stop). Returns the issuances it revoked; `revoked_issuances` is
    /// set here.
    async fn revoke_delegation_keys(
        &self,
        revocation: KeyRevocation,
    ) -> Result<(KeyRevocation, Vec<IssuanceRecord>), LedgerError>;

    /// Emergency stops recorded for `account`, newest first.
    async fn key_revocations(&self, account: &str) -> Result<Vec<KeyRevocation>, LedgerError>;

    /// The last entry of the hash chain (`seq` 0 when empty).
    async fn chain_head(&self) -> Result<chain::ChainHead, LedgerError>;

    /// Chain entries with `seq` > `after`, in order, at most `limit` (1–10 000).
    async fn chain_entries(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<chain::ChainEntry>, LedgerError>;

    /// Checks the whole chain, then every issuance row against it; names the first bad record.
    async fn verify(&self) -> Result<chain::VerifyReport, LedgerError> {
        let mut verifier = chain::Verifier::new();
        // Read first: entries appended meanwhile are checked too, but the chain must reach it.
        let head = self.chain_head().await?;
        let mut after = 0;
        feed_entries(self, &mut after, &mut verifier).await?;
        if verifier.failed() {
            return Ok(verifier.finish());
        }
        verifier.reached(&head);
        if verifier.failed() {
            return Ok(verifier.finish());
        }
        verifier.begin_rows();
        let mut cursor: Option<String> = None;
        // Expired or not, every row: the status filter is left empty.
        let now = Utc::now();
        loop {
            let page = self
                .list(&ListFilter::default(), now, 1000, cursor.as_deref())
                .await?;
            for r in &page.items {
                verifier.issuance(r);
            }
            match page.next_cursor {
                Some(c) if !verifier.failed() => cursor = Some(c),
                _ => break,
            }
        }
        // On a live ledger, rows may reflect changes committed after the chain was read: read
        // the entries appended meanwhile (they are verified like the rest), then judge those rows.
        feed_entries(self, &mut after, &mut verifier).await?;
        Ok(verifier.finish())
    }

    /// The link of an issuance, and its redemptions, newest first.
    async fn link(
        &self,
        issuance_id: &str,
    ) -> Result<Option<(LinkRecord, Vec<Redemption>)>, LedgerError>;
}

/// Feeds the chain entries after `after` to `verifier`, page by page, until the end or the
/// first bad entry; `after` ends at the last entry read.
async fn feed_entries<L: Ledger + ?Sized>(
    ledger: &L,
    after: &mut u64,
    verifier: &mut chain::Verifier,
) -> Result<(), LedgerError> {
    loop {
        let page = ledger.chain_entries(*after, 5_000).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        *after = last.seq;
        for e in &page {
            verifier.entry(e);
        }
        if verifier.failed() {
            return Ok(());
        }
    }
}

/// A new time-ordered id: `prefix` + 26 Crockford base32 characters (48-bit milliseconds since
/// the epoch, then 80 random bits), so ids sort by issue time.
pub fn new_id(prefix: &str, now: DateTime<Utc>) -> Result<String, LedgerError> {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut random = [0u8; 10];
    getrandom::fill(&mut random)
        .map_err(|e| LedgerError::Unavailable(format!("no randomness: {e}")))?;
    let millis = u128::try_from(now.timestamp_millis().max(0)).unwrap_or(0) & ((1 << 48) - 1);
    let mut value = (millis << 80)
        | random
            .iter()
            .fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
    let mut out = [0u8; 26];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value & 31) as usize];
        value >>= 5;
    }
    let mut id = String::with_capacity(prefix.len() + 26);
    id.push_str(prefix);
    id.extend(out.iter().map(|b| char::from(*b)));
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn ids_sort_by_time_and_do_not_repeat() {
        let t = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        let a = new_id("iss_", t).unwrap();
        let b = new_id("iss_", t + chrono::Duration::milliseconds(1)).unwrap();
        assert_eq!(a.len(), 30);
        assert!(a < b);
        assert_ne!(new_id("iss_", t).unwrap(), new_id("iss_", t).unwrap());
    }
}
