//! Revocation that bites, against a real Azurite over HTTPS: stored-access-policy binding,
//! collateral, what survives, and concurrent replicas on one container.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::app::{spawn_app, spawn_app_on};
use sasgate::azure::{ContainerAcl, SignedIdentifier};
use sasgate::sas::name::ContainerName;
use serde_json::{Value, json};

fn report(blob: &str) -> Value {
    json!({"account": "devstoreaccount1", "container": "reports", "blob": blob})
}

#[tokio::test]
async fn revoking_a_policy_bound_token_stops_it_and_its_cohort_and_nothing_else() {
    let app = spawn_app().await;
    let client = app.azurite.client();
    let reports = ContainerName::parse("reports").unwrap();
    // Someone else's policy, which sasgate must leave alone.
    let theirs = SignedIdentifier {
        id: "their-policy".into(),
        start: None,
        expiry: None,
        permission: Some("r".into()),
    };
    client
        .set_container_acl(
            &reports,
            &ContainerAcl {
                identifiers: vec![theirs.clone()],
                public_access: None,
                etag: None,
            },
            None,
            None,
        )
        .await
        .unwrap();

    let (status, a) = app.mint(&app.alice, report("q1.pdf")).await;
    assert_eq!(status, 201, "{a}");
    let (_, b) = app.mint(&app.alice, report("q2.pdf")).await;
    let (_, other) = app.mint(&app.alice, json!({"account": "devstoreaccount1", "container": "models", "blob": "published/model.bin"})).await;
    assert_eq!(a["revocation"], "stored_access_policy");
    let url_a = a["url"].as_str().unwrap();
    let url_b = b["url"].as_str().unwrap();
    let si = sasgate::sas::parse::parse(url_a)
        .unwrap()
        .param("si")
        .unwrap()
        .to_owned();
    assert!(si.starts_with("sg-") && si.ends_with("-r"), "{si}");
    assert!(
        sasgate::sas::parse::parse(url_a)
            .unwrap()
            .param("sp")
            .is_none(),
        "the policy holds the permission"
    );
    assert_eq!(app.download(url_a).await, (200, b"quarter one".to_vec()));
    assert_eq!(app.download(url_b).await, (200, b"quarter two".to_vec()));

    let (status, outcome) = app
        .post(
            &app.admin,
            &format!("/v1/issuances/{}/revoke", a["id"].as_str().unwrap()),
            json!({"reason": "posted in a public chat"}),
        )
        .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["mechanism"], "stored_access_policy");
    assert_eq!(outcome["already_revoked"], false);
    assert!(
        outcome["takes_effect"]
            .as_str()
            .unwrap()
            .contains("30 seconds"),
        "{outcome}"
    );
    let collateral: Vec<&str> = outcome["collateral"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        collateral,
        [b["id"].as_str().unwrap()],
        "the cohort is listed"
    );

    // Both stop at once on Azurite; the token on another container survives.
    assert_eq!(app.download(url_a).await.0, 403);
    assert_eq!(app.download(url_b).await.0, 403);
    assert_eq!(app.download(other["url"].as_str().unwrap()).await.0, 200);
    // The foreign policy is untouched.
    let acl = client.get_container_acl(&reports).await.unwrap();
    assert!(acl.identifiers.contains(&theirs), "{:?}", acl.identifiers);
    assert!(!acl.identifiers.iter().any(|i| i.id == si));
    // The ledger says so, for both.
    for id in [&a["id"], &b["id"]] {
        let (_, shown) = app
            .get(
                &app.admin,
                &format!("/v1/issuances/{}", id.as_str().unwrap()),
            )
            .await;
        assert_eq!(shown["current_status"], "revoked", "{shown}");
    }
    // Revoking again changes nothing and says so.
    let (_, again) = app
        .post(
            &app.admin,
            &format!("/v1/issuances/{}/revoke", a["id"].as_str().unwrap()),
            json!({"reason": "again"}),
        )
        .await;
    assert_eq!(again["already_revoked"], true);

    // The holders ask again and get a new generation: the old id is never reused.
    let (status, fresh) = app.mint(&app.alice, report("q1.pdf")).await;
    assert_eq!(status, 201);
    let si2 = sasgate::sas::parse::parse(fresh["url"].as_str().unwrap())
        .unwrap()
        .param("si")
        .unwrap()
        .to_owned();
    assert_ne!(si2, si);
    assert_eq!(app.download(fresh["url"].as_str().unwrap()).await.0, 200);
    assert_eq!(app.download(url_a).await.0, 403, "the old token stays dead");

    // A public-access setting survives sasgate's read-modify-write of the ACL. (Set only now:
    // with public access on, blobs download without any token, which would hide the 403s above.)
    let mut acl = client.get_container_acl(&reports).await.unwrap();
    acl.public_access = Some("blob".into());
    client
        .set_container_acl(&reports, &acl, None, None)
        .await
        .unwrap();
    let (status, _) = app
        .post(
            &app.admin,
            &format!("/v1/issuances/{}/revoke", fresh["id"].as_str().unwrap()),
            json!({"reason": "public access check"}),
        )
        .await;
    assert_eq!(status, 200);
    let acl = client.get_container_acl(&reports).await.unwrap();
    assert_eq!(acl.public_access.as_deref(), Some("blob"));
    assert!(acl.identifiers.contains(&theirs));
    assert!(!acl.identifiers.iter().any(|i| i.id == si2));

    // Only admins revoke; an expiry-only revoke says plainly what it cannot do.
    let (status, _) = app
        .post(
            &app.alice,
            &format!("/v1/issuances/{}/revoke", other["id"].as_str().unwrap()),
            json!({"reason": "x"}),
        )
        .await;
    assert_eq!(status, 403);
    let (_, outcome) = app
        .post(
            &app.admin,
            &format!("/v1/issuances/{}/revoke", other["id"].as_str().unwrap()),
            json!({"reason": "test"}),
        )
        .await;
    assert_eq!(outcome["mechanism"], "expiry_only");
    assert!(
        outcome["takes_effect"]
            .as_str()
            .unwrap()
            .contains("stays valid until"),
        "{outcome}"
    );
    assert!(
        outcome["takes_effect"]
            .as_str()
            .unwrap()
            .contains("rotate the account key"),
        "{outcome}"
    );
    assert_eq!(
        app.post(
            &app.admin,
            "/v1/issuances/iss_none/revoke",
            json!({"reason": "x"})
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn two_replicas_minting_on_one_container_never_lose_each_others_policy() {
    let first = spawn_app().await;
    // A second replica: same emulator, same ledger file.
    let second = spawn_app_on(&first).await;
    let ci_rule = json!({"account": "devstoreaccount1", "container": "reports", "blob": "q1.pdf"});
    let (a, b) = tokio::join!(
        first.mint(&first.alice, ci_rule.clone()),
        second.mint(&second.alice, ci_rule.clone())
    );
    assert_eq!((a.0, b.0), (201, 201), "{a:?} {b:?}");
    for (app, minted) in [(&first, &a.1), (&second, &b.1)] {
        assert_eq!(
            app.download(minted["url"].as_str().unwrap()).await.0,
            200,
            "{minted}"
        );
    }
    let acl = first
        .azurite
        .client()
        .get_container_acl(&ContainerName::parse("reports").unwrap())
        .await
        .unwrap();
    let owned: Vec<_> = acl
        .identifiers
        .iter()
        .filter(|i| i.id.starts_with("sg-"))
        .collect();
    assert_eq!(
        owned.len(),
        1,
        "one generation serves both replicas: {owned:?}"
    );
    for minted in [&a.1, &b.1] {
        let si = sasgate::sas::parse::parse(minted["url"].as_str().unwrap())
            .unwrap()
            .param("si")
            .unwrap()
            .to_owned();
        assert!(owned.iter().any(|i| i.id == si), "{si} lost from {owned:?}");
    }
}

#[tokio::test]
async fn bulk_revocation_by_principal_and_the_emergency_stop() {
    let app = spawn_app().await;
    let (_, a) = app.mint(&app.alice, report("q1.pdf")).await;
    let (_, m) = app.mint(&app.alice, json!({"account": "devstoreaccount1", "container": "models", "blob": "published/model.bin"})).await;
    let (_, c) = app.mint(&app.ci, json!({"account": "devstoreaccount1", "container": "ci-build", "blob": "x", "permissions": "cw"})).await;

    // A filter is required; everything is the emergency stop's job.
    let (status, problem) = app
        .post(&app.admin, "/v1/revocations", json!({"reason": "x"}))
        .await;
    assert_eq!(
        (status, problem["code"].as_str().unwrap()),
        (400, "invalid_request")
    );
    let (status, bulk) = app
        .post(
            &app.admin,
            "/v1/revocations",
            json!({"principal": "user:alice", "reason": "laptop stolen"}),
        )
        .await;
    assert_eq!(status, 200, "{bulk}");
    let ids: Vec<&str> = bulk["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{bulk}");
    assert!(ids.contains(&a["id"].as_str().unwrap()) && ids.contains(&m["id"].as_str().unwrap()));
    assert_eq!(
        app.download(a["url"].as_str().unwrap()).await.0,
        403,
        "the policy-bound one bites"
    );
    let (_, ci) = app
        .get(
            &app.admin,
            &format!("/v1/issuances/{}", c["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(
        ci["current_status"], "active",
        "another principal is untouched"
    );

    // Emergency stop: every sasgate policy on the account goes, someone else's stays.
    let (_, fresh) = app.mint(&app.alice, report("q2.pdf")).await;
    assert_eq!(app.download(fresh["url"].as_str().unwrap()).await.0, 200);
    let client = app.azurite.client();
    let reports = ContainerName::parse("reports").unwrap();
    let mut acl = client.get_container_acl(&reports).await.unwrap();
    acl.identifiers.push(SignedIdentifier {
        id: "their-policy".into(),
        start: None,
        expiry: None,
        permission: Some("r".into()),
    });
    client
        .set_container_acl(&reports, &acl, None, None)
        .await
        .unwrap();
    let (status, outcome) = app
        .post(
            &app.admin,
            "/v1/emergency/revoke-policies",
            json!({"account": "devstoreaccount1", "reason": "key material leaked"}),
        )
        .await;
    assert_eq!(status, 200, "{outcome}");
    let touched = outcome["containers"].as_array().unwrap();
    assert_eq!(touched.len(), 1, "{outcome}");
    assert_eq!(touched[0]["container"], "reports");
    assert_eq!(touched[0]["revoked_issuances"], 1);
    assert_eq!(app.download(fresh["url"].as_str().unwrap()).await.0, 403);
    let acl = client.get_container_acl(&reports).await.unwrap();
    assert_eq!(
        acl.identifiers
            .iter()
            .map(|i| i.id.as_str())
            .collect::<Vec<_>>(),
        ["their-policy"]
    );
    let (status, _) = app
        .post(
            &app.alice,
            "/v1/emergency/revoke-policies",
            json!({"account": "devstoreaccount1", "reason": "x"}),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn when_the_container_acl_cannot_take_a_policy_no_token_is_issued() {
    let app = spawn_app().await;
    let client = app.azurite.client();
    let reports = ContainerName::parse("reports").unwrap();
    // Five policies that are not sasgate's: no slot left (Azure's limit is 5).
    let full: Vec<SignedIdentifier> = (1..=5)
        .map(|i| SignedIdentifier {
            id: format!("theirs-{i}"),
            start: None,
            expiry: None,
            permission: Some("r".into()),
        })
        .collect();
    client
        .set_container_acl(
            &reports,
            &ContainerAcl {
                identifiers: full.clone(),
                public_access: None,
                etag: None,
            },
            None,
            None,
        )
        .await
        .unwrap();
    let (status, problem) = app.mint(&app.alice, report("q1.pdf")).await;
    assert_eq!(
        (status, problem["code"].as_str().unwrap()),
        (503, "stored_policy_unavailable"),
        "{problem}"
    );
    assert!(problem.get("url").is_none() && problem["error_id"].as_str().is_some());
    let page = app
        .ledger
        .list(&Default::default(), chrono::Utc::now(), 10, None)
        .await
        .unwrap();
    assert!(page.items.is_empty(), "no issuance was recorded");
    assert_eq!(
        client
            .get_container_acl(&reports)
            .await
            .unwrap()
            .identifiers,
        full,
        "their policies are untouched"
    );

    // Through the CLI, an admin's revoke prints what happened.
    client
        .set_container_acl(&reports, &ContainerAcl::default(), None, None)
        .await
        .unwrap();
    let (status, minted) = app.mint(&app.alice, report("q1.pdf")).await;
    assert_eq!(status, 201);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sasgate"))
        .args(["revoke", minted["id"].as_str().unwrap(), "--reason", "test"])
        .env("SASGATE_URL", &app.address)
        .env("SASGATE_TOKEN", &app.admin)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && text.contains("stored_access_policy")
            && text.contains("30 seconds"),
        "{text}"
    );
    assert_eq!(app.download(minted["url"].as_str().unwrap()).await.0, 403);
}

#[tokio::test]
async fn generations_rotate_and_retire_once_nothing_bound_to_them_is_live() {
    let app =
        common::app::spawn_app_with(None, &[("SASGATE_STORED_POLICIES__ROTATION", "1s")]).await;
    let client = app.azurite.client();
    let reports = ContainerName::parse("reports").unwrap();
    let si = |minted: &Value| {
        sasgate::sas::parse::parse(minted["url"].as_str().unwrap())
            .unwrap()
            .param("si")
            .unwrap()
            .to_owned()
    };
    let owned = || async {
        let acl = client.get_container_acl(&reports).await.unwrap();
        acl.identifiers
            .into_iter()
            .map(|i| i.id)
            .filter(|id| id.starts_with("sg-"))
            .collect::<Vec<_>>()
    };
    // A one-second token in the first generation.
    let (status, first) = app.mint(&app.alice, json!({"account": "devstoreaccount1", "container": "reports", "blob": "q1.pdf", "ttl": "1s"})).await;
    assert_eq!(status, 201, "{first}");
    let gen1 = si(&first);
    // Let the token expire and the rotation period pass (waiting on the clock, not on a server).
    let expires: chrono::DateTime<chrono::Utc> =
        first["expires_on"].as_str().unwrap().parse().unwrap();
    while chrono::Utc::now() <= expires + chrono::Duration::milliseconds(1100) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The next mint makes generation 2 and retires generation 1: nothing bound to it is live.
    let (status, second) = app.mint(&app.alice, report("q2.pdf")).await;
    assert_eq!(status, 201, "{second}");
    let gen2 = si(&second);
    assert_ne!(gen2, gen1);
    let ids = owned().await;
    assert_eq!(
        ids,
        std::slice::from_ref(&gen2),
        "generation 1 retired, generation 2 in place"
    );
    // Generation 2 holds a live 15-minute token: after the rotation period it still stays.
    let after = chrono::Utc::now() + chrono::Duration::milliseconds(1100);
    while chrono::Utc::now() <= after {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, third) = app.mint(&app.alice, report("q1.pdf")).await;
    let ids = owned().await;
    assert!(
        ids.contains(&gen2) && ids.contains(&si(&third)) && ids.len() == 2,
        "{ids:?}"
    );
    // A generation with a live token is kept however old it is.
    assert_eq!(app.download(second["url"].as_str().unwrap()).await.0, 200);
}

#[tokio::test]
async fn a_revocation_without_a_usable_reason_is_refused_even_when_nothing_would_be_revoked() {
    let app = spawn_app().await;
    let long = "x".repeat(501);
    for (path, body) in [
        (
            "/v1/emergency/revoke-policies",
            json!({"account": "devstoreaccount1", "reason": long}),
        ),
        (
            "/v1/emergency/revoke-policies",
            json!({"account": "devstoreaccount1", "reason": "a\u{7}bell"}),
        ),
        (
            "/v1/emergency/revoke-policies",
            json!({"account": "devstoreaccount1", "reason": "  "}),
        ),
        (
            "/v1/revocations",
            json!({"principal": "user:nobody", "reason": long}),
        ),
    ] {
        let (status, problem) = app.post(&app.admin, path, body).await;
        assert_eq!(status, 400, "{path}: {problem}");
        assert_eq!(problem["code"], "invalid_request", "{path}");
    }
}
