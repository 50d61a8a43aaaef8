#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The local stand-in for Microsoft Entra ID and Azure Resource Manager (`common::entra`), which
//! cannot run here, exercised with plain HTTP: every success path answers as the real service
//! documents it, and every refusal carries the real service's status and error JSON. Its access
//! tokens are proven against a real Azurite (`--oauth basic`).

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};
use common::azurite::{Azurite, Tls};
use common::entra::{
    CLIENT_ID, CLIENT_SECRET, FEDERATED_AUDIENCE, FEDERATED_ISSUER, FEDERATED_SUBJECT,
    FEDERATED_TOKEN, FakeEntra, IDENTITY_RESOURCE_ID, JWT_BEARER, OBJECT_ID, TENANT,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
const ARM_SCOPE: &str = "https://management.azure.com/.default";
const ACCOUNT_ID: &str = "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/ml/\
                          providers/Microsoft.Storage/storageAccounts/mlmodels";

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// The claims of a JWT, decoded.
fn claims(jwt: &str) -> Value {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

fn header(jwt: &str) -> Value {
    let part = jwt.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// A JWT with these claims and a junk signature.
fn jwt(claims: &Value) -> String {
    format!(
        "{}.{}.c2lnbmF0dXJl",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn token_url(entra: &FakeEntra, tenant: &str) -> String {
    format!("{}/{tenant}/oauth2/v2.0/token", entra.authority_host())
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("not JSON ({e}), status {status}: {text:?}"));
    (status, body)
}

/// `POST /{TENANT}/oauth2/v2.0/token` with this form.
async fn token(entra: &FakeEntra, form: &[(&str, &str)]) -> (StatusCode, Value) {
    json_of(
        http()
            .post(token_url(entra, TENANT))
            .form(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn secret_form(scope: &str) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "client_credentials".to_owned()),
        ("client_id", CLIENT_ID.to_owned()),
        ("client_secret", CLIENT_SECRET.to_owned()),
        ("scope", scope.to_owned()),
    ]
}

/// A client-secret token request for `scope`, expected to succeed: the access token.
async fn secret_token(entra: &FakeEntra, scope: &str) -> String {
    let form = secret_form(scope);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = token(entra, &form).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Asserts Entra's error shape: status, `error`, `error_codes` and the `AADSTS` prefix.
fn assert_aad_error(got: &(StatusCode, Value), status: u16, error: &str, code: u64) {
    let (got_status, body) = got;
    assert_eq!(got_status.as_u16(), status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], json!([code]), "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    for field in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
        assert!(body[field].is_string(), "{field} missing: {body}");
    }
}

async fn imds(entra: &FakeEntra, query: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut request = http().get(format!("{}?{query}", entra.imds_endpoint()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    json_of(request.send().await.unwrap()).await
}

async fn app_service(entra: &FakeEntra, query: &str, header: Option<&str>) -> (StatusCode, Value) {
    let mut request = http().get(format!("{}?{query}", entra.app_service_endpoint()));
    if let Some(header) = header {
        request = request.header("X-IDENTITY-HEADER", header);
    }
    json_of(request.send().await.unwrap()).await
}

/// `POST {arm}{path}` with an optional bearer token: status and body text.
async fn arm_post(
    entra: &FakeEntra,
    path_and_query: &str,
    bearer: Option<&str>,
) -> (StatusCode, String) {
    let mut request = http().post(format!("{}{path_and_query}", entra.arm_endpoint()));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

const SUBSCRIPTION: &str = "0b1f6471-1bf0-4dda-aec3-cb9272f09590";

/// The ARM resource id of storage account `name` in resource group `ml`.
fn account_id(subscription: &str, name: &str) -> String {
    format!(
        "/subscriptions/{subscription}/resourceGroups/ml/providers/Microsoft.Storage/\
         storageAccounts/{name}"
    )
}

fn revoke_path(account_id: &str) -> String {
    format!("{account_id}/revokeUserDelegationKeys?api-version=2023-05-01")
}

fn assert_arm_error(got: &(StatusCode, String), status: u16, code: &str) {
    let (got_status, text) = got;
    assert_eq!(got_status.as_u16(), status, "{text}");
    let body: Value = serde_json::from_str(text).unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

// ---------------------------------------------------------------------------------------------
// Client credentials

#[tokio::test]
async fn a_client_secret_buys_a_storage_token_with_the_apps_identity() {
    let entra = FakeEntra::start().await;
    let before = Utc::now().timestamp();
    let response = http()
        .post(token_url(&entra, TENANT))
        .form(&secret_form(STORAGE_SCOPE))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599, "a number, one second short");
    assert_eq!(body["ext_expires_in"], 3599);

    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        header(token),
        json!({"alg": "RS256", "typ": "JWT", "kid": "fake"})
    );
    let c = claims(token);
    assert_eq!(c["aud"], "https://storage.azure.com");
    assert_eq!(c["iss"], format!("https://sts.windows.net/{TENANT}/"));
    assert_eq!(c["oid"], OBJECT_ID);
    assert_eq!(c["sub"], OBJECT_ID);
    assert_eq!(c["tid"], TENANT);
    assert_eq!(c["appid"], CLIENT_ID);
    let (nbf, exp) = (c["nbf"].as_i64().unwrap(), c["exp"].as_i64().unwrap());
    let after = Utc::now().timestamp();
    assert!((before - 60..=after - 60).contains(&nbf), "nbf {nbf}");
    assert!((before + 3600..=after + 3600).contains(&exp), "exp {exp}");
    assert!(c["iat"].is_i64());
    assert!(
        !token.split('.').nth(2).unwrap().is_empty(),
        "a signature part"
    );

    assert_eq!(entra.token_requests(), 1);
    assert_eq!(entra.token_requests_for("https://storage.azure.com"), 1);
    assert_eq!(entra.token_requests_for("https://management.azure.com"), 0);

    // Every token is a fresh one.
    let again = secret_token(&entra, STORAGE_SCOPE).await;
    assert_ne!(again, token);
    assert_eq!(entra.token_requests(), 2);
}

#[tokio::test]
async fn a_federated_assertion_buys_a_management_token() {
    let entra = FakeEntra::start().await;
    let federated = claims(FEDERATED_TOKEN);
    assert_eq!(federated["iss"], FEDERATED_ISSUER);
    assert_eq!(federated["sub"], FEDERATED_SUBJECT);
    assert_eq!(federated["aud"], json!([FEDERATED_AUDIENCE]));

    let (status, body) = token(
        &entra,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", FEDERATED_TOKEN),
            ("scope", ARM_SCOPE),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["expires_in"].is_i64());
    let c = claims(body["access_token"].as_str().unwrap());
    assert_eq!(c["aud"], "https://management.azure.com");
    assert_eq!(c["oid"], OBJECT_ID);
    assert_eq!(entra.token_requests_for("https://management.azure.com"), 1);
    assert_eq!(entra.token_requests_for("https://storage.azure.com"), 0);
}

#[tokio::test]
async fn an_unknown_tenant_is_not_found() {
    let entra = FakeEntra::start().await;
    let got = json_of(
        http()
            .post(token_url(&entra, "00000000-0000-0000-0000-000000000001"))
            .form(&secret_form(STORAGE_SCOPE))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_aad_error(&got, 400, "invalid_request", 90002);
    assert!(
        got.1["error_description"]
            .as_str()
            .unwrap()
            .contains("not found")
    );
    assert_eq!(entra.token_requests(), 0);
}

#[tokio::test]
async fn an_unknown_client_id_is_an_unauthorized_client() {
    let entra = FakeEntra::start().await;
    let got = token(
        &entra,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "99999999-2222-3333-4444-555555555555"),
            ("client_secret", CLIENT_SECRET),
            ("scope", STORAGE_SCOPE),
        ],
    )
    .await;
    assert_aad_error(&got, 400, "unauthorized_client", 700016);
}

#[tokio::test]
async fn a_wrong_secret_is_an_invalid_client() {
    let entra = FakeEntra::start().await;
    let got = token(
        &entra,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", "not-the-secret"),
            ("scope", STORAGE_SCOPE),
        ],
    )
    .await;
    assert_aad_error(&got, 401, "invalid_client", 7000215);
    assert_eq!(entra.token_requests(), 0);
}

#[tokio::test]
async fn no_credential_at_all_is_an_invalid_client() {
    let entra = FakeEntra::start().await;
    let got = token(
        &entra,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("scope", STORAGE_SCOPE),
        ],
    )
    .await;
    assert_aad_error(&got, 401, "invalid_client", 7000218);
}

#[tokio::test]
async fn assertions_that_match_no_federated_credential_are_refused() {
    let entra = FakeEntra::start().await;
    let now = Utc::now().timestamp();
    let good = json!({
        "iss": FEDERATED_ISSUER,
        "sub": FEDERATED_SUBJECT,
        "aud": FEDERATED_AUDIENCE,
        "nbf": now - 10,
        "exp": now + 600,
    });
    let with = |field: &str, value: Value| {
        let mut c = good.clone();
        c[field] = value;
        jwt(&c)
    };
    let cases = [
        (jwt(&good), None),
        (
            with("iss", json!("https://token.actions.githubusercontent.com")),
            Some((400, "invalid_client", 700211)),
        ),
        (
            with("sub", json!("system:serviceaccount:other:other")),
            Some((400, "invalid_client", 700213)),
        ),
        (
            with("aud", json!("api://SomethingElse")),
            Some((400, "invalid_client", 700212)),
        ),
        (
            with("exp", json!(now - 1)),
            Some((400, "invalid_client", 700024)),
        ),
        (
            with("nbf", json!(now + 600)),
            Some((400, "invalid_client", 700024)),
        ),
        (
            "not-a-jwt".to_owned(),
            Some((400, "invalid_request", 50027)),
        ),
        (
            format!("{}.e30", "eyJhbGciOiJSUzI1NiJ9"),
            Some((400, "invalid_request", 50027)),
        ),
    ];
    for (assertion, expected) in cases {
        let got = token(
            &entra,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &assertion),
                ("scope", STORAGE_SCOPE),
            ],
        )
        .await;
        match expected {
            None => assert_eq!(got.0, 200, "{}", got.1),
            Some((status, error, code)) => assert_aad_error(&got, status, error, code),
        }
    }
    assert_eq!(entra.token_requests(), 1);

    // The wrong assertion type, and none at all.
    let got = token(
        &entra,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            ),
            ("client_assertion", FEDERATED_TOKEN),
            ("scope", STORAGE_SCOPE),
        ],
    )
    .await;
    assert_aad_error(&got, 400, "invalid_request", 90011);
    let got = token(
        &entra,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_assertion", FEDERATED_TOKEN),
            ("scope", STORAGE_SCOPE),
        ],
    )
    .await;
    assert_aad_error(&got, 400, "invalid_request", 900144);
}

