//! The SQLite ledger: the shared conformance suite, durability across reopen, group commit,
//! failing closed on a full (and a read-only) filesystem and healing without a restart, and
//! the denial flood staying bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use common::tmpfs::Tmpfs;
use sasgate::ledger::conformance::{self, ConformanceOptions, sample_record};
use sasgate::ledger::sqlite::{SqliteLedger, SqliteOptions};
use sasgate::ledger::{DenialRecord, IssuanceRecord, Ledger, LedgerError, ListFilter, new_id};

/// A scratch directory on the same disk as the build (not a tmpfs /tmp), so fsync costs what
/// it costs for real.
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ledger-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

fn url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

fn record(principal: &str, n: i64) -> IssuanceRecord {
    let t = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::milliseconds(n);
    sample_record(principal, "acct", t).unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let last = sorted.len().saturating_sub(1);
    let index = ((last as f64) * p).round() as usize;
    sorted[index.min(last)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_on_a_file() {
    let dir = scratch();
    let options = SqliteOptions {
        max_denials: 50,
        ..SqliteOptions::default()
    };
    let ledger: Arc<dyn Ledger> = Arc::new(
        SqliteLedger::open(&url(&dir.path().join("nested/dirs/ledger.db")), options).unwrap(),
    );
    let started = Instant::now();
    conformance::run_all(
        ledger,
        &ConformanceOptions {
            max_denials: 50,
            admin: true,
        },
    )
    .await
    .unwrap();
    eprintln!("conformance on a file: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_in_memory() {
    let options = SqliteOptions {
        max_denials: 50,
        ..SqliteOptions::default()
    };
    let ledger: Arc<dyn Ledger> = Arc::new(SqliteLedger::open("sqlite::memory:", options).unwrap());
    conformance::run_all(
        ledger,
        &ConformanceOptions {
            max_denials: 50,
            admin: false,
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn absolute_urls_and_bad_urls() {
    let dir = scratch();
    let path = dir.path().join("abs.db");
    assert!(path.is_absolute());
    let ledger = SqliteLedger::open(
        &format!("sqlite://{}", path.display()),
        SqliteOptions::default(),
    )
    .unwrap();
    ledger.check().await.unwrap();
    drop(ledger);
    assert!(path.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the ledger file is readable by others: {mode:o}"
        );
    }
    assert!(matches!(
        SqliteLedger::open("postgres://localhost/sasgate", SqliteOptions::default()),
        Err(LedgerError::Config(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_survive_a_reopen() {
    let dir = scratch();
    let db = url(&dir.path().join("ledger.db"));
    let ledger = Arc::new(SqliteLedger::open(&db, SqliteOptions::default()).unwrap());
    let mut records = Vec::new();
    let mut tasks = Vec::new();
    for n in 0..300 {
        let r = record("user:durable", n);
        records.push(r.clone());
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move { ledger.append(r).await }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(ledger.stats().appended, 300);
    drop(ledger);

    // Reopening applies no migration twice and finds every record.
    let ledger = SqliteLedger::open(&db, SqliteOptions::default()).unwrap();
    for r in &records {
        assert_eq!(ledger.get(&r.id).await.unwrap().as_ref(), Some(r));
    }
    let filter = ListFilter {
        principal: Some("user:durable".into()),
        ..ListFilter::default()
    };
    let page = ledger.list(&filter, Utc::now(), 1000, None).await.unwrap();
    assert_eq!(page.items.len(), 300);
    ledger.check().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_appends_share_commits() {
    let dir = scratch();
    let ledger = Arc::new(
        SqliteLedger::open(
            &url(&dir.path().join("ledger.db")),
            SqliteOptions::default(),
        )
        .unwrap(),
    );

    // One at a time: each append is its own commit and fsync.
    let mut alone = Vec::new();
    for n in 0..50 {
        let started = Instant::now();
        ledger.append(record("user:alone", n)).await.unwrap();
        alone.push(started.elapsed());
    }
    alone.sort();
    let before = ledger.stats();
    assert_eq!(before.commits, 50);

    // 200 at once.
    let barrier = Arc::new(tokio::sync::Barrier::new(200));
    let mut tasks = Vec::new();
    for n in 0..200 {
        let ledger = ledger.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let r = record("user:crowd", n);
            barrier.wait().await;
            let started = Instant::now();
            ledger.append(r).await.unwrap();
            started.elapsed()
        }));
    }
    let mut crowd = Vec::new();
    for task in tasks {
        crowd.push(task.await.unwrap());
    }
    crowd.sort();
    let after = ledger.stats();
    let commits = after.commits - before.commits;
    eprintln!(
        "sequential appends: p50 {:?} p99 {:?}; 200 concurrent appends: {commits} commits, largest group {}, \
         p50 {:?} p99 {:?} max {:?}",
        percentile(&alone, 0.5),
        percentile(&alone, 0.99),
        after.largest_group,
        percentile(&crowd, 0.5),
        percentile(&crowd, 0.99),
        crowd.last().unwrap(),
    );
    assert_eq!(after.appended - before.appended, 200);
    assert!(
        commits < 50,
        "200 concurrent appends took {commits} commits"
    );
    assert!(after.largest_group > 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fails_closed_when_the_disk_is_full_and_heals_without_a_restart() {
    let Some(mount) = Tmpfs::mount("2m") else {
        return;
    };
    let db = mount.path().join("ledger.db");
    let ledger = SqliteLedger::open(&url(&db), SqliteOptions::default()).unwrap();
    ledger.append(record("user:disk", 0)).await.unwrap();
    ledger.check().await.unwrap();

    // Full disk: the append fails, and nothing of it is readable.
    let filled = mount.fill();
    let doomed = record("user:disk", 1);
    match ledger.append(doomed.clone()).await {
        Err(LedgerError::Unavailable(e)) => eprintln!("append on a full disk: {e}"),
        other => panic!("append on a full disk gave {other:?}"),
    }
    assert_eq!(ledger.get(&doomed.id).await.unwrap(), None);
    assert!(
        ledger
            .find_by_signature(&doomed.signature_sha256)
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        ledger.check().await,
        Err(LedgerError::Unavailable(_))
    ));
    // Still failing while the disk stays full, even with a fresh connection.
    assert!(ledger.append(record("user:disk", 2)).await.is_err());

    // Space again: the very next append works, on the same ledger.
    mount.unfill();
    let healed = record("user:disk", 3);
    ledger.append(healed.clone()).await.unwrap();
    assert_eq!(ledger.get(&healed.id).await.unwrap(), Some(healed));
    assert_eq!(ledger.get(&doomed.id).await.unwrap(), None);
    ledger.check().await.unwrap();
    let stats = ledger.stats();
    eprintln!("disk full: filler {filled} bytes; {stats:?}");
    assert!(stats.failed_commits >= 2 && stats.reopens >= 1, "{stats:?}");

    // Read-only filesystem. Linux refuses `remount,ro` with EBUSY while any file on the mount
    // is open for writing, and the ledger keeps its database, WAL and shared-memory files open
    // read-write for its whole life: expect that, and keep the disk-full case as the proof.
    match mount.remount("ro") {
        Err(e) => eprintln!("read-only remount refused while the ledger is open, as expected: {e}"),
        Ok(()) => {
            let refused = record("user:disk", 4);
            let result = ledger.append(refused.clone()).await;
            mount.remount("rw").unwrap();
            assert!(
                matches!(result, Err(LedgerError::Unavailable(_))),
                "append on a read-only fs: {result:?}"
            );
            assert_eq!(ledger.get(&refused.id).await.unwrap(), None);
            ledger.append(record("user:disk", 5)).await.unwrap();
        }
    }
    drop(ledger);
    drop(mount);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ledger_file_moved_away_fails_closed_and_heals_when_put_back() {
    let dir = scratch();
    let db = dir.path().join("ledger.db");
    let ledger = SqliteLedger::open(&url(&db), SqliteOptions::default()).unwrap();
    ledger.append(record("user:moved", 0)).await.unwrap();

    let aside = dir.path().join("ledger.db.aside");
    std::fs::rename(&db, &aside).unwrap();
    let lost = record("user:moved", 1);
    let result = ledger.append(lost.clone()).await;
    assert!(
        matches!(result, Err(LedgerError::Unavailable(_))),
        "append to a moved ledger: {result:?}"
    );
    // No empty ledger was created in its place.
    assert!(!db.exists());
    assert!(ledger.check().await.is_err());

    std::fs::rename(&aside, &db).unwrap();
    let kept = record("user:moved", 2);
    ledger.append(kept.clone()).await.unwrap();
    assert_eq!(ledger.get(&kept.id).await.unwrap(), Some(kept));
    assert_eq!(ledger.get(&lost.id).await.unwrap(), None);
    eprintln!("moved away and back: {:?}", ledger.stats());
}

fn denial(n: usize) -> DenialRecord {
    let at = Utc::now();
    DenialRecord {
        id: new_id("den_", at).unwrap(),
        at,
        principal: Some("user:mallory".into()),
        client_addr: Some("192.0.2.1".into()),
        code: "account_sas_refused".into(),
        request: serde_json::json!({ "account": "acct", "n": n }),
        reasons: vec!["no rule allows account-wide tokens".into()],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_denial_flood_is_cheap_and_bounded() {
    let dir = scratch();
    let path = dir.path().join("ledger.db");
    let options = SqliteOptions {
        max_denials: 100,
        ..SqliteOptions::default()
    };
    let ledger = SqliteLedger::open(&url(&path), options).unwrap();

    // Watch the table while the flood is written.
    let watcher_path = path.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher_stop = stop.clone();
    let watcher = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open_with_flags(
            &watcher_path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let mut most = 0i64;
        let mut looks = 0u64;
        while !watcher_stop.load(std::sync::atomic::Ordering::Relaxed) {
            let n: i64 = conn
                .query_row("SELECT count(*) FROM denials", [], |r| r.get(0))
                .unwrap();
            most = most.max(n);
            looks += 1;
            std::thread::sleep(Duration::from_micros(100));
        }
        (most, looks)
    });

    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for n in 0..10_000 {
        let d = denial(n);
        let one = Instant::now();
        ledger.record_denial(d).await;
        slowest = slowest.max(one.elapsed());
    }
    let flood = started.elapsed();

    // Wait for the writer to account for every denial.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = ledger.stats();
        if s.denials_written + s.denials_dropped + s.denials_failed == 10_000 {
            break;
        }
        assert!(Instant::now() < deadline, "denials not settled: {s:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (most, looks) = watcher.join().unwrap();
    let stats = ledger.stats();
    let kept = ledger.denials(10_000).await.unwrap();
    eprintln!(
        "10000 denials recorded in {flood:?} (slowest call {slowest:?}); written {}, dropped {}, failed {}; \
         most rows seen {most} over {looks} looks; kept {}",
        stats.denials_written,
        stats.denials_dropped,
        stats.denials_failed,
        kept.len()
    );
    assert!(
        slowest < Duration::from_millis(50),
        "a record_denial call took {slowest:?}"
    );
    assert!(flood < Duration::from_secs(5));
    assert!(most <= 100, "the denial table held {most} rows");
    assert_eq!(kept.len(), 100);
    assert_eq!(stats.denials_failed, 0);
    // Newest first (the writer keeps the newest it got; a full queue dropped others).
    let ns: Vec<u64> = kept
        .iter()
        .map(|d| d.request["n"].as_u64().unwrap())
        .collect();
    assert!(ns.windows(2).all(|w| w[0] > w[1]), "{ns:?}");
    // Appends still work after the flood.
    ledger.append(record("user:after-flood", 0)).await.unwrap();
}
