//! The SAS parser (`sasgate::sas::parse::parse`): any text, a URL or a bare query string.
//!
//! Properties of every SAS it accepts:
//! - it has `sig` and `sv`, and its kind follows AZURE-SAS.md §4 (`ss`/`srt` → account, else
//!   `skoid` → user delegation, else service);
//! - `public_params` never yields `sig`, and `Debug` never shows the signature;
//! - `signature_sha256` is 64 lowercase hex digits;
//! - re-encoding its parameters as a bare query string parses back to the same parameters;
//! - a virtual-host location names the account of its host;
//! - no signature verifies with a key that signed nothing (no forgery), and verifying never
//!   panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sasgate::sas::encode::encode_query_value;
use sasgate::sas::parse::{SasKind, parse};
use sasgate::secret::SigningKey;

/// A key no seed was signed with.
const UNUSED_KEY: &str =
    "ZnV6ei1vbmx5LWtleS10aGF0LXNpZ25lZC1ub3RoaW5nLWF0LWFsbC1ldmVyLTAxMjM0NTY3ODk=";

/// Text that `Debug` shows as it is: no escape sequence could spell a signature.
fn plain(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_graphic() || c == ' ') && !s.contains('\\')
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(sas) = parse(text) else {
        return;
    };

    let sig = sas.param("sig").expect("an accepted SAS has sig");
    assert!(sas.param("sv").is_some(), "an accepted SAS has sv");
    assert!(
        sas.public_params().all(|(k, _)| k != "sig"),
        "public_params yields sig"
    );

    let account_wide = sas.param("ss").is_some() || sas.param("srt").is_some();
    let want = if account_wide {
        SasKind::Account
    } else if sas.param("skoid").is_some() {
        SasKind::UserDelegation
    } else {
        SasKind::Service
    };
    assert_eq!(sas.kind(), want);

    let hash = sas
        .signature_sha256()
        .expect("a SAS with sig has a signature hash");
    assert_eq!(hash.len(), 64);
    assert!(
        hash.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );

    let shown = format!("{sas:?}");
    assert!(shown.contains("<redacted>"));
    if sig.len() >= 16
        && sig.bytes().all(|b| b.is_ascii_alphanumeric())
        && sig.bytes().any(|b| b.is_ascii_alphabetic())
        && sas.public_params().all(|(k, v)| plain(k) && plain(v))
        && !sas
            .public_params()
            .any(|(k, v)| k.contains(sig) || v.contains(sig))
        && !sas.location().is_some_and(|l| {
            let d = format!("{l:?}");
            d.contains(sig) || !plain(&d)
        })
    {
        assert!(!shown.contains(sig), "Debug shows the signature: {shown}");
    }

    // The accessors never panic, whatever the values.
    let _ = (sas.version(), sas.start(), sas.expiry(), sas.permissions());

    // Re-encoded as a bare query string, the SAS parses back to the same parameters.
    let mut query = String::new();
    for (k, v) in sas.public_params().chain([("sig", sig)]) {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(&encode_query_value(k));
        query.push('=');
        query.push_str(&encode_query_value(v));
    }
    let again = parse(&query).unwrap_or_else(|e| panic!("re-encoded {query:?} fails: {e}"));
    assert_eq!(again.kind(), sas.kind());
    assert_eq!(again.param("sig"), Some(sig));
    assert!(again.location().is_none());
    let a: Vec<_> = sas.public_params().collect();
    let b: Vec<_> = again.public_params().collect();
    assert_eq!(a, b, "parameters changed through re-encoding");

    if let Some(loc) = sas.location() {
        let labels: Vec<&str> = loc.host.split('.').collect();
        if !loc.path_style {
            assert!(labels.len() > 2 && matches!(labels[1], "blob" | "dfs"));
            assert_eq!(loc.account.as_deref(), Some(labels[0]));
        }
        assert!(loc.container.as_deref() != Some(""));
    }

    // Verification reads every field and must never accept a signature this key did not make.
    let key = SigningKey::from_base64(UNUSED_KEY).expect("the fuzz key is base64");
    assert!(
        sas.verify(&key).is_err(),
        "a signature verified with an unused key"
    );
    assert!(
        sas.verify_at(&key, Some("devstoreaccount1"), Some("data"), Some("a/b"))
            .is_err()
    );
});
