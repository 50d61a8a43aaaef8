#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The PostgreSQL ledger (issue 7): the shared conformance suite; links, redemptions and stored
//! policies on the chain; two replicas on one schema keeping one chain; migrations under the
//! advisory lock; healing after the database drops every connection; tampering found by
//! `verify`; TLS to a server whose certificate is trusted, and refused when it is not.
//!
//! PostgreSQL: `SASGATE_TEST_PG` (a URL), else postgres://postgres@127.0.0.1:5432/test. Each test
//! works in a fresh random schema, dropped at the end. When the server cannot be reached the
//! tests fail in CI (`CI` set) or when `SASGATE_TEST_PG` is set, and are skipped with a loud
//! warning otherwise.
//!
//! Throughput: `cargo test --release --test ledger_postgres -- --ignored --nocapture`.

use std::collections::HashSet;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use sasgate::ledger::chain::ChainHead;
use sasgate::ledger::conformance::{self, ConformanceOptions, sample_record};
use sasgate::ledger::postgres::{PgOptions, PostgresLedger};
use sasgate::ledger::{
    GoneReason, IssuanceRecord, KeyRevocation, Ledger, LedgerError, LinkRecord, ListFilter,
    RedeemOutcome, Redemption, RevocationMode, SigningMode, StoredStatus, new_id,
};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The server URL, and whether an unreachable server fails the test (instead of skipping it).
fn server() -> (String, bool) {
    match std::env::var("SASGATE_TEST_PG") {
        Ok(url) if !url.trim().is_empty() => (url.trim().to_owned(), true),
        _ => (DEFAULT_URL.to_owned(), std::env::var_os("CI").is_some()),
    }
}

/// `url` with `key=value` added to its query.
fn with_param(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

/// A plain connection for the test's own SQL (schema set-up, tampering, clean-up).
async fn admin_connection(url: &str) -> Result<tokio_postgres::Client, String> {
    let base = url.split_once('?').map_or(url, |(b, _)| b);
    let config = tokio_postgres::Config::from_str(base).map_err(|e| e.to_string())?;
    let connect = async {
        let (client, conn) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("{e}: {:?}", std::error::Error::source(&e)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok::<_, String>(client)
    };
    tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .map_err(|_| "no answer within 5 s".to_string())?
}

/// A fresh schema on the test server.
struct Schema {
    admin: tokio_postgres::Client,
    name: String,
    /// The server URL with `schema=<name>`.
    url: String,
    /// The server URL without it.
    server_url: String,
}

impl Schema {
    /// `None` (after a loud warning) when the server is unreachable and that is allowed.
    async fn new(test: &str) -> Option<Self> {
        let (server_url, required) = server();
        let admin = match admin_connection(&server_url).await {
            Ok(admin) => admin,
            Err(e) if required => panic!(
                "PostgreSQL is required here (CI or SASGATE_TEST_PG is set) but cannot be reached: {e}"
            ),
            Err(e) => {
                eprintln!(
                    "\n\
                     ************************************************************************\n\
                     WARNING: {test} SKIPPED: PostgreSQL is not reachable at {DEFAULT_URL}\n\
                     ({e}). Start it, or set SASGATE_TEST_PG to a server URL. In CI this\n\
                     test fails instead.\n\
                     ************************************************************************\n"
                );
                return None;
            }
        };
        let name = format!(
            "sasgate_t_{}",
            new_id("", Utc::now()).unwrap().to_ascii_lowercase()
        );
        let url = with_param(&server_url, "schema", &name);
        Some(Self {
            admin,
            name,
            url,
            server_url,
        })
    }

    async fn drop_schema(&self) {
        self.admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name))
            .await
            .unwrap();
    }

    /// Plain SQL in this schema.
    async fn sql(&self, statements: &str) {
        self.admin
            .batch_execute(&format!(
                "SET search_path TO \"{}\"; {statements}; RESET search_path",
                self.name
            ))
            .await
            .unwrap();
    }

    async fn count(&self, query: &str) -> i64 {
        self.admin
            .query_one(
                &format!(
                    "SELECT count(*) FROM ({}) q",
                    query.replace("{schema}", &self.name)
                ),
                &[],
            )
            .await
            .unwrap()
            .get(0)
    }
}

