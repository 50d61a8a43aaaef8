//! `sasgate serve`, `keygen`, `policy check` and `policy explain`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::app::{Application, load_policy};
use crate::config::Config;

fn load_config(path: Option<&Path>) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

/// `sasgate healthcheck`: GET /healthz on the server this configuration describes, over
/// loopback when it listens on every address. Over TLS the certificate is not verified: the
/// probe sends no credential and reads only the status, and the certificate names the public
/// host, not 127.0.0.1.
///
/// Only `server.listen` and whether `server.tls_cert_file` is set are read
/// ([`crate::config::ProbeTarget`]): the probe validates nothing else and reads neither secrets
/// nor the certificate pair, so a configuration that went bad after start-up (a broken renewal
/// on disk while the old certificate is still served) does not fail a server that works. No
/// proxy is used (`HTTPS_PROXY` and the like are ignored): the target is this machine. Exit 0 on
/// 200, 1 on anything else, a configuration it cannot read included.
pub async fn healthcheck(config_path: Option<&Path>) -> ExitCode {
    let target = match crate::config::ProbeTarget::load(config_path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("unhealthy: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut addr = target.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let scheme = if target.tls { "https" } else { "http" };
    let url = format!("{scheme}://{addr}/healthz");
    let client = match reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .no_proxy()
        .timeout(std::time::Duration::from_secs(4))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("unhealthy: cannot build an HTTP client: {e}");
            return ExitCode::FAILURE;
        }
    };
    match client.get(&url).send().await {
        Ok(r) if r.status() == reqwest::StatusCode::OK => {
            println!("healthy: {url} answered 200");
            ExitCode::SUCCESS
        }
        Ok(r) => {
            eprintln!("unhealthy: {url} answered {}", r.status());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: {url}: {}", crate::azure::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

pub async fn serve(config_path: Option<PathBuf>) -> ExitCode {
    let config = match load_config(config_path.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    crate::telemetry::init(config.log_format, &config.log_level);
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let app = match Application::build(config).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match app.local_addr() {
        Ok(addr) => tracing::info!(%addr, "sasgate listening"),
        Err(e) => tracing::warn!("cannot read the bound address: {e}"),
    }
    match app.run_until_stopped().await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("server error: {e}");
            ExitCode::from(1)
        }
    }
}

pub fn keygen() -> ExitCode {
    match crate::auth::generate_api_key() {
        Ok(k) => {
            println!("api key (give to the principal, shown once): {}", k.key);
            println!(
                "api_key_sha256 (put in config):            {}",
                k.sha256_hex
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: no randomness available: {e}");
            ExitCode::from(1)
        }
    }
}

pub fn policy_check(config_path: Option<&Path>) -> ExitCode {
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match load_policy(&config) {
        Ok(set) => {
            println!(
                "ok: {} rules in {}",
                set.rules().len(),
                config.policy_dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// `sasgate policy explain`: the decision and, rule by rule, where each one stopped.
pub fn policy_explain(
    config_path: Option<&Path>,
    principal: &str,
    body: &serde_json::Value,
) -> ExitCode {
    use crate::broker::{FromJson as _, MintRequest};
    use crate::policy::{Decision, Subject};
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let set = match load_policy(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let Some(p) = config.principals.iter().find(|p| p.name == principal) else {
        eprintln!("error: no principal '{principal}' in the configuration");
        return ExitCode::from(2);
    };
    let req = match MintRequest::from_json(body) {
        Ok(r) => r,
        Err(e) => {
            println!("refused before policy ({}): {e}", e.code());
            return ExitCode::from(1);
        }
    };
    let subject = Subject {
        name: p.name.clone(),
        roles: p.roles.clone(),
        oidc: None,
    };
    let explanation = set.explain(&subject, &req);
    for r in &explanation.rules {
        println!(
            "  {:<32} {:<10} {}",
            r.rule_id,
            format!("{:?}", r.stage).to_lowercase(),
            r.reason
        );
    }
    match explanation.decision {
        Decision::Allow(g) => {
            println!(
                "ALLOW by rule {}: permissions {}, ttl {}s, revocation {}",
                g.rule_id,
                g.permissions,
                g.ttl.num_seconds(),
                g.revocation.as_str()
            );
            ExitCode::SUCCESS
        }
        Decision::Deny(d) => {
            println!("DENY {}: {}", d.code.as_str(), d.message);
            ExitCode::from(1)
        }
    }
}

/// `sasgate dev seed`: creates the containers and a demo blob the shipped policies name, on
/// every configured account whose endpoint is on this machine (an emulator). Never touches a
/// remote account.
pub async fn dev_seed(config_path: Option<&Path>) -> ExitCode {
    use crate::sas::name::{BlobName, ContainerName};
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut seeded = 0;
    for account in config.accounts.values() {
        if !crate::config::is_loopback(&account.blob_endpoint) {
            println!("skipping {}: not a local emulator", account.name);
            continue;
        }
        if account.key.is_none() {
            println!(
                "skipping {}: no account key to write the sample blobs with",
                account.name
            );
            continue;
        }
        let client = match crate::app::client_for(account) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        let blobs = [
            ("models", "published/hello-model.txt", "a published model\n"),
            ("datasets", "survey.csv", "question,answer\nq1,42\n"),
            ("ci-build", "README.txt", "CI artifacts land here\n"),
            ("reports", "q1.txt", "an internal report\n"),
            (
                "shared",
                "paper.txt",
                "a paper to share through a broker link\n",
            ),
        ];
        for (c, b, body) in blobs {
            let (Ok(c), Ok(b)) = (ContainerName::parse(c), BlobName::parse(b)) else {
                continue;
            };
            if let Err(e) = client.create_container(&c).await {
                eprintln!("error: creating {c} on {}: {e}", account.name);
                return ExitCode::from(1);
            }
            if let Err(e) = client
                .put_blob(&c, &b, body.as_bytes().to_vec(), "text/plain")
                .await
            {
                eprintln!("error: writing {c}/{b} on {}: {e}", account.name);
                return ExitCode::from(1);
            }
            seeded += 1;
        }
        println!(
            "seeded {}: models/published/hello-model.txt, datasets/survey.csv, ci-build/README.txt",
            account.name
        );
    }
    if seeded == 0 {
        println!("nothing seeded: no local emulator account in the configuration");
    }
    ExitCode::SUCCESS
}

/// Export formats of `sasgate ledger export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line: seq, kind, subject, at, event (the payload, whose canonical
    /// form is exactly what was hashed), prev_hash, hash.
    Jsonl,
}

async fn ledger_of(
    config_path: Option<&Path>,
) -> Result<std::sync::Arc<dyn crate::ledger::Ledger>, ExitCode> {
    let config = load_config(config_path)?;
    crate::app::open_ledger(&config).await.map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

pub async fn ledger_verify(config_path: Option<&Path>, json: bool, anchors: &[String]) -> ExitCode {
    use crate::ledger::chain::{BadRecord, hex};
    let mut parsed = Vec::new();
    for a in anchors {
        match a
            .split_once(':')
            .and_then(|(s, h)| Some((s.parse::<u64>().ok()?, h)))
        {
            Some((seq, hash)) if seq > 0 && hash.len() == 64 => {
                parsed.push((seq, hash.to_ascii_lowercase()))
            }
            _ => {
                eprintln!(
                    "error: an anchor is <seq>:<64 hex characters>, as `sasgate ledger head` prints"
                );
                return ExitCode::from(2);
            }
        }
    }
    let ledger = match ledger_of(config_path).await {
        Ok(l) => l,
        Err(code) => return code,
    };
    let mut report = match ledger.verify().await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for (seq, hash) in parsed {
        if report.first_bad.is_some() {
            break;
        }
        let found = match ledger.chain_entries(seq - 1, 1).await {
            Ok(page) => page.into_iter().next().filter(|e| e.seq == seq),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let problem = match found {
            None => Some("the anchored entry is gone (the chain was cut short)"),
            Some(e) if hex(&e.hash) != hash => {
                Some("its hash differs from the anchor (the chain was rewritten up to here)")
            }
            Some(_) => None,
        };
        if let Some(problem) = problem {
            report.first_bad = Some(BadRecord {
                table: "chain",
                record: seq.to_string(),
                problem: problem.into(),
            });
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else if let Some(bad) = &report.first_bad {
        println!(
            "FAILED: {} record {}: {} ({} chain entries checked before it)",
            bad.table, bad.record, bad.problem, report.entries
        );
    } else {
        println!(
            "ok: {} chain entries, {} issuances agree with them; head {}",
            report.entries, report.issuances, report.head
        );
    }
    if report.first_bad.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

pub async fn ledger_export(
    config_path: Option<&Path>,
    format: ExportFormat,
    after: u64,
) -> ExitCode {
    use std::io::Write as _;
    let ExportFormat::Jsonl = format;
    let ledger = match ledger_of(config_path).await {
        Ok(l) => l,
        Err(code) => return code,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut after = after;
    loop {
        let page = match ledger.chain_entries(after, 5_000).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            let event: serde_json::Value =
                serde_json::from_str(&e.payload).unwrap_or(serde_json::Value::Null);
            let line = serde_json::json!({
                "seq": e.seq,
                "kind": e.kind,
                "subject": e.subject,
                "at": crate::ledger::chain::time(e.at),
                "event": event,
                "prev_hash": crate::ledger::chain::hex(&e.prev_hash),
                "hash": crate::ledger::chain::hex(&e.hash),
            });
            if writeln!(out, "{line}").is_err() {
                // The reader went away (e.g. `| head`).
                return ExitCode::SUCCESS;
            }
        }
    }
    if out.flush().is_err() {
        return ExitCode::SUCCESS;
    }
    ExitCode::SUCCESS
}

pub async fn ledger_head(config_path: Option<&Path>) -> ExitCode {
    let ledger = match ledger_of(config_path).await {
        Ok(l) => l,
        Err(code) => return code,
    };
    match ledger.chain_head().await {
        Ok(head) => {
            println!("{}", head.text());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
