//! The policy loader (`PolicySet::from_sources`, which `load_dir` and `sasgate policy check` use)
//! on any text: up to four files, split at NUL bytes, loaded under valid and invalid global
//! limits.
//!
//! Properties:
//! - invalid limits (above 7 days, zero, default above max) never load;
//! - every rule that loads has `0 < default_ttl <= max_ttl <= limits.max_ttl <= 7 days`, a valid
//!   unique id, principals, containers, a scope, permissions valid for blob scope when it allows
//!   blob scope, no `blobs` when it allows container scope, and `[rule.claims]` exactly when it
//!   has an `oidc:` principal;
//! - what loads under the default limits (1h) loads under wider ones (7d) with the same rules;
//! - for requests built from each rule's own parts, the indexed decision equals the linear one and
//!   `explain`'s, and a grant never exceeds its rule: TTL at most the rule's max (and exactly the
//!   TTL asked for, never clamped), the permissions asked for and within the rule's, the scope,
//!   account, reason and ip the rule demands.
#![no_main]

use chrono::Duration;
use libfuzzer_sys::fuzz_target;
use sasgate::policy::{
    AccessRequest, Decision, OidcSubject, PolicyLimits, PolicySet, Principal, Rule, Scope, Subject,
    TTL_CEILING,
};
use sasgate::sas::ip::IpRange;
use sasgate::sas::name::{AccountName, BlobName, ContainerName};
use sasgate::sas::perms::Resource;

fn limits(max: Duration, default: Duration) -> PolicyLimits {
    PolicyLimits {
        max_ttl: max,
        default_ttl: default,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sources: Vec<(String, &str)> = text
        .split('\0')
        .take(4)
        .enumerate()
        .map(|(i, t)| (format!("fuzz-{i}.toml"), t))
        .collect();

    // One invalid configuration per input (loading is the slow part), chosen by its length.
    let invalid = [
        limits(Duration::days(8), Duration::minutes(15)),
        limits(Duration::hours(1), Duration::hours(2)),
        limits(Duration::zero(), Duration::zero()),
    ];
    let bad = invalid[data.len() % invalid.len()];
    assert!(
        PolicySet::from_sources(&sources, &bad).is_err(),
        "policy loaded under invalid limits {bad:?}"
    );

    let narrow = PolicyLimits::default();
    let wide = limits(Duration::days(7), Duration::days(1));
    let loaded_narrow = load(&sources, &narrow);
    let loaded_wide = load(&sources, &wide);
    if let Some(set) = &loaded_narrow {
        let wide_set = loaded_wide
            .as_ref()
            .expect("what loads under 1h limits loads under 7d limits");
        let a: Vec<&str> = set.rules().iter().map(Rule::id).collect();
        let b: Vec<&str> = wide_set.rules().iter().map(Rule::id).collect();
        assert_eq!(a, b);
    }
});

/// Loads and checks the set; returns it when it loaded.
fn load(sources: &[(String, &str)], limits: &PolicyLimits) -> Option<PolicySet> {
    let set = match PolicySet::from_sources(sources, limits) {
        Ok(set) => set,
        Err(errors) => {
            assert!(!errors.is_empty(), "refused with no error");
            return None;
        }
    };
    let mut ids = std::collections::HashSet::new();
    for rule in set.rules() {
        check_rule(rule, limits);
        assert!(
            ids.insert(rule.id().to_owned()),
            "duplicate id {}",
            rule.id()
        );
        assert!(set.rule(rule.id()).is_some());
    }
    assert_eq!(set.len(), set.rules().len());
    for rule in set.rules() {
        for (subject, request) in requests(rule) {
            check_decision(&set, limits, &subject, &request);
        }
    }
    Some(set)
}

fn check_rule(rule: &Rule, limits: &PolicyLimits) {
    let id = rule.id();
    assert!(
        (1..=64).contains(&id.len())
            && id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c)),
        "invalid id {id:?}"
    );
    assert!(rule.default_ttl() > Duration::zero());
    assert!(
        rule.default_ttl() <= rule.max_ttl(),
        "{id}: default above max"
    );
    assert!(
        rule.max_ttl() <= limits.max_ttl,
        "{id}: max_ttl above the ceiling"
    );
    assert!(rule.max_ttl() <= TTL_CEILING);
    assert!(!rule.principals().is_empty());
    assert!(rule.containers().next().is_some());
    assert!(AccountName::parse(rule.account()).is_ok());
    assert!(!rule.scopes().is_empty());
    assert!(!rule.permissions().as_string().is_empty());
    if rule.allows_scope(Scope::Blob) {
        assert!(rule.permissions().check(Resource::Blob).is_ok());
    }
    if rule.allows_scope(Scope::Container) {
        assert!(rule.blobs().is_none(), "{id}: blobs with container scope");
    }
    if let Some(mut blobs) = rule.blobs() {
        assert!(blobs.next().is_some());
    }
    for container in rule.containers() {
        // An exact name is a valid container; a glob has a literal part (never "every container").
        let glob = container.contains(['*', '?']);
        assert!(
            ContainerName::parse(container).is_ok()
                || (glob
                    && container
                        .chars()
                        .any(|c| c.is_ascii_alphanumeric() || c == '-')),
            "{id}: container pattern {container:?}"
        );
    }
    let oidc = rule
        .principals()
        .iter()
        .any(|p| matches!(p, Principal::Oidc(_)));
    assert_eq!(
        oidc,
        rule.claims().next().is_some(),
        "{id}: claims without oidc"
    );
}

