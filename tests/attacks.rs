#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Attack suites (issue 9): every authentication, broker-link, path-escape, privilege-escalation
//! and body attack we know of, replayed against the real router in front of a real Azurite over
//! HTTPS. Zero may be accepted.
//!
//! Each suite is table-driven, counts its attempts and prints exactly one line
//! `RELIABILITY attacks <suite> attempts=<n> accepted=<m>` (read by scripts/reliability.sh). An
//! attack is *accepted* when its answer hands anything out: a success or redirect status, a token,
//! a link or a SAS. Every suite also checks that the ledger holds no issuance but its control
//! cases: the genuine requests each suite makes first, so that a refusal below is known to be
//! about the attack and not a broken setup.
//!
//! A few inputs are not attacks but distinct, legitimate names inside an allowed prefix (Unicode
//! look-alikes of `.` and `/`, which Azure does not normalise): they may be refused or granted,
//! and when granted the token must sign exactly that name, inside the prefix, and open nothing
//! outside it on Azurite. Likewise an ambiguous request (duplicate JSON keys) may be refused or
//! granted, and when granted it must carry exactly the rule's rights.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Utc;
use common::app::{MODEL, TestApp, model_request, seed, serve, write_setup_in};
use common::azurite::{Azurite, KEY, Tls};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, LOCATION, WWW_AUTHENTICATE};
use sasgate::sas::name::{BlobName, ContainerName};
use sasgate::sas::parse::SasKind;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const GITHUB: &str = "https://token.actions.githubusercontent.com";
const OWNER_ID: &str = "190712345";
const RSA: &[u8] = include_bytes!("keys/oidc-rsa.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("keys/oidc-rsa.pub.pem");
/// A key the server does not trust: the attacker's.
const RSA_OTHER: &[u8] = include_bytes!("keys/oidc-rsa-next.pem");
const EC: &[u8] = include_bytes!("keys/oidc-ec.pem");
/// The public half of [`RSA_OTHER`], as a JWK (kid `test-rsa-2`).
const ROTATED_JWKS: &str = include_str!("keys/oidc-jwks-rotated.json");

/// `server.max_body_bytes` as configured (the default).
const MAX_BODY: usize = 16384;
/// `limits.start_backdate` as configured (the default).
const BACKDATE_SECONDS: i64 = 15 * 60;
/// What the drafts blob holds: nothing outside `published/` may ever return it.
const DRAFT: &[u8] = b"not for sharing";

/// An extra rule for the `sip` attacks: the shipped policies require no address.
const IP_POLICY: &str = r#"
[[rule]]
id = "attacks-ip-bound"
description = "Researchers read ipbound/ only from inside 10.20.0.0/16"
principals = ["role:researcher"]
account = "devstoreaccount1"
containers = ["ipbound"]
scopes = ["blob"]
permissions = "r"
default_ttl = "5m"
max_ttl = "10m"
ip_within = ["10.20.0.0/16"]
revocation = "expiry_only"
"#;

// ---------------------------------------------------------------------------------------------
// The app under attack
// ---------------------------------------------------------------------------------------------

/// The real app on a fresh Azurite: the shipped policies plus [`IP_POLICY`], the seeded blobs
/// plus `ipbound/x.bin`.
async fn spawn() -> TestApp {
    let azurite = Azurite::start(Tls::Https).await;
    seed(&azurite).await;
    let client = azurite.client();
    let bound = ContainerName::parse("ipbound").unwrap();
    client.create_container(&bound).await.unwrap();
    client
        .put_blob(
            &bound,
            &BlobName::parse("x.bin").unwrap(),
            b"bound".to_vec(),
            "application/octet-stream",
        )
        .await
        .unwrap();
    let dir = tempfile::Builder::new()
        .prefix("sasgate-attacks-")
        .tempdir()
        .unwrap();
    let key_file = dir.path().join("account.key");
    std::fs::write(&key_file, KEY).unwrap();
    let accounts = format!(
        "[[accounts]]\nname = \"devstoreaccount1\"\nblob_endpoint = \"{}\"\nkey_file = \"{}\"\nca_file = \"{}\"\n",
        azurite.endpoint(),
        key_file.display(),
        azurite.ca_pem_path().unwrap().display(),
    );
    let mut files: Vec<(String, String)> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("policy"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read_to_string(&p).unwrap(),
                )
            })
            .collect();
    files.push(("zz-attacks.toml".into(), IP_POLICY.into()));
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let setup = write_setup_in(dir, None, &accounts, Some(&files));
    serve(Arc::new(azurite), setup, &[]).await
}

/// The ids of every issuance (tokens and links) in the ledger.
async fn issued(app: &TestApp) -> BTreeSet<String> {
    let page = app
        .ledger
        .list(&Default::default(), Utc::now(), 1000, None)
        .await
        .unwrap();
    assert!(page.next_cursor.is_none());
    page.items.into_iter().map(|r| r.id).collect()
}

/// One suite's count of attempts and of what went wrong.
struct Tally {
    suite: &'static str,
    attempts: usize,
    /// Attacks whose answer handed something out.
    accepted: Vec<String>,
    /// Refusals of the wrong kind: a 5xx, a status outside the expected set, a missing code.
    wrong: Vec<String>,
    /// The issuance ids that accepted attacks were answered with (counted once).
    accepted_ids: BTreeSet<String>,
}

impl Tally {
    fn new(suite: &'static str) -> Self {
        Self {
            suite,
            attempts: 0,
            accepted: Vec::new(),
            wrong: Vec::new(),
            accepted_ids: BTreeSet::new(),
        }
    }

    /// Counts one attack: it must hand nothing out and be answered with one of `statuses`.
    fn refused(&mut self, what: &str, answer: &Answer, statuses: &[u16]) -> bool {
        self.attempts += 1;
        if answer.grants() {
            if let Some(id) = answer.json()["id"].as_str() {
                self.accepted_ids.insert(id.to_owned());
            }
            self.accepted
                .push(format!("{what}: {} {}", answer.status, answer.short()));
            return false;
        }
        if !statuses.contains(&answer.status) {
            self.wrong.push(format!(
                "{what}: {} (expected one of {statuses:?}) {}",
                answer.status,
                answer.short()
            ));
            return false;
        }
        true
    }

    /// Counts one attack that was granted although it must not be, or checked and found wrong.
    fn accepted(&mut self, what: &str, why: String) {
        self.accepted.push(format!("{what}: {why}"));
    }

    /// Counts a refusal whose problem document is not the expected one.
    fn wrong(&mut self, what: &str, why: String) {
        self.wrong.push(format!("{what}: {why}"));
    }

    /// Counts every issuance in the ledger beyond `controls` as accepted: an attack that got a
    /// token or a link recorded, whatever its answer said.
    async fn ledger(&mut self, app: &TestApp, controls: &BTreeSet<String>) {
        let issued = issued(app).await;
        let unexplained = issued
            .difference(controls)
            .filter(|id| !self.accepted_ids.contains(*id));
        for id in unexplained {
            let record = app.ledger.get(id).await.unwrap().unwrap();
            self.accepted.push(format!(
                "an issuance beyond the controls: {id} for {} on {}/{:?} with '{}'",
                record.principal, record.container, record.blob, record.permissions
            ));
        }
    }

    /// Prints the RELIABILITY line, then fails on anything accepted or wrongly refused.
    fn finish(self) {
        println!(
            "RELIABILITY attacks {} attempts={} accepted={}",
            self.suite,
            self.attempts,
            self.accepted.len()
        );
        assert!(
            self.accepted.is_empty(),
            "{}: {} attacks accepted:\n{}",
            self.suite,
            self.accepted.len(),
            self.accepted.join("\n")
        );
        assert!(
            self.wrong.is_empty(),
            "{}: {} attacks refused the wrong way:\n{}",
            self.suite,
            self.wrong.len(),
            self.wrong.join("\n")
        );
    }
}

/// An HTTP answer, from reqwest or a raw connection. Status 0: no answer (connection closed).
struct Answer {
    status: u16,
    location: Option<String>,
    www_authenticate: bool,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or("").to_owned()
    }

    fn short(&self) -> String {
        String::from_utf8_lossy(&self.body)
            .chars()
            .take(300)
            .collect()
    }

    /// True when the answer hands anything out: a 2xx or 3xx, a `Location`, or a token, link or
    /// SAS signature in the body.
    fn grants(&self) -> bool {
        let body = self.json();
        (200..400).contains(&self.status)
            || self.location.is_some()
            || ["url", "sas", "link"]
                .iter()
                .any(|k| body.get(*k).is_some())
            || String::from_utf8_lossy(&self.body).contains("sig=")
    }
}

/// Sends requests to the app: reqwest without redirects, or raw bytes over TCP for what reqwest
/// refuses to send (bytes invalid in a header, dot segments, conflicting framing).
struct Probe<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
}

impl<'a> Probe<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.app.address)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        match request.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let location = r
                    .headers()
                    .get(LOCATION)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                let www_authenticate = r.headers().contains_key(WWW_AUTHENTICATE);
                let body = r.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                Answer {
                    status,
                    location,
                    www_authenticate,
                    body,
                }
            }
            Err(e) => Answer {
                status: 0,
                location: None,
                www_authenticate: false,
                body: format!("no answer: {e}").into_bytes(),
            },
        }
    }

    /// POST `body` (JSON) with each of `authorization` as an `Authorization` header.
    async fn post_with(&self, authorization: &[Vec<u8>], path: &str, body: &Value) -> Answer {
        let mut request = self.http.post(self.url(path)).json(body);
        for value in authorization {
            request = request.header(AUTHORIZATION, HeaderValue::from_bytes(value).unwrap());
        }
        self.send(request).await
    }

    async fn post(&self, key: &str, path: &str, body: &Value) -> Answer {
        self.post_with(&[bearer(key)], path, body).await
    }

    /// POST raw bytes with `content_type` (none if `None`).
    async fn post_bytes(
        &self,
        key: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let mut request = self.http.post(self.url(path)).bearer_auth(key).body(body);
        if let Some(ct) = content_type {
            request = request.header(CONTENT_TYPE, ct);
        }
        self.send(request).await
    }

    async fn get(&self, key: Option<&str>, path: &str) -> Answer {
        let mut request = self.http.get(self.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        self.send(request).await
    }

    async fn head(&self, path: &str) -> Answer {
        self.send(self.http.head(self.url(path))).await
    }

    /// Writes `request` on a fresh connection and reads the answer until the server closes it.
    async fn raw(&self, request: Vec<u8>) -> Answer {
        let address = self.app.address.trim_start_matches("http://").to_owned();
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let (mut read, mut write) = stream.into_split();
        // Written concurrently: the server may answer (and stop reading) before the end.
        let writer = tokio::spawn(async move {
            let _ = write.write_all(&request).await;
            write
        });
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16384];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while let Ok(Ok(n @ 1..)) = tokio::time::timeout_at(deadline, read.read(&mut chunk)).await {
            buf.extend_from_slice(&chunk[..n]);
        }
        writer.abort();
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .strip_prefix("HTTP/1.1 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let header = |name: &str| {
            head.lines().skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        Answer {
            status,
            location: header("location"),
            www_authenticate: header("www-authenticate").is_some(),
            body: body.as_bytes().to_vec(),
        }
    }
}

fn bearer(key: &str) -> Vec<u8> {
    format!("Bearer {key}").into_bytes()
}

/// A raw HTTP/1.1 request; `head` holds extra header lines, each ending in CRLF.
fn raw_request(method: &str, path: &[u8], head: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    out.extend_from_slice(head);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// A raw POST with a JSON body and a correct `Content-Length`.
fn raw_post(path: &str, extra_head: &[u8], body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    )
    .into_bytes();
    head.extend_from_slice(extra_head);
    raw_request("POST", path.as_bytes(), &head, body)
}

// ---------------------------------------------------------------------------------------------
// What a granted token must look like
// ---------------------------------------------------------------------------------------------

/// What a rule grants: a token answered under it must carry exactly this.
#[derive(Clone, Copy)]
struct Grant {
    container: &'static str,
    /// The exact blob, or `None` for container scope.
    blob: Option<&'static str>,
    /// `sp`; `None` for a token bound to a stored access policy (the policy holds them).
    permissions: Option<&'static str>,
    max_ttl_seconds: i64,
    /// `sip` must lie inside this range, when the rule requires an address.
    ip_within: Option<(std::net::Ipv4Addr, std::net::Ipv4Addr)>,
}

