//! The policy engine, told as the stories of the people it serves and refuses.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::Duration;
use proptest::prelude::*;
use sasgate::ledger::RevocationMode;
use sasgate::policy::{
    AccessRequest, Decision, Denial, DenyCode, Grant, OidcSubject, PolicyError, PolicyLimits,
    PolicySet, Scope, Stage, Subject, parse_duration,
};
use sasgate::sas::ip::IpRange;
use sasgate::sas::name::{BlobName, ContainerName};
use sasgate::sas::perms::{Permissions, Resource};
use serde_json::json;

const GITHUB: &str = "https://token.actions.githubusercontent.com";

const POLICY: &str = r#"
[[rule]]
id = "researchers-read-models"
description = "Researchers download published models"
principals = ["role:researcher"]
account = "devstoreaccount1"
containers = ["models"]
blobs = ["published/**", "*.bin"]
permissions = "r"
default_ttl = "15m"
max_ttl = "1h"
revocation = "stored_access_policy"

[[rule]]
id = "ci-artifacts"
description = "CI writes and lists build artifacts"
principals = ["role:ci"]
account = "devstoreaccount1"
containers = ["ci-*"]
scopes = ["blob", "container"]
permissions = "racwl"
max_ttl = "30m"

[[rule]]
id = "ops-audit-logs"
description = "Olivia reads audit logs from the office network, with a reason"
principals = ["user:olivia"]
account = "devstoreaccount1"
containers = ["audit"]
permissions = "r"
require_reason = true
ip_within = ["10.0.0.0/8", "192.168.1.10-192.168.1.20"]

[[rule]]
id = "partner-upload"
description = "The partner uploads, bound to its address"
principals = ["user:partner"]
account = "devstoreaccount1"
containers = ["partner-drop"]
permissions = "cw"
require_ip = true
revocation = "link_only"

[[rule]]
id = "gha-release"
description = "GitHub Actions on main publishes releases"
principals = ["oidc:https://token.actions.githubusercontent.com"]
account = "devstoreaccount1"
containers = ["releases"]
permissions = "rcw"
max_ttl = "10m"
[rule.claims]
repository = "acme/models"
ref = "refs/heads/main"
environment = "prod-*"
"#;

fn policy() -> PolicySet {
    PolicySet::from_sources(&[("policy/main.toml", POLICY)], &PolicyLimits::default())
        .unwrap_or_else(|errors| panic!("{errors:#?}"))
}

