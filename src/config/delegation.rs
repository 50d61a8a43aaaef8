//! `[accounts.entra]`: an account that signs user delegation SAS with keys obtained through
//! sasgate's own Microsoft Entra identity, so that it needs no account key at all.
//!
//! ```toml
//! [[accounts]]
//! name = "prodmodels"
//! [accounts.entra]
//! credential = "workload_identity"        # client_secret | workload_identity | managed_identity
//! tenant_id = "…"                         # workload identity: default $AZURE_TENANT_ID
//! client_id = "…"                         # workload identity: default $AZURE_CLIENT_ID
//! resource_id = "/subscriptions/…/resourceGroups/…/providers/Microsoft.Storage/storageAccounts/prodmodels"
//! ```
//!
//! The Kubernetes workload identity webhook's variables (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//! `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_AUTHORITY_HOST`) and the App Service managed identity
//! variables (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`) are honoured as defaults.

use std::path::PathBuf;

use chrono::Duration;
use serde::{Deserialize, Serialize};
use url::Url;

use super::is_loopback;
use crate::azure::arm::{DEFAULT_ARM_ENDPOINT, check_resource_id};
use crate::azure::entra::{
    CredentialKind, DEFAULT_AUTHORITY, DEFAULT_IMDS_ENDPOINT, ManagedIdentityEndpoint,
};
use crate::policy::parse_duration;
use crate::secret::Secret;

/// Azure's limit on a user delegation key's lifetime.
pub const MAX_KEY_LIFETIME: Duration = Duration::days(7);
/// The default key lifetime.
pub const DEFAULT_KEY_LIFETIME: Duration = Duration::days(1);
/// How much longer than `limits.max_ttl` a key must live: a key is renewed once less than
/// `max_ttl` plus [`RENEW_MARGIN`] is left, and must then still be usable for a while.
pub const RENEW_MARGIN: Duration = Duration::minutes(5);

/// The raw `[accounts.entra]` table.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntraSection {
    /// `client_secret`, `workload_identity` or `managed_identity`.
    pub credential: String,
    /// The directory (tenant) id. Not used by a managed identity.
    pub tenant_id: Option<String>,
    /// The application (client) id; for a managed identity, a user-assigned identity's client id.
    pub client_id: Option<String>,
    /// The environment variable holding the client secret.
    pub client_secret_env: Option<String>,
    /// A file holding the client secret.
    pub client_secret_file: Option<PathBuf>,
    /// The federated token file (workload identity); default `$AZURE_FEDERATED_TOKEN_FILE`.
    pub federated_token_file: Option<PathBuf>,
    /// Default `$AZURE_AUTHORITY_HOST`, else `https://login.microsoftonline.com`.
    pub authority_host: Option<String>,
    /// The managed identity endpoint; default the App Service endpoint when `IDENTITY_ENDPOINT`
    /// and `IDENTITY_HEADER` are set, else Azure IMDS.
    pub managed_identity_endpoint: Option<String>,
    /// Extra CA certificates (PEM) for the authority and ARM endpoints (a private proxy, tests).
    pub ca_file: Option<PathBuf>,
    /// How long each user delegation key lives (at most 7d); default 1d.
    pub key_lifetime: Option<String>,
    /// Put the issuance id in `scid` (default true). Azurite refuses a SAS with `scid`.
    pub correlation_id: Option<bool>,
    /// The storage account's Azure resource id, for the emergency stop.
    pub resource_id: Option<String>,
    /// Azure Resource Manager; default `https://management.azure.com`.
    pub arm_endpoint: Option<String>,
    /// The token scope for Resource Manager; default `<arm_endpoint>/.default` (right for the
    /// public and sovereign clouds; set it when the endpoint is a proxy or a test server).
    pub arm_scope: Option<String>,
}

/// Validated user delegation settings of an account.
#[derive(Clone, Debug)]
pub struct Delegation {
    pub credential: CredentialKind,
    pub authority: Url,
    pub ca_file: Option<PathBuf>,
    pub key_lifetime: Duration,
    pub correlation_id: bool,
    pub resource_id: Option<String>,
    pub arm_endpoint: Url,
    /// The Entra scope of Resource Manager tokens.
    pub arm_scope: String,
}

