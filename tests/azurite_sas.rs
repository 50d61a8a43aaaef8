//! Every kind of SAS sasgate signs, proven against a real Azurite over HTTPS: what the token
//! grants works, and everything it does not grant is refused by the emulator.
//!
//! Not provable here (Azurite 3.37.0 gaps, AZURE-SAS.md §10): `sr=bv` and `sr=d` tokens, and user
//! delegation tokens carrying `saoid`/`suoid`/`scid`/`sduoid`/`srh`/`srq`. Those are covered byte
//! for byte by the SDK vectors in `tests/vectors.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{Duration, Utc};
use common::azurite::{Azurite, Tls, fake_entra_jwt};
use reqwest::StatusCode;
use sasgate::azure::{BlobServiceClient, ContainerAcl, SignedIdentifier};
use sasgate::sas::name::{AccountName, BlobName, ContainerName};
use sasgate::sas::perms::{Permissions, Resource};
use sasgate::sas::sign::{
    BlobSas, DelegationFields, Protocol, SasToken, Target, sign_service, sign_user_delegation,
};
use sasgate::sas::version::SasVersion;
use sasgate::secret::SigningKey;

const CONTENT_A: &[u8] = b"weights of model a";
const CONTENT_B: &[u8] = b"weights of model b";

struct Fixture {
    az: Azurite,
    client: BlobServiceClient,
    http: reqwest::Client,
    data: ContainerName,
    other: ContainerName,
    a: BlobName,
    b: BlobName,
}

fn c(name: &str) -> ContainerName {
    ContainerName::parse(name).unwrap()
}

fn b(name: &str) -> BlobName {
    BlobName::parse(name).unwrap()
}

/// Azurite with containers `data` and `other`, each holding `models/a.bin` and `models/b.bin`.
async fn fixture(tls: Tls) -> Fixture {
    let az = Azurite::start(tls).await;
    let client = az.client();
    let (data, other, a, bb) = (c("data"), c("other"), b("models/a.bin"), b("models/b.bin"));
    for container in [&data, &other] {
        client.create_container(container).await.unwrap();
        client
            .put_blob(
                container,
                &a,
                CONTENT_A.to_vec(),
                "application/octet-stream",
            )
            .await
            .unwrap();
        client
            .put_blob(
                container,
                &bb,
                CONTENT_B.to_vec(),
                "application/octet-stream",
            )
            .await
            .unwrap();
    }
    let http = az.http_client();
    Fixture {
        az,
        client,
        http,
        data,
        other,
        a,
        b: bb,
    }
}

impl Fixture {
    fn key(&self) -> SigningKey {
        self.az.key()
    }

    /// A read SAS for `target` in `container`, started 15 minutes back, 15 minutes to live.
    fn request(&self, container: &ContainerName, target: Target) -> BlobSas {
        let now = Utc::now();
        BlobSas::new(
            AccountName::parse("devstoreaccount1").unwrap(),
            container.clone(),
            target,
            now - Duration::minutes(15),
            now + Duration::minutes(15),
        )
    }

    fn url(&self, token: &SasToken, container: &ContainerName, blob: Option<&BlobName>) -> String {
        token.url(&self.az.endpoint(), container, blob)
    }

    /// GET `url`: status, the `x-ms-error-code`, and the body.
    async fn get(&self, url: &str) -> (StatusCode, String, Vec<u8>) {
        let r = self.http.get(url).send().await.unwrap();
        let status = r.status();
        let code = error_code(&r);
        (status, code, r.bytes().await.unwrap().to_vec())
    }

    async fn put(&self, url: &str, body: &[u8]) -> (StatusCode, String) {
        let r = self
            .http
            .put(url)
            .header("x-ms-blob-type", "BlockBlob")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        (r.status(), error_code(&r))
    }
}

