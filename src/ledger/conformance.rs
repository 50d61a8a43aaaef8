//! The contract every [`Ledger`] backend meets, as a reusable test suite.
//!
//! Backends run it from their integration tests (`run_all`, or the single checks). Every check
//! tags its records with a fresh random tag and filters by it, so the suite also runs against a
//! ledger that already holds data, and checks do not see each other's records. The exceptions
//! are the denial checks: denials cannot be filtered, so those expect no other denials to be
//! recorded while they run.
//!
//! Times are whole microseconds (PostgreSQL's precision); a backend must round-trip at least
//! that. Each check returns `Err(description)` instead of panicking, so it can live in the
//! library under its lint rules.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Timelike, Utc};
use sha2::{Digest, Sha256};

use super::{
    DenialRecord, IssuanceRecord, KeyRevocation, Ledger, LedgerError, ListFilter, RevocationMode,
    SigningMode, Status, StoredStatus, new_id,
};

/// What a check found wrong.
pub type Outcome = Result<(), String>;

/// How the backend under test is configured.
#[derive(Clone, Debug)]
pub struct ConformanceOptions {
    /// The backend's denial cap. Its denial queue must hold at least `max_denials + 10`.
    pub max_denials: usize,
    /// Run the checks of the admin operations (revocation, emergency stops). The SQLite memory
    /// ledger, a test-only backend, cannot open the second connection they use.
    pub admin: bool,
}

macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+));
        }
    };
}

fn same<T: PartialEq + Debug>(what: &str, got: &T, want: &T) -> Outcome {
    ensure!(got == want, "{what}:\n   got {got:?}\n  want {want:?}");
    Ok(())
}

fn ok<T>(what: &str, result: Result<T, LedgerError>) -> Result<T, String> {
    result.map_err(|e| format!("{what}: {e}"))
}

/// Runs every check in turn.
pub async fn run_all(ledger: Arc<dyn Ledger>, options: &ConformanceOptions) -> Outcome {
    round_trip(&*ledger).await?;
    find_by_signature(&*ledger).await?;
    duplicates_rejected(&*ledger).await?;
    list_filters(&*ledger).await?;
    pagination(&*ledger).await?;
    invalid_cursor(&*ledger).await?;
    limit_clamped(&*ledger).await?;
    denials_round_trip(&*ledger).await?;
    denials_capped(&*ledger, options.max_denials).await?;
    concurrent_appends(ledger.clone()).await?;
    concurrent_appends_isolate_a_bad_record(ledger.clone()).await?;
    if options.admin {
        delegation_key_revocation(&*ledger).await?;
    }
    chain_verifies(&*ledger).await?;
    ok("check", ledger.check().await)?;
    Ok(())
}

/// After everything above, the chain is whole and agrees with every issuance row.
pub async fn chain_verifies(ledger: &dyn Ledger) -> Outcome {
    let report = ok("verify", ledger.verify().await)?;
    ensure!(
        report.first_bad.is_none(),
        "verify found a bad record: {:?}",
        report.first_bad
    );
    let head = ok("chain_head", ledger.chain_head().await)?;
    ensure!(
        report.entries == head.seq && head.seq >= report.issuances,
        "the chain ({} entries, head {}) does not cover the {} issuances",
        report.entries,
        head.seq,
        report.issuances
    );
    ensure!(report.issuances > 0, "no issuance was checked");
    Ok(())
}

/// A fresh tag for one check's records.
fn tag() -> Result<String, String> {
    ok("new_id", new_id("", Utc::now())).map(|id| id.to_ascii_lowercase())
}

/// A fixed instant, whole seconds, far from any real clock.
fn base() -> Result<DateTime<Utc>, String> {
    Utc.with_ymd_and_hms(2030, 6, 1, 12, 0, 0)
        .single()
        .ok_or_else(|| "bad base time".to_string())
}

fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(t.nanosecond() / 1000 * 1000).unwrap_or(t)
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A plain active record issued at `issued_at`, valid for an hour, with a unique id and
/// signature hash.
pub fn sample_record(
    principal: &str,
    account: &str,
    issued_at: DateTime<Utc>,
) -> Result<IssuanceRecord, String> {
    let id = ok("new_id", new_id("iss_", issued_at))?;
    Ok(IssuanceRecord {
        signature_sha256: sha256_hex(&id),
        id,
        issued_at: micros(issued_at),
        principal: principal.into(),
        principal_claims: None,
        client_addr: None,
        account: account.into(),
        container: "data".into(),
        blob: None,
        resource: "c".into(),
        permissions: "r".into(),
        starts_on: micros(issued_at - chrono::Duration::minutes(15)),
        expires_on: micros(issued_at + chrono::Duration::hours(1)),
        ip: None,
        protocol: "https".into(),
        version: "2025-07-05".into(),
        rule: "default".into(),
        reason: None,
        signing_mode: SigningMode::AccountKey,
        revocation: RevocationMode::ExpiryOnly,
        policy_id: None,
        status: StoredStatus::Active,
        revoked_at: None,
        revoked_by: None,
        revoke_reason: None,
        key_oid: None,
        key_tid: None,
    })
}

async fn append_all(ledger: &dyn Ledger, records: &[IssuanceRecord]) -> Outcome {
    for r in records {
        ok(&format!("append {}", r.id), ledger.append(r.clone()).await)?;
    }
    Ok(())
}

/// Every field survives append then get exactly: all options set, none set, odd text.
pub async fn round_trip(ledger: &dyn Ledger) -> Outcome {
    let tag = tag()?;
    let t = base()? + chrono::Duration::microseconds(123_456);
    let mut full = sample_record(
        &format!("oidc:https://login.example/{tag}#subject-1"),
        "acct",
        t,
    )?;
    full.principal_claims = Some(serde_json::json!({
        "iss": "https://login.example/", "sub": "subject-1", "groups": ["a", "b"],
        "n": 42, "f": 1.5, "ok": true, "nothing": null, "nested": { "k": "v" }
    }));
    full.client_addr = Some("2001:db8::1".into());
    full.blob = Some("dir/sub dir/ünïcødé 📄 'q\" ?x=1&y#z.csv".into());
    full.resource = "b".into();
    full.permissions = "racwdl".into();
    full.ip = Some("10.0.0.1-10.0.0.255".into());
    full.protocol = "https,http".into();
    full.reason = Some("line one\nline two; DROP TABLE issuances; --".into());
    full.signing_mode = SigningMode::UserDelegation;
    full.revocation = RevocationMode::StoredAccessPolicy;
    full.policy_id = Some("sg-policy-1".into());
    full.status = StoredStatus::Revoked;
    full.revoked_at = Some(micros(t + chrono::Duration::microseconds(987_654_321)));
    full.revoked_by = Some("user:admin".into());
    full.revoke_reason = Some("leaked in a ticket".into());
    full.key_oid = Some("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee".into());
    full.key_tid = Some("72f988bf-86f1-41af-91ab-2d7cd011db47".into());

    let minimal = sample_record(&format!("user:{tag}"), "acct", t)?;
    let mut link = sample_record(
        &format!("user:{tag}"),
        "acct",
        t + chrono::Duration::seconds(1),
    )?;
    link.revocation = RevocationMode::LinkOnly;
    link.principal_claims = Some(serde_json::json!([]));

    for record in [&full, &minimal, &link] {
        ok("append", ledger.append(record.clone()).await)?;
        let got = ok("get", ledger.get(&record.id).await)?;
        same("get after append", &got.as_ref(), &Some(record))?;
    }
    let missing = ok("new_id", new_id("iss_", t))?;
    same(
        "get of an unknown id",
        &ok("get", ledger.get(&missing).await)?,
        &None,
    )?;
    Ok(())
}

