//! The embedded SQLite ledger (DESIGN.md §6).
//!
//! One writer thread owns the write connection and commits issuances in groups: it blocks for
//! the first queued append, drains whatever else is queued (up to `group_commit_max`), inserts
//! them all in one `BEGIN IMMEDIATE` transaction, commits (WAL, `synchronous=FULL`: the commit
//! is fsynced) and only then answers every waiter. A failed commit rolls the whole group back
//! and answers every waiter [`LedgerError::Unavailable`]; the writer then drops its connection
//! and reopens it for the next group, so a full disk or a read-only remount that is fixed later
//! heals without a restart. Denials go through the same thread at low priority, from their own
//! bounded queue, and are dropped when that queue is full.
//!
//! Reads use separate read-only connections, so they never wait behind the writer: WAL readers
//! see the last committed state. They run on a fixed set of `MAX_READERS` reader threads, each
//! with its own connection, started with the ledger and fed from one bounded queue; a read waits
//! there (asynchronously, holding no thread) for a free reader, and is refused at once
//! (`Unavailable`, a 503) when `MAX_QUEUED_READS` are already waiting, which only a stuck disk
//! causes: requests then fail fast rather than pile up. A fixed set keeps memory flat
//! under load: when reads ran on tokio's blocking pool, a burst added threads and connections
//! (SQLite's page cache, the allocator's per-thread heap) that then stayed, and RSS stepped up
//! with every burst (the soak in `scripts/soak.sh` showed it).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver as StdReceiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Row, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::chain::{ChainEntry, ChainHead, Event};
use super::query::{
    self, Counters, Dialect, ISSUANCE_COLUMNS, Param, RateLimit, Stored, bounded_json, checksum,
    decode_cursor, from_ns, hex_lower, ns, saturating_ns, sha256_from_hex, signing_mode_str,
    stored_status_str,
};
use super::{
    DenialRecord, IssuanceRecord, KeyRevocation, Ledger, LedgerError, LinkRecord, ListFilter,
    LivePolicy, Page, PolicyRecord, RedeemOutcome, Redemption, RevocationMode, SigningMode,
    StoredStatus,
};

/// Tuning for [`SqliteLedger`].
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// Denials kept; the oldest beyond this are deleted. `0` keeps none.
    pub max_denials: usize,
    /// Denials waiting for the writer; more are dropped (and counted).
    pub denial_queue: usize,
    /// The most appends committed in one transaction.
    pub group_commit_max: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            max_denials: 100_000,
            denial_queue: 1024,
            group_commit_max: 256,
        }
    }
}

/// Counters since the ledger was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LedgerStats {
    /// Issuance transactions committed (each holds one or more appends, or only a health check).
    pub commits: u64,
    /// Issuances stored.
    pub appended: u64,
    /// Appends answered with an error (failed commit, duplicate id, bad record).
    pub append_failures: u64,
    /// Issuance transactions that failed and were rolled back.
    pub failed_commits: u64,
    /// The most appends committed in one transaction.
    pub largest_group: u64,
    /// Times the writer reopened its connection after a failure.
    pub reopens: u64,
    /// Denials stored.
    pub denials_written: u64,
    /// Denials dropped because the queue was full or the ledger was closing.
    pub denials_dropped: u64,
    /// Denials lost to a failed write.
    pub denials_failed: u64,
}

/// The schema, in order. Each file is applied once, in one transaction with the others pending.
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "revocation",
        sql: include_str!("migrations/0002_revocation.sql"),
    },
    Migration {
        version: 3,
        name: "delegation",
        sql: include_str!("migrations/0003_delegation.sql"),
    },
    Migration {
        version: 4,
        name: "chain",
        sql: include_str!("migrations/0004_chain.sql"),
    },
];

/// How long a connection waits for a lock held by another connection (another process, a
/// checkpoint) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Reader threads, each with one read connection: the reads that run at once. A list page or
/// a lookup takes a millisecond or two, so four keep a few cores busy while the writer commits;
/// more reads wait their turn in the queue, and a request that waits too long times out
/// (`server.request_timeout`) like any other.
const MAX_READERS: usize = 4;
/// Reads that may wait for a reader. At a millisecond or two a read, a full queue is a backlog
/// of seconds: the readers are stuck, and a new read is refused rather than queued.
const MAX_QUEUED_READS: usize = 1024;
/// Denials written per transaction; the writer looks at the append queue between chunks.
const DENIAL_CHUNK: usize = 512;
/// Append groups committed back to back before queued denials get a turn anyway.
const DENIAL_STARVATION_LIMIT: u32 = 16;
/// The most denials one call to `denials` returns.
const MAX_DENIALS_LISTED: usize = 10_000;

const INSERT_ISSUANCE: &str = "INSERT INTO issuances (id, issued_at, principal, principal_claims, client_addr, \
     account, container, blob, resource, permissions, starts_on, expires_on, ip, protocol, version, rule, reason, \
     signing_mode, revocation, policy_id, signature_sha256, status, revoked_at, revoked_by, revoke_reason, \
     key_oid, key_tid) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, \
     ?22, ?23, ?24, ?25, ?26, ?27)";

const INSERT_DENIAL: &str = "INSERT OR IGNORE INTO denials (id, at, principal, client_addr, code, request, reasons) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// Where the database lives.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Location {
    File(PathBuf),
    /// `sqlite::memory:`: one connection shared by the writer and readers (tests only).
    Memory,
}

fn parse_location(url_or_path: &str) -> Result<Location, LedgerError> {
    let text = url_or_path.trim();
    if text == "sqlite::memory:" || text == "sqlite://:memory:" {
        return Ok(Location::Memory);
    }
    let path = if let Some(rest) = text.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = text.strip_prefix("sqlite:") {
        rest
    } else if text.contains("://") {
        return Err(LedgerError::Config(format!(
            "not a SQLite ledger URL (expected sqlite://relative/path.db or sqlite:///absolute/path.db): {text}"
        )));
    } else {
        text
    };
    if path.is_empty() {
        return Err(LedgerError::Config(
            "the SQLite ledger URL names no file".into(),
        ));
    }
    if path.contains('?') {
        return Err(LedgerError::Config(format!(
            "SQLite ledger URLs take no query parameters (sasgate sets its own): {text}"
        )));
    }
    if path == ":memory:" {
        return Ok(Location::Memory);
    }
    Ok(Location::File(PathBuf::from(path)))
}

fn unavailable(context: &str, e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Unavailable(format!("{context}: {e}"))
}

/// What a connection is for: its pragmas and the size of its page cache.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The group-commit writer (and the one connection of a memory ledger).
    Writer,
    /// The connection of the rarer writes: revocations, links, stored policies (`sqlite_admin`).
    Admin,
    /// A reader thread's read-only connection.
    Reader,
}

/// Sets the per-connection pragmas every connection needs.
fn configure(conn: &Connection, role: Role) -> Result<(), LedgerError> {
    let fail = |e: rusqlite::Error| unavailable("cannot configure a ledger connection", e);
    conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(fail)?;
    if role != Role::Reader {
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(fail)?;
        if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
            return Err(LedgerError::Unavailable(format!(
                "the ledger journal_mode is {mode}, not wal"
            )));
        }
        // Every commit is fsynced before it returns: the product's core promise.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(fail)?;
        // Keep the WAL from staying huge after a burst once it has been checkpointed.
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
            .map_err(fail)?;
    }
    // Page cache per connection, in KiB (negative): what SQLite keeps of the file in memory. The
    // writer appends (the chain, the issuance rows, the time-ordered indexes) and inserts at
    // random only into the small digest indexes (signature, link code), so 8 MiB holds its
    // working set; a larger cache only fills with appended pages it never reads again, and RSS
    // climbed with the ledger until the cap (64 MiB once: +1.2 MiB a minute at 200 requests/s
    // in the soak). A miss costs a read from the OS page cache, nothing next to the fsync of
    // every commit. The admin connection and each reader keep SQLite's default 2 MiB. So the
    // ledger's page caches stay under 8 + 2 + 4 × 2 = 18 MiB (MAX_READERS readers) whatever
    // the ledger's size.
    let cache_kib: i64 = match role {
        Role::Writer => 8 * 1024,
        Role::Admin | Role::Reader => 2 * 1024,
    };
    conn.pragma_update(None, "cache_size", -cache_kib)
        .map_err(fail)?;
    Ok(())
}

