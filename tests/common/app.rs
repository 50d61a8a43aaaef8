//! One helper that runs the real sasgate router against a real Azurite, per test.
//!
//! [`spawn_app`] writes a configuration into a temporary directory (the shipped `policy/` files,
//! an account pointing at a fresh Azurite over HTTPS, three principals with fresh API keys, a
//! SQLite ledger), builds the [`Application`] on port 0 and serves it in the background.
//! [`spawn_binary`] does the same with the real `sasgate` executable, for tests that kill it or
//! read its logs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sasgate::app::Application;
use sasgate::auth::generate_api_key;
use sasgate::config::Config;
use sasgate::ledger::Ledger;
use sasgate::sas::name::{BlobName, ContainerName};
use serde_json::{Value, json};
use tempfile::TempDir;

use super::azurite::{Azurite, KEY, Tls};

/// The content of `models/published/model.bin`.
pub const MODEL: &[u8] = b"published model weights";

/// A running sasgate with its emulator, principals and ledger.
pub struct TestApp {
    pub azurite: Arc<Azurite>,
    /// `http://127.0.0.1:<port>`
    pub address: String,
    pub http: reqwest::Client,
    pub dir: TempDir,
    pub alice: String,
    pub admin: String,
    pub ci: String,
    pub ledger: Arc<dyn Ledger>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// The configuration files of a test app.
pub struct Setup {
    pub dir: TempDir,
    pub config: PathBuf,
    pub alice: String,
    pub admin: String,
    pub ci: String,
}

/// Writes config, policy and key files for an app in front of `azurite`, with the ledger at
/// `ledger_path` (default `<dir>/ledger.db`).
pub fn write_setup(azurite: &Azurite, ledger_path: Option<&Path>) -> Setup {
    write_setup_at(azurite.endpoint().as_str(), azurite, ledger_path, None)
}

/// [`write_setup`] with the account's blob endpoint at `endpoint` (e.g. a proxy in front of
/// `azurite`, whose CA it trusts) and, if given, these policy files instead of `policy/`.
pub fn write_setup_at(
    endpoint: &str,
    azurite: &Azurite,
    ledger_path: Option<&Path>,
    policy_files: Option<&[(&str, &str)]>,
) -> Setup {
    let dir = tempfile::Builder::new()
        .prefix("sasgate-app-")
        .tempdir()
        .unwrap();
    let key_file = dir.path().join("account.key");
    std::fs::write(&key_file, KEY).unwrap();
    let account = format!(
        r#"[[accounts]]
name = "devstoreaccount1"
blob_endpoint = "{endpoint}"
key_file = "{key_file}"
ca_file = "{ca}"
"#,
        key_file = key_file.display(),
        ca = azurite.ca_pem_path().unwrap().display(),
    );
    write_setup_in(dir, ledger_path, &account, policy_files)
}

/// Writes a setup into `dir` with the `[[accounts]]` text `accounts` and, if given, these policy
/// files (name, content) instead of the shipped `policy/`.
pub fn write_setup_in(
    dir: TempDir,
    ledger_path: Option<&Path>,
    accounts: &str,
    policy_files: Option<&[(&str, &str)]>,
) -> Setup {
    let policy = dir.path().join("policy");
    std::fs::create_dir(&policy).unwrap();
    match policy_files {
        Some(files) => {
            for (name, text) in files {
                std::fs::write(policy.join(name), text).unwrap();
            }
        }
        None => {
            for entry in
                std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("policy")).unwrap()
            {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "toml") {
                    std::fs::copy(&path, policy.join(path.file_name().unwrap())).unwrap();
                }
            }
        }
    }
    let keys: Vec<_> = (0..3).map(|_| generate_api_key().unwrap()).collect();
    // The OIDC issuers of the shipped policies, trusting the test key set (tests/keys/); a copy,
    // so that a test can rotate it.
    let jwks = dir.path().join("jwks.json");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys/oidc-jwks.json"),
        &jwks,
    )
    .unwrap();
    let ledger = ledger_path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.path().join("ledger.db"));
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "http://127.0.0.1:0"
[ledger]
url = "sqlite://{ledger}"
[policy]
dir = "{policy}"
[limits]
mint_burst = 1000000
mint_rate_per_minute = 1000000
[[auth.oidc]]
name = "github"
issuer = "https://token.actions.githubusercontent.com"
audiences = ["sasgate"]
jwks_file = "{jwks}"
algorithms = ["RS256", "ES256"]
required_claims = ["repository", "repository_owner_id", "ref"]
jwks_min_refresh_interval = "1s"
[[auth.oidc]]
name = "gitlab"
issuer = "https://gitlab.com"
audiences = ["sasgate"]
jwks_file = "{jwks}"
required_claims = ["project_path", "ref", "ref_type"]
[principals.alice]
api_key_sha256 = "{a}"
roles = ["researcher"]
[principals.admin]
api_key_sha256 = "{b}"
roles = ["admin"]
[principals.ci]
api_key_sha256 = "{c}"
roles = ["ci"]

{accounts}
"#,
        ledger = ledger.display(),
        policy = policy.display(),
        jwks = jwks.display(),
        a = keys[0].sha256_hex,
        b = keys[1].sha256_hex,
        c = keys[2].sha256_hex,
    );
    let config_path = dir.path().join("sasgate.toml");
    std::fs::write(&config_path, config).unwrap();
    let mut keys = keys.into_iter().map(|k| k.key);
    Setup {
        config: config_path,
        alice: keys.next().unwrap(),
        admin: keys.next().unwrap(),
        ci: keys.next().unwrap(),
        dir,
    }
}

