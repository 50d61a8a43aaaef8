//! sasgate serving HTTPS itself: an operator gives it a certificate and key, clients trusting
//! the CA reach it over TLS (h2 or HTTP/1.1) and never over plain HTTP, a renewed certificate is
//! picked up without a restart, and a broken renewal leaves the old certificate in service.
//!
//! No emulator is needed: the server runs with no accounts and an empty policy, and the tests
//! talk to `/healthz` and `/v1/tokens` (refused by policy, which proves the request reached the
//! handler with its `ConnectInfo`). Certificates come from a test CA made with rcgen; the client
//! side is tokio-rustls (to see which certificate a handshake presents and which protocol ALPN
//! chose) and hyper (to hold one connection open across a reload).
//!
//! The bounds on connections (header-read and idle timeouts, the connection cap, the handshake
//! caps) run with short values given through `Application::with_limits`, so that no test waits
//! for the production timeouts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::app::{Setup, write_setup_in};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use sasgate::app::{Application, ServeLimits};
use sasgate::config::{Config, ConfigErrors};
use sasgate::tls::HandshakeLimits;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// How long a test waits for something that should happen within a reload interval or two.
const DEADLINE: Duration = Duration::from_secs(20);

/// A test certificate authority.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

/// A server certificate issued by a [`Ca`]: the chain and key as PEM, and the certificate's DER
/// (what a client sees in the handshake).
#[derive(Clone)]
struct Leaf {
    chain_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Self { cert, key }
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate for `127.0.0.1` and `localhost` with common name `cn` and a fresh key; the
    /// chain is the certificate, then the CA.
    fn issue(&self, cn: &str) -> Leaf {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf {
            chain_pem: format!("{}{}", cert.pem(), self.cert.pem()),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

impl Leaf {
    /// As `openssl x509 -fingerprint -sha256` and sasgate's log show it.
    fn fingerprint(&self) -> String {
        Sha256::digest(&self.der)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    /// The base64 lines of the private key: what must never appear in an error or a log.
    fn key_lines(&self) -> Vec<String> {
        self.key_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::to_owned)
            .collect()
    }
}

/// A deployment: configuration, empty policy, principals, and the TLS files.
struct Site {
    setup: Setup,
    ca: Ca,
    cert_file: PathBuf,
    key_file: PathBuf,
}

impl Site {
    /// A site serving a first certificate ("one") from a fresh CA.
    fn new() -> (Self, Leaf) {
        let dir = tempfile::Builder::new()
            .prefix("sasgate-tls-")
            .tempdir()
            .unwrap();
        let setup = write_setup_in(dir, None, "", Some(&[]));
        let ca = Ca::new("sasgate test CA");
        let site = Site {
            cert_file: setup.dir.path().join("tls.crt"),
            key_file: setup.dir.path().join("tls.key"),
            setup,
            ca,
        };
        let first = site.ca.issue("one.sasgate.test");
        site.install(&first);
        (site, first)
    }

    /// Replaces the files as a renewal agent does: each file written aside, then renamed over
    /// the old one (the certificate first).
    fn install(&self, leaf: &Leaf) {
        self.replace(&leaf.chain_pem, &leaf.key_pem);
    }

    fn replace(&self, chain_pem: &str, key_pem: &str) {
        for (path, text) in [(&self.cert_file, chain_pem), (&self.key_file, key_pem)] {
            let aside = path.with_extension("new");
            std::fs::write(&aside, text).unwrap();
            std::fs::rename(&aside, path).unwrap();
        }
    }

    /// The `SASGATE_…` variables that turn TLS on, re-reading the files every `interval`.
    fn tls_env(&self, interval: &str) -> Vec<(String, String)> {
        vec![
            (
                "SASGATE_SERVER__TLS_CERT_FILE".into(),
                self.cert_file.display().to_string(),
            ),
            (
                "SASGATE_SERVER__TLS_KEY_FILE".into(),
                self.key_file.display().to_string(),
            ),
            (
                "SASGATE_SERVER__PUBLIC_URL".into(),
                "https://localhost:8443".into(),
            ),
            (
                "SASGATE_SERVER__TLS_RELOAD_INTERVAL".into(),
                interval.into(),
            ),
        ]
    }

    fn load(&self, env: &[(String, String)]) -> Result<Config, ConfigErrors> {
        Config::load_from(Some(&self.setup.config), env)
    }

    /// A reqwest client that trusts this site's CA (and only it).
    fn https(&self) -> reqwest::Client {
        self.https_builder().build().unwrap()
    }

    /// As [`Site::https`], connecting from the local address `from` (127.0.0.2 is another
    /// client address on the loopback interface).
    fn https_from(&self, from: IpAddr) -> reqwest::Client {
        self.https_builder().local_address(from).build().unwrap()
    }

    fn https_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .no_proxy()
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca.pem().as_bytes()).unwrap())
    }
}