fn open_writer(path: &Path, create: bool) -> Result<Connection, LedgerError> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let mut conn = Connection::open_with_flags(path, flags)
        .map_err(|e| unavailable(&format!("cannot open {}", path.display()), e))?;
    configure(&conn, Role::Writer)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Creates the database file readable by its owner only, if it does not exist yet (SQLite gives
/// its WAL and shared-memory files the same mode). An empty file is an empty database.
#[cfg(unix)]
fn create_private(path: &Path) -> Result<(), LedgerError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(LedgerError::Config(format!(
            "cannot create {}: {e}",
            path.display()
        ))),
    }
}

#[cfg(not(unix))]
fn create_private(_path: &Path) -> Result<(), LedgerError> {
    Ok(())
}

fn open_reader(path: &Path) -> Result<Connection, LedgerError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| unavailable(&format!("cannot open {} for reading", path.display()), e))?;
    configure(&conn, Role::Reader)?;
    Ok(conn)
}

/// Applies the pending migrations in one transaction; a no-op when the schema is current.
fn migrate(conn: &mut Connection) -> Result<(), LedgerError> {
    let fail = |e: rusqlite::Error| unavailable("ledger migration failed", e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(fail)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version     INTEGER PRIMARY KEY,
             name        TEXT NOT NULL,
             checksum    TEXT NOT NULL,
             applied_at  INTEGER NOT NULL
         )",
    )
    .map_err(fail)?;
    let applied: Vec<(i64, String)> = {
        let mut stmt = tx
            .prepare("SELECT version, checksum FROM schema_migrations ORDER BY version")
            .map_err(fail)?;
        let rows = stmt
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(fail)?;
        rows.collect::<Result<_, _>>().map_err(fail)?
    };
    let known = MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0);
    for (version, sum) in &applied {
        match MIGRATIONS.iter().find(|m| m.version == *version) {
            None if *version > known => {
                return Err(LedgerError::Config(format!(
                    "the ledger schema is at version {version}, newer than this sasgate knows ({known}); \
                     run a newer sasgate"
                )));
            }
            None => {
                return Err(LedgerError::Config(format!(
                    "the ledger records an unknown migration {version}"
                )));
            }
            Some(m) if checksum(m.sql) != *sum => {
                return Err(LedgerError::Config(format!(
                    "ledger migration {version} ({}) differs from the one applied to this database",
                    m.name
                )));
            }
            Some(_) => {}
        }
    }
    for m in MIGRATIONS
        .iter()
        .filter(|m| !applied.iter().any(|(v, _)| *v == m.version))
    {
        tx.execute_batch(m.sql).map_err(fail)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![m.version, m.name, checksum(m.sql), saturating_ns(Utc::now())],
        )
        .map_err(fail)?;
        if m.version == 4 {
            let entries = backfill_chain(&tx).map_err(fail)?;
            if entries > 0 {
                tracing::info!(entries, "existing records written to the new hash chain");
            }
        }
        tracing::info!(
            version = m.version,
            name = m.name,
            "ledger migration applied"
        );
    }
    tx.commit().map_err(fail)
}

/// The chain head, read inside a write transaction (which holds SQLite's write lock, so no other
/// writer can move it until commit).
pub(super) fn chain_head(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<ChainHead> {
    tx.query_row("SELECT seq, hash FROM chain_head WHERE id = 1", [], |r| {
        let seq: i64 = r.get(0)?;
        let hash: Vec<u8> = r.get(1)?;
        Ok(ChainHead {
            seq: u64::try_from(seq).unwrap_or(0),
            hash: hash.try_into().unwrap_or([0; 32]),
        })
    })
}

/// Appends the entry for `event` after `head` and advances it.
pub(super) fn chain_push(
    tx: &rusqlite::Transaction<'_>,
    head: &mut ChainHead,
    event: &Event<'_>,
) -> rusqlite::Result<()> {
    let e = head.next(event);
    tx.prepare_cached(
        "INSERT INTO chain (seq, kind, subject, at, payload, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(rusqlite::params![
        i64::try_from(e.seq).unwrap_or(i64::MAX),
        e.kind,
        e.subject,
        saturating_ns(e.at),
        e.payload,
        &e.prev_hash[..],
        &e.hash[..],
    ])?;
    head.advance(&e);
    Ok(())
}

/// Stores the moved head.
pub(super) fn chain_save(tx: &rusqlite::Transaction<'_>, head: &ChainHead) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE chain_head SET seq = ?1, hash = ?2 WHERE id = 1")?
        .execute(rusqlite::params![
            i64::try_from(head.seq).unwrap_or(i64::MAX),
            &head.hash[..]
        ])?;
    Ok(())
}