const MODEL_READ: Grant = Grant {
    container: "models",
    blob: Some("published/model.bin"),
    permissions: Some("r"),
    max_ttl_seconds: 3600,
    ip_within: None,
};

/// Checks a SAS URL against `grant`: a service SAS for exactly that resource, exactly the rule's
/// permissions, HTTPS only, no longer than the rule's maximum, bound inside its address range.
fn check_sas(url: &str, grant: &Grant, blob: Option<&str>) -> Result<(), String> {
    let sas = sasgate::sas::parse::parse(url).map_err(|e| format!("unparseable SAS: {e}"))?;
    let fail = |why: String| Err(format!("{why} in {url}"));
    if sas.kind() != SasKind::Service {
        return fail(format!("a {:?} SAS", sas.kind()));
    }
    // Every parameter once: a second `sp` or `sig` would be an injected one.
    let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
    let mut seen = BTreeSet::new();
    for (k, _) in parsed.query_pairs() {
        if !seen.insert(k.into_owned()) {
            return fail("a repeated query parameter".into());
        }
    }
    for forbidden in ["ss", "srt", "sdd", "rscc", "rscd", "rsce", "rscl", "rsct"] {
        if sas.param(forbidden).is_some() {
            return fail(format!("'{forbidden}' present"));
        }
    }
    let location = sas.location().ok_or("no location")?;
    if location.container.as_deref() != Some(grant.container) {
        return fail(format!("container {:?}", location.container));
    }
    let want_blob = blob.or(grant.blob);
    if location.blob.as_deref() != want_blob {
        return fail(format!("blob {:?}, not {want_blob:?}", location.blob));
    }
    let want_sr = if want_blob.is_some() { "b" } else { "c" };
    if sas.param("sr") != Some(want_sr) {
        return fail(format!("sr={:?}", sas.param("sr")));
    }
    match grant.permissions {
        Some(p) if sas.permissions() != Some(p) => {
            return fail(format!("sp={:?}, not {p}", sas.permissions()));
        }
        None if sas.permissions().is_some() || sas.param("si").is_none() => {
            return fail("a stored-policy token with sp or without si".into());
        }
        _ => {}
    }
    if sas.param("spr") != Some("https") {
        return fail(format!("spr={:?}", sas.param("spr")));
    }
    let (Some(start), Some(expiry)) = (sas.start(), sas.expiry()) else {
        return fail("no st or se".into());
    };
    let lifetime = (expiry - start).num_seconds();
    if lifetime > grant.max_ttl_seconds + BACKDATE_SECONDS + 1 {
        return fail(format!("se - st = {lifetime} s"));
    }
    let left = (expiry - Utc::now()).num_seconds();
    if left > grant.max_ttl_seconds + 2 || left <= 0 {
        return fail(format!("expires in {left} s"));
    }
    match (grant.ip_within, sas.param("sip")) {
        (None, None) => {}
        (Some((lo, hi)), Some(sip)) => {
            let (a, b) = sip.split_once('-').unwrap_or((sip, sip));
            let (a, b): (std::net::Ipv4Addr, std::net::Ipv4Addr) = (
                a.parse().map_err(|_| format!("sip={sip}"))?,
                b.parse().map_err(|_| format!("sip={sip}"))?,
            );
            if a < lo || b > hi || a > b {
                return fail(format!("sip={sip} outside {lo}-{hi}"));
            }
        }
        (want, got) => {
            return fail(format!(
                "sip={got:?} (a range required: {})",
                want.is_some()
            ));
        }
    }
    Ok(())
}

/// The same SAS query on another blob of the same container.
fn retarget(url: &str, container: &str, blob: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    let account = u.path_segments().unwrap().next().unwrap().to_owned();
    u.set_path(&format!("/{account}/{container}/{blob}"));
    u.to_string()
}

// ---------------------------------------------------------------------------------------------
// OIDC tokens (as tests/oidc.rs makes them)
// ---------------------------------------------------------------------------------------------

/// The claims of the release job of sasgate-lab/models, which `github-release-reads-models`
/// allows.
fn release_claims() -> Value {
    let now = Utc::now().timestamp();
    json!({
        "iss": GITHUB,
        "aud": "sasgate",
        "sub": "repo:sasgate-lab/models:environment:release",
        "jti": format!("jti-{now}"),
        "repository": "sasgate-lab/models",
        "repository_owner": "sasgate-lab",
        "repository_owner_id": OWNER_ID,
        "ref": "refs/heads/main",
        "ref_type": "branch",
        "environment": "release",
        "job_workflow_ref": "sasgate-lab/models/.github/workflows/release.yml@refs/heads/main",
        "iat": now - 5,
        "nbf": now - 5,
        "exp": now + 300,
    })
}

fn sign_with(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn rsa(pem: &[u8]) -> EncodingKey {
    EncodingKey::from_rsa_pem(pem).unwrap()
}

/// Signed by the trusted issuer key.
fn sign(claims: &Value) -> String {
    sign_with(Algorithm::RS256, Some("test-rsa-1"), claims, &rsa(RSA))
}

fn b64json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// A JWT with a hand-made header, signed RS256 with `pem` over the usual signing input.
fn sign_header(header: &Value, payload: &str, pem: &[u8]) -> String {
    let input = format!("{}.{payload}", b64json(header));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &rsa(pem), Algorithm::RS256).unwrap();
    format!("{input}.{sig}")
}

/// Header, payload and signature as given (no signing).
fn forge(header: &Value, claims: &Value, signature: &str) -> String {
    format!("{}.{}.{signature}", b64json(header), b64json(claims))
}

fn model_read() -> Value {
    json!({"account": "devstoreaccount1", "container": "models", "blob": "published/model.bin"})
}

fn paper() -> Value {
    json!({"account": "devstoreaccount1", "container": "shared", "blob": "paper.pdf", "reason": "review"})
}

/// The admin-only routes, each with a body that would act if the caller were an admin.
fn admin_routes(issuance: &str, url: &str) -> Vec<(&'static str, String, Option<Value>)> {
    vec![
        ("GET", "/v1/issuances".into(), None),
        ("GET", "/v1/issuances?principal=user:alice".into(), None),
        (
            "POST",
            "/v1/issuances/lookup".into(),
            Some(json!({ "url": url })),
        ),
        (
            "POST",
            format!("/v1/issuances/{issuance}/revoke"),
            Some(json!({"reason": "escalation attempt"})),
        ),
        (
            "POST",
            "/v1/revocations".into(),
            Some(json!({"principal": "user:alice", "reason": "escalation attempt"})),
        ),
        (
            "POST",
            "/v1/emergency/revoke-policies".into(),
            Some(json!({"account": "devstoreaccount1", "reason": "escalation attempt"})),
        ),
        (
            "POST",
            "/v1/emergency/revoke-delegation-keys".into(),
            Some(json!({"account": "devstoreaccount1", "reason": "escalation attempt"})),
        ),
        ("GET", "/v1/ledger/verify".into(), None),
        ("GET", "/v1/ledger/head".into(), None),
        ("GET", "/metrics".into(), None),
    ]
}

