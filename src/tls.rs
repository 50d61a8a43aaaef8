//! HTTPS served by sasgate itself: the certificate files, their reload, and the listener.
//!
//! **Why here and not only behind a proxy.** A SAS URL is a bearer credential, and so are the
//! API keys and OIDC tokens sasgate receives: any of them crossing plain HTTP is leaked. So
//! sasgate terminates TLS itself (rustls with the ring provider, TLS 1.2 and 1.3, ALPN `h2` and
//! `http/1.1`), and [`crate::config`] refuses plain HTTP beyond loopback unless
//! `server.allow_insecure_http = true` says a TLS-terminating proxy is in front.
//!
//! **The files.** `server.tls_cert_file` holds the PEM certificate chain, server certificate
//! first; `server.tls_key_file` the PEM private key (PKCS#8 `PRIVATE KEY`, PKCS#1
//! `RSA PRIVATE KEY` or SEC1 `EC PRIVATE KEY`; not encrypted). [`load`] reads and checks a pair:
//! every certificate parses, the key is one rustls can sign with, and the key belongs to the
//! first certificate. Configuration validation, `sasgate config check`, start-up and every reload
//! use that one function. Errors name the file and the fix and never carry file content.
//!
//! **Reload without a restart.** cert-manager, a Key Vault agent or certbot renews by replacing
//! the files. rustls asks a [`ResolvesServerCert`] for the certificate on every handshake;
//! [`CertificateStore`] answers with the pair it currently holds (an `Arc` behind an `RwLock`,
//! swapped whole). [`spawn_reloader`] re-reads both files every `server.tls_reload_interval`
//! and on SIGHUP. It compares a SHA-256 of their content, not modification times: a Kubernetes
//! secret volume swaps a symlink, and a copy may keep the old time or land within the same second.
//! A changed pair is parsed and checked before it replaces the old one, so a half-written or
//! mismatched pair (the certificate replaced before the key) is logged as a warning and the old
//! pair stays in service. New handshakes get the new certificate; established connections keep
//! theirs until they close.
//!
//! **The listener.** A TLS handshake takes round trips, and a client may stall in the middle of
//! one. [`TlsListener`] therefore never handshakes inside `accept`: its accept loop hands every TCP
//! connection to a task of its own, bounded by a timeout ([`HANDSHAKE_TIMEOUT`]) and a cap on
//! handshakes in progress, and completed streams reach `axum::serve` through a bounded channel. A
//! failed or timed-out handshake (a port scanner, plain HTTP sent to the HTTPS port) is logged at
//! debug and dropped. `axum::serve` keeps graceful shutdown and `ConnectInfo<SocketAddr>` (see
//! [`TlsListener::with_connect_info`]).

use std::io::{self, Read as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::serve::{ListenerExt as _, TapIo};
use chrono::{DateTime, Utc};
use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject as _};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest as _, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use zeroize::Zeroizing;

/// How long a client has to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How many handshakes may be in progress at once; further connections are closed at once.
pub const MAX_PENDING_HANDSHAKES: usize = 1024;
/// Completed handshakes waiting for `axum::serve` to take them.
const READY_QUEUE: usize = 64;
/// No certificate or key file is larger than this; a bigger one is the wrong file.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Where the certificate and key are and how often to look at them again (`[server]` keys
/// `tls_cert_file`, `tls_key_file`, `tls_reload_interval`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM certificate chain, server certificate first.
    pub cert_file: PathBuf,
    /// PEM private key of the server certificate.
    pub key_file: PathBuf,
    /// How often both files are re-read.
    pub reload_interval: Duration,
}

/// Which of the two files a problem is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFile {
    Cert,
    Key,
}

impl TlsFile {
    /// The configuration key that names this file.
    pub fn config_key(self) -> &'static str {
        match self {
            TlsFile::Cert => "server.tls_cert_file",
            TlsFile::Key => "server.tls_key_file",
        }
    }
}

