//! The web pages (`/ui/`, issue 10), end to end.
//!
//! - In headless Chromium (`tests/web/e2e.mjs`, playwright-core from `node_modules`): a
//!   researcher signs in with the keyboard, is refused with the policy's reasons, gets a link,
//!   copies it, downloads the model through it from Azurite; an admin finds the issuance with the
//!   filters, sees its redemption, revokes it after the confirmation and the link answers 410;
//!   forged revocations (another origin, a wrong or missing token) get 403 and change nothing;
//!   the researcher revokes their own link; no CSP violation. It takes the README's screenshots
//!   (`UPDATE_SCREENSHOTS=1` writes them to `docs/screenshots/`, else to `target/`). It needs
//!   `/usr/bin/chromium` (Debian's `chromium`) and `npm ci`: in CI (`CI=true`) their absence
//!   fails the test, elsewhere it is skipped with a loud message.
//! - Over plain HTTP against the real binary: cookies, headers, refusals, who may revoke what,
//!   lookup agreeing with the API, sign-out, and no secret of any of it in the logs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use common::app::{MODEL, seed, serve, spawn_binary, write_setup};
use common::azurite::{Azurite, Tls};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A free loopback port (bound and released; the app binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What the browser test needs, or why it cannot run.
fn browser_missing() -> Option<String> {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push(format!("{CHROMIUM} (apt-get install chromium)"));
    }
    if !root()
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        missing.push("node_modules/playwright-core (npm ci)".to_owned());
    }
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        missing.push("node".to_owned());
    }
    (!missing.is_empty()).then(|| missing.join(", "))
}

#[tokio::test]
async fn a_browser_signs_in_mints_downloads_revokes_and_forgeries_fail() {
    if let Some(missing) = browser_missing() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("the browser test needs {missing}");
        }
        eprintln!(
            "\n*** SKIPPED web_e2e browser test: missing {missing}. CI fails without them. ***\n"
        );
        return;
    }
    // The app on a known port, with server.public_url equal to it: links point at it, and the
    // pages' origin check compares against it.
    let azurite = Azurite::start(Tls::Https).await;
    seed(&azurite).await;
    let ca = azurite.ca_pem_path().unwrap().to_path_buf();
    let setup = write_setup(&azurite, None);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    let app = serve(
        Arc::new(azurite),
        setup,
        &[
            ("SASGATE_SERVER__LISTEN", listen.as_str()),
            ("SASGATE_SERVER__PUBLIC_URL", base.as_str()),
        ],
    )
    .await;
    assert_eq!(app.address, base);

    // The README's screenshots are refreshed on demand (`UPDATE_SCREENSHOTS=1`), like the
    // OpenAPI snapshot, so that a test run leaves the work tree clean; otherwise they are made
    // (and checked) under target/.
    let shots = if std::env::var("UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        root().join("docs/screenshots")
    } else {
        root().join("target/web-screenshots")
    };
    let out = tokio::process::Command::new("node")
        .arg(root().join("tests/web/e2e.mjs"))
        .current_dir(root())
        .env("SASGATE_URL", &base)
        .env("ADMIN_KEY", &app.admin)
        .env("RESEARCHER_KEY", &app.alice)
        .env("AZURITE_CA", &ca)
        .env(
            "EXPECTED_BODY_B64",
            base64::engine::general_purpose::STANDARD.encode(MODEL),
        )
        .env("SCREENSHOT_DIR", &shots)
        .env("CHROMIUM", CHROMIUM)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(240), out)
        .await
        .expect("the browser test finished within 4 minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    let summary: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON summary on stdout:\n{stdout}\nstderr:\n{stderr}"));
    assert!(
        out.status.success() && summary["ok"] == true,
        "the browser test failed: {summary:#}\nstderr:\n{stderr}"
    );
    for check in [
        "tab_reaches_key_field",
        "session_cookie_attributes",
        "csp_header",
        "refusal_reasons",
        "copied_to_clipboard",
        "download_bytes",
        "redemption_shown",
        "confirmation_explains",
        "revoked_link_gone",
        "cross_origin_post_refused",
        "wrong_or_missing_token_refused",
        "forged_revoke_changed_nothing",
        "own_revoked_link_gone",
        "no_csp_violations",
    ] {
        assert_eq!(summary["checks"][check], true, "{check}: {summary:#}");
    }

    // The ledger agrees: the revoked issuance carries the admin and the reason; the one the
    // forgeries aimed at is untouched; the researcher's own revocation is theirs.
    let revoked = app
        .ledger
        .get(summary["issuance"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_by.as_deref(), Some("user:admin"));
    assert_eq!(
        revoked.revoke_reason.as_deref(),
        Some("leaked in a chat (web e2e)")
    );
    assert_eq!(revoked.reason.as_deref(), Some("web e2e: download"));
    let kept = app
        .ledger
        .get(summary["kept"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.status, sasgate::ledger::StoredStatus::Active);
    let mine = app
        .ledger
        .get(summary["mine"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mine.revoked_by.as_deref(), Some("user:alice"));

    // Screenshots for the README: there, and not huge.
    for name in ["web-request.png", "web-issuance.png"] {
        let size = std::fs::metadata(shots.join(name)).unwrap().len();
        assert!((10_000..1_500_000).contains(&size), "{name}: {size} bytes");
    }
    app.stop().await;
}

/// A client that does not follow redirects and keeps one cookie jar by hand.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

/// A response, read.
struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    /// The value of the first hidden `csrf` field.
    fn csrf(&self) -> String {
        between(&self.body, "name=\"csrf\" value=\"", "\"")
            .unwrap_or_else(|| panic!("no CSRF field:\n{}", self.body))
    }

    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    fn location(&self) -> &str {
        self.headers[reqwest::header::LOCATION].to_str().unwrap()
    }
}

fn between(text: &str, start: &str, end: &str) -> Option<String> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(text[from..from + len].to_owned())
}

