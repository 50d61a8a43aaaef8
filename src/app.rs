//! Start-up and shutdown: [`Application::build`] validates everything and binds the listener
//! (port 0 picks a free port, see [`Application::local_addr`]); [`Application::run_until_stopped`]
//! serves until SIGTERM or Ctrl-C and drains the requests in flight. With `server.tls_cert_file`
//! the listener serves HTTPS and reloads its certificate while running ([`crate::tls`]).

use std::future::{Future, IntoFuture as _};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::api::{self, AppState, Inner};
use crate::azure::BlobServiceClient;
use crate::broker::{Broker, StoredPolicies};
use std::collections::BTreeMap;

use crate::auth::oidc::OidcVerifier;
use crate::auth::rate::RateLimiter;
use crate::azure::entra::EntraCredential;
use crate::broker::DelegationKeys;
use crate::config::{Account, Config};
use crate::ledger::Ledger;
use crate::ledger::RevocationMode;
use crate::ledger::sqlite::{SqliteLedger, SqliteOptions};
use crate::policy::{PolicyLimits, PolicySet};
use crate::tls::{Reloader, TaskGuard, TlsListener};

/// How often a replica looks for delegation-key emergency stops made by another replica.
pub const KEY_STOP_POLL: std::time::Duration = std::time::Duration::from_secs(5);

/// Why the server did not start. Messages name what to fix and carry no secret.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("policy in {dir}:\n{errors}")]
    Policy { dir: String, errors: String },
    #[error("account {0}")]
    Account(String),
    #[error("OIDC issuer: {0}")]
    Oidc(String),
    #[error("the ledger cannot be opened: {0}")]
    Ledger(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
}

/// The bound listener: plain HTTP, or HTTPS with its certificate reloader.
enum Bound {
    Plain(TcpListener),
    Tls {
        listener: TlsListener,
        /// Stops re-reading the certificate files when the server is done.
        _reload: TaskGuard,
    },
}

/// A built server, bound and ready to run.
pub struct Application {
    listener: Bound,
    router: axum::Router,
    grace: std::time::Duration,
    ledger: Arc<dyn Ledger>,
}

/// Loads and validates the policy directory exactly as the server does.
pub fn load_policy(config: &Config) -> Result<PolicySet, StartupError> {
    let limits = PolicyLimits {
        max_ttl: config.max_ttl,
        default_ttl: config.default_ttl,
    };
    let dir = config.policy_dir.display().to_string();
    let set = PolicySet::load_dir(&config.policy_dir, &limits).map_err(|errors| {
        StartupError::Policy {
            dir: dir.clone(),
            errors: errors
                .iter()
                .map(|e| format!("  - {e}"))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    })?;
    let unknown_accounts: Vec<String> = set
        .rules()
        .iter()
        .filter(|r| !config.accounts.contains_key(r.account()))
        .map(|r| {
            format!(
                "  - rule {}: account '{}' is not configured under [[accounts]]",
                r.id(),
                r.account()
            )
        })
        .collect();
    // Azure binds only a service SAS (signed with the account key) to a stored access policy.
    let keyless: Vec<String> = set
        .rules()
        .iter()
        .filter(|r| r.revocation() == RevocationMode::StoredAccessPolicy)
        .filter(|r| {
            config
                .accounts
                .get(r.account())
                .is_some_and(|a| a.key.is_none())
        })
        .map(|r| {
            format!(
                "  - rule {}: revocation = \"stored_access_policy\" needs the account key of '{}' (Azure binds only service SAS to a stored policy); use expiry_only or link_only on an account that signs with Entra ID",
                r.id(),
                r.account()
            )
        })
        .collect();
    // An oidc:<name> principal must name a configured issuer, or the rule could never match
    // (or worse, match a later-added issuer nobody meant).
    let unknown_issuers: Vec<String> = set
        .rules()
        .iter()
        .flat_map(|r| r.principals().iter().map(move |p| (r, p)))
        .filter_map(|(r, p)| match p {
            crate::policy::Principal::Oidc(name)
                if !config.oidc.iter().any(|i| i.name == *name) =>
            {
                Some(format!(
                    "  - rule {}: principal oidc:{name} names no [[auth.oidc]] issuer",
                    r.id()
                ))
            }
            _ => None,
        })
        .collect();
    let unknown_accounts: Vec<String> = unknown_accounts
        .into_iter()
        .chain(keyless)
        .chain(unknown_issuers)
        .collect();
    if !unknown_accounts.is_empty() {
        return Err(StartupError::Policy {
            dir,
            errors: unknown_accounts.join("\n"),
        });
    }
    Ok(set)
}

/// Opens the configured ledger (`sqlite://…` or `postgres://…`), running its migrations.
pub async fn open_ledger(config: &Config) -> Result<Arc<dyn Ledger>, StartupError> {
    let url = config.ledger_url.clone();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options = crate::ledger::postgres::PgOptions {
            max_denials: config.max_denials,
            ..Default::default()
        };
        return Ok(Arc::new(
            crate::ledger::postgres::PostgresLedger::open(&url, options)
                .await
                .map_err(|e| StartupError::Ledger(e.to_string()))?,
        ));
    }
    let options = SqliteOptions {
        max_denials: config.max_denials,
        ..SqliteOptions::default()
    };
    Ok(Arc::new(
        tokio::task::spawn_blocking(move || SqliteLedger::open(&url, options))
            .await
            .map_err(|e| StartupError::Ledger(e.to_string()))?
            .map_err(|e| StartupError::Ledger(e.to_string()))?,
    ))
}

