//! Outbound Azure Storage REST calls.