/// The emergency stop revokes exactly the account's active user delegation issuances, in one
/// commit with its own record.
pub async fn delegation_key_revocation(ledger: &dyn Ledger) -> Outcome {
    let tag = tag()?;
    let account = format!("k{}", &tag[tag.len() - 12..]);
    let other = format!("o{}", &tag[tag.len() - 12..]);
    let t = base()?;
    let mut records = Vec::new();
    for (i, (acct, mode)) in [
        (&account, SigningMode::UserDelegation),
        (&account, SigningMode::UserDelegation),
        (&account, SigningMode::AccountKey),
        (&other, SigningMode::UserDelegation),
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = sample_record(
            &format!("user:{tag}"),
            acct,
            t + chrono::Duration::seconds(i64::try_from(i).unwrap_or(0)),
        )?;
        r.signing_mode = mode;
        records.push(r);
    }
    // One already revoked by hand keeps its own revocation.
    let mut earlier = sample_record(&format!("user:{tag}"), &account, t)?;
    earlier.signing_mode = SigningMode::UserDelegation;
    records.push(earlier.clone());
    append_all(ledger, &records).await?;
    ok(
        "revoke one",
        ledger.revoke(&earlier.id, "user:first", "first", t).await,
    )?;
    let at = micros(t + chrono::Duration::minutes(5));
    let (stop, revoked) = ok(
        "revoke_delegation_keys",
        ledger
            .revoke_delegation_keys(KeyRevocation {
                id: ok("new_id", new_id("krv_", at))?,
                at,
                account: account.clone(),
                revoked_by: "user:admin".into(),
                reason: "key leaked".into(),
                revoked_issuances: 0,
            })
            .await,
    )?;
    let mut ids: Vec<&str> = revoked.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    let mut want = vec![records[0].id.as_str(), records[1].id.as_str()];
    want.sort_unstable();
    same("revoked ids", &ids, &want)?;
    same("revoked count", &stop.revoked_issuances, &2)?;
    for r in &revoked {
        same("status", &r.status, &StoredStatus::Revoked)?;
        same("revoked_at", &r.revoked_at, &Some(at))?;
        same("revoked_by", &r.revoked_by.as_deref(), &Some("user:admin"))?;
    }
    for untouched in [&records[2], &records[3]] {
        let got = ok("get", ledger.get(&untouched.id).await)?;
        same(
            "untouched status",
            &got.map(|g| g.status),
            &Some(StoredStatus::Active),
        )?;
    }
    let first = ok("get", ledger.get(&earlier.id).await)?;
    same(
        "earlier revocation kept",
        &first.and_then(|g| g.revoked_by),
        &Some("user:first".to_owned()),
    )?;
    let log = ok("key_revocations", ledger.key_revocations(&account).await)?;
    same("recorded stops", &log, &vec![stop])?;
    same(
        "no stop for the other account",
        &ok("key_revocations", ledger.key_revocations(&other).await)?.len(),
        &0,
    )?;
    Ok(())
}

/// `find_by_signature` finds the record by its signature hash, and nothing for an unknown hash.
pub async fn find_by_signature(ledger: &dyn Ledger) -> Outcome {
    let tag = tag()?;
    let t = base()?;
    let records: Vec<IssuanceRecord> = (0..3)
        .map(|i| {
            sample_record(
                &format!("user:{tag}"),
                "acct",
                t + chrono::Duration::seconds(i),
            )
        })
        .collect::<Result<_, _>>()?;
    append_all(ledger, &records).await?;
    for r in &records {
        let got = ok(
            "find_by_signature",
            ledger.find_by_signature(&r.signature_sha256).await,
        )?;
        same("find_by_signature", &got.as_ref(), &Some(r))?;
    }
    let unknown = sha256_hex(&format!("nothing-{tag}"));
    same(
        "find_by_signature of an unknown hash",
        &ok("find", ledger.find_by_signature(&unknown).await)?,
        &None,
    )?;
    Ok(())
}