/// A name that a glob matches, as far as simple substitution can tell.
fn literal(pattern: &str) -> String {
    pattern
        .replace("**", "a/b")
        .replace('*', "x")
        .replace('?', "y")
        .replace(['[', ']', '{', '}', '\\'], "")
}

/// Requests built from the rule's own principals, names, scopes, permissions and TTLs.
fn requests(rule: &Rule) -> Vec<(Subject, AccessRequest)> {
    let mut subject = Subject {
        name: "fuzz-user".to_owned(),
        ..Subject::default()
    };
    for p in rule.principals() {
        match p {
            Principal::User(n) => subject.name = n.clone(),
            Principal::Role(n) => subject.roles.push(n.clone()),
            Principal::Oidc(issuer) if subject.oidc.is_none() => {
                let claims = rule
                    .claims()
                    .map(|(k, v)| (k.to_owned(), serde_json::Value::String(literal(v))))
                    .collect();
                subject.oidc = Some(OidcSubject {
                    issuer: issuer.clone(),
                    claims,
                });
            }
            Principal::Oidc(_) => {}
        }
    }
    let Some(container) = rule
        .containers()
        .find_map(|c| ContainerName::parse(&literal(c)).ok())
    else {
        return Vec::new();
    };
    let blob = match rule.blobs() {
        None => BlobName::parse("a/b").ok(),
        Some(mut globs) => globs.find_map(|g| BlobName::parse(&literal(g)).ok()),
    };
    let ip = match rule.ip_within().first() {
        Some(range) => {
            let text = range.to_string();
            IpRange::parse(text.split('-').next().unwrap_or(&text)).ok()
        }
        None if rule.require_ip() => IpRange::parse("203.0.113.7").ok(),
        None => None,
    };
    let mut out = Vec::new();
    for scope in rule.scopes() {
        let blob = match scope {
            Scope::Blob => match &blob {
                Some(b) => Some(b.clone()),
                None => continue,
            },
            Scope::Container => None,
        };
        for ttl in [
            None,
            Some(rule.max_ttl()),
            Some(rule.max_ttl() + Duration::seconds(1)),
        ] {
            out.push((
                subject.clone(),
                AccessRequest {
                    account: rule.account().to_owned(),
                    container: container.clone(),
                    blob: blob.clone(),
                    permissions: rule.permissions(),
                    ttl,
                    ip,
                    reason: rule.require_reason().then(|| "fuzzing".to_owned()),
                },
            ));
        }
    }
    out
}

fn check_decision(
    set: &PolicySet,
    limits: &PolicyLimits,
    subject: &Subject,
    request: &AccessRequest,
) {
    let indexed = set.decide(subject, request);
    let linear = set.decide_linear(subject, request);
    match (&indexed, &linear) {
        (Decision::Allow(a), Decision::Allow(b)) => assert_eq!(a, b),
        (Decision::Deny(a), Decision::Deny(b)) => {
            assert_eq!(a.code, b.code, "index and linear scan differ: {request:?}");
            assert_eq!(a.message, b.message);
        }
        _ => panic!("index and linear scan differ: {indexed:?} vs {linear:?} for {request:?}"),
    }
    assert_eq!(set.explain(subject, request).decision, indexed);
    let Decision::Allow(grant) = indexed else {
        return;
    };
    let rule = set.rule(&grant.rule_id).expect("the granting rule exists");
    assert!(grant.ttl > Duration::zero());
    assert!(
        grant.ttl <= rule.max_ttl(),
        "grant above the rule's max_ttl"
    );
    assert_eq!(grant.max_ttl, rule.max_ttl());
    assert!(grant.max_ttl <= limits.max_ttl && grant.max_ttl <= TTL_CEILING);
    match request.ttl {
        Some(ttl) => assert_eq!(grant.ttl, ttl, "the TTL was clamped"),
        None => assert_eq!(grant.ttl, rule.default_ttl()),
    }
    assert_eq!(grant.permissions, request.permissions);
    assert!(grant.permissions.is_subset_of(rule.permissions()));
    assert_eq!(grant.ip, request.ip);
    assert_eq!(grant.revocation, rule.revocation());
    assert!(rule.allows_scope(request.scope()));
    assert_eq!(rule.account(), request.account);
    if rule.require_reason() {
        assert!(request.reason.is_some());
    }
    if rule.require_ip() {
        assert!(request.ip.is_some());
    }
}
