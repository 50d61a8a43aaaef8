//! Configuration: built-in defaults < `config/sasgate.toml` < `SASGATE_…` environment variables
//! (`__` separates nesting levels, e.g. `SASGATE_SERVER__LISTEN=127.0.0.1:0`), plus `…_FILE`
//! variables whose file content becomes the value of the key without `_FILE`.
//!
//! [`Config::load`] reads and validates everything at start-up. Every error names the key and
//! the fix and never echoes a value, since a value may be a secret pasted in the wrong place.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::Duration;
use figment::Figment;
use figment::providers::{Format as _, Serialized, Toml};
use serde::{Deserialize, Serialize};

mod delegation;
mod oidc;

pub use delegation::{Delegation, EntraSection, MAX_KEY_LIFETIME, RENEW_MARGIN};
pub use oidc::{AuthSection, OidcSection};

use crate::auth::oidc::IssuerConfig;
use crate::auth::rate::RateLimit;

use crate::ledger::SigningMode;
use crate::policy::parse_duration;
use crate::sas::name::AccountName;
use crate::sas::version::SasVersion;
use crate::secret::SigningKey;
use crate::tls::TlsConfig;

/// The configuration file read when no other is named.
pub const DEFAULT_CONFIG_FILE: &str = "config/sasgate.toml";
/// The ceiling no configuration may raise `limits.max_ttl` above.
pub const ABSOLUTE_MAX_TTL: Duration = Duration::days(7);
/// Top-level sections that `SASGATE_` variables may set. Other `SASGATE_` variables (account
/// keys named by `key_env`, the CLI's `SASGATE_URL`/`SASGATE_TOKEN`) are not configuration.
const SECTIONS: &[&str] = &[
    "auth",
    "server",
    "ledger",
    "limits",
    "policy",
    "stored_policies",
    "log",
    "principals",
];

/// The raw configuration, as deserialised. See `config/sasgate.toml` for every key.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub server: ServerSection,
    pub ledger: LedgerSection,
    pub limits: LimitsSection,
    pub policy: PolicySection,
    pub log: LogSection,
    pub stored_policies: StoredPoliciesSection,
    #[serde(default)]
    pub auth: AuthSection,
    #[serde(default)]
    pub accounts: Vec<AccountSection>,
    #[serde(default)]
    pub principals: BTreeMap<String, PrincipalSection>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub listen: String,
    pub public_url: String,
    /// Allow plain HTTP on a non-loopback address without TLS (behind a TLS-terminating proxy
    /// only: a SAS crossing plain HTTP is leaked).
    pub allow_insecure_http: bool,
    /// PEM certificate chain, server certificate first; with `tls_key_file`, sasgate serves
    /// HTTPS. Empty or absent: plain HTTP.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC) of the server certificate.
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// How often the certificate and key files are re-read (also on SIGHUP).
    pub tls_reload_interval: String,
    pub request_timeout: String,
    pub max_body_bytes: usize,
    /// How long graceful shutdown waits for requests in flight.
    pub shutdown_grace: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerSection {
    pub url: String,
    pub max_denials: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    pub max_ttl: String,
    pub default_ttl: String,
    pub start_backdate: String,
    /// Mints (tokens and links) each principal may make per minute, sustained.
    pub mint_rate_per_minute: u32,
    /// Mints each principal may make at once before the rate applies.
    pub mint_burst: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    pub dir: PathBuf,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredPoliciesSection {
    /// How long one stored-access-policy generation takes new issuances; revoking a token takes
    /// down the cohort of its generation.
    pub rotation: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// `auto` (JSON lines, or text when standard error is a terminal), `json` or `text`.
    pub format: String,
    /// A tracing filter, e.g. `info` or `sasgate=debug,info`.
    pub level: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSection {
    pub name: String,
    /// Default `https://<name>.blob.core.windows.net`.
    pub blob_endpoint: Option<String>,
    /// The environment variable holding the base64 account key.
    pub key_env: Option<String>,
    /// A file holding the base64 account key.
    pub key_file: Option<PathBuf>,
    /// A PEM file of extra CA certificates to trust for this endpoint (emulator, private CA).
    pub ca_file: Option<PathBuf>,
    /// Sign `spr=https,http` instead of `spr=https`. For a local emulator on plain HTTP only.
    #[serde(default)]
    pub insecure_allow_http: bool,
    /// The SAS version to sign with; default the newest supported.
    pub sas_version: Option<String>,
    /// `account_key` (service SAS) or `user_delegation` (signed with keys from Microsoft Entra
    /// ID); default `user_delegation` when `[accounts.entra]` is set.
    pub signing: Option<String>,
    /// sasgate's Entra identity for this account: user delegation keys and the emergency stop.
    pub entra: Option<EntraSection>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalSection {
    /// Lowercase hex SHA-256 of the principal's API key (`sasgate keygen` prints both).
    pub api_key_sha256: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            server: ServerSection {
                listen: "127.0.0.1:8080".into(),
                public_url: "http://127.0.0.1:8080".into(),
                allow_insecure_http: false,
                tls_cert_file: None,
                tls_key_file: None,
                tls_reload_interval: "30s".into(),
                request_timeout: "10s".into(),
                max_body_bytes: 16 * 1024,
                shutdown_grace: "20s".into(),
            },
            ledger: LedgerSection {
                url: "sqlite://data/sasgate.db".into(),
                max_denials: 100_000,
            },
            limits: LimitsSection {
                max_ttl: "1h".into(),
                default_ttl: "15m".into(),
                start_backdate: "15m".into(),
                mint_rate_per_minute: 60,
                mint_burst: 20,
            },
            auth: AuthSection::default(),
            policy: PolicySection {
                dir: PathBuf::from("policy"),
            },
            stored_policies: StoredPoliciesSection {
                rotation: "1h".into(),
            },
            log: LogSection {
                format: "auto".into(),
                level: "info".into(),
            },
            accounts: Vec::new(),
            principals: BTreeMap::new(),
        }
    }
}

/// One configuration problem: the key and what to do. Never holds a configured value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// All problems found, reported together.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// A storage account sasgate signs for.
#[derive(Clone, Debug)]
pub struct Account {
    pub name: AccountName,
    pub blob_endpoint: url::Url,
    /// The account key; `None` for an account that signs only user delegation SAS.
    pub key: Option<SigningKey>,
    /// How SAS for rules without a stored access policy are signed (those with one always use
    /// the account key: Azure binds only service SAS to a policy).
    pub signing: SigningMode,
    /// sasgate's Entra identity for this account.
    pub delegation: Option<Delegation>,
    pub ca_file: Option<PathBuf>,
    pub insecure_allow_http: bool,
    pub sas_version: SasVersion,
}

/// A principal that authenticates with an API key.
#[derive(Clone, Debug)]
pub struct ApiKeyPrincipal {
    pub name: String,
    /// SHA-256 of the API key.
    pub api_key_sha256: [u8; 32],
    pub roles: Vec<String>,
}

/// Validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub public_url: url::Url,
    /// HTTPS: the certificate and key files; `None` serves plain HTTP (loopback, or beyond it
    /// with `server.allow_insecure_http`).
    pub tls: Option<TlsConfig>,
    pub request_timeout: std::time::Duration,
    pub max_body_bytes: usize,
    pub shutdown_grace: std::time::Duration,
    pub ledger_url: String,
    pub max_denials: usize,
    pub max_ttl: Duration,
    pub default_ttl: Duration,
    pub start_backdate: Duration,
    pub policy_dir: PathBuf,
    pub policy_rotation: Duration,
    /// How log lines are written (see [`crate::telemetry`]).
    pub log_format: crate::telemetry::LogFormat,
    pub log_level: String,
    pub accounts: BTreeMap<String, Account>,
    pub principals: Vec<ApiKeyPrincipal>,
    /// Trusted OIDC issuers.
    pub oidc: Vec<IssuerConfig>,
    /// The per-principal mint rate.
    pub mint_rate: RateLimit,
    /// Problems worth a warning at start-up that do not stop it (e.g. a `SASGATE_` variable
    /// that configures nothing, usually a typo).
    pub warnings: Vec<String>,
}

