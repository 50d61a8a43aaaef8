//! Backend-neutral pieces of the ledger backends: stored forms of times and digests, the
//! listing query and its cursors, counters. Each backend binds the results to its own driver.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::sqlite::LedgerStats;
use super::{
    GoneReason, IssuanceRecord, LedgerError, ListFilter, Page, PolicyRecord, SigningMode, Status,
    StoredStatus,
};

/// The largest JSON text a denial stores per field (see [`bounded_json`]).
pub(super) const MAX_DENIAL_JSON: usize = 16 * 1024;

/// The issuance columns, in the order each backend's `issuance_from_row` reads them.
pub(super) const ISSUANCE_COLUMNS: &str = "id, issued_at, principal, principal_claims, client_addr, account, container, \
     blob, resource, permissions, starts_on, expires_on, ip, protocol, version, rule, reason, signing_mode, \
     revocation, policy_id, signature_sha256, status, revoked_at, revoked_by, revoke_reason, key_oid, key_tid";

// ---------------------------------------------------------------------------------------------
// Counters.

/// Counters since the ledger was opened.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) commits: AtomicU64,
    pub(super) appended: AtomicU64,
    pub(super) append_failures: AtomicU64,
    pub(super) failed_commits: AtomicU64,
    pub(super) largest_group: AtomicU64,
    pub(super) reopens: AtomicU64,
    pub(super) denials_written: AtomicU64,
    pub(super) denials_dropped: AtomicU64,
    pub(super) denials_failed: AtomicU64,
}

impl Counters {
    pub(super) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> LedgerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LedgerStats {
            commits: get(&self.commits),
            appended: get(&self.appended),
            append_failures: get(&self.append_failures),
            failed_commits: get(&self.failed_commits),
            largest_group: get(&self.largest_group),
            reopens: get(&self.reopens),
            denials_written: get(&self.denials_written),
            denials_dropped: get(&self.denials_dropped),
            denials_failed: get(&self.denials_failed),
        }
    }
}

/// Lets a repeated warning through at most once per interval.
pub(super) struct RateLimit {
    next_ms: AtomicI64,
    interval_ms: i64,
}

impl RateLimit {
    pub(super) fn new(interval: Duration) -> Self {
        Self {
            next_ms: AtomicI64::new(0),
            interval_ms: i64::try_from(interval.as_millis()).unwrap_or(i64::MAX),
        }
    }

