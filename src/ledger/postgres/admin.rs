//! Revocation, stored policies, broker links and emergency stops for the PostgreSQL ledger.
//!
//! These writes are rare next to issuances, so they do not go through the group-commit writer:
//! each is one transaction on a pooled connection that locks the chain head first, appends its
//! entries and commits (durably: `synchronous_commit` is on).

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{
    ChainColumns, Db, Fail, HeadValues, ISSUANCE_COLUMNS, IssuanceColumns, Stored, WRITE_ISSUANCES,
    digest, from_ns, get_issuance, hex_lower, issuance_from_row, issuance_from_row_at, lock_head,
    sha256_from_hex, time, u32_column, with_client, write_chain,
};
use crate::ledger::chain::{ChainEntry, ChainHead, Event};
use crate::ledger::query::{link_gone, new_policy};
use crate::ledger::{
    GoneReason, IssuanceRecord, KeyRevocation, LedgerError, LinkRecord, LivePolicy, PolicyRecord,
    RedeemOutcome, Redemption, StoredStatus,
};

const WRITE_FAILED: &str = "ledger write failed";

/// The entries for `events` after `head`, and the head after them.
fn entries(mut head: ChainHead, events: &[Event<'_>]) -> (Vec<ChainEntry>, ChainHead) {
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        let entry = head.next(event);
        head.advance(&entry);
        out.push(entry);
    }
    (out, head)
}

