//! Shared helpers for integration tests. Each test binary includes this with `mod common;` and
//! uses only part of it, hence `dead_code` is allowed here.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod app;
pub mod azurite;
pub mod entra;
pub mod pgcluster;
pub mod proxy;
pub mod tmpfs;
