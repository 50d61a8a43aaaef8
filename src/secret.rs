//! Secret material in types that cannot leak through `Debug` or `Display`.
//!
//! Every secret sasgate holds (account keys, user delegation key values, API keys) lives in one of
//! these types. They deliberately implement neither `Display` nor `Serialize`, and their `Debug`
//! prints a fixed placeholder, so a secret cannot reach a log line or an error by accident.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use zeroize::Zeroize as _;

/// Why a base64 key could not be accepted. Never carries any part of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not standard, padded base64.
    #[error("the key is not valid base64 (standard alphabet, with padding)")]
    NotBase64,
    /// The decoded key is empty.
    #[error("the key is empty")]
    Empty,
}

/// An HMAC-SHA256 signing key: a storage account key or a user delegation key `Value`, held as the
/// decoded bytes together with the HMAC state already keyed with them, so that each signature
/// costs only the hashing of its message.
#[derive(Clone)]
pub struct SigningKey {
    bytes: Vec<u8>,
    keyed: Hmac<Sha256>,
}

impl SigningKey {
    /// Decodes a key as Azure shows it (standard base64 with padding). Surrounding whitespace, as
    /// left by a key file, is ignored.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = STANDARD
            .decode(text.trim().as_bytes())
            .map_err(|_| KeyError::NotBase64)?;
        if bytes.is_empty() {
            return Err(KeyError::Empty);
        }
        // HMAC takes keys of any length; this error cannot happen but is mapped, not unwrapped.
        let keyed = Hmac::<Sha256>::new_from_slice(&bytes).map_err(|_| KeyError::Empty)?;
        Ok(Self { bytes, keyed })
    }

    /// A fresh HMAC-SHA256 instance keyed with this key.
    pub(crate) fn mac(&self) -> Hmac<Sha256> {
        self.keyed.clone()
    }

    /// The raw key bytes, for request signing that needs them.
    pub(crate) fn expose(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl Drop for SigningKey {
    fn drop(&mut self) {
        // Wipe the key bytes before the allocation is returned to the allocator.
        self.bytes.zeroize();
    }
}

/// A secret text: a client secret, a federated token, an access token. Only [`Secret::expose`]
/// gives the text, for the one place that sends it; `Debug` shows a placeholder and the memory is
/// wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `text`, trimmed of surrounding whitespace (as left by a file or a variable).
    pub fn new(text: &str) -> Self {
        Self(text.trim().to_owned())
    }

    /// The secret text, to be sent where it belongs and nowhere else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the text is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV_KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    #[test]
    fn debug_never_shows_the_key() {
        let key = SigningKey::from_base64(DEV_KEY).unwrap();
        let shown = format!("{key:?} {key:#?}");
        assert!(!shown.contains("Eby8"));
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn secret_text_is_redacted_and_trimmed() {
        let s = Secret::new("  client-secret-value\n");
        assert_eq!(s.expose(), "client-secret-value");
        let shown = format!("{s:?} {s:#?}");
        assert!(!shown.contains("client-secret"));
        assert!(Secret::new(" ").is_empty());
    }

    #[test]
    fn rejects_bad_base64_without_echoing_it() {
        let err = SigningKey::from_base64("not base64 at all!").unwrap_err();
        assert_eq!(err, KeyError::NotBase64);
        assert!(!err.to_string().contains("not base64 at all"));
        assert_eq!(SigningKey::from_base64("").unwrap_err(), KeyError::Empty);
    }
}