/// Validates `section` for account `account`; reports problems through `err` (key, message).
pub(super) fn validate(
    prefix: &str,
    account: &str,
    section: &EntraSection,
    env: &[(String, String)],
    max_ttl: Option<Duration>,
    err: &mut dyn FnMut(&str, String),
) -> Option<Delegation> {
    let var = |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let key = |k: &str| format!("{prefix}.entra.{k}");
    let mut ok = true;
    let mut fail = |k: &str, message: String, ok: &mut bool| {
        err(k, message);
        *ok = false;
    };

    let authority_text = section
        .authority_host
        .clone()
        .or_else(|| var("AZURE_AUTHORITY_HOST"))
        .unwrap_or_else(|| DEFAULT_AUTHORITY.to_owned());
    let authority = https_url(&authority_text)
        .map_err(|m| fail(&key("authority_host"), m, &mut ok))
        .ok();
    let arm_endpoint = https_url(
        section
            .arm_endpoint
            .as_deref()
            .unwrap_or(DEFAULT_ARM_ENDPOINT),
    )
    .map_err(|m| fail(&key("arm_endpoint"), m, &mut ok))
    .ok();
    if let Some(id) = &section.resource_id
        && let Err(m) = check_resource_id(id, account)
    {
        fail(&key("resource_id"), m, &mut ok);
    }
    if let Some(ca) = &section.ca_file
        && !ca.exists()
    {
        fail(
            &key("ca_file"),
            format!("{} does not exist", ca.display()),
            &mut ok,
        );
    }
    let key_lifetime = match &section.key_lifetime {
        None => DEFAULT_KEY_LIFETIME,
        Some(t) => match parse_duration(t) {
            Ok(d) if d > Duration::zero() => d,
            _ => {
                fail(
                    &key("key_lifetime"),
                    "must be a duration such as 12h or 2d".into(),
                    &mut ok,
                );
                DEFAULT_KEY_LIFETIME
            }
        },
    };
    if key_lifetime > MAX_KEY_LIFETIME {
        fail(
            &key("key_lifetime"),
            "may not exceed 7d, Azure's limit for a user delegation key".into(),
            &mut ok,
        );
    }
    if let Some(m) = max_ttl {
        let least = m + RENEW_MARGIN + Duration::minutes(10);
        if key_lifetime < least {
            fail(
                &key("key_lifetime"),
                format!(
                    "must be at least limits.max_ttl plus 15 minutes ({}m here): every SAS must expire before the key that signs it, and the key is renewed when less than max_ttl plus 5 minutes is left",
                    least.num_minutes()
                ),
                &mut ok,
            );
        }
    }

    let tenant = |fallback: bool, ok: &mut bool, fail: &mut dyn FnMut(&str, String, &mut bool)| {
        let t = section
            .tenant_id
            .clone()
            .or_else(|| fallback.then(|| var("AZURE_TENANT_ID")).flatten());
        match t {
            Some(t) if is_tenant(&t) => Some(t),
            Some(_) => {
                fail(
                    &key("tenant_id"),
                    "must be the directory (tenant) id, a GUID or a domain such as contoso.onmicrosoft.com".into(),
                    ok,
                );
                None
            }
            None => {
                fail(
                    &key("tenant_id"),
                    "is required: the directory (tenant) id of the app registration".into(),
                    ok,
                );
                None
            }
        }
    };
    let client = |fallback: bool, ok: &mut bool, fail: &mut dyn FnMut(&str, String, &mut bool)| {
        let c = section
            .client_id
            .clone()
            .or_else(|| fallback.then(|| var("AZURE_CLIENT_ID")).flatten());
        match c {
            Some(c) if is_guid(&c) => Some(c),
            Some(_) => {
                fail(
                    &key("client_id"),
                    "must be the application (client) id, a GUID".into(),
                    ok,
                );
                None
            }
            None => {
                fail(
                    &key("client_id"),
                    "is required: the application (client) id".into(),
                    ok,
                );
                None
            }
        }
    };
    let not_for = |field: bool,
                   name: &str,
                   kind: &str,
                   ok: &mut bool,
                   fail: &mut dyn FnMut(&str, String, &mut bool)| {
        if field {
            fail(
                &key(name),
                format!("is not used by credential = \"{kind}\"; remove it"),
                ok,
            );
        }
    };

    let credential = match section.credential.as_str() {
        "client_secret" => {
            let tenant_id = tenant(false, &mut ok, &mut fail);
            let client_id = client(false, &mut ok, &mut fail);
            not_for(
                section.federated_token_file.is_some(),
                "federated_token_file",
                "client_secret",
                &mut ok,
                &mut fail,
            );
            not_for(
                section.managed_identity_endpoint.is_some(),
                "managed_identity_endpoint",
                "client_secret",
                &mut ok,
                &mut fail,
            );
            let secret = match (&section.client_secret_env, &section.client_secret_file) {
                (Some(_), Some(_)) => {
                    fail(
                        &key("client_secret_env"),
                        "set client_secret_env or client_secret_file, not both".into(),
                        &mut ok,
                    );
                    None
                }
                (None, None) => {
                    fail(
                        &key("client_secret_env"),
                        "credential = \"client_secret\" needs client_secret_env or client_secret_file".into(),
                        &mut ok,
                    );
                    None
                }
                (Some(v), None) => match var(v) {
                    Some(s) => Some(Secret::new(&s)),
                    None => {
                        fail(
                            &key("client_secret_env"),
                            format!(
                                "the environment variable {v} is not set; export it with the client secret"
                            ),
                            &mut ok,
                        );
                        None
                    }
                },
                (None, Some(p)) => match std::fs::read_to_string(p) {
                    Ok(s) => Some(Secret::new(&s)),
                    Err(e) => {
                        fail(
                            &key("client_secret_file"),
                            format!("cannot read {}: {}", p.display(), e.kind()),
                            &mut ok,
                        );
                        None
                    }
                },
            };
            let secret = secret.filter(|s| {
                let empty = s.is_empty();
                if empty {
                    fail(
                        &key("client_secret_env"),
                        "the client secret is empty".into(),
                        &mut ok,
                    );
                }
                !empty
            });
            match (tenant_id, client_id, secret) {
                (Some(tenant_id), Some(client_id), Some(secret)) => {
                    Some(CredentialKind::ClientSecret {
                        tenant_id,
                        client_id,
                        secret,
                    })
                }
                _ => None,
            }
        }
        "workload_identity" => {
            let tenant_id = tenant(true, &mut ok, &mut fail);
            let client_id = client(true, &mut ok, &mut fail);
            not_for(
                section.client_secret_env.is_some() || section.client_secret_file.is_some(),
                "client_secret_env",
                "workload_identity",
                &mut ok,
                &mut fail,
            );
            not_for(
                section.managed_identity_endpoint.is_some(),
                "managed_identity_endpoint",
                "workload_identity",
                &mut ok,
                &mut fail,
            );
            let file = section
                .federated_token_file
                .clone()
                .or_else(|| var("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from));
            let file = match file {
                Some(f) if f.is_file() => Some(f),
                Some(f) => {
                    fail(
                        &key("federated_token_file"),
                        format!(
                            "{} is not a file; on Kubernetes, check the service account's azure.workload.identity/use label",
                            f.display()
                        ),
                        &mut ok,
                    );
                    None
                }
                None => {
                    fail(
                        &key("federated_token_file"),
                        "is required (or AZURE_FEDERATED_TOKEN_FILE): the file the platform writes the federated token to".into(),
                        &mut ok,
                    );
                    None
                }
            };
            match (tenant_id, client_id, file) {
                (Some(tenant_id), Some(client_id), Some(token_file)) => {
                    Some(CredentialKind::WorkloadIdentity {
                        tenant_id,
                        client_id,
                        token_file,
                    })
                }
                _ => None,
            }
        }
        "managed_identity" => {
            not_for(
                section.client_secret_env.is_some() || section.client_secret_file.is_some(),
                "client_secret_env",
                "managed_identity",
                &mut ok,
                &mut fail,
            );
            not_for(
                section.federated_token_file.is_some(),
                "federated_token_file",
                "managed_identity",
                &mut ok,
                &mut fail,
            );
            not_for(
                section.tenant_id.is_some(),
                "tenant_id",
                "managed_identity",
                &mut ok,
                &mut fail,
            );
            let client_id = match &section.client_id {
                Some(c) if !is_guid(c) => {
                    fail(
                        &key("client_id"),
                        "must be the user-assigned identity's client id, a GUID".into(),
                        &mut ok,
                    );
                    None
                }
                other => other.clone(),
            };
            let endpoint = match (
                &section.managed_identity_endpoint,
                var("IDENTITY_ENDPOINT"),
                var("IDENTITY_HEADER"),
            ) {
                (Some(e), _, _) => metadata_url(e)
                    .map(ManagedIdentityEndpoint::Imds)
                    .map_err(|m| fail(&key("managed_identity_endpoint"), m, &mut ok))
                    .ok(),
                (None, Some(e), Some(h)) => metadata_url(&e)
                    .map(|endpoint| ManagedIdentityEndpoint::AppService {
                        endpoint,
                        header: Secret::new(&h),
                    })
                    .map_err(|m| fail("IDENTITY_ENDPOINT", m, &mut ok))
                    .ok(),
                (None, _, _) => Url::parse(DEFAULT_IMDS_ENDPOINT)
                    .ok()
                    .map(ManagedIdentityEndpoint::Imds),
            };
            endpoint.map(|endpoint| CredentialKind::ManagedIdentity {
                client_id,
                endpoint,
            })
        }
        _ => {
            fail(
                &key("credential"),
                "must be client_secret, workload_identity or managed_identity".into(),
                &mut ok,
            );
            None
        }
    };
    let arm_scope = match (&section.arm_scope, &arm_endpoint) {
        (Some(s), _) if s.starts_with("https://") && s.ends_with("/.default") => Some(s.clone()),
        (Some(_), _) => {
            fail(
                &key("arm_scope"),
                "must look like https://management.azure.com/.default".into(),
                &mut ok,
            );
            None
        }
        (None, Some(e)) => Some(crate::azure::arm::scope_for(e)),
        (None, None) => None,
    };
    match (ok, credential, authority, arm_endpoint, arm_scope) {
        (true, Some(credential), Some(authority), Some(arm_endpoint), Some(arm_scope)) => {
            Some(Delegation {
                credential,
                authority,
                ca_file: section.ca_file.clone(),
                key_lifetime,
                correlation_id: section.correlation_id.unwrap_or(true),
                resource_id: section.resource_id.clone(),
                arm_endpoint,
                arm_scope,
            })
        }
        _ => None,
    }
}

/// An `https://` URL, or `http://` on this machine (a test server): secrets and bearer tokens
/// are sent there.
fn https_url(text: &str) -> Result<Url, String> {
    match Url::parse(text) {
        Ok(u) if u.scheme() == "https" || (u.scheme() == "http" && is_loopback(&u)) => Ok(u),
        Ok(_) => Err("must be https:// (http:// only on 127.0.0.1 or localhost, for a local test server): a secret is sent there".into()),
        Err(_) => Err("must be an absolute URL".into()),
    }
}

/// A managed identity endpoint: plain HTTP is how IMDS and App Service serve it, but only on a
/// link-local or loopback address that never leaves the host.
fn metadata_url(text: &str) -> Result<Url, String> {
    let u = Url::parse(text).map_err(|_| "must be an absolute URL".to_owned())?;
    let local = match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_link_local(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    if u.scheme() == "https" || (u.scheme() == "http" && local) {
        Ok(u)
    } else {
        Err("must be https://, or http:// on a link-local or loopback address (169.254.169.254, 127.0.0.1)".into())
    }
}

fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn is_tenant(s: &str) -> bool {
    is_guid(s)
        || (!s.is_empty()
            && s.len() <= 253
            && s.contains('.')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(section: EntraSection, env: &[(&str, &str)]) -> Result<Delegation, Vec<String>> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut errors = Vec::new();
        let got = validate(
            "accounts[0]",
            "acct",
            &section,
            &env,
            Some(Duration::hours(1)),
            &mut |k, m| errors.push(format!("{k}: {m}")),
        );
        match got {
            Some(d) if errors.is_empty() => Ok(d),
            _ => Err(errors),
        }
    }

    const GUID: &str = "11111111-2222-3333-4444-555555555555";

    #[test]
    fn client_secret_from_env_never_echoed() {
        let section = EntraSection {
            credential: "client_secret".into(),
            tenant_id: Some(GUID.into()),
            client_id: Some(GUID.into()),
            client_secret_env: Some("SECRET_VAR".into()),
            ..Default::default()
        };
        let d = check(section.clone(), &[("SECRET_VAR", "hunter2-value")]).unwrap();
        assert!(matches!(d.credential, CredentialKind::ClientSecret { .. }));
        assert!(d.correlation_id);
        assert_eq!(d.key_lifetime, DEFAULT_KEY_LIFETIME);
        assert!(!format!("{d:?}").contains("hunter2"));
        let errors = check(section, &[]).unwrap_err();
        assert!(errors[0].contains("SECRET_VAR is not set"), "{errors:?}");
    }

    #[test]
    fn workload_identity_takes_the_webhook_variables() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let path = file.path().to_str().unwrap();
        let section = EntraSection {
            credential: "workload_identity".into(),
            ..Default::default()
        };
        let d = check(
            section.clone(),
            &[
                ("AZURE_TENANT_ID", GUID),
                ("AZURE_CLIENT_ID", GUID),
                ("AZURE_FEDERATED_TOKEN_FILE", path),
                ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us"),
            ],
        )
        .unwrap();
        assert_eq!(d.authority.as_str(), "https://login.microsoftonline.us/");
        let errors = check(section, &[]).unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
    }

    #[test]
    fn managed_identity_endpoints() {
        let section = EntraSection {
            credential: "managed_identity".into(),
            ..Default::default()
        };
        let d = check(section.clone(), &[]).unwrap();
        assert!(matches!(
            d.credential,
            CredentialKind::ManagedIdentity {
                endpoint: ManagedIdentityEndpoint::Imds(_),
                ..
            }
        ));
        let d = check(
            section.clone(),
            &[
                ("IDENTITY_ENDPOINT", "http://localhost:42356/msi/token"),
                ("IDENTITY_HEADER", "h"),
            ],
        )
        .unwrap();
        assert!(matches!(
            d.credential,
            CredentialKind::ManagedIdentity {
                endpoint: ManagedIdentityEndpoint::AppService { .. },
                ..
            }
        ));
        let remote = EntraSection {
            managed_identity_endpoint: Some("http://metadata.example.org/token".into()),
            ..section
        };
        assert!(check(remote, &[]).is_err());
    }

    #[test]
    fn refuses_plain_http_authority_and_long_or_short_keys() {
        let base = EntraSection {
            credential: "managed_identity".into(),
            ..Default::default()
        };
        let bad = EntraSection {
            authority_host: Some("http://login.example.org".into()),
            ..base.clone()
        };
        assert!(check(bad, &[]).unwrap_err()[0].contains("authority_host"));
        let local = EntraSection {
            authority_host: Some("http://127.0.0.1:9999".into()),
            ..base.clone()
        };
        assert!(check(local, &[]).is_ok());
        let long = EntraSection {
            key_lifetime: Some("8d".into()),
            ..base.clone()
        };
        assert!(check(long, &[]).unwrap_err()[0].contains("7d"));
        let short = EntraSection {
            key_lifetime: Some("1h".into()),
            ..base.clone()
        };
        assert!(check(short, &[]).unwrap_err()[0].contains("max_ttl"));
        let unknown = EntraSection {
            credential: "password".into(),
            ..base
        };
        assert!(check(unknown, &[]).is_err());
    }

    /// The commented keyless example in `config/sasgate.toml` is valid when uncommented.
    #[test]
    fn the_shipped_example_is_true_to_the_code() {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sasgate.toml"),
        )
        .unwrap();
        let start = text
            .find("# [[accounts]]\n# name = \"prodmodels\"")
            .unwrap();
        let example: String = text[start..]
            .lines()
            .take_while(|l| l.starts_with('#'))
            .filter(|l| !l.starts_with("# #"))
            .filter_map(|l| l.strip_prefix("# "))
            .collect::<Vec<_>>()
            .join("\n");
        #[derive(Deserialize)]
        struct Accounts {
            accounts: Vec<super::super::AccountSection>,
        }
        let parsed: Accounts =
            toml::from_str(&example).unwrap_or_else(|e| panic!("{e}\n{example}"));
        let section = parsed.accounts[0].entra.clone().unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        let env = vec![(
            "AZURE_FEDERATED_TOKEN_FILE".to_owned(),
            file.path().display().to_string(),
        )];
        let mut errors = Vec::new();
        let got = validate(
            "accounts[0]",
            &parsed.accounts[0].name,
            &section,
            &env,
            Some(Duration::hours(1)),
            &mut |k, m| errors.push(format!("{k}: {m}")),
        );
        assert!(got.is_some() && errors.is_empty(), "{errors:?}\n{example}");
    }
}