/// Runs `body` with a fresh schema (skipping when allowed), dropping the schema afterwards even
/// when `body` panics.
async fn with_schema<F, Fut>(test: &str, body: F)
where
    F: FnOnce(Arc<Schema>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(schema) = Schema::new(test).await else {
        return;
    };
    let schema = Arc::new(schema);
    let outcome = tokio::spawn(body(schema.clone())).await;
    schema.drop_schema().await;
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("test task failed: {e}"),
        }
    }
}

fn options() -> PgOptions {
    PgOptions {
        max_denials: 100,
        ..PgOptions::default()
    }
}

async fn open(url: &str) -> PostgresLedger {
    PostgresLedger::open(url, options()).await.unwrap()
}

fn record(principal: &str, n: i64) -> IssuanceRecord {
    let t = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::milliseconds(n);
    sample_record(principal, "acct", t).unwrap()
}

/// Every entry of the chain, in order.
async fn all_entries(ledger: &dyn Ledger) -> Vec<sasgate::ledger::chain::ChainEntry> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = ledger.chain_entries(after, 10_000).await.unwrap();
        let Some(last) = page.last() else {
            return out;
        };
        after = last.seq;
        out.extend(page);
    }
}

async fn assert_verifies(ledger: &dyn Ledger) -> ChainHead {
    let report = ledger.verify().await.unwrap();
    assert_eq!(report.first_bad, None, "verify: {report:?}");
    let head = ledger.chain_head().await.unwrap();
    assert_eq!(report.entries, head.seq);
    head
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance() {
    with_schema("conformance", |schema| async move {
        let ledger: Arc<dyn Ledger> = Arc::new(open(&schema.url).await);
        let started = Instant::now();
        conformance::run_all(
            ledger.clone(),
            &ConformanceOptions {
                max_denials: 100,
                admin: true,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("conformance: {e}"));
        eprintln!("conformance suite on PostgreSQL: {:?}", started.elapsed());
        // Every entry is where its seq says; the projection agrees (run_all checked verify).
        let entries = all_entries(&*ledger).await;
        assert_eq!(entries.len() as u64, ledger.chain_head().await.unwrap().seq);
        // Nothing but the chain's issuances is in the table.
        let issuances = schema.count("SELECT * FROM {schema}.issuances").await;
        let chained = entries.iter().filter(|e| e.kind == "issuance").count();
        assert_eq!(issuances, chained as i64);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn links_redemptions_and_policies_are_chained() {
    with_schema(
        "links_redemptions_and_policies_are_chained",
        |schema| async move {
            let ledger = open(&schema.url).await;
            let t = Utc.with_ymd_and_hms(2030, 6, 1, 12, 0, 0).unwrap();

            // A link with two uses: two redemptions, then used up.
            let mut issued = sample_record("user:alice", "acct", t).unwrap();
            issued.revocation = RevocationMode::LinkOnly;
            let code = "ab".repeat(32);
            let link = LinkRecord {
                issuance_id: issued.id.clone(),
                code_sha256: code.clone(),
                expires_at: t + chrono::Duration::hours(1),
                max_uses: Some(2),
                uses: 0,
            };
            ledger
                .append_link(issued.clone(), link.clone())
                .await
                .unwrap();
            assert_eq!(ledger.get(&issued.id).await.unwrap(), Some(issued.clone()));
            let redemption = |n: i64| Redemption {
                id: new_id("red_", t).unwrap(),
                issuance_id: String::new(),
                at: t + chrono::Duration::minutes(n),
                client_addr: Some("192.0.2.1".into()),
                user_agent: Some("curl/8".into()),
                signature_sha256: format!("{:064x}", n),
                expires_on: t + chrono::Duration::minutes(n + 5),
            };
            let (r1, r2, r3) = (redemption(1), redemption(2), redemption(3));
            for r in [&r1, &r2] {
                match ledger.redeem(&code, r.clone()).await.unwrap() {
                    RedeemOutcome::Redeemed(got) => assert_eq!(*got, issued),
                    other => panic!("redeem: {other:?}"),
                }
            }
            assert_eq!(
                ledger.redeem(&code, r3.clone()).await.unwrap(),
                RedeemOutcome::Gone(GoneReason::UsedUp)
            );
            assert_eq!(
                ledger.redeem(&"cd".repeat(32), r3.clone()).await.unwrap(),
                RedeemOutcome::Gone(GoneReason::Unknown)
            );
            assert_eq!(
                ledger.redeem("not hex", r3.clone()).await.unwrap(),
                RedeemOutcome::Gone(GoneReason::Unknown)
            );
            let (stored_link, redemptions) = ledger.link(&issued.id).await.unwrap().unwrap();
            assert_eq!(stored_link.uses, 2);
            assert_eq!(stored_link.max_uses, Some(2));
            assert_eq!(stored_link.code_sha256, code);
            let ids: Vec<&str> = redemptions.iter().map(|r| r.id.as_str()).collect();
            assert_eq!(ids, vec![r2.id.as_str(), r1.id.as_str()], "newest first");
            assert_eq!(redemptions[0].issuance_id, issued.id);
            assert_eq!(
                ledger.link(&new_id("iss_", t).unwrap()).await.unwrap(),
                None
            );

            // An expired link, and a revoked one.
            let mut short = sample_record("user:alice", "acct", t).unwrap();
            short.revocation = RevocationMode::LinkOnly;
            let short_code = "ef".repeat(32);
            ledger
                .append_link(
                    short.clone(),
                    LinkRecord {
                        issuance_id: short.id.clone(),
                        code_sha256: short_code.clone(),
                        expires_at: t + chrono::Duration::minutes(1),
                        max_uses: None,
                        uses: 0,
                    },
                )
                .await
                .unwrap();
            assert_eq!(
                ledger.redeem(&short_code, redemption(1)).await.unwrap(),
                RedeemOutcome::Gone(GoneReason::Expired)
            );
            ledger
                .revoke(&short.id, "user:admin", "gone", t)
                .await
                .unwrap();
            assert_eq!(
                ledger.redeem(&short_code, redemption(0)).await.unwrap(),
                RedeemOutcome::Gone(GoneReason::Revoked)
            );
            // A link for an id already stored is refused whole.
            assert!(matches!(
                ledger.append_link(issued.clone(), link.clone()).await,
                Err(LedgerError::Unavailable(_))
            ));

            // Stored policies: generations never reused; revoke_policy revokes its cohort.
            let p1 = ledger.create_policy("acct", "data", "r", t).await.unwrap();
            let p2 = ledger.create_policy("acct", "data", "rw", t).await.unwrap();
            let other = ledger.create_policy("acct", "other", "r", t).await.unwrap();
            assert_eq!((p1.generation, p2.generation, other.generation), (1, 2, 1));
            assert!(p2.policy_id.ends_with("2-rw"), "{}", p2.policy_id);
            let mut bound = Vec::new();
            for i in 0..3 {
                let mut r =
                    sample_record("user:bob", "acct", t + chrono::Duration::seconds(i)).unwrap();
                r.revocation = RevocationMode::StoredAccessPolicy;
                r.policy_id = Some(p1.policy_id.clone());
                r.expires_on = t + chrono::Duration::hours(i + 1);
                ledger.append(r.clone()).await.unwrap();
                bound.push(r);
            }
            let live = ledger.live_policies("acct", "data").await.unwrap();
            assert_eq!(live.len(), 2);
            assert_eq!(live[0].0, p1);
            assert_eq!(live[0].1, Some(t + chrono::Duration::hours(3)));
            assert_eq!(live[1].1, None);
            ledger
                .revoke(&bound[2].id, "user:first", "first", t)
                .await
                .unwrap();
            let revoked = ledger
                .revoke_policy("acct", "data", &p1.policy_id, "user:admin", "leak", t)
                .await
                .unwrap();
            let ids: Vec<&str> = revoked.iter().map(|r| r.id.as_str()).collect();
            assert_eq!(ids, vec![bound[0].id.as_str(), bound[1].id.as_str()]);
            assert!(revoked.iter().all(|r| r.status == StoredStatus::Revoked
                && r.revoked_by.as_deref() == Some("user:admin")));
            ledger
                .remove_policy("acct", "data", &p2.policy_id, t)
                .await
                .unwrap();
            // Removing again changes nothing and writes nothing.
            let before = ledger.chain_head().await.unwrap();
            ledger
                .remove_policy("acct", "data", &p2.policy_id, t)
                .await
                .unwrap();
            assert_eq!(ledger.chain_head().await.unwrap(), before);
            assert!(
                ledger
                    .live_policies("acct", "data")
                    .await
                    .unwrap()
                    .is_empty()
            );
            // Revoking a revoked record is idempotent and writes nothing.
            let again = ledger
                .revoke(&bound[2].id, "user:other", "again", t)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(again.revoked_by.as_deref(), Some("user:first"));
            assert_eq!(ledger.chain_head().await.unwrap(), before);
            assert_eq!(
                ledger
                    .revoke(&new_id("iss_", t).unwrap(), "user:a", "x", t)
                    .await
                    .unwrap(),
                None
            );

            // The chain holds each change once, in order.
            let kinds: Vec<String> = all_entries(&ledger)
                .await
                .into_iter()
                .map(|e| e.kind)
                .collect();
            assert_eq!(
                kinds,
                [
                    "issuance",
                    "link",
                    "redemption",
                    "redemption",
                    "issuance",
                    "link",
                    "revocation",
                    "policy_created",
                    "policy_created",
                    "policy_created",
                    "issuance",
                    "issuance",
                    "issuance",
                    "revocation",
                    "policy_removed",
                    "policy_removed",
                ]
            );
            // The rows that take their seq from the chain point at their entries.
            assert_eq!(
                schema
                    .count(
                        "SELECT 1 FROM {schema}.redemptions r JOIN {schema}.chain c \
                     ON c.seq = r.seq AND c.kind = 'redemption'"
                    )
                    .await,
                2
            );
            assert_verifies(&ledger).await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_extend_one_chain() {
    with_schema("two_replicas_extend_one_chain", |schema| async move {
        let a: Arc<dyn Ledger> = Arc::new(open(&schema.url).await);
        let b: Arc<dyn Ledger> = Arc::new(open(&schema.url).await);
        const TASKS: usize = 16;
        const PER_REPLICA: usize = 500;
        let mut tasks = Vec::new();
        for (r, ledger) in [&a, &b].into_iter().enumerate() {
            for task in 0..TASKS {
                let ledger = ledger.clone();
                tasks.push(tokio::spawn(async move {
                    let mut ids = Vec::new();
                    for n in (task..PER_REPLICA).step_by(TASKS) {
                        let rec = record(&format!("user:replica{r}"), n as i64);
                        ids.push(rec.id.clone());
                        ledger.append(rec).await.unwrap();
                    }
                    ids
                }));
            }
        }
        // Meanwhile, admin writes through both.
        let t = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        for i in 0..5 {
            a.create_policy("acct", "data", "r", t).await.unwrap();
            b.create_policy("acct", "data", "w", t + chrono::Duration::seconds(i))
                .await
                .unwrap();
        }
        let mut ids = Vec::new();
        for task in tasks {
            ids.extend(task.await.unwrap());
        }
        assert_eq!(ids.len(), 2 * PER_REPLICA);
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());

        let head = assert_verifies(&*a).await;
        let entries = all_entries(&*b).await;
        assert_eq!(head.seq, entries.len() as u64);
        assert_eq!(head.seq, (2 * PER_REPLICA + 10) as u64);
        assert_eq!(entries.last().unwrap().hash, head.hash);
        assert_eq!(b.chain_head().await.unwrap(), head);
        let generations: HashSet<u64> = a
            .live_policies("acct", "data")
            .await
            .unwrap()
            .iter()
            .map(|(p, _)| p.generation)
            .collect();
        assert_eq!(generations, (1..=10).collect());

        // A revoke through one replica is seen through the other at once.
        let victim = &ids[123];
        let revoked = a
            .revoke(victim, "user:admin", "leaked", Utc::now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(revoked.status, StoredStatus::Revoked);
        let seen = b.get(victim).await.unwrap().unwrap();
        assert_eq!(seen, revoked);
        let listed = b
            .list(
                &ListFilter {
                    status: Some(sasgate::ledger::Status::Revoked),
                    ..ListFilter::default()
                },
                Utc::now(),
                10,
                None,
            )
            .await
            .unwrap();
        assert_eq!(listed.items, vec![revoked]);
        assert_verifies(&*b).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_together_migrate_once() {
    with_schema(
        "replicas_starting_together_migrate_once",
        |schema| async move {
            let opens: Vec<_> = (0..4)
                .map(|_| {
                    let url = schema.url.clone();
                    tokio::spawn(async move { PostgresLedger::open(&url, options()).await })
                })
                .collect();
            let mut ledgers = Vec::new();
            for open in opens {
                ledgers.push(open.await.unwrap().unwrap());
            }
            let applied: usize = ledgers.iter().map(PostgresLedger::migrations_applied).sum();
            assert_eq!(applied as i64, PostgresLedger::schema_version());
            assert_eq!(
                schema
                    .count("SELECT * FROM {schema}.schema_migrations")
                    .await,
                PostgresLedger::schema_version()
            );
            assert_eq!(
                schema.count("SELECT * FROM {schema}.chain_head").await,
                1,
                "the head row was created once"
            );
            // A later open applies nothing; all of them work.
            let later = open(&schema.url).await;
            assert_eq!(later.migrations_applied(), 0);
            for ledger in &ledgers {
                ledger.append(record("user:m", 1)).await.unwrap();
            }
            assert_verifies(&later).await;

            // A schema newer than this sasgate, and a migration edited after it was applied, are
            // refused.
            schema
                .sql("INSERT INTO schema_migrations VALUES (999, 'future', 'x', 0)")
                .await;
            match PostgresLedger::open(&schema.url, options()).await {
                Err(LedgerError::Config(m)) => assert!(m.contains("newer"), "{m}"),
                other => panic!("a newer schema was accepted: {other:?}"),
            }
            schema
                .sql(
                    "DELETE FROM schema_migrations WHERE version = 999; \
                 UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1",
                )
                .await;
            match PostgresLedger::open(&schema.url, options()).await {
                Err(LedgerError::Config(m)) => assert!(m.contains("differs"), "{m}"),
                other => panic!("an edited migration was accepted: {other:?}"),
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heals_after_the_server_drops_every_connection() {
    with_schema("heals_after_the_server_drops_every_connection", |schema| async move {
        let app = format!("sasgate_{}", &schema.name[schema.name.len() - 12..]);
        let url = with_param(&schema.url, "application_name", &app);
        let ledger = Arc::new(open(&url).await);
        // Warm the pool: appends and reads at once, so several connections are open.
        let warm: Vec<_> = (0..16)
            .map(|n| {
                let ledger = ledger.clone();
                tokio::spawn(async move {
                    let r = record("user:w", n);
                    ledger.append(r.clone()).await.unwrap();
                    assert!(ledger.get(&r.id).await.unwrap().is_some());
                    ledger.chain_head().await.unwrap();
                })
            })
            .collect();
        for w in warm {
            w.await.unwrap();
        }
        let killed: i64 = schema
            .admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
                &[&app],
            )
            .await
            .unwrap()
            .get(0);
        assert!(killed > 0, "no ledger connection to terminate");
        // Appends and reads work again without a restart; a failed one stored nothing that was
        // acknowledged, and every acknowledged one is there.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut failures = 0;
        let mut stored = Vec::new();
        while stored.len() < 20 {
            assert!(Instant::now() < deadline, "the ledger did not heal");
            let r = record("user:heal", 100 + stored.len() as i64 + failures);
            match ledger.append(r.clone()).await {
                Ok(()) => stored.push(r),
                Err(LedgerError::Unavailable(_)) => failures += 1,
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        for r in &stored {
            assert_eq!(ledger.get(&r.id).await.unwrap().as_ref(), Some(r));
        }
        ledger.check().await.unwrap();
        eprintln!(
            "terminated {killed} connections; {failures} appends refused before healing; stats {:?}",
            ledger.stats()
        );
        assert_verifies(&*ledger).await;
    })
    .await;
}

/// A TCP proxy to the test server that can be cut (every connection dropped, new ones
/// refused) and restored on the same port: the database "goes away" and comes back.
struct Proxy {
    port: u16,
    upstream: String,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut proxy = Self {
            port,
            upstream: upstream.to_owned(),
            task: None,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let upstream = self.upstream.clone();
        self.task = Some(tokio::spawn(async move {
            let mut pipes = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                pipes.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Drops every connection through the proxy and refuses new ones.
    async fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    async fn restore(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        self.serve(listener);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fails_closed_while_the_database_is_away_and_heals() {
    with_schema(
        "fails_closed_while_the_database_is_away_and_heals",
        |schema| async move {
            if schema.server_url != DEFAULT_URL {
                eprintln!("the outage test runs against {DEFAULT_URL} only");
                return;
            }
            let mut proxy = Proxy::start("127.0.0.1:5432").await;
            let url = schema
                .url
                .replace("@127.0.0.1:5432", &format!("@127.0.0.1:{}", proxy.port));
            let ledger = Arc::new(
                PostgresLedger::open(
                    &url,
                    PgOptions {
                        op_timeout: Duration::from_secs(3),
                        connect_timeout: Duration::from_secs(2),
                        ..options()
                    },
                )
                .await
                .unwrap(),
            );
            let before = record("user:outage", 0);
            ledger.append(before.clone()).await.unwrap();

            proxy.cut().await;
            let mut refused = Vec::new();
            for n in 1..=5 {
                let r = record("user:outage", n);
                let started = Instant::now();
                match ledger.append(r.clone()).await {
                    Err(LedgerError::Unavailable(m)) => {
                        if refused.is_empty() {
                            eprintln!("while the database is away: {m}");
                        }
                        refused.push(r);
                    }
                    other => panic!("an append while the database is away gave {other:?}"),
                }
                assert!(started.elapsed() < Duration::from_secs(10));
            }
            assert!(matches!(
                ledger.get(&before.id).await,
                Err(LedgerError::Unavailable(_))
            ));
            assert!(ledger.check().await.is_err());

            proxy.restore().await;
            let deadline = Instant::now() + Duration::from_secs(10);
            let after = record("user:outage", 100);
            loop {
                match ledger.append(after.clone()).await {
                    Ok(()) => break,
                    Err(e) => assert!(Instant::now() < deadline, "did not heal: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            ledger.check().await.unwrap();
            assert_eq!(ledger.get(&before.id).await.unwrap(), Some(before));
            assert_eq!(ledger.get(&after.id).await.unwrap(), Some(after));
            for r in &refused {
                assert_eq!(
                    ledger.get(&r.id).await.unwrap(),
                    None,
                    "a refused record was stored"
                );
            }
            let head = assert_verifies(&*ledger).await;
            assert_eq!(head.seq, 2);
            proxy.cut().await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_record_fails_alone_and_stores_nothing() {
    with_schema(
        "a_bad_record_fails_alone_and_stores_nothing",
        |schema| async move {
            let ledger = Arc::new(open(&schema.url).await);
            // A record only the database refuses (a constraint the ledger's own checks do not
            // know), so that the group it lands in fails on the server and is retried record by
            // record.
            schema
                .sql(
                    "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.principal = 'user:poison' THEN \
                 RAISE EXCEPTION 'poisoned' USING ERRCODE = 'check_violation'; END IF; \
                 RETURN NEW; END $$; \
                 CREATE TRIGGER poison BEFORE INSERT ON issuances \
                 FOR EACH ROW EXECUTE FUNCTION poison()",
                )
                .await;
            let mut tasks = Vec::new();
            for n in 0..80 {
                let ledger = ledger.clone();
                let mut r = record("user:bad", n);
                let bad = n % 10 == 3;
                match (n / 10) % 4 {
                    _ if !bad => {}
                    0 => r.reason = Some("nul\0inside".into()),
                    1 => r.signature_sha256 = "zz".into(),
                    2 => r.expires_on = Utc.with_ymd_and_hms(2300, 1, 1, 0, 0, 0).unwrap(),
                    _ => r.principal = "user:poison".into(),
                }
                tasks.push(tokio::spawn(async move {
                    (bad, r.id.clone(), ledger.append(r).await)
                }));
            }
            let mut good = 0;
            for t in tasks {
                let (bad, id, result) = t.await.unwrap();
                if bad {
                    assert!(matches!(result, Err(LedgerError::Unavailable(_))), "{id}");
                    assert_eq!(ledger.get(&id).await.unwrap(), None);
                } else {
                    result.unwrap();
                    good += 1;
                }
            }
            assert_eq!(good, 72);
            let head = assert_verifies(&*ledger).await;
            assert_eq!(head.seq, good);
            assert_eq!(
                schema.count("SELECT * FROM {schema}.chain").await,
                good as i64
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commits_stay_durable_when_the_session_turns_them_off() {
    with_schema(
        "commits_stay_durable_when_the_session_turns_them_off",
        |schema| async move {
            // The connections start with synchronous_commit=off (as a role or database default
            // could set it); the ledger turns it back on, which a trigger checks on every write.
            let url = with_param(&schema.url, "options", "-c%20synchronous_commit%3Doff");
            let ledger = open(&url).await;
            schema
                .sql(
                    "CREATE FUNCTION durable() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF current_setting('synchronous_commit') = 'off' THEN \
                 RAISE EXCEPTION 'synchronous_commit is off'; END IF; \
                 RETURN NEW; END $$; \
                 CREATE TRIGGER durable BEFORE INSERT OR UPDATE ON chain_head \
                 FOR EACH ROW EXECUTE FUNCTION durable(); \
                 CREATE TRIGGER durable BEFORE INSERT OR UPDATE ON health \
                 FOR EACH ROW EXECUTE FUNCTION durable()",
                )
                .await;
            let r = record("user:durable", 1);
            ledger.append(r.clone()).await.unwrap();
            ledger
                .revoke(&r.id, "user:admin", "x", Utc::now())
                .await
                .unwrap();
            ledger.check().await.unwrap();
            // The trigger does fire: a session left with it off is refused.
            let mut admin_off = admin_connection(&schema.server_url).await.unwrap();
            admin_off
                .batch_execute(&format!(
                    "SET synchronous_commit = off; SET search_path TO \"{}\"",
                    schema.name
                ))
                .await
                .unwrap();
            assert!(
                admin_off
                    .transaction()
                    .await
                    .unwrap()
                    .batch_execute("UPDATE chain_head SET seq = seq")
                    .await
                    .is_err()
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tampering_is_found_by_verify() {
    with_schema("tampering_is_found_by_verify", |schema| async move {
        let ledger = open(&schema.url).await;
        let mut ids = Vec::new();
        for n in 0..5 {
            let r = record("user:t", n);
            ids.push(r.id.clone());
            ledger.append(r).await.unwrap();
        }
        ledger
            .revoke(&ids[1], "user:admin", "leaked", Utc::now())
            .await
            .unwrap();
        assert_verifies(&ledger).await;

        // An edited row.
        schema
            .sql(&format!(
                "UPDATE issuances SET permissions = 'racwdl' WHERE id = '{}'",
                ids[2]
            ))
            .await;
        let bad = ledger.verify().await.unwrap().first_bad.unwrap();
        assert_eq!(
            (bad.table, bad.record.as_str()),
            ("issuances", ids[2].as_str())
        );
        schema
            .sql(&format!(
                "UPDATE issuances SET permissions = 'r' WHERE id = '{}'",
                ids[2]
            ))
            .await;
        // A revocation undone by hand.
        schema
            .sql(&format!(
                "UPDATE issuances SET status = 'active', revoked_at = NULL, revoked_by = NULL, \
                 revoke_reason = NULL WHERE id = '{}'",
                ids[1]
            ))
            .await;
        let bad = ledger.verify().await.unwrap().first_bad.unwrap();
        assert_eq!(bad.record, ids[1]);
        // A deleted chain entry.
        schema.sql("DELETE FROM chain WHERE seq = 3").await;
        let bad = ledger.verify().await.unwrap().first_bad.unwrap();
        assert_eq!((bad.table, bad.record.as_str()), ("chain", "4"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_to_a_trusted_server_and_not_to_an_untrusted_one() {
    const CERT: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    with_schema("tls_to_a_trusted_server_and_not_to_an_untrusted_one", |schema| async move {
        // Only where the test server is this machine's, with TLS on and its certificate (for
        // `localhost`) readable here.
        let ssl: String = schema.admin.query_one("SHOW ssl", &[]).await.unwrap().get(0);
        let local = schema.server_url == DEFAULT_URL;
        if ssl != "on" || !local || std::fs::metadata(CERT).is_err() {
            eprintln!("TLS test skipped: the test server has no TLS or its certificate is not at {CERT}");
            return;
        }
        let url = schema.url.replace("@127.0.0.1:", "@localhost:");
        let trusted = with_param(
            &with_param(&url, "sslmode", "verify-full"),
            "sslrootcert",
            CERT,
        );
        let ledger = PostgresLedger::open(&trusted, options()).await.unwrap();
        let r = record("user:tls", 1);
        ledger.append(r.clone()).await.unwrap();
        assert_eq!(ledger.get(&r.id).await.unwrap(), Some(r));
        let app = format!("tls_{}", &schema.name[schema.name.len() - 12..]);
        let named = with_param(&trusted, "application_name", &app);
        let probe = PostgresLedger::open(&named, options()).await.unwrap();
        probe.check().await.unwrap();
        let over_tls: bool = schema
            .admin
            .query_one(
                "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid \
                 WHERE a.application_name = $1",
                &[&app],
            )
            .await
            .unwrap()
            .get(0);
        assert!(over_tls, "the ledger's connections are not encrypted");

        // Without the CA: the self-signed certificate is not trusted, and nothing is written.
        let untrusted = with_param(&url, "sslmode", "require");
        match PostgresLedger::open(&untrusted, options()).await {
            Err(LedgerError::Unavailable(m)) => assert!(
                m.to_lowercase().contains("certificate") || m.contains("tls") || m.contains("TLS"),
                "{m}"
            ),
            other => panic!("an untrusted certificate was accepted: {other:?}"),
        }
    })
    .await;
}

/// Group commit under load: 10 000 appends from 64 tasks on one ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a benchmark: cargo test --release --test ledger_postgres -- --ignored --nocapture"]
async fn append_throughput() {
    with_schema("append_throughput", |schema| async move {
        let ledger = Arc::new(open(&schema.url).await);
        const TASKS: usize = 64;
        const TOTAL: usize = 10_000;
        let records: Vec<IssuanceRecord> = (0..TOTAL)
            .map(|n| {
                let mut r = record("user:bench", n as i64);
                r.signing_mode = SigningMode::UserDelegation;
                r
            })
            .collect();
        let records = Arc::new(records);
        let started = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let ledger = ledger.clone();
                let records = records.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    for n in (task..TOTAL).step_by(TASKS) {
                        let t = Instant::now();
                        ledger.append(records[n].clone()).await.unwrap();
                        latencies.push(t.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await.unwrap());
        }
        let elapsed = started.elapsed();
        latencies.sort();
        let stats = ledger.stats();
        println!(
            "postgres ledger: {TOTAL} appends from {TASKS} tasks in {elapsed:.2?}: {:.0} appends/s; \
             p50 {:?}, p99 {:?}; {} commits, largest group {}",
            TOTAL as f64 / elapsed.as_secs_f64(),
            latencies[latencies.len() / 2],
            latencies[latencies.len() * 99 / 100],
            stats.commits,
            stats.largest_group,
        );
        let head = ledger.chain_head().await.unwrap();
        assert_eq!(head.seq, TOTAL as u64);
        // The emergency stop over all of them, one transaction.
        let t = Instant::now();
        let (stop, revoked) = ledger
            .revoke_delegation_keys(KeyRevocation {
                id: new_id("krv_", Utc::now()).unwrap(),
                at: Utc::now(),
                account: "acct".into(),
                revoked_by: "user:admin".into(),
                reason: "bench".into(),
                revoked_issuances: 0,
            })
            .await
            .unwrap();
        println!(
            "emergency stop over {} issuances: {:?}",
            stop.revoked_issuances,
            t.elapsed()
        );
        assert_eq!(revoked.len(), TOTAL);
        let t = Instant::now();
        assert_verifies(&*ledger).await;
        println!("verify of {} entries: {:?}", TOTAL + 1, t.elapsed());
    })
    .await;
}