fn error_code(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-ms-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn a_blob_read_sas_downloads_its_blob_and_nothing_else() {
    let f = fixture(Tls::Https).await;
    let token = sign_service(
        &f.request(&f.data, Target::Blob(f.a.clone())),
        None,
        &f.key(),
    )
    .unwrap();

    let (status, code, body) = f.get(&f.url(&token, &f.data, Some(&f.a))).await;
    assert_eq!(status, StatusCode::OK, "{code}\n{}", f.az.log_tail());
    assert_eq!(body, CONTENT_A);

    // Another blob in the same container, the same blob name in another container.
    let (status, code, _) = f.get(&f.url(&token, &f.data, Some(&f.b))).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "AuthorizationFailure")
    );
    let (status, _, _) = f.get(&f.url(&token, &f.other, Some(&f.a))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A write with a read token.
    let (status, code) = f
        .put(&f.url(&token, &f.data, Some(&f.a)), b"overwritten")
        .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "AuthorizationPermissionMismatch")
    );
    assert_eq!(
        f.client.get_blob(&f.data, &f.a).await.unwrap(),
        CONTENT_A,
        "the blob must be untouched"
    );

    // A token whose expiry has passed.
    let now = Utc::now();
    let mut expired = f.request(&f.data, Target::Blob(f.a.clone()));
    expired.start = Some(now - Duration::minutes(30));
    expired.expiry = Some(now - Duration::minutes(1));
    let token = sign_service(&expired, None, &f.key()).unwrap();
    let (status, code, _) = f.get(&f.url(&token, &f.data, Some(&f.a))).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "AuthorizationFailure")
    );

    // A token signed with another key.
    let forged = sign_service(
        &f.request(&f.data, Target::Blob(f.a.clone())),
        None,
        &SigningKey::from_base64("bm90IHRoZSBhY2NvdW50IGtleQ==").unwrap(),
    )
    .unwrap();
    let (status, _, _) = f.get(&f.url(&forged, &f.data, Some(&f.a))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn service_sas_works_at_every_string_to_sign_layout() {
    let f = fixture(Tls::Https).await;
    // 13-field (A), 15-field (B) and 16-field (C) layouts, and the default version.
    for v in [
        "2015-04-05",
        "2018-03-28",
        "2018-11-09",
        "2019-12-12",
        "2020-12-06",
        "2025-11-05",
        "2026-04-06",
        "2026-06-06",
    ] {
        let mut req = f.request(&f.data, Target::Blob(f.a.clone()));
        req.version = SasVersion::parse_known(v).unwrap();
        let token = sign_service(&req, None, &f.key()).unwrap();
        let (status, code, body) = f.get(&f.url(&token, &f.data, Some(&f.a))).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "sv={v}: {code}\n{}",
            f.az.log_tail()
        );
        assert_eq!(body, CONTENT_A, "sv={v}");
    }
    assert_eq!(SasVersion::DEFAULT.to_string(), "2026-06-06");
}

#[tokio::test]
async fn an_https_only_sas_is_refused_over_plain_http() {
    let f = fixture(Tls::Http).await;
    let mut req = f.request(&f.data, Target::Blob(f.a.clone()));
    assert_eq!(
        req.protocol,
        Some(Protocol::HttpsOnly),
        "HTTPS-only is the default"
    );
    let token = sign_service(&req, None, &f.key()).unwrap();
    let url = f.url(&token, &f.data, Some(&f.a));
    assert!(url.starts_with("http://"));
    let (status, code, _) = f.get(&url).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "AuthorizationProtocolMismatch")
    );

    // The same token with `spr=https,http` is accepted: the refusal above is the protocol's.
    req.protocol = Some(Protocol::HttpsAndHttp);
    let token = sign_service(&req, None, &f.key()).unwrap();
    let (status, _, body) = f.get(&f.url(&token, &f.data, Some(&f.a))).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, CONTENT_A));
}

#[tokio::test]
async fn a_container_sas_lists_only_with_list_rights() {
    let f = fixture(Tls::Https).await;
    let list = |token: &SasToken| {
        format!(
            "{}&restype=container&comp=list",
            f.url(token, &f.data, None)
        )
    };

    let mut req = f.request(&f.data, Target::Container);
    req.permissions = Some(Permissions::parse("rl", Resource::Container).unwrap());
    let token = sign_service(&req, None, &f.key()).unwrap();
    let (status, code, body) = f.get(&list(&token)).await;
    assert_eq!(status, StatusCode::OK, "{code}");
    let body = String::from_utf8(body).unwrap();
    assert!(
        body.contains("models/a.bin") && body.contains("models/b.bin"),
        "{body}"
    );
    // The container token reads any blob of its container, and nothing in another one.
    let (status, _, _) = f
        .get(&token.url(&f.az.endpoint(), &f.data, Some(&f.b)))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = f
        .get(&token.url(&f.az.endpoint(), &f.other, Some(&f.b)))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    req.permissions = Some(Permissions::READ);
    let token = sign_service(&req, None, &f.key()).unwrap();
    let (status, code, _) = f.get(&list(&token)).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "AuthorizationPermissionMismatch")
    );
}

