//! SAS versions (`sv`) and the string-to-sign layout each one uses.

use std::fmt;

/// A storage service version as used in `sv`: a `YYYY-MM-DD` date. Ordered by date, which is how
/// Azure and Azurite pick string-to-sign layouts.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SasVersion {
    year: u16,
    month: u8,
    day: u8,
}

/// Versions Azure documents for Blob storage, oldest first. Signing accepts only these, so that a
/// typo in configuration fails at start-up instead of at the storage service.
const KNOWN: &[&str] = &[
    "2015-04-05",
    "2015-07-08",
    "2015-12-11",
    "2016-05-31",
    "2017-04-17",
    "2017-07-29",
    "2017-11-09",
    "2018-03-28",
    "2018-11-09",
    "2019-02-02",
    "2019-07-07",
    "2019-10-10",
    "2019-12-12",
    "2020-02-10",
    "2020-04-08",
    "2020-06-12",
    "2020-08-04",
    "2020-10-02",
    "2020-12-06",
    "2021-02-12",
    "2021-04-10",
    "2021-06-08",
    "2021-08-06",
    "2021-10-04",
    "2021-12-02",
    "2022-11-02",
    "2023-01-03",
    "2023-05-03",
    "2023-08-03",
    "2023-11-03",
    "2024-02-04",
    "2024-05-04",
    "2024-08-04",
    "2024-11-04",
    "2025-01-05",
    "2025-05-05",
    "2025-07-05",
    "2025-11-05",
    "2026-02-06",
    "2026-04-06",
    "2026-06-06",
    "2026-10-06",
];

/// Why a version string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("a SAS version is a date in the form YYYY-MM-DD")]
    Format,
    #[error("SAS versions before 2015-04-05 are not supported")]
    TooOld,
    #[error("not a storage service version Azure documents for Blob SAS")]
    Unknown,
}

impl SasVersion {
    pub const V2015_04_05: SasVersion = SasVersion::ymd(2015, 4, 5);
    pub const V2018_11_09: SasVersion = SasVersion::ymd(2018, 11, 9);
    pub const V2019_10_10: SasVersion = SasVersion::ymd(2019, 10, 10);
    pub const V2019_12_12: SasVersion = SasVersion::ymd(2019, 12, 12);
    pub const V2020_02_10: SasVersion = SasVersion::ymd(2020, 2, 10);
    pub const V2020_08_04: SasVersion = SasVersion::ymd(2020, 8, 4);
    pub const V2020_12_06: SasVersion = SasVersion::ymd(2020, 12, 6);
    pub const V2021_04_10: SasVersion = SasVersion::ymd(2021, 4, 10);
    pub const V2025_07_05: SasVersion = SasVersion::ymd(2025, 7, 5);
    pub const V2026_04_06: SasVersion = SasVersion::ymd(2026, 4, 6);
    pub const V2026_06_06: SasVersion = SasVersion::ymd(2026, 6, 6);

    /// The version sasgate signs with unless told otherwise: the newest version that Azure
    /// documents and that Azurite 3.37.0 knows (its API version list ends at 2026-06-06).
    pub const DEFAULT: SasVersion = SasVersion::V2026_06_06;

    const fn ymd(year: u16, month: u8, day: u8) -> Self {
        Self { year, month, day }
    }

    /// Parses any well-formed `YYYY-MM-DD` version from 2015-04-05 on. Used when reading tokens,
    /// which may carry versions newer than this build knows.
    pub fn parse_any(text: &str) -> Result<Self, VersionError> {
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(VersionError::Format);
        }
        let num = |r: std::ops::Range<usize>| -> Result<u16, VersionError> {
            let part = text.get(r).ok_or(VersionError::Format)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(VersionError::Format);
            }
            part.parse().map_err(|_| VersionError::Format)
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return Err(VersionError::Format);
        }
        let v = Self::ymd(year, month as u8, day as u8);
        if v < Self::V2015_04_05 {
            return Err(VersionError::TooOld);
        }
        Ok(v)
    }

    /// Parses a version for signing: it must be one Azure documents.
    pub fn parse_known(text: &str) -> Result<Self, VersionError> {
        let v = Self::parse_any(text)?;
        if KNOWN.contains(&text) {
            Ok(v)
        } else {
            Err(VersionError::Unknown)
        }
    }

    /// The version as `YYYY-MM-DD`, without going through the formatter.
    pub fn as_string(self) -> String {
        let mut s = String::with_capacity(10);
        for (i, (n, width)) in [
            (u32::from(self.year), 4),
            (u32::from(self.month), 2),
            (u32::from(self.day), 2),
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                s.push('-');
            }
            for k in (0..width).rev() {
                s.push(char::from(b'0' + (n / 10u32.pow(k) % 10) as u8));
            }
        }
        s
    }

    /// The service SAS string-to-sign layout for this version.
    pub(crate) fn service_layout(self) -> ServiceLayout {
        if self >= Self::V2020_12_06 {
            ServiceLayout::C16
        } else if self >= Self::V2018_11_09 {
            ServiceLayout::B15
        } else {
            ServiceLayout::A13
        }
    }

    /// The user delegation SAS string-to-sign layout for this version, if any.
    pub(crate) fn delegation_layout(self) -> Option<DelegationLayout> {
        Some(if self >= Self::V2026_04_06 {
            DelegationLayout::U5
        } else if self >= Self::V2025_07_05 {
            DelegationLayout::U4
        } else if self >= Self::V2020_12_06 {
            DelegationLayout::U3
        } else if self >= Self::V2020_02_10 {
            DelegationLayout::U2
        } else if self >= Self::V2018_11_09 {
            DelegationLayout::U1
        } else {
            return None;
        })
    }
}