/// Why a certificate and key pair cannot be served. Messages name the file and the fix and never
/// contain anything read from a file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {kind}; check the path and that sasgate's user may read it", path.display())]
    Read {
        file: TlsFile,
        path: PathBuf,
        kind: io::ErrorKind,
    },
    #[error("{} is larger than 1 MiB; it is not a PEM certificate or key file", path.display())]
    TooLarge { file: TlsFile, path: PathBuf },
    #[error("{} is not valid PEM (a section's header, footer or base64 is broken); give the file as your CA issued it", path.display())]
    Pem { file: TlsFile, path: PathBuf },
    #[error("{} holds no PEM certificate (a CERTIFICATE section); give the full chain in PEM, server certificate first", path.display())]
    NoCertificate { path: PathBuf },
    #[error("certificate {index} in {} is not a usable X.509 v3 certificate; give the full chain in PEM, server certificate first", path.display())]
    BadCertificate { path: PathBuf, index: usize },
    #[error("{} holds no PEM private key (a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY section); an encrypted key must be decrypted first", path.display())]
    NoKey { path: PathBuf },
    #[error("the private key in {} is not an RSA, ECDSA (P-256, P-384) or Ed25519 key that sasgate can sign with", path.display())]
    UnsupportedKey { path: PathBuf },
    #[error("the private key in {} does not belong to the first certificate in {}; give the key the certificate was issued for, and the server certificate first in the chain", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
}

impl TlsError {
    /// The configuration key to fix.
    pub fn config_key(&self) -> &'static str {
        match self {
            TlsError::Read { file, .. }
            | TlsError::TooLarge { file, .. }
            | TlsError::Pem { file, .. } => file.config_key(),
            TlsError::NoCertificate { .. } | TlsError::BadCertificate { .. } => {
                TlsFile::Cert.config_key()
            }
            TlsError::NoKey { .. }
            | TlsError::UnsupportedKey { .. }
            | TlsError::KeyMismatch { .. } => TlsFile::Key.config_key(),
        }
    }
}

/// A checked certificate chain and its key, ready for handshakes, with what the logs show of it.
/// `Debug` shows the description only, never the key.
#[derive(Clone)]
pub struct LoadedCertificate {
    certified: Arc<CertifiedKey>,
    fingerprint: String,
    not_after: Option<DateTime<Utc>>,
    subject: String,
}

impl LoadedCertificate {
    /// SHA-256 of the server certificate (DER), as `openssl x509 -noout -fingerprint -sha256`
    /// prints it: uppercase hex pairs separated by colons.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The server certificate's `notAfter`; `None` if its validity could not be read.
    pub fn not_after(&self) -> Option<DateTime<Utc>> {
        self.not_after
    }

    /// The server certificate's subject (RFC 4514), or `(unreadable)`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// How many certificates the chain holds, the server certificate included.
    pub fn chain_len(&self) -> usize {
        self.certified.cert.len()
    }

    /// True once the server certificate's `notAfter` is before `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.not_after.is_some_and(|t| t < now)
    }

    /// The `notAfter` as RFC 3339, or `unknown`.
    pub fn not_after_text(&self) -> String {
        self.not_after
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_else(|| "unknown".into())
    }
}

impl std::fmt::Debug for LoadedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedCertificate")
            .field("subject", &self.subject)
            .field("not_after", &self.not_after)
            .field("fingerprint", &self.fingerprint)
            .field("chain_len", &self.chain_len())
            .finish_non_exhaustive()
    }
}

/// Parses and checks a certificate chain and private key given as PEM. The paths only name the
/// files in errors.
pub fn parse(
    cert_path: &Path,
    cert_pem: &[u8],
    key_path: &Path,
    key_pem: &[u8],
) -> Result<LoadedCertificate, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|_| TlsError::Pem {
            file: TlsFile::Cert,
            path: cert_path.to_path_buf(),
        })?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_path_buf(),
        });
    };
    // webpki, which clients' verifiers also use, is the judge of a certificate.
    if let Some(index) = chain
        .iter()
        .position(|c| ParsedCertificate::try_from(c).is_err())
    {
        return Err(TlsError::BadCertificate {
            path: cert_path.to_path_buf(),
            index: index + 1,
        });
    }
    let fingerprint = fingerprint(leaf);
    let (not_after, subject) = describe(leaf);
    let key = match PrivateKeyDer::from_pem_slice(key_pem) {
        Ok(k) => k,
        Err(pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey {
                path: key_path.to_path_buf(),
            });
        }
        Err(_) => {
            return Err(TlsError::Pem {
                file: TlsFile::Key,
                path: key_path.to_path_buf(),
            });
        }
    };
    let signing_key = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|_| TlsError::UnsupportedKey {
            path: key_path.to_path_buf(),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    // With ring every key reports its public half, so "cannot tell" does not happen; it would be
    // refused like a mismatch.
    certified.keys_match().map_err(|_| TlsError::KeyMismatch {
        cert: cert_path.to_path_buf(),
        key: key_path.to_path_buf(),
    })?;
    Ok(LoadedCertificate {
        certified: Arc::new(certified),
        fingerprint,
        not_after,
        subject,
    })
}