#[tokio::test]
async fn a_snapshot_sas_reads_that_snapshot_only() {
    let f = fixture(Tls::Https).await;
    let snapshot = f.client.snapshot_blob(&f.data, &f.a).await.unwrap();
    f.client
        .put_blob(&f.data, &f.a, b"newer content".to_vec(), "text/plain")
        .await
        .unwrap();

    let token = sign_service(
        &f.request(&f.data, Target::Snapshot(f.a.clone(), snapshot.clone())),
        None,
        &f.key(),
    )
    .unwrap();
    let url = f.url(&token, &f.data, Some(&f.a));
    assert!(url.contains("snapshot="), "{url}");
    let (status, code, body) = f.get(&url).await;
    assert_eq!(status, StatusCode::OK, "{code}\n{}", f.az.log_tail());
    assert_eq!(body, CONTENT_A, "the snapshot, not the current blob");

    // Without the snapshot selector the request is for the base blob, which the token does not cover.
    let base = url.replace(
        &format!(
            "snapshot={}&",
            sasgate::sas::encode::encode_query_value(&snapshot)
        ),
        "",
    );
    assert!(!base.contains("snapshot="));
    let (status, _, _) = f.get(&base).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_stored_policy_sas_works_until_its_policy_is_deleted() {
    let f = fixture(Tls::Https).await;
    let policy = |id: &str| SignedIdentifier {
        id: id.into(),
        start: None,
        expiry: None,
        permission: Some("r".into()),
    };
    let acl = ContainerAcl {
        identifiers: vec![policy("sg-test-1"), policy("someone-elses")],
        public_access: None,
        etag: None,
    };
    f.client
        .set_container_acl(&f.data, &acl, None, None)
        .await
        .unwrap();

    // The policy holds only the permission; the token carries its own st/se and no sp.
    let mut req = f.request(&f.data, Target::Blob(f.a.clone()));
    req.permissions = None;
    let token = sign_service(&req, Some("sg-test-1"), &f.key()).unwrap();
    assert_eq!(token.param("sp"), None);
    assert_eq!(token.param("si"), Some("sg-test-1"));
    let url = f.url(&token, &f.data, Some(&f.a));
    let (status, code, body) = f.get(&url).await;
    assert_eq!(status, StatusCode::OK, "{code}\n{}", f.az.log_tail());
    assert_eq!(body, CONTENT_A);

    let unknown = sign_service(&req, Some("no-such-policy"), &f.key()).unwrap();
    let (status, _, _) = f.get(&f.url(&unknown, &f.data, Some(&f.a))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Deleting the policy (Set Container ACL without it) revokes the token at once on Azurite.
    let remaining = ContainerAcl {
        identifiers: vec![policy("someone-elses")],
        public_access: None,
        etag: None,
    };
    f.client
        .set_container_acl(&f.data, &remaining, None, None)
        .await
        .unwrap();
    let (status, _, _) = f.get(&url).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let left = f.client.get_container_acl(&f.data).await.unwrap();
    assert_eq!(
        left.identifiers
            .iter()
            .map(|i| i.id.as_str())
            .collect::<Vec<_>>(),
        ["someone-elses"]
    );
}

#[tokio::test]
async fn a_user_delegation_sas_works_with_a_key_from_azurite() {
    let f = fixture(Tls::Https).await;
    let now = Utc::now();
    let jwt = fake_entra_jwt(
        "aaaaaaaa-0000-0000-0000-000000000001",
        "bbbbbbbb-0000-0000-0000-000000000002",
    );
    let key = f
        .client
        .get_user_delegation_key(&jwt, now - Duration::minutes(20), now + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(key.signed_oid, "aaaaaaaa-0000-0000-0000-000000000001");
    let none = DelegationFields::default();

    // U1 … U5 layouts.
    for v in [
        "2018-11-09",
        "2020-02-10",
        "2020-12-06",
        "2025-07-05",
        "2026-04-06",
        "2026-06-06",
    ] {
        let mut req = f.request(&f.data, Target::Blob(f.a.clone()));
        req.version = SasVersion::parse_known(v).unwrap();
        let token = sign_user_delegation(&req, &none, &key).unwrap();
        assert_eq!(token.param("skoid"), Some(key.signed_oid.as_str()));
        let (status, code, body) = f.get(&f.url(&token, &f.data, Some(&f.a))).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "sv={v}: {code}\n{}",
            f.az.log_tail()
        );
        assert_eq!(body, CONTENT_A);
        let (status, _, _) = f.get(&f.url(&token, &f.data, Some(&f.b))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "sv={v}: another blob");
    }

    // A container listing with a delegation token.
    let mut req = f.request(&f.data, Target::Container);
    req.permissions = Some(Permissions::parse("rl", Resource::Container).unwrap());
    let token = sign_user_delegation(&req, &none, &key).unwrap();
    let (status, code, _) = f
        .get(&format!(
            "{}&restype=container&comp=list",
            f.url(&token, &f.data, None)
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{code}");

    // The same fields signed with another key value are refused.
    let mut forged_key = key.clone();
    forged_key.value = SigningKey::from_base64("Zm9yZ2VkIGRlbGVnYXRpb24ga2V5").unwrap();
    let forged = sign_user_delegation(
        &f.request(&f.data, Target::Blob(f.a.clone())),
        &none,
        &forged_key,
    )
    .unwrap();
    let (status, _, _) = f.get(&f.url(&forged, &f.data, Some(&f.a))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn response_overrides_reach_the_response() {
    let f = fixture(Tls::Https).await;
    let mut req = f.request(&f.data, Target::Blob(f.a.clone()));
    req.overrides.content_disposition = Some("attachment; filename=\"model a.bin\"".into());
    req.overrides.content_type = Some("application/x-model".into());
    let token = sign_service(&req, None, &f.key()).unwrap();
    let r = f
        .http
        .get(f.url(&token, &f.data, Some(&f.a)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename=\"model a.bin\""
    );
    assert_eq!(r.headers()["content-type"], "application/x-model");
}
