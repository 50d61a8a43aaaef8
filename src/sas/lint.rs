//! Grading a SAS: what it exposes, for how long, and how it could be revoked.
//!
//! The rules follow the 2023 incident that motivated sasgate: an account SAS with read, write,
//! delete and list rights, valid for about thirty years, is graded critical twice over.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::parse::{Location, ParsedSas, SasKind};

/// How bad a finding is. Ordered: `Info < Low < Medium < High < Critical`.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    clap::ValueEnum,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Upper-case label for human output.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// One observation about a SAS, with a stable machine-readable code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Finding {
    pub severity: Severity,
    #[schema(value_type = String)]
    pub code: &'static str,
    pub message: String,
}

/// The grade of one SAS. Holds no signature.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Report {
    pub kind: SasKind,
    pub location: Option<Location>,
    /// The decoded parameters, `sig` left out.
    pub params: std::collections::BTreeMap<String, String>,
    pub findings: Vec<Finding>,
    /// The worst severity among the findings (`info` when there is nothing worse).
    pub worst: Severity,
}

/// Lifetimes above this are critical: Azure's own ceiling for user delegation SAS.
pub const CRITICAL_LIFETIME: Duration = Duration::days(7);
/// Lifetimes above this are medium: ad hoc SAS should be short-lived.
pub const LONG_LIFETIME: Duration = Duration::hours(1);

const WRITE_LETTERS: &str = "acwuimop";
const DELETE_LETTERS: &str = "dxy";
const LIST_LETTERS: &str = "lf";

/// Grades `sas` as of `now`.
pub fn lint(sas: &ParsedSas, now: DateTime<Utc>) -> Report {
    let mut f = Vec::new();
    let mut add = |severity, code, message: String| {
        f.push(Finding {
            severity,
            code,
            message,
        })
    };
    let p = |k: &str| sas.param(k);

    match sas.kind() {
        SasKind::Account => add(
            Severity::Critical,
            "account_sas",
            format!(
                "account SAS (ss={}, srt={}): it reaches every container and blob of the account and cannot be revoked short of rotating the account key",
                p("ss").unwrap_or("?"),
                p("srt").unwrap_or("?")
            ),
        ),
        SasKind::UserDelegation => add(
            Severity::Info,
            "user_delegation",
            format!(
                "user delegation SAS: signed with a key of Entra object {} valid until {}; revocable only by revoking all user delegation keys of the account",
                p("skoid").unwrap_or("?"),
                p("ske").unwrap_or("?")
            ),
        ),
        SasKind::Service => {}
    }

    let start = sas.start();
    match (sas.expiry(), p("se")) {
        (Some(expiry), _) => {
            let from = start.unwrap_or(now);
            let lifetime = expiry - from;
            let described = describe(lifetime);
            if expiry <= now {
                add(Severity::Info, "expired", format!("expired at {}", p("se").unwrap_or("?")));
            }
            if lifetime > CRITICAL_LIFETIME {
                add(
                    Severity::Critical,
                    "lifetime_over_7_days",
                    format!("valid for {described} (until {}); the most any SAS should live is 7 days", p("se").unwrap_or("?")),
                );
            } else if lifetime > LONG_LIFETIME {
                add(
                    Severity::Medium,
                    "lifetime_over_1_hour",
                    format!("valid for {described}; prefer at most 1 hour and ask again"),
                );
            }
        }
        (None, Some(raw)) => add(Severity::High, "unreadable_expiry", format!("the expiry '{raw}' is not a time Azure accepts")),
        (None, None) if p("si").is_some() => add(
            Severity::Medium,
            "expiry_from_policy",
            "the expiry comes from the stored access policy, so the token alone does not show how long it lives".into(),
        ),
        (None, None) => add(Severity::High, "no_expiry", "no expiry (se)".into()),
    }

    let letters = sas.permissions().unwrap_or("");
    let pick = |set: &str| {
        letters
            .chars()
            .filter(|c| set.contains(*c))
            .collect::<String>()
    };
    for (set, code, what) in [
        (WRITE_LETTERS, "write_rights", "write"),
        (DELETE_LETTERS, "delete_rights", "delete"),
        (LIST_LETTERS, "list_rights", "list"),
    ] {
        let got = pick(set);
        if !got.is_empty() {
            add(
                Severity::High,
                code,
                format!("grants {what} rights (sp has '{got}')"),
            );
        }
    }

    match p("spr") {
        Some("https") => {}
        Some(other) => add(
            Severity::High,
            "http_allowed",
            format!("spr={other}: the token also works over plain HTTP, in clear text"),
        ),
        None => add(
            Severity::High,
            "http_allowed",
            "no spr=https: the token also works over plain HTTP, in clear text".into(),
        ),
    }

    if sas.kind() != SasKind::Account {
        match p("sr") {
            Some("c") => add(
                Severity::High,
                "container_scope",
                "container-wide: reaches every blob in the container".into(),
            ),
            Some("d") => add(
                Severity::High,
                "container_scope",
                "directory-wide: reaches every blob under the directory".into(),
            ),
            Some("b") | Some("bs") | Some("bv") => {}
            Some(other) => add(
                Severity::Medium,
                "unknown_resource",
                format!("unknown signed resource sr={other}"),
            ),
            None => add(
                Severity::Medium,
                "unknown_resource",
                "no signed resource (sr)".into(),
            ),
        }
    }

    if start.is_none() {
        add(
            Severity::Medium,
            "no_start",
            "no start time (st): accounts with a SAS expiration policy set to Block refuse it, and the lifetime cannot be read".into(),
        );
    }
    let sip_width = p("sip").map(|s| super::ip::IpRange::parse(s).map(|r| r.len()));
    if let Some(Ok(width)) = sip_width
        && width > 1 << 24
    {
        add(
            Severity::Medium,
            "ip_range_too_wide",
            format!(
                "sip={} covers {width} addresses: as good as no IP restriction",
                p("sip").unwrap_or("")
            ),
        );
    }
    if p("sip").is_none() {
        add(
            Severity::Medium,
            "no_ip_restriction",
            "no IP restriction (sip): anyone holding the link can use it".into(),
        );
    }
    if let Some(si) = p("si") {
        add(
            Severity::Info,
            "stored_policy",
            format!(
                "bound to stored access policy '{si}' on the container: deleting that policy revokes it"
            ),
        );
    }
    add(
        Severity::Info,
        "version",
        format!("signed version {}", p("sv").unwrap_or("?")),
    );

    f.sort_by_key(|x| std::cmp::Reverse(x.severity));
    let worst = f.first().map(|x| x.severity).unwrap_or(Severity::Info);
    Report {
        kind: sas.kind(),
        location: sas.location().cloned(),
        params: sas
            .public_params()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        findings: f,
        worst,
    }
}