/// Appends `events` in one go (admin operations).
pub(super) fn chain_append(
    tx: &rusqlite::Transaction<'_>,
    events: &[Event<'_>],
) -> rusqlite::Result<()> {
    let mut head = chain_head(tx)?;
    for e in events {
        chain_push(tx, &mut head, e)?;
    }
    chain_save(tx, &head)
}

/// Writes the records a ledger held before the chain existed into it, in their stored order:
/// each issuance, its link, its redemptions and its revocation. Returns the entries written.
fn backfill_chain(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<u64> {
    let records: Vec<IssuanceRecord> = {
        let mut stmt = tx.prepare(&format!(
            "SELECT {ISSUANCE_COLUMNS} FROM issuances ORDER BY seq"
        ))?;
        let rows = stmt.query_map([], issuance_from_row)?;
        rows.collect::<Result<_, _>>()?
    };
    let mut head = chain_head(tx)?;
    for r in &records {
        chain_push(tx, &mut head, &Event::Issuance(r))?;
        let link = tx
            .query_row(
                "SELECT code_sha256, expires_at, max_uses, uses FROM links WHERE issuance_id = ?1",
                [&r.id],
                |row| {
                    Ok(LinkRecord {
                        issuance_id: r.id.clone(),
                        code_sha256: hex_lower(&row.get::<_, Vec<u8>>(0)?),
                        expires_at: from_ns(row.get(1)?),
                        max_uses: row.get(2)?,
                        uses: row.get(3)?,
                    })
                },
            )
            .optional()?;
        if let Some(link) = link {
            chain_push(tx, &mut head, &Event::Link(&link))?;
            let redemptions: Vec<Redemption> = {
                let mut stmt = tx.prepare(
                    "SELECT id, at, client_addr, user_agent, signature_sha256, expires_on FROM redemptions WHERE issuance_id = ?1 ORDER BY seq",
                )?;
                let rows = stmt.query_map([&r.id], |row| {
                    Ok(Redemption {
                        id: row.get(0)?,
                        issuance_id: r.id.clone(),
                        at: from_ns(row.get(1)?),
                        client_addr: row.get(2)?,
                        user_agent: row.get(3)?,
                        signature_sha256: hex_lower(&row.get::<_, Vec<u8>>(4)?),
                        expires_on: from_ns(row.get(5)?),
                    })
                })?;
                rows.collect::<Result<_, _>>()?
            };
            for red in &redemptions {
                chain_push(tx, &mut head, &Event::Redemption(red))?;
            }
        }
        if r.status == StoredStatus::Revoked {
            chain_push(
                tx,
                &mut head,
                &Event::Revocation {
                    issuance_id: &r.id,
                    at: r.revoked_at.unwrap_or_default(),
                    by: r.revoked_by.as_deref().unwrap_or(""),
                    reason: r.revoke_reason.as_deref().unwrap_or(""),
                },
            )?;
        }
    }
    chain_save(tx, &head)?;
    Ok(head.seq)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn conversion_error(column: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, message.into())
}

fn time_column(row: &Row<'_>, column: usize) -> rusqlite::Result<DateTime<Utc>> {
    row.get::<_, i64>(column).map(from_ns)
}

fn optional_time_column(row: &Row<'_>, column: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    Ok(row.get::<_, Option<i64>>(column)?.map(from_ns))
}

fn sha256_column(row: &Row<'_>, column: usize) -> rusqlite::Result<String> {
    let bytes = row.get_ref(column)?.as_blob()?;
    if bytes.len() != 32 {
        return Err(conversion_error(
            column,
            format!("a SHA-256 digest of {} bytes", bytes.len()),
        ));
    }
    Ok(hex_lower(bytes))
}

fn json_column(row: &Row<'_>, column: usize) -> rusqlite::Result<serde_json::Value> {
    let text: String = row.get(column)?;
    serde_json::from_str(&text).map_err(|e| conversion_error(column, format!("bad JSON: {e}")))
}

/// Maps a row selected with [`ISSUANCE_COLUMNS`].
fn issuance_from_row(row: &Row<'_>) -> rusqlite::Result<IssuanceRecord> {
    let signing_mode = match row.get_ref(17)?.as_str()? {
        "account_key" => SigningMode::AccountKey,
        "user_delegation" => SigningMode::UserDelegation,
        other => {
            return Err(conversion_error(
                17,
                format!("unknown signing mode {other:?}"),
            ));
        }
    };
    let revocation = match row.get_ref(18)?.as_str()? {
        "expiry_only" => RevocationMode::ExpiryOnly,
        "stored_access_policy" => RevocationMode::StoredAccessPolicy,
        "link_only" => RevocationMode::LinkOnly,
        other => {
            return Err(conversion_error(
                18,
                format!("unknown revocation mode {other:?}"),
            ));
        }
    };
    let status = match row.get_ref(21)?.as_str()? {
        "active" => StoredStatus::Active,
        "revoked" => StoredStatus::Revoked,
        other => return Err(conversion_error(21, format!("unknown status {other:?}"))),
    };
    let principal_claims = if row.get_ref(3)?.data_type() == rusqlite::types::Type::Null {
        None
    } else {
        Some(json_column(row, 3)?)
    };
    Ok(IssuanceRecord {
        id: row.get(0)?,
        issued_at: time_column(row, 1)?,
        principal: row.get(2)?,
        principal_claims,
        client_addr: row.get(4)?,
        account: row.get(5)?,
        container: row.get(6)?,
        blob: row.get(7)?,
        resource: row.get(8)?,
        permissions: row.get(9)?,
        starts_on: time_column(row, 10)?,
        expires_on: time_column(row, 11)?,
        ip: row.get(12)?,
        protocol: row.get(13)?,
        version: row.get(14)?,
        rule: row.get(15)?,
        reason: row.get(16)?,
        signing_mode,
        revocation,
        policy_id: row.get(19)?,
        signature_sha256: sha256_column(row, 20)?,
        status,
        revoked_at: optional_time_column(row, 22)?,
        revoked_by: row.get(23)?,
        revoke_reason: row.get(24)?,
        key_oid: row.get(25)?,
        key_tid: row.get(26)?,
    })
}

fn denial_from_row(row: &Row<'_>) -> rusqlite::Result<DenialRecord> {
    let reasons = json_column(row, 6)?;
    let reasons: Vec<String> = serde_json::from_value(reasons)
        .map_err(|e| conversion_error(6, format!("bad reasons: {e}")))?;
    Ok(DenialRecord {
        id: row.get(0)?,
        at: time_column(row, 1)?,
        principal: row.get(2)?,
        client_addr: row.get(3)?,
        code: row.get(4)?,
        request: json_column(row, 5)?,
        reasons,
    })
}

/// SQLite's spelling of the listing query.
const DIALECT: Dialect = Dialect {
    placeholder: '?',
    always_true: "1 = 1",
    always_false: "0",
    bind_limit: false,
};

/// A listing as SQL: the text and its positional parameters.
fn list_query(
    filter: &ListFilter,
    now: DateTime<Utc>,
    fetch: usize,
    after: Option<(i64, String)>,
) -> (String, Vec<Value>) {
    let (sql, params) = query::list_query(&DIALECT, filter, now, fetch, after);
    let params = params
        .into_iter()
        .map(|p| match p {
            Param::Text(t) => Value::Text(t),
            Param::Int(i) => Value::Integer(i),
        })
        .collect();
    (sql, params)
}

/// A read run on a reader thread, with that thread's connection.
type ReadJob = Box<dyn FnOnce(&mut ReaderConn) + Send>;

/// Where reads run: a fixed set of reader threads for a file, the one shared connection in
/// memory (tests only; reads then run on tokio's blocking pool).
enum Readers {
    File {
        /// Closed (set to `None`) on drop, which ends the threads once the queue is empty.
        jobs: Mutex<Option<SyncSender<ReadJob>>>,
        threads: Mutex<Vec<JoinHandle<()>>>,
    },
    Memory(Arc<Mutex<Connection>>),
}

impl Readers {
    /// Starts [`MAX_READERS`] reader threads for the ledger at `path`. Each opens its read-only
    /// connection on its first read and keeps it; they take reads from one queue.
    fn start(path: &Path) -> Result<Self, LedgerError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<ReadJob>(MAX_QUEUED_READS);
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::with_capacity(MAX_READERS);
        for n in 0..MAX_READERS {
            let rx = rx.clone();
            let mut conn = ReaderConn {
                path: path.to_path_buf(),
                open: None,
            };
            let thread = std::thread::Builder::new()
                .name(format!("sasgate-ledger-reader-{n}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job, never while
                        // running one.
                        let job = lock(&rx).recv();
                        let Ok(job) = job else { break };
                        // A read that panics loses its connection, not the thread: its caller
                        // sees its answer dropped (503), and the next read opens afresh.
                        let run = std::panic::AssertUnwindSafe(|| job(&mut conn));
                        if std::panic::catch_unwind(run).is_err() {
                            tracing::error!(
                                reader = n,
                                "a ledger read panicked; its connection is closed"
                            );
                            conn.open = None;
                        }
                    }
                })
                .map_err(|e| unavailable("cannot start a ledger reader", e))?;
            threads.push(thread);
        }
        Ok(Readers::File {
            jobs: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
        })
    }

    /// Closes the queue and waits for the reader threads to finish the reads they hold.
    fn close(&self) {
        if let Readers::File { jobs, threads } = self {
            lock(jobs).take();
            for thread in std::mem::take(&mut *lock(threads)) {
                if thread.join().is_err() {
                    tracing::error!("a ledger reader thread panicked");
                }
            }
        }
    }
}

/// A reader thread's connection, opened when first needed and again whenever the file at
/// `path` is no longer the one it has open (moved, replaced, restored) or a read failed.
struct ReaderConn {
    path: PathBuf,
    open: Option<(Connection, FileIdentity)>,
}

impl ReaderConn {
    fn with<R>(
        &mut self,
        f: impl FnOnce(&Connection) -> Result<R, LedgerError>,
    ) -> Result<R, LedgerError> {
        let current = file_identity(&self.path);
        let (conn, identity) = match self
            .open
            .take()
            .filter(|(_, identity)| Some(*identity) == current)
        {
            Some(open) => open,
            None => {
                let conn = open_reader(&self.path)?;
                let identity = file_identity(&self.path)
                    .ok_or_else(|| LedgerError::Unavailable("the ledger file is missing".into()))?;
                (conn, identity)
            }
        };
        let result = f(&conn);
        // A connection that failed may be broken (I/O error): let it go.
        if matches!(result, Ok(_) | Err(LedgerError::InvalidCursor)) {
            self.open = Some((conn, identity));
        }
        result
    }
}

