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
//! connection to a task of its own, bounded by a timeout ([`HANDSHAKE_TIMEOUT`]), and completed
//! streams reach the serving loop ([`crate::app`]) through a bounded channel. Two caps keep the
//! handshake slots from being filled by silent sockets:
//!
//! - at most [`MAX_PENDING_HANDSHAKES`] handshakes are in progress at once. When all are taken the
//!   accept loop stops accepting until one ends, so further connections wait in the kernel's
//!   listen backlog instead of being closed;
//! - at most [`MAX_PENDING_HANDSHAKES_PER_IP`] of them come from one client address (an IPv6
//!   client counts by its /64, which one host usually holds whole); a further connection from
//!   that address is closed at once.
//!
//! A connection closed by the per-address cap, a failed handshake (a port scanner, plain HTTP sent
//! to the HTTPS port) and a timed-out one are logged at debug and counted in [`HandshakeStats`]
//! (`sasgate_tls_handshake_failures_total{reason}` in `/metrics`); when either cap bites, a
//! warning is logged, at most one a minute for each cap.

use std::collections::HashMap;
use std::io::{self, Read as _};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

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

/// How long a client has to complete its TLS handshake. A real client needs a few round trips;
/// the rest of the time is a slot held by someone who may never finish.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How many handshakes may be in progress at once. When all are taken, accepting pauses and
/// further connections wait in the listen backlog until a slot frees.
pub const MAX_PENDING_HANDSHAKES: usize = 1024;
/// How many of those one client address may hold (an IPv6 address counts by its /64). A further
/// connection from that address is closed at once.
pub const MAX_PENDING_HANDSHAKES_PER_IP: usize = 16;
/// The longest configured path an error message shows. A longer value, or one holding a line
/// break or `-----BEGIN`, is file content pasted where a path belongs (see [`implausible_path`]).
pub const MAX_PATH_BYTES: usize = 4096;
/// At most one warning per cap in this period when a handshake cap bites.
const CAP_WARNING_EVERY: Duration = Duration::from_secs(60);
/// Completed handshakes waiting for the serving loop to take them.
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
/// contain anything read from a file; `Display` and `Debug` show a path only if it is plausibly
/// one (see [`implausible_path`]).
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error(
        "cannot read {}: {kind}; check the path and that sasgate's user may read it",
        shown(path)
    )]
    Read {
        file: TlsFile,
        path: PathBuf,
        kind: io::ErrorKind,
    },
    #[error(
        "{} is larger than 1 MiB; it is not a PEM certificate or key file",
        shown(path)
    )]
    TooLarge { file: TlsFile, path: PathBuf },
    #[error(
        "{} is not valid PEM (a section's header, footer or base64 is broken); give the file as your CA issued it",
        shown(path)
    )]
    Pem { file: TlsFile, path: PathBuf },
    #[error(
        "{} holds no PEM certificate (a CERTIFICATE section); give the full chain in PEM, server certificate first",
        shown(path)
    )]
    NoCertificate { path: PathBuf },
    #[error(
        "certificate {index} in {} is not a usable X.509 v3 certificate; give the full chain in PEM, server certificate first",
        shown(path)
    )]
    BadCertificate { path: PathBuf, index: usize },
    #[error(
        "{} holds no PEM private key (a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY section); an encrypted key must be decrypted first",
        shown(path)
    )]
    NoKey { path: PathBuf },
    #[error(
        "the private key in {} is not an RSA, ECDSA (P-256, P-384) or Ed25519 key that sasgate can sign with",
        shown(path)
    )]
    UnsupportedKey { path: PathBuf },
    #[error(
        "the private key in {} does not belong to the first certificate in {}; give the key the certificate was issued for, and the server certificate first in the chain",
        shown(key),
        shown(cert)
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
}

/// Why a configured certificate or key path cannot be a path, if it cannot: longer than
/// [`MAX_PATH_BYTES`], or holding a line break or `-----BEGIN`. That is PEM content given where
/// the path belongs, typically through `SASGATE_SERVER__TLS_KEY_FILE_FILE` (a `…_FILE` variable
/// puts the content of the file it names into the key), and must not be echoed.
pub fn implausible_path(path: &Path) -> Option<&'static str> {
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.len() > MAX_PATH_BYTES {
        Some("is longer than 4096 bytes")
    } else if bytes.iter().any(|b| matches!(b, b'\n' | b'\r')) {
        Some("contains a line break")
    } else if bytes.windows(10).any(|w| w == b"-----BEGIN") {
        Some("contains PEM content (-----BEGIN)")
    } else {
        None
    }
}