/// SHA-256 of the demo API keys printed in README.md: accepted on loopback only, with a warning.
const DEMO_KEY_SHA256: &[&str] = &[
    "0ddf3b49ec8a49c8aea7a67444c5cd9765f94664592e9a1bde922a782597c257",
    "ad09494eebeb996e2a264375460ed8bb3fd13296df79dd00c40ab5210071d023",
    "0b9a4e5e45fc6fe8baa878cf933ed7d357cd433ef07977e979b5ff7de0d14ad8",
];

/// True for an endpoint on this machine.
pub(crate) fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// Keys whose own name ends in `_FILE` (as their variable names are written after `SASGATE_`):
/// `SASGATE_SERVER__TLS_CERT_FILE=/path` sets the key itself, and only `…_FILE_FILE` would read
/// the value from a file.
const KEYS_NAMED_FILE: &[&str] = &["SERVER__TLS_CERT_FILE", "SERVER__TLS_KEY_FILE"];

/// A variable name without `SASGATE_`, split into the key it sets and whether it names a file
/// holding the value (`…_FILE`).
fn split_file_suffix(rest: &str) -> (&str, bool) {
    if KEYS_NAMED_FILE.iter().any(|k| k.eq_ignore_ascii_case(rest)) {
        return (rest, false);
    }
    match rest.strip_suffix("_FILE") {
        Some(r) => (r, true),
        None => (rest, false),
    }
}

/// `SASGATE_` variables that are not configuration keys but are expected.
const KNOWN_VARIABLES: &[&str] = &[
    "SASGATE_URL",
    "SASGATE_TOKEN",
    "SASGATE_CONFIG",
    "SASGATE_AZURITE_BIN",
    "SASGATE_TEST_PG",
    "SASGATE_OIDC_TOKEN",
];

impl Config {
    /// Loads defaults, then `file` (if it exists; a missing file named explicitly is an error),
    /// then the environment, and validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigErrors> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &env)
    }

    /// As [`Config::load`] with an explicit environment, for tests.
    pub fn load_from(file: Option<&Path>, env: &[(String, String)]) -> Result<Self, ConfigErrors> {
        let raw = Self::figment(file, env)?;
        validate(raw, env)
    }

    fn figment(file: Option<&Path>, env: &[(String, String)]) -> Result<RawConfig, ConfigErrors> {
        let figment = Figment::from(Serialized::defaults(RawConfig::default()));
        let mut figment = merge_file(figment, file)?;
        let wanted = |key: &str| {
            let section = key.split("__").next().unwrap_or("").to_ascii_lowercase();
            SECTIONS.contains(&section.as_str())
        };
        for (path, value) in env_layer(env, wanted)? {
            figment = figment.merge(Serialized::default(&path, parse_env_value(&value)));
        }
        figment
            .extract::<RawConfig>()
            .map_err(|e| ConfigErrors(e.into_iter().map(describe).collect()))
    }
}

/// What `sasgate healthcheck` needs: where the server listens and whether it serves HTTPS.
///
/// Read from the same layering as [`Config::load`] (defaults < file < `SASGATE_…` variables,
/// `…_FILE` variables included) but only for `server.listen` and `server.tls_cert_file`: nothing
/// else is validated, no secret is read, and the certificate pair is not loaded. The probe asks a
/// running server whether it is alive; a configuration that has since gone bad (a broken
/// certificate renewal on disk while the old pair is still served) is for `sasgate config check`
/// and the next start to report, not a reason to restart a server that is working.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeTarget {
    /// `server.listen`.
    pub listen: SocketAddr,
    /// True when `server.tls_cert_file` is set (not empty): the server answers HTTPS.
    pub tls: bool,
}

/// The two keys [`ProbeTarget`] reads; every other key in the file is ignored.
#[derive(Serialize, Deserialize)]
struct ProbeRaw {
    server: ProbeServer,
}

#[derive(Serialize, Deserialize)]
struct ProbeServer {
    listen: String,
    #[serde(default)]
    tls_cert_file: Option<PathBuf>,
}

/// The variables (without `SASGATE_`) of the keys [`ProbeTarget`] reads.
const PROBE_KEYS: &[&str] = &["SERVER__LISTEN", "SERVER__TLS_CERT_FILE"];

