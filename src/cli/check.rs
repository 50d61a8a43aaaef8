//! `sasgate config check`: validates a deployment's configuration and policy as `sasgate serve`
//! does at start-up, without binding a port, opening the ledger or contacting Azure, and prints
//! a summary. Exit status 0 when `serve` would get past its checks, 2 with every problem listed
//! when not.
//!
//! What runs is the server's own code: [`Config::load`], [`load_policy`], the OIDC verifier
//! (which reads `jwks_file`s and `ca_file`s), the Blob service client of every account (which
//! reads its `ca_file`), the Entra credential of every keyless account and the TLS certificate
//! and key check ([`crate::tls::load`]). What does not run:
//! opening the ledger (connection, TLS, migrations: `sasgate ledger verify` does that), fetching
//! JWKS URLs, and asking Entra ID or Azure Storage for anything.
//!
//! Nothing secret is printed: account keys and client secrets are never read back out of the
//! configuration, and URLs are shown without their password or query.

use std::path::Path;
use std::process::ExitCode;

use crate::app::{clients, delegation_keys, load_policy};
use crate::auth::oidc::{JwksSource, OidcVerifier};
use crate::azure::entra::CredentialKind;
use crate::config::{Account, Config, DEFAULT_CONFIG_FILE};
use crate::ledger::SigningMode;
use crate::policy::{PolicySet, format_duration};

/// Runs the check and prints the summary (stdout) and the problems (stderr).
pub async fn config_check(config_path: Option<&Path>) -> ExitCode {
    let shown_path = config_path
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| format!("{DEFAULT_CONFIG_FILE} (default)"));
    println!("config: {shown_path}");
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!(
                "FAILED: {} configuration problem(s); the policy is checked once the configuration loads",
                e.0.len()
            );
            return ExitCode::from(2);
        }
    };

    let mut errors: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = config.warnings.clone();

    let policy = match load_policy(&config) {
        Ok(set) => Some(set),
        Err(e) => {
            errors.push(e.to_string());
            None
        }
    };
    if let Err(e) = OidcVerifier::new(config.oidc.clone(), chrono::Utc::now()) {
        errors.push(format!("OIDC issuer: {e}"));
    }
    match clients(&config) {
        Ok(clients) => {
            if let Err(e) = delegation_keys(&config, &clients) {
                errors.push(e.to_string());
            }
        }
        Err(e) => errors.push(e.to_string()),
    }
    let ledger = describe_ledger(&config.ledger_url);
    match &ledger {
        Ok((_, Some(w))) => warnings.push(w.clone()),
        Ok(_) => {}
        Err(e) => errors.push(e.clone()),
    }
    warnings.extend(check_warnings(&config));
    // Config::load has checked the pair already; loading it again describes it for the summary.
    let tls = config.tls.as_ref().map(crate::tls::load);
    match &tls {
        Some(Err(e)) => errors.push(format!("{}: {e}", e.config_key())),
        Some(Ok(c)) if c.is_expired(chrono::Utc::now()) => warnings.push(format!(
            "server.tls_cert_file: the certificate expired at {}; clients refuse it until it is renewed",
            c.not_after_text()
        )),
        _ => {}
    }

    print_summary(&config, policy.as_ref(), ledger.as_ref().ok().map(|l| &l.0));
    print_tls(&config, tls.as_ref().and_then(|t| t.as_ref().ok()));
    if warnings.is_empty() {
        println!("warnings: none");
    } else {
        println!("warnings ({}):", warnings.len());
        for w in &warnings {
            println!("  - {w}");
        }
    }
    if errors.is_empty() {
        println!(
            "ok: `sasgate serve` would start with this configuration (not checked here: binding the listen address, reaching the ledger, JWKS URLs, Entra ID and Azure Storage)"
        );
        ExitCode::SUCCESS
    } else {
        for e in &errors {
            eprintln!("error: {e}");
        }
        eprintln!(
            "FAILED: {} problem(s); `sasgate serve` would refuse to start",
            errors.len()
        );
        ExitCode::from(2)
    }
}