/// Reads and checks the configured pair: what configuration validation, `sasgate config check`,
/// start-up and every reload run.
pub fn load(config: &TlsConfig) -> Result<LoadedCertificate, TlsError> {
    let (cert, key) = read_pair(config)?;
    parse(&config.cert_file, &cert, &config.key_file, &key)
}

/// A file's content, wiped from memory when dropped (it may be a private key).
type FileBytes = Zeroizing<Vec<u8>>;

/// Both files' content: certificate, key.
fn read_pair(config: &TlsConfig) -> Result<(FileBytes, FileBytes), TlsError> {
    Ok((
        read_file(TlsFile::Cert, &config.cert_file)?,
        read_file(TlsFile::Key, &config.key_file)?,
    ))
}

fn read_file(file: TlsFile, path: &Path) -> Result<FileBytes, TlsError> {
    let read_error = |e: io::Error| TlsError::Read {
        file,
        path: path.to_path_buf(),
        kind: e.kind(),
    };
    let mut bytes = Zeroizing::new(Vec::new());
    std::fs::File::open(path)
        .map_err(read_error)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(TlsError::TooLarge {
            file,
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The server certificate's `notAfter` and subject, for the logs. webpki has accepted the
/// certificate already; this stricter parser only adds a description, and its failure is no
/// reason to refuse the certificate.
fn describe(cert: &CertificateDer<'_>) -> (Option<DateTime<Utc>>, String) {
    use x509_cert::der::Decode as _;
    match x509_cert::Certificate::from_der(cert.as_ref()) {
        Ok(c) => {
            let tbs = &c.tbs_certificate;
            let not_after = i64::try_from(tbs.validity.not_after.to_unix_duration().as_secs())
                .ok()
                .and_then(|s| DateTime::from_timestamp(s, 0));
            (not_after, tbs.subject.to_string())
        }
        Err(_) => (None, "(unreadable)".into()),
    }
}

/// The pair in service. rustls asks it for the certificate on every handshake; a reload swaps the
/// pair whole, so a handshake sees either the old pair or the new one.
#[derive(Debug)]
pub struct CertificateStore {
    current: RwLock<Arc<LoadedCertificate>>,
}

impl CertificateStore {
    /// A store serving `first`.
    pub fn new(first: LoadedCertificate) -> Self {
        Self {
            current: RwLock::new(Arc::new(first)),
        }
    }

    /// The pair new handshakes get.
    pub fn current(&self) -> Arc<LoadedCertificate> {
        // No code panics while holding the lock; should one, the value is still a whole pair.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn replace(&self, next: Arc<LoadedCertificate>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = next;
    }
}

impl ResolvesServerCert for CertificateStore {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().certified.clone())
    }
}

/// The rustls server configuration: ring, TLS 1.3 and 1.2, ALPN `h2` then `http/1.1`, the
/// certificate from `store`, no client certificates.
pub fn server_config(store: Arc<CertificateStore>) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What one look at the files found.
#[derive(Debug)]
pub enum Reload {
    /// The files are as last seen (or fail as last reported): nothing to do or log.
    Unchanged,
    /// A new pair is in service.
    Reloaded(Arc<LoadedCertificate>),
    /// The files changed but cannot be served; the previous pair stays in service.
    Rejected(TlsError),
}

/// Watches the two files and swaps a new, valid pair into the [`CertificateStore`].
pub struct Reloader {
    config: TlsConfig,
    store: Arc<CertificateStore>,
    /// SHA-256 over both files as last read, whether they were served or rejected.
    seen: [u8; 32],
    /// The last failure to read the files, reported once.
    read_failure: Option<TlsError>,
}

impl Reloader {
    /// Loads the pair (the server does not start without one) and a store serving it.
    pub fn start(config: TlsConfig) -> Result<Self, TlsError> {
        let (cert, key) = read_pair(&config)?;
        let first = parse(&config.cert_file, &cert, &config.key_file, &key)?;
        Ok(Self {
            seen: digest(&cert, &key),
            store: Arc::new(CertificateStore::new(first)),
            config,
            read_failure: None,
        })
    }

    /// The store the server's rustls configuration resolves from.
    pub fn store(&self) -> Arc<CertificateStore> {
        self.store.clone()
    }

    /// Re-reads both files. A pair differing from the last one seen is checked and, if valid,
    /// put in service. With `force` (SIGHUP), the pair is checked and reported even if unchanged.
    /// Blocking file I/O: run it off the async workers.
    pub fn check(&mut self, force: bool) -> Reload {
        let (cert, key) = match read_pair(&self.config) {
            Ok(pair) => pair,
            Err(e) => {
                // A file missing for a moment (a replacement in progress) or for good is worth
                // one warning, not one per interval.
                if !force && self.read_failure.as_ref() == Some(&e) {
                    return Reload::Unchanged;
                }
                self.read_failure = Some(e.clone());
                return Reload::Rejected(e);
            }
        };
        self.read_failure = None;
        let seen = digest(&cert, &key);
        if seen == self.seen && !force {
            return Reload::Unchanged;
        }
        self.seen = seen;
        match parse(&self.config.cert_file, &cert, &self.config.key_file, &key) {
            Ok(next) => {
                let next = Arc::new(next);
                self.store.replace(next.clone());
                Reload::Reloaded(next)
            }
            Err(e) => Reload::Rejected(e),
        }
    }
}

fn digest(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((cert.len() as u64).to_be_bytes());
    h.update(cert);
    h.update(key);
    h.finalize().into()
}

/// Aborts its task when dropped, so that a background task ends with what owns it.
#[derive(Debug)]
pub struct TaskGuard(tokio::task::JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = ();

/// Re-reads the files every `reload_interval`, and on SIGHUP (unix), until the guard is dropped.
/// Every outcome but "unchanged" is logged: a reload at info with the new certificate's subject,
/// expiry and fingerprint, a rejected pair as a warning naming the file and the fix.
///
/// SIGHUP is subscribed to before this returns, so a SIGHUP sent afterwards cannot stop the
/// process (the default action of SIGHUP).
pub fn spawn_reloader(reloader: Reloader) -> TaskGuard {
    #[cfg(unix)]
    let mut hangup: Hangup =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(
                    "cannot listen for SIGHUP ({e}); the TLS files are still re-read every interval"
                );
                None
            }
        };
    #[cfg(not(unix))]
    let mut hangup: Hangup = ();
    let interval = reloader.config.reload_interval;
    let mut reloader = reloader;
    TaskGuard(tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let force = tokio::select! {
                _ = tick.tick() => false,
                () = next_hangup(&mut hangup) => {
                    tracing::info!("SIGHUP: re-reading the TLS certificate and key");
                    true
                }
            };
            let outcome;
            (reloader, outcome) = match tokio::task::spawn_blocking(move || {
                let outcome = reloader.check(force);
                (reloader, outcome)
            })
            .await
            {
                Ok(done) => done,
                Err(e) => {
                    tracing::error!(
                        "the TLS reload task failed ({e}); the current certificate stays in service, but is no longer reloaded"
                    );
                    return;
                }
            };
            log_outcome(&outcome);
        }
    }))
}

