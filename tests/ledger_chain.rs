#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The hash-chained ledger (issue 7): `sasgate ledger verify` finds every deletion, edit,
//! insertion and reordering made with plain SQL, and names the first bad record; `export` and
//! `head` work from the command line.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{Duration, TimeZone, Utc};
use sasgate::ledger::chain::{entry_hash, hex};
use sasgate::ledger::conformance::sample_record;
use sasgate::ledger::sqlite::{SqliteLedger, SqliteOptions};
use sasgate::ledger::{Ledger, LinkRecord, Redemption, RevocationMode};

/// A ledger file with issuances, a revocation, a link and its redemption, and a stored policy
/// revoked with its cohort; returns the config path and the ids of the issuances.
async fn build(dir: &Path) -> (PathBuf, Vec<String>) {
    let db = dir.join("ledger.db");
    let ledger = SqliteLedger::open(db.to_str().unwrap(), SqliteOptions::default()).unwrap();
    let t = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
    let mut ids = Vec::new();
    for i in 0..4 {
        let r = sample_record("user:alice", "acct", t + Duration::seconds(i)).unwrap();
        ids.push(r.id.clone());
        ledger.append(r).await.unwrap();
    }
    ledger
        .revoke(&ids[1], "user:admin", "leaked", t + Duration::minutes(1))
        .await
        .unwrap();
    let mut link = sample_record("user:alice", "acct", t + Duration::seconds(10)).unwrap();
    link.revocation = RevocationMode::LinkOnly;
    let code = "ab".repeat(32);
    ledger
        .append_link(
            link.clone(),
            LinkRecord {
                issuance_id: link.id.clone(),
                code_sha256: code.clone(),
                expires_at: t + Duration::hours(1),
                max_uses: None,
                uses: 0,
            },
        )
        .await
        .unwrap();
    ids.push(link.id.clone());
    ledger
        .redeem(
            &code,
            Redemption {
                id: "red_01TEST".into(),
                issuance_id: String::new(),
                at: t + Duration::minutes(2),
                client_addr: Some("10.0.0.1".into()),
                user_agent: Some("curl".into()),
                signature_sha256: "cd".repeat(32),
                expires_on: t + Duration::minutes(7),
            },
        )
        .await
        .unwrap();
    let policy = ledger
        .create_policy("acct", "data", "r", t + Duration::minutes(3))
        .await
        .unwrap();
    let mut bound = sample_record("user:bob", "acct", t + Duration::minutes(4)).unwrap();
    bound.revocation = RevocationMode::StoredAccessPolicy;
    bound.policy_id = Some(policy.policy_id.clone());
    ids.push(bound.id.clone());
    ledger.append(bound).await.unwrap();
    ledger
        .revoke_policy(
            "acct",
            "data",
            &policy.policy_id,
            "user:admin",
            "cohort",
            t + Duration::minutes(5),
        )
        .await
        .unwrap();
    drop(ledger);
    let config = dir.join("sasgate.toml");
    std::fs::write(
        &config,
        format!(
            "[ledger]\nurl = \"sqlite://{}\"\n[policy]\ndir = \"{}\"\n",
            db.display(),
            dir.display()
        ),
    )
    .unwrap();
    (config, ids)
}

fn sasgate(args: &[&str], config: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sasgate"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn sql(dir: &Path, statements: &str) {
    let conn = rusqlite::Connection::open(dir.join("ledger.db")).unwrap();
    conn.execute_batch(statements).unwrap();
}