impl Browser {
    fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn read(&mut self, r: reqwest::Response) -> Page {
        let page = Page {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.text().await.unwrap(),
        };
        for c in page.set_cookies() {
            let pair = c.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            if !v.is_empty() {
                self.cookies.push((k.to_owned(), v.to_owned()));
            }
        }
        page
    }

    async fn get(&mut self, path: &str) -> Page {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.read(r).await
    }

    /// POSTs a form as a page of `origin` would (None: no Origin header).
    async fn post_from(&mut self, origin: Option<&str>, path: &str, form: &[(&str, &str)]) -> Page {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, self.cookie_header())
            .form(form);
        if let Some(o) = origin {
            req = req.header(reqwest::header::ORIGIN, o);
        }
        let r = req.send().await.unwrap();
        self.read(r).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let origin = self.base.clone();
        self.post_from(Some(&origin), path, form).await
    }

    async fn sign_in(&mut self, key: &str) {
        let form = self.get("/ui/signin").await;
        let page = self
            .post("/ui/signin", &[("csrf", &form.csrf()), ("api_key", key)])
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
        assert_eq!(page.location(), "/ui/");
    }

    /// Requests a link for `blob` in `container` on the request page; the link and its id.
    async fn request_link(&mut self, container: &str, blob: &str) -> (String, String) {
        let form = self.get("/ui/request").await;
        let page = self
            .post(
                "/ui/request",
                &[
                    ("csrf", &form.csrf()),
                    ("account", "devstoreaccount1"),
                    ("container", container),
                    ("blob", blob),
                    ("permissions", "r"),
                    ("kind", "link"),
                ],
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let link = between(&page.body, "spellcheck=\"false\">", "</textarea>").unwrap();
        let id = between(&page.body, "<code id=\"issuance-id\">", "</code>").unwrap();
        (link, id)
    }
}

