//! Start-up and shutdown: [`Application::build`] validates everything and binds the listener
//! (port 0 picks a free port, see [`Application::local_addr`]); [`Application::run_until_stopped`]
//! serves until SIGTERM or Ctrl-C and drains the requests in flight. With `server.tls_cert_file`
//! the listener serves HTTPS and reloads its certificate while running ([`crate::tls`]).
//!
//! **Serving.** sasgate runs its own accept-and-serve loop (`serve`) over hyper-util rather than
//! `axum::serve`, for plain HTTP and HTTPS alike, because `axum::serve` gives hyper no timer (so
//! hyper's header-read timeout never applies) and bounds neither idle connections nor their
//! number. Every connection is bounded in time, and the connections in number ([`ServeLimits`]):
//!
//! - **Request headers** must arrive within [`HEADER_READ_TIMEOUT`] (hyper's HTTP/1
//!   `header_read_timeout`, with a tokio timer). hyper 1.x starts that timer whenever it starts
//!   reading a request head: when the connection opens, and again each time a keep-alive
//!   connection goes idle after a response. So an idle HTTP/1 keep-alive connection is also
//!   closed once the timeout passes without a new request (tests/tls.rs checks both). hyper
//!   closes the connection without an answer. `server.request_timeout` starts only once the
//!   headers are in; the two together bound a request.
//! - **Idle connections**: a connection with no request in progress is closed after
//!   [`IDLE_TIMEOUT`], and one that has not started its first request after
//!   [`HEADER_READ_TIMEOUT`]. A request is in progress from its headers until its handler has
//!   answered (a handler is bounded by `server.request_timeout`); writing out the answer then
//!   counts as idle, so a response has [`IDLE_TIMEOUT`] to reach a client (sasgate's answers are
//!   small and none is streamed). This covers what the HTTP/1 timer does not: the first bytes
//!   (hyper-util reads them to tell HTTP/1 from HTTP/2 before either protocol's timers run), an
//!   HTTP/2 connection (whose client answers keep-alive pings, so pings alone never close it),
//!   and a client that stops reading its response.
//! - **HTTP/2**: a ping every [`H2_KEEP_ALIVE_INTERVAL`], the connection closed when one is not
//!   answered within [`H2_KEEP_ALIVE_TIMEOUT`]; at most [`H2_MAX_CONCURRENT_STREAMS`] requests at
//!   once per connection.
//! - **Connections**: at most [`MAX_CONNECTIONS`] established at once (a semaphore permit held
//!   for the life of each). When all are taken the loop stops accepting, so further connections
//!   wait (in the kernel's listen backlog, or over TLS after their handshake) rather than being
//!   dropped. TLS handshakes have their own timeout and caps ([`crate::tls::HandshakeLimits`]).
//!
//! **Shutdown.** On the stop signal the listening socket is closed (nothing new is accepted),
//! every connection is told to finish (hyper-util's `GracefulShutdown`: HTTP/1 closes once its
//! request in progress is answered, HTTP/2 sends GOAWAY and finishes its open streams), and the
//! drain lasts at most `server.shutdown_grace`; connections still open then are closed.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt as _;

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
use crate::tls::{HandshakeLimits, HandshakeStats, Reloader, TaskGuard, TlsListener, TlsState};

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

/// How long a client has to send a request's headers (HTTP/1), and an idle HTTP/1 keep-alive
/// connection to start its next request; also how long any connection has to start its first.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection (HTTP/2 in practice: HTTP/1 is closed after [`HEADER_READ_TIMEOUT`]) may
/// stay open with no request in progress.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How many connections may be established at once; beyond that, new ones wait.
pub const MAX_CONNECTIONS: usize = 10_000;
/// How often an HTTP/2 connection is pinged.
pub const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// How long an HTTP/2 ping may go unanswered before the connection is closed.
pub const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// How many requests one HTTP/2 connection may have in progress at once.
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// At most one warning in this period when the connection cap bites.
const CAP_WARNING_EVERY: Duration = Duration::from_secs(60);

/// The bounds of serving (see the module documentation). [`Default`] gives the production values,
/// the constants of this module and of [`crate::tls`]; tests shorten them through
/// [`Application::with_limits`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeLimits {
    /// [`HEADER_READ_TIMEOUT`]
    pub header_read_timeout: Duration,
    /// [`IDLE_TIMEOUT`]
    pub idle_timeout: Duration,
    /// [`MAX_CONNECTIONS`]
    pub max_connections: usize,
    /// [`H2_KEEP_ALIVE_INTERVAL`]
    pub h2_keep_alive_interval: Duration,
    /// [`H2_KEEP_ALIVE_TIMEOUT`]
    pub h2_keep_alive_timeout: Duration,
    /// [`H2_MAX_CONCURRENT_STREAMS`]
    pub h2_max_concurrent_streams: u32,
    /// The TLS handshake timeout and caps (HTTPS only).
    pub handshake: HandshakeLimits,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: HEADER_READ_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            h2_keep_alive_interval: H2_KEEP_ALIVE_INTERVAL,
            h2_keep_alive_timeout: H2_KEEP_ALIVE_TIMEOUT,
            h2_max_concurrent_streams: H2_MAX_CONCURRENT_STREAMS,
            handshake: HandshakeLimits::default(),
        }
    }
}

