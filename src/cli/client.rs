//! `sasgate mint` and `sasgate issuances`: a thin client of the HTTP API. Reads `SASGATE_URL`
//! (default `http://127.0.0.1:8080`) and a credential: `SASGATE_TOKEN` (an API key) for every
//! command, and for `mint` also an OIDC token from a file, the environment or GitHub Actions (see
//! [`Credential::resolve`] for the order).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue, RETRY_AFTER};
use serde_json::Value;
use zeroize::Zeroizing;

/// The largest OIDC token file `mint` reads (real ID tokens are a few KiB).
const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;

/// Where the server is and who we are.
pub struct Client {
    base: String,
    credential: Credential,
    http: reqwest::Client,
}

/// A bearer credential and where it came from. The value is zeroed on drop and never printed:
/// there is no `Debug`, and error messages name only the [`Source`].
struct Credential {
    secret: Zeroizing<String>,
    source: Source,
}

/// Where a credential came from, for messages.
enum Source {
    /// `--oidc-token-file PATH`.
    File(PathBuf),
    /// `SASGATE_OIDC_TOKEN`.
    OidcEnv,
    /// The GitHub Actions ID token endpoint, for this audience.
    GitHub(String),
    /// `SASGATE_TOKEN`.
    ApiKey,
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::File(p) => format!("the OIDC token in --oidc-token-file {}", p.display()),
            Source::OidcEnv => "the OIDC token in SASGATE_OIDC_TOKEN".to_owned(),
            Source::GitHub(aud) => format!("the GitHub Actions ID token (audience {aud:?})"),
            Source::ApiKey => "the API key in SASGATE_TOKEN".to_owned(),
        }
    }
}

/// Which credential `mint` presents (`--auth`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// The first present of: --oidc-token-file, SASGATE_OIDC_TOKEN, GitHub Actions, SASGATE_TOKEN.
    Auto,
    /// An OIDC token only (--oidc-token-file, SASGATE_OIDC_TOKEN or GitHub Actions); an error
    /// when there is none.
    Oidc,
    /// The API key in SASGATE_TOKEN only.
    ApiKey,
}

/// `mint`'s credential options from the command line.
pub struct CredentialArgs {
    /// `--auth`.
    pub auth: AuthMode,
    /// `--oidc-token-file`.
    pub oidc_token_file: Option<PathBuf>,
    /// `--audience`: asked of GitHub Actions (a file or `SASGATE_OIDC_TOKEN` already has one).
    pub audience: String,
}

impl Credential {
    /// `SASGATE_TOKEN`, the API key (the only credential of the commands other than `mint`).
    fn api_key() -> Result<Self, String> {
        let token = std::env::var("SASGATE_TOKEN")
            .map_err(|_| "set SASGATE_TOKEN to your sasgate API key (sgk_…)".to_owned())?;
        Ok(Self {
            secret: Zeroizing::new(token),
            source: Source::ApiKey,
        })
    }

