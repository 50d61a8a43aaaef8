//! Azure Resource Manager: the one management call sasgate makes, the account-wide emergency stop
//! for user delegation SAS.
//!
//! `POST {arm}/{storage account resource id}/revokeUserDelegationKeys?api-version=2023-05-01`
//! (operation `StorageAccounts_RevokeUserDelegationKeys`) revokes every user delegation key of the
//! account, and with them every user delegation SAS signed by any of them, sasgate's or anyone
//! else's. Azure documents a delay while caches expire. The call needs an Entra token for the
//! management scope and the `Microsoft.Storage/storageAccounts/revokeUserDelegationKeys/action`
//! permission on the account.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use url::Url;

use super::entra::{EntraCredential, EntraError, chain};

/// The public cloud's Resource Manager.
pub const DEFAULT_ARM_ENDPOINT: &str = "https://management.azure.com";
/// The management API version used for the call.
pub const ARM_API_VERSION: &str = "2023-05-01";

/// The emergency stop failed: nothing was revoked (as far as sasgate can tell).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ArmError {
    #[error("no Entra token for Azure Resource Manager: {0}")]
    Token(#[from] EntraError),
    #[error(
        "Azure Resource Manager answered HTTP {status}{}",
        code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default()
    )]
    Status { status: u16, code: Option<String> },
    #[error("could not reach Azure Resource Manager: {0}")]
    Transport(String),
    #[error("{0}")]
    Config(String),
}

#[derive(Deserialize, Default)]
struct ArmErrorBody {
    #[serde(default)]
    error: Option<ArmErrorDetail>,
}

#[derive(Deserialize, Default)]
struct ArmErrorDetail {
    #[serde(default)]
    code: Option<String>,
}

/// The management scope for an ARM endpoint: `https://management.azure.com/.default`.
pub fn scope_for(arm: &Url) -> String {
    format!("{}/.default", arm.as_str().trim_end_matches('/'))
}

/// Checks a storage account resource id: `/subscriptions/{s}/resourceGroups/{g}/providers/
/// Microsoft.Storage/storageAccounts/{name}`, with `name` the configured account.
pub fn check_resource_id(id: &str, account: &str) -> Result<(), String> {
    let parts: Vec<&str> = id.split('/').collect();
    let ok = parts.len() == 9
        && parts[0].is_empty()
        && parts[1].eq_ignore_ascii_case("subscriptions")
        && !parts[2].is_empty()
        && parts[3].eq_ignore_ascii_case("resourceGroups")
        && !parts[4].is_empty()
        && parts[5].eq_ignore_ascii_case("providers")
        && parts[6].eq_ignore_ascii_case("Microsoft.Storage")
        && parts[7].eq_ignore_ascii_case("storageAccounts")
        && parts[8] == account
        && parts.iter().all(|p| {
            p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.()".contains(c))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "must be /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Storage/storageAccounts/{account} (the portal shows it under the account's JSON view)"
        ))
    }
}

/// Revokes every user delegation key of the storage account `resource_id`, with a token for
/// `scope` (see [`scope_for`]).
pub async fn revoke_user_delegation_keys(
    credential: &EntraCredential,
    arm: &Url,
    scope: &str,
    resource_id: &str,
    now: DateTime<Utc>,
) -> Result<(), ArmError> {
    let token = credential.token(scope, now).await?;
    let mut url = Url::parse(&format!(
        "{}{}/revokeUserDelegationKeys",
        arm.as_str().trim_end_matches('/'),
        resource_id
    ))
    .map_err(|_| ArmError::Config("the ARM endpoint and resource id make no URL".into()))?;
    url.query_pairs_mut()
        .append_pair("api-version", ARM_API_VERSION);
    let mut auth =
        reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.token.expose()))
            .map_err(|_| ArmError::Config("the access token cannot be sent in a header".into()))?;
    auth.set_sensitive(true);
    let response = credential
        .http()
        .post(url)
        .header(reqwest::header::AUTHORIZATION, auth)
        .header(reqwest::header::CONTENT_LENGTH, 0)
        .send()
        .await
        .map_err(|e| ArmError::Transport(chain(&e)))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.bytes().await.unwrap_or_default();
    let parsed: ArmErrorBody = serde_json::from_slice(&body).unwrap_or_default();
    if status.as_u16() == 401 {
        // A token the service no longer accepts: fetch a fresh one next time.
        credential.forget();
    }
    Err(ArmError::Status {
        status: status.as_u16(),
        code: parsed
            .error
            .and_then(|e| e.code)
            .map(|c| c.chars().take(64).collect()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ids() {
        let good = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-1/providers/Microsoft.Storage/storageAccounts/acct";
        assert!(check_resource_id(good, "acct").is_ok());
        assert!(check_resource_id(good, "other").is_err());
        assert!(check_resource_id("/subscriptions/x/resourceGroups/y", "acct").is_err());
        assert!(check_resource_id(&format!("{good}/../x"), "acct").is_err());
        assert!(
            check_resource_id(
                "/subscriptions/s/resourceGroups/r?x/providers/Microsoft.Storage/storageAccounts/acct",
                "acct"
            )
            .is_err()
        );
    }

    #[test]
    fn management_scope() {
        let arm = Url::parse(DEFAULT_ARM_ENDPOINT).unwrap();
        assert_eq!(scope_for(&arm), "https://management.azure.com/.default");
    }
}
