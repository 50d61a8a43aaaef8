#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! CI pipelines authenticate with OIDC ID tokens (issue 6).
//!
//! The tokens are signed here with a test key set (tests/keys/, test-only), carrying the claims
//! GitHub Actions and GitLab CI put in theirs; sasgate trusts that key set for the `github` and
//! `gitlab` issuers (tests/common/app.rs), with the shipped policies `policy/github.toml` and
//! `policy/gitlab.toml`. Every SAS minted is checked on Azurite over HTTPS.

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use common::app::{MODEL, TestApp, spawn_app, spawn_app_with};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const GITHUB: &str = "https://token.actions.githubusercontent.com";
const OWNER_ID: &str = "190712345";
const RSA: &[u8] = include_bytes!("keys/oidc-rsa.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("keys/oidc-rsa.pub.pem");
const RSA_NEXT: &[u8] = include_bytes!("keys/oidc-rsa-next.pem");
const EC: &[u8] = include_bytes!("keys/oidc-ec.pem");

/// The claims of a GitHub Actions job of `repository` on `git_ref`.
fn github_claims(repository: &str, git_ref: &str, environment: Option<&str>) -> Value {
    let now = Utc::now().timestamp();
    let mut c = json!({
        "iss": GITHUB,
        "aud": "sasgate",
        "sub": format!("repo:{repository}:ref:{git_ref}"),
        "jti": format!("jti-{now}-{}", rand_suffix()),
        "repository": repository,
        "repository_owner": repository.split('/').next().unwrap(),
        "repository_owner_id": OWNER_ID,
        "ref": git_ref,
        "ref_type": "branch",
        "job_workflow_ref": format!("{repository}/.github/workflows/release.yml@{git_ref}"),
        "workflow": "release",
        "event_name": "push",
        "iat": now - 5,
        "nbf": now - 5,
        "exp": now + 300,
    });
    if let Some(env) = environment {
        c["environment"] = json!(env);
        c["sub"] = json!(format!("repo:{repository}:environment:{env}"));
    }
    c
}

fn gitlab_claims(project: &str, git_ref: &str, environment: &str) -> Value {
    let now = Utc::now().timestamp();
    json!({
        "iss": "https://gitlab.com",
        "aud": "sasgate",
        "sub": format!("project_path:{project}:ref_type:branch:ref:{git_ref}"),
        "project_path": project,
        "namespace_path": project.split('/').next().unwrap(),
        "ref": git_ref,
        "ref_type": "branch",
        "ref_protected": "true",
        "environment": environment,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    })
}

fn rand_suffix() -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    u64::from_le_bytes(b)
}

fn sign_rs256(claims: &Value, kid: &str, pem: &[u8]) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_pem(pem).unwrap()).unwrap()
}

fn sign(claims: &Value) -> String {
    sign_rs256(claims, "test-rsa-1", RSA)
}

fn sign_es256(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("test-ec-1".into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_pem(EC).unwrap()).unwrap()
}