    /// Finds `mint`'s credential. With `--auth auto` the first of these that is present wins:
    ///
    /// 1. `--oidc-token-file PATH`: an OIDC token (JWT) read from a file, e.g. a GitLab
    ///    `id_tokens` token written to a file, or a Kubernetes projected service account token;
    /// 2. `SASGATE_OIDC_TOKEN`: an OIDC token in the environment (GitLab CI:
    ///    `id_tokens: SASGATE_OIDC_TOKEN: aud: sasgate`);
    /// 3. GitHub Actions: when `ACTIONS_ID_TOKEN_REQUEST_URL` and `ACTIONS_ID_TOKEN_REQUEST_TOKEN`
    ///    are set (a job with `permissions: id-token: write`), an ID token requested from the
    ///    runner for `--audience` (default `sasgate`);
    /// 4. `SASGATE_TOKEN`: a sasgate API key (`sgk_…`).
    ///
    /// `--auth oidc` considers only 1–3 and fails when none is present; `--auth api-key` only 4.
    /// A source that is present but unusable (an unreadable file, an empty token, a refused
    /// GitHub request) is an error: the next source is not tried, so a job never silently runs as
    /// another principal. OIDC tokens are trimmed of surrounding whitespace and must look like a
    /// JWT; no message ever contains a token, only the name of its source.
    async fn resolve(args: &CredentialArgs, http: &reqwest::Client) -> Result<Self, String> {
        if args.auth == AuthMode::ApiKey {
            if args.oidc_token_file.is_some() {
                return Err("--oidc-token-file needs --auth auto or --auth oidc".to_owned());
            }
            return Self::api_key();
        }
        if let Some(path) = &args.oidc_token_file {
            let source = Source::File(path.clone());
            let raw = read_token_file(path)?;
            return Self::oidc(raw, source);
        }
        if let Some(raw) = std::env::var_os("SASGATE_OIDC_TOKEN") {
            let raw = raw.into_string().map_err(|_| {
                "SASGATE_OIDC_TOKEN is not UTF-8 text: it cannot be an OIDC token".to_owned()
            })?;
            return Self::oidc(Zeroizing::new(raw), Source::OidcEnv);
        }
        let request_url = std::env::var("ACTIONS_ID_TOKEN_REQUEST_URL").unwrap_or_default();
        let request_token =
            Zeroizing::new(std::env::var("ACTIONS_ID_TOKEN_REQUEST_TOKEN").unwrap_or_default());
        if !request_url.is_empty() && !request_token.is_empty() {
            let raw = github_id_token(http, &request_url, &request_token, &args.audience).await?;
            return Self::oidc(raw, Source::GitHub(args.audience.clone()));
        }
        match args.auth {
            AuthMode::Oidc => Err(
                "--auth oidc: no OIDC token: give --oidc-token-file PATH, set \
                 SASGATE_OIDC_TOKEN (GitLab CI: id_tokens), or run in GitHub Actions with \
                 `permissions: id-token: write`"
                    .to_owned(),
            ),
            _ => Self::api_key().map_err(|_| {
                "no credential: set SASGATE_TOKEN to your sasgate API key (sgk_…), or give an OIDC \
                 token with --oidc-token-file PATH or SASGATE_OIDC_TOKEN, or run in GitHub Actions \
                 with `permissions: id-token: write`"
                    .to_owned()
            }),
        }
    }

    /// Checks an OIDC token from `source`: trimmed, not empty, shaped like a JWT.
    fn oidc(raw: Zeroizing<String>, source: Source) -> Result<Self, String> {
        let token = raw.trim();
        let what = source.describe();
        if token.is_empty() {
            return Err(format!("{what} is empty"));
        }
        if token.starts_with("sgk_") {
            return Err(format!(
                "{what} is a sasgate API key, not an OIDC token: put API keys in SASGATE_TOKEN"
            ));
        }
        let parts: Vec<&str> = token.split('.').collect();
        let base64url = |p: &str| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='))
        };
        if parts.len() != 3
            || parts[..2].iter().any(|p| p.is_empty())
            || !parts.iter().all(|p| base64url(p))
        {
            return Err(format!(
                "{what} is not a JWT (three base64url parts separated by dots)"
            ));
        }
        Ok(Self {
            secret: Zeroizing::new(token.to_owned()),
            source,
        })
    }

    /// `message` with the credential, should it appear there, blanked out.
    fn redact(&self, message: String) -> String {
        if self.secret.is_empty() || !message.contains(self.secret.as_str()) {
            message
        } else {
            message.replace(self.secret.as_str(), "[redacted]")
        }
    }
}

/// Reads an OIDC token file (at most [`MAX_TOKEN_FILE_BYTES`]).
fn read_token_file(path: &Path) -> Result<Zeroizing<String>, String> {
    let name = path.display();
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot read --oidc-token-file {name}: {e}"))?;
    let mut bytes = Zeroizing::new(Vec::new());
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, MAX_TOKEN_FILE_BYTES + 1),
        &mut bytes,
    )
    .map_err(|e| format!("cannot read --oidc-token-file {name}: {e}"))?;
    if bytes.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(format!(
            "--oidc-token-file {name} is over {MAX_TOKEN_FILE_BYTES} bytes: not an OIDC token"
        ));
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| format!("--oidc-token-file {name} is not UTF-8 text"))?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// Asks the GitHub Actions runner for an ID token for `audience`:
/// `GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=…` with `Authorization: bearer
/// $ACTIONS_ID_TOKEN_REQUEST_TOKEN`, answered with `{"value": "<jwt>"}`.
async fn github_id_token(
    http: &reqwest::Client,
    request_url: &str,
    request_token: &str,
    audience: &str,
) -> Result<Zeroizing<String>, String> {
    if audience.trim().is_empty() {
        return Err("--audience is empty".to_owned());
    }
    let separator = if request_url.contains('?') { '&' } else { '?' };
    let url = format!(
        "{request_url}{separator}audience={}",
        crate::sas::encode::encode_query_value(audience)
    );
    let parsed = url::Url::parse(&url)
        .map_err(|_| "ACTIONS_ID_TOKEN_REQUEST_URL is not a URL".to_owned())?;
    check_transport(
        &parsed,
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "the runner's request token",
    )?;
    let mut authorization = HeaderValue::from_str(&format!("bearer {request_token}"))
        .map_err(|_| "ACTIONS_ID_TOKEN_REQUEST_TOKEN is not a valid header value".to_owned())?;
    authorization.set_sensitive(true);
    let response = http
        .get(parsed)
        .header(AUTHORIZATION, authorization)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot reach the GitHub Actions ID token endpoint: {}",
                without_url(&e)
            )
        })?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!(
            "GitHub Actions gave no ID token (HTTP {}); does the job have `permissions: id-token: write`?",
            status.as_u16()
        ));
    }
    let body: Value = response
        .json()
        .await
        .map_err(|_| "the GitHub Actions ID token answer is not JSON".to_owned())?;
    let value = body
        .get("value")
        .and_then(Value::as_str)
        .ok_or_else(|| "the GitHub Actions ID token answer has no `value`".to_owned())?;
    Ok(Zeroizing::new(value.to_owned()))
}

