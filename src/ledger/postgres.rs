//! The PostgreSQL ledger (issue 7): the same contract as the SQLite one, for several replicas
//! sharing one database.
//!
//! **Connections.** A `deadpool-postgres` pool of `tokio-postgres` connections. A connection
//! that failed (closed, I/O error, timed out) is dropped instead of going back to the pool, and
//! the pool opens a fresh one for the next caller, so the ledger heals without a restart once
//! the database is back. Every new connection sets `search_path` (the `schema=` URL parameter)
//! and turns `synchronous_commit` back on if the server or role had it off: a commit returns
//! only once it is flushed to disk (and to synchronous standbys, if any), or the caller gets
//! [`LedgerError::Unavailable`] and no token.
//!
//! **TLS.** A host other than 127.0.0.1, localhost, ::1 or a Unix socket is reached only over
//! TLS (rustls with the `ring` provider), with the server certificate checked against the
//! webpki roots, or against the CA file given as `sslrootcert=<path>`, and the host name checked.
//!
//! **Migrations** run at open inside one transaction that first takes a fixed advisory lock
//! (`pg_advisory_xact_lock`, released at commit or rollback), so replicas starting together
//! migrate once; a migration whose text differs from the one applied is refused.
//!
//! **Writes and the chain.** Every write is one transaction that first locks the chain head
//! (`SELECT seq, hash FROM chain_head WHERE id = 1 FOR UPDATE`), appends its entries to `chain`
//! (src/ledger/chain.rs), moves the head and updates the tables it is about, then commits. The
//! head lock orders all writers, on every replica, into one chain, and since every write takes
//! it first, writes never deadlock.
//!
//! **Group commit.** Because the head lock serialises writers, `append` does not run one
//! transaction per record: a background task takes whatever appends are queued (up to
//! `group_commit_max`), and in one transaction locks the head, builds the records' chain entries
//! on it, writes the records, the entries and the new head in one statement, and commits; only
//! then is each waiter answered. A record the ledger cannot store (a time out of range, a bad
//! digest, a NUL character) is refused before the transaction; a duplicate id makes the database
//! refuse the statement, and the group is written again without the records whose id is taken;
//! any other data error the database raises makes each record go alone, so one bad record never
//! fails the others. A group whose pooled connection turns out dead before COMMIT was sent (the
//! server restarted) is tried again on a fresh connection; any other failure refuses the whole
//! group, and a failure at or after COMMIT is never retried (its outcome is unknown: the callers
//! get `Unavailable`, so no token leaves).
//!
//! Denials are not chained: a second task writes them in chunks, best effort, from a bounded
//! queue, and prunes the oldest beyond the cap in the same transaction.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{
    GenericClient, Hook, HookError, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime,
};
use percent_encoding::percent_decode_str;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Row;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::types::ToSql;

use super::chain::{ChainEntry, ChainHead};
use super::query::{
    self, Counters, Dialect, ISSUANCE_COLUMNS, Param, RateLimit, Stored, bounded_json, checksum,
    digest, from_ns, hex_lower, ns, saturating_ns, sha256_from_hex, signing_mode_str,
    stored_status_str, time,
};
use super::sqlite::LedgerStats;
use super::{
    DenialRecord, IssuanceRecord, KeyRevocation, Ledger, LedgerError, LinkRecord, ListFilter,
    LivePolicy, Page, PolicyRecord, RedeemOutcome, Redemption, RevocationMode, SigningMode,
    StoredStatus,
};

mod admin;
mod writer;

/// Tuning for [`PostgresLedger`].
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Denials kept; the oldest beyond this are deleted. `0` keeps none.
    pub max_denials: usize,
    /// Denials waiting to be written; more are dropped (and counted).
    pub denial_queue: usize,
    /// The most appends committed in one transaction.
    pub group_commit_max: usize,
    /// Connections in the pool (at least 2: the append writer holds one while it commits).
    pub max_connections: usize,
    /// How long opening a connection may take.
    pub connect_timeout: Duration,
    /// How long one ledger operation (waiting for a connection, the head lock and the commit
    /// included) may take before it is abandoned and its connection dropped. An abandoned write
    /// is answered [`LedgerError::Unavailable`]: no token leaves, whether or not it committed.
    pub op_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            max_denials: 100_000,
            denial_queue: 1024,
            group_commit_max: 256,
            max_connections: 16,
            connect_timeout: Duration::from_secs(5),
            op_timeout: Duration::from_secs(30),
        }
    }
}

/// The schema, in order. Pending files are applied in one transaction under the advisory lock.
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "init",
    sql: include_str!("migrations_pg/0001_init.sql"),
}];

/// The advisory lock key held while migrating: "sasgate\0" as a big-endian i64. Fixed, so that
/// every replica of every version takes the same lock.
const MIGRATION_LOCK_KEY: i64 = i64::from_be_bytes(*b"sasgate\0");

/// Denials written per transaction.
const DENIAL_CHUNK: usize = 512;
/// The most denials one call to `denials` returns.
const MAX_DENIALS_LISTED: usize = 10_000;

/// Inserts issuances ($1–$28, arrays, `seq` first), chain entries ($29–$35, arrays) and moves
/// the head ($36, $37), in one statement: one round trip for a whole group.
const WRITE_ISSUANCES: &str = "WITH i AS (\
     INSERT INTO issuances (seq, id, issued_at, principal, principal_claims, client_addr, account, container, \
     blob, resource, permissions, starts_on, expires_on, ip, protocol, version, rule, reason, signing_mode, \
     revocation, policy_id, signature_sha256, status, revoked_at, revoked_by, revoke_reason, key_oid, key_tid) \
     SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], \
     $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::bigint[], $14::text[], \
     $15::text[], $16::text[], $17::text[], $18::text[], $19::text[], $20::text[], $21::text[], $22::bytea[], \
     $23::text[], $24::bigint[], $25::text[], $26::text[], $27::text[], $28::text[])), \
     c AS (INSERT INTO chain (seq, kind, subject, at, payload, prev_hash, hash) \
     SELECT * FROM UNNEST($29::bigint[], $30::text[], $31::text[], $32::bigint[], $33::text[], $34::bytea[], \
     $35::bytea[])) \
     UPDATE chain_head SET seq = $36, hash = $37 WHERE id = 1";