#[tokio::test]
async fn malformed_requests_are_invalid_requests() {
    let entra = FakeEntra::start().await;
    let base = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("scope", STORAGE_SCOPE),
    ];
    for missing in ["grant_type", "client_id", "scope"] {
        let form: Vec<_> = base
            .iter()
            .filter(|(k, _)| *k != missing)
            .copied()
            .collect();
        let got = token(&entra, &form).await;
        assert_aad_error(&got, 400, "invalid_request", 900144);
        assert!(
            got.1["error_description"]
                .as_str()
                .unwrap()
                .contains(&format!("'{missing}'")),
            "{}",
            got.1
        );
    }

    let mut form = base.to_vec();
    form[0] = ("grant_type", "password");
    assert_aad_error(
        &token(&entra, &form).await,
        400,
        "unsupported_grant_type",
        70003,
    );

    // The scope must be one `{resource}/.default` of a resource Entra knows.
    for (scope, error, code) in [
        ("https://storage.azure.com", "invalid_scope", 1002012),
        (
            "https://storage.azure.com/user_impersonation",
            "invalid_scope",
            1002012,
        ),
        (
            "https://storage.azure.com/.default https://management.azure.com/.default",
            "invalid_scope",
            28000,
        ),
        (
            "https://storage.azure.com/.default offline_access",
            "invalid_scope",
            70011,
        ),
        (
            "https://vault.example.com/.default",
            "invalid_resource",
            500011,
        ),
    ] {
        let mut form = base.to_vec();
        form[3] = ("scope", scope);
        assert_aad_error(&token(&entra, &form).await, 400, error, code);
    }

    // Both credentials at once.
    let mut form = base.to_vec();
    form.push(("client_assertion_type", JWT_BEARER));
    form.push(("client_assertion", FEDERATED_TOKEN));
    assert_aad_error(&token(&entra, &form).await, 400, "invalid_request", 9002313);

    // A repeated parameter.
    let mut form = base.to_vec();
    form.push(("scope", ARM_SCOPE));
    assert_aad_error(&token(&entra, &form).await, 400, "invalid_request", 9002313);

    // Entra reads only a form body: the same fields as JSON are missing.
    let got = json_of(
        http()
            .post(token_url(&entra, TENANT))
            .json(&json!({
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "scope": STORAGE_SCOPE,
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_aad_error(&got, 400, "invalid_request", 900144);

    // And only POST.
    let got = json_of(http().get(token_url(&entra, TENANT)).send().await.unwrap()).await;
    assert_aad_error(&got, 400, "invalid_request", 900561);

    assert_eq!(entra.token_requests(), 0);
}

#[tokio::test]
async fn a_resource_with_a_trailing_slash_keeps_it_in_the_audience() {
    let entra = FakeEntra::start().await;
    let token = secret_token(&entra, "https://management.azure.com//.default").await;
    assert_eq!(claims(&token)["aud"], "https://management.azure.com/");
    let token = secret_token(&entra, "https://mlmodels.blob.core.windows.net/.default").await;
    assert_eq!(
        claims(&token)["aud"],
        "https://mlmodels.blob.core.windows.net"
    );
}

// ---------------------------------------------------------------------------------------------
// Managed identity: IMDS

#[tokio::test]
async fn imds_answers_with_string_fields() {
    let entra = FakeEntra::start().await;
    let before = Utc::now().timestamp();
    let (status, body) = imds(
        &entra,
        "api-version=2018-02-01&resource=https%3A%2F%2Fstorage.azure.com%2F",
        &[("Metadata", "true")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for field in [
        "access_token",
        "client_id",
        "expires_in",
        "expires_on",
        "ext_expires_in",
        "not_before",
        "resource",
        "token_type",
    ] {
        assert!(body[field].is_string(), "{field} is not a string: {body}");
    }
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["client_id"], CLIENT_ID);
    assert_eq!(body["resource"], "https://storage.azure.com/");
    assert_eq!(body["expires_in"], "3599");
    let expires_on: i64 = body["expires_on"].as_str().unwrap().parse().unwrap();
    let after = Utc::now().timestamp();
    assert!(
        (before + 3600..=after + 3600).contains(&expires_on),
        "{expires_on}"
    );
    let c = claims(body["access_token"].as_str().unwrap());
    assert_eq!(c["aud"], "https://storage.azure.com/");
    assert_eq!(c["oid"], OBJECT_ID);
    assert_eq!(c["exp"].as_i64().unwrap(), expires_on);
    assert_eq!(
        body["not_before"].as_str().unwrap(),
        c["nbf"].as_i64().unwrap().to_string()
    );
    assert_eq!(entra.token_requests_for("https://storage.azure.com"), 1);

    // Naming the identity, by any one of its ids.
    for selector in [
        format!("client_id={CLIENT_ID}"),
        format!("object_id={OBJECT_ID}"),
        format!("msi_res_id={}", url_encode(IDENTITY_RESOURCE_ID)),
    ] {
        let (status, body) = imds(
            &entra,
            &format!("api-version=2018-02-01&resource=https://management.azure.com/&{selector}"),
            &[("Metadata", "true")],
        )
        .await;
        assert_eq!(status, 200, "{selector}: {body}");
    }
    assert_eq!(entra.token_requests_for("https://management.azure.com"), 3);
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn imds_refusals() {
    let entra = FakeEntra::start().await;
    let ok_query = "api-version=2018-02-01&resource=https://storage.azure.com";
    let meta = ("Metadata", "true");

    let (status, body) = imds(&entra, ok_query, &[]).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({
            "error": "invalid_request",
            "error_description": "Required metadata header not specified",
        })
    );
    let (status, _) = imds(&entra, ok_query, &[("Metadata", "false")]).await;
    assert_eq!(status, 400);

    let (status, body) = imds(
        &entra,
        ok_query,
        &[meta, ("X-Forwarded-For", "203.0.113.7")],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_request");

    let (status, body) = imds(
        &entra,
        &format!("{ok_query}&client_id=99999999-2222-3333-4444-555555555555"),
        &[meta],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": "invalid_request", "error_description": "Identity not found"})
    );

    let (status, body) = imds(
        &entra,
        &format!("{ok_query}&client_id={CLIENT_ID}&object_id={OBJECT_ID}"),
        &[meta],
    )
    .await;
    assert_eq!(
        (status.as_u16(), &body["error"]),
        (400, &json!("invalid_request"))
    );

    for query in [
        "resource=https://storage.azure.com",
        "api-version=2099-01-01&resource=https://storage.azure.com",
        "api-version=2018-02-01",
    ] {
        let (status, body) = imds(&entra, query, &[meta]).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"], "invalid_request", "{query}");
    }

    let got = imds(
        &entra,
        "api-version=2018-02-01&resource=https://vault.example.com",
        &[meta],
    )
    .await;
    assert_aad_error(&got, 400, "invalid_resource", 500011);

    assert_eq!(entra.token_requests(), 0);
}

// ---------------------------------------------------------------------------------------------
// Managed identity: App Service / Container Apps

#[tokio::test]
async fn app_service_answers_with_expires_on_as_a_string() {
    let entra = FakeEntra::start().await;
    let (status, body) = app_service(
        &entra,
        "api-version=2019-08-01&resource=https://storage.azure.com",
        Some(FakeEntra::APP_SERVICE_HEADER),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["resource"], "https://storage.azure.com");
    assert_eq!(body["client_id"], CLIENT_ID);
    let expires_on: i64 = body["expires_on"].as_str().unwrap().parse().unwrap();
    let c = claims(body["access_token"].as_str().unwrap());
    assert_eq!(c["exp"].as_i64().unwrap(), expires_on);
    assert_eq!(c["aud"], "https://storage.azure.com");
    assert_eq!(c["oid"], OBJECT_ID);

    let (status, body) = app_service(
        &entra,
        &format!(
            "api-version=2019-08-01&resource=https://management.azure.com&client_id={CLIENT_ID}"
        ),
        Some(FakeEntra::APP_SERVICE_HEADER),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(entra.token_requests(), 2);
}

#[tokio::test]
async fn app_service_refusals() {
    let entra = FakeEntra::start().await;
    let ok_query = "api-version=2019-08-01&resource=https://storage.azure.com";
    let header = Some(FakeEntra::APP_SERVICE_HEADER);

    for wrong in [None, Some("guessed")] {
        let (status, body) = app_service(&entra, ok_query, wrong).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["statusCode"], 401);
        assert!(body["message"].is_string());
    }
    for query in [
        "resource=https://storage.azure.com",
        "api-version=2017-09-01&resource=https://storage.azure.com",
        "api-version=2019-08-01",
        "api-version=2019-08-01&resource=https://vault.example.com",
        "api-version=2019-08-01&resource=https://storage.azure.com\
         &client_id=99999999-2222-3333-4444-555555555555",
    ] {
        let (status, body) = app_service(&entra, query, header).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["statusCode"], 400, "{query}");
    }
    assert_eq!(entra.token_requests(), 0);
}

// ---------------------------------------------------------------------------------------------
// ARM

#[tokio::test]
async fn arm_revokes_user_delegation_keys_with_a_management_token() {
    let entra = FakeEntra::start().await;
    let token = secret_token(&entra, ARM_SCOPE).await;
    let (status, body) = arm_post(&entra, &revoke_path(ACCOUNT_ID), Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "");

    // A managed identity token for `https://management.azure.com/` works too.
    let (_, body) = imds(
        &entra,
        "api-version=2018-02-01&resource=https://management.azure.com/",
        &[("Metadata", "true")],
    )
    .await;
    let mi_token = body["access_token"].as_str().unwrap();
    let other = "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/data/providers/\
                 Microsoft.Storage/storageAccounts/rawdata";
    let (status, body) = arm_post(&entra, &revoke_path(other), Some(mi_token)).await;
    assert_eq!(status, 200, "{body}");

    assert_eq!(
        entra.revocations(),
        vec![ACCOUNT_ID.to_owned(), other.to_owned()]
    );
}

#[tokio::test]
async fn arm_refuses_tokens_it_should_not_accept() {
    let entra = FakeEntra::start().await;
    let path = revoke_path(ACCOUNT_ID);

    assert_arm_error(
        &arm_post(&entra, &path, None).await,
        401,
        "AuthenticationFailed",
    );

    // A storage token is for the wrong audience.
    let storage = secret_token(&entra, STORAGE_SCOPE).await;
    assert_arm_error(
        &arm_post(&entra, &path, Some(&storage)).await,
        401,
        "InvalidAuthenticationTokenAudience",
    );

    // A forged token with the right claims was not issued by this tenant's Entra.
    let now = Utc::now().timestamp();
    let forged = jwt(&json!({
        "aud": "https://management.azure.com",
        "iss": format!("https://sts.windows.net/{TENANT}/"),
        "iat": now, "nbf": now, "exp": now + 3600,
        "oid": OBJECT_ID, "tid": TENANT, "appid": CLIENT_ID,
    }));
    assert_arm_error(
        &arm_post(&entra, &path, Some(&forged)).await,
        401,
        "InvalidAuthenticationToken",
    );

    // An expired management token.
    entra.set_token_lifetime(0);
    let expired = secret_token(&entra, ARM_SCOPE).await;
    assert_arm_error(
        &arm_post(&entra, &path, Some(&expired)).await,
        401,
        "ExpiredAuthenticationToken",
    );

    // The 401s carry a Bearer challenge.
    let response = http()
        .post(format!("{}{path}", entra.arm_endpoint()))
        .send()
        .await
        .unwrap();
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer "), "{challenge}");

    assert!(entra.revocations().is_empty());
}

#[tokio::test]
async fn arm_checks_the_request_itself() {
    let entra = FakeEntra::start().await;
    let token = secret_token(&entra, ARM_SCOPE).await;
    let bare = format!("{ACCOUNT_ID}/revokeUserDelegationKeys");

    assert_arm_error(
        &arm_post(&entra, &bare, Some(&token)).await,
        400,
        "MissingApiVersionParameter",
    );
    assert_arm_error(
        &arm_post(&entra, &format!("{bare}?api-version=latest"), Some(&token)).await,
        400,
        "InvalidApiVersionParameter",
    );
    assert_arm_error(
        &arm_post(
            &entra,
            &format!("{bare}?api-version=2017-10-01"),
            Some(&token),
        )
        .await,
        400,
        "NoRegisteredProviderFound",
    );
    assert_arm_error(
        &arm_post(
            &entra,
            &revoke_path(&account_id("not-a-guid", "mlmodels")),
            Some(&token),
        )
        .await,
        400,
        "InvalidSubscriptionId",
    );
    assert_arm_error(
        &arm_post(
            &entra,
            &revoke_path(&account_id(SUBSCRIPTION, "Not_An_Account")),
            Some(&token),
        )
        .await,
        404,
        "ResourceNotFound",
    );
    assert_arm_error(
        &arm_post(
            &entra,
            &revoke_path(&format!("{ACCOUNT_ID}/listKeys")),
            Some(&token),
        )
        .await,
        404,
        "NotFound",
    );
    let response = http()
        .get(format!(
            "{}{}",
            entra.arm_endpoint(),
            revoke_path(ACCOUNT_ID)
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);

    // ARM path segments are case-insensitive.
    let lower = ACCOUNT_ID
        .replace("resourceGroups", "resourcegroups")
        .replace("storageAccounts", "storageaccounts");
    let (status, body) = arm_post(&entra, &revoke_path(&lower), Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(entra.revocations(), vec![lower]);
}

// ---------------------------------------------------------------------------------------------
// Knobs

#[tokio::test]
async fn while_down_every_endpoint_answers_503_and_then_recovers() {
    let entra = FakeEntra::start().await;
    let arm_token = secret_token(&entra, ARM_SCOPE).await;
    entra.set_down(true);

    let got = json_of(
        http()
            .post(token_url(&entra, TENANT))
            .form(&secret_form(STORAGE_SCOPE))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_aad_error(&got, 503, "temporarily_unavailable", 50196);
    let got = imds(
        &entra,
        "api-version=2018-02-01&resource=https://storage.azure.com",
        &[("Metadata", "true")],
    )
    .await;
    assert_aad_error(&got, 503, "temporarily_unavailable", 50196);
    let got = app_service(
        &entra,
        "api-version=2019-08-01&resource=https://storage.azure.com",
        Some(FakeEntra::APP_SERVICE_HEADER),
    )
    .await;
    assert_aad_error(&got, 503, "temporarily_unavailable", 50196);
    assert_arm_error(
        &arm_post(&entra, &revoke_path(ACCOUNT_ID), Some(&arm_token)).await,
        503,
        "ServiceUnavailable",
    );
    assert_eq!(entra.token_requests(), 1);
    assert!(entra.revocations().is_empty());

    entra.set_down(false);
    secret_token(&entra, STORAGE_SCOPE).await;
    let (status, body) = arm_post(&entra, &revoke_path(ACCOUNT_ID), Some(&arm_token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(entra.token_requests(), 2);
    assert_eq!(entra.revocations().len(), 1);
}

#[tokio::test]
async fn the_audience_override_applies_to_storage_tokens_only() {
    let entra = FakeEntra::start().await;
    entra.set_audience_override(Some("https://vault.azure.net"));

    let storage = secret_token(&entra, STORAGE_SCOPE).await;
    assert_eq!(claims(&storage)["aud"], "https://vault.azure.net");
    let (_, body) = imds(
        &entra,
        "api-version=2018-02-01&resource=https://storage.azure.com",
        &[("Metadata", "true")],
    )
    .await;
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["aud"],
        "https://vault.azure.net"
    );
    assert_eq!(
        body["resource"], "https://storage.azure.com",
        "the request is echoed"
    );
    let arm = secret_token(&entra, ARM_SCOPE).await;
    assert_eq!(claims(&arm)["aud"], "https://management.azure.com");

    entra.set_audience_override(None);
    let storage = secret_token(&entra, STORAGE_SCOPE).await;
    assert_eq!(claims(&storage)["aud"], "https://storage.azure.com");
}

#[tokio::test]
async fn the_token_lifetime_is_adjustable() {
    let entra = FakeEntra::start().await;
    entra.set_token_lifetime(120);
    let before = Utc::now().timestamp();
    let (status, body) = token(
        &entra,
        &secret_form(STORAGE_SCOPE)
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["expires_in"], 119);
    let exp = claims(body["access_token"].as_str().unwrap())["exp"]
        .as_i64()
        .unwrap();
    let after = Utc::now().timestamp();
    assert!((before + 120..=after + 120).contains(&exp), "exp {exp}");
}

#[tokio::test]
async fn dropping_the_server_stops_it() {
    let entra = FakeEntra::start().await;
    let url = token_url(&entra, TENANT);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    assert!(http.get(&url).send().await.is_ok());
    drop(entra);
    let mut refused = false;
    for _ in 0..1000 {
        tokio::task::yield_now().await;
        if http.get(&url).send().await.is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "the server still answers after drop");
}

// ---------------------------------------------------------------------------------------------
// Against a real Azurite

/// `POST ?restype=service&comp=userdelegationkey` with a bearer token: status and body.
async fn user_delegation_key(azurite: &Azurite, token: &str) -> (StatusCode, String) {
    let start = Utc::now() - Duration::minutes(5);
    let expiry = start + Duration::hours(1);
    let format = "%Y-%m-%dT%H:%M:%SZ";
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
         <KeyInfo><Start>{}</Start><Expiry>{}</Expiry></KeyInfo>",
        start.format(format),
        expiry.format(format)
    );
    let response = azurite
        .http_client()
        .post(format!(
            "{}?restype=service&comp=userdelegationkey",
            azurite.endpoint()
        ))
        .bearer_auth(token)
        .header("x-ms-version", "2023-11-03")
        .header(
            "x-ms-date",
            Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        )
        .header("content-type", "application/xml")
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn azurite_accepts_storage_tokens_and_refuses_the_overridden_audience() {
    let entra = FakeEntra::start().await;
    let azurite = Azurite::start(Tls::Https).await;

    let token = secret_token(&entra, STORAGE_SCOPE).await;
    let (status, body) = user_delegation_key(&azurite, &token).await;
    assert_eq!(status, 200, "{body}\n{}", azurite.log_tail());
    assert!(
        body.contains(&format!("<SignedOid>{OBJECT_ID}</SignedOid>")),
        "{body}"
    );
    assert!(
        body.contains(&format!("<SignedTid>{TENANT}</SignedTid>")),
        "{body}"
    );

    // IMDS-style tokens (resource with a trailing slash) are accepted too.
    let (_, imds_body) = imds(
        &entra,
        "api-version=2018-02-01&resource=https://storage.azure.com/",
        &[("Metadata", "true")],
    )
    .await;
    let (status, body) =
        user_delegation_key(&azurite, imds_body["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{body}");

    entra.set_audience_override(Some("https://vault.azure.net"));
    let wrong = secret_token(&entra, STORAGE_SCOPE).await;
    let (status, body) = user_delegation_key(&azurite, &wrong).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("AuthenticationFailed"), "{body}");

    // An ARM token is no good for Storage either.
    let arm = secret_token(&entra, ARM_SCOPE).await;
    let (status, body) = user_delegation_key(&azurite, &arm).await;
    assert_eq!(status, 403, "{body}");
}
