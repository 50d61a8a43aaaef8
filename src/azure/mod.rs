//! Outbound Azure Storage REST calls.
//!
//! [`BlobServiceClient`] makes the few Blob service calls sasgate needs (containers, blobs,
//! container ACLs, user delegation keys); [`shared_key`] computes the Shared Key `Authorization`
//! header as pure functions. Errors are [`AzureError`], which never carries a secret.

pub mod arm;
mod client;
pub mod entra;
mod error;
pub mod shared_key;
mod xml;

pub use client::{
    API_VERSION, BlobServiceClient, ContainerAcl, MAX_POLICY_ID_CHARS, MAX_STORED_POLICIES,
    SignedIdentifier,
};
pub use error::AzureError;
pub(crate) use error::chain as error_chain;
