//! `sasgate mint` and `sasgate issuances`: a thin client of the HTTP API. Reads `SASGATE_URL`
//! (default `http://127.0.0.1:8080`) and `SASGATE_TOKEN` (an API key).

use std::process::ExitCode;

use serde_json::Value;

/// Where the server is and who we are.
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    /// From `SASGATE_URL` and `SASGATE_TOKEN`.
    pub fn from_env() -> Result<Self, String> {
        let base = std::env::var("SASGATE_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
        let token = std::env::var("SASGATE_TOKEN")
            .map_err(|_| "set SASGATE_TOKEN to your sasgate API key (sgk_…)".to_owned())?;
        let parsed =
            url::Url::parse(&base).map_err(|_| format!("SASGATE_URL is not a URL: {base}"))?;
        if parsed.scheme() != "https"
            && !crate::config::is_loopback(&parsed)
            && std::env::var_os("SASGATE_ALLOW_HTTP").is_none()
        {
            return Err(format!(
                "SASGATE_URL {base} is plain HTTP to another machine: your API key would cross the network in clear text; use https:// (or set SASGATE_ALLOW_HTTP=1 on a trusted network)"
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, String> {
        let response =
            request.bearer_auth(&self.token).send().await.map_err(|e| {
                format!("cannot reach sasgate at {}: {}", self.base, without_url(&e))
            })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(body)
        } else {
            Err(describe_problem(status.as_u16(), &body))
        }
    }
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
    /// `NAME=value` lines for a shell or `$GITHUB_ENV`.
    Env,
}

pub async fn mint(body: &Value, output: Output) -> ExitCode {
    let client = match Client::from_env() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let url = format!("{}/v1/tokens", client.base);
    match client.send(client.http.post(url).json(body)).await {
        Ok(v) => {
            let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            match output {
                Output::Url => println!("{}", s("url")),
                Output::Sas => println!("{}", s("sas")),
                Output::Json => {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default())
                }
                Output::Env => {
                    println!("SASGATE_ISSUANCE_ID={}", s("id"));
                    println!("AZURE_STORAGE_SAS_URL={}", s("url"));
                    println!("AZURE_STORAGE_SAS_TOKEN={}", s("sas"));
                    println!("AZURE_STORAGE_SAS_EXPIRES_ON={}", s("expires_on"));
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
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