/// Service SAS layouts (AZURE-SAS.md §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ServiceLayout {
    /// 2015-04-05 … 2018-03-28: 13 fields.
    A13,
    /// 2018-11-09 … 2020-10-02: 15 fields (adds `sr` and the snapshot slot).
    B15,
    /// 2020-12-06 on: 16 fields (adds `ses`).
    C16,
}

/// User delegation SAS layouts (AZURE-SAS.md §3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum DelegationLayout {
    /// 2018-11-09: 20 fields.
    U1,
    /// 2020-02-10: 23 fields (adds `saoid`, `suoid`, `scid`).
    U2,
    /// 2020-12-06: 24 fields (adds `ses`).
    U3,
    /// 2025-07-05: 26 fields (adds `skdutid`, `sduoid`).
    U4,
    /// 2026-04-06 on: 28 fields (adds `srh`, `srq`).
    U5,
}

impl fmt::Display for SasVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

impl fmt::Debug for SasVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SasVersion({self})")
    }
}

impl std::str::FromStr for SasVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_known(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_switch_at_the_documented_versions() {
        let v = |s| SasVersion::parse_any(s).unwrap();
        assert_eq!(v("2018-03-28").service_layout(), ServiceLayout::A13);
        assert_eq!(v("2018-11-09").service_layout(), ServiceLayout::B15);
        assert_eq!(v("2020-10-02").service_layout(), ServiceLayout::B15);
        assert_eq!(v("2020-12-06").service_layout(), ServiceLayout::C16);
        assert_eq!(v("2026-10-06").service_layout(), ServiceLayout::C16);
        assert_eq!(v("2018-03-28").delegation_layout(), None);
        assert_eq!(
            v("2018-11-09").delegation_layout(),
            Some(DelegationLayout::U1)
        );
        assert_eq!(
            v("2020-02-10").delegation_layout(),
            Some(DelegationLayout::U2)
        );
        assert_eq!(
            v("2020-12-06").delegation_layout(),
            Some(DelegationLayout::U3)
        );
        assert_eq!(
            v("2025-05-05").delegation_layout(),
            Some(DelegationLayout::U3)
        );
        assert_eq!(
            v("2025-07-05").delegation_layout(),
            Some(DelegationLayout::U4)
        );
        assert_eq!(
            v("2026-02-06").delegation_layout(),
            Some(DelegationLayout::U4)
        );
        assert_eq!(
            v("2026-04-06").delegation_layout(),
            Some(DelegationLayout::U5)
        );
    }

    #[test]
    fn parsing() {
        assert_eq!(SasVersion::DEFAULT.to_string(), "2026-06-06");
        assert_eq!(
            SasVersion::parse_known("2026-06-06"),
            Ok(SasVersion::DEFAULT)
        );
        assert_eq!(
            SasVersion::parse_known("2026-06-07"),
            Err(VersionError::Unknown)
        );
        assert_eq!(
            SasVersion::parse_any("2014-02-14"),
            Err(VersionError::TooOld)
        );
        for bad in [
            "",
            "2020-1-01",
            "2020/01/01",
            "2020-13-01",
            "２０２０-01-01",
            "2020-01-0x",
        ] {
            assert_eq!(
                SasVersion::parse_any(bad),
                Err(VersionError::Format),
                "{bad}"
            );
        }
        for k in KNOWN {
            assert_eq!(SasVersion::parse_known(k).unwrap().to_string(), *k);
        }
    }
}
