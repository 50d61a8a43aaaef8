//! `sasgate mint` in CI: where the credential comes from (an OIDC token file,
//! `SASGATE_OIDC_TOKEN`, the GitHub Actions ID token endpoint, `SASGATE_TOKEN`) and the CI
//! outputs (`--output github`, `--output env`). The real binary runs against two local fakes: the
//! GitHub Actions ID token endpoint and a sasgate broker that only checks the bearer token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// The runner's `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
const REQUEST_TOKEN: &str = "ghs_fakeRequestToken0123456789";
/// What the fake GitHub endpoint hands out for audience `sasgate`.
const JWT_GITHUB: &str =
    "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJnaXRodWIiLCJhdWQiOiJzYXNnYXRlIn0.c2lnLWdpdGh1Yg";
/// ... and for [`CUSTOM_AUDIENCE`].
const JWT_GITHUB_CUSTOM: &str =
    "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJnaXRodWIiLCJhdWQiOiJjdXN0b20ifQ.c2lnLWN1c3RvbQ";
/// An audience that needs URL encoding (space, `&`, `/`, `:`).
const CUSTOM_AUDIENCE: &str = "https://sasgate.example/prod ci&x";
const JWT_ENV: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJnaXRsYWIifQ.c2lnLWVudg";
const JWT_FILE: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJrOHMifQ.c2lnLWZpbGU";
/// A well-formed JWT the broker does not accept.
const JWT_UNKNOWN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJldmlsIn0.c2lnLXVua25vd24";
const API_KEY: &str = "sgk_test_ciKeyForTheFakeBroker0001";
const EXPIRES_ON: &str = "2030-01-01T00:00:00Z";

/// The canned SAS for a credential label and a blob: recognisable (`SECRETSIG`), percent-encoded
/// like a real one, with a single quote for blob `quote` and a line break for blob `newline`.
fn sas_for(label: &str, blob: &str) -> String {
    let base = format!("sv=2025-05-05&sr=b&sp=r&se=2030-01-01T00%3A00%3A00Z&sig=SECRETSIG{label}");
    match blob {
        "quote" => format!("{base}it's%2Bq%3D"),
        "newline" => format!("{base}%2B\nevil-output=1"),
        _ => format!("{base}%2Bx%3D"),
    }
}

fn url_for(sas: &str) -> String {
    format!("https://acct.blob.core.windows.net/models/m.bin?{sas}")
}

fn problem(status: StatusCode, code: &str, title: &str, detail: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json!({ "code": code, "title": title, "detail": detail, "status": status.as_u16() })
            .to_string(),
    )
        .into_response()
}

#[derive(Default)]
struct Seen {
    /// Every `Authorization` header the fake broker received.
    authorizations: Mutex<Vec<String>>,
    /// Calls to the fake GitHub ID token endpoint.
    github_calls: AtomicUsize,
}

async fn fake_broker(
    State(seen): State<Arc<Seen>>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    seen.authorizations
        .lock()
        .unwrap()
        .push(authorization.clone());
    let token = authorization.strip_prefix("Bearer ").unwrap_or("");
    let label = match token {
        JWT_GITHUB => "github",
        JWT_GITHUB_CUSTOM => "github-custom",
        JWT_ENV => "env",
        JWT_FILE => "file",
        API_KEY => "api-key",
        // A careless server that echoes the credential: the client must still not print it.
        _ => {
            return problem(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Unauthenticated",
                &format!("the bearer token {token} was not accepted"),
            );
        }
    };
    let blob = body.get("blob").and_then(Value::as_str).unwrap_or("");
    if blob == "busy" {
        let mut response = problem(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many requests",
            "this principal mints too often",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, "7".parse().unwrap());
        return response;
    }
    let sas = sas_for(label, blob);
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "id": format!("iss_{label}"),
            "url": url_for(&sas),
            "sas": sas,
            "resource": "acct/models/m.bin",
            "permissions": "r",
            "starts_on": "2029-12-31T23:45:00Z",
            "expires_on": EXPIRES_ON,
            "rule": "ci-read",
            "revocation": "expiry_only",
        })),
    )
        .into_response()
}

