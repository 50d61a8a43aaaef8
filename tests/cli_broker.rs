//! The command line around the broker: keygen, policy check and explain, and the client
//! commands against a running server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Output;

use common::app::{MODEL, spawn_app, write_setup};
use common::azurite::{Azurite, Tls};

async fn sasgate(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sasgate"));
    cmd.args(args)
        .env_remove("SASGATE_TOKEN")
        .env_remove("SASGATE_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.unwrap()
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn keygen_prints_a_key_and_its_hash() {
    let o = sasgate(&["keygen"], &[]).await;
    assert!(o.status.success());
    let text = out(&o);
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("api key (give to the principal, shown once): "))
        .unwrap();
    let hash = text
        .lines()
        .find_map(|l| l.strip_prefix("api_key_sha256 (put in config):            "))
        .unwrap();
    assert!(key.starts_with("sgk_"));
    assert_eq!(sasgate::sas::sign::hex_sha256(key.as_bytes()), hash);
}

#[tokio::test]
async fn policy_check_and_explain_load_what_the_server_loads() {
    let azurite = Azurite::start(Tls::Https).await;
    let setup = write_setup(&azurite, None);
    let config = setup.config.to_str().unwrap();
    let o = sasgate(&["policy", "check", "--config", config], &[]).await;
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("ok: 10 rules"), "{}", out(&o));

    let o = sasgate(
        &[
            "policy",
            "explain",
            "--config",
            config,
            "--principal",
            "alice",
            "--account",
            "devstoreaccount1",
            "--container",
            "models",
            "--blob",
            "published/m.bin",
            "--ttl",
            "7d",
        ],
        &[],
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    let text = out(&o);
    assert!(
        text.contains("DENY ttl_exceeds_policy") && text.contains("researchers-read-models"),
        "{text}"
    );
    let o = sasgate(
        &[
            "policy",
            "explain",
            "--config",
            config,
            "--principal",
            "alice",
            "--account",
            "devstoreaccount1",
            "--container",
            "models",
            "--blob",
            "published/m.bin",
        ],
        &[],
    )
    .await;
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        out(&o).contains("ALLOW by rule researchers-read-models"),
        "{}",
        out(&o)
    );

    // A broken policy file fails the check with the file, rule and field named.
    std::fs::write(setup.dir.path().join("policy/broken.toml"), "[[rule]]\nid = \"researchers-read-models\"\nprincipals = [\"role:x\"]\naccount = \"devstoreaccount1\"\ncontainers = [\"*\"]\npermissions = \"r\"\nmax_ttl = \"30d\"\n").unwrap();
    let o = sasgate(&["policy", "check", "--config", config], &[]).await;
    assert_eq!(o.status.code(), Some(1));
    let text = out(&o);
    assert!(
        text.contains("broken.toml") && text.contains("max_ttl") && text.contains("containers"),
        "{text}"
    );
}

#[tokio::test]
async fn mint_and_issuances_through_the_cli() {
    let app = spawn_app().await;
    let env = [
        ("SASGATE_URL", app.address.as_str()),
        ("SASGATE_TOKEN", app.alice.as_str()),
    ];
    let o = sasgate(
        &[
            "mint",
            "--account",
            "devstoreaccount1",
            "--container",
            "models",
            "--blob",
            "published/model.bin",
            "--ttl",
            "10m",
        ],
        &env,
    )
    .await;
    assert!(o.status.success(), "{}", out(&o));
    let url = String::from_utf8(o.stdout).unwrap().trim().to_owned();
    assert_eq!(app.download(&url).await, (200, MODEL.to_vec()));

    let o = sasgate(
        &[
            "mint",
            "--account",
            "devstoreaccount1",
            "--container",
            "models",
            "--blob",
            "published/model.bin",
            "--output",
            "env",
        ],
        &env,
    )
    .await;
    let text = out(&o);
    assert!(
        text.contains("export AZURE_STORAGE_SAS_TOKEN='sv=")
            && text.contains("export SASGATE_ISSUANCE_ID='iss_"),
        "{text}"
    );

    // A refusal prints the problem and exits non-zero.
    let o = sasgate(
        &[
            "mint",
            "--account",
            "devstoreaccount1",
            "--container",
            "models",
            "--blob",
            "published/model.bin",
            "--ttl",
            "7d",
        ],
        &env,
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    let text = out(&o);
    assert!(
        text.contains("ttl_exceeds_policy") && text.contains("1h") && text.contains("HTTP 403"),
        "{text}"
    );

    // Admins list and show.
    let admin = [
        ("SASGATE_URL", app.address.as_str()),
        ("SASGATE_TOKEN", app.admin.as_str()),
    ];
    let o = sasgate(&["issuances", "list", "--principal", "user:alice"], &admin).await;
    assert!(o.status.success(), "{}", out(&o));
    let text = out(&o);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("iss_")).count(),
        2,
        "{text}"
    );
    let id = text
        .lines()
        .find(|l| l.starts_with("iss_"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let o = sasgate(&["issuances", "show", &id], &admin).await;
    assert!(
        out(&o).contains("\"rule\": \"researchers-read-models\""),
        "{}",
        out(&o)
    );
    // alice may not list.
    let o = sasgate(&["issuances", "list"], &env).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).contains("forbidden"));
    // Without a token the client says what to set.
    let o = sasgate(
        &["issuances", "list"],
        &[("SASGATE_URL", app.address.as_str())],
    )
    .await;
    assert!(out(&o).contains("SASGATE_TOKEN"), "{}", out(&o));
}