    pub(super) fn allow(&self) -> bool {
        let now = Utc::now().timestamp_millis();
        let next = self.next_ms.load(Ordering::Relaxed);
        now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now.saturating_add(self.interval_ms),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

// ---------------------------------------------------------------------------------------------
// Stored forms.

/// A time as stored: nanoseconds since the epoch (UTC), so integer order is time order. `None`
/// outside what an `i64` holds (before 1677-09-21 or after 2262-04-11).
pub(super) fn ns(t: DateTime<Utc>) -> Option<i64> {
    t.timestamp_nanos_opt()
}

/// A stored time. Every `i64` is a valid one.
pub(super) fn from_ns(value: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(value)
}

/// A time that must be stored even when out of range (the ledger's own bookkeeping): the
/// nearest representable one.
pub(super) fn saturating_ns(t: DateTime<Utc>) -> i64 {
    ns(t).unwrap_or(if t.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// A record's time as stored, or why it cannot be.
pub(super) fn record_ns(what: &str, t: DateTime<Utc>) -> Result<i64, String> {
    ns(t).ok_or_else(|| format!("{what} {t} is outside the times the ledger can store"))
}

/// A caller's time as stored, or why it cannot be.
pub(super) fn time(what: &str, t: DateTime<Utc>) -> Result<i64, LedgerError> {
    record_ns(what, t).map_err(LedgerError::Unavailable)
}

/// Where a time falls relative to the times the ledger can store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Bound {
    /// Earlier than every storable time.
    Below,
    At(i64),
    /// Later than every storable time.
    Above,
}

pub(super) fn bound(t: DateTime<Utc>) -> Bound {
    match ns(t) {
        Some(value) => Bound::At(value),
        None if t.timestamp() < 0 => Bound::Below,
        None => Bound::Above,
    }
}

/// A SHA-256 digest as stored: 32 bytes from 64 hex digits (either case).
pub(super) fn sha256_from_hex(text: &str) -> Option<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let text = text.as_bytes();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// A caller's digest as stored, or why it cannot be.
pub(super) fn digest(what: &str, hex: &str) -> Result<[u8; 32], LedgerError> {
    sha256_from_hex(hex)
        .ok_or_else(|| LedgerError::Unavailable(format!("{what} is not a SHA-256 in hex")))
}

/// Lowercase hex of stored bytes.
pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// A migration's checksum: lowercase hex SHA-256 of its text without carriage returns.
pub(super) fn checksum(sql: &str) -> String {
    hex_lower(&Sha256::digest(sql.replace('\r', "").as_bytes()))
}

pub(super) fn signing_mode_str(mode: SigningMode) -> &'static str {
    match mode {
        SigningMode::AccountKey => "account_key",
        SigningMode::UserDelegation => "user_delegation",
    }
}

pub(super) fn stored_status_str(status: StoredStatus) -> &'static str {
    match status {
        StoredStatus::Active => "active",
        StoredStatus::Revoked => "revoked",
    }
}

/// JSON text of at most about [`MAX_DENIAL_JSON`] bytes: a larger value (a denial is built from
/// what an unauthenticated caller sent) is replaced by a stub of the same JSON type.
pub(super) fn bounded_json(value: &serde_json::Value) -> String {
    let text = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    if text.len() <= MAX_DENIAL_JSON {
        text
    } else if value.is_array() {
        serde_json::json!([format!("(truncated: {} bytes)", text.len())]).to_string()
    } else {
        serde_json::json!({ "truncated": true, "bytes": text.len() }).to_string()
    }
}

/// A record's fields in their stored form, where that takes a conversion that can fail.
#[derive(Debug)]
pub(super) struct Stored {
    pub(super) claims: Option<String>,
    pub(super) issued_at: i64,
    pub(super) starts_on: i64,
    pub(super) expires_on: i64,
    pub(super) revoked_at: Option<i64>,
    pub(super) signature: [u8; 32],
}

impl Stored {
    pub(super) fn new(r: &IssuanceRecord) -> Result<Self, String> {
        Ok(Self {
            claims: r
                .principal_claims
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| format!("principal_claims: {e}"))?,
            issued_at: record_ns("issued_at", r.issued_at)?,
            starts_on: record_ns("starts_on", r.starts_on)?,
            expires_on: record_ns("expires_on", r.expires_on)?,
            revoked_at: r
                .revoked_at
                .map(|t| record_ns("revoked_at", t))
                .transpose()?,
            signature: sha256_from_hex(&r.signature_sha256)
                .ok_or_else(|| "signature_sha256 is not 64 hex digits".to_string())?,
        })
    }
}

/// A new stored access policy's record: its id is the owned prefix, the generation and the
/// permissions.
pub(super) fn new_policy(
    account: &str,
    container: &str,
    generation: i64,
    permissions: &str,
    at: DateTime<Utc>,
) -> PolicyRecord {
    PolicyRecord {
        account: account.to_owned(),
        container: container.to_owned(),
        policy_id: format!("{}{generation}-{permissions}", crate::broker::OWNED_PREFIX),
        generation: u64::try_from(generation).unwrap_or(0),
        permissions: permissions.to_owned(),
        created_at: at,
        removed_at: None,
    }
}

/// Why a live issuance's link cannot be redeemed at `at` (stored times), if it cannot.
pub(super) fn link_gone(
    at: i64,
    expires_at: i64,
    max_uses: Option<i64>,
    uses: i64,
) -> Option<GoneReason> {
    if at >= expires_at {
        return Some(GoneReason::Expired);
    }
    if max_uses.is_some_and(|m| uses >= m) {
        return Some(GoneReason::UsedUp);
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Listing.

/// A page of a listing fetched with one row more than `limit`: that row, when there, means a
/// next page, which starts after the last row kept.
pub(super) fn page(mut items: Vec<IssuanceRecord>, limit: usize) -> Page {
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(encode_cursor)
    } else {
        None
    };
    Page { items, next_cursor }
}

/// The position after which the next page starts: the last row's `(issued_at, id)`, as
/// `v2|<issued_at in ns>|<id>` in unpadded base64url. (A listed record's time came from the
/// database, so it is in range.)
pub(super) fn encode_cursor(record: &IssuanceRecord) -> String {
    let at = saturating_ns(record.issued_at);
    URL_SAFE_NO_PAD.encode(format!("v2|{at}|{}", record.id))
}

pub(super) fn decode_cursor(cursor: &str) -> Result<(i64, String), LedgerError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| LedgerError::InvalidCursor)?;
    let text = String::from_utf8(bytes).map_err(|_| LedgerError::InvalidCursor)?;
    let rest = text.strip_prefix("v2|").ok_or(LedgerError::InvalidCursor)?;
    let (at, id) = rest.split_once('|').ok_or(LedgerError::InvalidCursor)?;
    // Digits only (an optional minus for times before 1970): the form `encode_cursor` writes.
    let digits = at.strip_prefix('-').unwrap_or(at);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || id.is_empty() {
        return Err(LedgerError::InvalidCursor);
    }
    let at = at.parse::<i64>().map_err(|_| LedgerError::InvalidCursor)?;
    Ok((at, id.to_owned()))
}