// ---------------------------------------------------------------------------------------------
// 1. Authentication
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn authentication_attacks_get_nothing() {
    let app = spawn().await;
    let p = Probe::new(&app);
    let mut t = Tally::new("authentication");
    let mut controls = BTreeSet::new();

    // Controls: the genuine API key and OIDC token work, so each refusal below is the attack's.
    let a = p.post(&app.alice, "/v1/tokens", &model_request()).await;
    assert_eq!(a.status, 201, "{}", a.short());
    let alice_issuance = a.json()["id"].as_str().unwrap().to_owned();
    let alice_url = a.json()["url"].as_str().unwrap().to_owned();
    controls.insert(alice_issuance.clone());
    let good_jwt = sign(&release_claims());
    let a = p.post(&good_jwt, "/v1/tokens", &model_read()).await;
    assert_eq!(a.status, 201, "{}", a.short());
    controls.insert(a.json()["id"].as_str().unwrap().to_owned());

    let alice = app.alice.clone();
    let admin = app.admin.clone();
    let flip = |key: &str, i: usize| {
        let mut b = key.as_bytes().to_vec();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    let swap_case: String = alice[4..]
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    let first_letter = alice[4..]
        .char_indices()
        .find(|(_, c)| c.is_ascii_alphabetic())
        .unwrap()
        .0
        + 4;
    let one_case_changed = {
        let mut s = alice.clone();
        let c = s.as_bytes()[first_letter] as char;
        let swapped = if c.is_ascii_lowercase() {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        };
        s.replace_range(first_letter..=first_letter, &swapped.to_string());
        s
    };
    let hash = sasgate::sas::sign::hex_sha256(alice.as_bytes());
    let b = |s: &str| s.as_bytes().to_vec();
    let len = alice.len();

    // API keys: each a list of Authorization header values (several: several headers).
    let key_cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("no Authorization header", vec![]),
        (
            "Basic with alice:key",
            vec![b(&format!(
                "Basic {}",
                STANDARD.encode(format!("alice:{alice}"))
            ))],
        ),
        (
            "Basic with the bare key",
            vec![b(&format!("Basic {alice}"))],
        ),
        ("the key without a scheme", vec![b(&alice)]),
        ("Token scheme", vec![b(&format!("Token {alice}"))]),
        ("Bearer without a space", vec![b(&format!("Bearer{alice}"))]),
        ("Bearer alone", vec![b("Bearer")]),
        ("Bearer and a space", vec![b("Bearer ")]),
        ("Bearer and whitespace", vec![b("Bearer \t \t ")]),
        (
            "the scheme twice",
            vec![b(&format!("Bearer Bearer {alice}"))],
        ),
        ("the configured hash", vec![bearer(&hash)]),
        (
            "sgk_ and the configured hash",
            vec![bearer(&format!("sgk_{hash}"))],
        ),
        (
            "alice's first half, admin's second",
            vec![bearer(&format!(
                "{}{}",
                &alice[..len / 2],
                &admin[len / 2..]
            ))],
        ),
        ("one char changed (first)", vec![bearer(&flip(&alice, 4))]),
        (
            "one char changed (middle)",
            vec![bearer(&flip(&alice, len / 2))],
        ),
        (
            "one char changed (last)",
            vec![bearer(&flip(&alice, len - 1))],
        ),
        ("truncated by one", vec![bearer(&alice[..len - 1])]),
        ("truncated to half", vec![bearer(&alice[..len / 2])]),
        ("the prefix alone", vec![bearer("sgk_")]),
        ("without the prefix", vec![bearer(&alice[4..])]),
        ("extended by one", vec![bearer(&format!("{alice}A"))]),
        ("the key twice", vec![bearer(&format!("{alice}{alice}"))]),
        (
            "the key, a space, more",
            vec![bearer(&format!("{alice} x"))],
        ),
        ("the key and a comma", vec![bearer(&format!("{alice},"))]),
        (
            "two keys in one header",
            vec![bearer(&format!("{alice},{admin}"))],
        ),
        (
            "a space inside",
            vec![bearer(&format!("sgk_ {}", &alice[4..]))],
        ),
        ("upper-cased", vec![bearer(&alice.to_uppercase())]),
        ("SGK_ prefix", vec![bearer(&format!("SGK_{}", &alice[4..]))]),
        ("case swapped", vec![bearer(&format!("sgk_{swap_case}"))]),
        ("one letter's case changed", vec![bearer(&one_case_changed)]),
        (
            "a non-ASCII letter appended",
            vec![[bearer(&alice), "é".as_bytes().to_vec()].concat()],
        ),
        (
            "a no-break space after Bearer",
            vec![[b("Bearer"), "\u{a0}".as_bytes().to_vec(), b(&alice)].concat()],
        ),
        (
            "a no-break space appended",
            vec![[bearer(&alice), "\u{a0}".as_bytes().to_vec()].concat()],
        ),
        (
            "a Cyrillic look-alike letter",
            vec![bearer(&{
                let mut s = alice.clone();
                s.replace_range(first_letter..=first_letter, "\u{430}");
                s
            })],
        ),
        (
            "100 KB of key",
            vec![bearer(&format!("sgk_{}", "A".repeat(100 * 1024)))],
        ),
        (
            "two headers: alice's key, then junk",
            vec![bearer(&alice), bearer("sgk_junk")],
        ),
        (
            "two headers: junk, then alice's key",
            vec![bearer("sgk_junk"), bearer(&alice)],
        ),
        (
            "two headers: alice's key, then admin's",
            vec![bearer(&alice), bearer(&admin)],
        ),
        (
            "two headers: the same key",
            vec![bearer(&alice), bearer(&alice)],
        ),
    ];
    // The refusal of a key is 401 `unauthenticated`; a 100 KB header may be cut off earlier.
    for (what, headers) in &key_cases {
        for (path, body) in [("/v1/tokens", model_request()), ("/v1/links", paper())] {
            let a = p.post_with(headers, path, &body).await;
            let what = format!("API key, {what}, {path}");
            if t.refused(&what, &a, &[400, 401, 431])
                && a.status == 401
                && (a.code() != "unauthenticated" || !a.www_authenticate)
            {
                t.wrong(&what, format!("401 with code '{}'", a.code()));
            }
        }
    }
    // Two headers must not make alice an admin either.
    let two = p
        .http
        .get(p.url("/v1/issuances"))
        .header(
            AUTHORIZATION,
            HeaderValue::from_bytes(&bearer(&alice)).unwrap(),
        )
        .header(
            AUTHORIZATION,
            HeaderValue::from_bytes(&bearer(&admin)).unwrap(),
        );
    let a = p.send(two).await;
    t.refused(
        "two headers, alice's then admin's, on the admin listing",
        &a,
        &[401, 403],
    );

    // Bytes no HTTP client sends in a header: written raw. The HTTP parser refuses them (400), or
    // they reach the extractor as an invalid header (401).
    for (what, tail) in [
        ("a trailing NUL", &b"\0"[..]),
        ("a trailing vertical tab", b"\x0b"),
        ("a trailing form feed", b"\x0c"),
        ("a trailing bare CR", b"\rX"),
        ("a trailing DEL", b"\x7f"),
        ("a NUL inside", b"\0AAAA"),
    ] {
        let mut head = bearer(&alice);
        head.extend_from_slice(tail);
        let mut line = b"Authorization: ".to_vec();
        line.extend_from_slice(&head);
        line.extend_from_slice(b"\r\n");
        let body = serde_json::to_vec(&model_request()).unwrap();
        let a = p.raw(raw_post("/v1/tokens", &line, &body)).await;
        t.refused(&format!("API key with {what} (raw)"), &a, &[400, 401]);
    }
    // The key anywhere but the Authorization header.
    for (what, request) in [
        (
            "in X-Api-Key",
            p.http.post(p.url("/v1/tokens")).header("x-api-key", &alice),
        ),
        (
            "in a cookie",
            p.http
                .post(p.url("/v1/tokens"))
                .header("cookie", format!("token={alice}; session={alice}")),
        ),
        (
            "in Proxy-Authorization",
            p.http
                .post(p.url("/v1/tokens"))
                .header("proxy-authorization", format!("Bearer {alice}")),
        ),
        (
            "in the query",
            p.http
                .post(p.url(&format!("/v1/tokens?access_token={alice}&api_key={alice}"))),
        ),
    ] {
        let a = p.send(request.json(&model_request())).await;
        t.refused(&format!("API key {what}"), &a, &[401]);
    }

    // OIDC tokens: (what, token, the refusal's code).
    let good = release_claims();
    let now = Utc::now().timestamp();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    let signed = sign(&good);
    let parts: Vec<&str> = signed.split('.').collect();
    let (h, pl, sig) = (parts[0], parts[1], parts[2]);
    let rs256 = json!({"alg": "RS256", "typ": "JWT", "kid": "test-rsa-1"});
    let other_jwk = {
        let set: Value = serde_json::from_str(ROTATED_JWKS).unwrap();
        set["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == "test-rsa-2")
            .unwrap()
            .clone()
    };
    let pad = "A".repeat(64 * 1024);
    let jwt_cases: Vec<(&str, String, &[&str])> = vec![
        (
            "alg none, no signature",
            forge(&json!({"alg": "none", "typ": "JWT"}), &good, ""),
            &["algorithm_not_allowed"],
        ),
        (
            "alg None",
            forge(&json!({"alg": "None", "kid": "test-rsa-1"}), &good, ""),
            &["algorithm_not_allowed"],
        ),
        (
            "alg NONE with the real signature",
            forge(&json!({"alg": "NONE", "kid": "test-rsa-1"}), &good, sig),
            &["algorithm_not_allowed"],
        ),
        (
            "alg nOnE",
            forge(&json!({"alg": "nOnE"}), &good, ""),
            &["algorithm_not_allowed"],
        ),
        (
            "no alg",
            forge(&json!({"typ": "JWT", "kid": "test-rsa-1"}), &good, sig),
            &["malformed_token"],
        ),
        (
            "HS256 keyed with the RSA public key",
            sign_with(
                Algorithm::HS256,
                Some("test-rsa-1"),
                &good,
                &EncodingKey::from_secret(RSA_PUBLIC),
            ),
            &["algorithm_not_allowed"],
        ),
        (
            "HS256 keyed with the RSA public key, no kid",
            sign_with(
                Algorithm::HS256,
                None,
                &good,
                &EncodingKey::from_secret(RSA_PUBLIC),
            ),
            &["algorithm_not_allowed"],
        ),
        (
            "HS256 with an empty secret",
            sign_with(
                Algorithm::HS256,
                Some("test-rsa-1"),
                &good,
                &EncodingKey::from_secret(b""),
            ),
            &["algorithm_not_allowed"],
        ),
        (
            "ES256 header on an RSA signature",
            format!(
                "{}.{pl}.{sig}",
                b64json(&json!({"alg": "ES256", "kid": "test-rsa-1", "typ": "JWT"}))
            ),
            &["unknown_signing_key"],
        ),
        (
            "RS256 header naming the EC key",
            sign_with(Algorithm::RS256, Some("test-ec-1"), &good, &rsa(RSA)),
            &["unknown_signing_key"],
        ),
        (
            "ES256 for an issuer that allows RS256 only",
            sign_with(
                Algorithm::ES256,
                Some("test-ec-1"),
                &with(&|c| c["iss"] = json!("https://gitlab.com")),
                &EncodingKey::from_ec_pem(EC).unwrap(),
            ),
            &["algorithm_not_allowed"],
        ),
        (
            "RS512 with the trusted key",
            sign_with(Algorithm::RS512, Some("test-rsa-1"), &good, &rsa(RSA)),
            &["algorithm_not_allowed"],
        ),
        (
            "PS256 with the trusted key",
            sign_with(Algorithm::PS256, Some("test-rsa-1"), &good, &rsa(RSA)),
            &["algorithm_not_allowed"],
        ),
        (
            "an unknown kid, the attacker's key",
            sign_with(Algorithm::RS256, Some("test-rsa-2"), &good, &rsa(RSA_OTHER)),
            &["unknown_signing_key"],
        ),
        (
            "an unknown kid, the trusted key (no fallback)",
            sign_with(Algorithm::RS256, Some("nope"), &good, &rsa(RSA)),
            &["unknown_signing_key"],
        ),
        (
            "the known kid, another key",
            sign_with(Algorithm::RS256, Some("test-rsa-1"), &good, &rsa(RSA_OTHER)),
            &["bad_signature"],
        ),
        (
            "no kid, another key",
            sign_with(Algorithm::RS256, None, &good, &rsa(RSA_OTHER)),
            &["bad_signature"],
        ),
        (
            "kid ../../etc/passwd",
            sign_with(Algorithm::RS256, Some("../../etc/passwd"), &good, &rsa(RSA)),
            &["unknown_signing_key"],
        ),
        (
            "kid /dev/null with HS256 and an empty secret",
            sign_with(
                Algorithm::HS256,
                Some("../../../../../../dev/null"),
                &good,
                &EncodingKey::from_secret(b""),
            ),
            &["algorithm_not_allowed"],
        ),
        (
            "kid test-rsa-1/../test-rsa-1",
            sign_with(
                Algorithm::RS256,
                Some("test-rsa-1/../test-rsa-1"),
                &good,
                &rsa(RSA_OTHER),
            ),
            &["unknown_signing_key"],
        ),
        (
            "kid with SQL",
            sign_with(
                Algorithm::RS256,
                Some("' OR '1'='1"),
                &good,
                &rsa(RSA_OTHER),
            ),
            &["unknown_signing_key"],
        ),
        (
            "kid not a string, the attacker's key",
            sign_header(
                &json!({"alg": "RS256", "kid": ["test-rsa-1"]}),
                &b64json(&good),
                RSA_OTHER,
            ),
            &["bad_signature", "malformed_token"],
        ),
        (
            "jku pointing elsewhere, the attacker's key",
            sign_header(
                &json!({"alg": "RS256", "kid": "test-rsa-2", "jku": "http://127.0.0.1:9/jwks.json"}),
                &b64json(&good),
                RSA_OTHER,
            ),
            &["unknown_signing_key"],
        ),
        (
            "x5u pointing elsewhere, the attacker's key",
            sign_header(
                &json!({"alg": "RS256", "kid": "test-rsa-1", "x5u": "https://attacker.example/cert.pem"}),
                &b64json(&good),
                RSA_OTHER,
            ),
            &["bad_signature"],
        ),
        (
            "the attacker's key embedded as jwk",
            sign_header(
                &json!({"alg": "RS256", "jwk": other_jwk}),
                &b64json(&good),
                RSA_OTHER,
            ),
            &["bad_signature"],
        ),
        (
            "the attacker's key embedded as jwk, with its kid",
            sign_header(
                &json!({"alg": "RS256", "kid": "test-rsa-2", "jwk": other_jwk}),
                &b64json(&good),
                RSA_OTHER,
            ),
            &["unknown_signing_key"],
        ),
        (
            "crit naming an extension nobody understands",
            sign_header(
                &json!({"alg": "RS256", "kid": "test-rsa-1", "crit": ["urn:example:must-understand"], "urn:example:must-understand": true}),
                &b64json(&good),
                RSA,
            ),
            &["malformed_token"],
        ),
        (
            "crit b64=false (unencoded payload)",
            sign_header(
                &json!({"alg": "RS256", "kid": "test-rsa-1", "b64": false, "crit": ["b64"]}),
                &b64json(&good),
                RSA,
            ),
            &["malformed_token"],
        ),
        (
            "nested JWT (cty JWT), signed by the trusted key",
            sign_header(
                &json!({"alg": "RS256", "kid": "test-rsa-1", "cty": "JWT"}),
                &URL_SAFE_NO_PAD.encode(signed.as_bytes()),
                RSA,
            ),
            &["malformed_token"],
        ),
        (
            "nested JWT inside alg none",
            format!(
                "{}.{}.",
                b64json(&json!({"alg": "none", "cty": "JWT"})),
                URL_SAFE_NO_PAD.encode(signed.as_bytes())
            ),
            &["malformed_token"],
        ),
        (
            "64 KB token, signed by the trusted key",
            sign(&with(&|c| c["pad"] = json!(pad))),
            &["malformed_token"],
        ),
        (
            "expired",
            sign(&with(&|c| {
                c["exp"] = json!(now - 120);
                c["iat"] = json!(now - 600);
                c["nbf"] = json!(now - 600);
            })),
            &["token_expired"],
        ),
        (
            "no exp",
            sign(&with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            })),
            &["missing_claim"],
        ),
        (
            "exp as text",
            sign(&with(&|c| c["exp"] = json!(format!("{}", now + 300)))),
            &["malformed_token"],
        ),
        (
            "exp beyond any date",
            sign(&with(&|c| c["exp"] = json!(1e300))),
            &["malformed_token", "token_expired"],
        ),
        (
            "not yet valid",
            sign(&with(&|c| c["nbf"] = json!(now + 600))),
            &["token_not_yet_valid"],
        ),
        (
            "issued in the future",
            sign(&with(&|c| c["iat"] = json!(now + 600))),
            &["token_not_yet_valid"],
        ),
        (
            "wrong audience",
            sign(&with(&|c| {
                c["aud"] = json!("https://github.com/sasgate-lab")
            })),
            &["wrong_audience"],
        ),
        (
            "audience list without sasgate",
            sign(&with(&|c| c["aud"] = json!(["api", "sasgate2"]))),
            &["wrong_audience"],
        ),
        (
            "audience upper-cased",
            sign(&with(&|c| c["aud"] = json!("SASGATE"))),
            &["wrong_audience"],
        ),
        (
            "no audience",
            sign(&with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            })),
            &["wrong_audience"],
        ),
        (
            "wrong issuer",
            sign(&with(&|c| {
                c["iss"] = json!("https://token.actions.example.org")
            })),
            &["untrusted_issuer"],
        ),
        (
            "issuer with a trailing slash",
            sign(&with(&|c| c["iss"] = json!(format!("{GITHUB}/")))),
            &["untrusted_issuer"],
        ),
        (
            "issuer over http",
            sign(&with(&|c| {
                c["iss"] = json!("http://token.actions.githubusercontent.com")
            })),
            &["untrusted_issuer"],
        ),
        (
            "no issuer",
            sign(&with(&|c| {
                c.as_object_mut().unwrap().remove("iss");
            })),
            &["untrusted_issuer"],
        ),
        (
            "no sub",
            sign(&with(&|c| {
                c.as_object_mut().unwrap().remove("sub");
            })),
            &["missing_claim"],
        ),
        (
            "empty sub",
            sign(&with(&|c| c["sub"] = json!(""))),
            &["missing_claim"],
        ),
        (
            "sub null",
            sign(&with(&|c| c["sub"] = Value::Null)),
            &["missing_claim"],
        ),
        (
            "sub a number",
            sign(&with(&|c| c["sub"] = json!(42))),
            &["missing_claim"],
        ),
        (
            "sub of 600 bytes",
            sign(&with(&|c| c["sub"] = json!("s".repeat(600)))),
            &["malformed_token"],
        ),
        (
            "a required claim missing",
            sign(&with(&|c| {
                c.as_object_mut().unwrap().remove("repository");
            })),
            &["missing_claim"],
        ),
        (
            "a required claim empty",
            sign(&with(&|c| c["ref"] = json!(""))),
            &["missing_claim"],
        ),
        (
            "payload tampered after signing",
            format!(
                "{h}.{}.{sig}",
                b64json(&with(&|c| c["ref"] = json!("refs/heads/evil")))
            ),
            &["bad_signature"],
        ),
        (
            "header tampered after signing",
            format!(
                "{}.{pl}.{sig}",
                b64json(&json!({"alg": "RS256", "kid": "test-rsa-1", "typ": "JWT", "x": 1}))
            ),
            &["bad_signature"],
        ),
        (
            "signature stripped",
            format!("{h}.{pl}."),
            &["bad_signature", "malformed_token"],
        ),
        (
            "signature truncated",
            format!("{h}.{pl}.{}", &sig[..sig.len() / 2]),
            &["bad_signature", "malformed_token"],
        ),
        (
            "another token's signature",
            format!(
                "{h}.{pl}.{}",
                sign(&with(&|c| c["jti"] = json!("other")))
                    .rsplit('.')
                    .next()
                    .unwrap()
            ),
            &["bad_signature"],
        ),
        (
            "header not base64url",
            format!("{}!.{pl}.{sig}", &h[..h.len() - 1]),
            &["malformed_token"],
        ),
        (
            "padded base64",
            format!("{h}==.{pl}.{sig}"),
            &["malformed_token"],
        ),
        (
            "payload not JSON",
            format!("{h}.{}.{sig}", URL_SAFE_NO_PAD.encode(b"not json")),
            &["malformed_token"],
        ),
        (
            "payload a JSON array",
            forge(&rs256, &json!([good.clone()]), sig),
            &["malformed_token"],
        ),
        ("not a JWT", "abc.def.ghi".into(), &["malformed_token"]),
        ("two parts", format!("{h}.{pl}"), &["unauthenticated"]),
        (
            "four parts",
            format!("{signed}.{sig}"),
            &["unauthenticated"],
        ),
    ];
    for (what, token, codes) in &jwt_cases {
        for (path, body) in [("/v1/tokens", model_read()), ("/v1/links", model_read())] {
            let a = p.post(token, path, &body).await;
            let what = format!("JWT, {what}, {path}");
            if t.refused(&what, &a, &[401]) {
                if !codes.contains(&a.code().as_str()) || !a.www_authenticate {
                    t.wrong(&what, format!("code '{}', expected {codes:?}", a.code()));
                }
                if String::from_utf8_lossy(&a.body).contains(token.as_str()) {
                    t.wrong(&what, "the refusal echoes the token".into());
                }
            }
        }
    }

    // Escalation: no researcher, CI key or OIDC job is an admin, whatever its claims say.
    let claims_admin = sign(&with(&|c| {
        c["sub"] = json!("admin");
        c["roles"] = json!(["admin", "researcher"]);
        c["groups"] = json!(["admin"]);
        c["role"] = json!("admin");
        c["repository"] = json!("evil/models");
    }));
    let callers = [
        ("alice", alice.clone()),
        ("ci", app.ci.clone()),
        ("an OIDC job", good_jwt.clone()),
        ("an OIDC job claiming admin", claims_admin.clone()),
    ];
    for (who, key) in &callers {
        for (method, path, body) in admin_routes(&alice_issuance, &alice_url) {
            let request = match method {
                "GET" => p.http.get(p.url(&path)),
                _ => p.http.post(p.url(&path)).json(&body.unwrap()),
            };
            let a = p.send(request.bearer_auth(key)).await;
            let what = format!("{who} on {method} {path}");
            if t.refused(&what, &a, &[403]) && a.code() != "forbidden" {
                t.wrong(&what, format!("code '{}'", a.code()));
            }
        }
    }
    // Another principal's issuance is not theirs to see.
    for (who, key) in &callers[1..] {
        let a = p
            .get(Some(key), &format!("/v1/issuances/{alice_issuance}"))
            .await;
        t.refused(&format!("{who} reading alice's issuance"), &a, &[404]);
    }
    // An OIDC subject named like a user or carrying role claims gets no user's or role's rules.
    for (what, body) in [
        ("researcher's models", model_read()),
        (
            "researcher's datasets",
            json!({"account": "devstoreaccount1", "container": "datasets", "blob": "survey.csv", "reason": "x"}),
        ),
    ] {
        let a = p.post(&claims_admin, "/v1/tokens", &body).await;
        t.refused(&format!("OIDC job claiming roles, {what}"), &a, &[403]);
        let alice_sub = sign(&with(&|c| {
            c["sub"] = json!("alice");
            c["repository"] = json!("evil/models");
        }));
        let a = p.post(&alice_sub, "/v1/tokens", &model_read()).await;
        t.refused(&format!("OIDC sub 'alice', {what}"), &a, &[403]);
    }

    // Nothing was issued, nothing revoked: the control is still active.
    t.ledger(&app, &controls).await;
    let record = app.ledger.get(&alice_issuance).await.unwrap().unwrap();
    assert_eq!(
        record.status,
        sasgate::ledger::StoredStatus::Active,
        "a refused revoke revoked nothing"
    );
    assert_eq!(p.get(None, "/healthz").await.status, 200);
    t.finish();
}