fn user(name: &str, roles: &[&str]) -> Subject {
    Subject {
        name: name.to_owned(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        oidc: None,
    }
}

fn github(claims: serde_json::Value) -> Subject {
    Subject {
        name: "oidc:github#repo:acme/models".to_owned(),
        roles: vec![],
        oidc: Some(OidcSubject {
            issuer: GITHUB.to_owned(),
            claims: claims.as_object().unwrap().clone(),
        }),
    }
}

fn request(container: &str, blob: Option<&str>, perms: &str) -> AccessRequest {
    let resource = if blob.is_some() {
        Resource::Blob
    } else {
        Resource::Container
    };
    AccessRequest {
        account: "devstoreaccount1".to_owned(),
        container: ContainerName::parse(container).unwrap(),
        blob: blob.map(|b| BlobName::parse(b).unwrap()),
        permissions: Permissions::parse(perms, resource).unwrap(),
        ttl: None,
        ip: None,
        reason: None,
    }
}

fn allow(decision: Decision) -> Grant {
    match decision {
        Decision::Allow(grant) => grant,
        Decision::Deny(denial) => panic!("expected allow, got {denial:#?}"),
    }
}

fn deny(decision: Decision) -> Denial {
    match decision {
        Decision::Deny(denial) => denial,
        Decision::Allow(grant) => panic!("expected deny, got {grant:#?}"),
    }
}

fn load_errors(sources: &[(&str, &str)]) -> Vec<PolicyError> {
    match PolicySet::from_sources(sources, &PolicyLimits::default()) {
        Ok(_) => panic!("expected load errors"),
        Err(errors) => errors,
    }
}

/// Asserts that one error names this file, rule and field, and its message contains `hint`.
fn has_error(errors: &[PolicyError], file: &str, rule: &str, field: &str, hint: &str) {
    assert!(
        errors.iter().any(|e| e.file == file
            && e.rule.as_deref() == Some(rule)
            && e.field.as_deref() == Some(field)
            && e.message.contains(hint)),
        "no error for {file} / {rule} / {field} containing {hint:?} in {errors:#?}"
    );
}

fn rule(id: &str, body: &str) -> String {
    format!(
        "[[rule]]\nid = \"{id}\"\nprincipals = [\"role:r\"]\naccount = \"acct1\"\ncontainers = [\"data\"]\npermissions = \"r\"\n{body}\n"
    )
}

// --- The researcher -------------------------------------------------------------------------

#[test]
fn a_researcher_downloads_a_published_model_for_the_default_fifteen_minutes() {
    let grant = allow(policy().decide(
        &user("rhea", &["researcher"]),
        &request("models", Some("published/llm-7b/weights.safetensors"), "r"),
    ));
    assert_eq!(grant.rule_id, "researchers-read-models");
    assert_eq!(grant.ttl, Duration::minutes(15));
    assert_eq!(grant.max_ttl, Duration::hours(1));
    assert_eq!(grant.permissions.as_string(), "r");
    assert_eq!(grant.revocation, RevocationMode::StoredAccessPolicy);
    assert_eq!(grant.ip, None);
}

#[test]
fn a_researcher_asking_for_a_week_is_refused_and_told_the_maximum() {
    let mut req = request("models", Some("published/llm-7b/weights.bin"), "r");
    req.ttl = Some(Duration::days(7));
    let denial = deny(policy().decide(&user("rhea", &["researcher"]), &req));
    assert_eq!(denial.code, DenyCode::TtlExceedsPolicy);
    assert_eq!(denial.code.as_str(), "ttl_exceeds_policy");
    assert!(
        denial
            .message
            .contains("the longest this rule allows is 1h"),
        "{}",
        denial.message
    );
    assert_eq!(denial.reasons.len(), 1);
    assert_eq!(denial.reasons[0].rule_id, "researchers-read-models");

    // Exactly the maximum is fine, and is never clamped: what is asked is what is granted.
    req.ttl = Some(Duration::hours(1));
    let grant = allow(policy().decide(&user("rhea", &["researcher"]), &req));
    assert_eq!(grant.ttl, Duration::hours(1));
}

#[test]
fn a_researcher_asking_to_write_is_refused() {
    let denial = deny(policy().decide(
        &user("rhea", &["researcher"]),
        &request("models", Some("published/a.bin"), "rw"),
    ));
    assert_eq!(denial.code, DenyCode::PermissionNotAllowed);
    assert!(denial.message.contains("'r'"), "{}", denial.message);
}

#[test]
fn a_researcher_asking_for_the_whole_container_is_refused_for_scope() {
    let denial = deny(policy().decide(
        &user("rhea", &["researcher"]),
        &request("models", None, "r"),
    ));
    assert_eq!(denial.code, DenyCode::ScopeNotAllowed);
    assert_eq!(denial.code.as_str(), "scope_not_allowed");
    assert!(denial.message.contains("name a blob"), "{}", denial.message);
}

#[test]
fn someone_with_no_rule_is_refused_with_no_matching_rule() {
    let denial = deny(policy().decide(
        &user("mallory", &["intern"]),
        &request("models", Some("published/a.bin"), "r"),
    ));
    assert_eq!(denial.code, DenyCode::NoMatchingRule);
    assert_eq!(denial.code.as_str(), "no_matching_rule");
    assert!(denial.reasons.is_empty(), "{:?}", denial.reasons);
    assert!(denial.message.contains("policy explain"));

    // Another account, same everything else: no rule either.
    let mut req = request("models", Some("published/a.bin"), "r");
    req.account = "otheraccount".to_owned();
    let denial = deny(policy().decide(&user("rhea", &["researcher"]), &req));
    assert_eq!(denial.code, DenyCode::NoMatchingRule);

    // An empty policy denies everything.
    let empty = PolicySet::from_sources::<&str, &str>(&[], &PolicyLimits::default()).unwrap();
    assert!(empty.is_empty());
    let denial = deny(empty.decide(
        &user("rhea", &["researcher"]),
        &request("models", Some("published/a.bin"), "r"),
    ));
    assert_eq!(denial.code, DenyCode::NoMatchingRule);
}

// --- Globs ----------------------------------------------------------------------------------

#[test]
fn blob_globs_star_stays_in_a_segment_and_double_star_crosses() {
    let p = policy();
    let rhea = user("rhea", &["researcher"]);
    for ok in [
        "published/a",
        "published/v1/deep/weights.safetensors",
        "weights.bin",
    ] {
        allow(p.decide(&rhea, &request("models", Some(ok), "r")));
    }
    for refused in [
        "drafts/weights.bin",
        "drafts/x.txt",
        "publishedx/a",
        "published",
    ] {
        let denial = deny(p.decide(&rhea, &request("models", Some(refused), "r")));
        assert_eq!(denial.code, DenyCode::NoMatchingRule, "{refused}");
        assert!(
            denial.reasons[0].reason.contains("matches none of"),
            "{:?}",
            denial.reasons
        );
    }
}

#[test]
fn container_globs_match_by_prefix() {
    let p = policy();
    let ci = user("build-bot", &["ci"]);
    let grant = allow(p.decide(&ci, &request("ci-1234", Some("out/app.tar"), "cw")));
    assert_eq!(grant.rule_id, "ci-artifacts");
    assert_eq!(grant.ttl, Duration::minutes(15));
    // Container scope is said explicitly in this rule.
    allow(p.decide(&ci, &request("ci-1234", None, "rl")));
    for other in ["cix", "build-ci-1", "models"] {
        let denial = deny(p.decide(&ci, &request(other, Some("a"), "r")));
        assert_eq!(denial.code, DenyCode::NoMatchingRule, "{other}");
    }
}

// --- Reason and ip --------------------------------------------------------------------------

#[test]
fn olivia_needs_a_reason_and_an_office_address() {
    let p = policy();
    let olivia = user("olivia", &[]);
    let mut req = request("audit", Some("2026/11/29.log"), "r");

    let denial = deny(p.decide(&olivia, &req));
    assert_eq!(denial.code, DenyCode::ReasonRequired);
    assert_eq!(denial.code.as_str(), "reason_required");

    req.reason = Some("   ".to_owned());
    assert_eq!(
        deny(p.decide(&olivia, &req)).code,
        DenyCode::ReasonRequired,
        "a blank reason is no reason"
    );

    req.reason = Some("incident INC-42".to_owned());
    let denial = deny(p.decide(&olivia, &req));
    assert_eq!(denial.code, DenyCode::IpRequired, "ip_within implies an ip");
    assert_eq!(denial.code.as_str(), "ip_required");

    req.ip = Some(IpRange::parse("203.0.113.7").unwrap());
    let denial = deny(p.decide(&olivia, &req));
    assert_eq!(denial.code, DenyCode::IpRequired);
    assert!(denial.message.contains("outside"), "{}", denial.message);

    // A range reaching outside the allowed one is refused too.
    req.ip = Some(IpRange::parse("192.168.1.15-192.168.1.25").unwrap());
    assert_eq!(deny(p.decide(&olivia, &req)).code, DenyCode::IpRequired);

    for inside in ["10.1.2.3", "10.9.0.0/16", "192.168.1.10-192.168.1.20"] {
        req.ip = Some(IpRange::parse(inside).unwrap());
        let grant = allow(p.decide(&olivia, &req));
        assert_eq!(grant.ip, req.ip, "the grant carries the requested ip");
    }
}

#[test]
fn the_partner_must_bind_its_upload_to_an_address() {
    let p = policy();
    let partner = user("partner", &[]);
    let mut req = request("partner-drop", Some("batch-7.csv"), "cw");
    assert_eq!(deny(p.decide(&partner, &req)).code, DenyCode::IpRequired);
    req.ip = Some(IpRange::parse("198.51.100.0/24").unwrap());
    let grant = allow(p.decide(&partner, &req));
    assert_eq!(grant.revocation, RevocationMode::LinkOnly);
    // Every address is not an address: a range wider than a /16 does not satisfy require_ip.
    for wide in ["0.0.0.0/0", "10.0.0.0/8", "10.0.0.0/15"] {
        req.ip = Some(IpRange::parse(wide).unwrap());
        let d = deny(p.decide(&partner, &req));
        assert_eq!(d.code, DenyCode::IpRequired, "{wide}");
        assert!(d.message.contains("/16"), "{}", d.message);
    }
    req.ip = Some(IpRange::parse("10.0.0.0/16").unwrap());
    assert!(p.decide(&partner, &req).is_allow());
}

#[test]
fn globs_that_could_reach_every_container_or_cross_a_slash_are_refused() {
    for (glob, hint) in [
        ("[]a-z0-9]*", "only lowercase"),
        ("[!]]*", "only lowercase"),
        ("[a-z]*", "only lowercase"),
        ("*", "every container"),
        ("?*", "every container"),
        ("{a,b}*", "only lowercase"),
    ] {
        let text = format!(
            "[[rule]]\nid = \"r\"\nprincipals = [\"role:x\"]\naccount = \"acct1\"\ncontainers = [{glob:?}]\nscopes = [\"container\"]\npermissions = \"r\"\n"
        );
        let errors = load_errors(&[("p.toml", text.as_str())]);
        has_error(&errors, "p.toml", "r", "containers", hint);
    }
    let text = rule("r", "blobs = [\"data[!_]*\"]");
    let errors = load_errors(&[("p.toml", text.as_str())]);
    has_error(&errors, "p.toml", "r", "blobs", "character classes");
}

// --- OIDC -----------------------------------------------------------------------------------

#[test]
fn github_actions_on_main_in_prod_may_publish() {
    let subject = github(json!({
        "repository": "acme/models", "ref": "refs/heads/main", "environment": "prod-eu"
    }));
    let grant = allow(policy().decide(&subject, &request("releases", Some("v1/model.bin"), "cw")));
    assert_eq!(grant.rule_id, "gha-release");
}

#[test]
fn github_actions_from_another_branch_or_without_a_claim_is_refused() {
    let p = policy();
    let req = request("releases", Some("v1/model.bin"), "cw");

    let branch = github(json!({
        "repository": "acme/models", "ref": "refs/heads/dev", "environment": "prod-eu"
    }));
    let denial = deny(p.decide(&branch, &req));
    assert_eq!(denial.code, DenyCode::NoMatchingRule);
    assert!(
        denial.reasons[0].reason.contains("claim 'ref'"),
        "{:?}",
        denial.reasons
    );

    let glob_miss = github(json!({
        "repository": "acme/models", "ref": "refs/heads/main", "environment": "staging"
    }));
    assert_eq!(
        deny(p.decide(&glob_miss, &req)).code,
        DenyCode::NoMatchingRule
    );

    let missing = github(json!({ "repository": "acme/models", "ref": "refs/heads/main" }));
    let denial = deny(p.decide(&missing, &req));
    assert!(
        denial.reasons[0]
            .reason
            .contains("'environment' is missing"),
        "{:?}",
        denial.reasons
    );

    let other_issuer = Subject {
        oidc: Some(OidcSubject {
            issuer: "https://evil.example".to_owned(),
            claims: github(json!({
                "repository": "acme/models", "ref": "refs/heads/main", "environment": "prod-eu"
            }))
            .oidc
            .unwrap()
            .claims,
        }),
        ..user("x", &[])
    };
    assert_eq!(
        deny(p.decide(&other_issuer, &req)).code,
        DenyCode::NoMatchingRule
    );
}

#[test]
fn an_array_claim_matches_when_any_element_does() {
    let subject = github(json!({
        "repository": "acme/models", "ref": "refs/heads/main", "environment": ["dev", "prod-us"]
    }));
    allow(policy().decide(&subject, &request("releases", Some("v1/model.bin"), "r")));
    let subject = github(json!({
        "repository": "acme/models", "ref": "refs/heads/main", "environment": ["dev", 3]
    }));
    deny(policy().decide(&subject, &request("releases", Some("v1/model.bin"), "r")));
}

// --- Precedence and explain -----------------------------------------------------------------

#[test]
fn the_code_comes_from_the_rule_that_got_furthest() {
    let text = format!(
        "{}{}",
        rule("a-blob-only", "max_ttl = \"1h\""),
        rule("b-container", "scopes = [\"container\"]\nmax_ttl = \"5m\"")
    );
    let p =
        PolicySet::from_sources(&[("p.toml", text.as_str())], &PolicyLimits::default()).unwrap();
    let mut req = request("data", None, "r");
    req.account = "acct1".to_owned();
    req.ttl = Some(Duration::minutes(30));
    // a-blob-only stops at scope, b-container at ttl: ttl is further.
    let denial = deny(p.decide(&user("u", &["r"]), &req));
    assert_eq!(denial.code, DenyCode::TtlExceedsPolicy);
    assert!(denial.message.contains("b-container"));
    assert!(
        denial
            .message
            .contains("the longest this rule allows is 5m")
    );
    assert_eq!(denial.reasons.len(), 2);

    let explanation = p.explain(&user("u", &["r"]), &req);
    assert_eq!(explanation.decision, Decision::Deny(denial));
    let stages: Vec<Stage> = explanation.rules.iter().map(|r| r.stage).collect();
    assert_eq!(stages, vec![Stage::Scope, Stage::Ttl]);
    assert!(explanation.rules.iter().all(|r| r.matched));
}

#[test]
fn the_first_allowing_rule_wins() {
    let text = format!(
        "{}{}",
        rule("first", "revocation = \"link_only\""),
        rule("second", "")
    );
    let p =
        PolicySet::from_sources(&[("p.toml", text.as_str())], &PolicyLimits::default()).unwrap();
    let mut req = request("data", Some("x"), "r");
    req.account = "acct1".to_owned();
    let grant = allow(p.decide(&user("u", &["r"]), &req));
    assert_eq!(grant.rule_id, "first");
    assert_eq!(grant.revocation, RevocationMode::LinkOnly);
}

#[test]
fn explain_covers_every_rule() {
    let p = policy();
    let explanation = p.explain(
        &user("rhea", &["researcher"]),
        &request("models", Some("published/a.bin"), "r"),
    );
    assert!(explanation.decision.is_allow());
    assert_eq!(explanation.rules.len(), p.len());
    let first = &explanation.rules[0];
    assert_eq!(first.stage, Stage::Allowed);
    assert_eq!(first.file, "policy/main.toml");
    assert!(
        explanation.rules[1..]
            .iter()
            .all(|r| r.stage == Stage::Principal && !r.matched)
    );
}

#[test]
fn a_non_positive_ttl_is_refused() {
    let mut req = request("models", Some("published/a.bin"), "r");
    req.ttl = Some(Duration::zero());
    let denial = deny(policy().decide(&user("rhea", &["researcher"]), &req));
    assert_eq!(denial.code, DenyCode::TtlExceedsPolicy);
    assert!(denial.message.contains("positive"), "{}", denial.message);
}

#[test]
fn empty_permissions_are_refused() {
    let mut req = request("models", Some("published/a.bin"), "r");
    req.permissions = Permissions::default();
    let denial = deny(policy().decide(&user("rhea", &["researcher"]), &req));
    assert_eq!(denial.code, DenyCode::PermissionNotAllowed);
}

// --- Loading --------------------------------------------------------------------------------

#[test]
fn rules_expose_what_the_caller_needs() {
    let p = policy();
    let modes = p.revocation_modes();
    assert_eq!(
        modes[0],
        (
            "researchers-read-models",
            RevocationMode::StoredAccessPolicy
        )
    );
    assert_eq!(modes[1], ("ci-artifacts", RevocationMode::ExpiryOnly));
    let ci = p.rule("ci-artifacts").unwrap();
    assert_eq!(ci.scopes(), vec![Scope::Blob, Scope::Container]);
    assert_eq!(
        ci.default_ttl(),
        Duration::minutes(15),
        "min(global 15m, rule 30m)"
    );
    let gha = p.rule("gha-release").unwrap();
    assert_eq!(
        gha.default_ttl(),
        Duration::minutes(10),
        "min(global 15m, rule 10m)"
    );
    assert_eq!(
        gha.claims().collect::<Vec<_>>(),
        vec![
            ("environment", "prod-*"),
            ("ref", "refs/heads/main"),
            ("repository", "acme/models")
        ]
    );
    let audit = p.rule("ops-audit-logs").unwrap();
    assert!(audit.require_ip(), "ip_within implies require_ip");
    assert_eq!(audit.max_ttl(), Duration::hours(1), "the global max");
}

#[test]
fn a_duplicate_id_across_files_is_reported_with_both_files() {
    let a = rule("shared", "");
    let b = rule("shared", "");
    let errors = load_errors(&[("policy/a.toml", &a), ("policy/b.toml", &b)]);
    has_error(
        &errors,
        "policy/b.toml",
        "shared",
        "id",
        "first defined in policy/a.toml",
    );
    assert_eq!(errors.len(), 1);
}

#[test]
fn a_max_ttl_over_the_global_ceiling_is_refused() {
    let text = rule("long", "max_ttl = \"2h\"");
    let errors = load_errors(&[("p.toml", &text)]);
    has_error(&errors, "p.toml", "long", "max_ttl", "limits.max_ttl = 1h");
    // Raising the ceiling lets it through; the ceiling itself stops at 7 days.
    let limits = PolicyLimits {
        max_ttl: Duration::hours(2),
        default_ttl: Duration::minutes(15),
    };
    PolicySet::from_sources(&[("p.toml", text.as_str())], &limits).unwrap();
    let too_long = PolicyLimits {
        max_ttl: Duration::days(8),
        default_ttl: Duration::minutes(15),
    };
    let errors = PolicySet::from_sources(&[("p.toml", text.as_str())], &too_long).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.field.as_deref() == Some("max_ttl") && e.message.contains("at most 7d"))
    );
}