#[tokio::test]
async fn the_pages_over_http_and_no_secret_in_the_logs() {
    let azurite = Azurite::start(Tls::Https).await;
    seed(&azurite).await;
    let setup = write_setup(&azurite, None);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = std::fs::read_to_string(&setup.config).unwrap().replace(
        "public_url = \"http://127.0.0.1:0\"",
        &format!("public_url = \"{base}\""),
    );
    std::fs::write(&setup.config, config).unwrap();
    let log = setup.dir.path().join("sasgate.log");
    let server = spawn_binary(&setup.config, port, &log).await;
    assert_eq!(server.address, base);
    let mut secrets: Vec<(String, String)> = vec![
        ("alice's API key".into(), setup.alice.clone()),
        ("the admin's API key".into(), setup.admin.clone()),
    ];

    // Not signed in: every page leads to the sign-in form, which sets its own token cookie.
    let mut alice = Browser::new(&base);
    let page = alice.get("/ui/").await;
    assert_eq!((page.status, page.location()), (303, "/ui/signin"));
    let page = alice.get("/ui/issuances").await;
    assert_eq!((page.status, page.location()), (303, "/ui/signin"));
    let form = alice.get("/ui/signin").await;
    assert_eq!(form.status, 200);
    let h = &form.headers;
    assert_eq!(h["content-security-policy"], sasgate::web::CSP);
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "same-origin");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert!(!form.body.contains("<script>") && !form.body.contains("style="));
    let signin_cookie = form.set_cookies().pop().unwrap();
    assert!(
        signin_cookie.starts_with("__Host-sasgate_signin=")
            && signin_cookie.ends_with("; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=600"),
        "{signin_cookie}"
    );
    let token = form.csrf();
    secrets.push(("the sign-in token".into(), token.clone()));

    // Refused sign-ins: no Origin, a foreign Origin, no token, a wrong key.
    let key = setup.alice.as_str();
    for (origin, fields) in [
        (None, vec![("csrf", token.as_str()), ("api_key", key)]),
        (
            Some("http://127.0.0.1:1"),
            vec![("csrf", token.as_str()), ("api_key", key)],
        ),
        (Some(base.as_str()), vec![("api_key", key)]),
    ] {
        let page = alice.post_from(origin, "/ui/signin", &fields).await;
        assert_eq!(page.status, 403, "{origin:?}: {}", page.body);
        assert!(page.body.contains("nothing was done"), "{}", page.body);
        assert!(
            page.set_cookies()
                .iter()
                .all(|c| !c.contains("sasgate_session"))
        );
    }
    let wrong = "sgk_wrongwrongwrongwrongwrongwrongwrongwrong";
    secrets.push(("a wrong API key".into(), wrong.into()));
    let page = alice
        .post("/ui/signin", &[("csrf", &token), ("api_key", wrong)])
        .await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("That API key is not valid"));

    // Signed in: the session cookie has every attribute.
    let form = alice.get("/ui/signin").await;
    let page = alice
        .post("/ui/signin", &[("csrf", &form.csrf()), ("api_key", key)])
        .await;
    assert_eq!((page.status, page.location()), (303, "/ui/"));
    let session = page
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-sasgate_session="))
        .unwrap();
    assert!(
        session.ends_with("; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=28800"),
        "{session}"
    );
    let id = between(&session, "__Host-sasgate_session=", ";").unwrap();
    assert_eq!(id.len(), 43);
    secrets.push(("alice's session id".into(), id));
    let home = alice.get("/ui/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("Request access") && !home.body.contains("/ui/issuances"));
    secrets.push(("alice's CSRF token".into(), home.csrf()));

    // A researcher may not open admin pages.
    for path in ["/ui/issuances", "/ui/ledger", "/ui/inspect"] {
        assert_eq!(alice.get(path).await.status, 403, "{path}");
    }

    // A link through the form: the same issuance the API makes, under alice's name.
    let (link, link_id) = alice.request_link("shared", "paper.pdf").await;
    assert!(link.starts_with(&format!("{base}/l/")), "{link}");
    secrets.push((
        "a link code".into(),
        link.rsplit('/').next().unwrap().into(),
    ));
    let redeemed = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(&link)
        .send()
        .await
        .unwrap();
    assert_eq!(redeemed.status(), 302);
    // And a SAS, which a researcher cannot revoke themselves.
    let form = alice.get("/ui/request").await;
    let page = alice
        .post(
            "/ui/request",
            &[
                ("csrf", &form.csrf()),
                ("account", "devstoreaccount1"),
                ("container", "models"),
                ("blob", "published/model.bin"),
                ("kind", "sas"),
                ("ttl", "10m"),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let sas = between(&page.body, "spellcheck=\"false\">", "</textarea>")
        .unwrap()
        .replace("&amp;", "&");
    let sas_id = between(&page.body, "<code id=\"issuance-id\">", "</code>").unwrap();
    let sig = url::Url::parse(&sas)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "sig")
        .unwrap()
        .1
        .into_owned();
    secrets.push(("a SAS signature".into(), sig));
    let confirm = alice.get(&format!("/ui/links/{sas_id}/revoke")).await;
    assert_eq!(confirm.status, 400, "{}", confirm.body);
    let page = alice
        .post(
            &format!("/ui/links/{sas_id}/revoke"),
            &[("csrf", &home.csrf()), ("reason", "mine")],
        )
        .await;
    assert_eq!(page.status, 400, "{}", page.body);

    // Someone else's link answers as if it did not exist, and stays active.
    let http = reqwest::Client::new();
    let ci_link: Value = http
        .post(format!("{base}/v1/links"))
        .bearer_auth(&setup.ci)
        .json(&json!({"account": "devstoreaccount1", "container": "ci-build", "blob": "out.tar", "permissions": "cw"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ci_id = ci_link["id"].as_str().unwrap();
    assert_eq!(
        alice.get(&format!("/ui/links/{ci_id}/revoke")).await.status,
        404
    );
    let page = alice
        .post(
            &format!("/ui/links/{ci_id}/revoke"),
            &[("csrf", &home.csrf()), ("reason", "not mine")],
        )
        .await;
    assert_eq!(page.status, 404);

    // The admin: listing, lookup (the same answer as the API's), verification.
    let mut admin = Browser::new(&base);
    admin.sign_in(&setup.admin).await;
    let list = admin.get("/ui/issuances?principal=user%3Aalice").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains(&link_id) && list.body.contains(&sas_id));
    assert!(!list.body.contains(ci_id), "filtered by principal");
    let detail = admin.get(&format!("/ui/issuances/{link_id}")).await;
    assert!(
        detail.body.contains("id=\"redemptions\""),
        "{}",
        detail.body
    );
    let csrf = admin.get("/ui/inspect").await.csrf();
    secrets.push(("the admin's CSRF token".into(), csrf.clone()));
    for (text, id) in [(&link, &link_id), (&sas, &sas_id)] {
        let page = admin
            .post("/ui/inspect", &[("csrf", &csrf), ("url", text)])
            .await;
        assert_eq!(page.status, 200);
        assert!(
            page.body
                .contains(&format!("<a href=\"/ui/issuances/{id}\">")),
            "{}",
            page.body
        );
        assert!(
            !page.body.contains(text.as_str()),
            "the pasted URL is not echoed"
        );
        let api: Value = http
            .post(format!("{base}/v1/issuances/lookup"))
            .bearer_auth(&setup.admin)
            .json(&json!({"url": text}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(api["id"], id.as_str(), "the API finds the same issuance");
    }
    let ledger = admin.get("/ui/ledger").await;
    assert!(ledger.body.contains("Intact"), "{}", ledger.body);

    // Alice revokes her own link from the pages: at once.
    let page = alice
        .post(
            &format!("/ui/links/{link_id}/revoke"),
            &[("csrf", &home.csrf()), ("reason", "done with it")],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(http.get(&link).send().await.unwrap().status(), 410);

    // Sign-out ends the session on the server: the old cookie is worth nothing.
    let old = admin.cookie_header();
    let page = admin.post("/ui/signout", &[("csrf", &csrf)]).await;
    assert_eq!((page.status, page.location()), (303, "/ui/signin"));
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{base}/ui/issuances"))
        .header(reqwest::header::COOKIE, old)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    // Nothing secret in the logs, while the paths of the pages are there.
    drop(server);
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        logs.contains("/ui/signin") && logs.contains("web sign-in"),
        "{logs}"
    );
    assert!(
        logs.contains("web sign-in refused"),
        "failed sign-ins are logged"
    );
    for (what, secret) in &secrets {
        assert!(!logs.contains(secret.as_str()), "{what} is in the logs");
    }
}
