#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Keyless signing: user delegation SAS through Microsoft Entra ID (issue 5).
//!
//! Microsoft Entra ID and Azure Resource Manager cannot run here. `common::entra::FakeEntra` is
//! a local server speaking their documented protocols (OAuth 2.0 client credentials with a
//! secret or a federated assertion, IMDS and App Service managed identity, ARM
//! `revokeUserDelegationKeys`). Its access tokens are what Azurite (`--oauth basic`, HTTPS)
//! accepts, so the user delegation keys sasgate obtains are real Azurite keys and every SAS is
//! checked by Azurite's own signature validation. The account in these tests has no key at all.
//!
//! Azurite limits, stated where they matter: it rejects `scid` (so the tests switch the
//! correlation id off where a token must download, and check it separately), and it keeps no
//! record of revoked user delegation keys (so the emergency stop is shown to reach ARM, be
//! recorded and rotate sasgate's key, not to make Azurite refuse old tokens).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::app::{MODEL, TestApp, seed, serve, write_setup_in};
use common::azurite::{Azurite, Tls};
use common::entra::{CLIENT_ID, CLIENT_SECRET, FEDERATED_TOKEN, FakeEntra, OBJECT_ID, TENANT};
use sasgate::azure::entra::{CredentialKind, EntraCredential};
use sasgate::broker::DelegationKeys;
use sasgate::config::Delegation;
use sasgate::ledger::{RevocationMode, SigningMode, StoredStatus};
use serde_json::{Value, json};

const RESOURCE_ID: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-sasgate/providers/Microsoft.Storage/storageAccounts/devstoreaccount1";
const SECRET_VAR: &str = "ENTRA_TEST_CLIENT_SECRET";

/// Rules for a keyless account: no stored access policy (that needs the account key).
const POLICY: &str = r#"
[[rule]]
id = "ud-read-models"
principals = ["role:researcher"]
account = "devstoreaccount1"
containers = ["models"]
blobs = ["published/**"]
scopes = ["blob"]
permissions = "r"
default_ttl = "15m"
max_ttl = "1h"
revocation = "expiry_only"

[[rule]]
id = "ud-list-ci"
principals = ["role:ci"]
account = "devstoreaccount1"
containers = ["ci-build"]
scopes = ["container"]
permissions = "rl"
default_ttl = "10m"
max_ttl = "30m"
revocation = "expiry_only"

[[rule]]
id = "ud-share"
principals = ["role:researcher"]
account = "devstoreaccount1"
containers = ["shared"]
scopes = ["blob"]
permissions = "r"
default_ttl = "1h"
max_ttl = "1h"
revocation = "link_only"
"#;

/// The `[[accounts]]` block of a keyless account with the given `[accounts.entra]` lines.
fn account_block(azurite: &Azurite, entra_lines: &str) -> String {
    format!(
        r#"[[accounts]]
name = "devstoreaccount1"
blob_endpoint = "{endpoint}"
ca_file = "{ca}"
[accounts.entra]
{entra_lines}
"#,
        endpoint = azurite.endpoint(),
        ca = azurite.ca_pem_path().unwrap().display(),
    )
}

fn client_secret_lines(fake: &FakeEntra, correlation_id: bool) -> String {
    format!(
        r#"credential = "client_secret"
tenant_id = "{TENANT}"
client_id = "{CLIENT_ID}"
client_secret_env = "{SECRET_VAR}"
authority_host = "{authority}"
correlation_id = {correlation_id}
resource_id = "{RESOURCE_ID}"
arm_endpoint = "{arm}"
arm_scope = "https://management.azure.com/.default"
"#,
        authority = fake.authority_host(),
        arm = fake.arm_endpoint(),
    )
}

async fn azurite() -> Arc<Azurite> {
    let azurite = Azurite::start(Tls::Https).await;
    seed(&azurite).await;
    Arc::new(azurite)
}

async fn keyless_app(azurite: Arc<Azurite>, entra_lines: &str, env: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let setup = write_setup_in(
        dir,
        None,
        &account_block(&azurite, entra_lines),
        Some(&[("ud.toml", POLICY)]),
    );
    serve(azurite, setup, env).await
}