#[test]
fn a_default_ttl_above_the_max_is_refused() {
    let text = rule("d", "default_ttl = \"30m\"\nmax_ttl = \"20m\"");
    let errors = load_errors(&[("p.toml", &text)]);
    has_error(&errors, "p.toml", "d", "default_ttl", "max_ttl (20m)");
}

#[test]
fn bad_globs_are_refused() {
    let text = format!(
        "{}{}",
        rule("g1", "blobs = [\"a/[b\"]"),
        rule("g2", "").replace("[\"data\"]", "[\"ci-[0-9\"]")
    );
    let errors = load_errors(&[("p.toml", &text)]);
    has_error(&errors, "p.toml", "g1", "blobs", "character classes");
    has_error(&errors, "p.toml", "g2", "containers", "only lowercase");
}

#[test]
fn a_rule_can_never_grant_every_container() {
    for everything in ["*", "**", "?*", "*?*"] {
        let text = rule("all", "").replace("[\"data\"]", &format!("[\"{everything}\"]"));
        let errors = load_errors(&[("p.toml", &text)]);
        has_error(&errors, "p.toml", "all", "containers", "account scope");
    }
}

#[test]
fn an_unknown_field_is_named() {
    let text = rule("typo", "max_tll = \"1h\"\n");
    let errors = load_errors(&[("p.toml", &text)]);
    has_error(&errors, "p.toml", "typo", "max_tll", "unknown field");
    let errors = load_errors(&[("p.toml", "[[rules]]\nid = \"x\"\n")]);
    assert_eq!(errors[0].field.as_deref(), Some("rules"));
}