/// A token with a hand-made header and signature.
fn forge(header: Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

fn model_read() -> Value {
    json!({"account": "devstoreaccount1", "container": "models", "blob": "published/model.bin"})
}

async fn upload(app: &TestApp, url: &str, body: &'static [u8]) -> u16 {
    app.http
        .put(url)
        .header("x-ms-blob-type", "BlockBlob")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn allowed_jobs_get_tokens_that_work_and_the_ledger_keeps_the_deciding_claims() {
    let app = spawn_app().await;

    // The release workflow on main, in the release environment.
    let release = github_claims("sasgate-lab/models", "refs/heads/main", Some("release"));
    let (status, minted) = app.mint(&sign(&release), model_read()).await;
    assert_eq!(status, 201, "{minted}");
    assert_eq!(minted["rule"], "github-release-reads-models");
    let (status, body) = app.download(minted["url"].as_str().unwrap()).await;
    assert_eq!((status, body.as_slice()), (200, MODEL));

    let record = app
        .ledger
        .get(minted["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.principal,
        "oidc:github#repo:sasgate-lab/models:environment:release"
    );
    let claims = record.principal_claims.unwrap();
    for (name, value) in [
        ("iss", GITHUB),
        ("aud", "sasgate"),
        ("repository", "sasgate-lab/models"),
        ("repository_owner_id", OWNER_ID),
        ("ref", "refs/heads/main"),
        ("environment", "release"),
        (
            "job_workflow_ref",
            "sasgate-lab/models/.github/workflows/release.yml@refs/heads/main",
        ),
    ] {
        assert_eq!(claims[name], value, "{name} is recorded");
    }
    assert!(claims.get("workflow").is_none(), "only the deciding claims");
    assert_eq!(claims["jti"], release["jti"]);

    // ES256 works too.
    let (status, minted) = app.mint(&sign_es256(&release), model_read()).await;
    assert_eq!(status, 201, "{minted}");

    // A CI job of the organisation uploads an artifact (create + write only).
    let ci = github_claims("sasgate-lab/tools", "refs/heads/fix-1", None);
    let (status, minted) = app
        .mint(
            &sign(&ci),
            json!({"account": "devstoreaccount1", "container": "ci-build", "blob": "tools/42/app.tgz", "permissions": "cw"}),
        )
        .await;
    assert_eq!(status, 201, "{minted}");
    assert_eq!(
        upload(&app, minted["url"].as_str().unwrap(), b"artifact").await,
        201
    );
    // It cannot read it back.
    assert_eq!(app.download(minted["url"].as_str().unwrap()).await.0, 403);

    // GitLab: a protected-branch deploy job in production.
    let gitlab = gitlab_claims("sasgate-lab/models", "main", "production");
    let (status, minted) = app.mint(&sign(&gitlab), model_read()).await;
    assert_eq!(status, 201, "{minted}");
    assert_eq!(minted["rule"], "gitlab-deploy-reads-models");
    assert_eq!(app.download(minted["url"].as_str().unwrap()).await.0, 200);

    // An OIDC caller is never an admin.
    let (status, _) = app.get(&sign(&release), "/v1/issuances").await;
    assert_eq!(status, 403);
    app.stop().await;
}

#[tokio::test]
async fn another_branch_repository_owner_or_environment_is_refused() {
    let app = spawn_app().await;
    let cases = [
        (
            "another branch",
            github_claims("sasgate-lab/models", "refs/heads/dev", Some("release")),
            "ref",
        ),
        (
            "another repository",
            github_claims("evil-org/models", "refs/heads/main", Some("release")),
            "repository",
        ),
        (
            "a pull request ref",
            github_claims("sasgate-lab/models", "refs/pull/7/merge", Some("release")),
            "ref",
        ),
        (
            "no environment",
            github_claims("sasgate-lab/models", "refs/heads/main", None),
            "environment",
        ),
        (
            "the same name under another owner",
            {
                let mut c = github_claims("sasgate-lab/models", "refs/heads/main", Some("release"));
                c["repository_owner_id"] = json!("999");
                c
            },
            "repository_owner_id",
        ),
    ];
    let mut seen = 0;
    for (what, claims, claim) in cases {
        let (status, problem) = app.mint(&sign(&claims), model_read()).await;
        assert_eq!(status, 403, "{what}: {problem}");
        assert_eq!(problem["code"], "no_matching_rule", "{what}");
        // The caller does not learn which claim values the rules want (anyone can get a token
        // from a public CI issuer); the denial log does.
        assert!(problem.get("reasons").is_none(), "{what}: {problem}");
        assert!(!problem.to_string().contains("190712345"), "{what}");
        // Denials are written behind the refusal (best effort): poll for this one.
        let deadline = Instant::now() + Duration::from_secs(10);
        let denial = loop {
            let all = app.ledger.denials(1000).await.unwrap();
            if all.len() > seen {
                seen = all.len();
                break all.into_iter().next().unwrap();
            }
            assert!(Instant::now() < deadline, "{what}: no denial recorded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(
            denial
                .reasons
                .join(" ")
                .contains(&format!("claim '{claim}'")),
            "{what}: the denial log names the claim: {:?}",
            denial.reasons
        );
    }
    // `*` does not cross `/`: a nested branch name is not "refs/heads/*".
    let nested = github_claims("sasgate-lab/tools", "refs/heads/feature/x", None);
    let (status, _) = app
        .mint(
            &sign(&nested),
            json!({"account": "devstoreaccount1", "container": "ci-build", "blob": "a.tgz", "permissions": "cw"}),
        )
        .await;
    assert_eq!(status, 403);
    // A GitLab job off the protected branch.
    let gitlab = gitlab_claims("sasgate-lab/models", "feature", "production");
    assert_eq!(app.mint(&sign(&gitlab), model_read()).await.0, 403);
    let page = app
        .ledger
        .list(&Default::default(), Utc::now(), 10, None)
        .await
        .unwrap();
    assert!(page.items.is_empty(), "nothing was issued");
    app.stop().await;
}

#[tokio::test]
async fn every_bad_token_is_refused_with_its_code() {
    let app = spawn_app().await;
    let good = github_claims("sasgate-lab/models", "refs/heads/main", Some("release"));
    let now = Utc::now().timestamp();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    let signed = sign(&good);
    let mut parts: Vec<String> = signed.split('.').map(str::to_owned).collect();
    // Tamper with the payload, keep the signature.
    parts[1] = URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(&with(&|c| c["repository"] = json!("sasgate-lab/other"))).unwrap(),
    );
    let tampered = parts.join(".");
    // HS256 "signed" with the issuer's RSA public key as the HMAC secret.
    let hs256 = jsonwebtoken::encode(
        &Header {
            kid: Some("test-rsa-1".into()),
            ..Header::new(Algorithm::HS256)
        },
        &good,
        &EncodingKey::from_secret(RSA_PUBLIC),
    )
    .unwrap();
    // An ES256 header over an RSA signature (key confusion).
    let mixed = {
        let rsa = sign(&good);
        let sig = rsa.rsplit('.').next().unwrap().to_owned();
        let header = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&json!({"alg": "ES256", "kid": "test-rsa-1", "typ": "JWT"}))
                .unwrap(),
        );
        let payload = rsa.split('.').nth(1).unwrap().to_owned();
        format!("{header}.{payload}.{sig}")
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            sign(&with(&|c| {
                c["exp"] = json!(now - 120);
                c["iat"] = json!(now - 600);
                c["nbf"] = json!(now - 600);
            })),
            "token_expired",
        ),
        (
            "not yet valid",
            sign(&with(&|c| c["nbf"] = json!(now + 600))),
            "token_not_yet_valid",
        ),
        (
            "wrong issuer",
            sign(&with(&|c| {
                c["iss"] = json!("https://token.actions.example.org")
            })),
            "untrusted_issuer",
        ),
        (
            "wrong audience",
            sign(&with(&|c| {
                c["aud"] = json!("https://github.com/sasgate-lab")
            })),
            "wrong_audience",
        ),
        (
            "unknown key",
            sign_rs256(&good, "test-rsa-2", RSA_NEXT),
            "unknown_signing_key",
        ),
        ("bad signature", tampered, "bad_signature"),
        (
            "a known kid, another key",
            sign_rs256(&good, "test-rsa-1", RSA_NEXT),
            "bad_signature",
        ),
        (
            "alg none",
            forge(json!({"alg": "none", "typ": "JWT"}), &good, b""),
            "algorithm_not_allowed",
        ),
        (
            "HS256 with the RSA public key",
            hs256,
            "algorithm_not_allowed",
        ),
        ("ES256 header on an RSA key", mixed, "unknown_signing_key"),
        (
            "missing required claim",
            sign(&with(&|c| {
                c.as_object_mut().unwrap().remove("repository");
            })),
            "missing_claim",
        ),
        (
            "no subject",
            sign(&with(&|c| {
                c.as_object_mut().unwrap().remove("sub");
            })),
            "missing_claim",
        ),
        ("not a JWT", "abc.def.ghi".into(), "malformed_token"),
    ];
    for (what, token, code) in cases {
        let r = app
            .http
            .post(format!("{}/v1/tokens", app.address))
            .bearer_auth(&token)
            .json(&model_read())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{what}");
        assert!(r.headers().contains_key("www-authenticate"), "{what}");
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["code"], code, "{what}: {problem}");
        assert!(
            !problem.to_string().contains(&token),
            "{what}: the refusal does not echo the token"
        );
    }
    let page = app
        .ledger
        .list(&Default::default(), Utc::now(), 10, None)
        .await
        .unwrap();
    assert!(page.items.is_empty(), "nothing was issued");
    app.stop().await;
}

