//! Broker links against a real Azurite over HTTPS: redirect and download, revocation and use
//! limits that bite, every redemption recorded, and lookup of a leaked link.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::Utc;
use common::app::{TestApp, spawn_app};
use serde_json::{Value, json};

fn paper(extra: Value) -> Value {
    let mut body = json!({"account": "devstoreaccount1", "container": "shared", "blob": "paper.pdf", "reason": "review"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// The link on this test server (the configured public URL has port 0).
fn local(app: &TestApp, link: &Value) -> String {
    let link = link["link"].as_str().unwrap();
    let code = link.rsplit("/l/").next().unwrap();
    assert_eq!(code.len(), 43, "256 random bits, base64url");
    format!("{}/l/{code}", app.address)
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_link_redirects_to_a_short_sas_and_downloads() {
    let app = spawn_app().await;
    let (status, link) = app.post(&app.alice, "/v1/links", paper(json!({}))).await;
    assert_eq!(status, 201, "{link}");
    assert_eq!(link["revocation"], "link_only");
    let url = local(&app, &link);

    let r = no_redirects().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let sas = sasgate::sas::parse::parse(&location).unwrap();
    let lifetime = sas.expiry().unwrap() - Utc::now();
    assert!(lifetime <= chrono::Duration::minutes(5), "{lifetime}");
    assert_eq!(app.download(&location).await, (200, b"the paper".to_vec()));

    // HEAD answers too, and curl -L downloads through the link.
    let r = no_redirects().head(&url).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let out = tokio::process::Command::new("curl")
        .args(["-sSL", "--fail", "--cacert"])
        .arg(app.azurite.ca_pem_path().unwrap())
        .arg(&url)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"the paper");

    // Each redemption is recorded: the GET, the HEAD and curl's.
    let (_, redemptions) = app
        .ledger
        .link(link["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(redemptions.len(), 3);
    assert!(redemptions.iter().any(|r| {
        r.user_agent
            .as_deref()
            .is_some_and(|u| u.starts_with("curl/"))
    }));

    // A link_only rule refuses a bare token and points at links.
    let (status, problem) = app.mint(&app.alice, paper(json!({}))).await;
    assert_eq!(
        (status, problem["code"].as_str().unwrap()),
        (403, "link_required")
    );
}

#[tokio::test]
async fn a_revoked_link_answers_410_and_mints_nothing() {
    let app = spawn_app().await;
    let (_, link) = app.post(&app.alice, "/v1/links", paper(json!({}))).await;
    let url = local(&app, &link);
    assert_eq!(no_redirects().get(&url).send().await.unwrap().status(), 302);
    let (status, outcome) = app
        .post(
            &app.admin,
            &format!("/v1/issuances/{}/revoke", link["id"].as_str().unwrap()),
            json!({"reason": "leaked"}),
        )
        .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["mechanism"], "link_only");
    assert!(
        outcome["takes_effect"]
            .as_str()
            .unwrap()
            .contains("at once")
    );
    for _ in 0..2 {
        let r = no_redirects().get(&url).send().await.unwrap();
        assert_eq!(r.status(), 410);
        assert!(r.headers().get("location").is_none());
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "link_gone");
    }
    let (_, redemptions) = app
        .ledger
        .link(link["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        redemptions.len(),
        1,
        "no SAS was minted after the revocation"
    );
}

#[tokio::test]
async fn a_single_use_link_works_once_and_an_unknown_code_is_404() {
    let app = spawn_app().await;
    let (status, link) = app
        .post(&app.alice, "/v1/links", paper(json!({"uses": 1})))
        .await;
    assert_eq!(status, 201, "{link}");
    assert_eq!(link["max_uses"], 1);
    let url = local(&app, &link);
    assert_eq!(no_redirects().get(&url).send().await.unwrap().status(), 302);
    assert_eq!(no_redirects().get(&url).send().await.unwrap().status(), 410);
    let unknown = format!("{}/l/{}", app.address, "A".repeat(43));
    assert_eq!(
        no_redirects().get(&unknown).send().await.unwrap().status(),
        404
    );
    // Bad use counts and policy refusals are refused like tokens.
    let (status, problem) = app
        .post(&app.alice, "/v1/links", paper(json!({"uses": 0})))
        .await;
    assert_eq!(
        (status, problem["code"].as_str().unwrap()),
        (400, "invalid_request")
    );
    let (status, problem) = app
        .post(&app.alice, "/v1/links", paper(json!({"ttl": "7d"})))
        .await;
    assert_eq!(
        (status, problem["code"].as_str().unwrap()),
        (403, "ttl_exceeds_policy")
    );
}

#[tokio::test]
async fn an_expired_link_answers_410() {
    let app = spawn_app().await;
    let (status, link) = app
        .post(&app.alice, "/v1/links", paper(json!({"ttl": "1s"})))
        .await;
    assert_eq!(status, 201, "{link}");
    let url = local(&app, &link);
    // Poll, with a deadline, until the one-second link has expired.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = no_redirects().get(&url).send().await.unwrap().status();
        if status == 410 {
            break;
        }
        assert_eq!(status, 302);
        assert!(
            std::time::Instant::now() < deadline,
            "the link never expired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_leaked_link_leads_back_to_its_issuance() {
    let app = spawn_app().await;
    let (_, link) = app.post(&app.alice, "/v1/links", paper(json!({}))).await;
    let (status, found) = app
        .post(
            &app.admin,
            "/v1/issuances/lookup",
            json!({"url": link["link"]}),
        )
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["id"], link["id"]);
    assert_eq!(found["revocation"], "link_only");
}