// ---------------------------------------------------------------------------------------------
// 2. Broker links
// ---------------------------------------------------------------------------------------------

/// What a link's redemption may sign: `shared/paper.pdf`, read, at most 5 minutes.
const PAPER_REDEMPTION: Grant = Grant {
    container: "shared",
    blob: Some("paper.pdf"),
    permissions: Some("r"),
    max_ttl_seconds: 300,
    ip_within: None,
};

/// Creates a link as alice (`paper()` plus `extra`) and returns it; it must be created.
async fn create_link(p: &Probe<'_>, extra: Value) -> Value {
    let mut body = paper();
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let a = p.post(&p.app.alice, "/v1/links", &body).await;
    assert_eq!(a.status, 201, "{}", a.short());
    a.json()
}

/// The code of a created link (the configured public URL has port 0; the path is what counts).
fn code_of(link: &Value) -> String {
    link["link"]
        .as_str()
        .unwrap()
        .rsplit("/l/")
        .next()
        .unwrap()
        .to_owned()
}

/// A control redemption: 302 to a SAS that signs exactly the paper, read, ≤ 5 minutes.
async fn redeem_control(p: &Probe<'_>, code: &str, head: bool) {
    let path = format!("/l/{code}");
    let a = if head {
        p.head(&path).await
    } else {
        p.get(None, &path).await
    };
    assert_eq!(a.status, 302, "{}", a.short());
    let location = a.location.unwrap();
    check_sas(&location, &PAPER_REDEMPTION, None).unwrap();
    assert_eq!(
        p.app.download(&location).await,
        (200, b"the paper".to_vec())
    );
}