#[tokio::test]
async fn a_rotated_issuer_key_is_picked_up_without_a_restart() {
    let app = spawn_app().await;
    let claims = github_claims("sasgate-lab/models", "refs/heads/main", Some("release"));
    let next = sign_rs256(&claims, "test-rsa-2", RSA_NEXT);
    assert_eq!(app.mint(&next, model_read()).await.0, 401);
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/keys/oidc-jwks-rotated.json"
        ),
        app.dir.path().join("jwks.json"),
    )
    .unwrap();
    // An unknown kid refetches the keys at most once a second (jwks_min_refresh_interval in the
    // test configuration), so the new key works within that.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, answer) = app.mint(&next, model_read()).await;
        if status == 201 {
            break;
        }
        assert_eq!(answer["code"], "unknown_signing_key");
        assert!(
            Instant::now() < deadline,
            "the rotated key was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_runaway_pipeline_is_rate_limited_and_recovers() {
    let app = spawn_app_with(
        None,
        &[
            ("SASGATE_LIMITS__MINT_BURST", "3"),
            ("SASGATE_LIMITS__MINT_RATE_PER_MINUTE", "120"),
        ],
    )
    .await;
    let token = sign(&github_claims(
        "sasgate-lab/models",
        "refs/heads/main",
        Some("release"),
    ));
    for _ in 0..3 {
        assert_eq!(app.mint(&token, model_read()).await.0, 201);
    }
    let r = app
        .http
        .post(format!("{}/v1/tokens", app.address))
        .bearer_auth(&token)
        .json(&model_read())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["code"], "rate_limited");
    assert_eq!(problem["retry_after"], retry);
    // Links count against the same bucket.
    let (status, _) = app
        .post(
            &token,
            "/v1/links",
            json!({"account": "devstoreaccount1", "container": "models", "blob": "published/model.bin"}),
        )
        .await;
    assert_eq!(status, 429);
    // Another principal is not affected.
    assert_eq!(
        app.mint(&app.alice, common::app::model_request()).await.0,
        201
    );
    // The bucket refills (120 a minute: one every half second).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = app.mint(&token, model_read()).await;
        if status == 201 {
            break;
        }
        assert_eq!(status, 429);
        assert!(Instant::now() < deadline, "no recovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn oidc_tokens_never_reach_the_log() {
    let azurite = common::azurite::Azurite::start(common::azurite::Tls::Https).await;
    common::app::seed(&azurite).await;
    let setup = common::app::write_setup(&azurite, None);
    let log = setup.dir.path().join("sasgate.log");
    let mut binary = common::app::spawn_binary(&setup.config, 0, &log).await;
    let http = azurite.http_client();
    let good = sign(&github_claims(
        "sasgate-lab/models",
        "refs/heads/main",
        Some("release"),
    ));
    let expired = sign(&{
        let mut c = github_claims("sasgate-lab/models", "refs/heads/main", Some("release"));
        c["exp"] = json!(Utc::now().timestamp() - 600);
        c
    });
    let mut sigs = Vec::new();
    for token in [&good, &expired] {
        let r = http
            .post(format!("{}/v1/tokens", binary.address))
            .bearer_auth(token)
            .json(&model_read())
            .send()
            .await
            .unwrap();
        if r.status().as_u16() == 201 {
            let v: Value = r.json().await.unwrap();
            let url = url::Url::parse(v["url"].as_str().unwrap()).unwrap();
            sigs.push(
                url.query_pairs()
                    .find(|(k, _)| k == "sig")
                    .unwrap()
                    .1
                    .into_owned(),
            );
        }
    }
    assert_eq!(sigs.len(), 1);
    binary.child.kill().unwrap();
    binary.child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("rejected OIDC token"), "{text}");
    assert!(text.contains("token_expired"), "{text}");
    for secret in [good.as_str(), expired.as_str(), sigs[0].as_str()] {
        // Any third of a JWT would be too much.
        for part in secret.split('.') {
            assert!(!text.contains(part), "the log holds part of a secret");
        }
    }
}