#[tokio::test]
async fn an_untouched_ledger_verifies_exports_and_prints_its_head() {
    let dir = tempfile::tempdir().unwrap();
    let (config, ids) = build(dir.path()).await;
    let (code, out) = sasgate(&["ledger", "verify"], &config);
    assert_eq!(code, 0, "{out}");
    // 4 issuances + 1 revocation + link issuance + link + redemption + policy + bound issuance
    // + policy removal = 11 entries.
    assert!(out.contains("ok: 11 chain entries, 6 issuances"), "{out}");

    let (code, head) = sasgate(&["ledger", "head"], &config);
    assert_eq!(code, 0);
    let head = head.trim().to_owned();
    assert!(head.starts_with("11:") && head.len() == 3 + 64, "{head}");
    let (code, out) = sasgate(&["ledger", "verify", "--anchor", &head], &config);
    assert_eq!(code, 0, "{out}");

    let (code, jsonl) = sasgate(&["ledger", "export", "--format", "jsonl"], &config);
    assert_eq!(code, 0);
    let lines: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 11);
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "issuance",
            "issuance",
            "issuance",
            "issuance",
            "revocation",
            "issuance",
            "link",
            "redemption",
            "policy_created",
            "issuance",
            "policy_removed"
        ]
    );
    assert_eq!(lines[4]["event"]["issuance_id"], ids[1].as_str());
    assert_eq!(lines[10]["event"]["revoked"][0], ids[5].as_str());
    // A SIEM can re-check every hash from the export alone: the event's canonical JSON is
    // what was hashed.
    let mut prev = [0u8; 32];
    for l in &lines {
        let payload = sasgate::ledger::chain::canonical(&l["event"]);
        let h = entry_hash(
            &prev,
            l["seq"].as_u64().unwrap(),
            l["kind"].as_str().unwrap(),
            &payload,
        );
        assert_eq!(hex(&h), l["hash"].as_str().unwrap());
        prev = h;
    }
    assert_eq!(format!("11:{}", hex(&prev)), head);
    // Resuming after a seq.
    let (_, tail) = sasgate(&["ledger", "export", "--after", "9"], &config);
    assert_eq!(tail.lines().count(), 2);
}

#[tokio::test]
async fn every_kind_of_tampering_is_found_and_named() {
    type Tamper = Box<dyn Fn(&[String]) -> String>;
    let cases: Vec<(&str, Tamper, &str)> = vec![
        (
            "edit a chain entry",
            Box::new(|_| {
                "UPDATE chain SET payload = replace(payload, '\"r\"', '\"rwdl\"') WHERE seq = 3"
                    .into()
            }),
            "chain record 3: the hash does not match",
        ),
        (
            "delete a chain entry",
            Box::new(|_| "DELETE FROM chain WHERE seq = 5".into()),
            "chain record 6: entries 5..5 are missing",
        ),
        (
            "reorder two chain entries",
            Box::new(|_| {
                "UPDATE chain SET seq = -seq WHERE seq IN (2, 3);
                 UPDATE chain SET seq = 3 WHERE seq = -2;
                 UPDATE chain SET seq = 2 WHERE seq = -3;"
                    .into()
            }),
            "chain record 2:",
        ),
        (
            "cut the chain's tail",
            Box::new(|_| "DELETE FROM chain WHERE seq = 11".into()),
            "chain record 11: entries 11..11 are missing",
        ),
        (
            "edit an issuance row",
            Box::new(|ids| {
                format!(
                    "UPDATE issuances SET permissions = 'racwdl' WHERE id = '{}'",
                    ids[2]
                )
            }),
            "it was edited",
        ),
        (
            "un-revoke an issuance",
            Box::new(|ids| {
                format!(
                    "UPDATE issuances SET status = 'active', revoked_at = NULL, revoked_by = NULL, revoke_reason = NULL WHERE id = '{}'",
                    ids[1]
                )
            }),
            "revocation status differs",
        ),
        (
            "delete an issuance row",
            Box::new(|ids| format!("DELETE FROM issuances WHERE id = '{}'", ids[0])),
            "(deleted)",
        ),
        (
            "insert an issuance row",
            Box::new(|ids| {
                format!(
                "INSERT INTO issuances (id, issued_at, principal, account, container, resource, permissions, starts_on, expires_on, protocol, version, rule, signing_mode, revocation, signature_sha256, status)
                 SELECT 'iss_FORGED', issued_at, principal, account, container, resource, 'racwdl', starts_on, expires_on, protocol, version, rule, signing_mode, revocation, zeroblob(32), status FROM issuances WHERE id = '{}'",
                ids[0]
            )
            }),
            "issuances record iss_FORGED: no chain entry",
        ),
    ];
    for (what, statements, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (config, ids) = build(dir.path()).await;
        sql(dir.path(), &statements(&ids));
        let (code, out) = sasgate(&["ledger", "verify"], &config);
        assert_eq!(code, 1, "{what}: {out}");
        assert!(
            out.contains("FAILED") && out.contains(expected),
            "{what}: {out}"
        );
    }
}