#[tokio::test]
async fn link_attacks_mint_nothing() {
    let app = spawn().await;
    let p = Probe::new(&app);
    let mut t = Tally::new("links");
    let mut controls = BTreeSet::new();

    // First, so that it has expired by the time it is attacked.
    let expiring = create_link(&p, json!({"ttl": "1s"})).await;
    let live = create_link(&p, json!({})).await;
    let once = create_link(&p, json!({"uses": 1})).await;
    let revoked = create_link(&p, json!({})).await;
    for l in [&expiring, &live, &once, &revoked] {
        controls.insert(l["id"].as_str().unwrap().to_owned());
    }
    let (live_code, once_code, revoked_code, expiring_code) = (
        code_of(&live),
        code_of(&once),
        code_of(&revoked),
        code_of(&expiring),
    );
    assert_eq!(live_code.len(), 43);
    // A plain token, whose signature must not work as a link code.
    let a = p.post(&app.alice, "/v1/tokens", &model_request()).await;
    assert_eq!(a.status, 201, "{}", a.short());
    controls.insert(a.json()["id"].as_str().unwrap().to_owned());
    let token_sig = url::Url::parse(a.json()["url"].as_str().unwrap())
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "sig")
        .unwrap()
        .1
        .into_owned();

    // Controls: the live link redeems by GET and HEAD; the single-use and the to-be-revoked
    // links once each.
    redeem_control(&p, &live_code, false).await;
    redeem_control(&p, &live_code, true).await;
    redeem_control(&p, &once_code, false).await;
    redeem_control(&p, &revoked_code, false).await;
    let a = p
        .post(
            &app.admin,
            &format!("/v1/issuances/{}/revoke", revoked["id"].as_str().unwrap()),
            &json!({"reason": "leaked"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.short());
    // The one-second link has expired (polling the clock, not the server).
    let expires: chrono::DateTime<Utc> = expiring["expires_on"].as_str().unwrap().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Utc::now() <= expires {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Gone links: replayed, revoked, expired. 410, again and again, by GET and HEAD.
    for (what, code) in [
        ("single use, replayed", &once_code),
        ("revoked", &revoked_code),
        ("expired", &expiring_code),
    ] {
        for round in 0..2 {
            let path = format!("/l/{code}");
            let a = p.get(None, &path).await;
            if t.refused(&format!("{what} link, GET #{round}"), &a, &[410])
                && a.code() != "link_gone"
            {
                t.wrong(what, format!("code '{}'", a.code()));
            }
            let a = p.head(&path).await;
            t.refused(&format!("{what} link, HEAD #{round}"), &a, &[410]);
        }
    }

    // Forged codes, next to the live link's.
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).unwrap();
    let random = URL_SAFE_NO_PAD.encode(random);
    let mut forged: Vec<(String, String, &[u16])> = vec![
        ("random".into(), format!("/l/{random}"), &[404]),
        (
            "truncated by one".into(),
            format!("/l/{}", &live_code[..42]),
            &[404],
        ),
        ("extended by one".into(), format!("/l/{live_code}A"), &[404]),
        (
            "upper-cased".into(),
            format!("/l/{}", live_code.to_uppercase()),
            &[404],
        ),
        (
            "lower-cased".into(),
            format!("/l/{}", live_code.to_lowercase()),
            &[404],
        ),
        (
            "reversed".into(),
            format!("/l/{}", live_code.chars().rev().collect::<String>()),
            &[404],
        ),
        (
            "doubled".into(),
            format!("/l/{live_code}{live_code}"),
            &[404],
        ),
        ("empty".into(), "/l/".into(), &[404]),
        ("no slash".into(), "/l".into(), &[404]),
        ("4 KB".into(), format!("/l/{}", "A".repeat(4096)), &[404]),
        (
            "percent-encoded random".into(),
            format!(
                "/l/{}",
                random
                    .bytes()
                    .map(|b| format!("%{b:02X}"))
                    .collect::<String>()
            ),
            &[404],
        ),
        ("%2e%2e".into(), "/l/%2e%2e".into(), &[404]),
        (
            "..%2f..%2fv1%2fissuances".into(),
            "/l/..%2f..%2fv1%2fissuances".into(),
            &[404],
        ),
        (
            "%2e%2e%2fv1%2fissuances".into(),
            "/l/%2e%2e%2fv1%2fissuances".into(),
            &[404],
        ),
        ("double-encoded dots".into(), "/l/%252e%252e".into(), &[404]),
        (
            "live code and NUL".into(),
            format!("/l/{live_code}%00"),
            &[404],
        ),
        (
            "live code and a space".into(),
            format!("/l/{live_code}%20"),
            &[404],
        ),
        (
            "a space and the live code".into(),
            format!("/l/%20{live_code}"),
            &[404],
        ),
        (
            "live code and an encoded slash".into(),
            format!("/l/{live_code}%2f"),
            &[404],
        ),
        (
            "live code, trailing slash".into(),
            format!("/l/{live_code}/"),
            &[404],
        ),
        (
            "live code, two trailing slashes".into(),
            format!("/l/{live_code}//"),
            &[404],
        ),
        (
            "live code, a leading double slash".into(),
            format!("/l//{live_code}"),
            &[404],
        ),
        (
            "live code under /L/".into(),
            format!("/L/{live_code}"),
            &[404],
        ),
        (
            "revoked code, trailing slash".into(),
            format!("/l/{revoked_code}/"),
            &[404, 410],
        ),
        (
            "the link's issuance id".into(),
            format!("/l/{}", live["id"].as_str().unwrap()),
            &[404],
        ),
        (
            "the hash of the live code".into(),
            format!(
                "/l/{}",
                sasgate::sas::sign::hex_sha256(live_code.as_bytes())
            ),
            &[404],
        ),
        (
            "a plain token's signature".into(),
            format!(
                "/l/{}",
                url::form_urlencoded::byte_serialize(token_sig.as_bytes()).collect::<String>()
            ),
            &[404],
        ),
    ];
    for i in 0..live_code.len() {
        let mut b = live_code.as_bytes().to_vec();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        forged.push((
            format!("one char flipped at {i}"),
            format!("/l/{}", String::from_utf8(b).unwrap()),
            &[404],
        ));
    }
    for (what, path, statuses) in &forged {
        let a = p.get(None, path).await;
        t.refused(&format!("forged code, {what}, GET"), &a, statuses);
        let a = p.head(path).await;
        t.refused(&format!("forged code, {what}, HEAD"), &a, statuses);
    }
    // Paths a client would normalise, sent as they are.
    for (what, path) in [
        ("a code of 100 KB", format!("/l/{}", "A".repeat(100 * 1024))),
        ("/l/../v1/issuances", "/l/../v1/issuances".to_owned()),
        ("/l/./ and the live code", format!("/l/./{live_code}")),
        ("the live code, /.", format!("/l/{live_code}/.")),
        ("the live code, /..", format!("/l/{live_code}/..")),
        ("the live code, /../", format!("/l/{live_code}/../")),
        (
            "/l/%2e%2e/v1/issuances",
            "/l/%2e%2e/v1/issuances".to_owned(),
        ),
        ("a backslash", format!("/l\\{live_code}")),
        ("a raw space", format!("/l/{live_code} x")),
    ] {
        for method in ["GET", "HEAD"] {
            let a = p.raw(raw_request(method, path.as_bytes(), b"", b"")).await;
            t.refused(
                &format!("raw {method} {what}"),
                &a,
                &[400, 401, 404, 414, 431],
            );
        }
    }
    // Other methods on the live link do not redeem it.
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let request = p
            .http
            .request(method.parse().unwrap(), p.url(&format!("/l/{live_code}")));
        let a = p.send(request).await;
        t.refused(&format!("{method} on the live link"), &a, &[405]);
    }

    // Links are asked for like tokens, and refused like them.
    for (what, extra, statuses) in [
        (
            "outside the rule's container",
            json!({"container": "secrets", "blob": "keys.txt"}),
            &[403][..],
        ),
        ("a week", json!({"ttl": "7d"}), &[403]),
        ("write", json!({"permissions": "rw"}), &[403]),
        ("container scope", json!({"blob": null}), &[403]),
        ("zero uses", json!({"uses": 0}), &[400]),
        ("negative uses", json!({"uses": -1}), &[400]),
        ("too many uses", json!({"uses": 1001}), &[400]),
        (
            "uses beyond u32",
            json!({"uses": 4_294_967_297_u64}),
            &[400],
        ),
        ("uses as text", json!({"uses": "1"}), &[400]),
        ("uses as a fraction", json!({"uses": 1.5}), &[400]),
        ("uses true", json!({"uses": true}), &[400]),
        ("max_uses", json!({"max_uses": 1}), &[400]),
        ("a code of one's choosing", json!({"code": "AAAA"}), &[400]),
    ] {
        let mut body = paper();
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        let a = p.post(&app.alice, "/v1/links", &body).await;
        t.refused(&format!("link request, {what}"), &a, statuses);
    }
    // A link for drafts under the models rule.
    let a = p
        .post(
            &app.alice,
            "/v1/links",
            &json!({"account": "devstoreaccount1", "container": "models", "blob": "drafts/unreleased.bin"}),
        )
        .await;
    t.refused("link request, a draft model", &a, &[403]);

    // Nothing but the controls was issued or redeemed.
    t.ledger(&app, &controls).await;
    for (link, want) in [(&live, 2), (&once, 1), (&revoked, 1), (&expiring, 0)] {
        let (_, redemptions) = app
            .ledger
            .link(link["id"].as_str().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(redemptions.len(), want, "redemptions of {}", link["id"]);
    }
    assert_eq!(p.get(None, "/healthz").await.status, 200);
    t.finish();
}

// ---------------------------------------------------------------------------------------------
// 3. Path escapes
// ---------------------------------------------------------------------------------------------

/// How a name must be answered.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Name {
    /// An escape, an alias or an invalid name: 400 `invalid_name` or a 403, never a token.
    Escape,
    /// A distinct, legitimate name inside `published/` (a Unicode look-alike, which Azure does
    /// not normalise): refused, or granted for exactly that name and nothing else.
    Literal,
}

/// Checks a token or redemption granted for a literal name: it signs exactly `blob` inside
/// `models/published/`, does not download the draft, and opens nothing else in the container.
async fn check_literal(
    app: &TestApp,
    url: &str,
    blob: &str,
    max_ttl_seconds: i64,
) -> Result<(), String> {
    if !blob.starts_with("published/") {
        return Err(format!("granted outside published/: {blob:?}"));
    }
    let grant = Grant {
        max_ttl_seconds,
        ..MODEL_READ
    };
    check_sas(url, &grant, Some(blob))?;
    let (status, body) = app.download(url).await;
    if status == 200 || body == DRAFT || body == MODEL {
        return Err(format!("{blob:?} downloads something: {status}"));
    }
    let (status, _) = app
        .download(&retarget(url, "models", "drafts/unreleased.bin"))
        .await;
    if status != 403 {
        return Err(format!("the token opens the draft: {status}"));
    }
    Ok(())
}

#[tokio::test]
async fn path_escapes_sign_nothing_outside_the_prefix() {
    let app = spawn().await;
    let p = Probe::new(&app);
    let mut t = Tally::new("paths");
    let mut controls = BTreeSet::new();

    // Control: published/model.bin is granted, as a token and as a link, and the checks below
    // can fail: the same token retargeted at the draft is refused by Azurite.
    let a = p.post(&app.alice, "/v1/tokens", &model_read()).await;
    assert_eq!(a.status, 201, "{}", a.short());
    controls.insert(a.json()["id"].as_str().unwrap().to_owned());
    let url = a.json()["url"].as_str().unwrap().to_owned();
    check_sas(&url, &MODEL_READ, None).unwrap();
    assert_eq!(app.download(&url).await, (200, MODEL.to_vec()));
    assert_eq!(
        app.download(&retarget(&url, "models", "drafts/unreleased.bin"))
            .await
            .0,
        403
    );
    assert!(
        check_literal(&app, &url, "published/model.bin", 3600)
            .await
            .is_err()
    );
    let a = p.post(&app.alice, "/v1/links", &model_read()).await;
    assert_eq!(a.status, 201, "{}", a.short());
    controls.insert(a.json()["id"].as_str().unwrap().to_owned());

    let long_blob = format!("published/{}", "a".repeat(1015));
    let many_segments = format!("published/{}b", "a/".repeat(253));
    let blobs: Vec<(String, Name)> = [
        "..",
        ".",
        "published/..",
        "published/.",
        "published/../drafts/unreleased.bin",
        "published/./model.bin",
        "./published/model.bin",
        "../models/published/model.bin",
        "a/../../secrets/x",
        "published/../../secrets/keys.txt",
        "published/a/../../drafts/unreleased.bin",
        "%2e%2e/x",
        "published/%2e%2e/drafts/unreleased.bin",
        "published/%2E%2E%2Fdrafts%2Funreleased.bin",
        "%2E%2E%2Fx",
        "published/..%2fdrafts/unreleased.bin",
        "published/..%2Fdrafts%2Funreleased.bin",
        "published%2f..%2fdrafts%2funreleased.bin",
        "published/%252e%252e/drafts/unreleased.bin",
        "published/%252e%252e%252fdrafts",
        "published/.%2e/drafts/unreleased.bin",
        "published/%2e./drafts/unreleased.bin",
        "published/model.bin%00",
        "published/%u002e%u002e/drafts/unreleased.bin",
        "published\\..\\drafts\\unreleased.bin",
        "published/a\\..\\..\\drafts/unreleased.bin",
        "published/..\\drafts/unreleased.bin",
        "published\\model.bin",
        "published/a.",
        "published./model.bin",
        "published/drafts./x",
        "published/a/b.",
        "published/...",
        "published/model.bin.",
        "published/model.bin/.",
        "published//model.bin",
        "published/model.bin/",
        "/published/model.bin",
        "//published/model.bin",
        "published/\0",
        "published/a\0b",
        "published/a\u{1}b",
        "published/a\nb",
        "published/a\rb",
        "published/a\tb",
        "published/a\u{7f}b",
        "published/a\u{85}b",
        "published/a\u{9b}b",
        "published/\u{FFFE}",
        "published/\u{FFFF}",
        "published/model.bin?comp=list",
        "published/*",
        "published/**",
        "published/mod?l.bin",
        "published",
        "Published/model.bin",
        "PUBLISHED/model.bin",
        "published /model.bin",
        " published/model.bin",
        "drafts/unreleased.bin",
        "published/../private/x",
        "published%2f..%2fprivate",
        "published/..%2fprivate/x",
        "published/.%2e/private/x",
        "published\\..\\private\\x",
        // Look-alikes of '/' or '.' that do not keep the real 'published/' prefix.
        "published\u{FF0F}..\u{FF0F}drafts/unreleased.bin",
        "published\u{2215}..\u{2215}drafts\u{2215}unreleased.bin",
        "published\u{2044}model.bin",
        "published\u{FF0F}model.bin",
        "p\u{200D}ublished/model.bin",
        "publi\u{202E}shed/model.bin",
        "\u{202E}published/model.bin",
        "\u{FF50}ublished/model.bin",
        "published\u{200B}/model.bin",
        "\u{FEFF}published/model.bin",
    ]
    .into_iter()
    .map(|b| (b.to_owned(), Name::Escape))
    .chain([(long_blob, Name::Escape), (many_segments, Name::Escape)])
    .chain(
        [
            // Inside published/, literally: Azure keeps these characters as they are.
            "published/\u{FF0E}\u{FF0E}/drafts/unreleased.bin",
            "published/\u{2024}\u{2024}/drafts/unreleased.bin",
            "published/\u{FF0E}/model.bin",
            "published/model.bin\u{FF0E}",
            "published/\u{2025}/drafts/unreleased.bin",
            "published/..\u{FF0F}drafts\u{FF0F}unreleased.bin",
            "published/..\u{2215}drafts",
            "published/\u{202E}nib.ledom",
            "published/model\u{200D}.bin",
            "published/\u{200B}/model.bin",
            "published/a\u{2028}b",
            "published/x#y",
        ]
        .into_iter()
        .map(|b| (b.to_owned(), Name::Literal)),
    )
    .chain([(format!("published/{}", "a".repeat(1014)), Name::Literal)])
    .collect();

    for (blob, kind) in &blobs {
        let body = json!({"account": "devstoreaccount1", "container": "models", "blob": blob});
        for path in ["/v1/tokens", "/v1/links"] {
            let a = p.post(&app.alice, path, &body).await;
            let what = format!("{path} blob {blob:?}");
            if *kind == Name::Literal && a.status == 201 {
                t.attempts += 1;
                let created = a.json();
                controls.insert(created["id"].as_str().unwrap().to_owned());
                let checked = if path == "/v1/tokens" {
                    check_literal(&app, created["url"].as_str().unwrap(), blob, 3600).await
                } else {
                    let r = p.get(None, &format!("/l/{}", code_of(&created))).await;
                    match (r.status, r.location) {
                        (302, Some(location)) => check_literal(&app, &location, blob, 300).await,
                        (status, _) => Err(format!("redemption answered {status}")),
                    }
                };
                if let Err(why) = checked {
                    t.accepted(&what, why);
                }
                continue;
            }
            if t.refused(&what, &a, &[400, 403]) && a.status == 400 && a.code() != "invalid_name" {
                t.wrong(&what, format!("400 with code '{}'", a.code()));
            }
        }
    }

    // Containers: none of these is one the researcher may use.
    let long_container = "a".repeat(64);
    for container in [
        long_container.as_str(),
        "Models",
        "MODELS",
        "$root",
        "$logs",
        "$web",
        "$account",
        "$models",
        "models/../secrets",
        "models/published",
        "models%2f..%2fsecrets",
        "..",
        ".",
        "models ",
        " models",
        "mod\0els",
        "models\n",
        "\u{FF4D}odels",
        "models\u{200D}",
        "secrets",
        "model",
        "models-",
        "-models",
        "mo--dels",
        "ab",
        "*",
        "models*",
        "m?dels",
        "[m]odels",
        "datasets\\..\\models",
    ] {
        let body = json!({"account": "devstoreaccount1", "container": container, "blob": "published/model.bin"});
        for path in ["/v1/tokens", "/v1/links"] {
            let a = p.post(&app.alice, path, &body).await;
            let what = format!("{path} container {container:?}");
            if t.refused(&what, &a, &[400, 403]) && a.status == 400 && a.code() != "invalid_name" {
                t.wrong(&what, format!("400 with code '{}'", a.code()));
            }
        }
    }

    t.ledger(&app, &controls).await;
    assert_eq!(p.get(None, "/healthz").await.status, 200);
    t.finish();
}