impl std::fmt::Debug for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |p: &PathBuf| shown(p).to_string();
        match self {
            TlsError::Read { file, path, kind } => f
                .debug_struct("Read")
                .field("file", file)
                .field("path", &shown(path))
                .field("kind", kind)
                .finish(),
            TlsError::TooLarge { file, path } => f
                .debug_struct("TooLarge")
                .field("file", file)
                .field("path", &shown(path))
                .finish(),
            TlsError::Pem { file, path } => f
                .debug_struct("Pem")
                .field("file", file)
                .field("path", &shown(path))
                .finish(),
            TlsError::NoCertificate { path } => f
                .debug_struct("NoCertificate")
                .field("path", &shown(path))
                .finish(),
            TlsError::BadCertificate { path, index } => f
                .debug_struct("BadCertificate")
                .field("path", &shown(path))
                .field("index", index)
                .finish(),
            TlsError::NoKey { path } => {
                f.debug_struct("NoKey").field("path", &shown(path)).finish()
            }
            TlsError::UnsupportedKey { path } => f
                .debug_struct("UnsupportedKey")
                .field("path", &shown(path))
                .finish(),
            TlsError::KeyMismatch { cert, key } => f
                .debug_struct("KeyMismatch")
                .field("cert", &shown(cert))
                .field("key", &shown(key))
                .finish(),
        }
    }
}

/// A path as error messages show it: as is, unless it is [implausible](implausible_path).
struct Shown<'a>(&'a Path);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match implausible_path(self.0) {
            Some(_) => {
                f.write_str("(the configured file, whose name is not shown: it is not a path)")
            }
            None => self.0.display().fmt(f),
        }
    }
}

fn shown(path: &Path) -> Shown<'_> {
    Shown(path)
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

/// Limits of the TLS accept loop; [`Default`] gives the production values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeLimits {
    /// How long a client has to complete its handshake ([`HANDSHAKE_TIMEOUT`]).
    pub timeout: Duration,
    /// Handshakes in progress at once ([`MAX_PENDING_HANDSHAKES`]).
    pub max_pending: usize,
    /// Handshakes in progress from one client address ([`MAX_PENDING_HANDSHAKES_PER_IP`]).
    pub max_pending_per_ip: usize,
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        Self {
            timeout: HANDSHAKE_TIMEOUT,
            max_pending: MAX_PENDING_HANDSHAKES,
            max_pending_per_ip: MAX_PENDING_HANDSHAKES_PER_IP,
        }
    }
}

/// Why a TLS connection never reached HTTP: the `reason` label of
/// `sasgate_tls_handshake_failures_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// Closed before its handshake: its address already had the most handshakes in progress.
    PerIpLimit,
    /// The handshake did not complete within the timeout.
    Timeout,
    /// The handshake failed (not TLS, no common version or cipher, the client gave up).
    Error,
}

impl HandshakeFailure {
    /// Every reason, in the order `/metrics` lists them.
    pub const ALL: [HandshakeFailure; 3] = [Self::PerIpLimit, Self::Timeout, Self::Error];

    /// The metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::PerIpLimit => "per_ip_limit",
            Self::Timeout => "timeout",
            Self::Error => "error",
        }
    }
}

/// Counters of connections that never got past the TLS handshake, shared by the accept loop and
/// the `/metrics` handler.
#[derive(Debug, Default)]
pub struct HandshakeStats {
    counts: [AtomicU64; HandshakeFailure::ALL.len()],
}

