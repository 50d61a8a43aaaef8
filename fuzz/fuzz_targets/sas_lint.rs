//! The SAS grader (`sasgate::sas::lint::lint`) and the scanner's candidate finder
//! (`find_candidates`), on any text that parses as a SAS, graded at several instants: fixed
//! dates, the SAS's own start and expiry (and a second either side), and the ends of time.
//!
//! Properties:
//! - `worst` is the highest severity among the findings (`info` when there are none), and the
//!   findings are sorted worst first;
//! - the report's parameters are exactly the SAS's public parameters: never `sig`, and the
//!   report's JSON never shows the signature;
//! - every code is one of the stable codes; `version` appears exactly once;
//! - an account SAS is critical; write, delete or list rights, or no `spr=https`, are at least
//!   high; a readable lifetime over 7 days is critical;
//! - every candidate the scanner finds in a line holds `sig=` and is part of the line.
#![no_main]

use chrono::{DateTime, Duration, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use sasgate::sas::lint::{CRITICAL_LIFETIME, Severity, find_candidates, lint};
use sasgate::sas::parse::{ParsedSas, SasKind, parse};

const CODES: &[&str] = &[
    "account_sas",
    "user_delegation",
    "expired",
    "lifetime_over_7_days",
    "lifetime_over_1_hour",
    "unreadable_expiry",
    "expiry_from_policy",
    "no_expiry",
    "write_rights",
    "delete_rights",
    "list_rights",
    "http_allowed",
    "container_scope",
    "unknown_resource",
    "no_start",
    "ip_range_too_wide",
    "no_ip_restriction",
    "stored_policy",
    "version",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.lines().take(8) {
        for candidate in find_candidates(line) {
            assert!(
                candidate.contains("sig="),
                "candidate {candidate:?} from line {line:?} has no sig="
            );
            let start = candidate.as_ptr() as usize - line.as_ptr() as usize;
            assert!(start + candidate.len() <= line.len());
        }
        scanner_finds_the_sas(line);
    }
    let Ok(sas) = parse(text) else {
        return;
    };
    let mut instants = vec![
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap(),
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
    ];
    for t in [sas.start(), sas.expiry()].into_iter().flatten() {
        instants.push(t);
        instants.extend(t.checked_add_signed(Duration::seconds(1)));
        instants.extend(t.checked_sub_signed(Duration::seconds(1)));
    }
    for now in instants {
        check(&sas, now);
    }
});

/// A line that is one SAS and nothing else is found by the scanner, signature and all: a SAS URL
/// with one scheme before its signature (whatever follows it), and a bare query string when it
/// is plainly written (lowercase keys, no `%`, `?` or second `=`), since a bare query has no
/// marker of where it begins.
fn scanner_finds_the_sas(line: &str) {
    let stop = |c: char| c.is_whitespace() || "\"'<>`{}|\\^()[]".contains(c);
    if line.matches("sig=").count() != 1 || line.contains(stop) {
        return;
    }
    let Ok(whole) = parse(line) else {
        return;
    };
    let plain_query = || {
        line.split('&').all(|pair| {
            pair.split_once('=').is_some_and(|(k, v)| {
                !k.is_empty()
                    && k.bytes().all(|b| b.is_ascii_lowercase())
                    && !v.contains(['=', '%', '?'])
            })
        })
    };
    if whole.location().is_some() {
        // Glued or nested URLs before the signature are ambiguous; one alphabetic scheme is not.
        let sig_at = line.find("sig=").unwrap_or(0);
        let alphabetic = line
            .split_once("://")
            .is_some_and(|(s, _)| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphabetic()));
        // And the one `sig=` is the query's `sig` parameter, not text in the host or path.
        let in_query = line.find('?').is_some_and(|q| q < sig_at)
            && matches!(line[..sig_at].chars().last(), Some('?' | '&'));
        if !alphabetic || !in_query || line[..sig_at].matches("://").count() != 1 {
            return;
        }
    } else if !plain_query() {
        return;
    }
    let found = find_candidates(line);
    assert!(
        found
            .iter()
            .any(|c| parse(c).is_ok_and(|p| p.param("sig") == whole.param("sig"))),
        "the scanner misses the SAS in {line:?}: candidates {found:?}"
    );
}

fn check(sas: &ParsedSas, now: DateTime<Utc>) {
    let report = lint(sas, now);
    let max = report
        .findings
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Severity::Info);
    assert_eq!(report.worst, max);
    assert!(
        report
            .findings
            .windows(2)
            .all(|w| w[0].severity >= w[1].severity),
        "findings are not sorted worst first"
    );
    assert_eq!(report.kind, sas.kind());
    assert_eq!(report.location.as_ref(), sas.location());
    assert!(!report.params.contains_key("sig"));
    let public: Vec<(&str, &str)> = sas.public_params().collect();
    let shown: Vec<(&str, &str)> = report
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(public, shown);

    for f in &report.findings {
        assert!(CODES.contains(&f.code), "unknown code {}", f.code);
    }
    let has = |code: &str| report.findings.iter().any(|f| f.code == code);
    assert_eq!(
        report
            .findings
            .iter()
            .filter(|f| f.code == "version")
            .count(),
        1
    );
    if sas.kind() == SasKind::Account {
        assert_eq!(report.worst, Severity::Critical);
        assert!(has("account_sas"));
    }
    let letters = sas.permissions().unwrap_or("");
    if letters.contains(|c: char| "acwuimopdxylf".contains(c)) {
        assert!(report.worst >= Severity::High);
    }
    if sas.param("spr") != Some("https") {
        assert!(has("http_allowed") && report.worst >= Severity::High);
    }
    if let Some(expiry) = sas.expiry() {
        let from = sas.start().unwrap_or(now);
        if expiry - from > CRITICAL_LIFETIME {
            assert!(has("lifetime_over_7_days"));
            assert_eq!(report.worst, Severity::Critical);
        }
    } else if sas.param("se").is_none() && sas.param("si").is_none() {
        assert!(has("no_expiry") && report.worst >= Severity::High);
    }

    // The report is what `POST /v1/lint` returns: it must never show the signature.
    let json = serde_json::to_string(&report).expect("a report serialises");
    let sig = sas.param("sig").unwrap_or("");
    let plain =
        |s: &str| s.chars().all(|c| c.is_ascii_graphic() || c == ' ') && !s.contains(['\\', '"']);
    let location_plain = sas.location().is_none_or(|l| {
        plain(&l.scheme)
            && plain(&l.host)
            && [&l.account, &l.container, &l.blob]
                .iter()
                .all(|s| s.as_deref().is_none_or(plain))
    });
    let elsewhere = sas
        .public_params()
        .any(|(k, v)| k.contains(sig) || v.contains(sig))
        || sas.location().is_some_and(|l| {
            [&l.account, &l.container, &l.blob]
                .iter()
                .any(|s| s.as_deref().is_some_and(|s| s.contains(sig)))
                || l.host.contains(sig)
                || l.scheme.contains(sig)
        });
    if sig.len() >= 20
        && sig
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        && sig.bytes().any(|b| b.is_ascii_alphabetic())
        && sas.public_params().all(|(k, v)| plain(k) && plain(v))
        && location_plain
        && !elsewhere
    {
        assert!(!json.contains(sig), "the lint report shows the signature");
    }
}