fn describe(d: Duration) -> String {
    let secs = d.num_seconds();
    if secs >= 2 * 365 * 86_400 {
        format!("about {} years", secs / (365 * 86_400))
    } else if secs >= 2 * 86_400 {
        format!("{} days", secs / 86_400)
    } else if secs >= 2 * 3_600 {
        format!("{} hours", secs / 3_600)
    } else {
        format!("{} minutes", secs / 60)
    }
}

/// Finds the SAS URLs and bare SAS query strings in a line of text: each is returned as the
/// slice to parse. Anything around a `sig=` that cannot be part of a URL ends the candidate.
pub fn find_candidates(line: &str) -> Vec<&str> {
    let stop = |c: char| c.is_whitespace() || "\"'<>`{}|\\^()[]".contains(c);
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = line.get(from..).and_then(|rest| rest.find("sig=")) {
        let at = from + i;
        let start = after_last(&line[..at], stop);
        let end = line[at..].find(stop).map(|j| at + j).unwrap_or(line.len());
        let run = &line[start..end];
        from = end.max(at + 4);
        // A SAS URL's own `://` comes before the `?` of the query that holds this `sig=`. A
        // `://` anywhere else (after the `sig=`, in a query value, in a bare query string with
        // no `?`) is not where the SAS begins, and taking it would cut the signature out.
        let before = &run[..at - start];
        let scheme = before.rfind('?').and_then(|q| before[..q].rfind("://"));
        let begin = match scheme {
            Some(s) => after_last(&run[..s], |c| !c.is_ascii_alphabetic()),
            // Only up to this `sig=`: a parameter after it would leave the signature out.
            None => param_start(&run[..at - start + 4]),
        };
        out.push(&run[begin..]);
    }
    out
}

/// The byte index just after the last character of `text` matching `pred`, or 0.
fn after_last(text: &str, pred: impl Fn(char) -> bool) -> usize {
    text.char_indices()
        .filter(|(_, c)| pred(*c))
        .last()
        .map_or(0, |(i, c)| i + c.len_utf8())
}