/// A second record with an existing id is refused, and the first is intact; a repeated
/// signature hash is accepted.
pub async fn duplicates_rejected(ledger: &dyn Ledger) -> Outcome {
    let tag = tag()?;
    let t = base()?;
    let original = sample_record(&format!("user:{tag}"), "acct", t)?;
    ok("append", ledger.append(original.clone()).await)?;

    let mut same_id = sample_record(&format!("user:{tag}"), "acct", t)?;
    same_id.id = original.id.clone();
    same_id.rule = "other".into();
    ensure!(
        ledger.append(same_id).await.is_err(),
        "a record with an existing id was accepted"
    );

    // The same signature twice is allowed (identical requests in the same second sign the same
    // token); lookup by signature finds the newest.
    let mut same_sig = sample_record(&format!("user:{tag}"), "acct", t)?;
    same_sig.signature_sha256 = original.signature_sha256.clone();
    ok(
        "append with a repeated signature",
        ledger.append(same_sig.clone()).await,
    )?;
    same(
        "lookup by a repeated signature",
        &ok(
            "find",
            ledger.find_by_signature(&original.signature_sha256).await,
        )?
        .map(|r| r.id),
        &Some(same_sig.id.clone()),
    )?;

    same(
        "the original after duplicates",
        &ok("get", ledger.get(&original.id).await)?,
        &Some(original),
    )?;
    Ok(())
}

/// The records `list` should return, in order: the oracle every backend is compared with.
fn expected(records: &[IssuanceRecord], filter: &ListFilter, now: DateTime<Utc>) -> Vec<String> {
    let mut matching: Vec<&IssuanceRecord> = records
        .iter()
        .filter(|r| filter.principal.as_ref().is_none_or(|p| &r.principal == p))
        .filter(|r| filter.account.as_ref().is_none_or(|a| &r.account == a))
        .filter(|r| filter.container.as_ref().is_none_or(|c| &r.container == c))
        .filter(|r| filter.status.is_none_or(|s| r.status_at(now) == s))
        .filter(|r| filter.since.is_none_or(|s| r.issued_at >= s))
        .filter(|r| filter.until.is_none_or(|u| r.issued_at < u))
        .collect();
    matching.sort_by(|a, b| (b.issued_at, &b.id).cmp(&(a.issued_at, &a.id)));
    matching.into_iter().map(|r| r.id.clone()).collect()
}