impl ProbeTarget {
    /// From `file` and this process's environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigErrors> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &env)
    }

    /// As [`ProbeTarget::load`] with an explicit environment, for tests.
    pub fn load_from(file: Option<&Path>, env: &[(String, String)]) -> Result<Self, ConfigErrors> {
        let defaults = RawConfig::default().server;
        let figment = Figment::from(Serialized::defaults(ProbeRaw {
            server: ProbeServer {
                listen: defaults.listen,
                tls_cert_file: defaults.tls_cert_file,
            },
        }));
        let mut figment = merge_file(figment, file)?;
        let wanted = |key: &str| PROBE_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key));
        for (path, value) in env_layer(env, wanted)? {
            figment = figment.merge(Serialized::default(&path, value));
        }
        let raw = figment
            .extract::<ProbeRaw>()
            .map_err(|e| ConfigErrors(e.into_iter().map(describe).collect()))?;
        let listen = raw.server.listen.parse::<SocketAddr>().map_err(|_| {
            one(
                "server.listen",
                "must be an address and port such as 127.0.0.1:8080".into(),
            )
        })?;
        Ok(Self {
            listen,
            tls: raw
                .server
                .tls_cert_file
                .is_some_and(|p| !p.as_os_str().is_empty()),
        })
    }
}

/// The file layer: `file`, or the default file when none is named (absent is fine then).
fn merge_file(figment: Figment, file: Option<&Path>) -> Result<Figment, ConfigErrors> {
    match file {
        Some(path) if !path.exists() => Err(one(
            "config file",
            format!(
                "{} does not exist; pass an existing file or none",
                path.display()
            ),
        )),
        Some(path) => Ok(figment.merge(Toml::file(path))),
        None => Ok(figment.merge(Toml::file(DEFAULT_CONFIG_FILE))),
    }
}

