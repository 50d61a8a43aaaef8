//! sasgate serving HTTPS itself: an operator gives it a certificate and key, clients trusting
//! the CA reach it over TLS (h2 or HTTP/1.1) and never over plain HTTP, a renewed certificate is
//! picked up without a restart, and a broken renewal leaves the old certificate in service.
//!
//! No emulator is needed: the server runs with no accounts and an empty policy, and the tests
//! talk to `/healthz` and `/v1/tokens` (refused by policy, which proves the request reached the
//! handler with its `ConnectInfo`). Certificates come from a test CA made with rcgen; the client
//! side is tokio-rustls (to see which certificate a handshake presents and which protocol ALPN
//! chose) and hyper (to hold one connection open across a reload).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::app::{Setup, write_setup_in};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use sasgate::app::Application;
use sasgate::config::{Config, ConfigErrors};
use sha2::{Digest as _, Sha256};
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
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca.pem().as_bytes()).unwrap())
            .build()
            .unwrap()
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
        let app = Application::build(config)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
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
    // Well within the 10 s a stalled handshake is given.
    let r = tokio::time::timeout(
        Duration::from_secs(5),
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