#[cfg(unix)]
async fn next_hangup(hangup: &mut Hangup) {
    if let Some(signal) = hangup.as_mut()
        && signal.recv().await.is_some()
    {
        return;
    }
    std::future::pending::<()>().await;
}

#[cfg(not(unix))]
async fn next_hangup(_hangup: &mut Hangup) {
    std::future::pending::<()>().await;
}

fn log_outcome(outcome: &Reload) {
    match outcome {
        Reload::Unchanged => {}
        Reload::Reloaded(c) => {
            tracing::info!(
                subject = c.subject(),
                not_after = %c.not_after_text(),
                fingerprint_sha256 = c.fingerprint(),
                "TLS certificate reloaded; new connections get it"
            );
            if c.is_expired(Utc::now()) {
                tracing::warn!(
                    not_after = %c.not_after_text(),
                    "the reloaded TLS certificate has expired; clients will refuse it"
                );
            }
        }
        Reload::Rejected(e) => tracing::warn!(
            key = e.config_key(),
            "TLS certificate not reloaded, the previous one stays in service: {e}"
        ),
    }
}

/// A listener whose `accept` yields completed TLS streams. Handshakes run concurrently, each in
/// its own task with a deadline, so a slow or silent client delays nobody else.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    _accepting: TaskGuard,
}