/// Refuses plain HTTP to another machine for `what` (a URL a secret is sent to), unless
/// `SASGATE_ALLOW_HTTP` is set.
fn check_transport(parsed: &url::Url, what: &str, secret: &str) -> Result<(), String> {
    if parsed.scheme() != "https"
        && !crate::config::is_loopback(parsed)
        && std::env::var_os("SASGATE_ALLOW_HTTP").is_none()
    {
        return Err(format!(
            "{what} is plain HTTP to another machine: {secret} would cross the network in clear text; use https:// (or set SASGATE_ALLOW_HTTP=1 on a trusted network)"
        ));
    }
    Ok(())
}

impl Client {
    /// From `SASGATE_URL` and `SASGATE_TOKEN`.
    pub fn from_env() -> Result<Self, String> {
        let (base, http) = endpoint()?;
        Ok(Self {
            base,
            credential: Credential::api_key()?,
            http,
        })
    }

    /// From `SASGATE_URL` and the credential `args` lead to ([`Credential::resolve`]).
    async fn for_mint(args: &CredentialArgs) -> Result<Self, String> {
        let (base, http) = endpoint()?;
        let credential = Credential::resolve(args, &http).await?;
        Ok(Self {
            base,
            credential,
            http,
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, String> {
        let response = request
            .bearer_auth(self.credential.secret.as_str())
            .send()
            .await
            .map_err(|e| {
                self.credential.redact(format!(
                    "cannot reach sasgate at {}: {}",
                    self.base,
                    without_url(&e)
                ))
            })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let mut message = describe_problem(status.as_u16(), &body);
        if let Some(r) = retry_after {
            let unit = if !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()) {
                " seconds"
            } else {
                ""
            };
            message.push_str(&format!("\n  retry after: {r}{unit}"));
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            message.push_str(&format!(
                "\n  credential: {}",
                self.credential.source.describe()
            ));
        }
        Err(self.credential.redact(message))
    }
}

/// The base URL in `SASGATE_URL` (checked: HTTPS unless loopback) and an HTTP client.
fn endpoint() -> Result<(String, reqwest::Client), String> {
    let base = std::env::var("SASGATE_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let parsed = url::Url::parse(&base).map_err(|_| format!("SASGATE_URL is not a URL: {base}"))?;
    check_transport(&parsed, &format!("SASGATE_URL {base}"), "your credential")?;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    Ok((base.trim_end_matches('/').to_owned(), http))
}

/// reqwest errors may carry the URL; ours has no secret in it, but keep messages short.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "");
    }
    s
}

/// A problem document as one or more lines for a person.
pub fn describe_problem(status: u16, body: &Value) -> String {
    let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("");
    if field("code").is_empty() && field("detail").is_empty() {
        return format!("HTTP {status}, and the answer is not a sasgate problem document");
    }
    let mut out = format!(
        "{} ({}, HTTP {status}): {}",
        field("title"),
        field("code"),
        field("detail")
    );
    if let Some(reasons) = body.get("reasons").and_then(Value::as_array) {
        for r in reasons.iter().filter_map(Value::as_str) {
            out.push_str(&format!("\n  - {r}"));
        }
    }
    if let Some(id) = body.get("error_id").and_then(Value::as_str) {
        out.push_str(&format!("\n  error id: {id}"));
    }
    out
}

/// How `mint` prints the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// The full URL.
    Url,
    /// The SAS query string only.
    Sas,
    /// The whole response.
    Json,
    /// `export NAME='value'` lines for `eval "$(sasgate mint … --output env)"` in a POSIX shell:
    /// SASGATE_ISSUANCE_ID, AZURE_STORAGE_SAS_URL, AZURE_STORAGE_SAS_TOKEN,
    /// AZURE_STORAGE_SAS_EXPIRES_ON.
    Env,
    /// GitHub Actions: `::add-mask::` the SAS and URL on stdout, and append id, url, sas and
    /// expires-on to $GITHUB_OUTPUT (step outputs).
    Github,
}