/// sasgate served in-process on port 0.
struct Served {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Served {
    async fn start(config: Config) -> Self {
        Self::start_with(config, ServeLimits::default()).await
    }

    /// Served within `limits` instead of the production ones.
    async fn start_with(config: Config, limits: ServeLimits) -> Self {
        let app = Application::build(config)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .with_limits(limits);
        assert!(app.serves_tls());
        let addr = app.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        Self { addr, stop, server }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.server.await.unwrap().unwrap();
    }
}

/// A rustls client trusting `ca_pem`, offering `alpn`, speaking `versions`.
fn client_config(
    ca_pem: &str,
    alpn: &[&[u8]],
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// One TLS connection to `addr`, verified for the name `127.0.0.1`.
async fn connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(config)
        .connect(ServerName::try_from("127.0.0.1").unwrap().to_owned(), tcp)
        .await
}

/// The DER of the certificate the server presented.
fn presented(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// Handshakes until the server presents `want` (a reload is asynchronous), failing after
/// [`DEADLINE`]; `why` says what was awaited.
async fn wait_until_presented(addr: SocketAddr, ca_pem: &str, want: &Leaf, why: &str) {
    let config = client_config(ca_pem, &[], rustls::DEFAULT_VERSIONS);
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(stream) = connect(addr, config.clone()).await
            && presented(&stream) == want.der
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{why}: not served within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET /healthz` on an HTTP/1.1 connection held by the caller; the status.
async fn healthz_http1(sender: &mut hyper::client::conn::http1::SendRequest<String>) -> u16 {
    let request = hyper::Request::get("/healthz")
        .header("host", "127.0.0.1")
        .body(String::new())
        .unwrap();
    sender
        .send_request(request)
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// An HTTP/1.1 keep-alive connection over `stream`.
async fn http1(stream: TlsStream<TcpStream>) -> hyper::client::conn::http1::SendRequest<String> {
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

#[tokio::test]
async fn https_answers_with_the_configured_certificate_and_plain_http_is_refused() {
    let (site, first) = Site::new();
    let served = Served::start(site.load(&site.tls_env("30s")).unwrap()).await;
    let https = site.https();

    let r = https
        .get(format!("https://127.0.0.1:{}/healthz", served.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The handshake presents the configured certificate, and the chain up to the CA.
    let stream = connect(
        served.addr,
        client_config(&site.ca.pem(), &[], rustls::DEFAULT_VERSIONS),
    )
    .await
    .unwrap();
    let chain = stream.get_ref().1.peer_certificates().unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[0].as_ref(), first.der.as_slice());

    // A request reaches its handler with the client's address (ConnectInfo): refused by the
    // (empty) policy, not a 500 for a missing extension.
    let r = https
        .post(format!("https://127.0.0.1:{}/v1/tokens", served.addr.port()))
        .bearer_auth(&site.setup.alice)
        .json(&serde_json::json!({"account": "devstoreaccount1", "container": "models", "blob": "a.bin"}))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_client_error(),
        "a mint over TLS: {}",
        r.status()
    );

    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/healthz", served.addr.port()))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");

    // A client that does not trust the CA refuses the server.
    let untrusting = client_config(&Ca::new("another CA").pem(), &[], rustls::DEFAULT_VERSIONS);
    assert!(connect(served.addr, untrusting).await.is_err());

    // And the server still serves after all that.
    let r = https
        .get(format!("https://127.0.0.1:{}/healthz", served.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    served.stop().await;
}

#[tokio::test]
async fn h2_and_http1_are_offered_through_alpn_and_tls_1_2_and_1_3_are_accepted() {
    let (site, _) = Site::new();
    let served = Served::start(site.load(&site.tls_env("30s")).unwrap()).await;
    let ca = site.ca.pem();
    let all = rustls::DEFAULT_VERSIONS;

    // A client offering both gets h2, and h2 is really spoken.
    let stream = connect(served.addr, client_config(&ca, &[b"h2", b"http/1.1"], all))
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::get(format!("https://127.0.0.1:{}/healthz", served.addr.port()))
        .body(String::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), hyper::Version::HTTP_2);

    // A client offering only HTTP/1.1 gets it; one offering nothing is served HTTP/1.1 too.
    let stream = connect(served.addr, client_config(&ca, &[b"http/1.1"], all))
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(healthz_http1(&mut http1(stream).await).await, 200);
    let stream = connect(served.addr, client_config(&ca, &[], all))
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), None);
    assert_eq!(healthz_http1(&mut http1(stream).await).await, 200);

    // TLS 1.3 and TLS 1.2 (the minimum; rustls speaks nothing older).
    for (version, expected) in [
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
    ] {
        let stream = connect(served.addr, client_config(&ca, &[], &[version]))
            .await
            .unwrap();
        assert_eq!(stream.get_ref().1.protocol_version(), Some(expected));
        assert_eq!(healthz_http1(&mut http1(stream).await).await, 200);
    }
    served.stop().await;
}

#[tokio::test]
async fn a_client_that_stalls_its_handshake_holds_up_nobody_else() {
    let (site, _) = Site::new();
    let served = Served::start(site.load(&site.tls_env("30s")).unwrap()).await;
    // Connections that never send a ClientHello, and one that sends half of a record.
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(TcpStream::connect(served.addr).await.unwrap());
    }
    let mut half = TcpStream::connect(served.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut half, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    // Well within the 5 s a stalled handshake is given.
    let r = tokio::time::timeout(
        Duration::from_secs(3),
        site.https()
            .get(format!("https://127.0.0.1:{}/healthz", served.addr.port()))
            .send(),
    )
    .await
    .expect("a stalled handshake held up another client")
    .unwrap();
    assert_eq!(r.status(), 200);
    drop((silent, half));
    served.stop().await;
}

#[tokio::test]
async fn a_renewed_certificate_is_served_to_new_connections_while_open_ones_continue() {
    let (site, first) = Site::new();
    let served = Served::start(site.load(&site.tls_env("1s")).unwrap()).await;
    let ca = site.ca.pem();

    // A keep-alive connection made with the first certificate.
    let stream = connect(
        served.addr,
        client_config(&ca, &[b"http/1.1"], rustls::DEFAULT_VERSIONS),
    )
    .await
    .unwrap();
    assert_eq!(presented(&stream), first.der);
    let mut open = http1(stream).await;
    assert_eq!(healthz_http1(&mut open).await, 200);

    // The renewal agent replaces the files (new key, new name, new serial).
    let second = site.ca.issue("two.sasgate.test");
    site.install(&second);
    wait_until_presented(served.addr, &ca, &second, "the renewed certificate").await;

    // The connection opened before the renewal still works, and new clients are fine too.
    assert_eq!(healthz_http1(&mut open).await, 200);
    assert_eq!(healthz_http1(&mut open).await, 200);
    let r = site
        .https()
        .get(format!("https://127.0.0.1:{}/healthz", served.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A renewal from a new CA (a CA rotation) is picked up the same way.
    let new_ca = Ca::new("sasgate test CA 2");
    let third = new_ca.issue("three.sasgate.test");
    site.install(&third);
    wait_until_presented(
        served.addr,
        &new_ca.pem(),
        &third,
        "the certificate of the new CA",
    )
    .await;
    served.stop().await;
}

/// The real `sasgate serve`, its log in a file.
struct Binary {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Binary {
    /// Starts `sasgate serve` on a free port with `env` (and nothing else from this process's
    /// environment) and waits for `/healthz` over HTTPS.
    async fn start(site: &Site, env: &[(String, String)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = site.setup.dir.path().join("sasgate.log");
        let child = Command::new(env!("CARGO_BIN_EXE_sasgate"))
            .args(["serve", "--config"])
            .arg(&site.setup.config)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("SASGATE_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let binary = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        };
        let https = site.https();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = https.get(binary.url("/healthz")).send().await
                && r.status().is_success()
            {
                return binary;
            }
            assert!(
                Instant::now() < deadline,
                "sasgate did not start:\n{}",
                binary.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds `count` lines containing `needle`.
    async fn wait_for_log(&self, needle: &str, count: usize) {
        let deadline = Instant::now() + DEADLINE;
        while self
            .log_text()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
            < count
        {
            assert!(
                Instant::now() < deadline,
                "no {count}× {needle:?} in the log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_broken_renewal_keeps_the_old_certificate_in_service_and_logs_no_key_material() {
    let (site, first) = Site::new();
    let binary = Binary::start(&site, &site.tls_env("1s")).await;
    let ca = site.ca.pem();
    let second = site.ca.issue("two.sasgate.test");

    // A new certificate with a key that is not its own.
    site.replace(&second.chain_pem, &site.ca.issue("other").key_pem);
    binary
        .wait_for_log("does not belong to the first certificate", 1)
        .await;
    wait_until_presented(
        binary.addr,
        &ca,
        &first,
        "the old certificate after a mismatch",
    )
    .await;
    assert_eq!(
        site.https()
            .get(binary.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Garbage where the key should be.
    site.replace(
        &second.chain_pem,
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    );
    binary.wait_for_log("is not an RSA, ECDSA", 1).await;
    wait_until_presented(
        binary.addr,
        &ca,
        &first,
        "the old certificate after garbage",
    )
    .await;

    // A missing key file (a renewal caught half-way).
    std::fs::remove_file(&site.key_file).unwrap();
    binary.wait_for_log("cannot read", 1).await;
    assert_eq!(
        site.https()
            .get(binary.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // The agent finishes the job: the good pair is picked up, and the log says which.
    site.install(&second);
    wait_until_presented(binary.addr, &ca, &second, "the repaired renewal").await;
    binary.wait_for_log(&second.fingerprint(), 1).await;

    let log = binary.log_text();
    assert!(
        log.lines()
            .filter(|l| l.contains("TLS certificate not reloaded"))
            .all(|l| l.contains("server.tls_key_file")),
        "{log}"
    );
    for leaf in [&first, &second] {
        for line in leaf.key_lines() {
            assert!(!log.contains(&line), "key material in the log:\n{log}");
        }
    }
    assert!(
        !log.contains("bm90IGEga2V5") && !log.contains("BEGIN"),
        "{log}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_the_certificate_at_once() {
    let (site, first) = Site::new();
    // The interval alone would not reload within the test.
    let binary = Binary::start(&site, &site.tls_env("1h")).await;
    let ca = site.ca.pem();
    let second = site.ca.issue("two.sasgate.test");
    site.install(&second);
    // Nothing happens until the signal.
    let stream = connect(
        binary.addr,
        client_config(&ca, &[], rustls::DEFAULT_VERSIONS),
    )
    .await
    .unwrap();
    assert_eq!(presented(&stream), first.der);

    let status = Command::new("kill")
        .args(["-HUP", &binary.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_until_presented(binary.addr, &ca, &second, "the certificate after SIGHUP").await;
    binary.wait_for_log("SIGHUP", 1).await;
    assert_eq!(
        site.https()
            .get(binary.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// Every problem's text, for checks that no file content is echoed.
fn error_text(e: &ConfigErrors) -> String {
    format!("{e}\n{e:?}")
}

#[test]
fn plain_http_beyond_loopback_is_refused_unless_allowed_or_tls_is_on() {
    let (site, _) = Site::new();
    let beyond = (
        "SASGATE_SERVER__LISTEN".to_owned(),
        "0.0.0.0:8443".to_owned(),
    );

    let err = site.load(std::slice::from_ref(&beyond)).unwrap_err();
    let listen = err.0.iter().find(|e| e.key == "server.listen").unwrap();
    for fix in [
        "server.tls_cert_file",
        "127.0.0.1",
        "server.allow_insecure_http = true",
    ] {
        assert!(listen.message.contains(fix), "{fix} not in: {err}");
    }

    let allowed = site
        .load(&[
            beyond.clone(),
            ("SASGATE_SERVER__ALLOW_INSECURE_HTTP".into(), "true".into()),
        ])
        .unwrap();
    assert!(allowed.tls.is_none());

    // With TLS any address is fine, without allow_insecure_http.
    let mut env = site.tls_env("30s");
    env.push(beyond);
    let c = site.load(&env).unwrap();
    let tls = c.tls.unwrap();
    assert_eq!(tls.cert_file, site.cert_file);
    assert_eq!(tls.reload_interval, Duration::from_secs(30));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn tls_settings_are_checked_at_load_and_errors_never_show_the_files() {
    let (site, first) = Site::new();
    let without = |name: &str| -> Vec<(String, String)> {
        site.tls_env("30s")
            .into_iter()
            .filter(|(k, _)| k != name)
            .collect()
    };
    let expect_error = |env: &[(String, String)], key: &str, words: &[&str]| {
        let err = site.load(env).unwrap_err();
        let text = error_text(&err);
        let problem = err
            .0
            .iter()
            .find(|e| e.key == key)
            .unwrap_or_else(|| panic!("no {key} in:\n{text}"));
        for w in words {
            assert!(problem.message.contains(w), "{w:?} not in: {problem}");
        }
        assert!(!text.contains("BEGIN"), "PEM in:\n{text}");
        for line in first.key_lines() {
            assert!(!text.contains(&line), "key material in:\n{text}");
        }
        text
    };

    // One file without the other.
    expect_error(
        &without("SASGATE_SERVER__TLS_KEY_FILE"),
        "server.tls_key_file",
        &["server.tls_cert_file is set"],
    );
    expect_error(
        &without("SASGATE_SERVER__TLS_CERT_FILE"),
        "server.tls_cert_file",
        &["server.tls_key_file is set"],
    );

    // HTTPS is served, so the public URL says https.
    let mut env = site.tls_env("30s");
    env.retain(|(k, _)| k != "SASGATE_SERVER__PUBLIC_URL");
    expect_error(&env, "server.public_url", &["https://"]);

    // A zero reload interval.
    let mut env = site.tls_env("0s");
    expect_error(&env, "server.tls_reload_interval", &["duration"]);
    env = site.tls_env("30s");

    // A key that belongs to another certificate.
    site.replace(&first.chain_pem, &site.ca.issue("other").key_pem);
    expect_error(
        &env,
        "server.tls_key_file",
        &["does not belong", "tls.key", "tls.crt"],
    );

    // The two files swapped: the certificate file is named first.
    site.replace(&first.key_pem, &first.chain_pem);
    expect_error(
        &env,
        "server.tls_cert_file",
        &["no PEM certificate", "tls.crt"],
    );
    // A certificate where the key should be.
    site.replace(&first.chain_pem, &first.chain_pem);
    expect_error(
        &env,
        "server.tls_key_file",
        &["no PEM private key", "tls.key"],
    );

    // Garbage.
    site.replace(
        &first.chain_pem,
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n",
    );
    let text = expect_error(&env, "server.tls_key_file", &["RSA, ECDSA"]);
    assert!(!text.contains("c2VjcmV0"), "{text}");

    // A file that is not there.
    std::fs::remove_file(&site.key_file).unwrap();
    expect_error(&env, "server.tls_key_file", &["cannot read", "tls.key"]);

    // Repaired: accepted.
    site.install(&first);
    assert!(site.load(&env).is_ok());
}

#[test]
fn config_check_reports_tls_and_refuses_a_mismatched_key() {
    let (site, first) = Site::new();
    let check = |env: &[(String, String)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sasgate"))
            .args(["config", "check", "--config"])
            .arg(&site.setup.config)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let env = site.tls_env("30s");
    let (code, out, err) = check(&env);
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    let tls_line = out
        .lines()
        .find(|l| l.starts_with("tls: on"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        tls_line.contains("CN=one.sasgate.test")
            && tls_line.contains(&first.fingerprint())
            && tls_line.contains("chain of 2")
            && tls_line.contains("re-read every 30s"),
        "{tls_line}"
    );
    let (code, out, _) = check(&[]);
    assert_eq!(code, Some(0));
    assert!(out.contains("tls: off (plain HTTP on loopback)"), "{out}");

    site.replace(&first.chain_pem, &site.ca.issue("other").key_pem);
    let (code, out, err) = check(&env);
    assert_eq!(code, Some(2), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("server.tls_key_file") && err.contains("does not belong"),
        "{err}"
    );
    assert!(!out.contains("BEGIN") && !err.contains("BEGIN"));
}

/// `sasgate healthcheck` (the image's HEALTHCHECK) probes the TLS server it is configured for,
/// whatever name the certificate carries, and fails once nothing answers.
#[tokio::test]
async fn healthcheck_probes_the_https_server_and_fails_when_it_is_gone() {
    let (site, _first) = Site::new();
    let env = site.tls_env("1h");
    let mut binary = Binary::start(&site, &env).await;
    let probe = |listen: String| {
        Command::new(env!("CARGO_BIN_EXE_sasgate"))
            .args(["healthcheck", "--config"])
            .arg(&site.setup.config)
            .env_clear()
            .env("SASGATE_SERVER__LISTEN", listen)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    };
    // The certificate's expiry is exported for alerting.
    let metrics = site
        .https()
        .get(binary.url("/metrics"))
        .bearer_auth(&site.setup.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let expiry: i64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sasgate_tls_certificate_expiry_seconds "))
        .unwrap_or_else(|| panic!("no certificate expiry:\n{metrics}"))
        .parse()
        .unwrap();
    assert!(expiry > chrono::Utc::now().timestamp(), "{expiry}");
    // 0.0.0.0 is probed on loopback.
    let ok = probe(format!("0.0.0.0:{}", binary.addr.port()));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("https://127.0.0.1:"));
    let _ = binary.child.kill();
    let _ = binary.child.wait();
    let gone = probe(binary.addr.to_string());
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("unhealthy"));
}

// ---- bounds on connections and handshakes ---------------------------------------------------

/// Production limits with these changes.
fn limits(change: impl FnOnce(&mut ServeLimits)) -> ServeLimits {
    let mut limits = ServeLimits::default();
    change(&mut limits);
    limits
}

/// Reads (and discards) what the server sends until it closes the connection; how long that
/// took, or `None` if it was still open after `within`.
async fn closed_within<S: AsyncRead + Unpin>(stream: &mut S, within: Duration) -> Option<Duration> {
    let start = tokio::time::Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(start + within, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// An HTTP/1.1 keep-alive connection over `stream`, with its connection task (which ends when
/// the server closes the connection).
async fn http1_with_task(
    stream: TlsStream<TcpStream>,
) -> (
    hyper::client::conn::http1::SendRequest<String>,
    tokio::task::JoinHandle<()>,
) {
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    (sender, task)
}

/// `sasgate_tls_handshake_failures_total` by reason, read from `/metrics` from address `from`.
async fn handshake_failures(site: &Site, addr: SocketAddr, from: IpAddr) -> BTreeMap<String, u64> {
    let text = site
        .https_from(from)
        .get(format!("https://127.0.0.1:{}/metrics", addr.port()))
        .bearer_auth(&site.setup.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counts: BTreeMap<String, u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("sasgate_tls_handshake_failures_total{reason=\""))
        .filter_map(|l| l.split_once("\"} "))
        .map(|(reason, n)| (reason.to_owned(), n.parse().unwrap()))
        .collect();
    assert_eq!(
        counts.keys().map(String::as_str).collect::<Vec<_>>(),
        ["error", "per_ip_limit", "timeout"],
        "every reason is exported, even at 0:\n{text}"
    );
    counts
}

const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const OTHER_CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

#[tokio::test]
async fn request_headers_that_never_end_are_cut_off_after_the_header_read_timeout() {
    let (site, _) = Site::new();
    let served = Served::start_with(
        site.load(&site.tls_env("30s")).unwrap(),
        limits(|l| {
            l.header_read_timeout = Duration::from_secs(1);
            l.idle_timeout = Duration::from_secs(30);
        }),
    )
    .await;
    let config = client_config(&site.ca.pem(), &[b"http/1.1"], rustls::DEFAULT_VERSIONS);
    // Half a request, then nothing: before the fix this was still open after 70 s.
    let mut stream = connect(served.addr, config.clone()).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let closed = closed_within(&mut stream, Duration::from_secs(10))
        .await
        .expect("a request whose headers never end was still open after 10 s");
    assert!(
        closed >= Duration::from_millis(800),
        "closed after {closed:?}"
    );
    // Headers trickling in a byte at a time do not reset the clock.
    let mut stream = connect(served.addr, config).await.unwrap();
    let start = Instant::now();
    let mut cut = false;
    for byte in
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    {
        if stream.write_all(&[*byte]).await.is_err() || stream.flush().await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !cut {
        cut = closed_within(&mut stream, Duration::from_secs(5))
            .await
            .is_some();
    }
    assert!(cut, "a slow trickle of header bytes kept the connection");
    assert!(start.elapsed() < Duration::from_secs(8));
    served.stop().await;
}

#[tokio::test]
async fn idle_connections_are_closed_before_their_first_request_and_between_requests() {
    let (site, _) = Site::new();
    let ca = site.ca.pem();
    // The header-read timeout short, the idle timeout long: what closes an HTTP/1 keep-alive
    // connection between requests is hyper's header-read timer.
    let served = Served::start_with(
        site.load(&site.tls_env("30s")).unwrap(),
        limits(|l| {
            l.header_read_timeout = Duration::from_secs(1);
            l.idle_timeout = Duration::from_secs(30);
        }),
    )
    .await;
    // A handshake, then silence (not even the bytes that tell HTTP/1 from HTTP/2).
    for alpn in [&b"http/1.1"[..], &b"h2"[..]] {
        let mut stream = connect(
            served.addr,
            client_config(&ca, &[alpn], rustls::DEFAULT_VERSIONS),
        )
        .await
        .unwrap();
        let closed = closed_within(&mut stream, Duration::from_secs(10)).await;
        assert!(
            closed.is_some_and(|d| d >= Duration::from_millis(800)),
            "a silent connection ({}) after its handshake: {closed:?}",
            String::from_utf8_lossy(alpn)
        );
    }
    // HTTP/1.1 keep-alive: one request, then idle.
    let stream = connect(
        served.addr,
        client_config(&ca, &[b"http/1.1"], rustls::DEFAULT_VERSIONS),
    )
    .await
    .unwrap();
    let (mut sender, task) = http1_with_task(stream).await;
    assert_eq!(healthz_http1(&mut sender).await, 200);
    let idle_from = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("an idle HTTP/1.1 keep-alive connection was still open after 10 s")
        .unwrap();
    assert!(idle_from.elapsed() >= Duration::from_millis(800));
    served.stop().await;

    // HTTP/2, whose client answers pings: closed once it has had no request for the idle
    // timeout.
    let served = Served::start_with(
        site.load(&site.tls_env("30s")).unwrap(),
        limits(|l| {
            l.header_read_timeout = Duration::from_secs(30);
            l.idle_timeout = Duration::from_secs(1);
        }),
    )
    .await;
    let stream = connect(
        served.addr,
        client_config(&ca, &[b"h2"], rustls::DEFAULT_VERSIONS),
    )
    .await
    .unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    for _ in 0..3 {
        let request =
            hyper::Request::get(format!("https://127.0.0.1:{}/healthz", served.addr.port()))
                .body(String::new())
                .unwrap();
        assert_eq!(sender.send_request(request).await.unwrap().status(), 200);
        // Requests closer together than the idle timeout keep the connection.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let idle_from = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("an idle HTTP/2 connection was still open after 10 s")
        .unwrap();
    assert!(idle_from.elapsed() >= Duration::from_millis(400));
    served.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot_instead_of_failing() {
    let (site, _) = Site::new();
    let served = Served::start_with(
        site.load(&site.tls_env("30s")).unwrap(),
        limits(|l| l.max_connections = 2),
    )
    .await;
    let config = client_config(&site.ca.pem(), &[b"http/1.1"], rustls::DEFAULT_VERSIONS);
    let mut held = Vec::new();
    for _ in 0..2 {
        let (mut sender, task) =
            http1_with_task(connect(served.addr, config.clone()).await.unwrap()).await;
        assert_eq!(healthz_http1(&mut sender).await, 200);
        held.push((sender, task));
    }
    // A third connection is not refused (its handshake even completes) but waits unserved.
    let (mut third, _third_task) =
        http1_with_task(connect(served.addr, config.clone()).await.unwrap()).await;
    let waiting = tokio::spawn(async move { healthz_http1(&mut third).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !waiting.is_finished(),
        "a connection beyond the cap was served"
    );
    // One of the two closes: the third is served.
    let (sender, task) = held.remove(0);
    drop(sender);
    task.await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the waiting connection was not served once a slot was free")
        .unwrap();
    assert_eq!(status, 200);
    drop(held);
    served.stop().await;
}

#[tokio::test]
async fn one_client_address_gets_a_bounded_share_of_handshakes_and_failures_are_counted() {
    let (site, _) = Site::new();
    let served = Served::start_with(
        site.load(&site.tls_env("30s")).unwrap(),
        limits(|l| {
            l.handshake = HandshakeLimits {
                timeout: Duration::from_secs(3),
                max_pending: 64,
                max_pending_per_ip: 4,
            }
        }),
    )
    .await;
    let healthz = format!("https://127.0.0.1:{}/healthz", served.addr.port());
    // Four silent sockets from 127.0.0.1 hold that address's share.
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(served.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A fifth from the same address is closed at once...
    let mut fifth = TcpStream::connect(served.addr).await.unwrap();
    let closed = closed_within(&mut fifth, Duration::from_secs(2)).await;
    assert!(
        closed.is_some(),
        "a connection over the per-address cap was kept"
    );
    // ... while another address is served.
    let r = site
        .https_from(OTHER_CLIENT)
        .get(&healthz)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Once the silent handshakes time out, 127.0.0.1 is served again.
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(r) = site.https().get(&healthz).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "127.0.0.1 was not served again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Plain HTTP sent to the HTTPS port is a failed handshake.
    let plain = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{}/healthz", served.addr.port()))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err());
    let counts = handshake_failures(&site, served.addr, LOCALHOST).await;
    assert!(counts["per_ip_limit"] >= 1, "{counts:?}");
    assert!(counts["timeout"] >= 4, "{counts:?}");
    assert!(counts["error"] >= 1, "{counts:?}");
    drop(silent);
    served.stop().await;
}

#[tokio::test]
async fn when_every_handshake_slot_is_taken_new_clients_wait_instead_of_being_closed() {
    let (site, _) = Site::new();
    let served = Served::start_with(
        site.load(&site.tls_env("30s")).unwrap(),
        limits(|l| {
            l.handshake = HandshakeLimits {
                timeout: Duration::from_secs(1),
                max_pending: 2,
                max_pending_per_ip: 16,
            }
        }),
    )
    .await;
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(TcpStream::connect(served.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Before: closed at once. Now: accepted once a silent handshake times out.
    let start = Instant::now();
    let r = site
        .https()
        .get(format!("https://127.0.0.1:{}/healthz", served.addr.port()))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("a client was turned away while the handshake slots were full");
    assert_eq!(r.status(), 200);
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "served after {:?}: it did not wait for a slot",
        start.elapsed()
    );
    let counts = handshake_failures(&site, served.addr, LOCALHOST).await;
    assert!(counts["timeout"] >= 2, "{counts:?}");
    assert_eq!(counts["per_ip_limit"], 0, "{counts:?}");
    drop(silent);
    served.stop().await;
}

/// Writes the headers and the first half of a `POST /v1/lint` whose body is `body`; the request
/// is then in its handler, waiting for the rest.
async fn half_a_request(stream: &mut TlsStream<TcpStream>, admin: &str, body: &str) {
    let head = format!(
        "POST /v1/lint HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
        .write_all(&body.as_bytes()[..body.len() / 2])
        .await
        .unwrap();
    stream.flush().await.unwrap();
}

#[tokio::test]
async fn shutdown_drains_a_request_in_flight_accepts_nothing_new_and_stops_at_the_grace_period() {
    let (site, _) = Site::new();
    let ca = site.ca.pem();
    let body = r#"{"url": "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sp=r&se=2030-01-01T00:00:00Z&sr=b&sig=AAAA"}"#;
    let mut env = site.tls_env("30s");
    env.push(("SASGATE_SERVER__SHUTDOWN_GRACE".into(), "30s".into()));
    let served = Served::start(site.load(&env).unwrap()).await;
    let config = client_config(&ca, &[b"http/1.1"], rustls::DEFAULT_VERSIONS);
    let mut stream = connect(served.addr, config.clone()).await.unwrap();
    half_a_request(&mut stream, &site.setup.admin, body).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let Served { addr, stop, server } = served;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Nothing new is accepted.
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "a connection was accepted after the stop signal"
    );
    // The request in flight completes and is answered.
    stream
        .write_all(&body.as_bytes()[body.len() / 2..])
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // With it done, the server stops without waiting out the 30 s grace period.
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server did not stop once drained")
        .unwrap()
        .unwrap();

    // A request that never completes is cut off once the grace period is over.
    let mut env = site.tls_env("30s");
    env.push(("SASGATE_SERVER__SHUTDOWN_GRACE".into(), "1s".into()));
    let served = Served::start(site.load(&env).unwrap()).await;
    let mut stream = connect(served.addr, config).await.unwrap();
    half_a_request(&mut stream, &site.setup.admin, body).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    let Served { stop, server, .. } = served;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server outlived its grace period")
        .unwrap()
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(900));
    assert!(
        closed_within(&mut stream, Duration::from_secs(5))
            .await
            .is_some(),
        "the unfinished request's connection is closed"
    );
}

// ---- the health check and secrets given in the wrong place ----------------------------------

/// `sasgate healthcheck` with `env` and nothing else from this process's environment.
fn healthcheck(site: &Site, env: &[(String, String)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sasgate"))
        .args(["healthcheck", "--config"])
        .arg(&site.setup.config)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap()
}

#[tokio::test]
async fn healthcheck_passes_while_the_old_certificate_is_served_and_ignores_proxies() {
    let (site, first) = Site::new();
    let binary = Binary::start(&site, &site.tls_env("1h")).await;
    let mut env = site.tls_env("1h");
    env.push(("SASGATE_SERVER__LISTEN".into(), binary.addr.to_string()));
    // A proxy that answers nothing: the probe of this machine must not go through it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut proxied = env.clone();
    for var in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
    ] {
        proxied.push((var.into(), format!("http://{dead}")));
    }
    let out = healthcheck(&site, &proxied);
    assert!(
        out.status.success(),
        "through a proxy: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A broken renewal lands on disk: the server keeps serving the old pair...
    site.replace(&first.chain_pem, &site.ca.issue("other").key_pem);
    wait_until_presented(binary.addr, &site.ca.pem(), &first, "the old certificate").await;
    // ... so it is healthy, and so is a secret the probe has no use for (unreadable here).
    let mut broken = env.clone();
    broken.push((
        "SASGATE_LEDGER__URL_FILE".into(),
        "/nonexistent/ledger-url".into(),
    ));
    let out = healthcheck(&site, &broken);
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("healthy: https://"));

    // Whatever goes wrong, the probe exits 1 (never 2).
    let mut bad_listen = env.clone();
    bad_listen.push(("SASGATE_SERVER__LISTEN".into(), "not-an-address".into()));
    bad_listen.retain(|(k, v)| k != "SASGATE_SERVER__LISTEN" || v == "not-an-address");
    let out = healthcheck(&site, &bad_listen);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.listen"));
    let out = Command::new(env!("CARGO_BIN_EXE_sasgate"))
        .args(["healthcheck", "--config", "/nonexistent/sasgate.toml"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    drop(binary);
}

#[test]
fn a_key_given_through_file_file_is_refused_and_its_content_never_printed() {
    let (site, first) = Site::new();
    let mut env = site.tls_env("30s");
    env.retain(|(k, _)| k != "SASGATE_SERVER__TLS_KEY_FILE");
    // The mistake: _FILE_FILE names the key itself, so its content becomes the key's path.
    env.push((
        "SASGATE_SERVER__TLS_KEY_FILE_FILE".into(),
        site.key_file.display().to_string(),
    ));
    env.push(("SASGATE_SERVER__LISTEN".into(), "127.0.0.1:0".into()));
    for args in [&["config", "check"][..], &["serve"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_sasgate"))
            .args(args)
            .arg("--config")
            .arg(&site.setup.config)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
        assert!(
            text.contains("server.tls_key_file")
                && text.contains("SASGATE_SERVER__TLS_KEY_FILE_FILE"),
            "{args:?}: {text}"
        );
        assert!(!text.contains("BEGIN"), "{args:?} printed PEM:\n{text}");
        for line in first.key_lines() {
            assert!(!text.contains(&line), "{args:?} printed the key:\n{text}");
        }
    }
}
