//! Revocation, stored policies and broker links for the SQLite ledger.
//!
//! These writes are rare next to issuances, so they do not go through the group-commit writer:
//! each runs as one `BEGIN IMMEDIATE` transaction on a connection of its own (fsynced, like
//! every ledger commit), and SQLite's busy timeout orders it with the writer. A memory ledger
//! (tests only) cannot open a second connection and answers `Unavailable`.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::{
    ISSUANCE_COLUMNS, Role, chain_append, configure, from_ns, hex_lower, issuance_from_row,
    sha256_from_hex, unavailable,
};
use crate::ledger::chain::Event;
use crate::ledger::query::{digest, link_gone, new_policy, time};
use crate::ledger::{
    GoneReason, IssuanceRecord, KeyRevocation, LedgerError, LinkRecord, LivePolicy, PolicyRecord,
    RedeemOutcome, Redemption, StoredStatus,
};

/// The connection for these operations, opened on first use.
pub(super) struct Admin {
    path: Option<PathBuf>,
    /// An async lock, taken before going to the blocking pool: these operations run one at a
    /// time, and those waiting for their turn hold no thread (a burst of link redemptions or
    /// stored-policy mints once parked a blocking thread each, and RSS stepped up with them).
    conn: Arc<tokio::sync::Mutex<Option<Connection>>>,
}

fn db(e: rusqlite::Error) -> LedgerError {
    unavailable("ledger write failed", e)
}

impl Admin {
    pub(super) fn new(path: Option<PathBuf>) -> Self {
        Self {
            path,
            conn: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    /// Runs `f` in one immediate transaction on this connection, off the async runtime. Any
    /// error rolls the whole transaction back and drops the connection (reopened next time).
    pub(super) async fn write<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<R, LedgerError> + Send + 'static,
    ) -> Result<R, LedgerError> {
        let me = self.clone();
        let mut guard = self.conn.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || {
            if guard.is_none() {
                let path = me.path.as_ref().ok_or_else(|| {
                    LedgerError::Unavailable("a memory ledger keeps no revocations".into())
                })?;
                let conn = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(|e| unavailable("cannot open the ledger", e))?;
                configure(&conn, Role::Admin)?;
                *guard = Some(conn);
            }
            let result = (|| {
                let conn = guard
                    .as_mut()
                    .ok_or_else(|| LedgerError::Unavailable("no ledger connection".into()))?;
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(db)?;
                let out = f(&tx)?;
                tx.commit().map_err(db)?;
                Ok(out)
            })();
            if result.is_err() {
                *guard = None;
            }
            result
        })
        .await
        .map_err(|e| LedgerError::Unavailable(format!("ledger task failed: {e}")))?
    }
}

fn get(tx: &rusqlite::Transaction<'_>, id: &str) -> Result<Option<IssuanceRecord>, LedgerError> {
    tx.query_row(
        &format!("SELECT {ISSUANCE_COLUMNS} FROM issuances WHERE id = ?1"),
        [id],
        issuance_from_row,
    )
    .optional()
    .map_err(db)
}