/// One Blob service client per configured account.
pub fn clients(
    config: &Config,
) -> Result<std::collections::BTreeMap<String, BlobServiceClient>, StartupError> {
    config
        .accounts
        .iter()
        .map(|(name, a)| {
            client_for(a)
                .map(|c| (name.clone(), c))
                .map_err(|e| StartupError::Account(format!("{name}: {e}")))
        })
        .collect()
}

/// The Blob service client of an account: Shared Key if it has a key, bearer-only otherwise.
pub fn client_for(a: &Account) -> Result<BlobServiceClient, crate::azure::AzureError> {
    match &a.key {
        Some(key) => BlobServiceClient::new(
            a.name.as_str(),
            a.blob_endpoint.clone(),
            a.ca_file.as_deref(),
            key.clone(),
        ),
        None => BlobServiceClient::keyless(
            a.name.as_str(),
            a.blob_endpoint.clone(),
            a.ca_file.as_deref(),
        ),
    }
}

/// The user delegation keys of every account that signs with Entra ID.
pub fn delegation_keys(
    config: &Config,
    clients: &BTreeMap<String, BlobServiceClient>,
) -> Result<BTreeMap<String, Arc<DelegationKeys>>, StartupError> {
    let mut out = BTreeMap::new();
    for (name, a) in &config.accounts {
        let Some(d) = &a.delegation else { continue };
        let fail = |e: &dyn std::fmt::Display| StartupError::Account(format!("{name}: {e}"));
        let ca = match &d.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                StartupError::Account(format!(
                    "{name}: cannot read entra.ca_file {}: {}",
                    path.display(),
                    e.kind()
                ))
            })?),
            None => None,
        };
        let credential =
            EntraCredential::new(d.credential.clone(), d.authority.clone(), ca.as_deref())
                .map_err(|e| fail(&e))?;
        let client = clients
            .get(name)
            .cloned()
            .ok_or_else(|| StartupError::Account(format!("{name}: no Blob service client")))?;
        out.insert(
            name.clone(),
            Arc::new(DelegationKeys::new(
                name,
                client,
                Arc::new(credential),
                d.clone(),
                config.max_ttl,
                config.start_backdate,
            )),
        );
    }
    Ok(out)
}