async fn fake_github(
    State(seen): State<Arc<Seen>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    seen.github_calls.fetch_add(1, Ordering::SeqCst);
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if authorization != Some(&format!("bearer {REQUEST_TOKEN}")) {
        return (StatusCode::UNAUTHORIZED, "bad request token").into_response();
    }
    // The URL the runner gives already has a query string, which must survive.
    if query.get("api-version").map(String::as_str) != Some("2.0") {
        return (StatusCode::BAD_REQUEST, "api-version lost").into_response();
    }
    let value = match query.get("audience").map(String::as_str) {
        Some("sasgate") => JWT_GITHUB,
        Some(CUSTOM_AUDIENCE) => JWT_GITHUB_CUSTOM,
        _ => return (StatusCode::BAD_REQUEST, "unexpected audience").into_response(),
    };
    axum::Json(json!({ "count": 1, "value": value })).into_response()
}

/// Both fakes, listening on loopback before this returns (no readiness wait needed).
struct Fakes {
    broker: String,
    github: String,
    seen: Arc<Seen>,
}

impl Fakes {
    async fn start() -> Self {
        let seen = Arc::new(Seen::default());
        let app = Router::new()
            .route("/v1/tokens", post(fake_broker))
            .route("/_apis/token", get(fake_github))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            broker: format!("http://{address}"),
            github: format!("http://{address}/_apis/token?api-version=2.0"),
            seen,
        }
    }

    fn authorizations(&self) -> Vec<String> {
        self.seen.authorizations.lock().unwrap().clone()
    }

    fn github_calls(&self) -> usize {
        self.seen.github_calls.load(Ordering::SeqCst)
    }

    /// The GitHub Actions runner's variables.
    fn github_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SASGATE_URL", self.broker.clone()),
            ("ACTIONS_ID_TOKEN_REQUEST_URL", self.github.clone()),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN.to_owned()),
        ]
    }
}

/// Every variable the client reads, removed so that the caller's environment (say, a CI runner's)
/// does not leak in.
const CLIENT_VARIABLES: &[&str] = &[
    "SASGATE_URL",
    "SASGATE_TOKEN",
    "SASGATE_OIDC_TOKEN",
    "SASGATE_ALLOW_HTTP",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "GITHUB_OUTPUT",
];

async fn run(program: &str, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args);
    for k in CLIENT_VARIABLES {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.unwrap()
}

