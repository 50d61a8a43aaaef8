//! Signing cost: one full service SAS (validation, string-to-sign, HMAC, base64, query string)
//! against one bare HMAC-SHA256 of the same string-to-sign with the same key.
//! Run with `cargo bench --bench sign`. Goal: signing costs at most twice the bare HMAC.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use support::measure;

use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{TimeZone, Utc};
use hmac::{Hmac, Mac};
use sasgate::sas::name::{AccountName, BlobName, ContainerName};
use sasgate::sas::sign::{BlobSas, DelegationFields, Target, sign_service, sign_user_delegation};
use sasgate::sas::udk::UserDelegationKey;
use sasgate::secret::SigningKey;
use sha2::Sha256;

const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn main() {
    let key = SigningKey::from_base64(KEY).unwrap();
    let key_bytes = base64::engine::general_purpose::STANDARD
        .decode(KEY)
        .unwrap();
    let start = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
    let sas = BlobSas::new(
        AccountName::parse("devstoreaccount1").unwrap(),
        ContainerName::parse("models").unwrap(),
        Target::Blob(BlobName::parse("published/llm-7b/weights-00001.safetensors").unwrap()),
        start,
        start + chrono::Duration::minutes(15),
    );
    let sts = sign_service(&sas, None, &key)
        .unwrap()
        .string_to_sign()
        .to_owned();

    let sign = || {
        let token = sign_service(black_box(&sas), None, black_box(&key)).unwrap();
        black_box(token.query());
    };
    let sign_only = || {
        black_box(sign_service(black_box(&sas), None, black_box(&key)).unwrap());
    };
    let token = sign_service(&sas, None, &key).unwrap();
    let query_only = || {
        black_box(black_box(&token).query());
    };
    let hmac = || {
        let mut mac = Hmac::<Sha256>::new_from_slice(black_box(&key_bytes)).unwrap();
        mac.update(black_box(sts.as_bytes()));
        black_box(mac.finalize().into_bytes());
    };
    // Warm up, then pick an iteration count that makes a round last about 20 ms.
    let warm = Instant::now();
    let mut n = 0u32;
    while warm.elapsed() < Duration::from_millis(200) {
        sign();
        hmac();
        n += 1;
    }
    let iters = (n / 10).max(100);
    let sign_ns = measure(31, iters, sign);
    let hmac_ns = measure(31, iters, hmac);
    let sign_only_ns = measure(31, iters, sign_only);
    let query_ns = measure(31, iters, query_only);
    println!("string-to-sign: {} bytes", sts.len());
    println!("sign service SAS (incl. query string): {sign_ns:>8.0} ns/op");
    println!("  of which signing (token, no query):   {sign_only_ns:>8.0} ns/op");
    println!("  of which emitting the query string:   {query_ns:>8.0} ns/op");
    println!("bare HMAC-SHA256 of the same string:    {hmac_ns:>8.0} ns/op");
    println!(
        "ratio signing / HMAC:            {:.2} (goal <= 2.00)",
        sign_only_ns / hmac_ns
    );
    println!("ratio signing + query / HMAC:    {:.2}", sign_ns / hmac_ns);

    // A user delegation SAS (28-field string-to-sign at the default version) with scid.
    let udk = UserDelegationKey {
        signed_oid: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee".into(),
        signed_tid: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
        signed_start: "2026-11-29T11:00:00Z".into(),
        signed_expiry: "2026-11-30T12:00:00Z".into(),
        signed_service: "b".into(),
        signed_version: "2026-06-06".into(),
        signed_delegated_user_tid: None,
        value: SigningKey::from_base64(KEY).unwrap(),
    };
    let extra = DelegationFields {
        correlation_id: Some("iss_01KB0000000000000000000000".into()),
        ..DelegationFields::default()
    };
    let ud = || {
        let token =
            sign_user_delegation(black_box(&sas), black_box(&extra), black_box(&udk)).unwrap();
        black_box(token.query());
    };
    let ud_sts_len = sign_user_delegation(&sas, &extra, &udk)
        .unwrap()
        .string_to_sign()
        .len();
    let ud_ns = measure(31, iters, ud);
    println!(
        "user delegation SAS with scid (incl. query string, {ud_sts_len}-byte string-to-sign): {ud_ns:>8.0} ns/op"
    );
}