fn print_summary(config: &Config, policy: Option<&PolicySet>, ledger: Option<&String>) {
    println!(
        "server: listen {}{}, public_url {}",
        config.listen,
        if config.tls.is_some() || config.listen.ip().is_loopback() {
            ""
        } else {
            " (plain HTTP beyond loopback: a TLS-terminating proxy must be in front)"
        },
        redact_url(config.public_url.as_str())
    );
    println!("accounts ({}):", config.accounts.len());
    for (name, a) in &config.accounts {
        println!(
            "  {name}: {}; endpoint {}",
            signing_mode(a),
            redact_url(a.blob_endpoint.as_str())
        );
    }
    match policy {
        Some(set) => {
            let mut per_file: std::collections::BTreeMap<&str, usize> = Default::default();
            for r in set.rules() {
                *per_file.entry(r.file()).or_default() += 1;
            }
            println!(
                "policy: {} rules in {} file(s) under {}",
                set.len(),
                per_file.len(),
                config.policy_dir.display()
            );
            for (file, n) in per_file {
                println!("  {file}: {n} rule(s)");
            }
        }
        None => println!(
            "policy: not loaded from {} (errors below)",
            config.policy_dir.display()
        ),
    }
    println!("oidc issuers ({}):", config.oidc.len());
    for i in &config.oidc {
        let keys = match &i.jwks {
            JwksSource::Url(u) => format!("jwks_url {}", redact_url(u.as_str())),
            JwksSource::File(p) => format!("jwks_file {}", p.display()),
        };
        println!("  {}: issuer {}, {keys}", i.name, i.issuer);
    }
    println!(
        "principals: {} with API keys{}",
        config.principals.len(),
        if config.principals.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                config
                    .principals
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    match ledger {
        Some(l) => println!("ledger: {l}"),
        None => println!("ledger: unusable URL (errors below)"),
    }
    println!(
        "limits: max_ttl {}, default_ttl {}, start_backdate {}, mint rate {}/min per principal (burst {})",
        format_duration(config.max_ttl),
        format_duration(config.default_ttl),
        format_duration(config.start_backdate),
        config.mint_rate.per_minute,
        config.mint_rate.burst
    );
}

/// Whether sasgate serves HTTPS, and which certificate: subject, expiry, fingerprint (no key).
fn print_tls(config: &Config, loaded: Option<&crate::tls::LoadedCertificate>) {
    match (&config.tls, loaded) {
        (None, _) => println!(
            "tls: off (plain HTTP{})",
            if config.listen.ip().is_loopback() {
                " on loopback"
            } else {
                ", allowed by server.allow_insecure_http"
            }
        ),
        (Some(t), Some(c)) => println!(
            "tls: on, certificate {} (chain of {}), not after {}, sha256 fingerprint {}; files {} and {}, re-read every {} and on SIGHUP",
            c.subject(),
            c.chain_len(),
            c.not_after_text(),
            c.fingerprint(),
            t.cert_file.display(),
            t.key_file.display(),
            crate::policy::format_duration(
                chrono::Duration::from_std(t.reload_interval).unwrap_or(chrono::Duration::zero())
            ),
        ),
        (Some(_), None) => {
            println!("tls: on, but the certificate or key is unusable (errors below)")
        }
    }
}

/// How an account signs, with the kind of Entra credential and never its secret.
fn signing_mode(a: &Account) -> String {
    let key = if a.key.is_some() {
        "account key present"
    } else {
        "no account key"
    };
    match (&a.signing, &a.delegation) {
        (SigningMode::UserDelegation, Some(d)) => {
            let credential = match &d.credential {
                CredentialKind::ManagedIdentity {
                    client_id: None, ..
                } => "managed_identity (system-assigned)".to_owned(),
                other => other.name().to_owned(),
            };
            format!(
                "user delegation SAS (credential {credential}, key lifetime {}, emergency stop {}); {key}",
                format_duration(d.key_lifetime),
                if d.resource_id.is_some() {
                    "configured"
                } else {
                    "NOT configured (no resource_id)"
                }
            )
        }
        _ => format!("account key (service SAS); {key}"),
    }
}

/// A description of the ledger for the summary, and perhaps a warning; an error for a URL the
/// server cannot use. Passwords (in the user info or a `password=` parameter) are never shown.
fn describe_ledger(url: &str) -> Result<(String, Option<String>), String> {
    let url = url.trim();
    if let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    {
        let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, database) = base.split_once('/').unwrap_or((base, ""));
        let (user, hosts) = match authority.rsplit_once('@') {
            // Only the user name: whatever follows ':' is the password.
            Some((userinfo, hosts)) => (userinfo.split(':').next().unwrap_or(""), hosts),
            None => ("", authority),
        };
        let param = |name: &str| {
            query
                .split('&')
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v)
        };
        let mut text = format!(
            "postgres, host {}",
            if hosts.is_empty() {
                param("host").unwrap_or("(libpq default)")
            } else {
                hosts
            }
        );
        for (label, value) in [
            ("database", Some(database).filter(|d| !d.is_empty())),
            (
                "user",
                Some(user).filter(|u| !u.is_empty()).or(param("user")),
            ),
            ("schema", param("schema")),
            ("sslmode", param("sslmode")),
            ("sslrootcert", param("sslrootcert")),
        ] {
            if let Some(v) = value {
                text.push_str(&format!(", {label} {v}"));
            }
        }
        text.push_str(" (not connected: TLS, credentials and migrations are checked when `serve` or `sasgate ledger verify` opens it)");
        let has_password = authority
            .rsplit_once('@')
            .is_some_and(|(u, _)| u.contains(':'))
            || param("password").is_some();
        let from_file = std::env::var_os("SASGATE_LEDGER__URL_FILE").is_some();
        let warning = (has_password && !from_file).then(|| {
            "ledger.url carries a password in the configuration file or the environment; read it from a mounted secret with SASGATE_LEDGER__URL_FILE instead".to_owned()
        });
        return Ok((text, warning));
    }
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = Path::new(rest.strip_prefix("//").unwrap_or(rest));
        let state = if path.is_file() {
            "exists".to_owned()
        } else {
            match path.parent().filter(|p| !p.as_os_str().is_empty()) {
                Some(dir) if !dir.is_dir() => {
                    format!("will be created, with its directory {}", dir.display())
                }
                _ => "will be created".to_owned(),
            }
        };
        return Ok((format!("sqlite, file {} ({state})", path.display()), None));
    }
    Err(
        "ledger.url: must be a sqlite:// URL (for example sqlite://data/sasgate.db) or a postgres:// URL"
            .into(),
    )
}