/// Inserts chain entries ($1–$7, arrays) and moves the head ($8, $9).
const WRITE_CHAIN: &str = "WITH c AS (INSERT INTO chain (seq, kind, subject, at, payload, prev_hash, hash) \
     SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bytea[], \
     $7::bytea[])) \
     UPDATE chain_head SET seq = $8, hash = $9 WHERE id = 1";

const LOCK_HEAD: &str = "SELECT seq, hash FROM chain_head WHERE id = 1 FOR UPDATE";

// ---------------------------------------------------------------------------------------------
// The URL.

/// What `open` connects to, parsed from the URL.
#[derive(Debug)]
struct Target {
    config: tokio_postgres::Config,
    schema: Option<String>,
    /// `sslrootcert`: the CA file to trust instead of the webpki roots.
    root_cert: Option<PathBuf>,
}

/// Whether `host` is this machine: plain TCP is allowed only there.
fn is_loopback(host: &Host) -> bool {
    match host {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            let name = name.trim_start_matches('[').trim_end_matches(']');
            name.eq_ignore_ascii_case("localhost")
                || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
    }
}

/// A schema name sasgate accepts: lowercase ASCII letters, digits and `_`, not starting with a
/// digit or `pg_`, at most 63 bytes, so it needs no quoting anywhere.
fn valid_schema(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && !bytes[0].is_ascii_digit()
        && !name.starts_with("pg_")
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
}

/// Parses `postgres://user[:password]@host[:port][,host2…]/db[?params]`. The parameters
/// `schema`, `sslmode` and `sslrootcert` are sasgate's (taken out before the rest goes to
/// tokio-postgres); every other parameter is tokio-postgres's.
fn parse_url(url: &str, connect_timeout: Duration) -> Result<Target, LedgerError> {
    let text = url.trim();
    if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
        return Err(LedgerError::Config(
            "not a PostgreSQL ledger URL (expected postgres://user@host:port/database)".into(),
        ));
    }
    let (base, query) = text.split_once('?').unwrap_or((text, ""));
    let mut kept = Vec::new();
    let mut schema = None;
    let mut sslmode = None;
    let mut root_cert = None;
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|v| v.into_owned())
                .map_err(|_| LedgerError::Config(format!("the URL parameter {key} is not UTF-8")))
        };
        match decode(key)?.as_str() {
            "schema" => schema = Some(decode(value)?),
            "sslmode" => sslmode = Some(decode(value)?),
            "sslrootcert" => root_cert = Some(decode(value)?),
            _ => kept.push(part),
        }
    }
    let rebuilt = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    // tokio-postgres's messages name the bad option, never the URL (which may hold a password).
    let mut config = tokio_postgres::Config::from_str(&rebuilt)
        .map_err(|e| LedgerError::Config(format!("invalid PostgreSQL ledger URL: {e}")))?;
    if config.get_hosts().is_empty() {
        return Err(LedgerError::Config(
            "the PostgreSQL ledger URL names no host".into(),
        ));
    }
    if let Some(name) = &schema
        && !valid_schema(name)
    {
        return Err(LedgerError::Config(format!(
            "schema={name:?}: use lowercase letters, digits and _ (at most 63, not starting with a digit or pg_)"
        )));
    }
    let local = config.get_hosts().iter().all(is_loopback)
        && config.get_hostaddrs().iter().all(IpAddr::is_loopback);
    let mode = match (sslmode.as_deref(), local) {
        (None | Some("disable"), true) => SslMode::Disable,
        (Some("allow" | "prefer"), true) => SslMode::Prefer,
        (Some("disable"), false) => {
            return Err(LedgerError::Config(
                "sslmode=disable: a ledger on another host is reached only over TLS".into(),
            ));
        }
        (None | Some("allow" | "prefer" | "require" | "verify-ca" | "verify-full"), _) => {
            SslMode::Require
        }
        (Some(other), _) => {
            return Err(LedgerError::Config(format!(
                "sslmode={other:?}: expected disable (loopback only), require, verify-ca or verify-full"
            )));
        }
    };
    config.ssl_mode(mode);
    if config.get_application_name().is_none() {
        config.application_name("sasgate");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(connect_timeout);
    }
    let root_cert = match root_cert.as_deref() {
        None | Some("" | "system") => None,
        Some(path) => Some(PathBuf::from(path)),
    };
    Ok(Target {
        config,
        schema,
        root_cert,
    })
}

