//! The body of `POST /v1/tokens` through the same steps as the handler, without HTTP or ledger:
//! JSON → `MintRequest::from_json` (parse and canonicalise) → policy decision over the shipped
//! `policy/*.toml` → signing → the minted URL read back by the SAS parser and graded by lint.
//!
//! Properties:
//! - account-wide requests (`ss`, `srt`, …, `resource: account`) and unknown fields are always
//!   refused;
//! - an accepted request keeps the caller's names as given (no silent rewriting), and they are
//!   canonical; its permissions suit its scope; its TTL is positive and at most ten years; its
//!   reason is trimmed, at most 500 characters and free of control characters;
//! - a grant never exceeds its rule nor 7 days, and carries exactly the TTL, permissions and ip
//!   asked for (refused, never clamped); the indexed decision equals the linear one;
//! - the minted URL, in both endpoint styles, parses back to the same account, container and
//!   blob, verifies with the key, lives no longer than the grant, is found whole by the scanner,
//!   and lint grades it below critical.
#![no_main]

use std::sync::OnceLock;

use chrono::{Duration, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use sasgate::broker::{FromJson as _, MintError, MintRequest};
use sasgate::policy::{Decision, OidcSubject, PolicyLimits, PolicySet, Subject, TTL_CEILING};
use sasgate::sas::lint::{Severity, find_candidates, lint};
use sasgate::sas::name::{AccountName, BlobName, ContainerName};
use sasgate::sas::parse::{SasKind, parse};
use sasgate::sas::perms::Resource;
use sasgate::sas::sign::{BlobSas, Protocol, ResponseOverrides, Target, sign_service};
use sasgate::sas::version::SasVersion;
use sasgate::secret::SigningKey;

/// Azurite's published development key.
const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const ACCOUNT_FIELDS: &[&str] = &[
    "ss",
    "srt",
    "services",
    "resource_types",
    "signed_services",
    "signed_resource_types",
];
const FIELDS: &[&str] = &[
    "account",
    "container",
    "blob",
    "permissions",
    "ttl",
    "ip",
    "reason",
];

/// The shipped example policy, loaded once as the server would under the default limits.
fn policy() -> &'static PolicySet {
    static SET: OnceLock<PolicySet> = OnceLock::new();
    SET.get_or_init(|| {
        let sources = [
            ("ci.toml", include_str!("../../policy/ci.toml")),
            ("github.toml", include_str!("../../policy/github.toml")),
            ("gitlab.toml", include_str!("../../policy/gitlab.toml")),
            (
                "researchers.toml",
                include_str!("../../policy/researchers.toml"),
            ),
        ];
        PolicySet::from_sources(&sources, &PolicyLimits::default())
            .expect("the shipped policy loads")
    })
}

