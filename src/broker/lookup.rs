//! Finding the issuance behind a leaked SAS URL or broker link, by the SHA-256 of its signature
//! (for a link: of its code, which the link's issuance records as its signature hash). The text
//! is parsed, never logged or stored.
//!
//! `POST /v1/issuances/lookup` and the web pages' "Inspect a SAS" both call [`Broker::lookup`].

use super::Broker;
use crate::ledger::{IssuanceRecord, LedgerError};

/// Why a lookup found nothing to look for, or could not look.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The text is neither a SAS nor a broker link (the message says why, without the text).
    #[error("{0}")]
    NotASas(String),
    #[error("{0}")]
    Ledger(#[from] LedgerError),
}

/// The signature hash (lowercase hex SHA-256) that identifies `text`'s issuance: of the code of
/// a broker link (`…/l/<code>`), else of the `sig` of a SAS URL or query string.
pub fn signature_hash(text: &str) -> Result<String, LookupError> {
    if let Some(code) = link_code(text) {
        return Ok(crate::sas::sign::hex_sha256(code.as_bytes()));
    }
    let parsed = crate::sas::parse::parse(text)
        .map_err(|e| LookupError::NotASas(format!("not a SAS or a broker link: {e}")))?;
    parsed
        .signature_sha256()
        .ok_or_else(|| LookupError::NotASas("the SAS has no signature".into()))
}

/// The code of a broker link URL (`…/l/<code>`), if `text` is one.
fn link_code(text: &str) -> Option<String> {
    let url = url::Url::parse(text.trim()).ok()?;
    let mut segments = url.path_segments()?;
    match (segments.next(), segments.next(), segments.next()) {
        (Some("l"), Some(code), None) if !code.is_empty() && url.query().is_none() => {
            Some(code.to_owned())
        }
        _ => None,
    }
}

impl Broker {
    /// The newest issuance whose signature hash is that of `text` (see [`signature_hash`]);
    /// `Ok(None)` when sasgate did not issue it.
    pub async fn lookup(&self, text: &str) -> Result<Option<IssuanceRecord>, LookupError> {
        let hash = signature_hash(text)?;
        Ok(self.ledger.find_by_signature(&hash).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_hashes_its_code_and_a_sas_its_signature() {
        let code = "AAAAbbbbCCCCddddEEEEffffGGGGhhhhIIIIjjjjKKK";
        assert_eq!(
            signature_hash(&format!("https://sasgate.example/l/{code}")).unwrap(),
            crate::sas::sign::hex_sha256(code.as_bytes())
        );
        let sas = "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sr=b&sp=r&se=2030-01-01T00:00:00Z&spr=https&sig=abc%2Bdef%3D";
        assert_eq!(
            signature_hash(sas).unwrap(),
            crate::sas::parse::parse(sas)
                .unwrap()
                .signature_sha256()
                .unwrap()
        );
        assert!(matches!(
            signature_hash("hello"),
            Err(LookupError::NotASas(_))
        ));
        // A link URL with a query is not a link.
        assert!(signature_hash("https://sasgate.example/l/abc?x=1").is_err());
    }
}
