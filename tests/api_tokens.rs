//! The broker's story, over HTTP, against a real Azurite over HTTPS: who gets what token, who is
//! refused and why, and what the ledger keeps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{DateTime, Duration, Utc};
use common::app::{MODEL, list_all, model_request, spawn_app};
use serde_json::{Value, json};

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_researcher_mints_a_fifteen_minute_read_sas_and_downloads_the_blob() {
    let app = spawn_app().await;
    let before = Utc::now();
    let (status, body) = app.mint(&app.alice, model_request()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["resource"], "blob");
    assert_eq!(body["permissions"], "r");
    assert_eq!(body["rule"], "researchers-read-models");
    assert_eq!(body["revocation"], "expiry_only");
    assert!(body["id"].as_str().unwrap().starts_with("iss_"));
    // The lifetime counts from the time of issue; the start is backdated 15 minutes.
    let (starts, expires) = (time(&body["starts_on"]), time(&body["expires_on"]));
    let lifetime = expires - before;
    assert!(
        lifetime > Duration::minutes(14)
            && lifetime <= Duration::minutes(15) + Duration::seconds(5),
        "{lifetime}"
    );
    assert!(
        (before - starts) >= Duration::minutes(14),
        "st is backdated"
    );
    let url = body["url"].as_str().unwrap();
    assert!(
        url.contains("spr=https") && url.contains("sp=r&") && url.contains("sr=b"),
        "{url}"
    );
    assert!(!url.contains("ss=") && !url.contains("srt="));
    assert_eq!(app.download(url).await, (200, MODEL.to_vec()));
    // The same token does not open another blob in the container.
    let other = url.replace("published/model.bin", "drafts/unreleased.bin");
    assert_eq!(app.download(&other).await.0, 403);

    // The ledger has it, and the signature only as a hash.
    let record = app
        .ledger
        .get(body["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.principal, "user:alice");
    assert_eq!(record.blob.as_deref(), Some("published/model.bin"));
    let parsed = sasgate::sas::parse::parse(url).unwrap();
    assert_eq!(
        Some(record.signature_sha256.clone()),
        parsed.signature_sha256()
    );
    assert_eq!(
        app.ledger
            .find_by_signature(&record.signature_sha256)
            .await
            .unwrap()
            .unwrap()
            .id,
        record.id
    );
}

#[tokio::test]
async fn refusals_carry_the_right_code_and_a_reason() {
    let app = spawn_app().await;
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "a week",
            json!({"account": "devstoreaccount1", "container": "models", "blob": "published/model.bin", "ttl": "7d"}),
            403,
            "ttl_exceeds_policy",
        ),
        (
            "a week in seconds",
            json!({"account": "devstoreaccount1", "container": "models", "blob": "published/model.bin", "ttl": 604800}),
            403,
            "ttl_exceeds_policy",
        ),
        (
            "write",
            json!({"account": "devstoreaccount1", "container": "models", "blob": "published/model.bin", "permissions": "rw"}),
            403,
            "permission_not_allowed",
        ),
        (
            "list without a container rule",
            json!({"account": "devstoreaccount1", "container": "models", "permissions": "rl"}),
            403,
            "scope_not_allowed",
        ),
        (
            "a blob outside published/",
            json!({"account": "devstoreaccount1", "container": "models", "blob": "drafts/unreleased.bin"}),
            403,
            "no_matching_rule",
        ),
        (
            "another container",
            json!({"account": "devstoreaccount1", "container": "secrets", "blob": "keys.txt"}),
            403,
            "no_matching_rule",
        ),
        (
            "no container",
            json!({"account": "devstoreaccount1"}),
            403,
            "account_scope_forbidden",
        ),
        (
            "empty container",
            json!({"account": "devstoreaccount1", "container": ""}),
            403,
            "account_scope_forbidden",
        ),
        (
            "wildcard container",
            json!({"account": "devstoreaccount1", "container": "*"}),
            403,
            "account_scope_forbidden",
        ),
        (
            "account SAS fields",
            json!({"account": "devstoreaccount1", "container": "models", "ss": "b", "srt": "sco"}),
            403,
            "account_scope_forbidden",
        ),
        (
            "account resource",
            json!({"account": "devstoreaccount1", "container": "models", "resource": "account"}),
            403,
            "account_scope_forbidden",
        ),
        (
            "a dataset without a reason",
            json!({"account": "devstoreaccount1", "container": "datasets", "blob": "survey.csv"}),
            403,
            "reason_required",
        ),
        (
            "dot segments",
            json!({"account": "devstoreaccount1", "container": "models", "blob": "published/../drafts/unreleased.bin"}),
            400,
            "invalid_name",
        ),
        (
            "percent-encoded alias",
            json!({"account": "devstoreaccount1", "container": "models", "blob": "published/%2e%2e/drafts/unreleased.bin"}),
            400,
            "invalid_name",
        ),
        (
            "backslash",
            json!({"account": "devstoreaccount1", "container": "models", "blob": "published\\..\\drafts"}),
            400,
            "invalid_name",
        ),
        (
            "trailing dot",
            json!({"account": "devstoreaccount1", "container": "models", "blob": "published./model.bin"}),
            400,
            "invalid_name",
        ),
        (
            "bad container name",
            json!({"account": "devstoreaccount1", "container": "Models"}),
            400,
            "invalid_name",
        ),
        (
            "unknown account",
            json!({"account": "elsewhere", "container": "models", "blob": "published/model.bin"}),
            400,
            "unknown_account",
        ),
        (
            "unknown field",
            json!({"account": "devstoreaccount1", "container": "models", "blob": "published/model.bin", "expiry": "2051-01-01"}),
            400,
            "invalid_request",
        ),
        (
            "bad permission letter",
            json!({"account": "devstoreaccount1", "container": "models", "blob": "published/model.bin", "permissions": "rq"}),
            400,
            "invalid_request",
        ),
        (
            "bad ttl",
            json!({"account": "devstoreaccount1", "container": "models", "blob": "published/model.bin", "ttl": "forever"}),
            400,
            "invalid_request",
        ),
        (
            "ipv6",
            json!({"account": "devstoreaccount1", "container": "models", "blob": "published/model.bin", "ip": "::1"}),
            400,
            "invalid_request",
        ),
    ];
    for (what, body, want_status, want_code) in cases {
        let (status, problem) = app.mint(&app.alice, body).await;
        assert_eq!(
            (status, problem["code"].as_str().unwrap_or("")),
            (want_status, want_code),
            "{what}: {problem}"
        );
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{what}: {problem}"
        );
        assert!(
            problem.get("url").is_none() && problem.get("sas").is_none(),
            "{what}: no token in a refusal"
        );
    }
    // The TTL refusal names the maximum and is never clamped.
    let (_, problem) = app.mint(&app.alice, json!({"account": "devstoreaccount1", "container": "models", "blob": "published/model.bin", "ttl": "7d"})).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("1h"),
        "{problem}"
    );
    assert!(!problem["reasons"].as_array().unwrap().is_empty());

    // Malformed and oversized bodies.
    let r = app
        .http
        .post(format!("{}/v1/tokens", app.address))
        .bearer_auth(&app.alice)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = app
        .http
        .post(format!("{}/v1/tokens", app.address))
        .bearer_auth(&app.alice)
        .body(vec![b' '; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    // Denials are in the ledger.
    let denials = app.ledger.denials(100).await.unwrap();
    assert!(denials.iter().any(|d| d.code == "ttl_exceeds_policy" && d.principal.as_deref() == Some("user:alice")));
    assert!(denials.iter().any(|d| d.code == "account_scope_forbidden"));
}

#[tokio::test]
async fn no_credential_or_a_wrong_key_gets_401() {
    let app = spawn_app().await;
    let r = app
        .http
        .post(format!("{}/v1/tokens", app.address))
        .json(&model_request())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("x-request-id"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "unauthenticated");
    for wrong in ["sgk_wrong", "not-a-key", &app.alice[..app.alice.len() - 1]] {
        let (status, body) = app.mint(wrong, model_request()).await;
        assert_eq!(
            (status, body["code"].as_str().unwrap()),
            (401, "unauthenticated"),
            "{wrong}"
        );
    }
}

#[tokio::test]
async fn container_scope_for_ci_lists_and_writes_are_scoped() {
    let app = spawn_app().await;
    let (status, body) = app.mint(&app.ci, json!({"account": "devstoreaccount1", "container": "ci-build", "permissions": "rl", "ttl": "5m"})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["resource"], "container");
    let list = format!(
        "{}&restype=container&comp=list",
        body["url"].as_str().unwrap()
    );
    assert_eq!(app.download(&list).await.0, 200);
    let (status, body) = app.mint(&app.ci, json!({"account": "devstoreaccount1", "container": "ci-build", "blob": "out/app.tar", "permissions": "cw"})).await;
    assert_eq!(status, 201, "{body}");
    let r = app
        .http
        .put(body["url"].as_str().unwrap())
        .header("x-ms-blob-type", "BlockBlob")
        .body("artifact")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // ci cannot reach models.
    let (status, body) = app.mint(&app.ci, model_request()).await;
    assert_eq!(
        (status, body["code"].as_str().unwrap()),
        (403, "no_matching_rule")
    );
}

#[tokio::test]
async fn admins_list_and_principals_see_only_their_own() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let (status, body) = app.mint(&app.alice, model_request()).await;
        assert_eq!(status, 201);
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    let (status, body) = app.mint(&app.ci, json!({"account": "devstoreaccount1", "container": "ci-build", "blob": "x.bin", "permissions": "cw"})).await;
    assert_eq!(status, 201);
    let ci_id = body["id"].as_str().unwrap().to_owned();

    // Pagination covers every issuance once, newest first.
    let seen: Vec<String> = list_all(&app.http, &app.address, &app.admin, 2)
        .await
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    let mut expected: Vec<String> = ids.iter().cloned().chain([ci_id.clone()]).collect();
    expected.reverse();
    assert_eq!(seen, expected);

    let (_, page) = app
        .get(&app.admin, "/v1/issuances?principal=user:ci&status=active")
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["current_status"], "active");
    let (_, page) = app.get(&app.admin, "/v1/issuances?container=models").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    let (status, problem) = app.get(&app.admin, "/v1/issuances?cursor=bogus").await;
    assert_eq!(
        (status, problem["code"].as_str().unwrap()),
        (400, "invalid_request")
    );
    let (status, problem) = app.get(&app.admin, "/v1/issuances?color=blue").await;
    assert_eq!(
        (status, problem["code"].as_str().unwrap()),
        (400, "invalid_request")
    );

    // Only admins list.
    let (status, problem) = app.get(&app.alice, "/v1/issuances").await;
    assert_eq!(
        (status, problem["code"].as_str().unwrap()),
        (403, "forbidden")
    );
    // A principal sees its own issuance, not another's; an admin sees both.
    assert_eq!(
        app.get(&app.alice, &format!("/v1/issuances/{}", ids[0]))
            .await
            .0,
        200
    );
    assert_eq!(
        app.get(&app.alice, &format!("/v1/issuances/{ci_id}"))
            .await
            .0,
        404
    );
    assert_eq!(
        app.get(&app.admin, &format!("/v1/issuances/{ci_id}"))
            .await
            .0,
        200
    );
    assert_eq!(
        app.get(&app.admin, "/v1/issuances/iss_nonexistent").await.0,
        404
    );
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let r = app
        .http
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .http
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .http
        .get(format!("{}/nope", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn a_leaked_url_leads_back_to_its_issuance() {
    let app = spawn_app().await;
    let (status, minted) = app.mint(&app.alice, json!({"account": "devstoreaccount1", "container": "models", "blob": "published/model.bin", "reason": "sharing with a colleague"})).await;
    assert_eq!(status, 201, "{minted}");
    let url = minted["url"].as_str().unwrap();

    let (status, found) = app
        .post(&app.admin, "/v1/issuances/lookup", json!({ "url": url }))
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["id"], minted["id"]);
    assert_eq!(found["principal"], "user:alice");
    assert_eq!(found["reason"], "sharing with a colleague");
    assert_eq!(found["current_status"], "active");
    assert!(
        found["revoke"]
            .as_str()
            .unwrap()
            .contains(minted["id"].as_str().unwrap())
    );
    // The bare query string works too.
    let (status, _) = app
        .post(
            &app.admin,
            "/v1/issuances/lookup",
            json!({ "url": minted["sas"] }),
        )
        .await;
    assert_eq!(status, 200);

    // A SAS sasgate never issued, garbage, and a non-admin.
    let forged = url.replace("sig=", "sig=AAAA");
    let (status, problem) = app
        .post(&app.admin, "/v1/issuances/lookup", json!({ "url": forged }))
        .await;
    assert_eq!(
        (status, problem["code"].as_str().unwrap()),
        (404, "not_found")
    );
    let (status, problem) = app
        .post(
            &app.admin,
            "/v1/issuances/lookup",
            json!({ "url": "https://example.com/" }),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str().unwrap()),
        (400, "invalid_request")
    );
    let (status, problem) = app
        .post(&app.alice, "/v1/issuances/lookup", json!({ "url": url }))
        .await;
    assert_eq!(
        (status, problem["code"].as_str().unwrap()),
        (403, "forbidden")
    );
}