/// Callers the shipped rules name: each role, and OIDC callers whose claims match.
fn subjects() -> Vec<Subject> {
    let role = |r: &str| Subject {
        name: format!("fuzz-{r}"),
        roles: vec![r.to_owned()],
        oidc: None,
    };
    let oidc = |issuer: &str, claims: serde_json::Value| Subject {
        name: format!("oidc:{issuer}"),
        roles: Vec::new(),
        oidc: Some(OidcSubject {
            issuer: issuer.to_owned(),
            claims: claims.as_object().cloned().unwrap_or_default(),
        }),
    };
    vec![
        role("researcher"),
        role("ci"),
        oidc(
            "github",
            serde_json::json!({
                "repository": "sasgate-lab/models",
                "repository_owner_id": "190712345",
                "ref": "refs/heads/main",
                "environment": "release",
                "job_workflow_ref": "sasgate-lab/models/.github/workflows/release.yml@refs/heads/main",
            }),
        ),
        oidc(
            "gitlab",
            serde_json::json!({
                "project_path": "sasgate-lab/models",
                "namespace_path": "sasgate-lab",
                "ref": "main",
                "ref_type": "branch",
                "ref_protected": "true",
                "environment": "production",
            }),
        ),
    ]
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let result = MintRequest::from_json(&body);
    let Some(obj) = body.as_object() else {
        assert!(matches!(result, Err(MintError::InvalidRequest(_))));
        return;
    };
    if ACCOUNT_FIELDS.iter().any(|k| obj.contains_key(*k)) {
        assert!(
            matches!(result, Err(MintError::AccountScope(_))),
            "an account-wide field was not refused as such"
        );
        return;
    }
    let Ok(req) = result else {
        return;
    };
    assert!(
        obj.keys().all(|k| FIELDS.contains(&k.as_str())),
        "unknown field accepted"
    );

    // Accepted: the names are the caller's own text, canonical.
    let given = |k: &str| obj.get(k).and_then(serde_json::Value::as_str);
    assert_eq!(given("account"), Some(req.account.as_str()));
    assert!(!req.account.is_empty());
    assert_eq!(given("container"), Some(req.container.as_str()));
    assert_eq!(
        ContainerName::parse(req.container.as_str()).as_ref(),
        Ok(&req.container)
    );
    match &req.blob {
        Some(b) => {
            assert_eq!(given("blob"), Some(b.as_str()));
            assert_eq!(BlobName::parse(b.as_str()).as_ref(), Ok(b));
        }
        None => assert!(given("blob").is_none()),
    }
    let resource = if req.blob.is_some() {
        Resource::Blob
    } else {
        Resource::Container
    };
    assert!(req.permissions.check(resource).is_ok());
    assert!(!req.permissions.as_string().is_empty());
    if let Some(ttl) = req.ttl {
        assert!(ttl > Duration::zero());
        assert!(ttl <= Duration::days(3650));
    }
    if let Some(reason) = &req.reason {
        assert_eq!(reason.trim(), reason);
        assert!(!reason.is_empty());
        assert!(reason.chars().count() <= 500);
        assert!(!reason.chars().any(char::is_control));
    }

    let set = policy();
    for subject in subjects() {
        let decision = set.decide(&subject, &req);
        let linear = set.decide_linear(&subject, &req);
        match (&decision, &linear) {
            (Decision::Allow(a), Decision::Allow(b)) => assert_eq!(a, b),
            (Decision::Deny(a), Decision::Deny(b)) => assert_eq!(a.code, b.code),
            _ => panic!("index and linear scan differ for {req:?}"),
        }
        if let Decision::Allow(grant) = decision {
            let rule = set.rule(&grant.rule_id).expect("the granting rule exists");
            assert!(grant.ttl <= grant.max_ttl && grant.max_ttl <= rule.max_ttl());
            assert!(grant.max_ttl <= PolicyLimits::default().max_ttl);
            assert!(grant.ttl <= TTL_CEILING);
            if let Some(ttl) = req.ttl {
                assert_eq!(grant.ttl, ttl, "the TTL was clamped, not refused");
            }
            assert_eq!(grant.permissions, req.permissions);
            assert!(grant.permissions.is_subset_of(rule.permissions()));
            assert_eq!(grant.ip, req.ip);
            mint(&req, &grant);
        }
    }
});

/// Signs what the grant allows, as the broker does, and reads the result back.
fn mint(req: &MintRequest, grant: &sasgate::policy::Grant) {
    let now = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
    let backdate = Duration::minutes(15);
    let account = AccountName::parse(&req.account).expect("a rule's account is a valid name");
    let target = match &req.blob {
        Some(b) => Target::Blob(b.clone()),
        None => Target::Container,
    };
    let sas = BlobSas {
        account,
        container: req.container.clone(),
        target,
        permissions: Some(grant.permissions),
        start: Some(now - backdate),
        expiry: Some(now + grant.ttl),
        ip: grant.ip,
        protocol: Some(Protocol::HttpsOnly),
        encryption_scope: None,
        overrides: ResponseOverrides::default(),
        version: SasVersion::DEFAULT,
    };
    let key = SigningKey::from_base64(KEY).expect("the key is base64");
    let token = sign_service(&sas, None, &key).expect("a granted request signs");
    for endpoint in [
        "https://devstoreaccount1.blob.core.windows.net",
        "https://127.0.0.1:10000/devstoreaccount1",
    ] {
        let endpoint = url::Url::parse(endpoint).expect("endpoint");
        let url = token.url(&endpoint, &req.container, req.blob.as_ref());
        let parsed = parse(&url).unwrap_or_else(|e| panic!("minted {url:?} does not parse: {e}"));
        assert_eq!(parsed.kind(), SasKind::Service);
        let loc = parsed.location().expect("a URL has a location");
        assert_eq!(loc.account.as_deref(), Some(req.account.as_str()));
        assert_eq!(loc.container.as_deref(), Some(req.container.as_str()));
        assert_eq!(
            loc.blob.as_deref(),
            req.blob.as_ref().map(BlobName::as_str),
            "the blob in the minted URL is not the one granted"
        );
        assert!(
            parsed.verify(&key).is_ok(),
            "the minted URL does not verify"
        );
        assert_eq!(
            parsed.permissions(),
            Some(grant.permissions.as_string().as_str())
        );
        let (start, expiry) = (parsed.start().expect("st"), parsed.expiry().expect("se"));
        assert!(expiry - start <= grant.ttl + backdate);
        assert!(expiry - start <= TTL_CEILING + backdate);
        assert_eq!(find_candidates(&url), vec![url.as_str()]);
        let report = lint(&parsed, now);
        assert!(
            report.worst < Severity::Critical,
            "lint: {:?}",
            report.findings
        );
    }
}
