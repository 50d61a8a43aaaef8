//! The append writer (group commit) and the denial writer of the PostgreSQL ledger.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Utc;
use deadpool_postgres::{GenericClient, Object};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;

use super::{
    ChainColumns, Counters, DENIAL_CHUNK, Db, DenialRecord, Fail, HeadValues, IssuanceColumns,
    IssuanceRecord, LedgerError, RateLimit, Stored, WRITE_ISSUANCES, bounded_json, error_chain,
    is_data_error, lock_head, ns, saturating_ns, with_client,
};
use crate::ledger::chain::Event;

/// How many times a group is tried again after its connection turned out dead before COMMIT.
const STALE_RETRIES: u32 = 3;

/// Where the writer sends its answer.
pub(super) type Reply = oneshot::Sender<Result<(), LedgerError>>;

/// What the append writer is asked to do.
pub(super) enum Msg {
    Append(Box<IssuanceRecord>, Reply),
    /// Prove a commit goes through right now.
    Check(Reply),
}

/// Commits queued appends in groups.
pub(super) struct Writer {
    pub(super) db: Arc<Db>,
    pub(super) group_commit_max: usize,
    pub(super) commit_warn: RateLimit,
}

/// One record of a group, ready to store.
type Item<'a> = (&'a IssuanceRecord, &'a Stored);

impl Writer {
    /// Takes whatever is queued (at least one message, at most `group_commit_max`), commits it
    /// as one group, answers, and again, until every sender is gone.
    pub(super) async fn run(self, mut rx: mpsc::Receiver<Msg>) {
        let mut queued = Vec::with_capacity(self.group_commit_max);
        loop {
            queued.clear();
            if rx.recv_many(&mut queued, self.group_commit_max).await == 0 {
                break;
            }
            let mut appends = Vec::with_capacity(queued.len());
            let mut checks = Vec::new();
            for msg in queued.drain(..) {
                match msg {
                    Msg::Append(record, reply) => appends.push((record, reply)),
                    Msg::Check(reply) => checks.push(reply),
                }
            }
            self.commit_group(appends, checks).await;
        }
        tracing::debug!("ledger append writer stopped");
    }

