//! A real Azurite blob service per test, on a free loopback port.
//!
//! ```ignore
//! mod common;
//! use common::azurite::{Azurite, Tls, fake_entra_jwt};
//!
//! #[tokio::test]
//! async fn something() {
//!     let azurite = Azurite::start(Tls::Https).await;
//!     let client = azurite.client(); // sasgate's BlobServiceClient, Shared Key, trusts the cert
//!     // ... azurite.endpoint(), azurite.http_client(), fake_entra_jwt(oid, tid)
//! } // the emulator is killed here
//! ```
//!
//! Azurite comes from the repository's `package.json` (`npm ci` installs it into
//! `node_modules/`), or from the path in `SASGATE_AZURITE_BIN`. HTTPS instances get a fresh
//! self-signed certificate (rcgen, SANs `127.0.0.1` and `localhost`) and `--oauth basic`, so
//! bearer tokens made by [`fake_entra_jwt`] are accepted. Everything lives in a temporary
//! directory that disappears with the [`Azurite`] value.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sasgate::azure::BlobServiceClient;
use sasgate::secret::SigningKey;
use tempfile::TempDir;
use url::Url;

/// The emulator's well-known account.
pub const ACCOUNT: &str = "devstoreaccount1";
/// The emulator's well-known account key (public, documented by Microsoft).
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// How long Azurite may take to answer its first request.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How often readiness is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How many fresh ports to try when the chosen one is taken before Azurite binds it.
const PORT_ATTEMPTS: usize = 5;
/// How many lines of each log go into a failure message.
const TAIL_LINES: usize = 40;

/// Which scheme the emulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// HTTPS with a per-instance self-signed certificate, and `--oauth basic`.
    Https,
    /// Plain HTTP (Azurite then refuses bearer tokens).
    Http,
}

/// A running `azurite-blob`, killed on drop.
pub struct Azurite {
    child: Child,
    port: u16,
    tls: Tls,
    cert: Option<PathBuf>,
    log: PathBuf,
    debug_log: PathBuf,
    startup: Duration,
    // Last, so the directory is removed after the child is gone.
    _dir: TempDir,
}

/// Why a start attempt failed.
enum Failure {
    /// Someone else bound the port between our probe and Azurite's bind: retry elsewhere.
    PortTaken,
    Other(String),
}

impl Azurite {
    /// Starts a fresh, in-memory Azurite blob service and waits until it answers HTTP requests.
    /// Panics, with the tail of the emulator's output, if it cannot be started within 30 s.
    pub async fn start(tls: Tls) -> Self {
        let bin = azurite_bin();
        let dir = tempfile::Builder::new()
            .prefix("sasgate-azurite-")
            .tempdir()
            .expect("create a temporary directory for Azurite");
        let cert = (tls == Tls::Https).then(|| write_self_signed_cert(dir.path()));
        let log = dir.path().join("azurite.log");
        let debug_log = dir.path().join("debug.log");

        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let began = Instant::now();
            let mut child = spawn(&bin, dir.path(), port, tls, &log, &debug_log);
            let http = http_client_for(cert.as_deref());
            let endpoint = endpoint_for(tls, port);
            match wait_until_ready(&mut child, port, &endpoint, &http, &log).await {
                Ok(()) => {
                    return Self {
                        child,
                        port,
                        tls,
                        cert,
                        log,
                        debug_log,
                        startup: began.elapsed(),
                        _dir: dir,
                    };
                }
                Err(failure) => {
                    let tail = tails(&log, &debug_log);
                    stop(&mut child);
                    match failure {
                        Failure::PortTaken => failures.push(format!("port {port} taken:\n{tail}")),
                        Failure::Other(why) => panic!(
                            "Azurite ({}) did not start on port {port}: {why}\n{tail}",
                            bin.display()
                        ),
                    }
                }
            }
        }
        panic!(
            "Azurite could not bind a free port in {PORT_ATTEMPTS} attempts\n{}",
            failures.join("\n")
        );
    }

    /// The Blob endpoint, path-style: `https://127.0.0.1:<port>/devstoreaccount1` (or `http`).
    pub fn endpoint(&self) -> Url {
        endpoint_for(self.tls, self.port)
    }

    /// The PEM certificate to trust for HTTPS; `None` for plain HTTP.
    pub fn ca_pem_path(&self) -> Option<&Path> {
        self.cert.as_deref()
    }

    /// The emulator's account name, `devstoreaccount1`.
    pub fn account(&self) -> &'static str {
        ACCOUNT
    }

    /// The emulator's well-known account key.
    pub fn key(&self) -> SigningKey {
        SigningKey::from_base64(KEY).expect("the dev key is valid base64")
    }

    /// sasgate's client for this emulator, authorizing with Shared Key and trusting its cert.
    pub fn client(&self) -> BlobServiceClient {
        BlobServiceClient::new(ACCOUNT, self.endpoint(), self.ca_pem_path(), self.key())
            .expect("build a BlobServiceClient for Azurite")
    }

    /// A plain HTTP client trusting this emulator's certificate, e.g. to fetch SAS URLs.
    pub fn http_client(&self) -> reqwest::Client {
        http_client_for(self.ca_pem_path())
    }

    /// The TCP port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How long the start took, from spawn to the first HTTP answer.
    pub fn startup(&self) -> Duration {
        self.startup
    }

    /// The last lines of Azurite's output and of its debug log (which shows, for instance, the
    /// string-to-sign it computed), for assertion messages.
    pub fn log_tail(&self) -> String {
        tails(&self.log, &self.debug_log)
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// An unsigned JWT that `azurite --oauth basic` accepts as a Microsoft Entra access token for
/// Storage: `alg: none`, empty signature, `iss` `https://sts.windows.net/<tid>/`, `aud`
/// `https://storage.azure.com`, valid from a minute ago for an hour, with `oid` and `tid`.
/// Azurite decodes it without verifying any signature and copies `oid`/`tid` into the user
/// delegation key. Real Azure rejects it.
pub fn fake_entra_jwt(oid: &str, tid: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let header = serde_json::json!({ "alg": "none", "typ": "JWT" });
    let claims = serde_json::json!({
        "aud": "https://storage.azure.com",
        "iss": format!("https://sts.windows.net/{tid}/"),
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + 3600,
        "oid": oid,
        "tid": tid,
        "sub": oid,
        "ver": "1.0",
    });
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// `SASGATE_AZURITE_BIN`, else `<repo>/node_modules/.bin/azurite-blob`; panics with the fix if
/// neither exists.
fn azurite_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("SASGATE_AZURITE_BIN") {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "SASGATE_AZURITE_BIN={} does not exist; unset it to use the repository's \
             node_modules/.bin/azurite-blob",
            bin.display()
        );
        return bin;
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = manifest.join("node_modules/.bin/azurite-blob");
    assert!(
        bin.is_file(),
        "Azurite is not installed: {} is missing.\n\
         Run `npm ci` in {} (Node.js 20 or later; installs the azurite version pinned in \
         package.json), or set SASGATE_AZURITE_BIN to an azurite-blob executable.",
        bin.display(),
        manifest.display()
    );
    bin
}

/// A port that was free a moment ago (the OS picks it; Azurite binds it next).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0 to find a free port")
}