/// The TLS connector: rustls with the `ring` provider; the server certificate is checked against
/// the webpki roots, or only against the certificates in `root_cert`, and so is its host name.
fn tls_connector(
    root_cert: Option<&Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, LedgerError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let bad = |e: &dyn std::fmt::Display| {
                LedgerError::Config(format!("sslrootcert {}: {e}", path.display()))
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
                roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
            if roots.is_empty() {
                return Err(bad(&"no certificate in the file"));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| LedgerError::Config(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Run on every new connection: the schema, and durable commits.
fn session_setup(schema: Option<&str>) -> String {
    let mut sql = String::new();
    if let Some(schema) = schema {
        // Validated: lowercase letters, digits and _ only.
        sql.push_str(&format!("SET search_path TO \"{schema}\"; "));
    }
    // `off` acknowledges commits before they are flushed; every other value waits at least for
    // the local flush. Stronger settings (remote_apply, …) are kept.
    sql.push_str(
        "SELECT CASE WHEN current_setting('synchronous_commit') = 'off' \
         THEN set_config('synchronous_commit', 'on', false) END",
    );
    sql
}

// ---------------------------------------------------------------------------------------------
// Errors and connections.

/// A failure inside an operation: a database error (which may leave the connection unusable)
/// or one of the ledger's own.
enum Fail {
    Db(tokio_postgres::Error),
    Ledger(LedgerError),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        Fail::Db(e)
    }
}

impl From<LedgerError> for Fail {
    fn from(e: LedgerError) -> Self {
        Fail::Ledger(e)
    }
}

/// A database error the data caused (a constraint, a bad value): retrying other data on the
/// same connection is fine.
fn is_data_error(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        let code = db.code().code();
        code.starts_with("23") || code.starts_with("22")
    })
}

/// A connection that must not go back to the pool after `e`.
fn is_connection_fault(e: &tokio_postgres::Error, client: &Object) -> bool {
    client.is_closed() || e.as_db_error().is_none() || {
        let code = e.as_db_error().map(|db| db.code().code()).unwrap_or("");
        // connection exceptions, operator intervention (shutdown, cancel), system errors
        code.starts_with("08") || code.starts_with("57") || code.starts_with("58")
    }
}

/// An error with its causes: tokio-postgres and deadpool show only the outermost one ("db
/// error", "error connecting to server") and keep the server's message as the source.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

fn unavailable(context: &str, e: &(dyn std::error::Error + 'static)) -> LedgerError {
    LedgerError::Unavailable(format!("{context}: {}", error_chain(e)))
}

/// The shared part of the ledger: the pool and the limits every operation runs under.
struct Db {
    pool: Pool,
    timeout: Duration,
    counters: Arc<Counters>,
}

impl Db {
    async fn client(&self) -> Result<Object, LedgerError> {
        self.pool
            .get()
            .await
            .map_err(|e| unavailable("no ledger connection", &e))
    }

    /// Turns what an operation on `client` gave into the caller's answer; a connection that
    /// failed, or an operation that timed out, drops the connection instead of pooling it.
    fn settle<R>(
        &self,
        client: Object,
        outcome: Result<Result<R, Fail>, tokio::time::error::Elapsed>,
        context: &str,
    ) -> Result<R, LedgerError> {
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(Fail::Ledger(e))) => Err(e),
            Ok(Err(Fail::Db(e))) => {
                if is_connection_fault(&e, &client) {
                    drop(Object::take(client));
                    self.counters.reopens.fetch_add(1, Ordering::Relaxed);
                }
                Err(unavailable(context, &e))
            }
            Err(_) => {
                // The operation may be half way through: never reuse the connection.
                drop(Object::take(client));
                self.counters.reopens.fetch_add(1, Ordering::Relaxed);
                Err(LedgerError::Unavailable(format!(
                    "{context}: no answer within {:?}",
                    self.timeout
                )))
            }
        }
    }
}

/// Runs `$body` (an async block using `$client: &mut Object`) with a pooled connection under the
/// operation timeout, and settles the outcome.
macro_rules! with_client {
    ($db:expr, $context:expr, |$client:ident| $body:expr) => {{
        let db: &Db = $db;
        match db.client().await {
            Err(e) => Err(e),
            Ok(mut owned) => {
                let outcome = {
                    let $client = &mut owned;
                    tokio::time::timeout(db.timeout, $body).await
                };
                db.settle(owned, outcome, $context)
            }
        }
    }};
}
pub(crate) use with_client;

// ---------------------------------------------------------------------------------------------
// Stored forms.

/// PostgreSQL text cannot hold U+0000.
fn check_text<'a>(
    fields: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<(), String> {
    for (name, value) in fields {
        if value.is_some_and(|v| v.contains('\0')) {
            return Err(format!("{name} contains a NUL character"));
        }
    }
    Ok(())
}

impl Stored {
    /// [`Stored::new`], refusing first what PostgreSQL text cannot hold.
    fn of(r: &IssuanceRecord) -> Result<Self, String> {
        check_text([
            ("id", Some(r.id.as_str())),
            ("principal", Some(r.principal.as_str())),
            ("client_addr", r.client_addr.as_deref()),
            ("account", Some(r.account.as_str())),
            ("container", Some(r.container.as_str())),
            ("blob", r.blob.as_deref()),
            ("resource", Some(r.resource.as_str())),
            ("permissions", Some(r.permissions.as_str())),
            ("ip", r.ip.as_deref()),
            ("protocol", Some(r.protocol.as_str())),
            ("version", Some(r.version.as_str())),
            ("rule", Some(r.rule.as_str())),
            ("reason", r.reason.as_deref()),
            ("policy_id", r.policy_id.as_deref()),
            ("revoked_by", r.revoked_by.as_deref()),
            ("revoke_reason", r.revoke_reason.as_deref()),
            ("key_oid", r.key_oid.as_deref()),
            ("key_tid", r.key_tid.as_deref()),
        ])?;
        Self::new(r)
    }
}

/// Issuance rows as column arrays, for [`WRITE_ISSUANCES`].
#[derive(Default)]
struct IssuanceColumns<'a> {
    seq: Vec<i64>,
    id: Vec<&'a str>,
    issued_at: Vec<i64>,
    principal: Vec<&'a str>,
    claims: Vec<Option<&'a str>>,
    client_addr: Vec<Option<&'a str>>,
    account: Vec<&'a str>,
    container: Vec<&'a str>,
    blob: Vec<Option<&'a str>>,
    resource: Vec<&'a str>,
    permissions: Vec<&'a str>,
    starts_on: Vec<i64>,
    expires_on: Vec<i64>,
    ip: Vec<Option<&'a str>>,
    protocol: Vec<&'a str>,
    version: Vec<&'a str>,
    rule: Vec<&'a str>,
    reason: Vec<Option<&'a str>>,
    signing_mode: Vec<&'static str>,
    revocation: Vec<&'static str>,
    policy_id: Vec<Option<&'a str>>,
    signature: Vec<&'a [u8]>,
    status: Vec<&'static str>,
    revoked_at: Vec<Option<i64>>,
    revoked_by: Vec<Option<&'a str>>,
    revoke_reason: Vec<Option<&'a str>>,
    key_oid: Vec<Option<&'a str>>,
    key_tid: Vec<Option<&'a str>>,
}