impl Application {
    /// Opens the ledger, loads the policy and binds the listener.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let policy = Arc::new(load_policy(&config)?);
        let ledger = open_ledger(&config).await?;
        // The certificate is checked before the port is bound: a bad pair binds nothing.
        let tls = match &config.tls {
            Some(tls) => {
                Some(Reloader::start(tls.clone()).map_err(|e| StartupError::Tls(e.to_string()))?)
            }
            None => None,
        };
        let tcp = TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartupError::Bind {
                addr: config.listen,
                source,
            })?;
        let mut tls_store = None;
        let listener = match tls {
            None => Bound::Plain(tcp),
            Some(reloader) => {
                let store = reloader.store();
                tls_store = Some(store.clone());
                let served = store.current();
                let server_config = crate::tls::server_config(store).map_err(|e| {
                    StartupError::Tls(format!("cannot build the TLS configuration: {e}"))
                })?;
                let listener = TlsListener::new(tcp, server_config, crate::tls::HANDSHAKE_TIMEOUT)
                    .map_err(|source| StartupError::Bind {
                        addr: config.listen,
                        source,
                    })?;
                tracing::info!(
                    subject = served.subject(),
                    not_after = %served.not_after_text(),
                    fingerprint_sha256 = served.fingerprint(),
                    reload_interval_seconds = config.tls.as_ref().map_or(0, |t| t.reload_interval.as_secs()),
                    "serving HTTPS (TLS 1.2 and 1.3, ALPN h2 and http/1.1); the certificate files are re-read every interval and on SIGHUP"
                );
                if served.is_expired(chrono::Utc::now()) {
                    tracing::warn!(
                        not_after = %served.not_after_text(),
                        "the TLS certificate has expired; clients will refuse it until the files are renewed"
                    );
                }
                Bound::Tls {
                    listener,
                    _reload: crate::tls::spawn_reloader(reloader),
                }
            }
        };
        let oidc = Arc::new(
            OidcVerifier::new(config.oidc.clone(), chrono::Utc::now())
                .map_err(|e| StartupError::Oidc(e.to_string()))?,
        );
        {
            let oidc = oidc.clone();
            tokio::spawn(async move { oidc.prefetch(chrono::Utc::now()).await });
        }
        let clients = clients(&config)?;
        let delegation = delegation_keys(&config, &clients)?;
        // Obtain the first user delegation keys now rather than on the first mint; a failure is
        // logged and retried by the first mint that needs a key.
        for keys in delegation.values() {
            let keys = keys.clone();
            tokio::spawn(async move {
                let now = chrono::Utc::now();
                let _ = keys.key(now, now).await;
            });
        }
        // Another replica may run the delegation-key emergency stop: check the ledger for stops
        // every few seconds and drop a cached key obtained before one.
        if !delegation.is_empty() {
            let ledger = ledger.clone();
            let keys = delegation.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(KEY_STOP_POLL);
                loop {
                    tick.tick().await;
                    for (account, k) in &keys {
                        if let Ok(stops) = ledger.key_revocations(account).await
                            && let Some(latest) = stops.first()
                        {
                            k.forget_if_older_than(latest.at);
                        }
                    }
                }
            });
        }
        let state = AppState(Arc::new(Inner {
            broker: Broker {
                clients,
                accounts: config.accounts.clone(),
                policy,
                ledger: ledger.clone(),
                start_backdate: config.start_backdate,
                stored: StoredPolicies::new(config.policy_rotation),
                public_url: config.public_url.clone(),
                delegation: delegation.clone(),
                metrics: Arc::new(crate::metrics::Metrics::new()),
            },
            principals: config.principals.clone(),
            oidc: oidc.clone(),
            rate: RateLimiter::new(config.mint_rate),
            ledger: ledger.clone(),
            readiness: tokio::sync::Mutex::new(None),
            tls: tls_store,
        }));
        let router = api::router(state, config.request_timeout, config.max_body_bytes);
        Ok(Self {
            listener,
            router,
            grace: config.shutdown_grace,
            ledger,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.listener {
            Bound::Plain(l) => l.local_addr(),
            Bound::Tls { listener, .. } => axum::serve::Listener::local_addr(listener),
        }
    }

    /// True when the server answers HTTPS.
    pub fn serves_tls(&self) -> bool {
        matches!(self.listener, Bound::Tls { .. })
    }

    /// The ledger the server writes to.
    pub fn ledger(&self) -> Arc<dyn Ledger> {
        self.ledger.clone()
    }

    /// Serves until SIGTERM or Ctrl-C, then stops accepting and drains requests in flight for at
    /// most the configured grace period.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes, then drains as above.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            stop.await;
            tracing::info!("shutting down: draining requests in flight");
            let _ = stopped_tx.send(());
        };
        let app = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        // Two listener types, one serving loop each; the reload task lives as long as serving.
        let server: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> =
            match self.listener {
                Bound::Plain(listener) => Box::pin(
                    axum::serve(listener, app)
                        .with_graceful_shutdown(shutdown)
                        .into_future(),
                ),
                Bound::Tls {
                    listener,
                    _reload: reload,
                } => {
                    let serve = axum::serve(listener.with_connect_info(), app)
                        .with_graceful_shutdown(shutdown);
                    Box::pin(async move {
                        let result = serve.await;
                        drop(reload);
                        result
                    })
                }
            };
        let grace = self.grace;
        tokio::select! {
            result = server => result,
            () = async move {
                let _ = stopped_rx.await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(grace_seconds = grace.as_secs(), "grace period over; closing the remaining connections");
                Ok(())
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