/// Writes `cert.pem` and `key.pem` for `127.0.0.1` and `localhost`; returns the cert's path.
fn write_self_signed_cert(dir: &Path) -> PathBuf {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("generate a self-signed certificate");
    let cert = dir.join("cert.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("write cert.pem");
    std::fs::write(dir.join("key.pem"), certified.key_pair.serialize_pem()).expect("write key.pem");
    cert
}

fn spawn(bin: &Path, dir: &Path, port: u16, tls: Tls, log: &Path, debug_log: &Path) -> Child {
    let out = File::create(log).expect("create azurite.log");
    let err = out.try_clone().expect("clone the azurite.log handle");
    let mut cmd = Command::new(bin);
    cmd.current_dir(dir)
        .args(["--blobHost", "127.0.0.1", "--blobPort"])
        .arg(port.to_string())
        .args([
            "--inMemoryPersistence",
            "--loose",
            "--skipApiVersionCheck",
            "--disableTelemetry",
        ])
        .arg("--debug")
        .arg(debug_log)
        // A custom account list in the caller's environment would disable devstoreaccount1.
        .env_remove("AZURITE_ACCOUNTS")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    if tls == Tls::Https {
        cmd.arg("--cert")
            .arg(dir.join("cert.pem"))
            .arg("--key")
            .arg(dir.join("key.pem"))
            .args(["--oauth", "basic"]);
    }
    cmd.spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e} (is Node.js installed?)", bin.display()))
}

/// Polls until Azurite answers an HTTP request (any status), it exits, or the deadline passes.
async fn wait_until_ready(
    child: &mut Child,
    port: u16,
    endpoint: &Url,
    http: &reqwest::Client,
    log: &Path,
) -> Result<(), Failure> {
    let deadline = Instant::now() + START_DEADLINE;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut last_error = String::from("no attempt made");
    while Instant::now() < deadline {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Failure::Other(e.to_string()))?
        {
            let output = std::fs::read_to_string(log).unwrap_or_default();
            return Err(if output.contains("EADDRINUSE") {
                Failure::PortTaken
            } else {
                Failure::Other(format!("it exited with {status}"))
            });
        }
        // Cheap check first; the HTTP request proves the server (and TLS) is really up.
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            let probe = http
                .get(endpoint.clone())
                .query(&[("comp", "list")])
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            match probe {
                Ok(_) => return Ok(()),
                Err(e) => last_error = format!("HTTP probe failed: {e}"),
            }
        } else {
            last_error = format!("nothing listening on {addr} yet");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    Err(Failure::Other(format!(
        "no HTTP answer within {START_DEADLINE:?} (last: {last_error})"
    )))
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn endpoint_for(tls: Tls, port: u16) -> Url {
    let scheme = match tls {
        Tls::Https => "https",
        Tls::Http => "http",
    };
    Url::parse(&format!("{scheme}://127.0.0.1:{port}/{ACCOUNT}")).expect("a valid endpoint URL")
}

fn http_client_for(cert: Option<&Path>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder();
    if let Some(cert) = cert {
        let pem = std::fs::read(cert).expect("read cert.pem");
        let cert = reqwest::Certificate::from_pem(&pem).expect("parse cert.pem");
        builder = builder.add_root_certificate(cert);
    }
    builder.build().expect("build a reqwest client")
}

/// The last lines of both logs, labelled.
fn tails(log: &Path, debug_log: &Path) -> String {
    format!(
        "--- azurite output ({}) ---\n{}\n--- azurite debug log, tail ---\n{}",
        log.display(),
        tail(log, TAIL_LINES),
        tail(debug_log, TAIL_LINES)
    )
}

/// The last `lines` lines of a file (read from its last 64 KiB), each cut at 600 characters.
fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return "(no file)".into();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| l.chars().take(600).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}
