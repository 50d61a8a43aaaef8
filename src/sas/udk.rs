//! User delegation SAS: signed with a user delegation key obtained from Microsoft Entra ID.

use crate::secret::SigningKey;

/// A user delegation key as returned by Get User Delegation Key. The text fields are kept exactly
/// as the service sent them, because they are signed verbatim (`skt`, `ske`, …).
#[derive(Clone, Debug)]
pub struct UserDelegationKey {
    /// `SignedOid`, emitted as `skoid`.
    pub signed_oid: String,
    /// `SignedTid`, emitted as `sktid`.
    pub signed_tid: String,
    /// `SignedStart`, emitted as `skt`.
    pub signed_start: String,
    /// `SignedExpiry`, emitted as `ske`.
    pub signed_expiry: String,
    /// `SignedService`, emitted as `sks` (`b` for Blob).
    pub signed_service: String,
    /// `SignedVersion`, emitted as `skv` (the key's version, not the SAS `sv`).
    pub signed_version: String,
    /// `SignedDelegatedUserTid`, emitted as `skdutid` when present.
    pub signed_delegated_user_tid: Option<String>,
    /// `Value`: the HMAC key. Redacted in `Debug`.
    pub value: SigningKey,
}