/// Where the writer sends its answer.
type Reply = oneshot::Sender<Result<(), LedgerError>>;

/// What the writer thread is asked to do.
enum Msg {
    Append(Box<IssuanceRecord>, Reply),
    /// Prove a commit reaches the disk right now.
    Check(Reply),
    /// Denials are queued.
    Wake,
}

/// The device and inode of the file at a path.
type FileIdentity = (u64, u64);

/// Which file is at `path` now, if any. SQLite in WAL mode keeps writing to an open database
/// file that was deleted, moved or replaced (and so lost), so the ledger compares this before
/// and after every write.
#[cfg(unix)]
fn file_identity(path: &Path) -> Option<FileIdentity> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Which file is at `path` now, if any (elsewhere only whether there is one).
#[cfg(not(unix))]
fn file_identity(path: &Path) -> Option<FileIdentity> {
    std::fs::metadata(path).ok().map(|_| (0, 0))
}

fn same_file(path: &Path, identity: FileIdentity) -> bool {
    file_identity(path) == Some(identity)
}

/// The write connection, reopened after a failure.
enum WriteConn {
    /// The connection and the file it opened; `None` after a failure.
    File {
        path: PathBuf,
        conn: Option<(Connection, FileIdentity)>,
    },
    Memory(Arc<Mutex<Connection>>),
}

struct Writer {
    conn: WriteConn,
    rx: mpsc::Receiver<Msg>,
    denials: StdReceiver<DenialRecord>,
    denial_wake: Arc<AtomicBool>,
    counters: Arc<Counters>,
    group_commit_max: usize,
    max_denials: usize,
    commit_warn: RateLimit,
    denial_warn: RateLimit,
}

/// A failure that leaves the connection suspect (I/O, full disk, read-only file), as opposed to
/// one record breaking a constraint.
fn is_connection_fault(e: &rusqlite::Error) -> bool {
    !matches!(e.sqlite_error_code(), Some(ErrorCode::ConstraintViolation))
}

impl Writer {
    /// Runs `f` on the write connection, reopening it first if the last use failed; a failure
    /// other than a constraint violation drops the connection so the next call reopens it.
    fn with_conn<R>(
        &mut self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>,
    ) -> Result<R, LedgerError> {
        match &mut self.conn {
            WriteConn::Memory(conn) => {
                f(&mut lock(conn)).map_err(|e| unavailable("ledger write failed", e))
            }
            WriteConn::File { path, conn } => {
                if let Some((_, identity)) = conn.as_ref()
                    && !same_file(path, *identity)
                {
                    tracing::warn!("the ledger file was moved, deleted or replaced");
                    *conn = None;
                }
                if conn.is_none() {
                    // Never create the file again: a ledger that vanished must not silently
                    // restart empty.
                    let fresh = open_writer(path, false)?;
                    let identity = file_identity(path).ok_or_else(|| {
                        LedgerError::Unavailable("the ledger file vanished as it was opened".into())
                    })?;
                    *conn = Some((fresh, identity));
                    self.counters.reopens.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("ledger write connection reopened");
                }
                let Some((live, identity)) = conn.as_mut() else {
                    return Err(LedgerError::Unavailable(
                        "no ledger write connection".into(),
                    ));
                };
                let identity = *identity;
                match f(live) {
                    Err(e) => {
                        if is_connection_fault(&e) {
                            *conn = None;
                        }
                        Err(unavailable("ledger write failed", e))
                    }
                    // The commit may have gone to a file no longer at `path` (SQLite in WAL
                    // mode does not notice): nothing that depends on it may leave.
                    Ok(_) if !same_file(path, identity) => {
                        *conn = None;
                        Err(LedgerError::Unavailable(
                            "the ledger file was moved, deleted or replaced during a write".into(),
                        ))
                    }
                    Ok(value) => Ok(value),
                }
            }
        }
    }

    fn run(mut self) {
        let mut denials_pending = false;
        let mut groups_since_denials = 0u32;
        loop {
            let first = if denials_pending {
                match self.rx.try_recv() {
                    Ok(msg) => Some(msg),
                    Err(mpsc::error::TryRecvError::Empty) => None,
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            } else {
                match self.rx.blocking_recv() {
                    Some(msg) => Some(msg),
                    None => break,
                }
            };
            if let Some(first) = first {
                let mut appends = Vec::new();
                let mut checks = Vec::new();
                let sort = |msg: Msg, appends: &mut Vec<_>, checks: &mut Vec<_>| match msg {
                    Msg::Append(record, reply) => appends.push((record, reply)),
                    Msg::Check(reply) => checks.push(reply),
                    Msg::Wake => {}
                };
                sort(first, &mut appends, &mut checks);
                while appends.len() < self.group_commit_max {
                    match self.rx.try_recv() {
                        Ok(msg) => sort(msg, &mut appends, &mut checks),
                        Err(_) => break,
                    }
                }
                if !appends.is_empty() || !checks.is_empty() {
                    self.commit_group(appends, checks);
                    groups_since_denials += 1;
                    if !self.rx.is_empty() && groups_since_denials < DENIAL_STARVATION_LIMIT {
                        continue;
                    }
                }
            }
            groups_since_denials = 0;
            denials_pending = self.write_denials();
        }
        // Closing: store what is already queued, best effort.
        while self.write_denials() {}
        tracing::debug!("ledger writer stopped");
    }

    /// Commits a group of appends (and readiness checks) in one transaction, then answers all.
    fn commit_group(&mut self, appends: Vec<(Box<IssuanceRecord>, Reply)>, checks: Vec<Reply>) {
        let records: Vec<&IssuanceRecord> = appends.iter().map(|(r, _)| r.as_ref()).collect();
        let with_health = !checks.is_empty();
        let outcome = self.with_conn(|conn| insert_group(conn, &records, with_health));
        let count = appends.len();
        match outcome {
            Ok(results) => {
                let stored = results.iter().filter(|r| r.is_ok()).count();
                // Counters first, so a caller that saw its answer sees them too.
                self.counters.commits.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .largest_group
                    .fetch_max(u64::try_from(count).unwrap_or(u64::MAX), Ordering::Relaxed);
                Counters::add(&self.counters.appended, stored);
                Counters::add(&self.counters.append_failures, count - stored);
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
                self.counters.failed_commits.fetch_add(1, Ordering::Relaxed);
                Counters::add(&self.counters.append_failures, count);
                if self.commit_warn.allow() {
                    tracing::error!(error = %e, records = count, "ledger commit failed; every append in the group was refused");
                }
                let text = match e {
                    LedgerError::Unavailable(text) => text,
                    other => other.to_string(),
                };
                for (_, reply) in appends {
                    let _ = reply.send(Err(LedgerError::Unavailable(text.clone())));
                }
                for reply in checks {
                    let _ = reply.send(Err(LedgerError::Unavailable(text.clone())));
                }
            }
        }
    }

    /// Writes up to one chunk of queued denials; true when the chunk was full (more may wait).
    fn write_denials(&mut self) -> bool {
        self.denial_wake.store(false, Ordering::SeqCst);
        let mut chunk = Vec::new();
        while chunk.len() < DENIAL_CHUNK {
            match self.denials.try_recv() {
                Ok(denial) => chunk.push(denial),
                Err(_) => break,
            }
        }
        let full = chunk.len() == DENIAL_CHUNK;
        if chunk.is_empty() || self.max_denials == 0 {
            return full;
        }
        let cap = i64::try_from(self.max_denials).unwrap_or(i64::MAX);
        match self.with_conn(|conn| insert_denials(conn, &chunk, cap)) {
            Ok(stored) => {
                Counters::add(&self.counters.denials_written, stored);
                Counters::add(&self.counters.denials_failed, chunk.len() - stored);
            }
            Err(e) => {
                Counters::add(&self.counters.denials_failed, chunk.len());
                if self.denial_warn.allow() {
                    tracing::warn!(error = %e, lost = chunk.len(), "denial records could not be stored");
                }
            }
        }
        full
    }
}

/// Binds one record to the cached insert statement and runs it.
fn execute_insert(
    stmt: &mut rusqlite::CachedStatement<'_>,
    r: &IssuanceRecord,
    stored: &Stored,
) -> rusqlite::Result<usize> {
    stmt.execute(rusqlite::params![
        r.id,
        stored.issued_at,
        r.principal,
        stored.claims,
        r.client_addr,
        r.account,
        r.container,
        r.blob,
        r.resource,
        r.permissions,
        stored.starts_on,
        stored.expires_on,
        r.ip,
        r.protocol,
        r.version,
        r.rule,
        r.reason,
        signing_mode_str(r.signing_mode),
        r.revocation.as_str(),
        r.policy_id,
        &stored.signature[..],
        stored_status_str(r.status),
        stored.revoked_at,
        r.revoked_by,
        r.revoke_reason,
        r.key_oid,
        r.key_tid,
    ])
}

/// Inserts one issuance inside a caller's transaction (links are stored with theirs).
fn insert_issuance(tx: &rusqlite::Transaction<'_>, r: &IssuanceRecord) -> Result<(), LedgerError> {
    let stored = Stored::new(r).map_err(LedgerError::Unavailable)?;
    let mut stmt = tx
        .prepare_cached(INSERT_ISSUANCE)
        .map_err(|e| unavailable("ledger write failed", e))?;
    execute_insert(&mut stmt, r, &stored).map_err(|e| unavailable("ledger write failed", e))?;
    Ok(())
}

/// Inserts a group in one transaction. A record that breaks a constraint (duplicate id or
/// signature) fails alone: SQLite undoes only that statement. Any other error fails the group.
fn insert_group(
    conn: &mut Connection,
    records: &[&IssuanceRecord],
    with_health: bool,
) -> rusqlite::Result<Vec<Result<(), String>>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(records.len());
    let mut head = chain_head(&tx)?;
    {
        let mut stmt = tx.prepare_cached(INSERT_ISSUANCE)?;
        for r in records {
            let stored = match Stored::new(r) {
                Ok(stored) => stored,
                Err(e) => {
                    results.push(Err(e));
                    continue;
                }
            };
            let inserted = execute_insert(&mut stmt, r, &stored);
            match inserted {
                Ok(_) => {
                    // The record and its chain entry stand or fall together (with the group).
                    for event in Event::of_append(r) {
                        chain_push(&tx, &mut head, &event)?;
                    }
                    results.push(Ok(()));
                }
                Err(e) if !is_connection_fault(&e) => results.push(Err(e.to_string())),
                Err(e) => return Err(e),
            }
        }
    }
    if !records.is_empty() {
        chain_save(&tx, &head)?;
    }
    if with_health {
        tx.execute(
            "INSERT INTO health (id, checked_at) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET checked_at = ?1",
            [saturating_ns(Utc::now())],
        )?;
    }
    tx.commit()?;
    Ok(results)
}