// ---------------------------------------------------------------------------------------------
// 4. Privilege escalation
// ---------------------------------------------------------------------------------------------

/// A request body: JSON, or raw text for what JSON values cannot hold (duplicate keys, comments,
/// out-of-range numbers).
enum Body {
    Json(Value),
    Raw(String),
}

/// How an escalation attempt must be answered.
#[derive(Clone, Copy)]
enum Want {
    /// 400 or 403, nothing handed out.
    Refused,
    /// Refused, or granted with exactly what the rule allows (an ambiguous but harmless input).
    AtMost(Grant, Option<&'static str>),
}

/// `base` with `extra`'s fields set (a `null` removes the field).
fn merged(base: &Value, extra: &Value) -> Value {
    let mut body = base.clone();
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            body.as_object_mut().unwrap().remove(k);
        } else {
            body[k] = v.clone();
        }
    }
    body
}

#[tokio::test]
async fn privilege_escalation_gets_no_more_than_the_rule() {
    let app = spawn().await;
    let p = Probe::new(&app);
    let mut t = Tally::new("privileges");
    let mut controls = BTreeSet::new();
    let (alice, ci) = (app.alice.clone(), app.ci.clone());

    let bound_range = (
        "10.20.0.0".parse().unwrap(),
        "10.20.255.255".parse().unwrap(),
    );
    let ip_bound = Grant {
        container: "ipbound",
        blob: Some("x.bin"),
        permissions: Some("r"),
        max_ttl_seconds: 600,
        ip_within: Some(bound_range),
    };
    let bound = json!({"account": "devstoreaccount1", "container": "ipbound", "blob": "x.bin"});
    let ci_list = Grant {
        container: "ci-build",
        blob: None,
        permissions: Some("rl"),
        max_ttl_seconds: 900,
        ip_within: None,
    };
    let ci_write = Grant {
        container: "ci-build",
        blob: Some("out/a.tgz"),
        permissions: Some("cw"),
        max_ttl_seconds: 1800,
        ip_within: None,
    };

    // Controls: what each rule does allow is granted, with exactly its rights.
    let control_cases: Vec<(&str, &str, Value, Grant)> = vec![
        ("alice, a model", &alice, model_read(), MODEL_READ),
        (
            "alice, a model for 1h",
            &alice,
            merged(&model_read(), &json!({"ttl": "1h"})),
            MODEL_READ,
        ),
        (
            "alice, a model for 3600 s",
            &alice,
            merged(&model_read(), &json!({"ttl": 3600})),
            MODEL_READ,
        ),
        (
            "alice, a report (stored policy)",
            &alice,
            json!({"account": "devstoreaccount1", "container": "reports", "blob": "q1.pdf"}),
            Grant {
                container: "reports",
                blob: Some("q1.pdf"),
                permissions: None,
                max_ttl_seconds: 3600,
                ip_within: None,
            },
        ),
        (
            "alice, a dataset with a reason",
            &alice,
            json!({"account": "devstoreaccount1", "container": "datasets", "blob": "survey.csv", "reason": "study"}),
            Grant {
                container: "datasets",
                blob: Some("survey.csv"),
                permissions: Some("r"),
                max_ttl_seconds: 3600,
                ip_within: None,
            },
        ),
        (
            "ci, list its container",
            &ci,
            json!({"account": "devstoreaccount1", "container": "ci-build", "permissions": "rl"}),
            ci_list,
        ),
        (
            "ci, write an artifact",
            &ci,
            json!({"account": "devstoreaccount1", "container": "ci-build", "blob": "out/a.tgz", "permissions": "wc"}),
            ci_write,
        ),
        (
            "alice, ipbound from one address",
            &alice,
            merged(&bound, &json!({"ip": "10.20.0.5"})),
            ip_bound,
        ),
        (
            "alice, ipbound from a /24",
            &alice,
            merged(&bound, &json!({"ip": "10.20.3.0/24"})),
            ip_bound,
        ),
        (
            "alice, ipbound from the whole /16",
            &alice,
            merged(&bound, &json!({"ip": "10.20.0.0/16"})),
            ip_bound,
        ),
    ];
    // The check is not vacuous: the model token fails it under a narrower grant.
    let a = p.post(&alice, "/v1/tokens", &model_read()).await;
    assert_eq!(a.status, 201, "{}", a.short());
    controls.insert(a.json()["id"].as_str().unwrap().to_owned());
    let model_url = a.json()["url"].as_str().unwrap().to_owned();
    for narrower in [
        Grant {
            permissions: Some("rw"),
            ..MODEL_READ
        },
        Grant {
            max_ttl_seconds: 600,
            ..MODEL_READ
        },
        Grant {
            blob: Some("published/other.bin"),
            ..MODEL_READ
        },
        Grant {
            ip_within: Some(bound_range),
            ..MODEL_READ
        },
        Grant {
            permissions: None,
            ..MODEL_READ
        },
    ] {
        assert!(check_sas(&model_url, &narrower, None).is_err());
    }
    assert!(
        check_sas(
            &model_url.replace("spr=https", "spr=https,http"),
            &MODEL_READ,
            None
        )
        .is_err()
    );
    assert!(check_sas(&format!("{model_url}&sp=rwdl"), &MODEL_READ, None).is_err());

    for (what, key, body, grant) in &control_cases {
        let a = p.post(key, "/v1/tokens", body).await;
        assert_eq!(a.status, 201, "{what}: {}", a.short());
        let url = a.json()["url"].as_str().unwrap().to_owned();
        check_sas(&url, grant, None).unwrap_or_else(|e| panic!("{what}: {e}"));
        controls.insert(a.json()["id"].as_str().unwrap().to_owned());
        // Azurite 3.37 does not enforce `sip` (the ipbound tokens download from 127.0.0.1), so
        // the address binding is checked in the token (`check_sas`), not by downloading.
        if *what == "alice, a model" {
            assert_eq!(app.download(&url).await, (200, MODEL.to_vec()));
        }
    }

    let mut cases: Vec<(String, &str, Body, Want)> = Vec::new();
    let mut refuse = |what: String, key: &'static str, body: Value| {
        cases.push((what, key, Body::Json(body), Want::Refused));
    };
    // Which key: "alice" or "ci" (resolved below).
    for perms in [
        "w",
        "d",
        "a",
        "c",
        "l",
        "x",
        "y",
        "t",
        "i",
        "m",
        "e",
        "o",
        "p",
        "f",
        "racwdl",
        "racwdxyltfmeopi",
        "rw",
        "wr",
        "rd",
        "rl",
        "rr",
        "rrw",
        "",
        "R",
        "Rw",
        " r",
        "r ",
        "r\0",
        "\u{FF52}",
        "rq",
        "z",
        "*",
        "all",
        "read",
        "r,w",
        "r&sp=w",
        "sp=r",
        "r\nw",
    ] {
        refuse(
            format!("permissions {perms:?}"),
            "alice",
            merged(&model_read(), &json!({ "permissions": perms })),
        );
    }
    for (what, key, body) in [
        (
            "alice, models container scope",
            "alice",
            json!({"account": "devstoreaccount1", "container": "models"}),
        ),
        (
            "alice, models container list",
            "alice",
            json!({"account": "devstoreaccount1", "container": "models", "permissions": "rl"}),
        ),
        (
            "alice, models container l",
            "alice",
            json!({"account": "devstoreaccount1", "container": "models", "permissions": "l"}),
        ),
        (
            "alice, datasets container scope",
            "alice",
            json!({"account": "devstoreaccount1", "container": "datasets", "reason": "x"}),
        ),
        (
            "alice, shared container scope",
            "alice",
            json!({"account": "devstoreaccount1", "container": "shared"}),
        ),
        (
            "alice, reports container scope",
            "alice",
            json!({"account": "devstoreaccount1", "container": "reports"}),
        ),
        (
            "ci, container rwl",
            "ci",
            json!({"account": "devstoreaccount1", "container": "ci-build", "permissions": "rwl"}),
        ),
        (
            "ci, container cw",
            "ci",
            json!({"account": "devstoreaccount1", "container": "ci-build", "permissions": "cw"}),
        ),
        (
            "ci, container rld",
            "ci",
            json!({"account": "devstoreaccount1", "container": "ci-build", "permissions": "rld"}),
        ),
        (
            "ci, container rl for 1h",
            "ci",
            json!({"account": "devstoreaccount1", "container": "ci-build", "permissions": "rl", "ttl": "1h"}),
        ),
        (
            "ci, blob rcw",
            "ci",
            json!({"account": "devstoreaccount1", "container": "ci-build", "blob": "a", "permissions": "rcw"}),
        ),
        (
            "ci, blob cwd",
            "ci",
            json!({"account": "devstoreaccount1", "container": "ci-build", "blob": "a", "permissions": "cwd"}),
        ),
        ("ci, models", "ci", model_read()),
        (
            "ci, another ci container's list",
            "ci",
            json!({"account": "devstoreaccount1", "container": "ci-other", "permissions": "rld"}),
        ),
        // Account scope in every form.
        (
            "no container",
            "alice",
            json!({"account": "devstoreaccount1"}),
        ),
        (
            "container empty",
            "alice",
            json!({"account": "devstoreaccount1", "container": ""}),
        ),
        (
            "container null",
            "alice",
            json!({"account": "devstoreaccount1", "container": null, "blob": "x"}),
        ),
        (
            "container *",
            "alice",
            json!({"account": "devstoreaccount1", "container": "*"}),
        ),
        (
            "container ?",
            "alice",
            json!({"account": "devstoreaccount1", "container": "???"}),
        ),
        (
            "container models*",
            "alice",
            json!({"account": "devstoreaccount1", "container": "models*"}),
        ),
        (
            "container [a-z]*",
            "alice",
            json!({"account": "devstoreaccount1", "container": "[a-z]*"}),
        ),
        (
            "container $account",
            "alice",
            json!({"account": "devstoreaccount1", "container": "$account"}),
        ),
        (
            "no account",
            "alice",
            json!({"container": "models", "blob": "published/model.bin"}),
        ),
        (
            "account *",
            "alice",
            merged(&model_read(), &json!({"account": "*"})),
        ),
        ("ss", "alice", merged(&model_read(), &json!({"ss": "b"}))),
        (
            "ss empty",
            "alice",
            merged(&model_read(), &json!({"ss": ""})),
        ),
        (
            "srt",
            "alice",
            merged(&model_read(), &json!({"srt": "sco"})),
        ),
        (
            "services",
            "alice",
            merged(&model_read(), &json!({"services": "b"})),
        ),
        (
            "resource_types",
            "alice",
            merged(&model_read(), &json!({"resource_types": "sco"})),
        ),
        (
            "signed_services",
            "alice",
            merged(&model_read(), &json!({"signed_services": "bfqt"})),
        ),
        (
            "signed_resource_types",
            "alice",
            merged(&model_read(), &json!({"signed_resource_types": "o"})),
        ),
        (
            "resource account",
            "alice",
            merged(&model_read(), &json!({"resource": "account"})),
        ),
        (
            "resource service",
            "alice",
            merged(&model_read(), &json!({"resource": "service"})),
        ),
        (
            "resource s",
            "alice",
            merged(&model_read(), &json!({"resource": "s"})),
        ),
        (
            "resource c",
            "alice",
            merged(&model_read(), &json!({"resource": "c"})),
        ),
        ("sr c", "alice", merged(&model_read(), &json!({"sr": "c"}))),
    ] {
        refuse(what.to_owned(), key, body);
    }
    for ttl in [
        json!("7d"),
        json!("8d"),
        json!(99_999_999),
        json!(-1),
        json!(0),
        json!("1h1m"),
        json!("PT1H"),
        json!("1e9"),
        json!(1e9),
        json!(3600.5),
        json!(u64::MAX),
        json!(i64::MIN),
        json!("61m"),
        json!("3601s"),
        json!(3601),
        json!("2h"),
        json!("-1h"),
        json!("0s"),
        json!("0"),
        json!("3650d"),
        json!("3651d"),
        json!("99999999999999999999999d"),
        json!("18446744073709551615s"),
        json!("1H"),
        json!("1 h"),
        json!(" 1h"),
        json!("1h "),
        json!("\u{FF11}h"),
        json!("1w"),
        json!(""),
        json!("h"),
        json!(true),
        json!([]),
        json!({}),
        json!(["15m"]),
        json!({"s": 900}),
    ] {
        refuse(
            format!("ttl {ttl}"),
            "alice",
            merged(&model_read(), &json!({ "ttl": ttl })),
        );
    }
    // sip: the ipbound rule wants an address inside 10.20.0.0/16, at most a /16 wide.
    for ip in [
        json!(null),
        json!("0.0.0.0/0"),
        json!("0.0.0.0-255.255.255.255"),
        json!("10.0.0.0/8"),
        json!("10.20.0.0/15"),
        json!("10.19.255.255-10.20.0.5"),
        json!("10.20.255.255-10.21.0.0"),
        json!("10.21.0.1"),
        json!("127.0.0.1"),
        json!("::/0"),
        json!("::1"),
        json!("::ffff:10.20.0.1"),
        json!("fe80::1%eth0"),
        json!("10.20.0.1/33"),
        json!("10.20.0.1/-1"),
        json!("10.20.0.256"),
        json!("10.20.0.9-10.20.0.1"),
        json!("10.20.0.1, 1.2.3.4"),
        json!("10.20.0.1 "),
        json!(" 10.20.0.1"),
        json!("010.020.000.001"),
        json!("0x0a.20.0.1"),
        json!("10.20.1"),
        json!("167772160"),
        json!(167_772_160),
        json!("10.20.0.1&sp=rwdl"),
        json!("10.20.0.1/16/8"),
        json!(""),
        json!("10.20.0.1-"),
        json!("-10.20.0.1"),
        json!("*"),
        json!(["10.20.0.1"]),
    ] {
        refuse(
            format!("ip {ip}"),
            "alice",
            merged(&bound, &json!({ "ip": ip })),
        );
    }
    refuse(
        "ipbound, a good ip, 11 minutes".into(),
        "alice",
        merged(&bound, &json!({"ip": "10.20.0.5", "ttl": "11m"})),
    );
    refuse(
        "ipbound, a good ip, rw".into(),
        "alice",
        merged(&bound, &json!({"ip": "10.20.0.5", "permissions": "rw"})),
    );
    // Smuggling SAS parameters through other fields.
    for (what, extra) in [
        (
            "blob with ?sp=",
            json!({"blob": "published/model.bin?sp=rwdl"}),
        ),
        ("permissions with &sp=", json!({"permissions": "r&sp=rwdl"})),
        ("reason with a newline", json!({"reason": "paper\nsp=rwdl"})),
        (
            "reason with CRLF and a header",
            json!({"reason": "paper\r\nX-Injected: 1"}),
        ),
        ("reason with NUL", json!({"reason": "paper\0"})),
        (
            "reason over 500 characters",
            json!({"reason": "x".repeat(501)}),
        ),
        (
            "account with ?sp=",
            json!({"account": "devstoreaccount1?sp=w"}),
        ),
        (
            "account with a path",
            json!({"account": "devstoreaccount1/../other"}),
        ),
        (
            "account upper-cased",
            json!({"account": "DEVSTOREACCOUNT1"}),
        ),
        (
            "container with a query",
            json!({"container": "models?restype=container&comp=list"}),
        ),
        ("container with &sp=", json!({"container": "models&sp=w"})),
    ] {
        refuse(
            format!("smuggling: {what}"),
            "alice",
            merged(&model_read(), &extra),
        );
    }
    // Fields that are not the API's.
    for field in [
        "sp",
        "se",
        "st",
        "sr",
        "sig",
        "spr",
        "sip",
        "si",
        "sv",
        "skoid",
        "sdd",
        "ses",
        "rscc",
        "permissions_override",
        "expiry",
        "expires_on",
        "starts_on",
        "rule",
        "principal",
        "admin",
        "max_ttl",
        "role",
        "roles",
        "scope",
        "scopes",
        "protocol",
        "version",
        "signing",
        "revocation",
        "__proto__",
        "constructor",
        "Permissions",
        "TTL",
        "blob ",
        "uses",
    ] {
        let mut body = model_read();
        body[field] = json!("rwdl");
        refuse(format!("unknown field {field:?}"), "alice", body);
    }
    // Type confusion.
    for (field, value) in [
        ("permissions", json!(["r", "w"])),
        ("permissions", json!(["r"])),
        ("permissions", json!(1)),
        ("permissions", json!(true)),
        ("permissions", json!({"r": true, "w": true})),
        ("blob", json!(["published/model.bin"])),
        ("blob", json!(1)),
        ("blob", json!({"name": "published/model.bin"})),
        ("blob", json!("")),
        ("container", json!(["models", "secrets"])),
        ("container", json!(1)),
        ("container", json!({"name": "models"})),
        ("account", json!(["devstoreaccount1"])),
        ("account", json!(1)),
        ("account", json!("")),
        ("reason", json!(["x"])),
        ("reason", json!({"x": 1})),
        ("ip", json!({"from": "10.20.0.1"})),
    ] {
        refuse(
            format!("{field} as {value}"),
            "alice",
            merged(&model_read(), &json!({ field: value })),
        );
    }
    for body in [
        json!([model_read()]),
        json!("model"),
        json!(42),
        json!(null),
        json!(true),
    ] {
        refuse(format!("body {body}"), "alice", body);
    }

    // Raw bodies: duplicate keys, comments, numbers beyond f64 and i64.
    let head = r#""account":"devstoreaccount1","container":"models","blob":"published/model.bin""#;
    for (what, raw, want) in [
        ("permissions r then w", format!(r#"{{{head},"permissions":"r","permissions":"w"}}"#), Want::AtMost(MODEL_READ, None)),
        ("permissions w then r", format!(r#"{{{head},"permissions":"w","permissions":"r"}}"#), Want::AtMost(MODEL_READ, None)),
        ("ttl 15m then 7d", format!(r#"{{{head},"ttl":"15m","ttl":"7d"}}"#), Want::AtMost(MODEL_READ, None)),
        ("ttl 7d then 15m", format!(r#"{{{head},"ttl":"7d","ttl":"15m"}}"#), Want::AtMost(MODEL_READ, None)),
        (
            "blob drafts then published",
            r#"{"account":"devstoreaccount1","container":"models","blob":"drafts/unreleased.bin","blob":"published/model.bin"}"#.to_owned(),
            Want::AtMost(MODEL_READ, None),
        ),
        (
            "blob published then drafts",
            r#"{"account":"devstoreaccount1","container":"models","blob":"published/model.bin","blob":"drafts/unreleased.bin"}"#.to_owned(),
            Want::AtMost(MODEL_READ, None),
        ),
        (
            "container secrets then models",
            r#"{"account":"devstoreaccount1","container":"secrets","container":"models","blob":"published/model.bin"}"#.to_owned(),
            Want::AtMost(MODEL_READ, None),
        ),
        (
            "container models then secrets",
            r#"{"account":"devstoreaccount1","container":"models","container":"secrets","blob":"published/model.bin"}"#.to_owned(),
            Want::AtMost(MODEL_READ, None),
        ),
        ("ss after the fields", format!(r#"{{{head},"ss":"b","ss":null}}"#), Want::Refused),
        ("a block comment", format!(r#"{{/* admin */{head}}}"#), Want::Refused),
        ("a line comment", format!("// sp=rwdl\n{{{head}}}"), Want::Refused),
        ("a trailing comma", format!("{{{head},}}"), Want::Refused),
        ("single quotes", format!("{{{}}}", head.replace('"', "'")), Want::Refused),
        ("unquoted keys", "{account:\"devstoreaccount1\",container:\"models\"}".to_owned(), Want::Refused),
        ("ttl 1e400", format!(r#"{{{head},"ttl":1e400}}"#), Want::Refused),
        ("ttl 99999999999999999999", format!(r#"{{{head},"ttl":99999999999999999999}}"#), Want::Refused),
        ("ttl -0", format!(r#"{{{head},"ttl":-0}}"#), Want::Refused),
        ("ttl 0x10", format!(r#"{{{head},"ttl":0x10}}"#), Want::Refused),
        ("ttl NaN", format!(r#"{{{head},"ttl":NaN}}"#), Want::Refused),
        ("ttl Infinity", format!(r#"{{{head},"ttl":Infinity}}"#), Want::Refused),
        ("ttl 1.0e3", format!(r#"{{{head},"ttl":1.0e3}}"#), Want::Refused),
        ("permissions escaped w", format!(r#"{{{head},"permissions":"\u0077"}}"#), Want::Refused),
    ] {
        cases.push((format!("raw: {what}"), "alice", Body::Raw(raw), want));
    }
    // Inputs that look like smuggling but are only names or reasons: granted, they carry exactly
    // the rule's rights and name exactly the literal blob.
    for (what, blob, reason) in [
        ("blob with &sp=", Some("published/model.bin&sp=rwdl"), None),
        ("blob with #sp=", Some("published/model.bin#sp=rwdl"), None),
        (
            "blob with &sig=",
            Some("published/model.bin&sig=AAAA"),
            None,
        ),
        ("blob with ;sp=", Some("published/x;sp=w"), None),
        ("blob with =&se=", Some("published/x=y&se=2099-01-01"), None),
        (
            "reason with &sp=",
            None,
            Some("paper&sp=rwdl&se=2099-01-01T00:00:00Z"),
        ),
        (
            "reason with an RTL override",
            None,
            Some("paper \u{202E}ldwr=ps"),
        ),
        ("permissions null (the default)", None, None),
    ] {
        let mut body = model_read();
        if let Some(b) = blob {
            body["blob"] = json!(b);
        }
        if let Some(r) = reason {
            body["reason"] = json!(r);
        }
        if blob.is_none() && reason.is_none() {
            body["permissions"] = Value::Null;
        }
        cases.push((
            format!("literal: {what}"),
            "alice",
            Body::Json(body),
            Want::AtMost(MODEL_READ, blob),
        ));
    }

    for (what, who, body, want) in &cases {
        let key = if *who == "ci" { &ci } else { &alice };
        let paths: &[&str] = match (body, want) {
            (Body::Json(_), Want::Refused) => &["/v1/tokens", "/v1/links"],
            _ => &["/v1/tokens"],
        };
        for path in paths {
            let a = match body {
                Body::Json(v) => p.post(key, path, v).await,
                Body::Raw(r) => {
                    p.post_bytes(key, path, Some("application/json"), r.clone().into_bytes())
                        .await
                }
            };
            let what = format!("{path} {what}");
            match want {
                Want::AtMost(grant, blob) if a.status == 201 => {
                    t.attempts += 1;
                    let created = a.json();
                    controls.insert(created["id"].as_str().unwrap().to_owned());
                    if let Err(why) = check_sas(created["url"].as_str().unwrap_or(""), grant, *blob)
                    {
                        t.accepted(&what, why);
                    }
                }
                _ => {
                    t.refused(&what, &a, &[400, 403]);
                }
            }
        }
    }

    t.ledger(&app, &controls).await;
    assert_eq!(p.get(None, "/healthz").await.status, 200);
    t.finish();
}

// ---------------------------------------------------------------------------------------------
// 5. Bodies
// ---------------------------------------------------------------------------------------------

/// A body attack: what it is, its content type, its bytes, and the statuses that refuse it.
type BodyCase = (&'static str, Option<&'static str>, Vec<u8>, &'static [u16]);

#[tokio::test]
async fn malformed_and_oversized_bodies_are_refused_and_the_server_stays_up() {
    let app = spawn().await;
    let p = Probe::new(&app);
    let mut t = Tally::new("bodies");
    let mut controls = BTreeSet::new();

    let a = p.post(&app.alice, "/v1/tokens", &model_read()).await;
    assert_eq!(a.status, 201, "{}", a.short());
    let control = a.json()["id"].as_str().unwrap().to_owned();
    controls.insert(control.clone());
    // Control: a mint body of exactly server.max_body_bytes is read.
    let mut exact = serde_json::to_vec(&model_read()).unwrap();
    exact.resize(MAX_BODY, b' ');
    let a = p
        .post_bytes(&app.alice, "/v1/tokens", Some("application/json"), exact)
        .await;
    assert_eq!(a.status, 201, "{}", a.short());
    controls.insert(a.json()["id"].as_str().unwrap().to_owned());

    let valid = serde_json::to_vec(&model_read()).unwrap();
    let mut over = valid.clone();
    over.resize(MAX_BODY + 1, b' ');
    let keys: String = (0..1000)
        .map(|i| format!("\"k{i}\":1"))
        .collect::<Vec<_>>()
        .join(",");
    let utf16: Vec<u8> = String::from_utf8(valid.clone())
        .unwrap()
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let bodies: Vec<BodyCase> = vec![
        ("empty", Some("application/json"), vec![], &[400]),
        ("empty, no content type", None, vec![], &[400]),
        ("{", Some("application/json"), b"{".to_vec(), &[400]),
        ("not JSON", Some("application/json"), b"{not json".to_vec(), &[400]),
        ("}", Some("application/json"), b"}".to_vec(), &[400]),
        ("truncated", Some("application/json"), valid[..30].to_vec(), &[400]),
        ("truncated at a key", Some("application/json"), b"{\"account\":".to_vec(), &[400]),
        ("null", Some("application/json"), b"null".to_vec(), &[400]),
        ("an array", Some("application/json"), b"[]".to_vec(), &[400]),
        ("a string", Some("application/json"), b"\"text\"".to_vec(), &[400]),
        ("a number", Some("application/json"), b"42".to_vec(), &[400]),
        ("true", Some("application/json"), b"true".to_vec(), &[400]),
        ("16000 [", Some("application/json"), vec![b'['; 16000], &[400]),
        (
            "3000 nested objects",
            Some("application/json"),
            "{\"a\":".repeat(3000).into_bytes(),
            &[400],
        ),
        ("NUL bytes", Some("application/json"), b"\0\0\0\0".to_vec(), &[400]),
        (
            "a raw NUL in a string",
            Some("application/json"),
            b"{\"account\":\"dev\0store\"}".to_vec(),
            &[400],
        ),
        (
            "invalid UTF-8",
            Some("application/json"),
            b"{\"account\":\"\xff\xfe\"}".to_vec(),
            &[400],
        ),
        (
            "an overlong '/' in a name",
            Some("application/json"),
            b"{\"account\":\"devstoreaccount1\",\"container\":\"models\",\"blob\":\"published\xc0\xafmodel.bin\"}"
                .to_vec(),
            &[400],
        ),
        (
            "a lone surrogate",
            Some("application/json"),
            br#"{"account":"\ud800"}"#.to_vec(),
            &[400],
        ),
        (
            "a UTF-8 BOM before junk",
            Some("application/json"),
            b"\xef\xbb\xbf{junk".to_vec(),
            &[400],
        ),
        (
            "UTF-16",
            Some("application/json; charset=utf-16"),
            utf16.clone(),
            &[400],
        ),
        (
            "a form",
            Some("application/x-www-form-urlencoded"),
            b"account=devstoreaccount1&container=models&blob=published%2Fmodel.bin&permissions=rwdl&url=x"
                .to_vec(),
            &[400],
        ),
        (
            "multipart",
            Some("multipart/form-data; boundary=X"),
            b"--X\r\nContent-Disposition: form-data; name=\"account\"\r\n\r\ndevstoreaccount1\r\n--X--\r\n"
                .to_vec(),
            &[400],
        ),
        (
            "XML",
            Some("application/xml"),
            b"<MintRequest><account>devstoreaccount1</account><container>models</container></MintRequest>"
                .to_vec(),
            &[400],
        ),
        (
            "1000 keys",
            Some("application/json"),
            format!("{{{keys}}}").into_bytes(),
            &[400],
        ),
        ("1e999999", Some("application/json"), b"1e999999".to_vec(), &[400]),
        (
            "JSON and trailing junk",
            Some("application/json"),
            b"{\"url\":\"x\"} trailing".to_vec(),
            &[400],
        ),
        ("two documents", Some("application/json"), b"{}{}".to_vec(), &[400]),
        ("one byte over the limit", Some("application/json"), over, &[413]),
        (
            "spaces over the limit",
            Some("application/json"),
            vec![b' '; MAX_BODY + 1],
            &[413],
        ),
        ("100000 [", Some("application/json"), vec![b'['; 100_000], &[413]),
        // The server may answer and close before reading 10 MB: no answer counts as refused.
        ("10 MB", Some("application/json"), vec![b' '; 10 << 20], &[413, 0]),
    ];
    // Every endpoint that reads a body, as a caller it would answer; the admin ones act on a
    // control issuance that must survive.
    let endpoints = [
        ("/v1/tokens", app.alice.clone()),
        ("/v1/links", app.alice.clone()),
        ("/v1/lint", app.alice.clone()),
        ("/v1/issuances/lookup", app.admin.clone()),
        (
            &*format!("/v1/issuances/{control}/revoke"),
            app.admin.clone(),
        ),
        ("/v1/revocations", app.admin.clone()),
        ("/v1/emergency/revoke-policies", app.admin.clone()),
    ]
    .map(|(path, key)| (path.to_owned(), key));
    for (what, content_type, body, statuses) in &bodies {
        for (path, key) in &endpoints {
            let a = p.post_bytes(key, path, *content_type, body.clone()).await;
            t.refused(&format!("{path} {what}"), &a, statuses);
        }
    }

    // The same mint request in a wrong wrapper: read as JSON or refused, never more than the
    // rule (the body is JSON whatever the label; a bearer credential rules out cross-site forms).
    for (what, content_type, body) in [
        ("text/plain", Some("text/plain"), valid.clone()),
        ("no content type", None, valid.clone()),
        (
            "a form label",
            Some("application/x-www-form-urlencoded"),
            valid.clone(),
        ),
        (
            "a UTF-8 BOM",
            Some("application/json"),
            [b"\xef\xbb\xbf".as_slice(), &valid].concat(),
        ),
    ] {
        let a = p
            .post_bytes(&app.alice, "/v1/tokens", content_type, body)
            .await;
        let what = format!("/v1/tokens mint body with {what}");
        if a.status == 201 {
            t.attempts += 1;
            controls.insert(a.json()["id"].as_str().unwrap().to_owned());
            if let Err(why) = check_sas(a.json()["url"].as_str().unwrap_or(""), &MODEL_READ, None) {
                t.accepted(&what, why);
            }
        } else {
            t.refused(&what, &a, &[400, 415]);
        }
    }

    // Framing, written raw: chunked without a length, conflicting or impossible lengths.
    let auth = format!("Authorization: Bearer {}\r\n", app.alice);
    let chunked = |payload: &[u8]| {
        let mut out = Vec::new();
        for piece in payload.chunks(4096) {
            out.extend_from_slice(format!("{:X}\r\n", piece.len()).as_bytes());
            out.extend_from_slice(piece);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    };
    let framing: Vec<(&str, String, Vec<u8>, &[u16])> = vec![
        (
            "chunked, 64 KB, no length",
            "Transfer-Encoding: chunked\r\n".into(),
            chunked(&[b' '; 64 * 1024]),
            &[413, 0],
        ),
        (
            "chunked, malformed JSON",
            "Transfer-Encoding: chunked\r\n".into(),
            chunked(b"{\"account\":"),
            &[400],
        ),
        (
            "chunked, a chunk size beyond u64",
            "Transfer-Encoding: chunked\r\n".into(),
            b"FFFFFFFFFFFFFFFFFFFF\r\nx\r\n0\r\n\r\n".to_vec(),
            &[400, 413, 0],
        ),
        (
            "chunked and a conflicting length",
            "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n".into(),
            chunked(b"{\"account\":"),
            &[400],
        ),
        (
            "two different lengths",
            "Content-Length: 2\r\nContent-Length: 4\r\n".into(),
            b"{}{}".to_vec(),
            &[400],
        ),
        (
            "a negative length",
            "Content-Length: -1\r\n".into(),
            b"{}".to_vec(),
            &[400],
        ),
        (
            "a length beyond u64",
            "Content-Length: 18446744073709551616\r\n".into(),
            b"{}".to_vec(),
            &[400, 413],
        ),
        (
            "a length of 100 MB",
            "Content-Length: 104857600\r\n".into(),
            vec![b' '; 64 * 1024],
            &[413, 0],
        ),
        (
            "a length in exponent form",
            "Content-Length: 1e3\r\n".into(),
            b"{}".to_vec(),
            &[400],
        ),
        (
            "gzip-encoded",
            "Content-Encoding: gzip\r\nContent-Length: 4\r\n".into(),
            b"\x1f\x8b\x08\x00".to_vec(),
            &[400, 415],
        ),
        (
            "200 extra headers",
            (0..200).map(|i| format!("X-H{i}: {i}\r\n")).collect(),
            b"{}".to_vec(),
            &[400, 431, 0],
        ),
    ];
    for (what, head, body, statuses) in &framing {
        let head = format!("{auth}Content-Type: application/json\r\n{head}");
        let a = p
            .raw(raw_request("POST", b"/v1/tokens", head.as_bytes(), body))
            .await;
        t.refused(&format!("raw /v1/tokens, {what}"), &a, statuses);
    }
    // Methods that take no body.
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let request = p
            .http
            .request(method.parse().unwrap(), p.url("/v1/tokens"))
            .bearer_auth(&app.alice)
            .json(&model_read());
        let a = p.send(request).await;
        t.refused(&format!("{method} /v1/tokens"), &a, &[405]);
    }

    // Still up, still minting, and the control issuance survived the admin endpoints.
    assert_eq!(p.get(None, "/healthz").await.status, 200);
    assert_eq!(p.get(None, "/readyz").await.status, 200);
    let a = p.post(&app.alice, "/v1/tokens", &model_read()).await;
    assert_eq!(a.status, 201, "{}", a.short());
    controls.insert(a.json()["id"].as_str().unwrap().to_owned());
    t.ledger(&app, &controls).await;
    let record = app.ledger.get(&control).await.unwrap().unwrap();
    assert_eq!(record.status, sasgate::ledger::StoredStatus::Active);
    t.finish();
}
