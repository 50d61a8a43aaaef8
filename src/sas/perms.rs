//! Typed SAS permissions and signed resources.

use std::fmt;

use super::version::SasVersion;

/// What a service or user delegation SAS grants access to: the `sr` field.
///
/// There is deliberately no variant for an account or a service: sasgate cannot express an
/// account SAS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    /// `sr=b`: one blob.
    Blob,
    /// `sr=c`: every blob in one container.
    Container,
    /// `sr=bs`: one blob snapshot.
    BlobSnapshot,
    /// `sr=bv`: one blob version.
    BlobVersion,
    /// `sr=d`: a directory subtree (hierarchical namespace accounts only).
    Directory,
}

impl Resource {
    /// The `sr` value.
    pub fn code(self) -> &'static str {
        match self {
            Resource::Blob => "b",
            Resource::Container => "c",
            Resource::BlobSnapshot => "bs",
            Resource::BlobVersion => "bv",
            Resource::Directory => "d",
        }
    }

    /// Parses an `sr` value.
    pub fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "b" => Resource::Blob,
            "c" => Resource::Container,
            "bs" => Resource::BlobSnapshot,
            "bv" => Resource::BlobVersion,
            "d" => Resource::Directory,
            _ => return None,
        })
    }

    /// The oldest `sv` that can sign this resource kind.
    pub fn min_version(self) -> SasVersion {
        match self {
            Resource::Blob | Resource::Container => SasVersion::V2015_04_05,
            Resource::BlobSnapshot => SasVersion::V2018_11_09,
            Resource::BlobVersion => SasVersion::V2019_12_12,
            Resource::Directory => SasVersion::V2020_02_10,
        }
    }

    /// The permission letters this resource kind allows.
    fn allowed(self) -> &'static str {
        match self {
            Resource::Container => "racwdxyltfmeopi",
            Resource::Blob | Resource::BlobSnapshot | Resource::BlobVersion => "racwdxyltmeopi",
            Resource::Directory => "racwdltmeop",
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The canonical letter order: the Go SDK's and the docs table's `r a c w d x y l t f m e o p i`.
const CANONICAL: &str = "racwdxyltfmeopi";

/// Why a permission string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermissionError {
    #[error("no permissions given")]
    Empty,
    #[error("'{letter}' is not a SAS permission letter for sr={resource} (allowed: {allowed})")]
    NotAllowed {
        letter: char,
        resource: &'static str,
        allowed: &'static str,
    },
    #[error("'{0}' is given more than once")]
    Duplicate(char),
}

/// A set of SAS permission letters, valid for some [`Resource`]. Displayed in canonical order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Permissions(u16);

impl Permissions {
    /// Read only: the least-privilege default.
    pub const READ: Permissions = Permissions(1);

    /// Parses letters in any order for `resource`, refusing unknown letters, letters the resource
    /// does not allow, and duplicates.
    pub fn parse(text: &str, resource: Resource) -> Result<Self, PermissionError> {
        if text.is_empty() {
            return Err(PermissionError::Empty);
        }
        let allowed = resource.allowed();
        let mut bits = 0u16;
        for letter in text.chars() {
            if !allowed.contains(letter) {
                return Err(PermissionError::NotAllowed {
                    letter,
                    resource: resource.code(),
                    allowed,
                });
            }
            let bit = bit_of(letter).ok_or(PermissionError::NotAllowed {
                letter,
                resource: resource.code(),
                allowed,
            })?;
            if bits & bit != 0 {
                return Err(PermissionError::Duplicate(letter));
            }
            bits |= bit;
        }
        Ok(Self(bits))
    }

    /// Checks that every letter is allowed for `resource` (a set parsed for a container may hold
    /// letters a blob does not allow).
    pub fn check(self, resource: Resource) -> Result<(), PermissionError> {
        let allowed = resource.allowed();
        let mask = allowed.chars().filter_map(bit_of).fold(0, |m, b| m | b);
        if self.0 & !mask == 0 {
            return Ok(());
        }
        match self.letters().find(|c| !allowed.contains(*c)) {
            Some(letter) => Err(PermissionError::NotAllowed {
                letter,
                resource: resource.code(),
                allowed,
            }),
            None => Ok(()),
        }
    }