/// Inserts denials and prunes the oldest beyond `cap`, in one transaction, so the table never
/// holds more than `cap` committed rows. The prune is a rowid range delete: it touches only the
/// rows it removes. Returns how many denials were stored; one whose time cannot be stored is
/// skipped.
fn insert_denials(
    conn: &mut Connection,
    denials: &[DenialRecord],
    cap: i64,
) -> rusqlite::Result<usize> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut stored = 0;
    {
        let mut stmt = tx.prepare_cached(INSERT_DENIAL)?;
        for d in denials {
            let Some(at) = ns(d.at) else {
                continue;
            };
            let reasons = serde_json::to_value(&d.reasons).unwrap_or_default();
            stmt.execute(rusqlite::params![
                d.id,
                at,
                d.principal,
                d.client_addr,
                d.code,
                bounded_json(&d.request),
                bounded_json(&reasons)
            ])?;
            stored += 1;
        }
    }
    tx.execute(
        "DELETE FROM denials WHERE seq <= (SELECT max(seq) FROM denials) - ?1",
        [cap],
    )?;
    tx.commit()?;
    Ok(stored)
}

/// The SQLite ledger. See the module documentation.
pub struct SqliteLedger {
    admin: Arc<admin::Admin>,
    tx: Option<mpsc::Sender<Msg>>,
    denials: SyncSender<DenialRecord>,
    denial_wake: Arc<AtomicBool>,
    readers: Arc<Readers>,
    counters: Arc<Counters>,
    drop_warn: RateLimit,
    writer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SqliteLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteLedger").finish_non_exhaustive()
    }
}

impl SqliteLedger {
    /// Opens (creating if needed, with its parent directories) the ledger at `url_or_path`:
    /// `sqlite://relative/path.db`, `sqlite:///absolute/path.db`, a plain path, or
    /// `sqlite::memory:` (tests only: nothing survives the process, and reads share the
    /// writer's connection). Applies pending migrations and starts the writer thread.
    ///
    /// Blocking: call it from `spawn_blocking` or before the runtime starts.
    pub fn open(url_or_path: &str, options: SqliteOptions) -> Result<Self, LedgerError> {
        let location = parse_location(url_or_path)?;
        let admin_path = match &location {
            Location::File(path) => Some(path.clone()),
            Location::Memory => None,
        };
        let (write_conn, readers) = match location {
            Location::Memory => {
                let mut conn = Connection::open_in_memory()
                    .map_err(|e| unavailable("cannot open memory ledger", e))?;
                configure(&conn, Role::Writer)?;
                migrate(&mut conn)?;
                let shared = Arc::new(Mutex::new(conn));
                (WriteConn::Memory(shared.clone()), Readers::Memory(shared))
            }
            Location::File(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        LedgerError::Config(format!(
                            "cannot create the ledger directory {}: {e}",
                            parent.display()
                        ))
                    })?;
                }
                create_private(&path)?;
                let conn = open_writer(&path, true)?;
                let identity = file_identity(&path).ok_or_else(|| {
                    LedgerError::Unavailable(format!(
                        "{} vanished as it was opened",
                        path.display()
                    ))
                })?;
                let readers = Readers::start(&path)?;
                (
                    WriteConn::File {
                        path,
                        conn: Some((conn, identity)),
                    },
                    readers,
                )
            }
        };
        let group_commit_max = options.group_commit_max.max(1);
        let (tx, rx) = mpsc::channel(group_commit_max.saturating_mul(2));
        let (denial_tx, denial_rx) = std::sync::mpsc::sync_channel(options.denial_queue.max(1));
        let denial_wake = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let writer = Writer {
            conn: write_conn,
            rx,
            denials: denial_rx,
            denial_wake: denial_wake.clone(),
            counters: counters.clone(),
            group_commit_max,
            max_denials: options.max_denials,
            commit_warn: RateLimit::new(Duration::from_secs(5)),
            denial_warn: RateLimit::new(Duration::from_secs(30)),
        };
        let handle = std::thread::Builder::new()
            .name("sasgate-ledger-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| unavailable("cannot start the ledger writer", e))?;
        Ok(Self {
            admin: Arc::new(admin::Admin::new(admin_path)),
            tx: Some(tx),
            denials: denial_tx,
            denial_wake,
            readers: Arc::new(readers),
            counters,
            drop_warn: RateLimit::new(Duration::from_secs(10)),
            writer: Some(handle),
        })
    }

    /// Counters since open.
    pub fn stats(&self) -> LedgerStats {
        self.counters.snapshot()
    }

    async fn send(&self, msg: Msg) -> Result<(), LedgerError> {
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| LedgerError::Unavailable("ledger closed".into()))?;
        tx.send(msg)
            .await
            .map_err(|_| LedgerError::Unavailable("the ledger writer has stopped".into()))
    }

    async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, LedgerError> + Send + 'static,
    ) -> Result<R, LedgerError> {
        match &*self.readers {
            Readers::File { jobs, .. } => {
                let (tx, rx) = oneshot::channel();
                let job: ReadJob = Box::new(move |conn: &mut ReaderConn| {
                    // A caller that gave up (its request timed out) is not read for.
                    if !tx.is_closed() {
                        let _ = tx.send(conn.with(f));
                    }
                });
                let sent = lock(jobs).as_ref().map(|jobs| jobs.try_send(job));
                match sent {
                    Some(Ok(())) => {}
                    Some(Err(TrySendError::Full(_))) => {
                        return Err(LedgerError::Unavailable(format!(
                            "{MAX_QUEUED_READS} ledger reads are already waiting (the ledger's disk is slow or stuck)"
                        )));
                    }
                    Some(Err(TrySendError::Disconnected(_))) | None => {
                        return Err(LedgerError::Unavailable("ledger reads have stopped".into()));
                    }
                }
                rx.await
                    .map_err(|_| LedgerError::Unavailable("a ledger read failed".into()))?
            }
            Readers::Memory(conn) => {
                let conn = conn.clone();
                tokio::task::spawn_blocking(move || f(&lock(&conn)))
                    .await
                    .map_err(|e| unavailable("ledger read task failed", e))?
            }
        }
    }
}