/// Every filter, alone and combined, and status derived as of the given `now` (an expiry equal
/// to `now` is expired), against `expected` (the oracle).
pub async fn list_filters(ledger: &dyn Ledger) -> Outcome {
    let tag = tag()?;
    let t0 = base()?;
    let now = t0 + chrono::Duration::days(1);
    let principals = [format!("user:{tag}-a"), format!("user:{tag}-b")];
    let accounts = [format!("acct{tag}1"), format!("acct{tag}2")];
    let containers = ["c1".to_string(), "c2".to_string()];
    let mut records = Vec::new();
    for i in 0..24usize {
        let minutes = i64::try_from(i / 2).map_err(|e| e.to_string())?;
        let mut r = sample_record(
            &principals[i % 2],
            &accounts[(i / 2) % 2],
            t0 + chrono::Duration::minutes(minutes),
        )?;
        r.container = containers[(i / 4) % 2].clone();
        match i % 6 {
            0 | 3 => r.expires_on = now + chrono::Duration::hours(1),
            1 => r.expires_on = now, // expired exactly at `now`
            2 => r.expires_on = now + chrono::Duration::microseconds(1),
            4 => r.expires_on = now - chrono::Duration::hours(1),
            _ => {
                r.status = StoredStatus::Revoked;
                r.revoked_at = Some(t0 + chrono::Duration::hours(2));
                r.revoked_by = Some("user:admin".into());
            }
        }
        records.push(r);
    }
    append_all(ledger, &records).await?;

    let since = t0 + chrono::Duration::minutes(3);
    let until = t0 + chrono::Duration::minutes(9);
    let statuses = [
        None,
        Some(Status::Active),
        Some(Status::Expired),
        Some(Status::Revoked),
    ];
    let mut checked = 0;
    for when in [now, now - chrono::Duration::hours(1), t0] {
        for principal in [None, Some(&principals[0]), Some(&principals[1])] {
            for account in [None, Some(&accounts[0]), Some(&accounts[1])] {
                if principal.is_none() && account.is_none() {
                    continue; // unfiltered: would see other checks' records
                }
                for container in [None, Some(&containers[0]), Some(&containers[1])] {
                    for status in statuses {
                        for (since, until) in [
                            (None, None),
                            (Some(since), None),
                            (None, Some(until)),
                            (Some(since), Some(until)),
                        ] {
                            let filter = ListFilter {
                                principal: principal.cloned(),
                                account: account.cloned(),
                                container: container.cloned(),
                                status,
                                since,
                                until,
                            };
                            let want = expected(&records, &filter, when);
                            let page = ok("list", ledger.list(&filter, when, 1000, None).await)?;
                            let got: Vec<String> =
                                page.items.iter().map(|r| r.id.clone()).collect();
                            same(&format!("list {filter:?} at {when}"), &got, &want)?;
                            same("next_cursor of a single page", &page.next_cursor, &None)?;
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    ensure!(checked > 0, "no filter checked");
    // Items come back whole, not just their ids.
    let filter = ListFilter {
        principal: Some(principals[0].clone()),
        ..ListFilter::default()
    };
    let page = ok("list", ledger.list(&filter, now, 1000, None).await)?;
    for item in &page.items {
        let want = records.iter().find(|r| r.id == item.id);
        same("listed record", &Some(item), &want)?;
    }
    Ok(())
}

async fn collect_pages(
    ledger: &dyn Ledger,
    filter: &ListFilter,
    now: DateTime<Utc>,
    limit: usize,
    mut between_pages: impl FnMut(usize) -> Option<IssuanceRecord>,
) -> Result<(Vec<String>, Vec<usize>), String> {
    let mut ids = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    for page_no in 0..1000 {
        let page = ok(
            "list page",
            ledger.list(filter, now, limit, cursor.as_deref()).await,
        )?;
        ensure!(
            page.items.len() <= limit,
            "page of {} items with limit {limit}",
            page.items.len()
        );
        sizes.push(page.items.len());
        ids.extend(page.items.iter().map(|r| r.id.clone()));
        match page.next_cursor {
            None => return Ok((ids, sizes)),
            Some(next) => {
                ensure!(!page.items.is_empty(), "an empty page with a next cursor");
                cursor = Some(next);
            }
        }
        if let Some(extra) = between_pages(page_no) {
            ok("append between pages", ledger.append(extra).await)?;
        }
    }
    Err("pagination did not end".into())
}

/// 25 records (several sharing an `issued_at`, so the id breaks ties) paged 10 and 5 at a
/// time: each exactly once, newest first, the last page without a cursor, and records appended
/// while paging do not disturb the pages still to come.
pub async fn pagination(ledger: &dyn Ledger) -> Outcome {
    let tag = tag()?;
    let t0 = base()?;
    let now = t0 + chrono::Duration::minutes(30);
    let principal = format!("user:{tag}");
    let mut records = Vec::new();
    for i in 0..25i64 {
        records.push(sample_record(
            &principal,
            "acct",
            t0 + chrono::Duration::seconds(i / 3),
        )?);
    }
    append_all(ledger, &records).await?;
    let filter = ListFilter {
        principal: Some(principal.clone()),
        ..ListFilter::default()
    };
    let want = expected(&records, &filter, now);
    same("records to page", &want.len(), &25)?;

    let (ids, sizes) = collect_pages(ledger, &filter, now, 10, |_| None).await?;
    same("pages of 10", &sizes, &vec![10, 10, 5])?;
    same("ids paged by 10", &ids, &want)?;
    let unique: HashSet<&String> = ids.iter().collect();
    same("distinct ids", &unique.len(), &25)?;

    let (ids, sizes) = collect_pages(ledger, &filter, now, 5, |_| None).await?;
    same(
        "pages of 5 (the last full page ends the listing)",
        &sizes,
        &vec![5, 5, 5, 5, 5],
    )?;
    same("ids paged by 5", &ids, &want)?;

    let newer = sample_record(&principal, "acct", t0 + chrono::Duration::minutes(10));
    let mut newer = Some(newer?);
    let (ids, _) = collect_pages(ledger, &filter, now, 10, |page| {
        if page == 0 { newer.take() } else { None }
    })
    .await?;
    same("ids paged while a newer record arrived", &ids, &want)?;
    Ok(())
}

/// A cursor the ledger did not make is refused as such.
pub async fn invalid_cursor(ledger: &dyn Ledger) -> Outcome {
    let filter = ListFilter {
        principal: Some(format!("user:{}", tag()?)),
        ..ListFilter::default()
    };
    let now = base()?;
    for garbage in [
        "",
        "garbage",
        "!!!not base64!!!",
        "eyJ4IjoxfQ",
        "dGhpcyBpcyBub3QgYSBjdXJzb3I",
        "AAAAAAAAAAAA",
    ] {
        match ledger.list(&filter, now, 10, Some(garbage)).await {
            Err(LedgerError::InvalidCursor) => {}
            other => {
                return Err(format!(
                    "cursor {garbage:?} gave {other:?}, not InvalidCursor"
                ));
            }
        }
    }
    Ok(())
}

/// `limit` is clamped to 1..=1000.
pub async fn limit_clamped(ledger: &dyn Ledger) -> Outcome {
    let tag = tag()?;
    let t0 = base()?;
    let principal = format!("user:{tag}");
    let records: Vec<IssuanceRecord> = (0..3)
        .map(|i| sample_record(&principal, "acct", t0 + chrono::Duration::seconds(i)))
        .collect::<Result<_, _>>()?;
    append_all(ledger, &records).await?;
    let filter = ListFilter {
        principal: Some(principal),
        ..ListFilter::default()
    };
    let page = ok("list limit 0", ledger.list(&filter, t0, 0, None).await)?;
    same("items with limit 0", &page.items.len(), &1)?;
    ensure!(
        page.next_cursor.is_some(),
        "limit 0 (clamped to 1) gave no next cursor"
    );
    let page = ok(
        "list limit 5000",
        ledger.list(&filter, t0, 5000, None).await,
    )?;
    same("items with limit 5000", &page.items.len(), &3)?;
    Ok(())
}

fn sample_denial(code: &str, at: DateTime<Utc>) -> Result<DenialRecord, String> {
    Ok(DenialRecord {
        id: ok("new_id", new_id("den_", at))?,
        at: micros(at),
        principal: None,
        client_addr: None,
        code: code.into(),
        request: serde_json::json!({ "account": "acct", "container": "data" }),
        reasons: vec![],
    })
}

/// Waits (up to 10 s) until the newest `limit` denials include `id`: denials are written
/// asynchronously.
async fn wait_for_denial(
    ledger: &dyn Ledger,
    id: &str,
    limit: usize,
) -> Result<Vec<DenialRecord>, String> {
    for _ in 0..1000 {
        let denials = ok("denials", ledger.denials(limit).await)?;
        if denials.iter().any(|d| d.id == id) {
            return Ok(denials);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("denial {id} never appeared"))
}

/// Denials come back whole, newest first.
pub async fn denials_round_trip(ledger: &dyn Ledger) -> Outcome {
    let tag = tag()?;
    let t = base()? + chrono::Duration::microseconds(42);
    let mut first = sample_denial(&format!("ttl_exceeds_policy_{tag}"), t)?;
    first.principal = Some(format!("oidc:https://login.example/#{tag}"));
    first.client_addr = Some("192.0.2.7".into());
    first.request = serde_json::json!({
        "account": "acct", "container": "data", "blob": "a/b ü.txt", "permissions": "rw", "ttl": "2h"
    });
    first.reasons = vec![
        "rule a: ttl 2h exceeds 1h".into(),
        "rule b: container not allowed".into(),
    ];
    let second = sample_denial(
        &format!("unauthenticated_{tag}"),
        t + chrono::Duration::seconds(1),
    )?;
    let third = sample_denial(
        &format!("forbidden_{tag}"),
        t + chrono::Duration::seconds(2),
    )?;
    for d in [&first, &second, &third] {
        ledger.record_denial(d.clone()).await;
    }
    let got = wait_for_denial(ledger, &third.id, 3).await?;
    same("the newest denials", &got, &vec![third, second, first])?;
    same(
        "denials(0)",
        &ok("denials", ledger.denials(0).await)?.len(),
        &0,
    )?;
    Ok(())
}

/// More denials than the cap: at most `max_denials` are kept, the newest, newest first.
pub async fn denials_capped(ledger: &dyn Ledger, max_denials: usize) -> Outcome {
    let tag = tag()?;
    let t = base()?;
    let mut recorded = Vec::new();
    for i in 0..max_denials + 10 {
        let n = i64::try_from(i).map_err(|e| e.to_string())?;
        let d = sample_denial(
            &format!("code_{tag}_{i}"),
            t + chrono::Duration::milliseconds(n),
        )?;
        recorded.push(d.id.clone());
        ledger.record_denial(d).await;
    }
    let last = recorded.last().cloned().unwrap_or_default();
    wait_for_denial(ledger, &last, 1).await?;
    let kept = ok("denials", ledger.denials(max_denials * 2 + 100).await)?;
    ensure!(
        kept.len() <= max_denials,
        "{} denials kept, cap {max_denials}",
        kept.len()
    );
    let kept: Vec<String> = kept.into_iter().map(|d| d.id).collect();
    let want: Vec<String> = recorded.iter().rev().take(max_denials).cloned().collect();
    same("the denials kept", &kept, &want)?;
    Ok(())
}

/// 50 tasks append at once: every append succeeds and every record is stored.
pub async fn concurrent_appends(ledger: Arc<dyn Ledger>) -> Outcome {
    let tag = tag()?;
    let t0 = base()?;
    let principal = format!("user:{tag}");
    let mut tasks = Vec::new();
    let mut records = Vec::new();
    for i in 0..50 {
        let record = sample_record(&principal, "acct", t0 + chrono::Duration::milliseconds(i))?;
        records.push(record.clone());
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move { ledger.append(record).await }));
    }
    for task in tasks {
        let result = task.await.map_err(|e| format!("append task: {e}"))?;
        ok("concurrent append", result)?;
    }
    for r in &records {
        same(
            "record appended concurrently",
            &ok("get", ledger.get(&r.id).await)?.as_ref(),
            &Some(r),
        )?;
    }
    let filter = ListFilter {
        principal: Some(principal),
        ..ListFilter::default()
    };
    let page = ok("list", ledger.list(&filter, t0, 1000, None).await)?;
    same("records listed", &page.items.len(), &50)?;
    Ok(())
}

/// A duplicate among concurrent appends fails alone: the appends it may share a commit with
/// all succeed.
pub async fn concurrent_appends_isolate_a_bad_record(ledger: Arc<dyn Ledger>) -> Outcome {
    let tag = tag()?;
    let t0 = base()?;
    let principal = format!("user:{tag}");
    let original = sample_record(&principal, "acct", t0)?;
    ok("append", ledger.append(original.clone()).await)?;
    let mut duplicate = sample_record(&principal, "acct", t0)?;
    duplicate.id = original.id.clone();

    let mut good = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..41 {
        let record = if i == 20 {
            duplicate.clone()
        } else {
            let r = sample_record(&principal, "acct", t0 + chrono::Duration::milliseconds(i))?;
            good.push(r.id.clone());
            r
        };
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            (i == 20, ledger.append(record).await)
        }));
    }
    for task in tasks {
        let (is_duplicate, result) = task.await.map_err(|e| format!("append task: {e}"))?;
        if is_duplicate {
            ensure!(result.is_err(), "the duplicate append succeeded");
        } else {
            ok("an append sharing a commit with a duplicate", result)?;
        }
    }
    for id in &good {
        ensure!(
            ok("get", ledger.get(id).await)?.is_some(),
            "record {id} missing"
        );
    }
    same(
        "the original",
        &ok("get", ledger.get(&original.id).await)?,
        &Some(original),
    )?;
    Ok(())
}