pub(super) fn revoke(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    by: &str,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<Option<IssuanceRecord>, LedgerError> {
    let changed = tx
        .execute(
            "UPDATE issuances SET status = 'revoked', revoked_at = ?2, revoked_by = ?3, revoke_reason = ?4 WHERE id = ?1 AND status = 'active'",
            params![id, time("revoked_at", at)?, by, reason],
        )
        .map_err(db)?;
    if changed > 0 {
        chain_append(
            tx,
            &[Event::Revocation {
                issuance_id: id,
                at,
                by,
                reason,
            }],
        )
        .map_err(db)?;
    }
    get(tx, id)
}

pub(super) fn revoke_policy(
    tx: &rusqlite::Transaction<'_>,
    account: &str,
    container: &str,
    policy_id: &str,
    by: &str,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<Vec<IssuanceRecord>, LedgerError> {
    let at_ns = time("revoked_at", at)?;
    let ids: Vec<String> = {
        let mut stmt = tx
            .prepare("SELECT id FROM issuances WHERE account = ?1 AND container = ?2 AND policy_id = ?3 AND status = 'active' ORDER BY seq")
            .map_err(db)?;
        let rows = stmt
            .query_map(params![account, container, policy_id], |r| r.get(0))
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)?
    };
    tx.execute(
        "UPDATE issuances SET status = 'revoked', revoked_at = ?4, revoked_by = ?5, revoke_reason = ?6 \
         WHERE account = ?1 AND container = ?2 AND policy_id = ?3 AND status = 'active'",
        params![account, container, policy_id, at_ns, by, reason],
    )
    .map_err(db)?;
    let removed = tx
        .execute(
            "UPDATE policies SET removed_at = ?4 WHERE account = ?1 AND container = ?2 AND policy_id = ?3 AND removed_at IS NULL",
            params![account, container, policy_id, at_ns],
        )
        .map_err(db)?;
    if removed > 0 || !ids.is_empty() {
        chain_append(
            tx,
            &[Event::PolicyRemoved {
                account,
                container,
                policy_id,
                at,
                by: Some(by),
                reason: Some(reason),
                revoked: &ids,
            }],
        )
        .map_err(db)?;
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(r) = get(tx, &id)? {
            out.push(r);
        }
    }
    Ok(out)
}

pub(super) fn create_policy(
    tx: &rusqlite::Transaction<'_>,
    account: &str,
    container: &str,
    permissions: &str,
    at: DateTime<Utc>,
) -> Result<PolicyRecord, LedgerError> {
    tx.execute(
        "INSERT INTO policy_generations (account, container, last) VALUES (?1, ?2, 1) \
         ON CONFLICT (account, container) DO UPDATE SET last = last + 1",
        params![account, container],
    )
    .map_err(db)?;
    let generation: i64 = tx
        .query_row(
            "SELECT last FROM policy_generations WHERE account = ?1 AND container = ?2",
            params![account, container],
            |r| r.get(0),
        )
        .map_err(db)?;
    let record = new_policy(account, container, generation, permissions, at);
    tx.execute(
        "INSERT INTO policies (account, container, policy_id, generation, permissions, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![account, container, record.policy_id, generation, permissions, time("created_at", at)?],
    )
    .map_err(db)?;
    chain_append(tx, &[Event::PolicyCreated(&record)]).map_err(db)?;
    Ok(record)
}

pub(super) fn live_policies(
    tx: &rusqlite::Transaction<'_>,
    account: &str,
    container: &str,
) -> Result<Vec<LivePolicy>, LedgerError> {
    let mut stmt = tx
        .prepare(
            "SELECT p.policy_id, p.generation, p.permissions, p.created_at, \
                    (SELECT max(i.expires_on) FROM issuances i \
                      WHERE i.account = p.account AND i.container = p.container AND i.policy_id = p.policy_id \
                        AND i.status = 'active') \
             FROM policies p WHERE p.account = ?1 AND p.container = ?2 AND p.removed_at IS NULL ORDER BY p.generation",
        )
        .map_err(db)?;
    let rows = stmt
        .query_map(params![account, container], |r| {
            Ok((
                PolicyRecord {
                    account: account.to_owned(),
                    container: container.to_owned(),
                    policy_id: r.get(0)?,
                    generation: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    permissions: r.get(2)?,
                    created_at: from_ns(r.get(3)?),
                    removed_at: None,
                },
                r.get::<_, Option<i64>>(4)?.map(from_ns),
            ))
        })
        .map_err(db)?;
    rows.collect::<Result<_, _>>().map_err(db)
}

pub(super) fn remove_policy(
    tx: &rusqlite::Transaction<'_>,
    account: &str,
    container: &str,
    policy_id: &str,
    at: DateTime<Utc>,
) -> Result<(), LedgerError> {
    let removed = tx
        .execute(
            "UPDATE policies SET removed_at = ?4 WHERE account = ?1 AND container = ?2 AND policy_id = ?3 AND removed_at IS NULL",
            params![account, container, policy_id, time("removed_at", at)?],
        )
        .map_err(db)?;
    if removed > 0 {
        chain_append(
            tx,
            &[Event::PolicyRemoved {
                account,
                container,
                policy_id,
                at,
                by: None,
                reason: None,
                revoked: &[],
            }],
        )
        .map_err(db)?;
    }
    Ok(())
}

pub(super) fn append_link(
    tx: &rusqlite::Transaction<'_>,
    record: &IssuanceRecord,
    insert_issuance: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<(), LedgerError>,
    link: &LinkRecord,
) -> Result<(), LedgerError> {
    insert_issuance(tx)?;
    let mut events = Event::of_append(record);
    events.push(Event::Link(link));
    chain_append(tx, &events).map_err(db)?;
    tx.execute(
        "INSERT INTO links (issuance_id, code_sha256, expires_at, max_uses, uses) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            link.issuance_id,
            digest("code_sha256", &link.code_sha256)?.as_slice(),
            time("expires_at", link.expires_at)?,
            link.max_uses,
            link.uses
        ],
    )
    .map_err(db)?;
    Ok(())
}

