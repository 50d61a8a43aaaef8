//! Use cases, free of HTTP types: parse and canonicalise a mint request, decide by policy, sign,
//! and record durably before the token is returned.
mod mint;

pub mod delegation;

pub use delegation::{DelegationError, DelegationKeys};
pub use links::{CreatedLink, MAX_USES, Redeemed};
pub use lookup::{LookupError, signature_hash};
pub use mint::{Broker, FromJson, MintError, MintRequest, Minted, parse_ttl};
pub use policies::{OWNED_PREFIX, PolicyError, StoredPolicies};
pub use revoke::{
    BulkFilter, BulkOutcome, Collateral, EmergencyOutcome, KeyStopOutcome, MAX_PREVIEW_COHORT,
    RevokeError, RevokeOutcome, RevokePreview,
};
mod links;
mod lookup;
mod policies;
mod revoke;