impl TlsListener {
    /// Accepts TCP connections on `tcp` and handshakes with `config`, allowing each client
    /// `handshake_timeout`. Must be called within a tokio runtime; the accept loop ends when the
    /// listener is dropped.
    pub fn new(
        tcp: TcpListener,
        config: Arc<ServerConfig>,
        handshake_timeout: Duration,
    ) -> io::Result<Self> {
        let local_addr = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        let accepting = tokio::spawn(accept_loop(
            tcp,
            TlsAcceptor::from(config),
            handshake_timeout,
            tx,
        ));
        Ok(Self {
            ready,
            local_addr,
            _accepting: TaskGuard(accepting),
        })
    }

    /// The listener as `axum::serve` takes it with `into_make_service_with_connect_info::
    /// <SocketAddr>()`. axum implements `Connected` for `SocketAddr` only over its own listeners,
    /// and the orphan rule keeps sasgate from adding an impl for this one; its `TapIo` wrapper
    /// comes with an impl for any listener whose address is a `SocketAddr`. The tap does nothing.
    pub fn with_connect_info(self) -> TapIo<Self, fn(&mut TlsStream<TcpStream>)> {
        fn untouched(_: &mut TlsStream<TcpStream>) {}
        self.tap_io(untouched as fn(&mut TlsStream<TcpStream>))
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop runs until this listener is dropped, so the channel cannot close
            // while it is in use.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                accept_error(e).await;
                continue;
            }
        };
        let Ok(permit) = pending.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many TLS handshakes in progress; connection closed");
            continue;
        };
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    // Held until axum has the stream, so that the cap also bounds the queue.
                    let _permit = permit;
                    // An error means the server is shutting down: the stream is dropped.
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(
                    %peer,
                    timeout_seconds = handshake_timeout.as_secs(),
                    "TLS handshake timed out"
                ),
            }
        });
    }
}