/// The `SASGATE_…` layer for the keys `wanted` accepts (the variable's name without `SASGATE_`
/// and `_FILE`): `(dotted.key.path, value)` pairs sorted by path, so the result does not depend
/// on the order of the environment. `…_FILE` variables are read from their file; an empty
/// variable is unset (`docker run -e SASGATE_X=` clears an image default); a key set both
/// directly and through a file is ambiguous and refused rather than picked.
fn env_layer(
    env: &[(String, String)],
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<(String, String)>, ConfigErrors> {
    let mut errors = Vec::new();
    let mut values = Vec::new();
    for (name, value) in env {
        let Some((key, from_file)) = name.strip_prefix("SASGATE_").map(split_file_suffix) else {
            continue;
        };
        if value.is_empty() || !wanted(key) {
            continue;
        }
        if from_file
            && env
                .iter()
                .any(|(n, v)| n == &format!("SASGATE_{key}") && !v.is_empty())
        {
            errors.push(ConfigError {
                key: name.clone(),
                message: format!("SASGATE_{key} is set too; set the value or the file, not both"),
            });
            continue;
        }
        let value = if from_file {
            match std::fs::read_to_string(value) {
                Ok(v) => v.trim_end_matches(['\n', '\r']).to_owned(),
                Err(e) => {
                    errors.push(ConfigError {
                        key: name.clone(),
                        message: format!("cannot read the file it names: {}", e.kind()),
                    });
                    continue;
                }
            }
        } else {
            value.clone()
        };
        values.push((key.to_ascii_lowercase().replace("__", "."), value));
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    values.sort();
    Ok(values)
}

/// Environment values are strings; booleans and integers are recognised so that
/// `SASGATE_SERVER__ALLOW_INSECURE_HTTP=true` works.
fn parse_env_value(value: &str) -> figment::value::Value {
    use figment::value::Value;
    if let Ok(b) = value.parse::<bool>() {
        return Value::from(b);
    }
    if let Ok(n) = value.parse::<u64>() {
        return Value::from(n);
    }
    if value.starts_with('[')
        && let Ok(list) = serde_json::from_str::<Vec<String>>(value)
    {
        return Value::from(list);
    }
    Value::from(value.to_owned())
}

/// Turns a figment error into a key and a message without the offending value.
fn describe(e: figment::Error) -> ConfigError {
    use figment::error::Kind;
    let key = if e.path.is_empty() {
        "config".to_owned()
    } else {
        e.path.join(".")
    };
    // Only messages about the TOML file are shown: they carry a line number, and the file holds
    // no secrets (keys come from key_env/key_file). Anything from the environment is hidden.
    let from_file = e.metadata.as_ref().is_some_and(|m| m.name.contains("TOML"));
    let message = match &e.kind {
        Kind::InvalidType(_, expected) | Kind::InvalidValue(_, expected) => {
            format!("wrong type or value; expected {expected}")
        }
        Kind::InvalidLength(_, expected) => format!("wrong number of items; expected {expected}"),
        Kind::UnknownVariant(_, expected) => {
            format!("unknown value; expected one of {}", expected.join(", "))
        }
        Kind::UnknownField(field, expected) => {
            return ConfigError {
                key: join_key(&key, field),
                message: format!("unknown key; expected one of {}", expected.join(", ")),
            };
        }
        Kind::MissingField(field) => {
            return ConfigError {
                key: join_key(&key, field),
                message: "missing; add it".into(),
            };
        }
        Kind::DuplicateField(field) => format!("`{field}` is given twice"),
        Kind::Message(m) if from_file => format!("cannot be read: {m}"),
        _ => "cannot be read".into(),
    };
    ConfigError { key, message }
}

/// `path.field`, unless figment's path already ends with the field.
fn join_key(path: &str, field: &str) -> String {
    if path == "config" {
        field.to_owned()
    } else if path == field || path.ends_with(&format!(".{field}")) {
        path.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

fn one(key: &str, message: String) -> ConfigErrors {
    ConfigErrors(vec![ConfigError {
        key: key.into(),
        message,
    }])
}

fn validate(raw: RawConfig, env: &[(String, String)]) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let mut err = |key: &str, message: String| {
        errors.push(ConfigError {
            key: key.into(),
            message,
        })
    };

    let listen = match raw.server.listen.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            err(
                "server.listen",
                "must be an address and port such as 127.0.0.1:8080 (port 0 picks a free port)"
                    .into(),
            );
            None
        }
    };
    // An empty path is no path (`SASGATE_SERVER__TLS_CERT_FILE=` unsets it too).
    let tls_file = |p: &Option<PathBuf>| p.clone().filter(|p| !p.as_os_str().is_empty());
    let (cert_file, key_file) = (
        tls_file(&raw.server.tls_cert_file),
        tls_file(&raw.server.tls_key_file),
    );
    let tls_wanted = cert_file.is_some() || key_file.is_some();
    // PEM content where a path belongs (`SASGATE_SERVER__TLS_KEY_FILE_FILE=/run/secrets/tls.key`
    // puts the key itself here): refused without echoing it, and the pair is not read.
    let mut tls_paths_usable = true;
    for (key, variable, path) in [
        (
            "server.tls_cert_file",
            "SASGATE_SERVER__TLS_CERT_FILE",
            &cert_file,
        ),
        (
            "server.tls_key_file",
            "SASGATE_SERVER__TLS_KEY_FILE",
            &key_file,
        ),
    ] {
        if let Some(why) = path.as_deref().and_then(crate::tls::implausible_path) {
            tls_paths_usable = false;
            err(
                key,
                format!(
                    "is not a file path: it {why} (the value is not shown); give the path of the PEM file. This usually comes from {variable}_FILE, which puts the content of the file it names into {key}: set {variable}=<path of the file> instead"
                ),
            );
        }
    }
    if let Some(a) = listen
        && !a.ip().is_loopback()
        && !tls_wanted
        && !raw.server.allow_insecure_http
    {
        err(
            "server.listen",
            "plain HTTP is only served on a loopback address, since a SAS crossing plain HTTP is leaked; set server.tls_cert_file and server.tls_key_file to serve HTTPS, listen on 127.0.0.1, or set server.allow_insecure_http = true if a TLS-terminating proxy is in front".into(),
        );
    }
    let public_url = url::Url::parse(&raw.server.public_url)
        .map_err(|_| {
            err(
                "server.public_url",
                "must be an absolute URL such as https://sasgate.example.org".into(),
            )
        })
        .ok();
    if tls_wanted
        && let Some(u) = &public_url
        && u.scheme() != "https"
    {
        err(
            "server.public_url",
            "must be https:// when server.tls_cert_file is set: sasgate serves HTTPS, and broker links are built from this URL; write https://<the host name in the certificate>[:port]".into(),
        );
    } else if let Some(u) = &public_url
        && u.scheme() != "https"
        && !(u.scheme() == "http" && is_loopback(u))
    {
        // Broker links are built from this URL and their codes are bearer secrets: plain HTTP
        // only where it never leaves the machine.
        err(
            "server.public_url",
            "must be https:// unless its host is loopback (127.0.0.1, ::1 or localhost): broker links are built from it, and a link's code is a secret that must not cross plain HTTP; behind a TLS-terminating proxy give the proxy's address, https://<host>[:port]".into(),
        );
    }
    let mut duration = |key: &str, text: &str| -> Option<Duration> {
        match parse_duration(text) {
            Ok(d) if d > Duration::zero() => Some(d),
            _ => {
                err(
                    key,
                    "must be a positive duration such as 90s, 15m, 1h or 2d".into(),
                );
                None
            }
        }
    };
    let request_timeout = duration("server.request_timeout", &raw.server.request_timeout);
    let shutdown_grace = duration("server.shutdown_grace", &raw.server.shutdown_grace);
    let max_ttl = duration("limits.max_ttl", &raw.limits.max_ttl);
    let default_ttl = duration("limits.default_ttl", &raw.limits.default_ttl);
    let start_backdate = duration("limits.start_backdate", &raw.limits.start_backdate);
    let policy_rotation = duration("stored_policies.rotation", &raw.stored_policies.rotation);
    let tls_reload_interval = duration(
        "server.tls_reload_interval",
        &raw.server.tls_reload_interval,
    );
    let tls = match (cert_file, key_file) {
        (Some(cert_file), Some(key_file)) => tls_reload_interval.map(|interval| TlsConfig {
            cert_file,
            key_file,
            reload_interval: interval
                .to_std()
                .unwrap_or(std::time::Duration::from_secs(30)),
        }),
        (Some(_), None) => {
            err(
                "server.tls_key_file",
                "is missing: server.tls_cert_file is set; give the PEM private key of the certificate too, or remove both to serve plain HTTP".into(),
            );
            None
        }
        (None, Some(_)) => {
            err(
                "server.tls_cert_file",
                "is missing: server.tls_key_file is set; give the PEM certificate chain too, or remove both to serve plain HTTP".into(),
            );
            None
        }
        (None, None) => None,
    };
    // The same check as start-up and every reload: both files readable, the chain parses, the
    // key matches its first certificate. Errors carry no file content.
    if let Some(t) = &tls
        && tls_paths_usable
        && let Err(e) = crate::tls::load(t)
    {
        err(e.config_key(), e.to_string());
    }
    if let Some(m) = max_ttl {
        if m > ABSOLUTE_MAX_TTL {
            err(
                "limits.max_ttl",
                "may not exceed 7d; long-lived tokens are what sasgate exists to prevent".into(),
            );
        }
        if let Some(b) = start_backdate {
            if b > Duration::hours(1) {
                err(
                    "limits.start_backdate",
                    "may not exceed 1h; 15m covers Azure's documented clock skew".into(),
                );
            } else if m + b > ABSOLUTE_MAX_TTL {
                err(
                    "limits.max_ttl",
                    "plus limits.start_backdate may not exceed 7d: the signed window (st to se) is both".into(),
                );
            }
        }
        if let Some(d) = default_ttl
            && d > m
        {
            err(
                "limits.default_ttl",
                "must not exceed limits.max_ttl".into(),
            );
        }
    }
    if raw.limits.mint_rate_per_minute == 0 || raw.limits.mint_burst == 0 {
        err(
            "limits.mint_rate_per_minute",
            "and limits.mint_burst must be at least 1".into(),
        );
    }
    let oidc = oidc::validate(&raw.auth.oidc, &mut |k, m| err(k, m));
    if raw.server.max_body_bytes < 256 {
        err("server.max_body_bytes", "must be at least 256".into());
    }
    if raw.ledger.max_denials == 0 {
        err("ledger.max_denials", "must be at least 1".into());
    }
    if raw.ledger.url.contains(":memory:") || raw.ledger.url.contains("mode=memory") {
        err(
            "ledger.url",
            "an in-memory ledger loses every record on restart; give a file such as sqlite://data/sasgate.db".into(),
        );
    } else if !(raw.ledger.url.starts_with("sqlite:")
        || raw.ledger.url.starts_with("postgres://")
        || raw.ledger.url.starts_with("postgresql://"))
    {
        err(
            "ledger.url",
            "must be a sqlite:// URL (for example sqlite://data/sasgate.db) or a postgres:// URL (for several replicas)".into(),
        );
    }
    let log_format = match raw.log.format.as_str() {
        "auto" => crate::telemetry::LogFormat::Auto,
        "json" => crate::telemetry::LogFormat::Json,
        "text" => crate::telemetry::LogFormat::Text,
        _ => {
            err(
                "log.format",
                "must be auto (JSON lines, or text when standard error is a terminal), json or text"
                    .into(),
            );
            crate::telemetry::LogFormat::Auto
        }
    };

    let mut accounts = BTreeMap::new();
    for (i, a) in raw.accounts.iter().enumerate() {
        let key_prefix = format!("accounts[{i}]");
        let Ok(name) = AccountName::parse(&a.name) else {
            err(
                &format!("{key_prefix}.name"),
                "must be 3 to 24 lowercase letters and digits".into(),
            );
            continue;
        };
        if accounts.contains_key(name.as_str()) {
            err(
                &format!("{key_prefix}.name"),
                "is given twice; each account appears once".into(),
            );
            continue;
        }
        let endpoint_text = a
            .blob_endpoint
            .clone()
            .unwrap_or_else(|| format!("https://{}.blob.core.windows.net", name));
        let endpoint = match url::Url::parse(&endpoint_text) {
            Ok(u) if a.insecure_allow_http && !is_loopback(&u) => {
                err(
                    &format!("{key_prefix}.insecure_allow_http"),
                    "is only for an emulator on this machine (127.0.0.1 or localhost); a real account gets spr=https".into(),
                );
                None
            }
            Ok(u) if u.scheme() == "https" || (u.scheme() == "http" && a.insecure_allow_http) => {
                Some(u)
            }
            Ok(_) => {
                err(&format!("{key_prefix}.blob_endpoint"), "must be https:// (http:// only with insecure_allow_http = true, for a local emulator)".into());
                None
            }
            Err(_) => {
                err(
                    &format!("{key_prefix}.blob_endpoint"),
                    "must be an absolute URL".into(),
                );
                None
            }
        };
        let key_text = match (&a.key_env, &a.key_file) {
            (Some(_), Some(_)) => {
                err(&key_prefix, "set key_env or key_file, not both".into());
                None
            }
            (None, None) if a.entra.is_none() => {
                err(
                    &key_prefix,
                    "needs key_env or key_file (the account key), or an [accounts.entra] table to sign user delegation SAS with no key"
                        .into(),
                );
                None
            }
            (None, None) => None,
            (Some(var), None) => match env.iter().find(|(k, _)| k == var) {
                Some((_, v)) => Some(v.clone()),
                None => {
                    err(
                        &format!("{key_prefix}.key_env"),
                        format!(
                            "the environment variable {var} is not set; export it with the base64 account key"
                        ),
                    );
                    None
                }
            },
            (None, Some(path)) => match std::fs::read_to_string(path) {
                Ok(v) => Some(v),
                Err(e) => {
                    err(
                        &format!("{key_prefix}.key_file"),
                        format!("cannot read {}: {}", path.display(), e.kind()),
                    );
                    None
                }
            },
        };
        let has_key = key_text.is_some();
        let delegation = a.entra.as_ref().and_then(|section| {
            delegation::validate(
                &key_prefix,
                name.as_str(),
                section,
                env,
                max_ttl,
                &mut |k, m| err(k, m),
            )
        });
        let signing = match (a.signing.as_deref(), &a.entra) {
            (None, Some(_)) | (Some("user_delegation"), Some(_)) => {
                Some(SigningMode::UserDelegation)
            }
            (None, None) | (Some("account_key"), None) => Some(SigningMode::AccountKey),
            (Some("user_delegation"), None) => {
                err(
                    &format!("{key_prefix}.signing"),
                    "user_delegation needs an [accounts.entra] table: the identity that obtains the keys".into(),
                );
                None
            }
            (Some("account_key"), Some(_)) => {
                err(
                    &format!("{key_prefix}.signing"),
                    "is account_key, but [accounts.entra] is set and would not be used; remove one"
                        .into(),
                );
                None
            }
            (Some(_), _) => {
                err(
                    &format!("{key_prefix}.signing"),
                    "must be account_key or user_delegation".into(),
                );
                None
            }
        };
        if a.entra.is_some() && a.insecure_allow_http {
            err(
                &format!("{key_prefix}.insecure_allow_http"),
                "cannot be combined with [accounts.entra]: Get User Delegation Key is HTTPS only"
                    .into(),
            );
        }
        let key = key_text.map(|t| {
            SigningKey::from_base64(&t)
                .map_err(|e| {
                    err(
                        &format!("{key_prefix}.key"),
                        format!("{e}; paste the key exactly as the portal shows it"),
                    )
                })
                .ok()
        });
        // `Some(None)`: a key was given but is unusable (reported above).
        let key_ok = !has_key || key.as_ref().is_some_and(Option::is_some);
        let key = key.flatten();
        if let Some(ca) = &a.ca_file
            && !ca.exists()
        {
            err(
                &format!("{key_prefix}.ca_file"),
                format!(
                    "{} does not exist (for the shipped configuration, `make run` creates it)",
                    ca.display()
                ),
            );
        }
        let sas_version = match &a.sas_version {
            None => Some(SasVersion::DEFAULT),
            Some(v) => SasVersion::parse_known(v)
                .map_err(|e| err(&format!("{key_prefix}.sas_version"), e.to_string()))
                .ok(),
        };
        let delegation_ok = a.entra.is_none() || delegation.is_some();
        if let (Some(blob_endpoint), true, true, Some(signing), Some(sas_version)) =
            (endpoint, key_ok, delegation_ok, signing, sas_version)
        {
            accounts.insert(
                name.as_str().to_owned(),
                Account {
                    name,
                    blob_endpoint,
                    key,
                    signing,
                    delegation,
                    ca_file: a.ca_file.clone(),
                    insecure_allow_http: a.insecure_allow_http,
                    sas_version,
                },
            );
        }
    }

    let mut principals: Vec<ApiKeyPrincipal> = Vec::new();
    let mut demo = Vec::new();
    for (name, p) in &raw.principals {
        let key = format!("principals.{name}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            err(
                &key,
                "principal names use letters, digits, '-', '_' and '.'".into(),
            );
            continue;
        }
        let Some(hash) = decode_sha256_hex(&p.api_key_sha256) else {
            err(
                &format!("{key}.api_key_sha256"),
                "must be 64 hex characters; run `sasgate keygen` and copy the sha256 line".into(),
            );
            continue;
        };
        if let Some(other) = principals
            .iter()
            .find(|o: &&ApiKeyPrincipal| o.api_key_sha256 == hash)
        {
            err(
                &format!("{key}.api_key_sha256"),
                format!(
                    "is the same as principals.{}'s; every principal needs its own key (`sasgate keygen`)",
                    other.name
                ),
            );
            continue;
        }
        if DEMO_KEY_SHA256.contains(&p.api_key_sha256.trim()) {
            if listen.is_some_and(|a| !a.ip().is_loopback()) {
                err(
                    &format!("{key}.api_key_sha256"),
                    "is a demo key whose secret is published in README.md; replace it (`sasgate keygen`) before listening beyond loopback".into(),
                );
                continue;
            }
            demo.push(name.clone());
        }
        principals.push(ApiKeyPrincipal {
            name: name.clone(),
            api_key_sha256: hash,
            roles: p.roles.clone(),
        });
    }

    match (
        listen,
        public_url,
        request_timeout,
        shutdown_grace,
        max_ttl,
        default_ttl,
        start_backdate,
    ) {
        (
            Some(listen),
            Some(public_url),
            Some(rt),
            Some(sg),
            Some(max_ttl),
            Some(default_ttl),
            Some(start_backdate),
        ) if errors.is_empty() => Ok(Config {
            listen,
            public_url,
            warnings: unknown_variables(env, &raw.accounts)
                .into_iter()
                .chain((!demo.is_empty()).then(|| format!("demo principals {} use API keys published in README.md; remove them before real use", demo.join(", "))))
                .chain((tls.is_some() && raw.server.allow_insecure_http).then(|| "server.allow_insecure_http = true has no effect: sasgate serves HTTPS (server.tls_cert_file is set); remove it".to_owned()))
                .collect(),
            tls,
            request_timeout: rt.to_std().unwrap_or(std::time::Duration::from_secs(10)),
            max_body_bytes: raw.server.max_body_bytes,
            shutdown_grace: sg.to_std().unwrap_or(std::time::Duration::from_secs(20)),
            ledger_url: raw.ledger.url,
            max_denials: raw.ledger.max_denials,
            max_ttl,
            default_ttl,
            start_backdate,
            policy_dir: raw.policy.dir,
            policy_rotation: policy_rotation.unwrap_or(Duration::hours(1)),
            log_format,
            log_level: raw.log.level,
            accounts,
            principals,
            oidc,
            mint_rate: RateLimit {
                per_minute: raw.limits.mint_rate_per_minute,
                burst: raw.limits.mint_burst,
            },
        }),
        _ => Err(ConfigErrors(errors)),
    }
}

