#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `/metrics` (issue 8): Prometheus counters for mints, denials, revocations, link
//! redemptions and ledger commits, readable by the `admin` (or `metrics`) role only, with no
//! principal, blob name or secret in any label.

mod common;

use common::app::{model_request, spawn_app};
use serde_json::json;

#[tokio::test]
async fn metrics_count_what_happened_and_name_no_one() {
    let app = spawn_app().await;
    let (status, minted) = app.mint(&app.alice, model_request()).await;
    assert_eq!(status, 201);
    let (status, _) = app
        .mint(
            &app.alice,
            json!({"account": "devstoreaccount1", "container": "secrets", "blob": "keys.txt"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .post(
            &app.admin,
            &format!("/v1/issuances/{}/revoke", minted["id"].as_str().unwrap()),
            json!({"reason": "test"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, link) = app
        .post(
            &app.alice,
            "/v1/links",
            json!({"account": "devstoreaccount1", "container": "shared", "blob": "paper.pdf", "uses": 1}),
        )
        .await;
    assert_eq!(status, 201);
    let code = link["link"].as_str().unwrap().rsplit('/').next().unwrap();
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for expected in [302, 410] {
        let r = no_redirect
            .get(format!("{}/l/{code}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), expected);
    }

    let get = |key: String| {
        let http = app.http.clone();
        let url = format!("{}/metrics", app.address);
        async move {
            let r = http.get(url).bearer_auth(key).send().await.unwrap();
            let status = r.status().as_u16();
            let ctype = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, ctype, r.text().await.unwrap())
        }
    };
    assert_eq!(get(app.alice.clone()).await.0, 403);
    // Two refused credentials: none, and a wrong API key.
    assert_eq!(get(String::new()).await.0, 401);
    assert_eq!(get("sgk_not_a_key".into()).await.0, 401);
    let (status, ctype, text) = get(app.admin.clone()).await;
    assert_eq!(status, 200);
    assert!(ctype.unwrap().starts_with("text/plain; version=0.0.4"));
    for line in [
        "sasgate_mints_total{rule=\"researchers-read-models\",outcome=\"issued\"} 1",
        "sasgate_mints_total{rule=\"researchers-share-links\",outcome=\"issued\"} 1",
        "sasgate_mints_total{rule=\"none\",outcome=\"denied\"} 1",
        "sasgate_denials_total{code=\"no_matching_rule\"} 1",
        "sasgate_revocations_total{mechanism=\"expiry_only\"} 1",
        "sasgate_link_redemptions_total{outcome=\"redeemed\"} 1",
        "sasgate_link_redemptions_total{outcome=\"gone\"} 1",
        "sasgate_ledger_commit_seconds_count 2",
        "sasgate_ledger_commit_failures_total 0",
        "sasgate_auth_failures_total{code=\"unauthenticated\"} 2",
    ] {
        assert!(text.contains(line), "missing {line}:\n{text}");
    }
    // Plain HTTP here: no certificate, so no certificate expiry.
    assert!(!text.contains("sasgate_tls_certificate_expiry_seconds"));
    for secret in [
        "alice",
        "keys.txt",
        "paper.pdf",
        "sig=",
        code,
        "sgk_not_a_key",
    ] {
        assert!(!text.contains(secret), "{secret} in the metrics");
    }
    app.stop().await;
}
