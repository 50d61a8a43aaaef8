//! Caller authentication: API keys (`sgk_` + 43 base64url characters, stored only as SHA-256).
//!
//! A presented key is hashed once and compared with every configured hash in constant time, so
//! neither the comparison nor the loop's length depends on which principal matched.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

pub mod oidc;
pub mod rate;

use crate::config::ApiKeyPrincipal;
use crate::policy::OidcSubject;

/// Every sasgate API key starts with this, so scanners can recognise a leaked one.
pub const API_KEY_PREFIX: &str = "sgk_";

/// A new API key and the hash that goes into configuration.
pub struct NewApiKey {
    /// The key: show it once, to the person it is for.
    pub key: String,
    /// Lowercase hex SHA-256 of the key, for `principals.<name>.api_key_sha256`.
    pub sha256_hex: String,
}

impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApiKey")
            .field("key", &"<redacted>")
            .field("sha256_hex", &self.sha256_hex)
            .finish()
    }
}

/// Makes a new API key from 32 random bytes.
pub fn generate_api_key() -> Result<NewApiKey, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let key = format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let sha256_hex = crate::sas::sign::hex_sha256(key.as_bytes());
    Ok(NewApiKey { key, sha256_hex })
}

/// Who is calling: the result of authentication, the input of policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Principal {
    /// The configured principal name; for an OIDC caller `<issuer-name>#<sub>`.
    pub name: String,
    pub roles: Vec<String>,
    /// Present for a caller that authenticated with an OIDC token: its verified claims.
    pub oidc: Option<OidcSubject>,
}

impl Principal {
    /// True for holders of the built-in `admin` role.
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == "admin")
    }

    /// The name recorded in the ledger: `user:<name>`, or `oidc:<issuer-name>#<sub>`.
    pub fn ledger_name(&self) -> String {
        match &self.oidc {
            Some(_) => format!("oidc:{}", self.name),
            None => format!("user:{}", self.name),
        }
    }

    /// The principal of a verified OIDC token. It has no roles: OIDC callers are matched by
    /// `oidc:<issuer-name>` principals and their claims only, and can never be admins.
    pub fn from_oidc(token: oidc::VerifiedToken) -> Self {
        Principal {
            name: format!("{}#{}", token.issuer_name, token.subject),
            roles: Vec::new(),
            oidc: Some(OidcSubject {
                issuer: token.issuer_name,
                claims: token.claims,
            }),
        }
    }
}

/// Finds the principal whose API key is `presented`. Every configured hash is compared, in
/// constant time, whatever matches.
pub fn authenticate_api_key(principals: &[ApiKeyPrincipal], presented: &str) -> Option<Principal> {
    if !presented.starts_with(API_KEY_PREFIX) {
        return None;
    }
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let mut found: Option<&ApiKeyPrincipal> = None;
    for p in principals {
        if bool::from(p.api_key_sha256.ct_eq(&digest)) {
            found = Some(p);
        }
    }
    found.map(|p| Principal {
        name: p.name.clone(),
        roles: p.roles.clone(),
        oidc: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_authenticate_their_principal_only() {
        let a = generate_api_key().unwrap();
        let b = generate_api_key().unwrap();
        assert!(a.key.starts_with("sgk_") && a.key.len() == 4 + 43);
        assert_ne!(a.key, b.key);
        let principals = vec![
            ApiKeyPrincipal {
                name: "alice".into(),
                api_key_sha256: crate::config::decode_sha256_hex(&a.sha256_hex).unwrap(),
                roles: vec!["researcher".into()],
            },
            ApiKeyPrincipal {
                name: "bob".into(),
                api_key_sha256: crate::config::decode_sha256_hex(&b.sha256_hex).unwrap(),
                roles: vec![],
            },
        ];
        assert_eq!(
            authenticate_api_key(&principals, &a.key).unwrap().name,
            "alice"
        );
        assert_eq!(
            authenticate_api_key(&principals, &b.key).unwrap().name,
            "bob"
        );
        assert!(authenticate_api_key(&principals, "sgk_wrong").is_none());
        assert!(
            authenticate_api_key(&principals, &a.key[4..]).is_none(),
            "the prefix is required"
        );
        assert!(!format!("{a:?}").contains(&a.key));
    }
}
