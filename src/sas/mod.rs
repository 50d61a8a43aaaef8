//! Pure SAS logic: names, permissions, versions, signing, parsing and lint. No I/O here.
pub mod name;
pub mod udk;