/// `POST /v1/tokens` with `body`, presenting the credential `auth` leads to, and prints the
/// token as `output` says.
pub async fn mint(body: &Value, output: Output, auth: &CredentialArgs) -> ExitCode {
    // Checked before minting: a token nobody can receive should not be issued (and recorded).
    let github_output = match output {
        Output::Github => match std::env::var_os("GITHUB_OUTPUT").filter(|v| !v.is_empty()) {
            Some(p) => Some(PathBuf::from(p)),
            None => {
                return fail(
                    "--output github is for GitHub Actions steps: GITHUB_OUTPUT is not set (elsewhere use --output url, sas, json or env)",
                );
            }
        },
        _ => None,
    };
    let client = match Client::for_mint(auth).await {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let url = format!("{}/v1/tokens", client.base);
    let v = match client.send(client.http.post(url).json(body)).await {
        Ok(v) => v,
        Err(e) => return fail(&e),
    };
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let printed = match (output, github_output) {
        (Output::Url, _) => print_stdout(&format!("{}\n", s("url"))),
        (Output::Sas, _) => print_stdout(&format!("{}\n", s("sas"))),
        (Output::Json, _) => print_stdout(&format!(
            "{}\n",
            serde_json::to_string_pretty(&v).unwrap_or_default()
        )),
        (Output::Env, _) => Minted::from_answer(&v).and_then(|m| print_stdout(&m.env_lines())),
        (Output::Github, Some(path)) => Minted::from_answer(&v).and_then(|m| m.to_github(&path)),
        (Output::Github, None) => Err("GITHUB_OUTPUT is not set".to_owned()),
    };
    match printed {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// The fields of a minted token that `--output env` and `--output github` hand on.
struct Minted {
    id: String,
    url: String,
    sas: String,
    expires_on: String,
}

impl Minted {
    fn from_answer(v: &Value) -> Result<Self, String> {
        let field = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| format!("the broker's answer has no `{k}`"))
        };
        Ok(Self {
            id: field("id")?,
            url: field("url")?,
            sas: field("sas")?,
            expires_on: field("expires_on")?,
        })
    }

    /// `export NAME='value'` lines, each value single-quoted so that `eval` takes it verbatim.
    fn env_lines(&self) -> String {
        [
            ("SASGATE_ISSUANCE_ID", &self.id),
            ("AZURE_STORAGE_SAS_URL", &self.url),
            ("AZURE_STORAGE_SAS_TOKEN", &self.sas),
            ("AZURE_STORAGE_SAS_EXPIRES_ON", &self.expires_on),
        ]
        .iter()
        .map(|(name, value)| format!("export {name}={}\n", shell_quote(value)))
        .collect()
    }

    /// Masks the SAS and the URL in the runner's logs (stdout), then appends the step outputs to
    /// `path` (`$GITHUB_OUTPUT`), and says on stderr what was minted. Nothing is written when a
    /// value holds a line break: it could add outputs of its own.
    fn to_github(&self, path: &Path) -> Result<(), String> {
        let outputs = [
            ("id", &self.id),
            ("url", &self.url),
            ("sas", &self.sas),
            ("expires-on", &self.expires_on),
        ];
        if let Some((name, _)) = outputs.iter().find(|(_, v)| v.contains(['\n', '\r'])) {
            return Err(format!(
                "the broker's `{name}` holds a line break: refusing to write it to GITHUB_OUTPUT (output injection)"
            ));
        }
        print_stdout(&format!(
            "::add-mask::{}\n::add-mask::{}\n",
            escape_command_data(&self.sas),
            escape_command_data(&self.url)
        ))?;
        let lines: String = outputs
            .iter()
            .map(|(name, value)| format!("{name}={value}\n"))
            .collect();
        let name = path.display();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| format!("cannot open GITHUB_OUTPUT {name}: {e}"))?;
        file.write_all(lines.as_bytes())
            .and_then(|()| file.flush())
            .map_err(|e| format!("cannot write GITHUB_OUTPUT {name}: {e}"))?;
        eprintln!("minted {}, expires {}", self.id, self.expires_on);
        Ok(())
    }
}