/// A listing parameter; each backend converts it to its driver's value type.
#[derive(Debug)]
pub(super) enum Param {
    Text(String),
    Int(i64),
}

/// How a backend spells what the listing query varies on.
pub(super) struct Dialect {
    /// Put before a parameter's 1-based number: `?` (`?1`) or `$` (`$1`).
    pub(super) placeholder: char,
    /// A condition that always holds (`WHERE <this>`).
    pub(super) always_true: &'static str,
    /// A condition that never holds.
    pub(super) always_false: &'static str,
    /// Whether the row limit is a parameter (the last one) rather than a literal.
    pub(super) bind_limit: bool,
}

/// A listing as SQL: the text and its positional parameters.
pub(super) fn list_query(
    dialect: &Dialect,
    filter: &ListFilter,
    now: DateTime<Utc>,
    fetch: usize,
    after: Option<(i64, String)>,
) -> (String, Vec<Param>) {
    // A bound outside the storable range makes its condition always true or always false.
    let never = format!(" AND {}", dialect.always_false);
    let never = never.as_str();
    let mut sql = format!(
        "SELECT {ISSUANCE_COLUMNS} FROM issuances WHERE {}",
        dialect.always_true
    );
    let mut params: Vec<Param> = Vec::new();
    // Appends `clause`, every `#` in it standing for `value`.
    let mut push = |sql: &mut String, clause: &str, value: Param| {
        params.push(value);
        let placeholder = format!("{}{}", dialect.placeholder, params.len());
        sql.push_str(&clause.replace('#', &placeholder));
    };
    if let Some(principal) = &filter.principal {
        push(
            &mut sql,
            " AND principal = #",
            Param::Text(principal.clone()),
        );
    }
    if let Some(account) = &filter.account {
        push(&mut sql, " AND account = #", Param::Text(account.clone()));
    }
    if let Some(container) = &filter.container {
        push(
            &mut sql,
            " AND container = #",
            Param::Text(container.clone()),
        );
    }
    match filter.status {
        None => {}
        Some(Status::Active) => {
            sql.push_str(" AND status = 'active'");
            match bound(now) {
                Bound::Below => {}
                Bound::At(now) => push(&mut sql, " AND expires_on > #", Param::Int(now)),
                Bound::Above => sql.push_str(never),
            }
        }
        Some(Status::Expired) => {
            sql.push_str(" AND status = 'active'");
            match bound(now) {
                Bound::Below => sql.push_str(never),
                Bound::At(now) => push(&mut sql, " AND expires_on <= #", Param::Int(now)),
                Bound::Above => {}
            }
        }
        Some(Status::Revoked) => sql.push_str(" AND status = 'revoked'"),
    }
    if let Some(since) = filter.since {
        match bound(since) {
            Bound::Below => {}
            Bound::At(since) => push(&mut sql, " AND issued_at >= #", Param::Int(since)),
            Bound::Above => sql.push_str(never),
        }
    }
    if let Some(until) = filter.until {
        match bound(until) {
            Bound::Below => sql.push_str(never),
            Bound::At(until) => push(&mut sql, " AND issued_at < #", Param::Int(until)),
            Bound::Above => {}
        }
    }
    if let Some((at, id)) = after {
        // A row value: one index range.
        push(&mut sql, " AND (issued_at, id) < (#", Param::Int(at));
        push(&mut sql, ", #)", Param::Text(id));
    }
    if dialect.bind_limit {
        push(
            &mut sql,
            " ORDER BY issued_at DESC, id DESC LIMIT #",
            Param::Int(i64::try_from(fetch).unwrap_or(i64::MAX)),
        );
    } else {
        sql.push_str(" ORDER BY issued_at DESC, id DESC LIMIT ");
        sql.push_str(&fetch.to_string());
    }
    (sql, params)
}