/// The bound listener: plain HTTP, or HTTPS with its certificate reloader. The TLS accept loop
/// starts with serving, under the limits given then.
enum Bound {
    Plain(TcpListener),
    Tls {
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
        handshakes: Arc<HandshakeStats>,
        /// Stops re-reading the certificate files when the server is done.
        _reload: TaskGuard,
    },
}

/// A built server, bound and ready to run.
pub struct Application {
    listener: Bound,
    router: axum::Router,
    grace: std::time::Duration,
    limits: ServeLimits,
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
        let mut tls_state = None;
        let listener = match tls {
            None => Bound::Plain(tcp),
            Some(reloader) => {
                let store = reloader.store();
                let handshakes = Arc::new(HandshakeStats::default());
                tls_state = Some(TlsState {
                    store: store.clone(),
                    handshakes: handshakes.clone(),
                });
                let served = store.current();
                let server_config = crate::tls::server_config(store).map_err(|e| {
                    StartupError::Tls(format!("cannot build the TLS configuration: {e}"))
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
                    tcp,
                    config: server_config,
                    handshakes,
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
            tls: tls_state,
        }));
        let router = api::router(state, config.request_timeout, config.max_body_bytes);
        Ok(Self {
            listener,
            router,
            grace: config.shutdown_grace,
            limits: ServeLimits::default(),
            ledger,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.listener {
            Bound::Plain(l) => l.local_addr(),
            Bound::Tls { tcp, .. } => tcp.local_addr(),
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

    /// Serves within `limits` instead of the production [`ServeLimits::default`] (tests shorten
    /// the timeouts and lower the caps).
    #[must_use]
    pub fn with_limits(mut self, limits: ServeLimits) -> Self {
        self.limits = limits;
        self
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
        let Self {
            listener,
            router,
            grace,
            limits,
            ledger: _,
        } = self;
        match listener {
            Bound::Plain(tcp) => serve(tcp, router, limits, grace, stop).await,
            Bound::Tls {
                tcp,
                config,
                handshakes,
                _reload: reload,
            } => {
                let listener = TlsListener::new(tcp, config, limits.handshake, handshakes)?;
                let result = serve(listener, router, limits, grace, stop).await;
                // The certificate is re-read as long as it is served.
                drop(reload);
                result
            }
        }
    }
}

/// The per-connection service: the router with the client's address as `ConnectInfo`.
type ConnectionService = axum::middleware::AddExtension<axum::Router, ConnectInfo<SocketAddr>>;

/// The accept-and-serve loop, one for plain TCP and [`TlsListener`] alike (see the module
/// documentation). Returns once the connections have drained after `stop`, or `grace` after it.
async fn serve<L>(
    mut listener: L,
    router: axum::Router,
    limits: ServeLimits,
    grace: Duration,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    let builder = connection_builder(&limits);
    let make_service = router.into_make_service_with_connect_info::<SocketAddr>();
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut cap_warning = crate::tls::WarnEvery::new(CAP_WARNING_EVERY);
    let mut stop = std::pin::pin!(stop);
    loop {
        // A connection slot first: with every slot taken, nothing is accepted, and new
        // connections wait rather than being dropped.
        let permit = match connections.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if let Some(held_back) = cap_warning.ready() {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        held_back_warnings = held_back,
                        "every connection slot is taken; new connections wait until one closes (at most one such warning a minute)"
                    );
                }
                tokio::select! {
                    () = &mut stop => break,
                    permit = connections.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        // The semaphore is never closed.
                        Err(_) => break,
                    },
                }
            }
        };
        let (io, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        while tasks.try_join_next().is_some() {}
        let service = match make_service.clone().oneshot(peer).await {
            Ok(service) => service,
            Err(never) => match never {},
        };
        tasks.spawn(connection(
            io,
            peer,
            service,
            builder.clone(),
            limits,
            graceful.watcher(),
            permit,
        ));
    }
    // Nothing new is accepted from here: the socket is closed (and the TLS accept loop ended).
    drop(listener);
    tracing::info!("shutting down: draining requests in flight");
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_seconds = grace.as_secs(),
            "grace period over; closing the remaining connections"
        );
    }
    // Dropping the set aborts the connections still open.
    drop(tasks);
    Ok(())
}

/// hyper-util's connection builder (HTTP/1 and HTTP/2, chosen by the client's first bytes)
/// with the timeouts and HTTP/2 limits of `limits`.
fn connection_builder(limits: &ServeLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.h2_keep_alive_interval)
        .keep_alive_timeout(limits.h2_keep_alive_timeout)
        .max_concurrent_streams(limits.h2_max_concurrent_streams);
    builder
}