#[test]
fn an_invalid_permission_letter_is_refused() {
    let text = rule("perm", "").replace("permissions = \"r\"", "permissions = \"rq\"");
    let errors = load_errors(&[("p.toml", &text)]);
    has_error(&errors, "p.toml", "perm", "permissions", "'q'");
    // 'f' is a container letter only: fine for a container rule, refused where blob scope is allowed.
    let ok = rule("f", "scopes = [\"container\"]").replace("\"r\"", "\"rf\"");
    PolicySet::from_sources(&[("p.toml", ok.as_str())], &PolicyLimits::default()).unwrap();
    let bad = rule("f", "").replace("\"r\"", "\"rf\"");
    has_error(
        &load_errors(&[("p.toml", &bad)]),
        "p.toml",
        "f",
        "permissions",
        "'f'",
    );
}

#[test]
fn claims_without_an_oidc_principal_are_refused() {
    let text = rule("claims", "[rule.claims]\nsub = \"x\"");
    let errors = load_errors(&[("p.toml", &text)]);
    has_error(&errors, "p.toml", "claims", "claims", "oidc");
    // ...and an oidc principal without claims would match every token of the issuer.
    let text = rule("bare", "").replace("role:r", "oidc:https://issuer.example");
    has_error(
        &load_errors(&[("p.toml", &text)]),
        "p.toml",
        "bare",
        "claims",
        "add at least one claim",
    );
}

