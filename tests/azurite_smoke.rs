//! The test harness and the Blob client against a real Azurite: containers, blobs, container ACLs
//! and user delegation keys, over HTTPS (and once over plain HTTP).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{Duration, Utc};
use common::azurite::{Azurite, Tls, fake_entra_jwt};
use sasgate::azure::{ContainerAcl, SignedIdentifier};
use sasgate::sas::name::{BlobName, ContainerName};

fn container(name: &str) -> ContainerName {
    ContainerName::parse(name).unwrap()
}

fn blob(name: &str) -> BlobName {
    BlobName::parse(name).unwrap()
}

fn policy(
    id: &str,
    start: Option<&str>,
    expiry: Option<&str>,
    permission: &str,
) -> SignedIdentifier {
    SignedIdentifier {
        id: id.into(),
        start: start.map(Into::into),
        expiry: expiry.map(Into::into),
        permission: Some(permission.into()),
    }
}

#[tokio::test]
async fn a_blob_put_with_shared_key_reads_back_byte_for_byte() {
    let azurite = Azurite::start(Tls::Https).await;
    eprintln!("azurite (https) answered after {:?}", azurite.startup());
    let client = azurite.client();
    let data = container("data");

    assert!(
        client.create_container(&data).await.unwrap(),
        "{}",
        azurite.log_tail()
    );
    // Creating it again is not an error.
    assert!(!client.create_container(&data).await.unwrap());

    // A name that needs percent-encoding in the path: space, plus, non-ASCII, nested segments.
    let name = blob("models/v1/a b+c (é).bin");
    let content = b"hello, sasgate\x00\xff".to_vec();
    client
        .put_blob(&data, &name, content.clone(), "application/octet-stream")
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", azurite.log_tail()));
    let got = client.get_blob(&data, &name).await.unwrap();
    assert_eq!(got, content);

    // The URL the client builds is the one Azurite serves the blob under.
    assert_eq!(
        client.blob_url(&data, &name).as_str(),
        format!(
            "https://127.0.0.1:{}/devstoreaccount1/data/models/v1/a%20b%2Bc%20%28%C3%A9%29.bin",
            azurite.port()
        )
    );

    // Missing blobs surface Azure's error code, not a body or a header.
    let err = client.get_blob(&data, &blob("nope")).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.code(), Some("BlobNotFound"));
    assert_eq!(err.operation(), Some("get_blob"));
}

