//! `sasgate config check`: the real binary on configurations written to a temporary directory.
//! The check never contacts Azure, Entra ID or the ledger, so no emulator or database is needed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

/// Azurite's well-known development key (public, documented by Microsoft).
const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const PG_PASSWORD: &str = "Pg-Pa55word-never-shown";
const CLIENT_SECRET: &str = "entra-client-secret-never-shown";
const TENANT: &str = "00000000-0000-0000-0000-0000000000aa";
const CLIENT: &str = "00000000-0000-0000-0000-0000000000bb";

const RULE_MODELS: &str = r#"
[[rule]]
id = "read-models"
principals = ["role:researcher"]
account = "acct1"
containers = ["models"]
scopes = ["blob"]
permissions = "r"
default_ttl = "15m"
max_ttl = "1h"
revocation = "expiry_only"
"#;

/// Writes `sasgate.toml` (server, ledger and policy sections, then `rest`) and the policy files
/// into `dir`, and returns the config path.
fn write_config(dir: &Path, ledger_url: &str, rest: &str, policy: &[(&str, &str)]) -> String {
    let policy_dir = dir.join("policy");
    std::fs::create_dir_all(&policy_dir).unwrap();
    for (name, text) in policy {
        std::fs::write(policy_dir.join(name), text).unwrap();
    }
    let config = dir.join("sasgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[ledger]\nurl = \"{ledger_url}\"\n[policy]\ndir = \"{}\"\n\n{rest}",
            policy_dir.display()
        ),
    )
    .unwrap();
    config.display().to_string()
}

/// An account signing with its key, read from a file; no `ca_file`.
fn keyed_account(dir: &Path) -> String {
    let key_file = dir.join("acct1.key");
    std::fs::write(&key_file, format!("{ACCOUNT_KEY}\n")).unwrap();
    format!(
        "[[accounts]]\nname = \"acct1\"\nkey_file = \"{}\"\n\n[principals.alice]\napi_key_sha256 = \"{}\"\nroles = [\"researcher\"]\n",
        key_file.display(),
        "ab".repeat(32)
    )
}

/// Runs `sasgate config check --config <config>` with only `env` in its environment.
fn check(config: &str, env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_sasgate"))
        .args(["config", "check", "--config", config])
        .current_dir(Path::new(config).parent().unwrap())
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        status.code(),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

#[test]
fn a_valid_configuration_passes_with_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger").join("sasgate.db");
    let config = write_config(
        dir.path(),
        &format!("sqlite://{}", ledger.display()),
        &format!(
            "[limits]\nmax_ttl = \"2h\"\nmint_rate_per_minute = 30\nmint_burst = 5\n{}",
            keyed_account(dir.path())
        ),
        &[("models.toml", RULE_MODELS)],
    );
    let (code, out, err) = check(&config, &[("SASGATE_SERVR__LISTEN", "127.0.0.1:1")]);
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    for line in [
        "accounts (1):",
        "  acct1: account key (service SAS); account key present; endpoint https://acct1.blob.core.windows.net/",
        "policy: 1 rules in 1 file(s) under",
        "models.toml: 1 rule(s)",
        "oidc issuers (0):",
        "principals: 1 with API keys (alice)",
        &format!(
            "ledger: sqlite, file {} (will be created, with its directory",
            ledger.display()
        ),
        "limits: max_ttl 2h, default_ttl 15m, start_backdate 15m, mint rate 30/min per principal (burst 5)",
        "warnings (1):",
        "SASGATE_SERVR__LISTEN configures nothing",
        "ok: `sasgate serve` would start",
    ] {
        assert!(out.contains(line), "{line:?} missing from:\n{out}");
    }
    assert!(!out.contains(ACCOUNT_KEY) && !err.contains(ACCOUNT_KEY));
    assert!(!ledger.exists(), "the check must not create the ledger");
    assert!(!ledger.parent().unwrap().exists());
}

#[test]
fn a_rule_on_an_unknown_account_fails_naming_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let stray = RULE_MODELS
        .replace("read-models", "read-elsewhere")
        .replace("\"acct1\"", "\"nosuchacct\"");
    let config = write_config(
        dir.path(),
        "sqlite://ledger.db",
        &keyed_account(dir.path()),
        &[("models.toml", RULE_MODELS), ("stray.toml", &stray)],
    );
    let (code, out, err) = check(&config, &[]);
    assert_eq!(code, Some(2), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("rule read-elsewhere: account 'nosuchacct' is not configured"),
        "{err}"
    );
    assert!(err.contains("FAILED"), "{err}");
    assert!(out.contains("policy: not loaded"), "{out}");
    assert!(!out.contains("ok:"), "{out}");
}

#[test]
fn every_problem_is_listed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let stray = RULE_MODELS.replace("\"acct1\"", "\"nosuchacct\"");
    let config = write_config(
        dir.path(),
        "sqlite://ledger.db",
        &format!(
            "{}\n[[auth.oidc]]\nname = \"ci\"\nissuer = \"https://ci.example\"\naudiences = [\"sasgate\"]\njwks_file = \"{}\"\n",
            keyed_account(dir.path()),
            dir.path().join("missing-jwks.json").display()
        ),
        &[("stray.toml", &stray)],
    );
    let (code, out, err) = check(&config, &[]);
    assert_eq!(code, Some(2), "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("nosuchacct"), "{err}");
    assert!(err.contains("missing-jwks.json"), "{err}");
    assert!(err.contains("FAILED: 2 problem(s)"), "{err}");
}