/// In a bare run such as `AZURE_SAS=sv=…&sig=…` or `?sv=…`, where the SAS parameters begin.
fn param_start(run: &str) -> usize {
    const NAMES: [&str; 12] = [
        "sv=", "sp=", "ss=", "srt=", "sr=", "st=", "se=", "si=", "spr=", "sip=", "skoid=", "sig=",
    ];
    run.char_indices()
        .filter(|(i, _)| *i == 0 || run[..*i].ends_with(['?', '&', '=', ':']))
        .map(|(i, _)| i)
        .find(|i| NAMES.iter().any(|n| run[*i..].starts_with(n)))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sas::parse::parse;
    use chrono::TimeZone;

    /// The shape of the 2023 incident's token: an account SAS, rwdl and more, until 2051.
    pub(crate) const INCIDENT: &str = "https://robustnessws4285631339.blob.core.windows.net/?sv=2020-08-04&ss=bfqt&srt=sco&sp=rwdlacupitfx&se=2051-10-06T07:09:59Z&st=2021-10-05T23:09:59Z&spr=https,http&sig=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%3D";

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap()
    }

    fn codes(r: &Report) -> Vec<&'static str> {
        r.findings.iter().map(|f| f.code).collect()
    }

    #[test]
    fn the_incident_is_critical_on_both_counts() {
        let r = lint(&parse(INCIDENT).unwrap(), now());
        assert_eq!(r.worst, Severity::Critical);
        let c = codes(&r);
        for want in [
            "account_sas",
            "lifetime_over_7_days",
            "write_rights",
            "delete_rights",
            "list_rights",
            "http_allowed",
        ] {
            assert!(c.contains(&want), "{want} missing from {c:?}");
        }
        let crit: Vec<_> = r
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Critical)
            .map(|f| f.code)
            .collect();
        assert_eq!(crit, ["account_sas", "lifetime_over_7_days"]);
        assert!(
            r.findings
                .iter()
                .any(|f| f.message.contains("about 30 years")),
            "{:?}",
            r.findings
        );
        assert!(
            !serde_json::to_string(&r).unwrap().contains("AAAAAAAA"),
            "the signature must not be echoed"
        );
    }

    #[test]
    fn a_short_https_blob_read_is_at_worst_medium() {
        let url = "https://acct.blob.core.windows.net/data/a.bin?sv=2026-06-06&sr=b&sp=r&st=2026-11-29T11%3A45%3A00Z&se=2026-11-29T12%3A15%3A00Z&spr=https&sig=x";
        let r = lint(&parse(url).unwrap(), now());
        assert_eq!(r.worst, Severity::Medium);
        assert_eq!(codes(&r), ["no_ip_restriction", "version"]);
    }

    #[test]
    fn grades_scope_lifetime_and_policy() {
        let url = "https://acct.blob.core.windows.net/data?sv=2026-06-06&sr=c&sp=rl&se=2026-11-29T15%3A00%3A00Z&si=pol1&sip=1.2.3.4&spr=https&sig=x";
        let r = lint(&parse(url).unwrap(), now());
        let c = codes(&r);
        for want in [
            "container_scope",
            "list_rights",
            "lifetime_over_1_hour",
            "no_start",
            "stored_policy",
        ] {
            assert!(c.contains(&want), "{want} missing from {c:?}");
        }
        assert!(!c.contains(&"no_ip_restriction"));
        let everyone = "sv=2026-06-06&sr=b&sp=r&st=2026-11-29T11%3A55%3A00Z&se=2026-11-29T12%3A10%3A00Z&spr=https&sip=0.0.0.0-255.255.255.255&sig=x";
        assert!(codes(&lint(&parse(everyone).unwrap(), now())).contains(&"ip_range_too_wide"));
        let expired =
            "sv=2026-06-06&sr=b&sp=r&st=2020-01-01&se=2020-01-01T00%3A10%3A00Z&spr=https&sig=x";
        assert!(codes(&lint(&parse(expired).unwrap(), now())).contains(&"expired"));
    }

    #[test]
    fn candidates_in_text() {
        let line = r#"let u = "https://a.blob.core.windows.net/c/b?sv=2020-12-06&sr=b&sig=abc%3D"; // and ?sv=2020-12-06&sp=r&sig=x"#;
        assert_eq!(
            find_candidates(line),
            [
                "https://a.blob.core.windows.net/c/b?sv=2020-12-06&sr=b&sig=abc%3D",
                "sv=2020-12-06&sp=r&sig=x"
            ]
        );
        assert_eq!(
            find_candidates("AZURE_SAS=sv=2020-12-06&ss=b&sig=x"),
            ["sv=2020-12-06&ss=b&sig=x"]
        );
        assert_eq!(
            find_candidates("see [link](https://x.blob.core.windows.net/c?sv=1&sig=2)."),
            ["https://x.blob.core.windows.net/c?sv=1&sig=2"]
        );
        assert!(find_candidates("no token here").is_empty());
        assert_eq!(find_candidates("日本sig=").len(), 1);
    }

    /// Found by fuzzing (fuzz/README.md, sas_lint): a `://` after the `sig=` in the same run of
    /// URL characters made the candidate start at that later URL, so the SAS before it, with its
    /// signature, was never graded and `sasgate scan` missed it.
    #[test]
    fn a_url_after_the_signature_does_not_hide_the_sas() {
        let url = "https://a.blob.core.windows.net/c/b?sv=2020-12-06&sr=b&sig=abc&next=https://example.org/x";
        assert_eq!(find_candidates(url), [url]);
        let bare = "sv=2020-12-06&sr=c&sig=abc&next=https://example.org/x";
        assert_eq!(find_candidates(bare), [bare]);
        let bare = "sv=2020-12-06&sr=c&next=https://example.org/x&sig=abc";
        assert_eq!(find_candidates(bare), [bare]);
        let in_query = "https://a.blob.core.windows.net/c/b?rscd=https://x/y&sv=2020-12-06&sig=abc";
        assert_eq!(find_candidates(in_query), [in_query]);
        let glued = "https://example.org/a?b=1,https://a.blob.core.windows.net/c?sv=1&sig=2";
        assert_eq!(
            find_candidates(glued),
            ["https://a.blob.core.windows.net/c?sv=1&sig=2"]
        );
        // The fuzzer's input: SAS URLs glued together; the first `sig=` is followed by a URL.
        let line = "https://127.0.0.1:10000/devstoreaccount1/mycontainer?se=2025-01-01T01%3A00%3A00Z&sp=rlf&sv=2026-10-06'&sr=c&sig=3jexmZIBfqCaM//4h6w57wnt7Mhttps://127.0.0.1:10000/devstoreaccount1/mycontainer?se=2025-01-01T01%3A00%3A00Z&sp=rlf&sv=2026-10-06'&sr=c&sig=3jexmZIBfqCaM//4h6w57wnt7MtCrkFiovD3pre8C!\0tCrkFiovD3pre8C!\0hI%3D";
        let found = find_candidates(line);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().all(|c| c.contains("sig=")), "{found:?}");
        let first = parse(found[0]).unwrap();
        assert_eq!(first.param("sr"), Some("c"));
        assert_eq!(first.param("sv"), Some("2026-10-06"));
    }

    /// Found by fuzzing (fuzz/README.md, sas_lint): a `sig=` inside a path segment, with no query
    /// before it, made the candidate start at the next parameter after it, leaving the signature
    /// out; and a SAS URL whose path holds `sig=` lost its URL.
    #[test]
    fn a_candidate_always_holds_its_signature() {
        let line = "https://0X127.0.0.1:11000/devstoreaccount1/mycontainer/a+bsig=BtiUqebOyWWrIWOOqSpxyDM0NtD1si4jWe6&si=policy1&sr=t=BtiUqebOyWWrIWOOqSpxy^()NtD1si4jWeVE%3D";
        let found = find_candidates(line);
        assert!(!found.is_empty());
        assert!(found.iter().all(|c| c.contains("sig=")), "{found:?}");
        let url = "https://a.blob.core.windows.net/c/a+bsig=x?sv=2020-12-06&sig=abc";
        assert_eq!(find_candidates(url), [url]);
        let sas = parse(find_candidates(url)[0]).unwrap();
        assert_eq!(sas.location().unwrap().blob.as_deref(), Some("a+bsig=x"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in ".*") {
            for c in find_candidates(&s) {
                if let Ok(p) = parse(c) {
                    let _ = lint(&p, now());
                }
            }
            if let Ok(p) = parse(&s) {
                let _ = lint(&p, now());
            }
        }

        #[test]
        fn never_panics_on_sas_like_text(s in "[a-z日 ]{0,4}(https://x/c/b)?\\??((sv|sig|sr|sp|st|se|ss|srt|si|spr|sip)=[%A-Za-z0-9:,.+/=-]{0,24}&?){0,9}") {
            for c in find_candidates(&s) {
                if let Ok(p) = parse(c) {
                    let _ = lint(&p, now());
                }
            }
        }
    }
}