#[tokio::test]
async fn a_wrong_key_is_refused_with_an_error_that_reveals_nothing() {
    let azurite = Azurite::start(Tls::Https).await;
    let wrong = sasgate::secret::SigningKey::from_base64("d3Jvbmcga2V5").unwrap();
    let client = sasgate::azure::BlobServiceClient::new(
        azurite.account(),
        azurite.endpoint(),
        azurite.ca_pem_path(),
        wrong,
    )
    .unwrap();
    let err = client
        .create_container(&container("data"))
        .await
        .unwrap_err();
    // Azure answers 403 AuthenticationFailed. Azurite with `--oauth basic` falls through to its
    // token check after the Shared Key mismatch and answers 400 InvalidAuthenticationInfo
    // (without OAuth: 403 AuthorizationFailure).
    assert_eq!(err.status(), Some(400), "{err}");
    assert_eq!(err.code(), Some("InvalidAuthenticationInfo"), "{err}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("SharedKey"), "{shown}");
}

#[tokio::test]
async fn container_acl_round_trips_two_policies_and_keeps_public_access() {
    let azurite = Azurite::start(Tls::Https).await;
    let client = azurite.client();
    let data = container("acl-test");
    client.create_container(&data).await.unwrap();

    let empty = client.get_container_acl(&data).await.unwrap();
    assert!(empty.identifiers.is_empty());
    assert_eq!(empty.public_access, None);
    assert!(empty.etag.is_some());

    // Make the container publicly readable at blob level, so that "unchanged" means something.
    let public = ContainerAcl {
        public_access: Some("blob".into()),
        ..ContainerAcl::default()
    };
    client
        .set_container_acl(&data, &public, None, None)
        .await
        .unwrap();

    // Read-modify-write: keep the public access level, replace the policies.
    let mut acl = client.get_container_acl(&data).await.unwrap();
    assert_eq!(acl.public_access.as_deref(), Some("blob"));
    acl.identifiers = vec![
        policy(
            "brk-2025w48-read",
            Some("2025-11-29T00:00:00.0000000Z"),
            Some("2025-12-06T00:00:00.0000000Z"),
            "rl",
        ),
        policy("brk-perm-only", None, None, "r"),
    ];
    let etag = acl.etag.clone();
    let new_etag = client
        .set_container_acl(&data, &acl, etag.as_deref(), None)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", azurite.log_tail()));
    assert!(new_etag.is_some());
    assert_ne!(new_etag, etag);

    let back = client.get_container_acl(&data).await.unwrap();
    assert_eq!(back.public_access.as_deref(), Some("blob"));
    let ids: Vec<(&str, Option<&str>)> = back
        .identifiers
        .iter()
        .map(|si| (si.id.as_str(), si.permission.as_deref()))
        .collect();
    assert_eq!(
        ids,
        [
            ("brk-2025w48-read", Some("rl")),
            ("brk-perm-only", Some("r"))
        ]
    );
    assert!(
        back.identifiers[0]
            .start
            .as_deref()
            .is_some_and(|s| s.starts_with("2025-11-29T00:00:00"))
    );
    assert!(
        back.identifiers[0]
            .expiry
            .as_deref()
            .is_some_and(|s| s.starts_with("2025-12-06T00:00:00"))
    );
    assert_eq!(back.identifiers[1].start, None);
    assert_eq!(back.identifiers[1].expiry, None);
    assert_eq!(back.etag, new_etag);

    // Leaving public_access out makes the container private: the gotcha the docs warn about.
    let policies_only = ContainerAcl {
        identifiers: back.identifiers.clone(),
        ..ContainerAcl::default()
    };
    client
        .set_container_acl(&data, &policies_only, None, None)
        .await
        .unwrap();
    let after = client.get_container_acl(&data).await.unwrap();
    assert_eq!(after.public_access, None);
    assert_eq!(after.identifiers, back.identifiers);

    // Emptying the list removes every policy.
    client
        .set_container_acl(&data, &ContainerAcl::default(), None, None)
        .await
        .unwrap();
    assert!(
        client
            .get_container_acl(&data)
            .await
            .unwrap()
            .identifiers
            .is_empty()
    );
}

/// Documents an emulator limit: Set Container ACL does not honour `If-Match` in Azurite (the REST
/// operation documents only If-Modified-Since/If-Unmodified-Since), so a stale ETag succeeds.
/// Callers must not rely on `if_match` for optimistic concurrency.
#[tokio::test]
async fn azurite_ignores_if_match_on_set_container_acl() {
    let azurite = Azurite::start(Tls::Https).await;
    let client = azurite.client();
    let data = container("etag-test");
    client.create_container(&data).await.unwrap();
    let acl = client.get_container_acl(&data).await.unwrap();
    let stale = acl.etag.clone().unwrap();
    client
        .set_container_acl(&data, &acl, None, None)
        .await
        .unwrap();
    let result = client
        .set_container_acl(&data, &acl, Some(&stale), None)
        .await;
    assert!(
        result.is_ok(),
        "Azurite started honouring If-Match: {result:?}"
    );
}

#[tokio::test]
async fn a_user_delegation_key_is_issued_for_a_fake_entra_token() {
    let azurite = Azurite::start(Tls::Https).await;
    let client = azurite.client();
    let oid = "11111111-2222-3333-4444-555555555555";
    let tid = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
    let token = fake_entra_jwt(oid, tid);
    let start = Utc::now() - Duration::minutes(5);
    let expiry = start + Duration::hours(1);

    let key = client
        .get_user_delegation_key(&token, start, expiry)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", azurite.log_tail()));
    eprintln!(
        "user delegation key: skt={} ske={} skv={} sks={}",
        key.signed_start, key.signed_expiry, key.signed_version, key.signed_service
    );
    assert_eq!(key.signed_oid, oid);
    assert_eq!(key.signed_tid, tid);
    assert_eq!(key.signed_service, "b");
    for (field, value) in [
        ("signed_start", &key.signed_start),
        ("signed_expiry", &key.signed_expiry),
        ("signed_version", &key.signed_version),
    ] {
        assert!(!value.is_empty(), "{field} is empty");
    }
    assert!(
        key.signed_start
            .starts_with(&start.format("%Y-%m-%dT%H:%M:%S").to_string()),
        "{}",
        key.signed_start
    );
    assert!(
        key.signed_expiry
            .starts_with(&expiry.format("%Y-%m-%dT%H:%M:%S").to_string()),
        "{}",
        key.signed_expiry
    );
    assert!(!format!("{:?}", key.value).contains(&key.signed_oid));

    // A token Azurite cannot accept is refused, and the error does not contain it.
    let err = client
        .get_user_delegation_key("not-a-jwt", start, expiry)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
    assert!(!format!("{err} {err:?}").contains("not-a-jwt"));
}

#[tokio::test]
async fn plain_http_azurite_creates_a_container() {
    let azurite = Azurite::start(Tls::Http).await;
    eprintln!("azurite (http) answered after {:?}", azurite.startup());
    assert!(azurite.endpoint().as_str().starts_with("http://127.0.0.1:"));
    assert!(azurite.ca_pem_path().is_none());
    let client = azurite.client();
    assert!(
        client.create_container(&container("plain")).await.unwrap(),
        "{}",
        azurite.log_tail()
    );
    let acl = client.get_container_acl(&container("plain")).await.unwrap();
    assert!(acl.identifiers.is_empty());
}

#[tokio::test]
async fn a_container_lease_excludes_a_second_holder_and_guards_acl_writes() {
    let azurite = Azurite::start(Tls::Https).await;
    let client = azurite.client();
    let data = ContainerName::parse("leased").unwrap();
    client.create_container(&data).await.unwrap();
    let lease = client.acquire_container_lease(&data, 15).await.unwrap();
    // A second replica cannot take it while it is held.
    let second = client.acquire_container_lease(&data, 15).await.unwrap_err();
    assert_eq!(
        (second.status(), second.code()),
        (Some(409), Some("LeaseAlreadyPresent")),
        "{second}"
    );
    // Writes with the lease id succeed; a wrong lease id is refused.
    let acl = ContainerAcl {
        identifiers: vec![SignedIdentifier {
            id: "sg-1-r".into(),
            start: None,
            expiry: None,
            permission: Some("r".into()),
        }],
        public_access: None,
        etag: None,
    };
    client
        .set_container_acl(&data, &acl, None, Some(&lease))
        .await
        .unwrap();
    let wrong = client
        .set_container_acl(
            &data,
            &acl,
            None,
            Some("00000000-0000-0000-0000-000000000000"),
        )
        .await
        .unwrap_err();
    assert_eq!(wrong.status(), Some(412), "{wrong}");
    client.release_container_lease(&data, &lease).await.unwrap();
    let again = client.acquire_container_lease(&data, 15).await.unwrap();
    client.release_container_lease(&data, &again).await.unwrap();
}