pub(super) fn redeem(
    tx: &rusqlite::Transaction<'_>,
    code_sha256: &str,
    mut redemption: Redemption,
) -> Result<RedeemOutcome, LedgerError> {
    let Some(code) = sha256_from_hex(code_sha256) else {
        return Ok(RedeemOutcome::Gone(GoneReason::Unknown));
    };
    let found: Option<(String, i64, Option<u32>, u32)> = tx
        .query_row(
            "SELECT issuance_id, expires_at, max_uses, uses FROM links WHERE code_sha256 = ?1",
            [code.as_slice()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()
        .map_err(db)?;
    let Some((issuance_id, expires_at, max_uses, uses)) = found else {
        return Ok(RedeemOutcome::Gone(GoneReason::Unknown));
    };
    let Some(issuance) = get(tx, &issuance_id)? else {
        return Ok(RedeemOutcome::Gone(GoneReason::Unknown));
    };
    if issuance.status == StoredStatus::Revoked {
        return Ok(RedeemOutcome::Gone(GoneReason::Revoked));
    }
    let at = time("at", redemption.at)?;
    if let Some(reason) = link_gone(at, expires_at, max_uses.map(i64::from), i64::from(uses)) {
        return Ok(RedeemOutcome::Gone(reason));
    }
    tx.execute(
        "UPDATE links SET uses = uses + 1 WHERE issuance_id = ?1",
        [&issuance_id],
    )
    .map_err(db)?;
    redemption.issuance_id = issuance_id;
    tx.execute(
        "INSERT INTO redemptions (id, issuance_id, at, client_addr, user_agent, signature_sha256, expires_on) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            redemption.id,
            redemption.issuance_id,
            at,
            redemption.client_addr,
            redemption.user_agent,
            digest("signature_sha256", &redemption.signature_sha256)?.as_slice(),
            time("expires_on", redemption.expires_on)?
        ],
    )
    .map_err(db)?;
    chain_append(tx, &[Event::Redemption(&redemption)]).map_err(db)?;
    Ok(RedeemOutcome::Redeemed(Box::new(issuance)))
}

pub(super) fn link(
    tx: &rusqlite::Transaction<'_>,
    issuance_id: &str,
) -> Result<Option<(LinkRecord, Vec<Redemption>)>, LedgerError> {
    let found = tx
        .query_row(
            "SELECT code_sha256, expires_at, max_uses, uses FROM links WHERE issuance_id = ?1",
            [issuance_id],
            |r| {
                Ok(LinkRecord {
                    issuance_id: issuance_id.to_owned(),
                    code_sha256: hex_lower(&r.get::<_, Vec<u8>>(0)?),
                    expires_at: from_ns(r.get(1)?),
                    max_uses: r.get(2)?,
                    uses: r.get(3)?,
                })
            },
        )
        .optional()
        .map_err(db)?;
    let Some(link) = found else { return Ok(None) };
    let mut stmt = tx
        .prepare("SELECT id, at, client_addr, user_agent, signature_sha256, expires_on FROM redemptions WHERE issuance_id = ?1 ORDER BY seq DESC")
        .map_err(db)?;
    let rows = stmt
        .query_map([issuance_id], |r| {
            Ok(Redemption {
                id: r.get(0)?,
                issuance_id: issuance_id.to_owned(),
                at: from_ns(r.get(1)?),
                client_addr: r.get(2)?,
                user_agent: r.get(3)?,
                signature_sha256: hex_lower(&r.get::<_, Vec<u8>>(4)?),
                expires_on: from_ns(r.get(5)?),
            })
        })
        .map_err(db)?;
    let redemptions = rows.collect::<Result<_, _>>().map_err(db)?;
    Ok(Some((link, redemptions)))
}

pub(super) fn revoke_delegation_keys(
    tx: &rusqlite::Transaction<'_>,
    mut revocation: KeyRevocation,
) -> Result<(KeyRevocation, Vec<IssuanceRecord>), LedgerError> {
    let at_ns = time("revoked_at", revocation.at)?;
    let ids: Vec<String> = {
        let mut stmt = tx
            .prepare("SELECT id FROM issuances WHERE account = ?1 AND signing_mode = 'user_delegation' AND status = 'active' AND issued_at <= ?2 ORDER BY seq")
            .map_err(db)?;
        let rows = stmt
            .query_map(params![revocation.account, at_ns], |r| r.get(0))
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)?
    };
    tx.execute(
        "UPDATE issuances SET status = 'revoked', revoked_at = ?2, revoked_by = ?3, revoke_reason = ?4 \
         WHERE account = ?1 AND signing_mode = 'user_delegation' AND status = 'active' AND issued_at <= ?2",
        params![
            revocation.account,
            at_ns,
            revocation.revoked_by,
            revocation.reason
        ],
    )
    .map_err(db)?;
    revocation.revoked_issuances = u64::try_from(ids.len()).unwrap_or(u64::MAX);
    tx.execute(
        "INSERT INTO key_revocations (id, at, account, revoked_by, reason, revoked_issuances) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            revocation.id,
            at_ns,
            revocation.account,
            revocation.revoked_by,
            revocation.reason,
            i64::try_from(ids.len()).unwrap_or(i64::MAX)
        ],
    )
    .map_err(db)?;
    chain_append(
        tx,
        &[Event::KeyRevocation {
            stop: &revocation,
            revoked: &ids,
        }],
    )
    .map_err(db)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(r) = get(tx, &id)? {
            out.push(r);
        }
    }
    Ok((revocation, out))
}

pub(super) fn key_revocations(
    tx: &rusqlite::Connection,
    account: &str,
) -> Result<Vec<KeyRevocation>, LedgerError> {
    let mut stmt = tx
        .prepare("SELECT id, at, account, revoked_by, reason, revoked_issuances FROM key_revocations WHERE account = ?1 ORDER BY seq DESC")
        .map_err(db)?;
    let rows = stmt
        .query_map([account], |r| {
            Ok(KeyRevocation {
                id: r.get(0)?,
                at: from_ns(r.get(1)?),
                account: r.get(2)?,
                revoked_by: r.get(3)?,
                reason: r.get(4)?,
                revoked_issuances: u64::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
            })
        })
        .map_err(db)?;
    rows.collect::<Result<_, _>>().map_err(db)
}