/// `value` in single quotes for a POSIX shell: each `'` becomes `'\''`.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// The data of a GitHub Actions workflow command, escaped as the runner unescapes it (`%`, CR,
/// LF), so that `::add-mask::` masks exactly `value`.
fn escape_command_data(value: &str) -> String {
    value
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Writes `text` to stdout and flushes: an error instead of a panic when stdout is closed.
fn print_stdout(text: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write to standard output: {e}"))
}

/// Listing filters.
pub struct ListArgs {
    pub filters: Vec<(&'static str, Option<String>)>,
    pub json: bool,
}

pub async fn list(args: ListArgs) -> ExitCode {
    let client = match Client::from_env() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let query: Vec<(&str, String)> = args
        .filters
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
    let url = format!("{}/v1/issuances", client.base);
    match client.send(client.http.get(url).query(&query)).await {
        Ok(v) if args.json => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(v) => {
            let items = v
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            println!(
                "{:<30} {:<20} {:<8} {:<22} {:<8} RESOURCE",
                "ID", "ISSUED", "STATUS", "PRINCIPAL", "PERMS"
            );
            for i in &items {
                let s = |k: &str| i.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
                let resource = format!(
                    "{}/{}{}",
                    s("account"),
                    s("container"),
                    i.get("blob")
                        .and_then(Value::as_str)
                        .map(|b| format!("/{b}"))
                        .unwrap_or_default()
                );
                println!(
                    "{:<30} {:<20} {:<8} {:<22} {:<8} {}",
                    s("id"),
                    s("issued_at").chars().take(19).collect::<String>(),
                    s("current_status"),
                    s("principal"),
                    s("permissions"),
                    resource
                );
            }
            if let Some(c) = v.get("next_cursor").and_then(Value::as_str) {
                println!("more: --cursor {c}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

pub async fn show(id: &str) -> ExitCode {
    let client = match Client::from_env() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let url = format!(
        "{}/v1/issuances/{}",
        client.base,
        crate::sas::encode::encode_query_value(id)
    );
    match client.send(client.http.get(url)).await {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

pub async fn lookup(url: &str) -> ExitCode {
    let client = match Client::from_env() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let text = if url == "-" {
        let mut s = String::new();
        if std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).is_err() {
            return fail("standard input is not UTF-8 text");
        }
        s.trim().to_owned()
    } else {
        url.to_owned()
    };
    let endpoint = format!("{}/v1/issuances/lookup", client.base);
    match client
        .send(
            client
                .http
                .post(endpoint)
                .json(&serde_json::json!({ "url": text })),
        )
        .await
    {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

pub async fn revoke(id: &str, reason: &str) -> ExitCode {
    let client = match Client::from_env() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let url = format!(
        "{}/v1/issuances/{}/revoke",
        client.base,
        crate::sas::encode::encode_query_value(id)
    );
    match client
        .send(
            client
                .http
                .post(url)
                .json(&serde_json::json!({ "reason": reason })),
        )
        .await
    {
        Ok(v) => {
            let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            println!(
                "{} revoked ({}): {}",
                s("id"),
                s("mechanism"),
                s("takes_effect")
            );
            println!("stops working by {}", s("effective_by"));
            if let Some(c) = v
                .get("collateral")
                .and_then(Value::as_array)
                .filter(|c| !c.is_empty())
            {
                println!("also revoked ({}), their holders must ask again:", c.len());
                for i in c {
                    let f = |k: &str| i.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
                    println!(
                        "  {} {} {}/{}",
                        f("id"),
                        f("principal"),
                        f("container"),
                        f("blob")
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// `POST /v1/emergency/<action>` (`revoke-policies` or `revoke-delegation-keys`).
pub async fn emergency(action: &str, account: &str, reason: &str) -> ExitCode {
    let client = match Client::from_env() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let url = format!("{}/v1/emergency/{action}", client.base);
    match client
        .send(
            client
                .http
                .post(url)
                .json(&serde_json::json!({ "account": account, "reason": reason })),
        )
        .await
    {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(1)
}