impl<'a> IssuanceColumns<'a> {
    fn push(&mut self, seq: u64, r: &'a IssuanceRecord, s: &'a Stored) {
        self.seq.push(i64::try_from(seq).unwrap_or(i64::MAX));
        self.id.push(&r.id);
        self.issued_at.push(s.issued_at);
        self.principal.push(&r.principal);
        self.claims.push(s.claims.as_deref());
        self.client_addr.push(r.client_addr.as_deref());
        self.account.push(&r.account);
        self.container.push(&r.container);
        self.blob.push(r.blob.as_deref());
        self.resource.push(&r.resource);
        self.permissions.push(&r.permissions);
        self.starts_on.push(s.starts_on);
        self.expires_on.push(s.expires_on);
        self.ip.push(r.ip.as_deref());
        self.protocol.push(&r.protocol);
        self.version.push(&r.version);
        self.rule.push(&r.rule);
        self.reason.push(r.reason.as_deref());
        self.signing_mode.push(signing_mode_str(r.signing_mode));
        self.revocation.push(r.revocation.as_str());
        self.policy_id.push(r.policy_id.as_deref());
        self.signature.push(&s.signature[..]);
        self.status.push(stored_status_str(r.status));
        self.revoked_at.push(s.revoked_at);
        self.revoked_by.push(r.revoked_by.as_deref());
        self.revoke_reason.push(r.revoke_reason.as_deref());
        self.key_oid.push(r.key_oid.as_deref());
        self.key_tid.push(r.key_tid.as_deref());
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 28] {
        [
            &self.seq,
            &self.id,
            &self.issued_at,
            &self.principal,
            &self.claims,
            &self.client_addr,
            &self.account,
            &self.container,
            &self.blob,
            &self.resource,
            &self.permissions,
            &self.starts_on,
            &self.expires_on,
            &self.ip,
            &self.protocol,
            &self.version,
            &self.rule,
            &self.reason,
            &self.signing_mode,
            &self.revocation,
            &self.policy_id,
            &self.signature,
            &self.status,
            &self.revoked_at,
            &self.revoked_by,
            &self.revoke_reason,
            &self.key_oid,
            &self.key_tid,
        ]
    }
}

/// Chain entries as column arrays, for [`WRITE_ISSUANCES`] and [`WRITE_CHAIN`].
#[derive(Default)]
struct ChainColumns<'a> {
    seq: Vec<i64>,
    kind: Vec<&'a str>,
    subject: Vec<&'a str>,
    at: Vec<i64>,
    payload: Vec<&'a str>,
    prev_hash: Vec<&'a [u8]>,
    hash: Vec<&'a [u8]>,
}

impl<'a> ChainColumns<'a> {
    fn of(entries: &'a [ChainEntry]) -> Self {
        let mut c = Self::default();
        for e in entries {
            c.seq.push(i64::try_from(e.seq).unwrap_or(i64::MAX));
            c.kind.push(&e.kind);
            c.subject.push(&e.subject);
            c.at.push(saturating_ns(e.at));
            c.payload.push(&e.payload);
            c.prev_hash.push(&e.prev_hash[..]);
            c.hash.push(&e.hash[..]);
        }
        c
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 7] {
        [
            &self.seq,
            &self.kind,
            &self.subject,
            &self.at,
            &self.payload,
            &self.prev_hash,
            &self.hash,
        ]
    }
}

/// The head as stored: `seq` and hash as SQL values.
struct HeadValues {
    seq: i64,
    hash: Vec<u8>,
}

impl HeadValues {
    fn of(head: &ChainHead) -> Self {
        Self {
            seq: i64::try_from(head.seq).unwrap_or(i64::MAX),
            hash: head.hash.to_vec(),
        }
    }
}

fn head_from_row(row: &Row) -> Result<ChainHead, Fail> {
    let seq: i64 = row.try_get(0)?;
    let hash: Vec<u8> = row.try_get(1)?;
    Ok(ChainHead {
        seq: u64::try_from(seq).map_err(|_| {
            LedgerError::Unavailable(format!("the chain head seq {seq} is negative"))
        })?,
        hash: hash
            .try_into()
            .map_err(|_| LedgerError::Unavailable("the chain head hash is not 32 bytes".into()))?,
    })
}

/// Locks the chain head for the rest of the transaction and returns it. Every write takes this
/// lock first.
async fn lock_head(tx: &deadpool_postgres::Transaction<'_>) -> Result<ChainHead, Fail> {
    let stmt = tx.prepare_cached(LOCK_HEAD).await?;
    let row = tx.query_one(&stmt, &[]).await?;
    head_from_row(&row)
}

/// Writes `entries` (built on the locked head) and moves the head to `head`.
async fn write_chain(
    tx: &deadpool_postgres::Transaction<'_>,
    entries: &[ChainEntry],
    head: &ChainHead,
) -> Result<(), Fail> {
    if entries.is_empty() {
        return Ok(());
    }
    let columns = ChainColumns::of(entries);
    let head = HeadValues::of(head);
    let mut params: Vec<&(dyn ToSql + Sync)> = columns.params().to_vec();
    params.push(&head.seq);
    params.push(&head.hash);
    let stmt = tx.prepare_cached(WRITE_CHAIN).await?;
    tx.execute(&stmt, &params).await?;
    Ok(())
}

/// A database value that does not fit the record.
fn bad_value(column: &str, message: impl std::fmt::Display) -> Fail {
    Fail::Ledger(LedgerError::Unavailable(format!(
        "ledger read failed: column {column}: {message}"
    )))
}

fn sha256_column(row: &Row, index: usize, name: &str) -> Result<String, Fail> {
    let bytes: Vec<u8> = row.try_get(index)?;
    if bytes.len() != 32 {
        return Err(bad_value(
            name,
            format!("a SHA-256 digest of {} bytes", bytes.len()),
        ));
    }
    Ok(hex_lower(&bytes))
}