/// `SASGATE_` variables that set no key, name no account key and are not otherwise known. Only
/// names are reported, never values.
fn unknown_variables(env: &[(String, String)], accounts: &[AccountSection]) -> Vec<String> {
    env.iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with("SASGATE_"))
        .filter(|k| !KNOWN_VARIABLES.contains(k))
        .filter(|k| {
            !accounts.iter().any(|a| {
                a.key_env.as_deref() == Some(*k)
                    || a.entra.as_ref().and_then(|e| e.client_secret_env.as_deref()) == Some(*k)
            })
        })
        .filter(|k| {
            let rest = k.trim_start_matches("SASGATE_");
            let section = rest.split("__").next().unwrap_or("").to_ascii_lowercase();
            !(SECTIONS.contains(&section.as_str()) && rest.contains("__"))
        })
        .map(|k| format!("the environment variable {k} configures nothing (SASGATE_<SECTION>__<KEY>, e.g. SASGATE_SERVER__LISTEN); check its spelling"))
        .collect()
}

/// Parses 64 hex characters into 32 bytes.
pub fn decode_sha256_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("sasgate.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const ACCOUNT: &str = "[[accounts]]\nname = \"acct\"\nkey_env = \"SASGATE_KEY_ACCT\"\n";

    #[test]
    fn defaults_file_and_environment_layer_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            &format!(
                "[server]\nlisten = \"127.0.0.1:9000\"\n[limits]\nmax_ttl = \"2h\"\n{ACCOUNT}"
            ),
        );
        let c = Config::load_from(
            Some(&file),
            &env(&[
                ("SASGATE_KEY_ACCT", KEY),
                ("SASGATE_SERVER__LISTEN", "127.0.0.1:0"),
                ("SASGATE_LIMITS__DEFAULT_TTL", "5m"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 0, "the environment wins over the file");
        assert_eq!(
            c.max_ttl,
            Duration::hours(2),
            "the file wins over the defaults"
        );
        assert_eq!(c.default_ttl, Duration::minutes(5));
        assert_eq!(c.start_backdate, Duration::minutes(15), "default");
        assert_eq!(
            c.accounts["acct"].blob_endpoint.as_str(),
            "https://acct.blob.core.windows.net/"
        );
        assert_eq!(c.accounts["acct"].sas_version, SasVersion::DEFAULT);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert!(
            !format!("{c:?}").contains(&KEY[..16]),
            "Debug must not show the key"
        );
    }

    #[test]
    fn file_variables_and_key_files() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("k");
        std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
        let level = dir.path().join("level");
        std::fs::write(&level, "debug\n").unwrap();
        let file = write(
            dir.path(),
            &format!(
                "[[accounts]]\nname = \"acct\"\nkey_file = \"{}\"\n",
                key_file.display()
            ),
        );
        let c = Config::load_from(
            Some(&file),
            &env(&[("SASGATE_LOG__LEVEL_FILE", level.to_str().unwrap())]),
        )
        .unwrap();
        assert_eq!(c.log_level, "debug");
        assert!(c.accounts.contains_key("acct"));
    }

    #[test]
    fn errors_name_the_key_and_the_fix_and_never_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let secret = "hunter2-very-secret-value";
        let file = write(
            dir.path(),
            &format!(
                "[server]\nlisten = \"0.0.0.0:8080\"\n[limits]\nmax_ttl = \"30d\"\n[principals.bob]\napi_key_sha256 = \"{secret}\"\n{ACCOUNT}"
            ),
        );
        let err = Config::load_from(
            Some(&file),
            &env(&[
                ("SASGATE_KEY_ACCT", secret),
                ("SASGATE_SERVER__REQUEST_TIMEOUT", secret),
            ]),
        )
        .unwrap_err();
        let text = err.to_string();
        for key in [
            "server.listen",
            "limits.max_ttl",
            "principals.bob.api_key_sha256",
            "accounts[0].key",
            "server.request_timeout",
        ] {
            assert!(
                err.0.iter().any(|e| e.key == key),
                "{key} missing from:\n{text}"
            );
        }
        assert!(
            text.contains("loopback") && text.contains("sasgate keygen") && text.contains("7d"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "a value was echoed:\n{text}");
    }

    #[test]
    fn unknown_keys_and_types_are_named_without_values() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "[server]\nlisten = \"127.0.0.1:1\"\ncolour = \"secret-blue\"\n",
        );
        let err = Config::load_from(Some(&file), &[]).unwrap_err();
        assert_eq!(err.0[0].key, "server.colour", "{err}");
        assert!(!err.to_string().contains("secret-blue"));
        let file = write(dir.path(), "[server]\nmax_body_bytes = \"lots-secret\"\n");
        let err = Config::load_from(Some(&file), &[]).unwrap_err();
        assert_eq!(err.0[0].key, "server.max_body_bytes", "{err}");
        assert!(!err.to_string().contains("lots-secret"), "{err}");
        let err = Config::load_from(Some(&dir.path().join("missing.toml")), &[]).unwrap_err();
        assert!(err.to_string().contains("does not exist"));
    }

    #[test]
    fn unsafe_settings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let demo = "0ddf3b49ec8a49c8aea7a67444c5cd9765f94664592e9a1bde922a782597c257";
        let file = write(
            dir.path(),
            &format!(
                "[server]\nlisten = \"0.0.0.0:8080\"\nallow_insecure_http = true\n[ledger]\nurl = \"sqlite::memory:\"\n[limits]\nstart_backdate = \"2h\"\n\
                 [principals.a]\napi_key_sha256 = \"{demo}\"\n\
                 [principals.b]\napi_key_sha256 = \"{h}\"\n[principals.c]\napi_key_sha256 = \"{h}\"\n\
                 [[accounts]]\nname = \"real\"\nkey_env = \"SASGATE_KEY_ACCT\"\ninsecure_allow_http = true\n",
                h = "ab".repeat(32)
            ),
        );
        let err = Config::load_from(Some(&file), &env(&[("SASGATE_KEY_ACCT", KEY)])).unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
        for key in [
            "ledger.url",
            "limits.start_backdate",
            "principals.a.api_key_sha256",
            "principals.c.api_key_sha256",
            "accounts[0].insecure_allow_http",
        ] {
            assert!(keys.contains(&key), "{key} missing from:\n{err}");
        }
        // On loopback the demo keys are accepted, with a warning.
        let file = write(
            dir.path(),
            &format!("[principals.a]\napi_key_sha256 = \"{demo}\"\n"),
        );
        let c = Config::load_from(Some(&file), &[]).unwrap();
        assert!(
            c.warnings.iter().any(|w| w.contains("demo principals a")),
            "{:?}",
            c.warnings
        );
        // A 7d ceiling leaves no room for the backdate.
        let file = write(dir.path(), "[limits]\nmax_ttl = \"7d\"\n");
        let err = Config::load_from(Some(&file), &[]).unwrap_err();
        assert!(err.to_string().contains("signed window"), "{err}");
    }

    /// A self-signed certificate for `localhost` and its key, written as `cert.pem` and
    /// `key.pem` in `dir`.
    fn tls_files(dir: &Path) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    #[test]
    fn tls_keys_ending_in_file_are_paths_not_file_indirections() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = tls_files(dir.path());
        let file = write(dir.path(), "[server]\nlisten = \"0.0.0.0:8443\"\n");
        let c = Config::load_from(
            Some(&file),
            &env(&[
                ("SASGATE_SERVER__TLS_CERT_FILE", cert.to_str().unwrap()),
                ("SASGATE_SERVER__TLS_KEY_FILE", key.to_str().unwrap()),
                ("SASGATE_SERVER__PUBLIC_URL", "https://localhost:8443"),
            ]),
        )
        .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!((tls.cert_file, tls.key_file), (cert.clone(), key.clone()));
        assert_eq!(tls.reload_interval, std::time::Duration::from_secs(30));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        // `…_FILE_FILE` reads the path from a file, like any other key.
        let holder = dir.path().join("cert-path");
        std::fs::write(&holder, format!("{}\n", cert.display())).unwrap();
        let c = Config::load_from(
            Some(&file),
            &env(&[
                (
                    "SASGATE_SERVER__TLS_CERT_FILE_FILE",
                    holder.to_str().unwrap(),
                ),
                ("SASGATE_SERVER__TLS_KEY_FILE", key.to_str().unwrap()),
                ("SASGATE_SERVER__PUBLIC_URL", "https://localhost:8443"),
                ("SASGATE_SERVER__TLS_RELOAD_INTERVAL", "5s"),
            ]),
        )
        .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.cert_file, cert);
        assert_eq!(tls.reload_interval, std::time::Duration::from_secs(5));
    }

    #[test]
    fn plain_http_beyond_loopback_needs_tls_or_allow_insecure_http() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "[server]\nlisten = \"0.0.0.0:8080\"\n");
        let err = Config::load_from(Some(&file), &[]).unwrap_err();
        assert_eq!(err.0[0].key, "server.listen", "{err}");
        assert!(
            err.0[0]
                .message
                .contains("server.allow_insecure_http = true")
                && err.0[0].message.contains("server.tls_cert_file"),
            "{err}"
        );
        let c = Config::load_from(
            Some(&file),
            &env(&[("SASGATE_SERVER__ALLOW_INSECURE_HTTP", "true")]),
        )
        .unwrap();
        assert!(c.tls.is_none());
        // The old name is gone.
        let file = write(dir.path(), "[server]\nallow_plain_http = true\n");
        let err = Config::load_from(Some(&file), &[]).unwrap_err();
        assert_eq!(err.0[0].key, "server.allow_plain_http", "{err}");
        // allow_insecure_http beside TLS does nothing: a warning says so.
        let (cert, key) = tls_files(dir.path());
        let file = write(
            dir.path(),
            &format!(
                "[server]\nlisten = \"0.0.0.0:8443\"\npublic_url = \"https://localhost\"\nallow_insecure_http = true\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
                cert.display(),
                key.display()
            ),
        );
        let c = Config::load_from(Some(&file), &[]).unwrap();
        assert!(
            c.warnings.iter().any(|w| w.contains("allow_insecure_http")),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn public_url_is_https_unless_its_host_is_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "[server]\nlisten = \"0.0.0.0:8080\"\nallow_insecure_http = true\n",
        );
        let with_url = |url: &str| {
            Config::load_from(Some(&file), &env(&[("SASGATE_SERVER__PUBLIC_URL", url)]))
        };
        // Behind a TLS-terminating proxy, links must still be https.
        for url in [
            "http://sasgate.example.org",
            "http://10.0.0.5:8080",
            "ftp://127.0.0.1",
        ] {
            let err = with_url(url).unwrap_err();
            let problem = err
                .0
                .iter()
                .find(|e| e.key == "server.public_url")
                .unwrap_or_else(|| panic!("{url}: {err}"));
            assert!(
                problem.message.contains("https://") && problem.message.contains("loopback"),
                "{problem}"
            );
            assert!(!err.to_string().contains(url), "the value is echoed: {err}");
        }
        for url in [
            "https://sasgate.example.org",
            "http://127.0.0.1:8080",
            "http://localhost:8080",
            "http://[::1]:8080",
        ] {
            assert!(with_url(url).is_ok(), "{url} refused");
        }
    }

    #[test]
    fn pem_content_given_as_a_tls_path_is_refused_without_being_shown() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = tls_files(dir.path());
        let key_pem = std::fs::read_to_string(&key).unwrap();
        let secret_line = key_pem.lines().nth(1).unwrap().to_owned();
        let file = write(dir.path(), "[server]\nlisten = \"127.0.0.1:8443\"\n");
        // `…_KEY_FILE_FILE` pointed at the key: its content becomes the path.
        let err = Config::load_from(
            Some(&file),
            &env(&[
                ("SASGATE_SERVER__TLS_CERT_FILE", cert.to_str().unwrap()),
                ("SASGATE_SERVER__TLS_KEY_FILE_FILE", key.to_str().unwrap()),
                ("SASGATE_SERVER__PUBLIC_URL", "https://localhost:8443"),
            ]),
        )
        .unwrap_err();
        let text = format!("{err}\n{err:?}");
        let problem = err
            .0
            .iter()
            .find(|e| e.key == "server.tls_key_file")
            .unwrap_or_else(|| panic!("{text}"));
        assert!(
            problem.message.contains("not a file path")
                && problem
                    .message
                    .contains("SASGATE_SERVER__TLS_KEY_FILE_FILE"),
            "{problem}"
        );
        assert!(
            !text.contains(&secret_line) && !text.contains("BEGIN"),
            "key material in:\n{text}"
        );
        // A long value, and one with a line break, on the certificate side.
        for bad in [
            "a".repeat(crate::tls::MAX_PATH_BYTES + 1),
            "/tls/a\nb".into(),
        ] {
            let err = Config::load_from(
                Some(&file),
                &env(&[
                    ("SASGATE_SERVER__TLS_CERT_FILE", &bad),
                    ("SASGATE_SERVER__TLS_KEY_FILE", key.to_str().unwrap()),
                    ("SASGATE_SERVER__PUBLIC_URL", "https://localhost:8443"),
                ]),
            )
            .unwrap_err();
            assert!(
                err.0
                    .iter()
                    .any(|e| e.key == "server.tls_cert_file"
                        && e.message.contains("not a file path")),
                "{err}"
            );
            assert!(!err.to_string().contains(&bad), "{err}");
        }
        // A path of exactly the limit is still a path (it is only not found).
        let long = format!("/{}", "a".repeat(crate::tls::MAX_PATH_BYTES - 1));
        let err = Config::load_from(
            Some(&file),
            &env(&[
                ("SASGATE_SERVER__TLS_CERT_FILE", &long),
                ("SASGATE_SERVER__TLS_KEY_FILE", key.to_str().unwrap()),
                ("SASGATE_SERVER__PUBLIC_URL", "https://localhost:8443"),
            ]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
    }

    #[test]
    fn the_probe_target_reads_only_listen_and_whether_tls_is_on() {
        let dir = tempfile::tempdir().unwrap();
        // Everything else in the file may be broken: the probe does not look at it.
        let file = write(
            dir.path(),
            "[server]\nlisten = \"0.0.0.0:9443\"\ntls_cert_file = \"/nonexistent/tls.crt\"\nmax_body_bytes = \"lots\"\n[limits]\nmax_ttl = \"30d\"\n[[accounts]]\nname = \"X\"\nkey_env = \"SASGATE_NOT_SET\"\n",
        );
        assert!(Config::load_from(Some(&file), &[]).is_err());
        let t = ProbeTarget::load_from(Some(&file), &[]).unwrap();
        assert_eq!(t.listen, "0.0.0.0:9443".parse().unwrap());
        assert!(t.tls);
        // The environment wins, `…_FILE` variables included; an empty value unsets.
        let listen_file = dir.path().join("listen");
        std::fs::write(&listen_file, "127.0.0.1:7000\n").unwrap();
        let t = ProbeTarget::load_from(
            Some(&file),
            &env(&[
                ("SASGATE_SERVER__LISTEN_FILE", listen_file.to_str().unwrap()),
                ("SASGATE_SERVER__TLS_CERT_FILE", ""),
                ("SASGATE_LEDGER__URL_FILE", "/nonexistent/secret"),
            ]),
        )
        .unwrap();
        assert_eq!(t.listen, "127.0.0.1:7000".parse().unwrap());
        assert!(t.tls, "an empty variable does not override the file");
        let t = ProbeTarget::load_from(None, &env(&[("SASGATE_SERVER__LISTEN", "127.0.0.1:1")]))
            .unwrap();
        assert_eq!(t.listen.port(), 1);
        // Errors: a bad address, a value set twice, a missing file.
        let err =
            ProbeTarget::load_from(Some(&file), &env(&[("SASGATE_SERVER__LISTEN", "nowhere")]))
                .unwrap_err();
        assert_eq!(err.0[0].key, "server.listen");
        let err = ProbeTarget::load_from(
            Some(&file),
            &env(&[
                ("SASGATE_SERVER__LISTEN", "127.0.0.1:1"),
                ("SASGATE_SERVER__LISTEN_FILE", listen_file.to_str().unwrap()),
            ]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
        assert!(ProbeTarget::load_from(Some(&dir.path().join("missing.toml")), &[]).is_err());
    }

    #[test]
    fn missing_key_sources_and_stray_variables() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), ACCOUNT);
        let err = Config::load_from(Some(&file), &[]).unwrap_err();
        assert!(
            err.to_string().contains("SASGATE_KEY_ACCT is not set"),
            "{err}"
        );
        let c = Config::load_from(
            Some(&file),
            &env(&[
                ("SASGATE_KEY_ACCT", KEY),
                ("SASGATE_SERVR__LISTEN", "x"),
                ("SASGATE_TOKEN", "t"),
            ]),
        )
        .unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("SASGATE_SERVR__LISTEN"));
    }
}
