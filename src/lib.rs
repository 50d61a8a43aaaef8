//! sasgate: a broker that signs short-lived, container- or blob-scoped Azure Storage SAS tokens
//! from policy rules, refuses account-wide or long-lived requests, and records every issuance.
//!
//! Layout (see `ARCHITECTURE` in README.md): [`sas`] is pure SAS logic with no I/O, [`azure`] the
//! outbound Azure Storage REST calls, [`secret`] the types that keep key material out of logs.
pub mod api;
pub mod app;
pub mod auth;
pub mod azure;
pub mod broker;
pub mod cli;
pub mod config;
pub mod ledger;
pub mod metrics;
pub mod policy;
pub mod sas;
pub mod secret;
pub mod telemetry;
pub mod tls;
pub mod web;