fn json_text(text: &str, name: &str) -> Result<serde_json::Value, Fail> {
    serde_json::from_str(text).map_err(|e| bad_value(name, format!("bad JSON: {e}")))
}

fn u32_column(value: i64, name: &str) -> Result<u32, Fail> {
    u32::try_from(value).map_err(|_| bad_value(name, format!("{value} is out of range")))
}

/// Maps a row selected with [`ISSUANCE_COLUMNS`].
fn issuance_from_row(row: &Row) -> Result<IssuanceRecord, Fail> {
    issuance_from_row_at(row, 0)
}

/// Maps a row whose [`ISSUANCE_COLUMNS`] start at column `base`.
fn issuance_from_row_at(row: &Row, base: usize) -> Result<IssuanceRecord, Fail> {
    let signing_mode = match row.try_get::<_, &str>(base + 17)? {
        "account_key" => SigningMode::AccountKey,
        "user_delegation" => SigningMode::UserDelegation,
        other => return Err(bad_value("signing_mode", format!("unknown {other:?}"))),
    };
    let revocation = match row.try_get::<_, &str>(base + 18)? {
        "expiry_only" => RevocationMode::ExpiryOnly,
        "stored_access_policy" => RevocationMode::StoredAccessPolicy,
        "link_only" => RevocationMode::LinkOnly,
        other => return Err(bad_value("revocation", format!("unknown {other:?}"))),
    };
    let status = match row.try_get::<_, &str>(base + 21)? {
        "active" => StoredStatus::Active,
        "revoked" => StoredStatus::Revoked,
        other => return Err(bad_value("status", format!("unknown {other:?}"))),
    };
    let principal_claims = row
        .try_get::<_, Option<&str>>(base + 3)?
        .map(|t| json_text(t, "principal_claims"))
        .transpose()?;
    Ok(IssuanceRecord {
        id: row.try_get(base)?,
        issued_at: from_ns(row.try_get(base + 1)?),
        principal: row.try_get(base + 2)?,
        principal_claims,
        client_addr: row.try_get(base + 4)?,
        account: row.try_get(base + 5)?,
        container: row.try_get(base + 6)?,
        blob: row.try_get(base + 7)?,
        resource: row.try_get(base + 8)?,
        permissions: row.try_get(base + 9)?,
        starts_on: from_ns(row.try_get(base + 10)?),
        expires_on: from_ns(row.try_get(base + 11)?),
        ip: row.try_get(base + 12)?,
        protocol: row.try_get(base + 13)?,
        version: row.try_get(base + 14)?,
        rule: row.try_get(base + 15)?,
        reason: row.try_get(base + 16)?,
        signing_mode,
        revocation,
        policy_id: row.try_get(base + 19)?,
        signature_sha256: sha256_column(row, base + 20, "signature_sha256")?,
        status,
        revoked_at: row.try_get::<_, Option<i64>>(base + 22)?.map(from_ns),
        revoked_by: row.try_get(base + 23)?,
        revoke_reason: row.try_get(base + 24)?,
        key_oid: row.try_get(base + 25)?,
        key_tid: row.try_get(base + 26)?,
    })
}

fn denial_from_row(row: &Row) -> Result<DenialRecord, Fail> {
    let reasons = json_text(row.try_get(6)?, "reasons")?;
    let reasons: Vec<String> =
        serde_json::from_value(reasons).map_err(|e| bad_value("reasons", e))?;
    Ok(DenialRecord {
        id: row.try_get(0)?,
        at: from_ns(row.try_get(1)?),
        principal: row.try_get(2)?,
        client_addr: row.try_get(3)?,
        code: row.try_get(4)?,
        request: json_text(row.try_get(5)?, "request")?,
        reasons,
    })
}

fn entry_from_row(row: &Row) -> Result<ChainEntry, Fail> {
    let digest = |i: usize, name: &str| -> Result<[u8; 32], Fail> {
        let v: Vec<u8> = row.try_get(i)?;
        v.try_into()
            .map_err(|_| bad_value(name, "a digest that is not 32 bytes"))
    };
    let seq: i64 = row.try_get(0)?;
    Ok(ChainEntry {
        seq: u64::try_from(seq).map_err(|_| bad_value("seq", "negative"))?,
        kind: row.try_get(1)?,
        subject: row.try_get(2)?,
        at: from_ns(row.try_get(3)?),
        payload: row.try_get(4)?,
        prev_hash: digest(5, "prev_hash")?,
        hash: digest(6, "hash")?,
    })
}

/// One issuance by id, through `client` (a connection or a transaction).
async fn get_issuance<C: GenericClient>(
    client: &C,
    id: &str,
) -> Result<Option<IssuanceRecord>, Fail> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {ISSUANCE_COLUMNS} FROM issuances WHERE id = $1"
        ))
        .await?;
    client
        .query_opt(&stmt, &[&id])
        .await?
        .as_ref()
        .map(issuance_from_row)
        .transpose()
}

// ---------------------------------------------------------------------------------------------
// Listing.

/// A cursor as [`query::decode_cursor`] reads it, refusing an id PostgreSQL text cannot hold.
fn decode_cursor(cursor: &str) -> Result<(i64, String), LedgerError> {
    let (at, id) = query::decode_cursor(cursor)?;
    if id.contains('\0') {
        return Err(LedgerError::InvalidCursor);
    }
    Ok((at, id))
}

impl Param {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::Text(t) => t,
            Param::Int(i) => i,
        }
    }
}

/// PostgreSQL's spelling of the listing query: the row limit is the last parameter.
const DIALECT: Dialect = Dialect {
    placeholder: '$',
    always_true: "TRUE",
    always_false: "FALSE",
    bind_limit: true,
};

/// A listing as SQL: the text and its positional parameters (the last one the row limit).
fn list_query(
    filter: &ListFilter,
    now: DateTime<Utc>,
    fetch: usize,
    after: Option<(i64, String)>,
) -> (String, Vec<Param>) {
    query::list_query(&DIALECT, filter, now, fetch, after)
}