#[test]
fn an_invalid_configuration_exits_2_with_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "sqlite://ledger.db",
        "[limits]\nmax_ttl = \"30d\"\n[[accounts]]\nname = \"acct1\"\nkey_env = \"NOT_SET_ANYWHERE\"\nca_file = \"/nonexistent/ca.pem\"\n",
        &[("models.toml", RULE_MODELS)],
    );
    let (code, _out, err) = check(&config, &[]);
    assert_eq!(code, Some(2), "{err}");
    for key in [
        "limits.max_ttl",
        "accounts[0].key_env",
        "accounts[0].ca_file",
    ] {
        assert!(err.contains(key), "{key} missing from:\n{err}");
    }
}

#[test]
fn a_ledger_password_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "postgres://sasgate:{PG_PASSWORD}@db.internal:5432/ledger?sslrootcert=/etc/ssl/db-ca.pem&password={PG_PASSWORD}"
    );
    // In the file, and (the usual way) from SASGATE_LEDGER__URL_FILE.
    let config = write_config(
        dir.path(),
        &url,
        &keyed_account(dir.path()),
        &[("models.toml", RULE_MODELS)],
    );
    let url_file = dir.path().join("ledger-url");
    std::fs::write(&url_file, format!("{url}\n")).unwrap();
    for env in [
        vec![],
        vec![("SASGATE_LEDGER__URL_FILE", url_file.to_str().unwrap())],
        vec![("SASGATE_LEDGER__URL", url.as_str())],
    ] {
        let (code, out, err) = check(&config, &env);
        assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
        assert!(
            out.contains("ledger: postgres, host db.internal:5432, database ledger, user sasgate"),
            "{out}"
        );
        assert_eq!(
            out.contains("read it from a mounted secret with SASGATE_LEDGER__URL_FILE"),
            !env.iter().any(|(k, _)| k.ends_with("_FILE")),
            "{out}"
        );
        assert!(
            !out.contains(PG_PASSWORD) && !err.contains(PG_PASSWORD),
            "the password was printed:\n{out}\n{err}"
        );
    }
}

#[test]
fn a_keyless_account_cannot_carry_a_stored_access_policy_rule() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = format!(
        "[[accounts]]\nname = \"keyless1\"\n[accounts.entra]\ncredential = \"client_secret\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT}\"\nclient_secret_env = \"ENTRA_SECRET\"\n"
    );
    let rule = RULE_MODELS
        .replace("read-models", "bound-reports")
        .replace("\"acct1\"", "\"keyless1\"")
        .replace("expiry_only", "stored_access_policy");
    let config = write_config(
        dir.path(),
        "sqlite://ledger.db",
        &accounts,
        &[("reports.toml", &rule)],
    );
    let env = [("ENTRA_SECRET", CLIENT_SECRET)];
    let (code, out, err) = check(&config, &env);
    assert_eq!(code, Some(2), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("rule bound-reports: revocation = \"stored_access_policy\" needs the account key of 'keyless1'"),
        "{err}"
    );
    assert!(
        out.contains("keyless1: user delegation SAS (credential client_secret"),
        "{out}"
    );
    assert!(!out.contains(CLIENT_SECRET) && !err.contains(CLIENT_SECRET));

    // The same account with an expiry_only rule is fine, with a warning about the missing
    // emergency stop.
    let rule = rule.replace("stored_access_policy", "expiry_only");
    std::fs::write(dir.path().join("policy").join("reports.toml"), rule).unwrap();
    let (code, out, err) = check(&config, &env);
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("no entra.resource_id"), "{out}");
    assert!(!out.contains(CLIENT_SECRET) && !err.contains(CLIENT_SECRET));
}

#[test]
fn a_value_and_its_file_twin_together_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "sqlite://ledger.db",
        &keyed_account(dir.path()),
        &[("models.toml", RULE_MODELS)],
    );
    let url_file = dir.path().join("ledger-url");
    std::fs::write(
        &url_file,
        format!("postgres://sasgate:{PG_PASSWORD}@db.internal/ledger\n"),
    )
    .unwrap();
    let file = url_file.to_str().unwrap();
    // The image sets SASGATE_LEDGER__URL; a mounted SASGATE_LEDGER__URL_FILE beside it is
    // ambiguous and refused, naming both, never the password.
    let (code, out, err) = check(
        &config,
        &[
            (
                "SASGATE_LEDGER__URL",
                "sqlite:///var/lib/sasgate/sasgate.db",
            ),
            ("SASGATE_LEDGER__URL_FILE", file),
        ],
    );
    assert_eq!(code, Some(2), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("SASGATE_LEDGER__URL_FILE: SASGATE_LEDGER__URL is set too"),
        "{err}"
    );
    assert!(!out.contains(PG_PASSWORD) && !err.contains(PG_PASSWORD));
    // Emptying the image's variable lets the file through, with no warning.
    let (code, out, err) = check(
        &config,
        &[
            ("SASGATE_LEDGER__URL", ""),
            ("SASGATE_LEDGER__URL_FILE", file),
        ],
    );
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("ledger: postgres, host db.internal"), "{out}");
    assert!(out.contains("warnings: none"), "{out}");
    assert!(!out.contains(PG_PASSWORD) && !err.contains(PG_PASSWORD));
}
