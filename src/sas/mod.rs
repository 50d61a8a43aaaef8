//! Pure SAS logic: names, permissions, versions, signing, parsing and lint. No I/O here.
pub mod encode;
pub mod ip;
pub mod lint;
pub mod name;
pub mod parse;
pub mod perms;
pub mod sign;
pub(crate) mod sts;
pub mod udk;
pub mod version;