/// Problems `serve` does not refuse but an operator should hear about.
fn check_warnings(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for (name, a) in &config.accounts {
        if let Some(d) = &a.delegation {
            if d.resource_id.is_none() {
                out.push(format!(
                    "account {name}: no entra.resource_id, so `sasgate emergency revoke-delegation-keys` cannot run for it"
                ));
            }
            if let CredentialKind::WorkloadIdentity { token_file, .. } = &d.credential
                && !token_file.exists()
            {
                out.push(format!(
                    "account {name}: the federated token file {} does not exist (yet); it is read on every token request",
                    token_file.display()
                ));
            }
        }
    }
    out
}

/// `url` without a password in its user info, a query or a fragment (which may hold a secret).
/// Text that does not parse as a URL is shown as `(unparsable URL)`.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(None);
            }
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "(unparsable URL)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_are_described_without_a_password() {
        for url in [
            "postgres://sasgate:hunter2@db.internal:5432/sasgate?sslrootcert=/ca.pem",
            "postgresql://sasgate@db.internal/sasgate?password=hunter2&schema=sg",
            "postgres://u:hunter2@h1:5432,h2:5433/db",
        ] {
            let (text, warning) = describe_ledger(url).unwrap_or_default();
            assert!(text.starts_with("postgres, host "), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
            assert!(warning.is_none_or(|w| !w.contains("hunter2")), "{url}");
        }
        let (text, warning) =
            describe_ledger("postgres://sasgate@127.0.0.1/db").unwrap_or_default();
        assert!(
            text.contains("host 127.0.0.1, database db, user sasgate"),
            "{text}"
        );
        assert!(warning.is_none());
    }

    #[test]
    fn sqlite_urls_name_the_file() {
        let (text, _) = describe_ledger("sqlite:///var/lib/sasgate/x.db").unwrap_or_default();
        assert!(
            text.starts_with("sqlite, file /var/lib/sasgate/x.db"),
            "{text}"
        );
        let (text, _) = describe_ledger("sqlite://data/x.db").unwrap_or_default();
        assert!(text.starts_with("sqlite, file data/x.db"), "{text}");
        assert!(describe_ledger("mysql://x").is_err());
    }

    #[test]
    fn urls_lose_their_password_and_query() {
        assert_eq!(
            redact_url("https://u:hunter2@example.org/a?sig=abc#f"),
            "https://u@example.org/a"
        );
        assert_eq!(redact_url("not a url"), "(unparsable URL)");
    }
}