// ---------------------------------------------------------------------------------------------
// Migrations.

/// Creates the schema if asked and applies the pending migrations, in one transaction under the
/// migration advisory lock. Returns how many it applied.
async fn migrate(client: &mut Object, schema: Option<&str>) -> Result<usize, Fail> {
    let tx = client.transaction().await?;
    // Held until commit or rollback: a replica starting at the same time waits here, then sees
    // the migrations this one committed.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    if let Some(schema) = schema {
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .await?;
    }
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version     BIGINT PRIMARY KEY,
             name        TEXT   NOT NULL,
             checksum    TEXT   NOT NULL,
             applied_at  BIGINT NOT NULL
         )",
    )
    .await?;
    let applied: Vec<(i64, String)> = tx
        .query(
            "SELECT version, checksum FROM schema_migrations ORDER BY version",
            &[],
        )
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let known = MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0);
    for (version, sum) in &applied {
        match MIGRATIONS.iter().find(|m| m.version == *version) {
            None if *version > known => {
                return Err(LedgerError::Config(format!(
                    "the ledger schema is at version {version}, newer than this sasgate knows ({known}); \
                     run a newer sasgate"
                ))
                .into());
            }
            None => {
                return Err(LedgerError::Config(format!(
                    "the ledger records an unknown migration {version}"
                ))
                .into());
            }
            Some(m) if checksum(m.sql) != *sum => {
                return Err(LedgerError::Config(format!(
                    "ledger migration {version} ({}) differs from the one applied to this database",
                    m.name
                ))
                .into());
            }
            Some(_) => {}
        }
    }
    let mut count = 0;
    for m in MIGRATIONS
        .iter()
        .filter(|m| !applied.iter().any(|(v, _)| *v == m.version))
    {
        tx.batch_execute(m.sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)",
            &[&m.version, &m.name, &checksum(m.sql), &saturating_ns(Utc::now())],
        )
        .await?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "ledger migration applied"
        );
        count += 1;
    }
    tx.commit().await?;
    Ok(count)
}

// ---------------------------------------------------------------------------------------------
// The ledger.

/// The PostgreSQL ledger. See the module documentation.
pub struct PostgresLedger {
    db: Arc<Db>,
    appends: mpsc::Sender<writer::Msg>,
    denials: mpsc::Sender<DenialRecord>,
    drop_warn: RateLimit,
    migrations_applied: usize,
}

impl std::fmt::Debug for PostgresLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresLedger").finish_non_exhaustive()
    }
}