#[test]
fn blobs_with_container_scope_are_refused() {
    let text = rule(
        "leak",
        "blobs = [\"public/**\"]\nscopes = [\"blob\", \"container\"]",
    );
    has_error(
        &load_errors(&[("p.toml", &text)]),
        "p.toml",
        "leak",
        "scopes",
        "every blob",
    );
}

#[test]
fn several_errors_are_reported_together() {
    let one = format!(
        "{}{}",
        rule("ok-one", ""),
        "[[rule]]\nid = \"Bad Id\"\nprincipals = [\"group:x\"]\naccount = \"Not_An_Account\"\ncontainers = [\"*\"]\npermissions = \"rz\"\nmax_ttl = \"1 hour\"\nrevocation = \"never\"\nip_within = [\"10.0.0.0/33\"]\n"
    );
    let two = rule("ok-one", "require_reason = \"yes\"");
    let errors = load_errors(&[("a.toml", &one), ("b.toml", &two)]);
    for field in [
        "id",
        "principals",
        "account",
        "containers",
        "permissions",
        "max_ttl",
        "revocation",
        "ip_within",
    ] {
        has_error(&errors, "a.toml", "#2", field, "");
    }
    has_error(&errors, "b.toml", "ok-one", "require_reason", "boolean");
    // Display names file, rule and field.
    let text = errors[0].to_string();
    assert!(text.starts_with("a.toml: rule #2: "), "{text}");
    assert!(errors.len() >= 9, "{errors:#?}");
}