/// A keyless app whose identity is a client secret.
async fn secret_app(fake: &FakeEntra, azurite: Arc<Azurite>, correlation_id: bool) -> TestApp {
    keyless_app(
        azurite,
        &client_secret_lines(fake, correlation_id),
        &[(SECRET_VAR, CLIENT_SECRET)],
    )
    .await
}

fn query(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param(url: &str, name: &str) -> Option<String> {
    query(url)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Mints until the answer is 201 or the deadline passes (recovery after an outage).
async fn mint_until_ok(app: &TestApp, body: Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, v) = app.mint(&app.alice, body.clone()).await;
        if status == 201 {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery: last answer {status} {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn model_request() -> Value {
    json!({"account": "devstoreaccount1", "container": "models", "blob": "published/model.bin"})
}

#[tokio::test]
async fn keyless_account_mints_user_delegation_sas_that_azurite_accepts() {
    let fake = FakeEntra::start().await;
    let azurite = azurite().await;
    let app = secret_app(&fake, azurite.clone(), false).await;

    let (status, minted) = app.mint(&app.alice, model_request()).await;
    assert_eq!(status, 201, "{minted}");
    let url = minted["url"].as_str().unwrap();
    assert_eq!(param(url, "skoid").as_deref(), Some(OBJECT_ID));
    assert_eq!(param(url, "sktid").as_deref(), Some(TENANT));
    assert_eq!(param(url, "sks").as_deref(), Some("b"));
    assert_eq!(param(url, "sr").as_deref(), Some("b"));
    assert_eq!(param(url, "sp").as_deref(), Some("r"));
    assert_eq!(param(url, "spr").as_deref(), Some("https"));
    assert_eq!(param(url, "scid"), None, "correlation_id = false");
    assert_eq!(param(url, "si"), None);
    // se ≤ ske.
    let se = param(url, "se").unwrap();
    let ske = param(url, "ske").unwrap();
    assert!(se <= ske, "se {se} must not be after ske {ske}");

    // Azurite validates the signature with the key it issued.
    let (status, body) = app.download(url).await;
    assert_eq!(status, 200);
    assert_eq!(body, MODEL);
    // The same token on another blob of the same container fails.
    let other = url.replace("published/model.bin", "drafts/unreleased.bin");
    assert_eq!(app.download(&other).await.0, 403);
    // And on another container.
    let other = url.replace("/models/published/model.bin", "/secrets/keys.txt");
    assert_eq!(app.download(&other).await.0, 403);

    // The record says how it was signed and by which identity.
    let record = app
        .ledger
        .get(minted["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.signing_mode, SigningMode::UserDelegation);
    assert_eq!(record.revocation, RevocationMode::ExpiryOnly);
    assert_eq!(record.key_oid.as_deref(), Some(OBJECT_ID));
    assert_eq!(record.key_tid.as_deref(), Some(TENANT));
    let (status, shown) = app
        .get(&app.admin, &format!("/v1/issuances/{}", record.id))
        .await;
    assert_eq!(status, 200);
    assert_eq!(shown["key_oid"], OBJECT_ID);
    assert_eq!(shown["signing_mode"], "user_delegation");

    // A container-scoped user delegation SAS lists.
    let (status, listed) = app
        .mint(
            &app.ci,
            json!({"account": "devstoreaccount1", "container": "ci-build", "permissions": "rl"}),
        )
        .await;
    assert_eq!(status, 201, "{listed}");
    let list_url = format!(
        "{}&restype=container&comp=list",
        listed["url"].as_str().unwrap()
    );
    let (status, body) = app.download(&list_url).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(param(&list_url, "sr").as_deref(), Some("c"));

    // A broker link redeems to a user delegation SAS.
    let (status, link) = app
        .post(
            &app.alice,
            "/v1/links",
            json!({"account": "devstoreaccount1", "container": "shared", "blob": "paper.pdf"}),
        )
        .await;
    assert_eq!(status, 201, "{link}");
    let code = link["link"].as_str().unwrap().rsplit('/').next().unwrap();
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect
        .get(format!("{}/l/{code}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(param(&location, "skoid").as_deref(), Some(OBJECT_ID));
    let (status, body) = app.download(&location).await;
    assert_eq!(status, 200);
    assert_eq!(body, b"the paper");

    // One storage token served the start-up key fetch and every mint.
    assert_eq!(fake.token_requests_for("https://storage.azure.com"), 1);
    app.stop().await;
}

#[tokio::test]
async fn correlation_id_is_the_issuance_id_and_the_signature_verifies() {
    let fake = FakeEntra::start().await;
    let azurite = azurite().await;
    let app = secret_app(&fake, azurite.clone(), true).await;
    let (status, minted) = app.mint(&app.alice, model_request()).await;
    assert_eq!(status, 201, "{minted}");
    let url = minted["url"].as_str().unwrap();
    assert_eq!(param(url, "scid").as_deref(), minted["id"].as_str());

    // Obtain the same key from Azurite (it derives it from oid, tid, start and expiry) and check
    // the signature sasgate made over every field, scid included.
    let bearer = common::azurite::fake_entra_jwt(OBJECT_ID, TENANT);
    let parse_time = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&Utc)
    };
    let key = azurite
        .client()
        .get_user_delegation_key(
            &bearer,
            parse_time(&param(url, "skt").unwrap()),
            parse_time(&param(url, "ske").unwrap()),
        )
        .await
        .unwrap();
    let parsed = sasgate::sas::parse::parse(url).unwrap();
    parsed
        .verify(&key.value)
        .expect("the signature, scid included, verifies with Azurite's key");
    // A different correlation id does not.
    let forged = url.replace(
        &format!("scid={}", minted["id"].as_str().unwrap()),
        "scid=iss_forged",
    );
    assert!(
        sasgate::sas::parse::parse(&forged)
            .unwrap()
            .verify(&key.value)
            .is_err()
    );
    // Azurite does not support scid (AZURE-SAS.md §10, gap 2): this is why the switch exists.
    assert_eq!(app.download(url).await.0, 403);
    app.stop().await;
}

#[tokio::test]
async fn workload_and_managed_identities_obtain_keys() {
    let fake = FakeEntra::start().await;
    let azurite = azurite().await;
    let token_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token_file.path(), FEDERATED_TOKEN).unwrap();
    let token_path = token_file.path().to_str().unwrap().to_owned();
    let authority = fake.authority_host();
    let imds = fake.imds_endpoint();
    let app_service = fake.app_service_endpoint();
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        (
            "workload identity (webhook variables)",
            "credential = \"workload_identity\"\ncorrelation_id = false\n".to_owned(),
            vec![
                ("AZURE_TENANT_ID", TENANT),
                ("AZURE_CLIENT_ID", CLIENT_ID),
                ("AZURE_FEDERATED_TOKEN_FILE", &token_path),
                ("AZURE_AUTHORITY_HOST", &authority),
            ],
        ),
        (
            "managed identity (IMDS)",
            format!(
                "credential = \"managed_identity\"\nmanaged_identity_endpoint = \"{imds}\"\ncorrelation_id = false\n"
            ),
            vec![],
        ),
        (
            "managed identity (App Service)",
            "credential = \"managed_identity\"\ncorrelation_id = false\n".to_owned(),
            vec![
                ("IDENTITY_ENDPOINT", &app_service),
                ("IDENTITY_HEADER", FakeEntra::APP_SERVICE_HEADER),
            ],
        ),
    ];
    for (name, lines, env) in cases {
        let before = fake.token_requests_for("https://storage.azure.com");
        let app = keyless_app(azurite.clone(), &lines, &env).await;
        let (status, minted) = app.mint(&app.alice, model_request()).await;
        assert_eq!(status, 201, "{name}: {minted}");
        let (status, body) = app.download(minted["url"].as_str().unwrap()).await;
        assert_eq!(status, 200, "{name}");
        assert_eq!(body, MODEL, "{name}");
        assert_eq!(
            fake.token_requests_for("https://storage.azure.com"),
            before + 1,
            "{name}: one token"
        );
        app.stop().await;
    }
}

fn delegation_settings(fake: &FakeEntra) -> Delegation {
    Delegation {
        credential: CredentialKind::ClientSecret {
            tenant_id: TENANT.into(),
            client_id: CLIENT_ID.into(),
            secret: sasgate::secret::Secret::new(CLIENT_SECRET),
        },
        authority: url::Url::parse(&fake.authority_host()).unwrap(),
        ca_file: None,
        key_lifetime: chrono::Duration::days(1),
        correlation_id: false,
        resource_id: Some(RESOURCE_ID.into()),
        arm_endpoint: url::Url::parse(&fake.arm_endpoint()).unwrap(),
        arm_scope: "https://management.azure.com/.default".into(),
    }
}

#[tokio::test]
async fn a_key_near_expiry_is_renewed_once_under_concurrent_load() {
    let fake = FakeEntra::start().await;
    let azurite = azurite().await;
    let settings = delegation_settings(&fake);
    let credential = EntraCredential::new(
        settings.credential.clone(),
        settings.authority.clone(),
        None,
    )
    .unwrap();
    let client = sasgate::azure::BlobServiceClient::keyless(
        "devstoreaccount1",
        azurite.endpoint(),
        azurite.ca_pem_path(),
    )
    .unwrap();
    let max_ttl = chrono::Duration::hours(1);
    let keys = Arc::new(DelegationKeys::new(
        "devstoreaccount1",
        client,
        Arc::new(credential),
        settings,
        max_ttl,
        chrono::Duration::minutes(15),
    ));
    let t0 = Utc::now();
    let first = keys.key(t0, t0 + max_ttl).await.unwrap();
    assert_eq!(
        keys.stats
            .renewals
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    // Hours later, well before it is due: the same key, no renewal.
    let later = t0 + chrono::Duration::hours(12);
    let same = keys.key(later, later + max_ttl).await.unwrap();
    assert!(Arc::ptr_eq(&first, &same));

    // 5 minutes short of due (less than max_ttl + 5 minutes left): 64 concurrent mints.
    let t1 = first.expiry - max_ttl - chrono::Duration::minutes(4);
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let keys = keys.clone();
            tokio::spawn(async move {
                let until = t1 + chrono::Duration::minutes(i % 60 + 1);
                keys.key(t1, until).await
            })
        })
        .collect();
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap().unwrap());
    }
    assert_eq!(
        keys.stats
            .renewals
            .load(std::sync::atomic::Ordering::SeqCst),
        2,
        "exactly one renewal for 64 concurrent callers"
    );
    // Every caller's SAS fits in the key it got (se ≤ ske); the renewed key covers a full TTL.
    let renewed = keys.key(t1, t1 + max_ttl).await.unwrap();
    assert!(renewed.expiry > first.expiry);
    for (i, k) in got.iter().enumerate() {
        let until = t1 + chrono::Duration::minutes(i as i64 % 60 + 1);
        assert!(until <= k.expiry);
    }
    assert_eq!(
        keys.stats
            .renewals
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    // The storage token of t0 had expired by t1: one more token, not 64.
    assert_eq!(fake.token_requests_for("https://storage.azure.com"), 2);
    assert_eq!(
        keys.stats
            .failures
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn entra_or_key_outage_gives_503_without_a_token_and_recovers() {
    let fake = FakeEntra::start().await;
    let azurite = azurite().await;
    fake.set_down(true);
    let app = secret_app(&fake, azurite.clone(), false).await;
    let r = app
        .http
        .post(format!("{}/v1/tokens", app.address))
        .bearer_auth(&app.alice)
        .json(&model_request())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "signing_unavailable");
    assert!(body.get("url").is_none() && body.get("sas").is_none());
    assert!(body["error_id"].as_str().unwrap().starts_with("err_"));
    let page = app
        .ledger
        .list(&Default::default(), Utc::now(), 10, None)
        .await
        .unwrap();
    assert!(
        page.items.is_empty(),
        "no record without a token, and no token"
    );

    fake.set_down(false);
    let minted = mint_until_ok(&app, model_request()).await;
    assert_eq!(app.download(minted["url"].as_str().unwrap()).await.0, 200);
    app.stop().await;

    // Entra answers, but Azurite refuses its token for Get User Delegation Key: also 503, and
    // recovery once the token is right again (the refused token is not kept).
    fake.set_audience_override(Some("https://vault.azure.net"));
    let app = secret_app(&fake, azurite.clone(), false).await;
    let (status, body) = app.mint(&app.alice, model_request()).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "signing_unavailable");
    fake.set_audience_override(None);
    let minted = mint_until_ok(&app, model_request()).await;
    assert_eq!(app.download(minted["url"].as_str().unwrap()).await.0, 200);
    app.stop().await;
}

#[tokio::test]
async fn emergency_stop_revokes_every_user_delegation_key_through_arm_and_is_recorded() {
    let fake = FakeEntra::start().await;
    let azurite = azurite().await;
    let app = secret_app(&fake, azurite.clone(), false).await;
    let (_, token) = app.mint(&app.alice, model_request()).await;
    let (_, link) = app
        .post(
            &app.alice,
            "/v1/links",
            json!({"account": "devstoreaccount1", "container": "shared", "blob": "paper.pdf"}),
        )
        .await;
    let body = json!({"account": "devstoreaccount1", "reason": "identity compromised"});

    // Not for researchers.
    let (status, _) = app
        .post(
            &app.alice,
            "/v1/emergency/revoke-delegation-keys",
            body.clone(),
        )
        .await;
    assert_eq!(status, 403);
    // ARM down: 503 and nothing recorded as revoked.
    fake.set_down(true);
    let (status, problem) = app
        .post(
            &app.admin,
            "/v1/emergency/revoke-delegation-keys",
            body.clone(),
        )
        .await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["code"], "azure_unavailable");
    fake.set_down(false);
    assert!(fake.revocations().is_empty());
    let record = app
        .ledger
        .get(token["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, StoredStatus::Active);

    let (status, stop) = app
        .post(&app.admin, "/v1/emergency/revoke-delegation-keys", body)
        .await;
    assert_eq!(status, 200, "{stop}");
    assert_eq!(fake.revocations(), vec![RESOURCE_ID.to_owned()]);
    assert!(fake.token_requests_for("https://management.azure.com") >= 1);
    let revoked: Vec<&str> = stop["revoked_issuances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(revoked.contains(&token["id"].as_str().unwrap()));
    assert!(revoked.contains(&link["id"].as_str().unwrap()));
    let record = app
        .ledger
        .get(token["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, StoredStatus::Revoked);
    assert_eq!(record.revoked_by.as_deref(), Some("user:admin"));
    let log = app
        .ledger
        .key_revocations("devstoreaccount1")
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].id, stop["id"].as_str().unwrap());
    assert_eq!(log[0].reason, "identity compromised");

    // The link stops at once.
    let code = link["link"].as_str().unwrap().rsplit('/').next().unwrap();
    let r = app
        .http
        .get(format!("{}/l/{code}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 410);
    // New tokens come from a new key and work.
    let (status, fresh) = app.mint(&app.alice, model_request()).await;
    assert_eq!(status, 201, "{fresh}");
    assert_eq!(app.download(fresh["url"].as_str().unwrap()).await.0, 200);
    app.stop().await;
}

#[tokio::test]
async fn a_keyless_account_cannot_carry_a_stored_policy_rule_or_an_unsafe_endpoint() {
    let fake = FakeEntra::start().await;
    let azurite = azurite().await;
    let policy = POLICY.replace(
        "revocation = \"link_only\"",
        "revocation = \"stored_access_policy\"",
    );
    let dir = tempfile::tempdir().unwrap();
    let setup = write_setup_in(
        dir,
        None,
        &account_block(&azurite, &client_secret_lines(&fake, false)),
        Some(&[("ud.toml", &policy)]),
    );
    let env = vec![(SECRET_VAR.to_owned(), CLIENT_SECRET.to_owned())];
    let config = sasgate::config::Config::load_from(Some(&setup.config), &env).unwrap();
    let err = sasgate::app::Application::build(config)
        .await
        .err()
        .expect("a stored-policy rule on a keyless account is refused")
        .to_string();
    assert!(
        err.contains("ud-share") && err.contains("account key"),
        "{err}"
    );

    // A plain-HTTP authority off this machine would carry the client secret in clear.
    let text = std::fs::read_to_string(&setup.config)
        .unwrap()
        .replace(&fake.authority_host(), "http://login.example.org");
    std::fs::write(&setup.config, text).unwrap();
    let err = sasgate::config::Config::load_from(Some(&setup.config), &env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("authority_host"), "{err}");
    assert!(!err.contains(CLIENT_SECRET));
}

#[tokio::test]
async fn secrets_and_tokens_never_reach_the_log() {
    let fake = FakeEntra::start().await;
    let azurite = azurite().await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("client-secret");
    std::fs::write(&secret_file, CLIENT_SECRET).unwrap();
    let lines = client_secret_lines(&fake, false).replace(
        &format!("client_secret_env = \"{SECRET_VAR}\""),
        &format!("client_secret_file = \"{}\"", secret_file.display()),
    );
    let setup = write_setup_in(
        dir,
        None,
        &account_block(&azurite, &lines),
        Some(&[("ud.toml", POLICY)]),
    );
    let log = setup.dir.path().join("sasgate.log");
    let mut binary = common::app::spawn_binary(&setup.config, 0, &log).await;
    let http = azurite.http_client();
    let mint = http
        .post(format!("{}/v1/tokens", binary.address))
        .bearer_auth(&setup.alice)
        .json(&model_request())
        .send()
        .await
        .unwrap();
    assert_eq!(mint.status().as_u16(), 201);
    let minted: Value = mint.json().await.unwrap();
    let sig = param(minted["url"].as_str().unwrap(), "sig").unwrap();
    // An outage is logged with its cause, still without secrets.
    fake.set_down(true);
    let stop = http
        .post(format!(
            "{}/v1/emergency/revoke-delegation-keys",
            binary.address
        ))
        .bearer_auth(&setup.admin)
        .json(&json!({"account": "devstoreaccount1", "reason": "drill"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stop.status().as_u16(), 503);
    binary.child.kill().unwrap();
    binary.child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("issued"), "the log is being read: {text}");
    assert!(
        text.contains("ServiceUnavailable") || text.contains("503"),
        "{text}"
    );
    for secret in [CLIENT_SECRET, sig.as_str(), setup.alice.as_str(), "eyJ"] {
        assert!(!text.contains(secret), "the log holds a secret ({secret})");
    }
}

#[tokio::test]
async fn a_stop_run_through_one_replica_makes_the_other_drop_its_key() {
    let fake = FakeEntra::start().await;
    let azurite = azurite().await;
    let a = secret_app(&fake, azurite.clone(), false).await;
    let b = serve(
        azurite.clone(),
        common::app::Setup {
            dir: tempfile::tempdir().unwrap(),
            config: a.dir.path().join("sasgate.toml"),
            alice: a.alice.clone(),
            admin: a.admin.clone(),
            ci: a.ci.clone(),
        },
        &[(SECRET_VAR, CLIENT_SECRET)],
    )
    .await;
    let (status, before) = b.mint(&b.alice, model_request()).await;
    assert_eq!(status, 201, "{before}");
    let skt_before = param(before["url"].as_str().unwrap(), "skt").unwrap();

    let (status, stop) = a
        .post(
            &a.admin,
            "/v1/emergency/revoke-delegation-keys",
            json!({"account": "devstoreaccount1", "reason": "drill"}),
        )
        .await;
    assert_eq!(status, 200, "{stop}");
    // B learns of the stop from the ledger within a few seconds and obtains a new key.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, after) = b.mint(&b.alice, model_request()).await;
        assert_eq!(status, 201, "{after}");
        let skt = param(after["url"].as_str().unwrap(), "skt").unwrap();
        if skt > skt_before {
            assert_eq!(b.download(after["url"].as_str().unwrap()).await.0, 200);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replica B still signs with the key from before the stop"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    b.stop().await;
    a.stop().await;
}