/// Serves one connection until it ends, is idle too long, or is drained at shutdown. `_permit`
/// is its slot under [`ServeLimits::max_connections`], given back when it closes.
async fn connection<I>(
    io: I,
    peer: SocketAddr,
    service: ConnectionService,
    builder: auto::Builder<TokioExecutor>,
    limits: ServeLimits,
    watcher: hyper_util::server::graceful::Watcher,
    _permit: OwnedSemaphorePermit,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let service = TowerToHyperService::new(Tracked {
        inner: service,
        activity: activity.clone(),
    });
    let conn = watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(io), service));
    tokio::select! {
        result = conn => {
            // A header-read timeout, a reset, a client that went away: nothing to act on.
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        () = activity.idle(limits.header_read_timeout, limits.idle_timeout) => {
            tracing::debug!(%peer, "connection idle; closed");
        }
    }
}

/// What a connection is doing: requests in progress, how many it has started, and since when it
/// has been as it is.
struct Activity(Mutex<ActivityState>);

struct ActivityState {
    in_progress: usize,
    started: u64,
    since: tokio::time::Instant,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(ActivityState {
            in_progress: 0,
            started: 0,
            since: tokio::time::Instant::now(),
        })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        // Nothing panics while holding the lock; should it, the counts are still usable.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request starts; it ends when the guard is dropped.
    fn begin(self: &Arc<Self>) -> InProgress {
        let mut state = self.state();
        state.in_progress += 1;
        state.started += 1;
        state.since = tokio::time::Instant::now();
        InProgress(self.clone())
    }

    /// Completes once the connection has had no request in progress for `idle`, or has not
    /// started its first request within `first`.
    async fn idle(&self, first: Duration, idle: Duration) {
        loop {
            let deadline = {
                let state = self.state();
                (state.in_progress == 0)
                    .then(|| state.since + if state.started == 0 { first } else { idle })
            };
            let now = tokio::time::Instant::now();
            match deadline {
                Some(at) if at <= now => return,
                // Activity only moves the deadline later, except that the first request switches
                // from `first` to `idle`: never sleep past `idle` without looking again.
                Some(at) => tokio::time::sleep_until(at.min(now + idle)).await,
                // A request in progress is bounded by server.request_timeout; look again later.
                None => tokio::time::sleep(idle).await,
            }
        }
    }
}

/// A request in progress on a connection.
struct InProgress(Arc<Activity>);

impl Drop for InProgress {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.in_progress = state.in_progress.saturating_sub(1);
        state.since = tokio::time::Instant::now();
    }
}

/// A service that records its requests in the connection's [`Activity`].
#[derive(Clone)]
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S, B> tower::Service<axum::http::Request<B>> for Tracked<S>
where
    S: tower::Service<axum::http::Request<B>, Error = Infallible>,
    S::Future: Send + 'static,
    S::Response: 'static,
{
    type Response = S::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        let in_progress = self.activity.begin();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            drop(in_progress);
            response
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_millis(150);
    const LONG: Duration = Duration::from_secs(30);

    /// How long `activity.idle(first, idle)` takes, or `None` past `within`.
    async fn idle_after(activity: &Activity, first: Duration, idle: Duration) -> Option<Duration> {
        let start = tokio::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(5), activity.idle(first, idle))
            .await
            .ok()
            .map(|()| start.elapsed())
    }

    #[tokio::test]
    async fn a_connection_without_a_first_request_is_idle_after_the_first_deadline() {
        let activity = Activity::new();
        let took = idle_after(&activity, SHORT, LONG).await.unwrap();
        assert!(took >= SHORT && took < LONG, "{took:?}");
    }

    #[tokio::test]
    async fn a_request_in_progress_is_never_idle_and_the_clock_restarts_when_it_ends() {
        let activity = Activity::new();
        let request = activity.begin();
        assert!(
            tokio::time::timeout(SHORT * 3, activity.idle(SHORT, SHORT))
                .await
                .is_err(),
            "idle with a request in progress"
        );
        drop(request);
        let took = idle_after(&activity, SHORT, SHORT).await.unwrap();
        assert!(took >= SHORT, "{took:?}");
    }

    #[tokio::test]
    async fn the_idle_deadline_applies_once_a_request_was_made_even_when_shorter_than_the_first() {
        // The watchdog may be asleep until the (long) first-request deadline when a request
        // comes and goes: it must still close the connection `idle` after that request.
        let activity = Activity::new();
        let watching = {
            let activity = activity.clone();
            tokio::spawn(async move { idle_after(&activity, LONG, SHORT).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(activity.begin());
        let took = watching.await.unwrap();
        assert!(took.is_some_and(|t| t < Duration::from_secs(2)), "{took:?}");
    }

    #[test]
    fn the_default_limits_are_the_documented_constants() {
        let l = ServeLimits::default();
        assert_eq!(l.header_read_timeout, HEADER_READ_TIMEOUT);
        assert_eq!(l.idle_timeout, IDLE_TIMEOUT);
        assert_eq!(l.max_connections, 10_000);
        assert_eq!(l.handshake, HandshakeLimits::default());
        assert_eq!(l.handshake.timeout, Duration::from_secs(5));
        assert_eq!(l.handshake.max_pending_per_ip, 16);
        assert!(HEADER_READ_TIMEOUT <= IDLE_TIMEOUT);
    }
}