impl HandshakeStats {
    /// One more connection lost for `reason`.
    pub fn count(&self, reason: HandshakeFailure) {
        self.counts[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The count for every reason.
    pub fn failures(&self) -> [(HandshakeFailure, u64); HandshakeFailure::ALL.len()] {
        HandshakeFailure::ALL.map(|r| (r, self.counts[r as usize].load(Ordering::Relaxed)))
    }
}

/// What the handlers see of TLS when sasgate serves HTTPS: the certificate in service (for its
/// expiry metric) and the handshake failure counters.
#[derive(Debug)]
pub struct TlsState {
    pub store: Arc<CertificateStore>,
    pub handshakes: Arc<HandshakeStats>,
}

/// Lets a warning through at most once per period and counts the ones held back.
#[derive(Debug)]
pub(crate) struct WarnEvery {
    every: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl WarnEvery {
    pub(crate) fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            held_back: 0,
        }
    }

    /// `Some(how many were held back since the last one)` when a warning may be logged now.
    pub(crate) fn ready(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < self.every)
        {
            self.held_back += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held_back))
    }
}

/// The address a per-client cap counts by: IPv4 (also as IPv4-mapped IPv6) as is, IPv6 by its
/// /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// Handshakes in progress per client address.
#[derive(Clone, Debug, Default)]
struct PeerSlots(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One handshake in progress for an address; given back when dropped.
struct PeerSlot {
    slots: PeerSlots,
    key: IpAddr,
}

impl PeerSlots {
    /// A slot for `ip`, unless it already holds `max`.
    fn take(&self, ip: IpAddr, max: usize) -> Option<PeerSlot> {
        let key = client_key(ip);
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let held = map.entry(key).or_insert(0);
        if *held >= max {
            return None;
        }
        *held += 1;
        Some(PeerSlot {
            slots: self.clone(),
            key,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut map = self.slots.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = map.get_mut(&self.key) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                map.remove(&self.key);
            }
        }
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
    /// Accepts TCP connections on `tcp` and handshakes with `config` within `limits`, counting
    /// the connections lost before HTTP in `stats`. Must be called within a tokio runtime; the
    /// accept loop ends when the listener is dropped.
    pub fn new(
        tcp: TcpListener,
        config: Arc<ServerConfig>,
        limits: HandshakeLimits,
        stats: Arc<HandshakeStats>,
    ) -> io::Result<Self> {
        let local_addr = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        let accepting = tokio::spawn(accept_loop(
            tcp,
            TlsAcceptor::from(config),
            limits,
            stats,
            tx,
        ));
        Ok(Self {
            ready,
            local_addr,
            _accepting: TaskGuard(accepting),
        })
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
    limits: HandshakeLimits,
    stats: Arc<HandshakeStats>,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let pending = Arc::new(Semaphore::new(limits.max_pending.max(1)));
    let per_ip = PeerSlots::default();
    let mut global_warning = WarnEvery::new(CAP_WARNING_EVERY);
    let mut per_ip_warning = WarnEvery::new(CAP_WARNING_EVERY);
    loop {
        // A slot first, then a connection: with every slot taken, nothing is accepted and new
        // connections wait in the kernel's listen backlog.
        let permit = match pending.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if let Some(held_back) = global_warning.ready() {
                    tracing::warn!(
                        max_pending = limits.max_pending,
                        held_back_warnings = held_back,
                        "every TLS handshake slot is taken; new connections wait in the listen backlog until one frees (at most one such warning a minute)"
                    );
                }
                match pending.clone().acquire_owned().await {
                    Ok(permit) => permit,
                    // The semaphore is never closed.
                    Err(_) => return,
                }
            }
        };
        let (stream, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                accept_error(e).await;
                continue;
            }
        };
        let Some(slot) = per_ip.take(peer.ip(), limits.max_pending_per_ip) else {
            stats.count(HandshakeFailure::PerIpLimit);
            tracing::debug!(%peer, "too many TLS handshakes in progress from this address; connection closed");
            if let Some(held_back) = per_ip_warning.ready() {
                tracing::warn!(
                    client = %client_key(peer.ip()),
                    max_pending_per_ip = limits.max_pending_per_ip,
                    held_back_warnings = held_back,
                    "a client address has the most TLS handshakes in progress allowed; its further connections are closed at once (at most one such warning a minute)"
                );
            }
            continue;
        };
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(limits.timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    // Both held until the serving loop has the stream, so that the caps also
                    // bound the queue.
                    let _held = (permit, slot);
                    // An error means the server is shutting down: the stream is dropped.
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(e)) => {
                    stats.count(HandshakeFailure::Error);
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    stats.count(HandshakeFailure::Timeout);
                    tracing::debug!(
                        %peer,
                        timeout_ms = u64::try_from(limits.timeout.as_millis()).unwrap_or(u64::MAX),
                        "TLS handshake timed out"
                    );
                }
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
    fn a_path_that_is_file_content_is_never_shown() {
        let (_, key) = self_signed("pasted");
        let secret_line = key.lines().nth(1).unwrap().to_owned();
        let long = "x".repeat(MAX_PATH_BYTES + 1);
        let pasted = key.trim_end().to_owned();
        for bad in [pasted.as_str(), long.as_str(), "/tls/a\rb"] {
            assert!(implausible_path(Path::new(bad)).is_some(), "{bad:?}");
            let errors = [
                TlsError::Read {
                    file: TlsFile::Key,
                    path: bad.into(),
                    kind: io::ErrorKind::NotFound,
                },
                TlsError::TooLarge {
                    file: TlsFile::Key,
                    path: bad.into(),
                },
                TlsError::Pem {
                    file: TlsFile::Key,
                    path: bad.into(),
                },
                TlsError::NoCertificate { path: bad.into() },
                TlsError::BadCertificate {
                    path: bad.into(),
                    index: 1,
                },
                TlsError::NoKey { path: bad.into() },
                TlsError::UnsupportedKey { path: bad.into() },
                TlsError::KeyMismatch {
                    cert: bad.into(),
                    key: bad.into(),
                },
            ];
            for e in errors {
                let text = format!("{e} {e:?}");
                assert!(
                    !text.contains(&secret_line)
                        && !text.contains("BEGIN")
                        && !text.contains("xxxxxxxx")
                        && !text.contains('\r'),
                    "{text}"
                );
                assert!(text.contains("not a path"), "{text}");
                assert!(text.len() < 1024, "{text}");
            }
        }
        // A real path is shown as is.
        let exact = format!("/{}", "a".repeat(MAX_PATH_BYTES - 1));
        for good in ["/run/tls/tls.key", exact.as_str()] {
            assert!(implausible_path(Path::new(good)).is_none());
            let e = TlsError::NoKey { path: good.into() };
            assert!(e.to_string().contains(good));
        }
    }

    #[test]
    fn per_address_slots_are_capped_and_given_back() {
        let slots = PeerSlots::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let held: Vec<PeerSlot> = (0..3).map(|_| slots.take(a, 3).unwrap()).collect();
        assert!(slots.take(a, 3).is_none());
        // Another address, the same address written as IPv4-mapped IPv6, another /64.
        assert!(slots.take("192.0.2.2".parse().unwrap(), 3).is_some());
        assert!(slots.take("::ffff:192.0.2.1".parse().unwrap(), 3).is_none());
        let v6: Vec<PeerSlot> = (0..3)
            .map(|i| {
                slots
                    .take(format!("2001:db8::{i}").parse().unwrap(), 3)
                    .unwrap()
            })
            .collect();
        assert!(
            slots.take("2001:db8::ffff:1".parse().unwrap(), 3).is_none(),
            "the same /64"
        );
        assert!(slots.take("2001:db8:0:1::1".parse().unwrap(), 3).is_some());
        drop(held);
        assert!(slots.take(a, 3).is_some());
        drop(v6);
        assert!(
            slots.0.lock().unwrap().is_empty(),
            "addresses are forgotten once their slots are back"
        );
    }

    #[test]
    fn cap_warnings_are_let_through_once_per_period() {
        let mut w = WarnEvery::new(Duration::from_secs(60));
        assert_eq!(w.ready(), Some(0));
        assert_eq!(w.ready(), None);
        assert_eq!(w.ready(), None);
        w.last = Instant::now().checked_sub(Duration::from_secs(61));
        assert_eq!(w.ready(), Some(2), "the held-back count is reported");
        assert_eq!(w.ready(), None);
    }

    #[test]
    fn handshake_failures_are_counted_by_reason() {
        let stats = HandshakeStats::default();
        stats.count(HandshakeFailure::PerIpLimit);
        stats.count(HandshakeFailure::PerIpLimit);
        stats.count(HandshakeFailure::Error);
        let labelled = stats.failures().map(|(r, n)| (r.label(), n));
        assert_eq!(
            labelled,
            [("per_ip_limit", 2), ("timeout", 0), ("error", 1)]
        );
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
