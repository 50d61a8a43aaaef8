//! Policy decision cost: `PolicySet::decide` over 10 and over 10,000 rules, for a request that
//! one rule allows and for one that no rule covers. Run with `cargo bench --bench policy`.
//! Goal: the 10,000-rule figures stay close to the 10-rule ones (the index, not a scan).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use support::measure;

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

use chrono::Duration;
use sasgate::policy::{AccessRequest, PolicyLimits, PolicySet, Subject};
use sasgate::sas::name::{BlobName, ContainerName};
use sasgate::sas::perms::{Permissions, Resource};

const ACCOUNTS: usize = 50;
const USERS: usize = 3_000;
const ROLES: usize = 200;
const CONTAINERS: usize = 500;

/// Rule `i`: a user and a role on one account, one or two containers (some globs), sometimes blob
/// globs, a permission set and limits that vary, the way a large organisation's policy does.
fn rule_text(i: usize) -> String {
    let mut text = String::new();
    let account = i % ACCOUNTS;
    let perms = ["r", "rl", "rw", "racw", "rcw"][i % 5];
    let _ = write!(
        text,
        "[[rule]]\nid = \"rule-{i}\"\ndescription = \"generated rule {i}\"\n\
         principals = [\"user:u{}\", \"role:role{}\"]\naccount = \"acct{account}\"\n",
        i % USERS,
        i % ROLES
    );
    if i.is_multiple_of(10) {
        let _ = writeln!(
            text,
            "containers = [\"proj{}-data\", \"ci-{}-*\"]",
            i % CONTAINERS,
            i % 100
        );
    } else {
        let _ = writeln!(text, "containers = [\"proj{}-data\"]", i % CONTAINERS);
    }
    if i.is_multiple_of(3) {
        let _ = writeln!(text, "blobs = [\"published/**\", \"team{}/*.bin\"]", i % 17);
    } else if i.is_multiple_of(7) {
        text.push_str("scopes = [\"blob\", \"container\"]\n");
    }
    let _ = writeln!(
        text,
        "permissions = \"{perms}\"\nmax_ttl = \"{}m\"",
        10 + i % 50
    );
    if i.is_multiple_of(11) {
        text.push_str("require_reason = true\n");
    }
    text.push('\n');
    text
}

fn policy(n: usize) -> PolicySet {
    let text: String = (0..n).map(rule_text).collect();
    PolicySet::from_sources(&[("bench.toml", text)], &PolicyLimits::default())
        .unwrap_or_else(|e| panic!("{e:#?}"))
}

/// The subject and request that rule `i` allows.
fn matching(i: usize) -> (Subject, AccessRequest) {
    let subject = Subject {
        name: format!("u{}", i % USERS),
        roles: vec![format!("role{}", i % ROLES), "staff".to_owned()],
        oidc: None,
    };
    let request = AccessRequest {
        account: format!("acct{}", i % ACCOUNTS),
        container: ContainerName::parse(&format!("proj{}-data", i % CONTAINERS)).unwrap(),
        blob: Some(BlobName::parse("published/models/llm-7b/weights.safetensors").unwrap()),
        permissions: Permissions::parse("r", Resource::Blob).unwrap(),
        ttl: Some(Duration::minutes(5)),
        ip: None,
        reason: Some("benchmark".to_owned()),
    };
    (subject, request)
}

/// The same subject and account, but a container no rule names.
fn non_matching(i: usize) -> (Subject, AccessRequest) {
    let (subject, mut request) = matching(i);
    request.container = ContainerName::parse("unlisted-container").unwrap();
    (subject, request)
}

fn main() {
    let mut figures = Vec::new();
    for n in [10usize, 10_000] {
        let build = Instant::now();
        let set = policy(n);
        let load_ms = build.elapsed().as_secs_f64() * 1e3;
        let probe = if n > 1_000 { 4_321 } else { 7 };

        let (subject, request) = matching(probe);
        assert!(
            set.decide(&subject, &request).is_allow(),
            "probe must match"
        );
        let allow_ns = measure(101, 2_000, || {
            black_box(set.decide(black_box(&subject), black_box(&request)));
        });

        let (subject, request) = non_matching(probe);
        assert!(
            !set.decide(&subject, &request).is_allow(),
            "probe must not match"
        );
        let deny_ns = measure(101, 2_000, || {
            black_box(set.decide(black_box(&subject), black_box(&request)));
        });

        let linear_ns = measure(11, 20, || {
            black_box(set.decide_linear(black_box(&subject), black_box(&request)));
        });

        println!(
            "rules {n:>6}: load {load_ms:>8.1} ms | decide matching {allow_ns:>7.0} ns | non-matching {deny_ns:>7.0} ns | (linear scan, non-matching {linear_ns:>9.0} ns)"
        );
        figures.push((allow_ns, deny_ns));
    }
    let (small, large) = (figures[0], figures[1]);
    println!(
        "ratio 10000/10: matching {:.2}x, non-matching {:.2}x (a linear scan would be ~1000x)",
        large.0 / small.0,
        large.1 / small.1
    );
}