/// Creates the containers and blobs the shipped policies talk about.
pub async fn seed(azurite: &Azurite) {
    let client = azurite.client();
    for c in [
        "models", "datasets", "ci-build", "secrets", "reports", "shared",
    ] {
        client
            .create_container(&ContainerName::parse(c).unwrap())
            .await
            .unwrap();
    }
    let put = |c: &str, b: &str, body: &[u8]| {
        let client = client.clone();
        let (c, b, body) = (
            ContainerName::parse(c).unwrap(),
            BlobName::parse(b).unwrap(),
            body.to_vec(),
        );
        async move {
            client
                .put_blob(&c, &b, body, "application/octet-stream")
                .await
                .unwrap()
        }
    };
    put("models", "published/model.bin", MODEL).await;
    put("models", "drafts/unreleased.bin", b"not for sharing").await;
    put("datasets", "survey.csv", b"a,b\n1,2\n").await;
    put("secrets", "keys.txt", b"top secret").await;
    put("reports", "q1.pdf", b"quarter one").await;
    put("reports", "q2.pdf", b"quarter two").await;
    put("shared", "paper.pdf", b"the paper").await;
}

/// Starts Azurite (HTTPS), seeds it, and serves sasgate in-process on port 0.
pub async fn spawn_app() -> TestApp {
    spawn_app_with_ledger(None).await
}

/// A second replica of `first`: its own process state, the same emulator and ledger file.
pub async fn spawn_app_on(first: &TestApp) -> TestApp {
    let setup = Setup {
        dir: tempfile::tempdir().unwrap(),
        config: first.dir.path().join("sasgate.toml"),
        alice: first.alice.clone(),
        admin: first.admin.clone(),
        ci: first.ci.clone(),
    };
    serve(first.azurite.clone(), setup, &[]).await
}

/// Builds the application from `setup` (port 0) and serves it in the background.
pub async fn serve(azurite: Arc<Azurite>, setup: Setup, env: &[(&str, &str)]) -> TestApp {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let config = Config::load_from(Some(&setup.config), &env).unwrap_or_else(|e| panic!("{e}"));
    let app = Application::build(config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let address = format!("http://{}", app.local_addr().unwrap());
    let ledger = app.ledger();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    TestApp {
        http: azurite.http_client(),
        azurite,
        address,
        dir: setup.dir,
        alice: setup.alice,
        admin: setup.admin,
        ci: setup.ci,
        ledger,
        stop: Some(stop),
        server: Some(server),
    }
}

/// As [`spawn_app`] with the ledger file at `ledger_path`.
pub async fn spawn_app_with_ledger(ledger_path: Option<&Path>) -> TestApp {
    spawn_app_with(ledger_path, &[]).await
}

/// As [`spawn_app`], with `SASGATE_…` overrides in `env` (e.g. a short policy rotation).
pub async fn spawn_app_with(ledger_path: Option<&Path>, env: &[(&str, &str)]) -> TestApp {
    let azurite = Azurite::start(Tls::Https).await;
    seed(&azurite).await;
    let setup = write_setup(&azurite, ledger_path);
    serve(Arc::new(azurite), setup, env).await
}

impl TestApp {
    /// `POST /v1/tokens` as `key`; returns status and JSON body.
    pub async fn mint(&self, key: &str, body: Value) -> (u16, Value) {
        self.post(key, "/v1/tokens", body).await
    }

    /// POST JSON with a bearer key.
    pub async fn post(&self, key: &str, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.address))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// GET with a bearer key.
    pub async fn get(&self, key: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.address))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Downloads a SAS URL from the emulator.
    pub async fn download(&self, url: &str) -> (u16, Vec<u8>) {
        let r = self.http.get(url).send().await.unwrap();
        (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.server.take() {
            h.await.unwrap().unwrap();
        }
    }
}

/// A body for alice's usual request.
pub fn model_request() -> Value {
    json!({"account": "devstoreaccount1", "container": "models", "blob": "published/model.bin", "ttl": "15m"})
}

/// The real `sasgate serve` process, its logs captured to a file.
pub struct Binary {
    pub child: Child,
    pub address: String,
    pub log: PathBuf,
}

/// Starts `sasgate serve --config <config>` and waits (polling, with a deadline) until
/// `/healthz` answers. `port` 0 picks a free one.
pub async fn spawn_binary(config: &Path, port: u16, log: &Path) -> Binary {
    let port = if port == 0 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        port
    };
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_sasgate"))
        .args(["serve", "--config"])
        .arg(config)
        .env("SASGATE_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let address = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{address}/healthz")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sasgate did not start:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Binary {
        child,
        address,
        log: log.to_path_buf(),
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every issuance the admin listing returns, following cursors, `limit` per page.
pub async fn list_all(
    http: &reqwest::Client,
    address: &str,
    admin_key: &str,
    limit: usize,
) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = http
            .get(format!("{address}/v1/issuances"))
            .bearer_auth(admin_key)
            .query(&[("limit", limit.to_string())]);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200);
        let page: Value = r.json().await.unwrap();
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
}