impl Drop for SqliteLedger {
    fn drop(&mut self) {
        // Closing the queues stops the readers and the writer once they have answered what
        // they hold.
        self.readers.close();
        self.tx = None;
        if let Some(handle) = self.writer.take()
            && handle.join().is_err()
        {
            tracing::error!("the ledger writer thread panicked");
        }
    }
}

#[path = "sqlite_admin.rs"]
mod admin;

#[async_trait::async_trait]
impl Ledger for SqliteLedger {
    async fn revoke(
        &self,
        id: &str,
        by: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<IssuanceRecord>, LedgerError> {
        let (id, by, reason) = (id.to_owned(), by.to_owned(), reason.to_owned());
        self.admin
            .write(move |tx| admin::revoke(tx, &id, &by, &reason, at))
            .await
    }

    async fn revoke_policy(
        &self,
        account: &str,
        container: &str,
        policy_id: &str,
        by: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<IssuanceRecord>, LedgerError> {
        let a = [account, container, policy_id, by, reason].map(str::to_owned);
        self.admin
            .write(move |tx| admin::revoke_policy(tx, &a[0], &a[1], &a[2], &a[3], &a[4], at))
            .await
    }

    async fn create_policy(
        &self,
        account: &str,
        container: &str,
        permissions: &str,
        at: DateTime<Utc>,
    ) -> Result<PolicyRecord, LedgerError> {
        let a = [account, container, permissions].map(str::to_owned);
        self.admin
            .write(move |tx| admin::create_policy(tx, &a[0], &a[1], &a[2], at))
            .await
    }

    async fn live_policies(
        &self,
        account: &str,
        container: &str,
    ) -> Result<Vec<LivePolicy>, LedgerError> {
        let a = [account, container].map(str::to_owned);
        self.admin
            .write(move |tx| admin::live_policies(tx, &a[0], &a[1]))
            .await
    }

    async fn remove_policy(
        &self,
        account: &str,
        container: &str,
        policy_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let a = [account, container, policy_id].map(str::to_owned);
        self.admin
            .write(move |tx| admin::remove_policy(tx, &a[0], &a[1], &a[2], at))
            .await
    }

    async fn append_link(
        &self,
        record: IssuanceRecord,
        link: LinkRecord,
    ) -> Result<(), LedgerError> {
        self.admin
            .write(move |tx| {
                admin::append_link(tx, &record, |tx| insert_issuance(tx, &record), &link)
            })
            .await
    }

    async fn redeem(
        &self,
        code_sha256: &str,
        redemption: Redemption,
    ) -> Result<RedeemOutcome, LedgerError> {
        let code = code_sha256.to_owned();
        self.admin
            .write(move |tx| admin::redeem(tx, &code, redemption))
            .await
    }

    async fn chain_head(&self) -> Result<ChainHead, LedgerError> {
        self.read(|conn| {
            conn.query_row("SELECT seq, hash FROM chain_head WHERE id = 1", [], |r| {
                let seq: i64 = r.get(0)?;
                let hash: Vec<u8> = r.get(1)?;
                Ok(ChainHead {
                    seq: u64::try_from(seq).unwrap_or(0),
                    hash: hash.try_into().unwrap_or([0; 32]),
                })
            })
            .map_err(|e| unavailable("ledger read failed", e))
        })
        .await
    }

    async fn chain_entries(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ChainEntry>, LedgerError> {
        let limit = i64::try_from(limit.clamp(1, 10_000)).unwrap_or(10_000);
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, kind, subject, at, payload, prev_hash, hash FROM chain WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .map_err(|e| unavailable("ledger read failed", e))?;
            let rows = stmt
                .query_map(rusqlite::params![after, limit], |r| {
                    let digest = |i: usize| -> rusqlite::Result<[u8; 32]> {
                        let v: Vec<u8> = r.get(i)?;
                        v.try_into()
                            .map_err(|_| conversion_error(i, "a digest that is not 32 bytes".into()))
                    };
                    Ok(ChainEntry {
                        seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                        kind: r.get(1)?,
                        subject: r.get(2)?,
                        at: from_ns(r.get(3)?),
                        payload: r.get(4)?,
                        prev_hash: digest(5)?,
                        hash: digest(6)?,
                    })
                })
                .map_err(|e| unavailable("ledger read failed", e))?;
            rows.collect::<Result<_, _>>()
                .map_err(|e| unavailable("ledger read failed", e))
        })
        .await
    }

    async fn revoke_delegation_keys(
        &self,
        revocation: KeyRevocation,
    ) -> Result<(KeyRevocation, Vec<IssuanceRecord>), LedgerError> {
        self.admin
            .write(move |tx| admin::revoke_delegation_keys(tx, revocation))
            .await
    }

    async fn key_revocations(&self, account: &str) -> Result<Vec<KeyRevocation>, LedgerError> {
        // A read: on a reader connection, not the admin writer (the replicas poll it).
        let account = account.to_owned();
        self.read(move |conn| admin::key_revocations(conn, &account))
            .await
    }

    async fn link(
        &self,
        issuance_id: &str,
    ) -> Result<Option<(LinkRecord, Vec<Redemption>)>, LedgerError> {
        let id = issuance_id.to_owned();
        self.admin.write(move |tx| admin::link(tx, &id)).await
    }

    async fn append(&self, record: IssuanceRecord) -> Result<(), LedgerError> {
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Append(Box::new(record), reply)).await?;
        answer
            .await
            .map_err(|_| LedgerError::Unavailable("the ledger writer dropped the request".into()))?
    }

    async fn record_denial(&self, denial: DenialRecord) {
        match self.denials.try_send(denial) {
            Ok(()) => {
                if !self.denial_wake.swap(true, Ordering::SeqCst)
                    && let Some(tx) = &self.tx
                {
                    // Full: the writer is busy and drains denials after its next group.
                    let _ = tx.try_send(Msg::Wake);
                }
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters
                    .denials_dropped
                    .fetch_add(1, Ordering::Relaxed);
                if self.drop_warn.allow() {
                    tracing::warn!(
                        dropped_total = self.counters.denials_dropped.load(Ordering::Relaxed),
                        "denial queue full; denial records dropped"
                    );
                }
            }
        }
    }