/// Appends `events` after the locked `head`.
async fn append_events(
    tx: &Transaction<'_>,
    head: ChainHead,
    events: &[Event<'_>],
) -> Result<(), Fail> {
    let (entries, head) = entries(head, events);
    write_chain(tx, &entries, &head).await
}

/// Runs `$body` (a block using `$tx`, the transaction, and `$head`, the chain head it locked
/// first) on a pooled connection, then commits; an early return or error rolls back.
macro_rules! locked_write {
    ($db:expr, |$tx:ident, $head:ident| $body:block) => {
        with_client!($db, WRITE_FAILED, |client| async move {
            let $tx = client.transaction().await?;
            let $head = lock_head(&$tx).await?;
            let value = $body;
            $tx.commit().await?;
            Ok::<_, Fail>(value)
        })
    };
}

/// The `UPDATE` that revokes the active issuances `matching` (a condition on `$1` to `$keys`),
/// with the time, revoker and reason as the next three parameters, returning `returning`.
fn revoke_sql(matching: &str, keys: usize, returning: &str) -> String {
    format!(
        "UPDATE issuances SET status = 'revoked', revoked_at = ${}, revoked_by = ${}, revoke_reason = ${} \
         WHERE {matching} AND status = 'active' RETURNING {returning}",
        keys + 1,
        keys + 2,
        keys + 3,
    )
}

/// Revokes the active issuances `matching` (see [`revoke_sql`]; `params` are its keys, then the
/// time, revoker and reason), returned in `seq` (commit) order.
async fn revoke_matching(
    tx: &Transaction<'_>,
    matching: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<IssuanceRecord>, Fail> {
    let sql = revoke_sql(
        matching,
        params.len() - 3,
        &format!("seq, {ISSUANCE_COLUMNS}"),
    );
    let stmt = tx.prepare_cached(&sql).await?;
    let rows = tx.query(&stmt, params).await?;
    in_seq_order(&rows)
}

/// Marks the live stored access policy `(account, container, policy_id)` removed at `at`
/// (`at_ns` stored), first revoking its active issuances when `revoker` (by whom, why) is given,
/// and appends the removal after the locked `head` when that changed anything. Returns the
/// issuances revoked, in `seq` order.
async fn remove_live_policy(
    tx: &Transaction<'_>,
    head: ChainHead,
    (account, container, policy_id): (&str, &str, &str),
    at: DateTime<Utc>,
    at_ns: i64,
    revoker: Option<(&str, &str)>,
) -> Result<Vec<IssuanceRecord>, Fail> {
    let revoked = match revoker {
        Some((by, reason)) => {
            revoke_matching(
                tx,
                "account = $1 AND container = $2 AND policy_id = $3",
                &[&account, &container, &policy_id, &at_ns, &by, &reason],
            )
            .await?
        }
        None => Vec::new(),
    };
    let stmt = tx
        .prepare_cached(
            "UPDATE policies SET removed_at = $4 \
             WHERE account = $1 AND container = $2 AND policy_id = $3 AND removed_at IS NULL",
        )
        .await?;
    let removed = tx
        .execute(&stmt, &[&account, &container, &policy_id, &at_ns])
        .await?;
    if removed > 0 || !revoked.is_empty() {
        let ids: Vec<String> = revoked.iter().map(|r| r.id.clone()).collect();
        append_events(
            tx,
            head,
            &[Event::PolicyRemoved {
                account,
                container,
                policy_id,
                at,
                by: revoker.map(|(by, _)| by),
                reason: revoker.map(|(_, reason)| reason),
                revoked: &ids,
            }],
        )
        .await?;
    }
    Ok(revoked)
}

/// The chain entry for `event` after `head`, the head after it and its `seq` as stored.
fn next_entry(head: ChainHead, event: &Event<'_>) -> (Vec<ChainEntry>, ChainHead, i64) {
    let (entries, head) = entries(head, std::slice::from_ref(event));
    let seq = i64::try_from(head.seq).unwrap_or(i64::MAX);
    (entries, head, seq)
}

pub(super) async fn revoke(
    db: &Db,
    id: &str,
    by: &str,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<Option<IssuanceRecord>, LedgerError> {
    let at_ns = time("revoked_at", at)?;
    locked_write!(db, |tx, head| {
        let stmt = tx
            .prepare_cached(&revoke_sql("id = $1", 1, ISSUANCE_COLUMNS))
            .await?;
        let changed = tx.query_opt(&stmt, &[&id, &at_ns, &by, &reason]).await?;
        match changed {
            Some(row) => {
                append_events(
                    &tx,
                    head,
                    &[Event::Revocation {
                        issuance_id: id,
                        at,
                        by,
                        reason,
                    }],
                )
                .await?;
                Some(issuance_from_row(&row)?)
            }
            // Unknown or already revoked: returned as stored, nothing written.
            None => get_issuance(&tx, id).await?,
        }
    })
}

pub(super) async fn revoke_policy(
    db: &Db,
    account: &str,
    container: &str,
    policy_id: &str,
    by: &str,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<Vec<IssuanceRecord>, LedgerError> {
    let at_ns = time("revoked_at", at)?;
    locked_write!(db, |tx, head| {
        let policy = (account, container, policy_id);
        remove_live_policy(&tx, head, policy, at, at_ns, Some((by, reason))).await?
    })
}

/// Issuances from rows of `RETURNING seq, <ISSUANCE_COLUMNS>`, in `seq` (commit) order.
fn in_seq_order(rows: &[Row]) -> Result<Vec<IssuanceRecord>, Fail> {
    let mut keyed = Vec::with_capacity(rows.len());
    for row in rows {
        let seq: i64 = row.try_get(0)?;
        keyed.push((seq, issuance_from_row_at(row, 1)?));
    }
    keyed.sort_by_key(|(seq, _)| *seq);
    Ok(keyed.into_iter().map(|(_, r)| r).collect())
}

pub(super) async fn create_policy(
    db: &Db,
    account: &str,
    container: &str,
    permissions: &str,
    at: DateTime<Utc>,
) -> Result<PolicyRecord, LedgerError> {
    let at_ns = time("created_at", at)?;
    locked_write!(db, |tx, head| {
        let stmt = tx
            .prepare_cached(
                "INSERT INTO policy_generations (account, container, last) VALUES ($1, $2, 1) \
                 ON CONFLICT (account, container) DO UPDATE SET last = policy_generations.last + 1 \
                 RETURNING last",
            )
            .await?;
        let generation: i64 = tx
            .query_one(&stmt, &[&account, &container])
            .await?
            .try_get(0)?;
        let record = new_policy(account, container, generation, permissions, at);
        let stmt = tx
            .prepare_cached(
                "INSERT INTO policies (account, container, policy_id, generation, permissions, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .await?;
        tx.execute(
            &stmt,
            &[
                &account,
                &container,
                &record.policy_id,
                &generation,
                &permissions,
                &at_ns,
            ],
        )
        .await?;
        append_events(&tx, head, &[Event::PolicyCreated(&record)]).await?;
        record
    })
}

pub(super) async fn live_policies(
    db: &Db,
    account: &str,
    container: &str,
) -> Result<Vec<LivePolicy>, LedgerError> {
    with_client!(db, "ledger read failed", |client| async move {
        let stmt = client
            .prepare_cached(
                "SELECT p.policy_id, p.generation, p.permissions, p.created_at, \
                        (SELECT max(i.expires_on) FROM issuances i \
                          WHERE i.account = p.account AND i.container = p.container \
                            AND i.policy_id = p.policy_id AND i.status = 'active') \
                 FROM policies p WHERE p.account = $1 AND p.container = $2 AND p.removed_at IS NULL \
                 ORDER BY p.generation",
            )
            .await?;
        let rows = client.query(&stmt, &[&account, &container]).await?;
        rows.iter()
            .map(|r| {
                Ok((
                    PolicyRecord {
                        account: account.to_owned(),
                        container: container.to_owned(),
                        policy_id: r.try_get(0)?,
                        generation: u64::try_from(r.try_get::<_, i64>(1)?).unwrap_or(0),
                        permissions: r.try_get(2)?,
                        created_at: from_ns(r.try_get(3)?),
                        removed_at: None,
                    },
                    r.try_get::<_, Option<i64>>(4)?.map(from_ns),
                ))
            })
            .collect::<Result<Vec<_>, Fail>>()
    })
}

pub(super) async fn remove_policy(
    db: &Db,
    account: &str,
    container: &str,
    policy_id: &str,
    at: DateTime<Utc>,
) -> Result<(), LedgerError> {
    let at_ns = time("removed_at", at)?;
    locked_write!(db, |tx, head| {
        let policy = (account, container, policy_id);
        remove_live_policy(&tx, head, policy, at, at_ns, None).await?;
    })
}

pub(super) async fn append_link(
    db: &Db,
    record: &IssuanceRecord,
    link: &LinkRecord,
) -> Result<(), LedgerError> {
    let stored = Stored::of(record)
        .map_err(|e| LedgerError::Unavailable(format!("issuance {} not stored: {e}", record.id)))?;
    let code = digest("code_sha256", &link.code_sha256)?;
    let expires_at = time("expires_at", link.expires_at)?;
    let max_uses = link.max_uses.map(i64::from);
    let uses = i64::from(link.uses);
    locked_write!(db, |tx, head| {
        let mut events = Event::of_append(record);
        events.push(Event::Link(link));
        let (entries, head) = entries(head, &events);
        let mut columns = IssuanceColumns::default();
        columns.push(entries.first().map_or(0, |e| e.seq), record, &stored);
        let chain = ChainColumns::of(&entries);
        let head = HeadValues::of(&head);
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = columns.params().to_vec();
        params.extend(chain.params());
        params.push(&head.seq);
        params.push(&head.hash);
        let stmt = tx.prepare_cached(WRITE_ISSUANCES).await?;
        tx.execute(&stmt, &params).await?;
        let stmt = tx
            .prepare_cached(
                "INSERT INTO links (issuance_id, code_sha256, expires_at, max_uses, uses) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .await?;
        tx.execute(
            &stmt,
            &[&link.issuance_id, &&code[..], &expires_at, &max_uses, &uses],
        )
        .await?;
    })
}

pub(super) async fn redeem(
    db: &Db,
    code_sha256: &str,
    mut redemption: Redemption,
) -> Result<RedeemOutcome, LedgerError> {
    let Some(code) = sha256_from_hex(code_sha256) else {
        return Ok(RedeemOutcome::Gone(GoneReason::Unknown));
    };
    let at = time("at", redemption.at)?;
    let signature = digest("signature_sha256", &redemption.signature_sha256)?;
    let expires_on = time("expires_on", redemption.expires_on)?;
    locked_write!(db, |tx, head| {
        let stmt = tx
            .prepare_cached(
                "SELECT issuance_id, expires_at, max_uses, uses FROM links WHERE code_sha256 = $1",
            )
            .await?;
        let Some(row) = tx.query_opt(&stmt, &[&&code[..]]).await? else {
            return Ok(RedeemOutcome::Gone(GoneReason::Unknown));
        };
        let issuance_id: String = row.try_get(0)?;
        let expires_at: i64 = row.try_get(1)?;
        let max_uses: Option<i64> = row.try_get(2)?;
        let uses: i64 = row.try_get(3)?;
        let Some(issuance) = get_issuance(&tx, &issuance_id).await? else {
            return Ok(RedeemOutcome::Gone(GoneReason::Unknown));
        };
        if issuance.status == StoredStatus::Revoked {
            return Ok(RedeemOutcome::Gone(GoneReason::Revoked));
        }
        if let Some(reason) = link_gone(at, expires_at, max_uses, uses) {
            return Ok(RedeemOutcome::Gone(reason));
        }
        let stmt = tx
            .prepare_cached("UPDATE links SET uses = uses + 1 WHERE issuance_id = $1")
            .await?;
        tx.execute(&stmt, &[&issuance_id]).await?;
        redemption.issuance_id = issuance_id;
        let (entries, new_head, seq) = next_entry(head, &Event::Redemption(&redemption));
        let stmt = tx
            .prepare_cached(
                "INSERT INTO redemptions (seq, id, issuance_id, at, client_addr, user_agent, signature_sha256, expires_on) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .await?;
        tx.execute(
            &stmt,
            &[
                &seq,
                &redemption.id,
                &redemption.issuance_id,
                &at,
                &redemption.client_addr,
                &redemption.user_agent,
                &&signature[..],
                &expires_on,
            ],
        )
        .await?;
        write_chain(&tx, &entries, &new_head).await?;
        RedeemOutcome::Redeemed(Box::new(issuance))
    })
}

pub(super) async fn link(
    db: &Db,
    issuance_id: &str,
) -> Result<Option<(LinkRecord, Vec<Redemption>)>, LedgerError> {
    with_client!(db, "ledger read failed", |client| async move {
        let stmt = client
            .prepare_cached(
                "SELECT code_sha256, expires_at, max_uses, uses FROM links WHERE issuance_id = $1",
            )
            .await?;
        let Some(row) = client.query_opt(&stmt, &[&issuance_id]).await? else {
            return Ok(None);
        };
        let link = LinkRecord {
            issuance_id: issuance_id.to_owned(),
            code_sha256: hex_lower(&row.try_get::<_, Vec<u8>>(0)?),
            expires_at: from_ns(row.try_get(1)?),
            max_uses: row
                .try_get::<_, Option<i64>>(2)?
                .map(|m| u32_column(m, "max_uses"))
                .transpose()?,
            uses: u32_column(row.try_get(3)?, "uses")?,
        };
        let stmt = client
            .prepare_cached(
                "SELECT id, at, client_addr, user_agent, signature_sha256, expires_on FROM redemptions \
                 WHERE issuance_id = $1 ORDER BY seq DESC",
            )
            .await?;
        let redemptions = client
            .query(&stmt, &[&issuance_id])
            .await?
            .iter()
            .map(|r| {
                Ok(Redemption {
                    id: r.try_get(0)?,
                    issuance_id: issuance_id.to_owned(),
                    at: from_ns(r.try_get(1)?),
                    client_addr: r.try_get(2)?,
                    user_agent: r.try_get(3)?,
                    signature_sha256: hex_lower(&r.try_get::<_, Vec<u8>>(4)?),
                    expires_on: from_ns(r.try_get(5)?),
                })
            })
            .collect::<Result<Vec<_>, Fail>>()?;
        Ok::<_, Fail>(Some((link, redemptions)))
    })
}

pub(super) async fn revoke_delegation_keys(
    db: &Db,
    mut revocation: KeyRevocation,
) -> Result<(KeyRevocation, Vec<IssuanceRecord>), LedgerError> {
    let at_ns = time("revoked_at", revocation.at)?;
    locked_write!(db, |tx, head| {
        let revoked = revoke_matching(
            &tx,
            "account = $1 AND signing_mode = 'user_delegation' AND issued_at <= $2",
            &[
                &revocation.account,
                &at_ns,
                &revocation.revoked_by,
                &revocation.reason,
            ],
        )
        .await?;
        let ids: Vec<String> = revoked.iter().map(|r| r.id.clone()).collect();
        revocation.revoked_issuances = u64::try_from(ids.len()).unwrap_or(u64::MAX);
        let (entries, new_head, seq) = next_entry(
            head,
            &Event::KeyRevocation {
                stop: &revocation,
                revoked: &ids,
            },
        );
        let stmt = tx
            .prepare_cached(
                "INSERT INTO key_revocations (seq, id, at, account, revoked_by, reason, revoked_issuances) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .await?;
        tx.execute(
            &stmt,
            &[
                &seq,
                &revocation.id,
                &at_ns,
                &revocation.account,
                &revocation.revoked_by,
                &revocation.reason,
                &i64::try_from(ids.len()).unwrap_or(i64::MAX),
            ],
        )
        .await?;
        write_chain(&tx, &entries, &new_head).await?;
        (revocation, revoked)
    })
}

pub(super) async fn key_revocations(
    db: &Db,
    account: &str,
) -> Result<Vec<KeyRevocation>, LedgerError> {
    with_client!(db, "ledger read failed", |client| async move {
        let stmt = client
            .prepare_cached(
                "SELECT id, at, account, revoked_by, reason, revoked_issuances FROM key_revocations \
                 WHERE account = $1 ORDER BY seq DESC",
            )
            .await?;
        client
            .query(&stmt, &[&account])
            .await?
            .iter()
            .map(|r| {
                Ok(KeyRevocation {
                    id: r.try_get(0)?,
                    at: from_ns(r.try_get(1)?),
                    account: r.try_get(2)?,
                    revoked_by: r.try_get(3)?,
                    reason: r.try_get(4)?,
                    revoked_issuances: u64::try_from(r.try_get::<_, i64>(5)?).unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>, Fail>>()
    })
}
