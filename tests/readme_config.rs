//! README.md's configuration reference is kept true to the code: every key the configuration
//! accepts has a row, and every row names a key that exists. The keys are read from the config
//! types themselves (serialised, `None` fields included), not from a list kept by hand.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use sasgate::config::{AuthSection, EntraSection, RawConfig};
use serde_json::{Value, json};

/// `prefix.key` for every key of a serialised table; nested tables are walked, arrays of
/// tables and maps are left to the caller.
fn keys(prefix: &str, value: &Value, out: &mut BTreeSet<String>) {
    let Value::Object(map) = value else { return };
    for (k, v) in map {
        let path = format!("{prefix}.{k}");
        match v {
            Value::Object(_) => keys(&path, v, out),
            _ => {
                out.insert(path);
            }
        }
    }
}

fn code_keys() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let defaults = serde_json::to_value(RawConfig::default()).unwrap();
    for (section, table) in defaults.as_object().unwrap() {
        match section.as_str() {
            // Arrays of tables and the principals map: walked from full examples below.
            "accounts" | "principals" | "auth" => {}
            _ => keys(section, table, &mut out),
        }
    }
    let account: sasgate::config::AccountSection =
        serde_json::from_value(json!({"name": "x"})).unwrap();
    let mut account = serde_json::to_value(account).unwrap();
    // `entra` is a table of its own, walked below.
    account.as_object_mut().unwrap().remove("entra");
    keys("accounts", &account, &mut out);
    let entra: EntraSection =
        serde_json::from_value(json!({"credential": "client_secret"})).unwrap();
    keys(
        "accounts.entra",
        &serde_json::to_value(entra).unwrap(),
        &mut out,
    );
    let auth: AuthSection =
        serde_json::from_value(json!({"oidc": [{"name": "x", "issuer": "https://x"}]})).unwrap();
    let auth = serde_json::to_value(auth).unwrap();
    keys("auth.oidc", &auth["oidc"][0], &mut out);
    let principal: sasgate::config::PrincipalSection =
        serde_json::from_value(json!({"api_key_sha256": ""})).unwrap();
    keys(
        "principals.NAME",
        &serde_json::to_value(principal).unwrap(),
        &mut out,
    );
    out
}

/// The first-column keys of the tables under README's "### Configuration reference".
fn readme_keys() -> BTreeSet<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("### Configuration reference")
        .expect("README.md has a \"### Configuration reference\" section");
    let rest = &readme[start + 4..];
    let end = [rest.find("\n### "), rest.find("\n## ")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(rest.len());
    let section = &rest[..end];
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(k, _)| k.to_owned()))
        .collect()
}

#[test]
fn the_readme_configuration_reference_lists_every_key_and_only_real_keys() {
    let code = code_keys();
    let readme = readme_keys();
    assert!(code.len() > 40, "{code:?}");
    let missing: Vec<_> = code.difference(&readme).collect();
    let stale: Vec<_> = readme.difference(&code).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "README.md configuration reference:\n  keys without a row: {missing:?}\n  rows naming no key: {stale:?}"
    );
}