#[test]
fn syntax_errors_and_missing_fields_name_the_file() {
    let errors = load_errors(&[("broken.toml", "[[rule]\nid = ")]);
    assert_eq!(errors[0].file, "broken.toml");
    assert!(errors[0].message.contains("not valid TOML"));
    let errors = load_errors(&[(
        "m.toml",
        "[[rule]]\nid = \"m\"\nprincipals = [\"role:r\"]\n",
    )]);
    has_error(&errors, "m.toml", "m", "account", "missing");
}

#[test]
fn load_dir_reads_sorted_toml_files_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.toml"), rule("from-b", "")).unwrap();
    std::fs::write(dir.path().join("a.toml"), rule("from-a", "")).unwrap();
    std::fs::write(dir.path().join("notes.md"), "not policy").unwrap();
    std::fs::create_dir(dir.path().join("sub.toml")).unwrap();
    let p = PolicySet::load_dir(dir.path(), &PolicyLimits::default()).unwrap();
    let ids: Vec<&str> = p.rules().iter().map(|r| r.id()).collect();
    assert_eq!(ids, vec!["from-a", "from-b"]);
    assert!(p.rules()[0].file().ends_with("a.toml"));

    let empty = tempfile::tempdir().unwrap();
    assert!(
        PolicySet::load_dir(empty.path(), &PolicyLimits::default())
            .unwrap()
            .is_empty()
    );

    std::fs::write(dir.path().join("c.toml"), rule("from-a", "")).unwrap();
    let errors = PolicySet::load_dir(dir.path(), &PolicyLimits::default()).unwrap_err();
    assert!(errors[0].file.ends_with("c.toml"), "{errors:?}");
    assert!(PolicySet::load_dir(&dir.path().join("missing"), &PolicyLimits::default()).is_err());
}