/// `sasgate mint --account acct --container models --blob BLOB EXTRA…`.
async fn mint(blob: &str, extra: &[&str], env: &[(&str, String)]) -> Output {
    let mut args = vec![
        "mint",
        "--account",
        "acct",
        "--container",
        "models",
        "--blob",
        blob,
    ];
    args.extend_from_slice(extra);
    run(env!("CARGO_BIN_EXE_sasgate"), &args, env).await
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn all(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

/// The issuance id of a `--output json` answer: which credential the broker saw.
fn minted_id(o: &Output) -> String {
    assert!(o.status.success(), "{}", all(o));
    let v: Value = serde_json::from_str(&stdout(o)).unwrap();
    v["id"].as_str().unwrap().to_owned()
}

fn with(
    mut env: Vec<(&'static str, String)>,
    k: &'static str,
    v: &str,
) -> Vec<(&'static str, String)> {
    env.push((k, v.to_owned()));
    env
}

#[tokio::test]
async fn a_github_actions_id_token_reaches_the_broker() {
    let fakes = Fakes::start().await;
    let o = mint("m.bin", &["--output", "json"], &fakes.github_env()).await;
    assert_eq!(minted_id(&o), "iss_github");
    assert_eq!(fakes.authorizations(), [format!("Bearer {JWT_GITHUB}")]);
    assert_eq!(fakes.github_calls(), 1);
    assert!(!all(&o).contains(REQUEST_TOKEN));

    // --audience is URL-encoded onto the runner's URL, after its own query string.
    let o = mint(
        "m.bin",
        &["--output", "json", "--audience", CUSTOM_AUDIENCE],
        &fakes.github_env(),
    )
    .await;
    assert_eq!(minted_id(&o), "iss_github-custom");

    // --auth oidc is satisfied by GitHub Actions alone.
    let o = mint(
        "m.bin",
        &["--output", "json", "--auth", "oidc"],
        &fakes.github_env(),
    )
    .await;
    assert_eq!(minted_id(&o), "iss_github");
}

#[tokio::test]
async fn a_refused_github_request_says_why_without_the_request_token() {
    let fakes = Fakes::start().await;
    let env = vec![
        ("SASGATE_URL", fakes.broker.clone()),
        ("ACTIONS_ID_TOKEN_REQUEST_URL", fakes.github.clone()),
        (
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            "ghs_wrongRequestToken".to_owned(),
        ),
        ("SASGATE_TOKEN", API_KEY.to_owned()),
    ];
    let o = mint("m.bin", &[], &env).await;
    assert_eq!(o.status.code(), Some(1));
    let text = all(&o);
    assert!(
        text.contains("HTTP 401") && text.contains("id-token: write"),
        "{text}"
    );
    assert!(!text.contains("ghs_wrongRequestToken"), "{text}");
    // Present but failing: no fall-through to the API key.
    assert!(fakes.authorizations().is_empty());
}

#[tokio::test]
async fn output_github_masks_then_writes_the_step_outputs() {
    let fakes = Fakes::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("github_output");
    std::fs::write(&file, "earlier=1\n").unwrap();
    let env = with(fakes.github_env(), "GITHUB_OUTPUT", file.to_str().unwrap());
    let o = mint("m.bin", &["--output", "github"], &env).await;
    assert!(o.status.success(), "{}", all(&o));

    let sas = sas_for("github", "m.bin");
    let url = url_for(&sas);
    // The runner unescapes %25 to %, so the mask is exactly the SAS.
    let escaped = |s: &str| s.replace('%', "%25");
    assert_eq!(
        stdout(&o),
        format!(
            "::add-mask::{}\n::add-mask::{}\n",
            escaped(&sas),
            escaped(&url)
        )
    );
    assert!(stdout(&o).lines().all(|l| l.starts_with("::add-mask::")));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("earlier=1\nid=iss_github\nurl={url}\nsas={sas}\nexpires-on={EXPIRES_ON}\n")
    );
    assert_eq!(
        stderr(&o),
        format!("minted iss_github, expires {EXPIRES_ON}\n")
    );
    // The SAS is in GITHUB_OUTPUT and in the masks only.
    assert!(!stderr(&o).contains("SECRETSIG"));
    assert!(!stdout(&o).contains(&sas));
    assert!(!all(&o).contains(JWT_GITHUB));
}

#[tokio::test]
async fn output_github_outside_github_actions_is_refused_before_minting() {
    let fakes = Fakes::start().await;
    let o = mint("m.bin", &["--output", "github"], &fakes.github_env()).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("GitHub Actions") && stderr(&o).contains("GITHUB_OUTPUT"),
        "{}",
        all(&o)
    );
    assert!(stdout(&o).is_empty());
    assert!(fakes.authorizations().is_empty());
    assert_eq!(fakes.github_calls(), 0);
}

#[tokio::test]
async fn a_line_break_in_a_value_is_never_written_to_github_output() {
    let fakes = Fakes::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("github_output");
    std::fs::write(&file, "").unwrap();
    let env = with(fakes.github_env(), "GITHUB_OUTPUT", file.to_str().unwrap());
    let o = mint("newline", &["--output", "github"], &env).await;
    assert_eq!(o.status.code(), Some(1));
    let text = all(&o);
    assert!(
        text.contains("line break") && text.contains("output injection"),
        "{text}"
    );
    assert!(
        !text.contains("SECRETSIG") && !text.contains("evil-output"),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "");
    assert!(stdout(&o).is_empty());
}

#[tokio::test]
async fn sasgate_oidc_token_and_a_token_file_are_trimmed_and_sent() {
    let fakes = Fakes::start().await;
    let env = vec![
        ("SASGATE_URL", fakes.broker.clone()),
        ("SASGATE_OIDC_TOKEN", format!("  {JWT_ENV}\n")),
    ];
    let o = mint("m.bin", &["--output", "json"], &env).await;
    assert_eq!(minted_id(&o), "iss_env");

    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{JWT_FILE}\n")).unwrap();
    let o = mint(
        "m.bin",
        &[
            "--output",
            "json",
            "--oidc-token-file",
            token_file.to_str().unwrap(),
        ],
        &[("SASGATE_URL", fakes.broker.clone())],
    )
    .await;
    assert_eq!(minted_id(&o), "iss_file");
    assert_eq!(
        fakes.authorizations(),
        [format!("Bearer {JWT_ENV}"), format!("Bearer {JWT_FILE}")]
    );
}

#[tokio::test]
async fn file_beats_env_beats_github_beats_api_key() {
    let fakes = Fakes::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, JWT_FILE).unwrap();
    let file_args = [
        "--output",
        "json",
        "--oidc-token-file",
        token_file.to_str().unwrap(),
    ];
    let github = fakes.github_env();
    let api = with(github.clone(), "SASGATE_TOKEN", API_KEY);
    let everything = with(api.clone(), "SASGATE_OIDC_TOKEN", JWT_ENV);

    let o = mint("m.bin", &file_args, &everything).await;
    assert_eq!(minted_id(&o), "iss_file");
    let o = mint("m.bin", &["--output", "json"], &everything).await;
    assert_eq!(minted_id(&o), "iss_env");
    // Neither asked GitHub for a token.
    assert_eq!(fakes.github_calls(), 0);
    let o = mint("m.bin", &["--output", "json"], &api).await;
    assert_eq!(minted_id(&o), "iss_github");
    let api_only = vec![
        ("SASGATE_URL", fakes.broker.clone()),
        ("SASGATE_TOKEN", API_KEY.to_owned()),
    ];
    let o = mint("m.bin", &["--output", "json"], &api_only).await;
    assert_eq!(minted_id(&o), "iss_api-key");

    // --auth api-key ignores every OIDC source.
    let o = mint(
        "m.bin",
        &["--output", "json", "--auth", "api-key"],
        &everything,
    )
    .await;
    assert_eq!(minted_id(&o), "iss_api-key");
    assert_eq!(fakes.github_calls(), 1);

    // --auth api-key with a token file is a contradiction.
    let o = mint(
        "m.bin",
        &[&file_args[..], &["--auth", "api-key"]].concat(),
        &everything,
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--oidc-token-file"), "{}", all(&o));

    // --auth oidc never falls back to the API key.
    let before = fakes.authorizations().len();
    let o = mint("m.bin", &["--auth", "oidc"], &api_only).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no OIDC token"), "{}", all(&o));
    assert_eq!(fakes.authorizations().len(), before);

    // No credential at all.
    let o = mint("m.bin", &[], &[("SASGATE_URL", fakes.broker.clone())]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("SASGATE_TOKEN"), "{}", all(&o));
}

#[tokio::test]
async fn an_empty_or_malformed_oidc_token_is_refused_naming_its_source() {
    let fakes = Fakes::start().await;
    let api = vec![
        ("SASGATE_URL", fakes.broker.clone()),
        ("SASGATE_TOKEN", API_KEY.to_owned()),
    ];
    // Present but empty: an error, not a fall-through to the API key.
    let o = mint(
        "m.bin",
        &[],
        &with(api.clone(), "SASGATE_OIDC_TOKEN", " \n"),
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("SASGATE_OIDC_TOKEN is empty"),
        "{}",
        all(&o)
    );

    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty-token");
    std::fs::write(&empty, "\n").unwrap();
    let o = mint(
        "m.bin",
        &["--oidc-token-file", empty.to_str().unwrap()],
        &api,
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("--oidc-token-file {} is empty", empty.display())),
        "{}",
        all(&o)
    );

    let missing = dir.path().join("missing");
    let o = mint(
        "m.bin",
        &["--oidc-token-file", missing.to_str().unwrap()],
        &api,
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot read --oidc-token-file"),
        "{}",
        all(&o)
    );

    // Not a JWT (say, the whole GitHub answer): refused without echoing it.
    let not_jwt = format!("{{\"value\": \"{JWT_ENV}\"}}");
    let o = mint(
        "m.bin",
        &[],
        &with(api.clone(), "SASGATE_OIDC_TOKEN", &not_jwt),
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a JWT"), "{}", all(&o));
    assert!(!all(&o).contains(JWT_ENV));

    // An API key in the OIDC variable.
    let o = mint(
        "m.bin",
        &[],
        &with(api.clone(), "SASGATE_OIDC_TOKEN", API_KEY),
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("SASGATE_TOKEN"), "{}", all(&o));
    assert!(!all(&o).contains(API_KEY));

    assert!(fakes.authorizations().is_empty());
}

#[tokio::test]
async fn output_env_survives_eval_with_a_single_quote_in_the_sas() {
    let fakes = Fakes::start().await;
    let env = vec![
        ("SASGATE_URL", fakes.broker.clone()),
        ("SASGATE_OIDC_TOKEN", JWT_ENV.to_owned()),
    ];
    let o = mint("quote", &["--output", "env"], &env).await;
    assert!(o.status.success(), "{}", all(&o));
    let sas = sas_for("env", "quote");
    assert!(sas.contains('\''));
    assert!(
        stdout(&o).contains("export AZURE_STORAGE_SAS_TOKEN='") && stdout(&o).contains(r"it'\''s"),
        "{}",
        stdout(&o)
    );

    let script = r#"eval "$("$0" mint --account acct --container models --blob quote --output env)" || exit 9
printf '%s\n%s\n%s\n%s' "$SASGATE_ISSUANCE_ID" "$AZURE_STORAGE_SAS_URL" "$AZURE_STORAGE_SAS_EXPIRES_ON" "$AZURE_STORAGE_SAS_TOKEN""#;
    let o = run("sh", &["-c", script, env!("CARGO_BIN_EXE_sasgate")], &env).await;
    assert!(o.status.success(), "{}", all(&o));
    assert_eq!(
        stdout(&o),
        format!("iss_env\n{}\n{EXPIRES_ON}\n{sas}", url_for(&sas))
    );
}

#[tokio::test]
async fn a_401_prints_the_code_and_never_the_token() {
    let fakes = Fakes::start().await;
    let env = vec![
        ("SASGATE_URL", fakes.broker.clone()),
        ("SASGATE_OIDC_TOKEN", JWT_UNKNOWN.to_owned()),
    ];
    let o = mint("m.bin", &[], &env).await;
    assert_eq!(o.status.code(), Some(1));
    let text = all(&o);
    // The fake echoes the token in its detail; the client blanks it out.
    assert!(
        text.contains("unauthenticated")
            && text.contains("HTTP 401")
            && text.contains("was not accepted")
            && text.contains("SASGATE_OIDC_TOKEN"),
        "{text}"
    );
    assert!(!text.contains(JWT_UNKNOWN), "{text}");
    assert!(!text.contains("c2lnLXVua25vd24"), "{text}");
    assert!(stdout(&o).is_empty());
    assert_eq!(fakes.authorizations(), [format!("Bearer {JWT_UNKNOWN}")]);
}

#[tokio::test]
async fn a_429_prints_retry_after() {
    let fakes = Fakes::start().await;
    let o = mint("busy", &[], &fakes.github_env()).await;
    assert_eq!(o.status.code(), Some(1));
    let text = all(&o);
    assert!(
        text.contains("rate_limited")
            && text.contains("this principal mints too often")
            && text.contains("retry after: 7 seconds"),
        "{text}"
    );
    assert!(!text.contains(JWT_GITHUB), "{text}");
}