    /// The letters in canonical order, as the `sp` value.
    pub fn as_string(self) -> String {
        self.letters().collect()
    }

    /// True when every letter of `self` is also in `other`.
    pub fn is_subset_of(self, other: Permissions) -> bool {
        self.0 & !other.0 == 0
    }

    /// True when `letter` is granted.
    pub fn has(self, letter: char) -> bool {
        bit_of(letter).is_some_and(|b| self.0 & b != 0)
    }

    /// The letters in canonical order.
    pub fn letters(self) -> impl Iterator<Item = char> {
        CANONICAL
            .bytes()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, b)| char::from(b))
    }

    /// The oldest `sv` that supports every letter (`x`/`y` 2019-10-10, `t` 2019-12-12, `m`/`e`
    /// 2020-02-10, `i` 2020-08-04, `f` 2021-04-10).
    pub fn min_version(self) -> SasVersion {
        self.letters()
            .map(|c| match c {
                'x' | 'y' => SasVersion::V2019_10_10,
                't' => SasVersion::V2019_12_12,
                'm' | 'e' => SasVersion::V2020_02_10,
                'i' => SasVersion::V2020_08_04,
                'f' => SasVersion::V2021_04_10,
                _ => SasVersion::V2015_04_05,
            })
            .max()
            .unwrap_or(SasVersion::V2015_04_05)
    }
}

fn bit_of(letter: char) -> Option<u16> {
    let letter = u8::try_from(letter).ok()?;
    CANONICAL
        .bytes()
        .position(|b| b == letter)
        .map(|i| 1u16 << i)
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permissions({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_order_whatever_the_input_order() {
        // The Go SDK's vectors: all flags, and a scrambled order.
        let go = Permissions::parse("ctpwxfmreodail", Resource::Container).unwrap();
        assert_eq!(go.to_string(), "racwdxltfmeopi");
        let c = Permissions::parse("racwdxyltfmeopi", Resource::Container).unwrap();
        assert_eq!(c.to_string(), "racwdxyltfmeopi");
        let b = Permissions::parse("ipoemtlyxdwcar", Resource::Blob).unwrap();
        assert_eq!(b.to_string(), "racwdxyltmeopi");
        assert_eq!(
            Permissions::parse("lr", Resource::Container)
                .unwrap()
                .to_string(),
            "rl"
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(
            Permissions::parse("", Resource::Blob),
            Err(PermissionError::Empty)
        );
        assert_eq!(
            Permissions::parse("rr", Resource::Blob),
            Err(PermissionError::Duplicate('r'))
        );
        assert!(matches!(
            Permissions::parse("rf", Resource::Blob),
            Err(PermissionError::NotAllowed { letter: 'f', .. })
        ));
        assert!(matches!(
            Permissions::parse("rq", Resource::Container),
            Err(PermissionError::NotAllowed { letter: 'q', .. })
        ));
        // 'u' and 'p' in the account-SAS sense are not service letters for a directory.
        assert!(Permissions::parse("ru", Resource::Directory).is_err());
        assert!(Permissions::parse("ri", Resource::Directory).is_err());
    }

    #[test]
    fn subset_and_min_version() {
        let r = Permissions::READ;
        let rl = Permissions::parse("rl", Resource::Container).unwrap();
        assert!(r.is_subset_of(rl));
        assert!(!rl.is_subset_of(r));
        assert_eq!(r.min_version(), SasVersion::V2015_04_05);
        assert_eq!(
            Permissions::parse("rt", Resource::Blob)
                .unwrap()
                .min_version(),
            SasVersion::V2019_12_12
        );
        assert_eq!(
            Permissions::parse("rf", Resource::Container)
                .unwrap()
                .min_version(),
            SasVersion::V2021_04_10
        );
    }
}