#[test]
fn parse_duration_is_shared() {
    assert_eq!(parse_duration("90s").unwrap(), Duration::seconds(90));
    assert_eq!(parse_duration("2d").unwrap(), Duration::days(2));
    assert!(parse_duration("2 days").is_err());
}

// --- Properties -----------------------------------------------------------------------------

const PERMS: &[&str] = &["r", "rl", "rw", "racwl", "cw", "rcwd"];
const CONTAINERS: &[&str] = &["data", "models", "ci-1", "ci-22", "logs", "data"];
const BLOBS: &[&str] = &["a", "x/a.bin", "published/m/w.bin", "b.bin", "published/z"];

fn arb_rule() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["role:a", "role:b", "user:u", "user:v"]),
        prop::sample::select(vec!["acct1", "acct2"]),
        prop::sample::select(vec!["data", "models", "ci-*", "ci-?"]),
        prop::option::of(prop::sample::select(vec!["**/*.bin", "published/**", "a"])),
        any::<bool>(),
        prop::sample::select(PERMS.to_vec()),
        1u32..=60,
        any::<bool>(),
        prop::option::of(prop::sample::select(vec!["10.0.0.0/8", "1.2.3.4"])),
    )
        .prop_map(
            |(principal, account, container, blobs, with_container, perms, max_m, reason, ipw)| {
                let mut text = format!(
                    "principals = [\"{principal}\"]\naccount = \"{account}\"\ncontainers = [\"{container}\"]\npermissions = \"{perms}\"\nmax_ttl = \"{max_m}m\"\nrequire_reason = {reason}\n"
                );
                match (blobs, with_container) {
                    (Some(b), _) => text.push_str(&format!("blobs = [\"{b}\"]\n")),
                    (None, true) => text.push_str("scopes = [\"blob\", \"container\"]\n"),
                    (None, false) => {}
                }
                if let Some(ip) = ipw {
                    text.push_str(&format!("ip_within = [\"{ip}\"]\n"));
                }
                text
            },
        )
}

