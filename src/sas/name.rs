//! Validated container and blob names, used everywhere a name crosses a boundary.
//!
//! Parse, don't validate: a [`ContainerName`] or [`BlobName`] can only be built through
//! `parse`, so holding one proves the name is canonical. Canonical means that what a policy glob
//! matches is exactly what Azure will serve, with no alias that could escape a prefix.

use std::fmt;

/// The longest blob name Azure accepts, in characters.
pub const MAX_BLOB_NAME_CHARS: usize = 1024;
/// The most path segments Azure accepts in a blob name.
pub const MAX_BLOB_SEGMENTS: usize = 254;

/// Why a name was refused. The message names the rule, never echoes control characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("container names are 3 to 63 characters long")]
    ContainerLength,
    #[error(
        "container names use only lowercase letters, digits and single hyphens, and start and end with a letter or digit"
    )]
    ContainerCharacters,
    #[error("the blob name is empty")]
    BlobEmpty,
    #[error("blob names are at most {MAX_BLOB_NAME_CHARS} characters")]
    BlobTooLong,
    #[error("blob names have at most {MAX_BLOB_SEGMENTS} path segments")]
    TooManySegments,
    #[error("blob names may not start or end with '/' or contain '//' (empty path segment)")]
    EmptySegment,
    #[error("blob names may not contain '.' or '..' path segments")]
    DotSegment,
    #[error("blob name path segments may not end with '.'")]
    TrailingDot,
    #[error("blob names may not contain a backslash")]
    Backslash,
    #[error("blob names may not contain '%' (percent-encoded aliases are refused)")]
    Percent,
    #[error("blob names may not contain control characters or characters invalid in XML")]
    ControlCharacter,
}

/// A blob container name as Azure accepts it: 3–63 of `a-z 0-9 -`, starting and ending with a
/// letter or digit, no `--`; or one of the reserved names `$root`, `$web`, `$logs`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerName(String);

impl ContainerName {
    /// Validates `name` as a container name.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        if matches!(name, "$root" | "$web" | "$logs") {
            return Ok(Self(name.to_owned()));
        }
        if !(3..=63).contains(&name.len()) {
            return Err(NameError::ContainerLength);
        }
        let bytes = name.as_bytes();
        let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
        let edge_ok =
            |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !bytes.iter().all(allowed)
            || !edge_ok(bytes.first())
            || !edge_ok(bytes.last())
            || name.contains("--")
        {
            return Err(NameError::ContainerCharacters);
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A canonical blob name: 1–1024 characters, at most 254 `/`-separated segments, none of them
/// empty, `.`, `..` or ending in `.`, and no backslash, `%`, control character or character that
/// XML 1.0 forbids.
///
/// `%` is refused outright: Azure decodes the request path, so `a%2Fb` and `a/b` could name the
/// same blob, and Azurite decodes query values twice. `\` is refused because several SDKs rewrite
/// it to `/`. Together these rules make the name's text the only spelling of the blob.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobName(String);

impl BlobName {
    /// Validates `name` as a canonical blob name.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::BlobEmpty);
        }
        if name.chars().count() > MAX_BLOB_NAME_CHARS {
            return Err(NameError::BlobTooLong);
        }
        for c in name.chars() {
            if c == '\\' {
                return Err(NameError::Backslash);
            }
            if c == '%' {
                return Err(NameError::Percent);
            }
            if c.is_control() || matches!(c, '\u{FFFE}' | '\u{FFFF}') {
                return Err(NameError::ControlCharacter);
            }
        }
        let mut segments = 0usize;
        for segment in name.split('/') {
            segments += 1;
            if segment.is_empty() {
                return Err(NameError::EmptySegment);
            }
            if segment == "." || segment == ".." {
                return Err(NameError::DotSegment);
            }
            if segment.ends_with('.') {
                return Err(NameError::TrailingDot);
            }
        }
        if segments > MAX_BLOB_SEGMENTS {
            return Err(NameError::TooManySegments);
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as text (raw: not percent-encoded).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// How many directory levels the name has (`a/b` → 2), the `sdd` of a directory SAS.
    pub fn depth(&self) -> usize {
        self.0.split('/').count()
    }
}

macro_rules! name_traits {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl std::str::FromStr for $t {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}
name_traits!(ContainerName);
name_traits!(BlobName);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn container_names() {
        for ok in [
            "abc",
            "models",
            "ci-123",
            "a1b",
            "$root",
            "$web",
            &"a".repeat(63),
        ] {
            assert!(ContainerName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "-abc",
            "abc-",
            "a--b",
            "ABC",
            "a_b",
            "a.b",
            "",
            &"a".repeat(64),
            "$other",
        ] {
            assert!(ContainerName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn blob_names_refused_with_the_rule() {
        let cases = [
            ("", NameError::BlobEmpty),
            ("/a", NameError::EmptySegment),
            ("a/", NameError::EmptySegment),
            ("a//b", NameError::EmptySegment),
            ("a/../b", NameError::DotSegment),
            ("./a", NameError::DotSegment),
            ("..", NameError::DotSegment),
            ("a./b", NameError::TrailingDot),
            ("a.", NameError::TrailingDot),
            ("a\\b", NameError::Backslash),
            ("a%2e%2e/b", NameError::Percent),
            ("a\u{0}b", NameError::ControlCharacter),
            ("a\nb", NameError::ControlCharacter),
            ("a\u{7f}", NameError::ControlCharacter),
            ("a\u{85}", NameError::ControlCharacter),
            ("a\u{FFFF}", NameError::ControlCharacter),
        ];
        for (name, want) in cases {
            assert_eq!(BlobName::parse(name), Err(want), "{name:?}");
        }
        assert_eq!(
            BlobName::parse(&"a".repeat(1025)),
            Err(NameError::BlobTooLong)
        );
        assert_eq!(
            BlobName::parse(&["a"; 255].join("/")),
            Err(NameError::TooManySegments)
        );
    }

    #[test]
    fn blob_names_accepted() {
        for ok in [
            "a",
            "dir/my blob.txt",
            "models/v1.2/weights.bin",
            "日本語/ファイル",
            "a+b=c&d?e#f",
            ".hidden",
            "a..b",
        ] {
            let n = BlobName::parse(ok).unwrap();
            assert_eq!(n.as_str(), ok);
        }
        assert_eq!(BlobName::parse("a/b/c").unwrap().depth(), 3);
        assert!(BlobName::parse(&"é".repeat(1024)).is_ok());
        assert!(BlobName::parse(&["a"; 254].join("/")).is_ok());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = BlobName::parse(&s);
            let _ = ContainerName::parse(&s);
        }

        #[test]
        fn accepted_names_have_no_escaping_segment(s in "[a-zA-Z0-9 ./_\\-]{1,40}") {
            if let Ok(n) = BlobName::parse(&s) {
                prop_assert!(n.as_str().split('/').all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !seg.ends_with('.')));
            }
        }
    }
}

/// A storage account name: 3–24 lowercase letters and digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountName(String);

/// Why an account name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage account names are 3 to 24 lowercase letters and digits")]
pub struct AccountNameError;

impl AccountName {
    /// Validates `name` as a storage account name.
    pub fn parse(name: &str) -> Result<Self, AccountNameError> {
        if (3..=24).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            Ok(Self(name.to_owned()))
        } else {
            Err(AccountNameError)
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}