impl PostgresLedger {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/database[?params]`), applies
    /// pending migrations and starts the append and denial writers. Call it inside a Tokio
    /// runtime.
    ///
    /// sasgate's own parameters: `schema=<name>` (tables live there; created if missing; set as
    /// `search_path` on every connection), `sslmode` (`disable` for a loopback host only, the
    /// default there; `require`, `verify-ca` or `verify-full`, which all verify the certificate
    /// and host name; any other host always uses TLS) and `sslrootcert=<path>` (a PEM file of
    /// the CAs to trust instead of the webpki roots). Other parameters are tokio-postgres's
    /// (`application_name`, `connect_timeout`, `target_session_attrs`, …).
    pub async fn open(url: &str, options: PgOptions) -> Result<Self, LedgerError> {
        let target = parse_url(url, options.connect_timeout)?;
        let tls = tls_connector(target.root_cert.as_deref())?;
        let manager = Manager::from_config(
            target.config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let setup: Arc<str> = session_setup(target.schema.as_deref()).into();
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(2))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.op_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .post_create(Hook::async_fn(move |client, _| {
                let setup = setup.clone();
                Box::pin(async move {
                    client
                        .batch_execute(&setup)
                        .await
                        .map_err(HookError::Backend)
                })
            }))
            .build()
            .map_err(|e| LedgerError::Config(format!("cannot build the connection pool: {e}")))?;
        let counters = Arc::new(Counters::default());
        let db = Arc::new(Db {
            pool,
            timeout: options.op_timeout,
            counters: counters.clone(),
        });
        let schema = target.schema;
        let migrations_applied = with_client!(&db, "ledger migration failed", |client| {
            migrate(client, schema.as_deref())
        })?;
        let fsync_off = with_client!(&db, "ledger check failed", |client| async move {
            let row = client.query_one("SHOW fsync", &[]).await?;
            Ok::<_, Fail>(row.try_get::<_, String>(0)? == "off")
        })?;
        if fsync_off {
            tracing::warn!(
                "the ledger database runs with fsync=off: a crash of its host can lose committed issuances"
            );
        }

        let group_commit_max = options.group_commit_max.max(1);
        let (appends, append_rx) = mpsc::channel(group_commit_max.saturating_mul(4));
        let (denials, denial_rx) = mpsc::channel(options.denial_queue.max(1));
        tokio::spawn(
            writer::Writer {
                db: db.clone(),
                group_commit_max,
                commit_warn: RateLimit::new(Duration::from_secs(5)),
            }
            .run(append_rx),
        );
        tokio::spawn(
            writer::DenialWriter {
                db: db.clone(),
                max_denials: options.max_denials,
                warn: RateLimit::new(Duration::from_secs(30)),
            }
            .run(denial_rx),
        );
        Ok(Self {
            db,
            appends,
            denials,
            drop_warn: RateLimit::new(Duration::from_secs(10)),
            migrations_applied,
        })
    }

    /// Counters since open (`reopens` counts connections dropped after a failure).
    pub fn stats(&self) -> LedgerStats {
        self.db.counters.snapshot()
    }

    /// How many migrations this `open` applied (0 when another replica, or an earlier start,
    /// had applied them all).
    pub fn migrations_applied(&self) -> usize {
        self.migrations_applied
    }

    /// The schema version this sasgate writes.
    pub fn schema_version() -> i64 {
        MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
    }

    async fn ask(&self, msg: impl FnOnce(writer::Reply) -> writer::Msg) -> Result<(), LedgerError> {
        let (reply, answer) = oneshot::channel();
        self.appends
            .send(msg(reply))
            .await
            .map_err(|_| LedgerError::Unavailable("the ledger writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| LedgerError::Unavailable("the ledger writer dropped the request".into()))?
    }
}

#[async_trait::async_trait]
impl Ledger for PostgresLedger {
    async fn append(&self, record: IssuanceRecord) -> Result<(), LedgerError> {
        self.ask(|reply| writer::Msg::Append(Box::new(record), reply))
            .await
    }

    async fn record_denial(&self, denial: DenialRecord) {
        if self.denials.try_send(denial).is_err() {
            self.db
                .counters
                .denials_dropped
                .fetch_add(1, Ordering::Relaxed);
            if self.drop_warn.allow() {
                tracing::warn!(
                    dropped_total = self.db.counters.denials_dropped.load(Ordering::Relaxed),
                    "denial queue full; denial records dropped"
                );
            }
        }
    }

    async fn get(&self, id: &str) -> Result<Option<IssuanceRecord>, LedgerError> {
        with_client!(&self.db, "ledger read failed", |client| get_issuance(
            &*client, id
        ))
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
        with_client!(&self.db, "ledger list failed", |client| async move {
            let stmt = client.prepare_cached(&sql).await?;
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(Param::as_sql).collect();
            let rows = client.query(&stmt, &refs).await?;
            let items = rows
                .iter()
                .map(issuance_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, Fail>(query::page(items, limit))
        })
    }

    async fn find_by_signature(
        &self,
        signature_sha256: &str,
    ) -> Result<Option<IssuanceRecord>, LedgerError> {
        // Not a SHA-256 digest: no issuance has it.
        let Some(sig) = sha256_from_hex(signature_sha256.trim()) else {
            return Ok(None);
        };
        with_client!(&self.db, "ledger read failed", |client| async move {
            let stmt = client
                .prepare_cached(&format!(
                    "SELECT {ISSUANCE_COLUMNS} FROM issuances WHERE signature_sha256 = $1 \
                     ORDER BY seq DESC LIMIT 1"
                ))
                .await?;
            client
                .query_opt(&stmt, &[&&sig[..]])
                .await?
                .as_ref()
                .map(issuance_from_row)
                .transpose()
        })
    }

    async fn denials(&self, limit: usize) -> Result<Vec<DenialRecord>, LedgerError> {
        let limit = i64::try_from(limit.min(MAX_DENIALS_LISTED)).unwrap_or(0);
        with_client!(&self.db, "ledger read failed", |client| async move {
            let stmt = client
                .prepare_cached(
                    "SELECT id, at, principal, client_addr, code, request, reasons FROM denials \
                     ORDER BY seq DESC LIMIT $1",
                )
                .await?;
            client
                .query(&stmt, &[&limit])
                .await?
                .iter()
                .map(denial_from_row)
                .collect::<Result<Vec<_>, _>>()
        })
    }

    async fn check(&self) -> Result<(), LedgerError> {
        // Write: a real commit through the append writer, so a stuck writer shows here too.
        self.ask(writer::Msg::Check).await?;
        // Read: as `get` and `list` do.
        let version = with_client!(&self.db, "ledger read check failed", |client| async move {
            let row = client
                .query_one("SELECT max(version) FROM schema_migrations", &[])
                .await?;
            Ok::<_, Fail>(row.try_get::<_, Option<i64>>(0)?)
        })?;
        match version {
            Some(_) => Ok(()),
            None => Err(LedgerError::Unavailable("the ledger has no schema".into())),
        }
    }

    async fn revoke(
        &self,
        id: &str,
        by: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<IssuanceRecord>, LedgerError> {
        admin::revoke(&self.db, id, by, reason, at).await
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
        admin::revoke_policy(&self.db, account, container, policy_id, by, reason, at).await
    }

    async fn create_policy(
        &self,
        account: &str,
        container: &str,
        permissions: &str,
        at: DateTime<Utc>,
    ) -> Result<PolicyRecord, LedgerError> {
        admin::create_policy(&self.db, account, container, permissions, at).await
    }

    async fn live_policies(
        &self,
        account: &str,
        container: &str,
    ) -> Result<Vec<LivePolicy>, LedgerError> {
        admin::live_policies(&self.db, account, container).await
    }

    async fn remove_policy(
        &self,
        account: &str,
        container: &str,
        policy_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        admin::remove_policy(&self.db, account, container, policy_id, at).await
    }

    async fn append_link(
        &self,
        record: IssuanceRecord,
        link: LinkRecord,
    ) -> Result<(), LedgerError> {
        admin::append_link(&self.db, &record, &link).await
    }

    async fn redeem(
        &self,
        code_sha256: &str,
        redemption: Redemption,
    ) -> Result<RedeemOutcome, LedgerError> {
        admin::redeem(&self.db, code_sha256, redemption).await
    }

    async fn revoke_delegation_keys(
        &self,
        revocation: KeyRevocation,
    ) -> Result<(KeyRevocation, Vec<IssuanceRecord>), LedgerError> {
        admin::revoke_delegation_keys(&self.db, revocation).await
    }

    async fn key_revocations(&self, account: &str) -> Result<Vec<KeyRevocation>, LedgerError> {
        admin::key_revocations(&self.db, account).await
    }

    async fn chain_head(&self) -> Result<ChainHead, LedgerError> {
        with_client!(&self.db, "ledger read failed", |client| async move {
            let stmt = client
                .prepare_cached("SELECT seq, hash FROM chain_head WHERE id = 1")
                .await?;
            let row = client.query_one(&stmt, &[]).await?;
            head_from_row(&row)
        })
    }

    async fn chain_entries(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ChainEntry>, LedgerError> {
        let limit = i64::try_from(limit.clamp(1, 10_000)).unwrap_or(10_000);
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        with_client!(&self.db, "ledger read failed", |client| async move {
            let stmt = client
                .prepare_cached(
                    "SELECT seq, kind, subject, at, payload, prev_hash, hash FROM chain \
                     WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .await?;
            client
                .query(&stmt, &[&after, &limit])
                .await?
                .iter()
                .map(entry_from_row)
                .collect::<Result<Vec<_>, _>>()
        })
    }

    async fn link(
        &self,
        issuance_id: &str,
    ) -> Result<Option<(LinkRecord, Vec<Redemption>)>, LedgerError> {
        admin::link(&self.db, issuance_id).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::super::Status;
    use super::super::query::encode_cursor;
    use super::*;

    fn parse(url: &str) -> Result<Target, LedgerError> {
        parse_url(url, Duration::from_secs(5))
    }

    #[test]
    fn loopback_urls_use_plain_tcp_unless_asked() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/test",
            "postgresql://postgres@localhost/test",
            "postgres://postgres@[::1]:5432/test",
            "postgres://postgres@%2Fvar%2Frun%2Fpostgresql/test",
        ] {
            let t = parse(url).unwrap();
            assert_eq!(t.config.get_ssl_mode(), SslMode::Disable, "{url}");
            assert_eq!(t.config.get_application_name(), Some("sasgate"));
        }
        let t = parse("postgres://u@localhost/db?sslmode=require").unwrap();
        assert_eq!(t.config.get_ssl_mode(), SslMode::Require);
        let t =
            parse("postgres://u@localhost/db?sslmode=verify-full&sslrootcert=%2Fca.pem").unwrap();
        assert_eq!(t.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(t.root_cert, Some(PathBuf::from("/ca.pem")));
    }

    #[test]
    fn other_hosts_require_tls() {
        for url in [
            "postgres://u:secret@db.example.com/ledger",
            "postgres://u@10.0.0.5:5432/ledger?sslmode=prefer",
            "postgres://u@localhost,db.example.com/ledger",
            "postgres://u@localhost/ledger?hostaddr=10.1.2.3",
        ] {
            let t = parse(url).unwrap();
            assert_eq!(t.config.get_ssl_mode(), SslMode::Require, "{url}");
        }
        let err = parse("postgres://u:secret@db.example.com/ledger?sslmode=disable").unwrap_err();
        assert!(
            matches!(&err, LedgerError::Config(m) if m.contains("TLS")),
            "{err}"
        );
        assert!(!err.to_string().contains("secret"));
    }

    #[test]
    fn sasgate_parameters_are_taken_out() {
        let t = parse(
            "postgres://u@127.0.0.1/db?application_name=x&schema=sasgate_t1&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(t.schema.as_deref(), Some("sasgate_t1"));
        assert_eq!(t.config.get_application_name(), Some("x"));
        assert_eq!(t.config.get_dbname(), Some("db"));
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&Duration::from_secs(3))
        );
        for bad in [
            "postgres://u@127.0.0.1/db?schema=Bad",
            "postgres://u@127.0.0.1/db?schema=a;drop",
            "postgres://u@127.0.0.1/db?schema=pg_catalog",
            "postgres://u@127.0.0.1/db?schema=1a",
            "postgres://u@127.0.0.1/db?schema=",
            "postgres://u@127.0.0.1/db?sslmode=sometimes",
            "postgres://u@127.0.0.1/db?nonsense=1",
            "sqlite://x.db",
            "127.0.0.1:5432",
        ] {
            assert!(
                matches!(parse(bad), Err(LedgerError::Config(_))),
                "{bad} was accepted"
            );
        }
    }

    #[test]
    fn tls_connector_builds_with_webpki_roots_and_refuses_a_bad_ca_file() {
        assert!(tls_connector(None).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        assert!(matches!(
            tls_connector(Some(&empty)),
            Err(LedgerError::Config(_))
        ));
        assert!(matches!(
            tls_connector(Some(&dir.path().join("missing.pem"))),
            Err(LedgerError::Config(_))
        ));
        let cert = rcgen::generate_simple_self_signed(vec!["db.example.com".into()]).unwrap();
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, cert.cert.pem()).unwrap();
        assert!(tls_connector(Some(&pem)).is_ok());
    }

    #[test]
    fn session_setup_sets_the_schema_and_durable_commits() {
        let sql = session_setup(Some("s1"));
        assert!(sql.starts_with("SET search_path TO \"s1\";"));
        assert!(sql.contains("synchronous_commit"));
        assert!(!session_setup(None).contains("search_path"));
    }

    #[test]
    fn migrations_are_ordered_and_unique() {
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].version < pair[1].version);
        }
        assert_eq!(MIGRATIONS.first().map(|m| m.version), Some(1));
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let t = from_ns(-5);
        let mut record = super::super::conformance::sample_record("user:a", "acct", t).unwrap();
        record.issued_at = t;
        assert_eq!(
            decode_cursor(&encode_cursor(&record)).unwrap(),
            (-5, record.id.clone())
        );
        for garbage in ["v1|1|iss_1", "v2|x|y", "v2|1|", "v2||iss_1", "v2|1|a\0b"] {
            assert!(matches!(
                decode_cursor(&URL_SAFE_NO_PAD.encode(garbage)),
                Err(LedgerError::InvalidCursor)
            ));
        }
    }

    #[test]
    fn list_query_numbers_its_parameters() {
        let filter = ListFilter {
            principal: Some("user:a".into()),
            status: Some(Status::Active),
            ..ListFilter::default()
        };
        let (sql, params) = list_query(&filter, Utc::now(), 11, Some((5, "iss_x".into())));
        assert!(sql.contains("principal = $1"));
        assert!(sql.contains("expires_on > $2"));
        assert!(sql.contains("(issued_at, id) < ($3, $4)"));
        assert!(sql.ends_with("LIMIT $5"));
        assert_eq!(params.len(), 5);
    }

    #[test]
    fn nul_characters_are_refused_before_the_database() {
        let mut r = super::super::conformance::sample_record("user:a", "acct", Utc::now()).unwrap();
        r.reason = Some("a\0b".into());
        assert!(Stored::of(&r).unwrap_err().contains("reason"));
    }
}