fn arb_request() -> impl Strategy<Value = (Subject, AccessRequest)> {
    (
        prop::sample::select(vec!["u", "v", "w"]),
        prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..4),
        prop::sample::select(vec!["acct1", "acct2"]),
        prop::sample::select(CONTAINERS.to_vec()),
        prop::option::of(prop::sample::select(BLOBS.to_vec())),
        prop::sample::select(PERMS.to_vec()),
        prop::option::of(-5i64..4_000),
        prop::option::of(prop::sample::select(vec![
            "10.1.1.1",
            "10.0.0.0/7",
            "1.2.3.4",
        ])),
        prop::sample::select(vec![None, Some(""), Some("why"), Some("because")]),
    )
        .prop_map(
            |(name, roles, account, container, blob, perms, ttl, ip, reason)| {
                let resource = if blob.is_some() {
                    Resource::Blob
                } else {
                    Resource::Container
                };
                (
                    Subject {
                        name: name.to_owned(),
                        roles: roles.into_iter().map(str::to_owned).collect(),
                        oidc: None,
                    },
                    AccessRequest {
                        account: account.to_owned(),
                        container: ContainerName::parse(container).unwrap(),
                        blob: blob.map(|b| BlobName::parse(b).unwrap()),
                        permissions: Permissions::parse(perms, resource).unwrap(),
                        ttl: ttl.map(Duration::seconds),
                        ip: ip.map(|i| IpRange::parse(i).unwrap()),
                        reason: reason.map(str::to_owned),
                    },
                )
            },
        )
}

proptest! {
    #[test]
    fn decide_never_panics_and_an_allow_stays_within_its_rule(
        rules in prop::collection::vec(arb_rule(), 0..40),
        requests in prop::collection::vec(arb_request(), 1..8),
    ) {
        let text: String = rules
            .iter()
            .enumerate()
            .map(|(i, body)| format!("[[rule]]\nid = \"r{i}\"\n{body}\n"))
            .collect();
        let p = PolicySet::from_sources(&[("p.toml", text.as_str())], &PolicyLimits::default())
            .unwrap_or_else(|e| panic!("{e:#?}\n{text}"));
        for (subject, request) in &requests {
            let decision = p.decide(subject, request);
            let linear = p.decide_linear(subject, request);
            match (&decision, &linear) {
                (Decision::Allow(grant), Decision::Allow(other)) => {
                    prop_assert_eq!(grant, other);
                    let rule = p.rule(&grant.rule_id).unwrap();
                    prop_assert!(grant.permissions.is_subset_of(rule.permissions()));
                    prop_assert!(grant.ttl <= rule.max_ttl());
                    prop_assert!(grant.ttl > Duration::zero());
                    prop_assert_eq!(grant.permissions, request.permissions);
                    prop_assert!(rule.allows_scope(request.scope()));
                    prop_assert_eq!(rule.account(), request.account.as_str());
                }
                (Decision::Deny(d), Decision::Deny(l)) => {
                    prop_assert_eq!(d.code, l.code);
                    prop_assert_eq!(&d.message, &l.message);
                    prop_assert!(!d.message.is_empty());
                }
                _ => prop_assert!(false, "index and linear scan disagree: {decision:?} vs {linear:?}"),
            }
        }
    }
}