    /// Stores a group in one transaction, then answers every waiter: a record that cannot be
    /// stored is refused alone, a failed commit refuses them all.
    async fn commit_group(&self, appends: Vec<(Box<IssuanceRecord>, Reply)>, checks: Vec<Reply>) {
        let count = appends.len();
        // What each record can be stored as, or why it cannot; a second record with an id
        // already in the group is a duplicate.
        let mut seen = HashSet::with_capacity(count);
        let prepared: Vec<Result<Stored, String>> = appends
            .iter()
            .map(|(r, _)| {
                let stored = Stored::of(r)?;
                if seen.insert(r.id.as_str()) {
                    Ok(stored)
                } else {
                    Err(format!("an issuance with id {} already exists", r.id))
                }
            })
            .collect();
        let batch: Vec<Item<'_>> = appends
            .iter()
            .zip(&prepared)
            .filter_map(|((r, _), s)| s.as_ref().ok().map(|s| (r.as_ref(), s)))
            .collect();
        let with_health = !checks.is_empty();
        let mut retries = 0;
        let outcome = loop {
            let committing = AtomicBool::new(false);
            let dropped = self.db.counters.reopens.load(Ordering::Relaxed);
            let outcome = with_client!(&self.db, "ledger commit failed", |client| {
                write_isolating(client, &batch, with_health, &committing)
            });
            // A pooled connection found dead (the server restarted or dropped it) before COMMIT
            // was sent: nothing was stored, so the group is tried again on another connection,
            // after letting go of every pooled one already known to be closed.
            if outcome.is_err()
                && retries < STALE_RETRIES
                && !committing.load(Ordering::Relaxed)
                && self.db.counters.reopens.load(Ordering::Relaxed) != dropped
            {
                retries += 1;
                tokio::task::yield_now().await;
                self.db.pool.retain(|client, _| !client.is_closed());
                continue;
            }
            break outcome;
        };
        let counters: &Counters = &self.db.counters;
        match outcome {
            Ok(written) => {
                let mut written = written.into_iter();
                let results: Vec<Result<(), String>> = prepared
                    .iter()
                    .map(|p| match p {
                        Ok(_) => written
                            .next()
                            .unwrap_or_else(|| Err("no answer for this record".into())),
                        Err(e) => Err(e.clone()),
                    })
                    .collect();
                let stored = results.iter().filter(|r| r.is_ok()).count();
                // Counters first, so a caller that saw its answer sees them too.
                counters.commits.fetch_add(1, Ordering::Relaxed);
                counters
                    .largest_group
                    .fetch_max(u64::try_from(count).unwrap_or(u64::MAX), Ordering::Relaxed);
                Counters::add(&counters.appended, stored);
                Counters::add(&counters.append_failures, count - stored);
                drop(batch);
                for ((record, reply), result) in appends.into_iter().zip(results) {
                    let answer = result.map_err(|e| {
                        tracing::warn!(id = %record.id, error = %e, "ledger refused an issuance record");
                        LedgerError::Unavailable(format!("issuance {} not stored: {e}", record.id))
                    });
                    // The caller may have gone away; the record is stored either way.
                    let _ = reply.send(answer);
                }
                for reply in checks {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(e) => {
                counters.failed_commits.fetch_add(1, Ordering::Relaxed);
                Counters::add(&counters.append_failures, count);
                if self.commit_warn.allow() {
                    tracing::error!(error = %e, records = count, "ledger commit failed; every append in the group was refused");
                }
                let text = match e {
                    LedgerError::Unavailable(text) => text,
                    other => other.to_string(),
                };
                drop(batch);
                for (_, reply) in appends {
                    let _ = reply.send(Err(LedgerError::Unavailable(text.clone())));
                }
                for reply in checks {
                    let _ = reply.send(Err(LedgerError::Unavailable(text.clone())));
                }
            }
        }
    }
}

/// Writes a group. Ids are unique in practice (80 random bits), so the first try does not look
/// for taken ones: a duplicate makes the database refuse the whole statement, and the group is
/// written again leaving out the records whose id is taken. If the database still refuses it
/// for a data error the checks before it did not catch, each record is written in a transaction
/// of its own, so that only the bad one fails.
async fn write_isolating(
    client: &mut Object,
    batch: &[Item<'_>],
    with_health: bool,
    committing: &AtomicBool,
) -> Result<Vec<Result<(), String>>, Fail> {
    let first = match write_group(client, batch, with_health, false, committing).await {
        Err(Fail::Db(e)) if is_unique_violation(&e) => {
            write_group(client, batch, with_health, true, committing).await
        }
        other => other,
    };
    match first {
        Err(Fail::Db(e)) if is_data_error(&e) && batch.len() > 1 => {
            tracing::warn!(error = %error_chain(&e), records = batch.len(), "a ledger group failed on a data error; storing its records one by one");
            let mut out = Vec::with_capacity(batch.len());
            for item in batch {
                let one = std::slice::from_ref(item);
                match write_group(client, one, false, true, committing).await {
                    Ok(mut one) => out.push(one.pop().unwrap_or(Ok(()))),
                    Err(Fail::Db(e)) if is_data_error(&e) => out.push(Err(error_chain(&e))),
                    Err(e) => return Err(e),
                }
            }
            if with_health {
                write_group(client, &[], true, false, committing).await?;
            }
            Ok(out)
        }
        other => other,
    }
}

/// A duplicate key.
fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.as_db_error()
        .is_some_and(|db| db.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// One transaction: lock the chain head, (with `check_ids`) leave out records whose id is
/// taken, insert the rest with their chain entries and the new head in one statement, commit.
/// Returns, per record, whether it was stored.
async fn write_group(
    client: &mut Object,
    batch: &[Item<'_>],
    with_health: bool,
    check_ids: bool,
    committing: &AtomicBool,
) -> Result<Vec<Result<(), String>>, Fail> {
    let tx = client.transaction().await?;
    let mut results = Vec::with_capacity(batch.len());
    if !batch.is_empty() {
        let mut head = lock_head(&tx).await?;
        // Read after taking the lock: every writer holds it to insert, so nothing can take one
        // of these ids before this commits.
        let existing: HashSet<String> = if check_ids {
            let ids: Vec<&str> = batch.iter().map(|(r, _)| r.id.as_str()).collect();
            let stmt = tx
                .prepare_cached(
                    "SELECT i.id FROM UNNEST($1::text[]) AS u (id) JOIN issuances i ON i.id = u.id",
                )
                .await?;
            tx.query(&stmt, &[&ids])
                .await?
                .iter()
                .map(|row| row.try_get(0))
                .collect::<Result<_, _>>()?
        } else {
            HashSet::new()
        };
        let mut columns = IssuanceColumns::default();
        let mut entries = Vec::with_capacity(batch.len());
        for (record, stored) in batch {
            if existing.contains(&record.id) {
                results.push(Err(format!(
                    "an issuance with id {} already exists",
                    record.id
                )));
                continue;
            }
            let seq = head.seq + 1;
            for event in Event::of_append(record) {
                let entry = head.next(&event);
                head.advance(&entry);
                entries.push(entry);
            }
            columns.push(seq, record, stored);
            results.push(Ok(()));
        }
        if !entries.is_empty() {
            let chain = ChainColumns::of(&entries);
            let head = HeadValues::of(&head);
            let mut params: Vec<&(dyn ToSql + Sync)> = columns.params().to_vec();
            params.extend(chain.params());
            params.push(&head.seq);
            params.push(&head.hash);
            let stmt = tx.prepare_cached(WRITE_ISSUANCES).await?;
            tx.execute(&stmt, &params).await?;
        }
    }
    if with_health {
        let stmt = tx
            .prepare_cached(
                "INSERT INTO health (id, checked_at) VALUES (1, $1) \
                 ON CONFLICT (id) DO UPDATE SET checked_at = EXCLUDED.checked_at",
            )
            .await?;
        tx.execute(&stmt, &[&saturating_ns(Utc::now())]).await?;
    }
    // From here the outcome may be unknown: the group must not be tried again.
    committing.store(true, Ordering::Relaxed);
    tx.commit().await?;
    Ok(results)
}

/// Writes denials in chunks, best effort.
pub(super) struct DenialWriter {
    pub(super) db: Arc<Db>,
    pub(super) max_denials: usize,
    pub(super) warn: RateLimit,
}

/// PostgreSQL text cannot hold U+0000: a denial is kept with it replaced.
fn clean(text: &str) -> String {
    text.replace('\0', "\u{fffd}")
}

impl DenialWriter {
    pub(super) async fn run(self, mut rx: mpsc::Receiver<DenialRecord>) {
        let mut chunk = Vec::with_capacity(DENIAL_CHUNK);
        loop {
            chunk.clear();
            if rx.recv_many(&mut chunk, DENIAL_CHUNK).await == 0 {
                break;
            }
            if self.max_denials == 0 {
                continue;
            }
            let cap = i64::try_from(self.max_denials).unwrap_or(i64::MAX);
            let counters = &self.db.counters;
            match with_client!(&self.db, "denial write failed", |client| {
                insert_denials(client, &chunk, cap)
            }) {
                Ok(stored) => {
                    Counters::add(&counters.denials_written, stored);
                    Counters::add(&counters.denials_failed, chunk.len() - stored);
                }
                Err(e) => {
                    Counters::add(&counters.denials_failed, chunk.len());
                    if self.warn.allow() {
                        tracing::warn!(error = %e, lost = chunk.len(), "denial records could not be stored");
                    }
                }
            }
        }
        tracing::debug!("ledger denial writer stopped");
    }
}

/// Inserts denials (in order, so `seq` follows the queue) and prunes the oldest beyond `cap`, in
/// one transaction. Returns how many were stored; one whose time cannot be stored is skipped.
async fn insert_denials(
    client: &mut Object,
    denials: &[DenialRecord],
    cap: i64,
) -> Result<usize, Fail> {
    let mut id = Vec::with_capacity(denials.len());
    let mut at = Vec::with_capacity(denials.len());
    let mut principal = Vec::with_capacity(denials.len());
    let mut client_addr = Vec::with_capacity(denials.len());
    let mut code = Vec::with_capacity(denials.len());
    let mut request = Vec::with_capacity(denials.len());
    let mut reasons = Vec::with_capacity(denials.len());
    for d in denials {
        let Some(t) = ns(d.at) else { continue };
        id.push(clean(&d.id));
        at.push(t);
        principal.push(d.principal.as_deref().map(clean));
        client_addr.push(d.client_addr.as_deref().map(clean));
        code.push(clean(&d.code));
        // JSON text escapes U+0000.
        request.push(bounded_json(&d.request));
        reasons.push(bounded_json(
            &serde_json::to_value(&d.reasons).unwrap_or_default(),
        ));
    }
    let stored = id.len();
    let tx = client.transaction().await?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO denials (id, at, principal, client_addr, code, request, reasons) \
             SELECT id, at, principal, client_addr, code, request, reasons \
             FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) \
             WITH ORDINALITY AS u (id, at, principal, client_addr, code, request, reasons, n) \
             ORDER BY n ON CONFLICT (id) DO NOTHING",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &id,
            &at,
            &principal,
            &client_addr,
            &code,
            &request,
            &reasons,
        ],
    )
    .await?;
    let stmt = tx
        .prepare_cached("DELETE FROM denials WHERE seq <= (SELECT max(seq) FROM denials) - $1")
        .await?;
    tx.execute(&stmt, &[&cap]).await?;
    tx.commit().await?;
    Ok(stored)
}
