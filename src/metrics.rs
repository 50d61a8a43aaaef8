//! Prometheus metrics, in the text exposition format (version 0.0.4), served at `/metrics` to
//! principals with the `metrics` or `admin` role.
//!
//! Labels carry only bounded, non-secret values: rule ids, outcome and problem codes, revocation
//! mechanisms, account names. Never a principal, a blob name, an id or a signature.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `sasgate_mints_total` | counter | `rule` (`none` before a rule matched), `outcome` (`issued`, `denied`, `error`) |
//! | `sasgate_denials_total` | counter | `code` |
//! | `sasgate_revocations_total` | counter | `mechanism` |
//! | `sasgate_link_redemptions_total` | counter | `outcome` (`redeemed`, `gone`) |
//! | `sasgate_ledger_commit_seconds` | histogram | – |
//! | `sasgate_ledger_commit_failures_total` | counter | – |
//! | `sasgate_delegation_key_renewals_total` | counter | `account` |
//! | `sasgate_delegation_key_failures_total` | counter | `account` |
//! | `sasgate_delegation_key_expiry_seconds` | gauge | `account` (Unix time the current key expires) |
//! | `sasgate_auth_failures_total` | counter | `code` (`unauthenticated`, `bad_signature`, … ) |
//! | `sasgate_tls_certificate_expiry_seconds` | gauge | – (Unix time; only when sasgate serves TLS) |
//! | `sasgate_tls_handshake_failures_total` | counter | `reason` (`per_ip_limit`, `timeout`, `error`; only when sasgate serves TLS) |

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// What `/metrics` shows of TLS when sasgate serves HTTPS, read when rendering.
pub struct TlsFigures {
    /// Unix time the certificate in service expires, if its validity could be read.
    pub expiry: Option<i64>,
    /// Connections that never got past the TLS handshake, by reason (see
    /// [`crate::tls::HandshakeFailure`]): closed by the per-address cap, timed out, failed.
    pub handshake_failures: [(&'static str, u64); 3],
}

/// Upper bounds of the commit-latency buckets, in seconds.
const COMMIT_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The broker's counters.
#[derive(Default)]
pub struct Metrics {
    mints: Mutex<BTreeMap<(String, &'static str), u64>>,
    denials: Mutex<BTreeMap<String, u64>>,
    revocations: Mutex<BTreeMap<&'static str, u64>>,
    redemptions: Mutex<BTreeMap<&'static str, u64>>,
    commit_buckets: [AtomicU64; COMMIT_BUCKETS.len()],
    commit_count: AtomicU64,
    /// Sum of commit latencies, in microseconds.
    commit_sum_us: AtomicU64,
    commit_failures: AtomicU64,
    auth_failures: Mutex<BTreeMap<&'static str, u64>>,
}

/// Per-account user delegation key figures, read when rendering.
pub struct KeyFigures {
    pub account: String,
    pub renewals: u64,
    pub failures: u64,
    pub expires_at: Option<i64>,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    if let Ok(mut m) = map.lock() {
        *m.entry(key).or_default() += 1;
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// A mint (token or link) that ended with `outcome` under `rule` (`None`: no rule matched).
    pub fn mint(&self, rule: Option<&str>, outcome: &'static str) {
        bump(&self.mints, (rule.unwrap_or("none").to_owned(), outcome));
    }

    /// A refusal with problem code `code`.
    pub fn denial(&self, code: &str) {
        bump(&self.denials, code.to_owned());
    }

    /// `n` issuances revoked by `mechanism`.
    pub fn revocations(&self, mechanism: &'static str, n: usize) {
        if let Ok(mut m) = self.revocations.lock() {
            *m.entry(mechanism).or_default() += u64::try_from(n).unwrap_or(u64::MAX);
        }
    }

    /// A request refused before authentication completed, with its problem code.
    pub fn auth_failure(&self, code: &'static str) {
        bump(&self.auth_failures, code);
    }

    pub fn redemption(&self, outcome: &'static str) {
        bump(&self.redemptions, outcome);
    }

    /// One durable ledger commit of an issuance, and how long it took.
    pub fn ledger_commit(&self, elapsed: std::time::Duration, ok: bool) {
        if !ok {
            self.commit_failures.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let secs = elapsed.as_secs_f64();
        for (bucket, bound) in self.commit_buckets.iter().zip(COMMIT_BUCKETS) {
            if secs <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.commit_count.fetch_add(1, Ordering::Relaxed);
        self.commit_sum_us.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The exposition text.
    pub fn render(&self, keys: &[KeyFigures], tls: Option<&TlsFigures>) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP sasgate_mints_total Mint requests (tokens and links) by granting rule and outcome.\n# TYPE sasgate_mints_total counter"
        );
        if let Ok(m) = self.mints.lock() {
            for ((rule, outcome), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "sasgate_mints_total{{rule=\"{}\",outcome=\"{outcome}\"}} {n}",
                    escape(rule)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP sasgate_denials_total Refused mint requests by problem code.\n# TYPE sasgate_denials_total counter"
        );
        if let Ok(m) = self.denials.lock() {
            for (code, n) in m.iter() {
                let _ = writeln!(
                    out,
                    "sasgate_denials_total{{code=\"{}\"}} {n}",
                    escape(code)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP sasgate_auth_failures_total Requests refused because their credential was missing or not accepted, by problem code.\n# TYPE sasgate_auth_failures_total counter"
        );
        if let Ok(m) = self.auth_failures.lock() {
            for (code, n) in m.iter() {
                let _ = writeln!(out, "sasgate_auth_failures_total{{code=\"{code}\"}} {n}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP sasgate_revocations_total Issuances revoked, by mechanism.\n# TYPE sasgate_revocations_total counter"
        );
        if let Ok(m) = self.revocations.lock() {
            for (mech, n) in m.iter() {
                let _ = writeln!(out, "sasgate_revocations_total{{mechanism=\"{mech}\"}} {n}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP sasgate_link_redemptions_total Broker link redemptions by outcome.\n# TYPE sasgate_link_redemptions_total counter"
        );
        if let Ok(m) = self.redemptions.lock() {
            for (outcome, n) in m.iter() {
                let _ = writeln!(
                    out,
                    "sasgate_link_redemptions_total{{outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP sasgate_ledger_commit_seconds Time to make an issuance record durable.\n# TYPE sasgate_ledger_commit_seconds histogram"
        );
        for (bucket, bound) in self.commit_buckets.iter().zip(COMMIT_BUCKETS) {
            let _ = writeln!(
                out,
                "sasgate_ledger_commit_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.commit_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "sasgate_ledger_commit_seconds_bucket{{le=\"+Inf\"}} {count}\nsasgate_ledger_commit_seconds_sum {}\nsasgate_ledger_commit_seconds_count {count}",
            self.commit_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "# HELP sasgate_ledger_commit_failures_total Issuance records that could not be made durable (no token was issued).\n# TYPE sasgate_ledger_commit_failures_total counter\nsasgate_ledger_commit_failures_total {}",
            self.commit_failures.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP sasgate_delegation_key_renewals_total User delegation keys obtained.\n# TYPE sasgate_delegation_key_renewals_total counter"
        );
        for k in keys {
            let _ = writeln!(
                out,
                "sasgate_delegation_key_renewals_total{{account=\"{}\"}} {}",
                escape(&k.account),
                k.renewals
            );
        }
        let _ = writeln!(
            out,
            "# HELP sasgate_delegation_key_failures_total Failed attempts to obtain a user delegation key.\n# TYPE sasgate_delegation_key_failures_total counter"
        );
        for k in keys {
            let _ = writeln!(
                out,
                "sasgate_delegation_key_failures_total{{account=\"{}\"}} {}",
                escape(&k.account),
                k.failures
            );
        }
        let _ = writeln!(
            out,
            "# HELP sasgate_delegation_key_expiry_seconds When the current user delegation key expires (Unix time).\n# TYPE sasgate_delegation_key_expiry_seconds gauge"
        );
        for k in keys {
            if let Some(at) = k.expires_at {
                let _ = writeln!(
                    out,
                    "sasgate_delegation_key_expiry_seconds{{account=\"{}\"}} {at}",
                    escape(&k.account)
                );
            }
        }
        if let Some(at) = tls.and_then(|t| t.expiry) {
            let _ = writeln!(
                out,
                "# HELP sasgate_tls_certificate_expiry_seconds When the TLS certificate in service expires (Unix time).\n# TYPE sasgate_tls_certificate_expiry_seconds gauge\nsasgate_tls_certificate_expiry_seconds {at}"
            );
        }
        if let Some(t) = tls {
            let _ = writeln!(
                out,
                "# HELP sasgate_tls_handshake_failures_total Connections that never got past the TLS handshake, by reason (per_ip_limit: closed, its address had too many handshakes in progress; timeout; error).\n# TYPE sasgate_tls_handshake_failures_total counter"
            );
            for (reason, n) in t.handshake_failures {
                let _ = writeln!(
                    out,
                    "sasgate_tls_handshake_failures_total{{reason=\"{reason}\"}} {n}"
                );
            }
        }
        out
    }
}

/// Escapes a label value (`\`, `"`, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::new();
        m.mint(Some("r1"), "issued");
        m.mint(Some("r1"), "issued");
        m.mint(None, "denied");
        m.denial("no_matching_rule");
        m.auth_failure("bad_signature");
        m.auth_failure("bad_signature");
        m.ledger_commit(std::time::Duration::from_micros(800), true);
        m.ledger_commit(std::time::Duration::from_millis(30), true);
        m.ledger_commit(std::time::Duration::from_millis(1), false);
        let text = m.render(
            &[KeyFigures {
                account: "acct".into(),
                renewals: 2,
                failures: 1,
                expires_at: Some(1_800_000_000),
            }],
            Some(&TlsFigures {
                expiry: Some(1_900_000_000),
                handshake_failures: [("per_ip_limit", 3), ("timeout", 1), ("error", 0)],
            }),
        );
        assert!(text.contains("sasgate_mints_total{rule=\"r1\",outcome=\"issued\"} 2"));
        assert!(text.contains("sasgate_mints_total{rule=\"none\",outcome=\"denied\"} 1"));
        assert!(text.contains("sasgate_denials_total{code=\"no_matching_rule\"} 1"));
        assert!(text.contains("sasgate_ledger_commit_seconds_bucket{le=\"0.001\"} 1"));
        assert!(text.contains("sasgate_ledger_commit_seconds_bucket{le=\"0.05\"} 2"));
        assert!(text.contains("sasgate_ledger_commit_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("sasgate_ledger_commit_seconds_count 2"));
        assert!(text.contains("sasgate_ledger_commit_failures_total 1"));
        assert!(text.contains("sasgate_delegation_key_renewals_total{account=\"acct\"} 2"));
        assert!(text.contains("sasgate_tls_certificate_expiry_seconds 1900000000"));
        assert!(text.contains("sasgate_tls_handshake_failures_total{reason=\"per_ip_limit\"} 3"));
        assert!(text.contains("sasgate_tls_handshake_failures_total{reason=\"error\"} 0"));
        // Plain HTTP: no TLS series at all.
        let plain = m.render(&[], None);
        assert!(!plain.contains("sasgate_tls_"), "{plain}");
        assert!(text.contains("sasgate_auth_failures_total{code=\"bad_signature\"} 2"));
        assert!(
            text.contains("sasgate_delegation_key_expiry_seconds{account=\"acct\"} 1800000000")
        );
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