/// As `axum::serve` handles its own accept errors: a connection that went away is ignored; any
/// other error (out of file descriptors) is logged and accepting pauses for a second rather than
/// spinning.
async fn accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!("accept error: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `localhost` and its PKCS#8 key, as PEM.
    fn self_signed(cn: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn paths() -> (PathBuf, PathBuf) {
        (
            PathBuf::from("/tls/cert.pem"),
            PathBuf::from("/tls/key.pem"),
        )
    }

    fn parse_pem(cert: &str, key: &str) -> Result<LoadedCertificate, TlsError> {
        let (c, k) = paths();
        parse(&c, cert.as_bytes(), &k, key.as_bytes())
    }

    #[test]
    fn a_matching_pair_is_described_without_its_key() {
        let (cert, key) = self_signed("sasgate.test");
        let loaded = parse_pem(&cert, &key).unwrap();
        assert_eq!(loaded.chain_len(), 1);
        assert!(loaded.subject().contains("CN=sasgate.test"), "{loaded:?}");
        assert_eq!(loaded.fingerprint().len(), 32 * 3 - 1);
        assert!(loaded.not_after().is_some_and(|t| t > Utc::now()));
        assert!(!loaded.is_expired(Utc::now()));
        let debug = format!("{loaded:?}");
        let key_body = key.lines().nth(1).unwrap();
        assert!(!debug.contains(key_body), "{debug}");
        // The key may follow the chain in the same file (some tools write one combined file).
        let combined = format!("{cert}{key}");
        assert!(parse_pem(&combined, &combined).is_ok());
    }

    #[test]
    fn the_fingerprint_is_the_sha256_of_the_der() {
        let (cert, key) = self_signed("fp");
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        let expected: String = Sha256::digest(der.as_ref())
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(parse_pem(&cert, &key).unwrap().fingerprint(), expected);
    }

    #[test]
    fn a_chain_is_kept_in_order() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        let chain = format!("{}{}", leaf.pem(), ca.pem());
        let loaded = parse_pem(&chain, &leaf_key.serialize_pem()).unwrap();
        assert_eq!(loaded.chain_len(), 2);
        // The CA's key does not belong to the first certificate.
        let err = parse_pem(&chain, &ca_key.serialize_pem()).unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
        // Chain in the wrong order: the key does not match the first certificate.
        let reversed = format!("{}{}", ca.pem(), leaf.pem());
        let err = parse_pem(&reversed, &leaf_key.serialize_pem()).unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    }

    #[test]
    fn rsa_pkcs1_and_ec_sec1_keys_are_accepted() {
        // Test-only keys and certificates made with openssl (tests/keys/README.md).
        let rsa = parse_pem(
            include_str!("../tests/keys/tls-rsa.crt.pem"),
            include_str!("../tests/keys/tls-rsa.pkcs1.pem"),
        )
        .unwrap();
        assert!(rsa.subject().contains("CN=rsa.sasgate.test"), "{rsa:?}");
        let ec = parse_pem(
            include_str!("../tests/keys/tls-ec.crt.pem"),
            include_str!("../tests/keys/tls-ec.sec1.pem"),
        )
        .unwrap();
        assert!(ec.subject().contains("CN=ec.sasgate.test"), "{ec:?}");
        assert!(
            include_str!("../tests/keys/tls-rsa.pkcs1.pem")
                .starts_with("-----BEGIN RSA PRIVATE KEY-----")
                && include_str!("../tests/keys/tls-ec.sec1.pem")
                    .starts_with("-----BEGIN EC PRIVATE KEY-----"),
            "the fixtures are in the formats this test is about"
        );
    }

    #[test]
    fn broken_files_are_named_without_their_content() {
        let (cert, key) = self_signed("broken");
        let (_, other_key) = self_signed("other");
        let secret_line = key.lines().nth(1).unwrap().to_owned();
        let garbage_cert =
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
        let key_file = "server.tls_key_file";
        let cert_file = "server.tls_cert_file";
        let cases: Vec<(String, String, &str, &str)> = vec![
            (String::new(), key.clone(), cert_file, "NoCertificate"),
            ("just some text".into(), key.clone(), cert_file, "NoCertificate"),
            (garbage_cert.into(), key.clone(), cert_file, "BadCertificate"),
            (
                "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".into(),
                key.clone(),
                cert_file,
                "Pem",
            ),
            (cert.clone(), String::new(), key_file, "NoKey"),
            (cert.clone(), cert.clone(), key_file, "NoKey"),
            (
                cert.clone(),
                "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n".into(),
                key_file,
                "UnsupportedKey",
            ),
            (
                cert.clone(),
                format!("{}\n", key.lines().take(2).collect::<Vec<_>>().join("\n")),
                key_file,
                "Pem",
            ),
            (
                cert.clone(),
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
                    .into(),
                key_file,
                "NoKey",
            ),
            (cert.clone(), other_key.clone(), key_file, "KeyMismatch"),
        ];
        for (i, (c, k, config_key, variant)) in cases.iter().enumerate() {
            let err = parse_pem(c, k).unwrap_err();
            assert_eq!(err.config_key(), *config_key, "case {i}: {err}");
            let text = format!("{err} {err:?}");
            assert!(format!("{err:?}").starts_with(variant), "case {i}: {text}");
            assert!(text.contains("/tls/"), "case {i} names no file: {text}");
            assert!(
                !text.contains(&secret_line)
                    && !text.contains("bm90")
                    && !text.contains("!!!!")
                    && !text.contains("BEGIN"),
                "case {i} echoes content: {text}"
            );
        }
    }

    #[test]
    fn the_store_serves_the_latest_pair() {
        let (cert, key) = self_signed("one");
        let first = parse_pem(&cert, &key).unwrap();
        let store = CertificateStore::new(first.clone());
        assert_eq!(store.current().fingerprint(), first.fingerprint());
        let (cert, key) = self_signed("two");
        let second = Arc::new(parse_pem(&cert, &key).unwrap());
        store.replace(second.clone());
        assert_eq!(store.current().fingerprint(), second.fingerprint());
    }

    #[test]
    fn the_reloader_swaps_a_valid_pair_and_keeps_the_old_one_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let config = TlsConfig {
            cert_file: dir.path().join("tls.crt"),
            key_file: dir.path().join("tls.key"),
            reload_interval: Duration::from_secs(30),
        };
        let write = |cert: &str, key: &str| {
            std::fs::write(&config.cert_file, cert).unwrap();
            std::fs::write(&config.key_file, key).unwrap();
        };
        let (cert1, key1) = self_signed("one");
        write(&cert1, &key1);
        let mut reloader = Reloader::start(config.clone()).unwrap();
        let store = reloader.store();
        let first = store.current().fingerprint().to_owned();
        assert!(matches!(reloader.check(false), Reload::Unchanged));
        assert!(matches!(reloader.check(true), Reload::Reloaded(_)));

        // The certificate is replaced before the key: refused, the old pair stays, and the
        // same broken pair is reported once.
        let (cert2, key2) = self_signed("two");
        std::fs::write(&config.cert_file, &cert2).unwrap();
        assert!(matches!(
            reloader.check(false),
            Reload::Rejected(TlsError::KeyMismatch { .. })
        ));
        assert_eq!(store.current().fingerprint(), first);
        assert!(matches!(reloader.check(false), Reload::Unchanged));
        // Then the key arrives.
        std::fs::write(&config.key_file, &key2).unwrap();
        let Reload::Reloaded(next) = reloader.check(false) else {
            panic!("the completed pair was not loaded");
        };
        assert_ne!(next.fingerprint(), first);
        assert_eq!(store.current().fingerprint(), next.fingerprint());
        assert!(next.subject().contains("CN=two"));

        // A missing file: one warning, the pair stays.
        std::fs::remove_file(&config.key_file).unwrap();
        assert!(matches!(
            reloader.check(false),
            Reload::Rejected(TlsError::Read {
                file: TlsFile::Key,
                ..
            })
        ));
        assert!(matches!(reloader.check(false), Reload::Unchanged));
        assert!(matches!(reloader.check(true), Reload::Rejected(_)));
        assert_eq!(store.current().fingerprint(), next.fingerprint());
        // Back to the first pair (content seen before, but not what is served): loaded.
        write(&cert1, &key1);
        assert!(matches!(reloader.check(false), Reload::Reloaded(_)));
        assert_eq!(store.current().fingerprint(), first);
    }

    #[test]
    fn the_server_configuration_offers_h2_and_http1() {
        let (cert, key) = self_signed("alpn");
        let store = Arc::new(CertificateStore::new(parse_pem(&cert, &key).unwrap()));
        let config = server_config(store).unwrap();
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn oversized_and_missing_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b'A'; (MAX_FILE_BYTES + 1) as usize]).unwrap();
        let config = TlsConfig {
            cert_file: big,
            key_file: dir.path().join("missing.pem"),
            reload_interval: Duration::from_secs(1),
        };
        let err = load(&config).unwrap_err();
        assert!(matches!(err, TlsError::TooLarge { .. }), "{err}");
        assert_eq!(err.config_key(), "server.tls_cert_file");
        let (cert, _) = self_signed("x");
        std::fs::write(&config.cert_file, cert).unwrap();
        let err = load(&config).unwrap_err();
        assert!(
            matches!(
                err,
                TlsError::Read {
                    file: TlsFile::Key,
                    kind: io::ErrorKind::NotFound,
                    ..
                }
            ),
            "{err}"
        );
    }
}