/// Someone with write access recomputes every hash after an edit: the chain is consistent
/// again, and only a head recorded elsewhere (the anchor) shows it.
#[tokio::test]
async fn a_consistent_rewrite_is_caught_by_an_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let (config, ids) = build(dir.path()).await;
    let (_, anchor) = sasgate(&["ledger", "head"], &config);
    let anchor = anchor.trim().to_owned();

    let conn = rusqlite::Connection::open(dir.path().join("ledger.db")).unwrap();
    conn.execute(
        "UPDATE issuances SET permissions = 'rwdl' WHERE id = ?1",
        [&ids[0]],
    )
    .unwrap();
    let rows: Vec<(i64, String, String)> = conn
        .prepare("SELECT seq, kind, payload FROM chain ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut prev = [0u8; 32];
    for (seq, kind, payload) in rows {
        let payload = if seq == 1 {
            payload.replace("\"permissions\":\"r\"", "\"permissions\":\"rwdl\"")
        } else {
            payload
        };
        let h = entry_hash(&prev, u64::try_from(seq).unwrap(), &kind, &payload);
        conn.execute(
            "UPDATE chain SET payload = ?2, prev_hash = ?3, hash = ?4 WHERE seq = ?1",
            rusqlite::params![seq, payload, &prev[..], &h[..]],
        )
        .unwrap();
        prev = h;
    }
    conn.execute("UPDATE chain_head SET hash = ?1 WHERE id = 1", [&prev[..]])
        .unwrap();
    drop(conn);
    let (code, out) = sasgate(&["ledger", "verify"], &config);
    assert_eq!(
        code, 0,
        "a consistent rewrite passes without an anchor: {out}"
    );
    let (code, out) = sasgate(&["ledger", "verify", "--anchor", &anchor], &config);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("chain record 11") && out.contains("anchor"),
        "{out}"
    );
}

/// `verify` on a live ledger: appends and revocations commit while it reads, and it must not
/// mistake them for tampering.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_on_a_busy_ledger_raises_no_false_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("busy.db");
    let ledger: std::sync::Arc<dyn Ledger> = std::sync::Arc::new(
        SqliteLedger::open(db.to_str().unwrap(), SqliteOptions::default()).unwrap(),
    );
    let t = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let mut writers = Vec::new();
    for w in 0..4 {
        let ledger = ledger.clone();
        let stop = stop.clone();
        let done = done.clone();
        writers.push(tokio::spawn(async move {
            let mut n = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = sample_record(&format!("user:w{w}"), "acct", t + Duration::milliseconds(n))
                    .unwrap();
                let id = r.id.clone();
                ledger.append(r).await.unwrap();
                if n % 3 == 0 {
                    ledger.revoke(&id, "user:admin", "busy", t).await.unwrap();
                }
                n += 1;
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            n
        }));
    }
    let mut reports = 0;
    while reports < 15 || done.load(std::sync::atomic::Ordering::Relaxed) < 400 {
        let report = ledger.verify().await.unwrap();
        assert_eq!(report.first_bad, None, "a false alarm on a live ledger");
        reports += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for w in writers {
        total += w.await.unwrap();
    }
    assert!(
        total > 50,
        "the ledger was busy while it was verified ({total} appends)"
    );
    let report = ledger.verify().await.unwrap();
    assert_eq!(report.first_bad, None);
    assert_eq!(report.issuances, u64::try_from(total).unwrap());
}