    async fn get(&self, id: &str) -> Result<Option<IssuanceRecord>, LedgerError> {
        let id = id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {ISSUANCE_COLUMNS} FROM issuances WHERE id = ?1"
                ))
                .map_err(|e| unavailable("ledger read failed", e))?;
            stmt.query_row([id], issuance_from_row)
                .optional()
                .map_err(|e| unavailable("ledger read failed", e))
        })
        .await
    }

    async fn list(
        &self,
        filter: &ListFilter,
        now: DateTime<Utc>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page, LedgerError> {
        let limit = limit.clamp(1, 1000);
        let after = cursor.map(decode_cursor).transpose()?;
        let (sql, params) = list_query(filter, now, limit + 1, after);
        self.read(move |conn| {
            let fail = |e: rusqlite::Error| unavailable("ledger list failed", e);
            let mut stmt = conn.prepare_cached(&sql).map_err(fail)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(params), issuance_from_row)
                .map_err(fail)?;
            let items = rows.collect::<Result<Vec<_>, _>>().map_err(fail)?;
            Ok(query::page(items, limit))
        })
        .await
    }

    async fn find_by_signature(
        &self,
        signature_sha256: &str,
    ) -> Result<Option<IssuanceRecord>, LedgerError> {
        // Not a SHA-256 digest: no issuance has it.
        let Some(sig) = sha256_from_hex(signature_sha256.trim()) else {
            return Ok(None);
        };
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {ISSUANCE_COLUMNS} FROM issuances WHERE signature_sha256 = ?1 ORDER BY seq DESC LIMIT 1"
                ))
                .map_err(|e| unavailable("ledger read failed", e))?;
            stmt.query_row([&sig[..]], issuance_from_row)
                .optional()
                .map_err(|e| unavailable("ledger read failed", e))
        })
        .await
    }

    async fn denials(&self, limit: usize) -> Result<Vec<DenialRecord>, LedgerError> {
        let limit = i64::try_from(limit.min(MAX_DENIALS_LISTED)).unwrap_or(0);
        self.read(move |conn| {
            let fail = |e: rusqlite::Error| unavailable("ledger read failed", e);
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, at, principal, client_addr, code, request, reasons FROM denials \
                     ORDER BY seq DESC LIMIT ?1",
                )
                .map_err(fail)?;
            let rows = stmt.query_map([limit], denial_from_row).map_err(fail)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(fail)
        })
        .await
    }

    async fn check(&self) -> Result<(), LedgerError> {
        // Write: a real commit (fsynced) through the writer, which also reopens a connection
        // that failed earlier, so readiness recovers without traffic.
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Check(reply)).await?;
        answer.await.map_err(|_| {
            LedgerError::Unavailable("the ledger writer dropped the request".into())
        })??;
        // Read: through a read connection, as `get` and `list` do.
        self.read(|conn| {
            conn.query_row("SELECT max(version) FROM schema_migrations", [], |row| {
                row.get::<_, Option<i64>>(0)
            })
            .map_err(|e| unavailable("ledger read check failed", e))
            .and_then(|v| match v {
                Some(_) => Ok(()),
                None => Err(LedgerError::Unavailable("the ledger has no schema".into())),
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::super::Status;
    use super::super::query::{Bound, MAX_DENIAL_JSON, bound, encode_cursor, record_ns};
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(parse_location("sqlite::memory:").unwrap(), Location::Memory);
        assert_eq!(
            parse_location("sqlite://data/x.db").unwrap(),
            Location::File("data/x.db".into())
        );
        assert_eq!(
            parse_location("sqlite:///var/lib/x.db").unwrap(),
            Location::File("/var/lib/x.db".into())
        );
        assert_eq!(
            parse_location("/var/lib/x.db").unwrap(),
            Location::File("/var/lib/x.db".into())
        );
        assert!(matches!(
            parse_location("postgres://h/db"),
            Err(LedgerError::Config(_))
        ));
        assert!(matches!(
            parse_location("sqlite://"),
            Err(LedgerError::Config(_))
        ));
        assert!(matches!(
            parse_location("sqlite://x.db?mode=ro"),
            Err(LedgerError::Config(_))
        ));
    }

    #[test]
    fn migrations_are_ordered_and_unique() {
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].version < pair[1].version);
        }
        assert_eq!(MIGRATIONS.first().map(|m| m.version), Some(1));
    }

    #[test]
    fn migrate_is_idempotent_and_refuses_a_newer_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, i64::try_from(MIGRATIONS.len()).unwrap());
        conn.execute(
            "INSERT INTO schema_migrations VALUES (999, 'future', 'x', 'now')",
            [],
        )
        .unwrap();
        assert!(matches!(migrate(&mut conn), Err(LedgerError::Config(_))));
    }

    #[test]
    fn times_round_trip_as_nanoseconds() {
        let a = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let b = a + chrono::Duration::nanoseconds(1);
        let c = a + chrono::Duration::seconds(10);
        let before_1970 = DateTime::parse_from_rfc3339("1900-02-03T04:05:06.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(ns(a) < ns(b) && ns(b) < ns(c));
        for t in [a, b, c, before_1970, from_ns(i64::MIN), from_ns(i64::MAX)] {
            assert_eq!(from_ns(ns(t).unwrap()), t);
            assert_eq!(bound(t), Bound::At(ns(t).unwrap()));
        }
        let far_past = DateTime::parse_from_rfc3339("1000-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let far_future = DateTime::parse_from_rfc3339("9999-12-31T23:59:59.999999999Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(ns(far_past), None);
        assert_eq!(bound(far_past), Bound::Below);
        assert_eq!(saturating_ns(far_past), i64::MIN);
        assert_eq!(bound(far_future), Bound::Above);
        assert_eq!(saturating_ns(far_future), i64::MAX);
        assert!(record_ns("issued_at", far_future).is_err());
    }

    #[test]
    fn digests_are_stored_as_bytes() {
        let hex = "00ff10a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091ab";
        let bytes = sha256_from_hex(hex).unwrap();
        assert_eq!(bytes[0], 0x00);
        assert_eq!(bytes[1], 0xff);
        assert_eq!(hex_lower(&bytes), hex);
        assert_eq!(sha256_from_hex(&hex.to_ascii_uppercase()), Some(bytes));
        for bad in [
            "",
            "00",
            &hex[1..],
            &format!("{hex}0"),
            &hex.replace('f', "g"),
        ] {
            assert_eq!(sha256_from_hex(bad), None, "{bad:?}");
        }
        // Non-ASCII text of the right byte length is refused, not split inside a character.
        assert_eq!(sha256_from_hex(&"é".repeat(32)), None);
    }

    /// Reads beyond the reader threads wait their turn and all answer; a read that panics costs
    /// its caller an error, not a reader; dropping the ledger ends the reader threads.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reader_threads_queue_reads_survive_a_panic_and_stop_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let url = path.to_str().unwrap().to_owned();
        let ledger =
            tokio::task::spawn_blocking(move || SqliteLedger::open(&url, SqliteOptions::default()))
                .await
                .unwrap()
                .unwrap();
        let t = Utc::now();
        let record = super::super::conformance::sample_record("user:a", "acct", t).unwrap();
        let id = record.id.clone();
        ledger.append(record).await.unwrap();
        let ledger = Arc::new(ledger);

        let panicked = ledger
            .read(|_conn: &Connection| -> Result<(), LedgerError> { panic!("a read that panics") })
            .await;
        assert!(
            matches!(panicked, Err(LedgerError::Unavailable(_))),
            "{panicked:?}"
        );

        // Every reader busy at once (each of the first MAX_READERS reads waits until all of them
        // have started, with a deadline), and as many again queued.
        let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut reads = tokio::task::JoinSet::new();
        for n in 0..2 * MAX_READERS {
            let (ledger, started, id) = (ledger.clone(), started.clone(), id.clone());
            reads.spawn(async move {
                ledger
                    .read(move |conn: &Connection| {
                        let mut met = true;
                        if n < MAX_READERS {
                            started.fetch_add(1, Ordering::SeqCst);
                            let deadline = std::time::Instant::now() + Duration::from_secs(10);
                            while started.load(Ordering::SeqCst) < MAX_READERS {
                                if std::time::Instant::now() > deadline {
                                    met = false;
                                    break;
                                }
                                std::thread::sleep(Duration::from_millis(1));
                            }
                        }
                        let found: i64 = conn
                            .query_row("SELECT count(*) FROM issuances WHERE id = ?1", [&id], |r| {
                                r.get(0)
                            })
                            .map_err(|e| unavailable("count", e))?;
                        Ok((met, found, std::thread::current().name().map(str::to_owned)))
                    })
                    .await
            });
        }
        let mut threads = std::collections::BTreeSet::new();
        while let Some(read) = reads.join_next().await {
            let (met, found, thread) = read.unwrap().unwrap();
            assert!(met, "fewer than {MAX_READERS} reads ran at once");
            assert_eq!(found, 1);
            threads.insert(thread.unwrap());
        }
        assert_eq!(threads.len(), MAX_READERS, "the reads ran on {threads:?}");
        assert!(
            threads
                .iter()
                .all(|t| t.starts_with("sasgate-ledger-reader-"))
        );

        let ledger = Arc::into_inner(ledger).unwrap();
        let dropped = tokio::task::spawn_blocking(move || drop(ledger));
        tokio::time::timeout(Duration::from_secs(10), dropped)
            .await
            .expect("the ledger's threads did not stop within 10 s")
            .unwrap();
    }

    /// When every reader is stuck and MAX_QUEUED_READS reads wait, the next read is refused at
    /// once (503) instead of queueing; once the readers are free, reads work again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_read_queue_refuses_at_once_then_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("ledger.db").to_str().unwrap().to_owned();
        let ledger =
            tokio::task::spawn_blocking(move || SqliteLedger::open(&url, SqliteOptions::default()))
                .await
                .unwrap()
                .unwrap();
        let ledger = Arc::new(ledger);
        // Every reader held until `release` is set (or 30 s pass, so a failure cannot hang).
        let release = Arc::new(AtomicBool::new(false));
        let busy = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut held = tokio::task::JoinSet::new();
        for _ in 0..MAX_READERS {
            let (ledger, release, busy) = (ledger.clone(), release.clone(), busy.clone());
            held.spawn(async move {
                ledger
                    .read(move |_conn: &Connection| {
                        busy.fetch_add(1, Ordering::SeqCst);
                        let deadline = std::time::Instant::now() + Duration::from_secs(30);
                        while !release.load(Ordering::SeqCst)
                            && std::time::Instant::now() < deadline
                        {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        Ok(())
                    })
                    .await
            });
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while busy.load(Ordering::SeqCst) < MAX_READERS && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(busy.load(Ordering::SeqCst), MAX_READERS);

        // Fill the queue: polled once, each read enqueues its job and is pending; its caller then
        // goes away (the future is dropped), and the job keeps its place until a reader skips it.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        for _ in 0..MAX_QUEUED_READS {
            let mut read = std::pin::pin!(ledger.read(|_conn: &Connection| Ok(())));
            assert!(read.as_mut().poll(&mut cx).is_pending());
        }
        let mut read = std::pin::pin!(ledger.read(|_conn: &Connection| Ok(())));
        match read.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(Err(LedgerError::Unavailable(m))) => {
                assert!(m.contains("already waiting"), "{m}");
            }
            std::task::Poll::Ready(other) => panic!("refused for another reason: {other:?}"),
            std::task::Poll::Pending => panic!("a read beyond the queue was queued"),
        }

        release.store(true, Ordering::SeqCst);
        while let Some(read) = held.join_next().await {
            read.unwrap().unwrap();
        }
        ledger.read(|_conn: &Connection| Ok(())).await.unwrap();
    }

    #[test]
    fn records_with_unstorable_fields_fail_alone() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let t = Utc::now();
        let good = super::super::conformance::sample_record("user:a", "acct", t).unwrap();
        let mut far = super::super::conformance::sample_record("user:a", "acct", t).unwrap();
        far.expires_on = DateTime::parse_from_rfc3339("3000-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut bad_sig = super::super::conformance::sample_record("user:a", "acct", t).unwrap();
        bad_sig.signature_sha256 = "not hex".into();
        let results = insert_group(&mut conn, &[&far, &good, &bad_sig], true).unwrap();
        assert!(results[0].as_ref().unwrap_err().contains("expires_on"));
        assert!(results[1].is_ok());
        assert!(
            results[2]
                .as_ref()
                .unwrap_err()
                .contains("signature_sha256")
        );
        let n: i64 = conn
            .query_row("SELECT count(*) FROM issuances", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn list_bounds_outside_the_storable_range() {
        let far_past = DateTime::parse_from_rfc3339("1000-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let far_future = DateTime::parse_from_rfc3339("9999-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let filter = |since, until, status| ListFilter {
            since,
            until,
            status,
            ..ListFilter::default()
        };
        let never = |f: &ListFilter, now| list_query(f, now, 10, None).0.contains(" AND 0");
        assert!(!never(
            &filter(Some(far_past), Some(far_future), None),
            far_past
        ));
        assert!(never(&filter(Some(far_future), None, None), far_past));
        assert!(never(&filter(None, Some(far_past), None), far_past));
        assert!(never(&filter(None, None, Some(Status::Active)), far_future));
        assert!(!never(&filter(None, None, Some(Status::Active)), far_past));
        assert!(never(&filter(None, None, Some(Status::Expired)), far_past));
        assert!(!never(
            &filter(None, None, Some(Status::Expired)),
            far_future
        ));
    }

    #[test]
    fn oversized_denial_json_is_stubbed() {
        let small = serde_json::json!({ "account": "a" });
        assert_eq!(bounded_json(&small), small.to_string());
        let big = serde_json::json!({ "blob": "x".repeat(MAX_DENIAL_JSON) });
        let stub: serde_json::Value = serde_json::from_str(&bounded_json(&big)).unwrap();
        assert_eq!(stub["truncated"], serde_json::json!(true));
        let reasons = serde_json::json!(vec!["y".repeat(MAX_DENIAL_JSON)]);
        let stub: Vec<String> = serde_json::from_str(&bounded_json(&reasons)).unwrap();
        assert_eq!(stub.len(), 1);
    }

    #[test]
    fn cursors() {
        assert!(matches!(
            decode_cursor("!!!"),
            Err(LedgerError::InvalidCursor)
        ));
        for garbage in [
            "v1|2026-01-01T00:00:00.000000001Z|iss_1",
            "v2|nope|iss_x",
            "v2|x|y",
            "v2|1|",
            "v2||iss_1",
            "v2|+1|iss_1",
            "v2|-|iss_1",
            "v2|99999999999999999999|iss_1",
            "v2|1",
        ] {
            assert!(
                matches!(
                    decode_cursor(&URL_SAFE_NO_PAD.encode(garbage)),
                    Err(LedgerError::InvalidCursor)
                ),
                "{garbage:?}"
            );
        }
        let good = URL_SAFE_NO_PAD.encode("v2|1767225600000000001|iss_1");
        assert_eq!(
            decode_cursor(&good).unwrap(),
            (1_767_225_600_000_000_001, "iss_1".into())
        );
        let t = from_ns(-5);
        let mut record = super::super::conformance::sample_record("user:a", "acct", t).unwrap();
        record.issued_at = t;
        assert_eq!(
            decode_cursor(&encode_cursor(&record)).unwrap(),
            (-5, record.id.clone())
        );
    }
}
