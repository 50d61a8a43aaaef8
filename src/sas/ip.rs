//! The `sip` field: one IPv4 address or an inclusive range.

use std::fmt;
use std::net::Ipv4Addr;

/// An inclusive IPv4 range for `sip`. Built from `a.b.c.d`, `a.b.c.d-e.f.g.h` or CIDR
/// `a.b.c.d/n`; emitted in Azure's form (`a.b.c.d` or `a.b.c.d-e.f.g.h`).
///
/// IPv6 is refused: Azure documents `sip` with IPv4 examples only and the behaviour of IPv6 there
/// has not been verified, so sasgate does not sign what it cannot vouch for.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    start: Ipv4Addr,
    end: Ipv4Addr,
}

/// Why an address range was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpRangeError {
    #[error("expected an IPv4 address, a range a.b.c.d-e.f.g.h, or CIDR a.b.c.d/n")]
    Syntax,
    #[error("IPv6 is not supported in sip; give an IPv4 address or range")]
    Ipv6,
    #[error("the range's first address is after its last")]
    Reversed,
    #[error("a CIDR prefix length is 0 to 32")]
    Prefix,
}

impl IpRange {
    /// Parses `a.b.c.d`, `a.b.c.d-e.f.g.h` or `a.b.c.d/n`.
    pub fn parse(text: &str) -> Result<Self, IpRangeError> {
        let addr = |s: &str| -> Result<Ipv4Addr, IpRangeError> {
            if s.contains(':') {
                return Err(IpRangeError::Ipv6);
            }
            s.parse().map_err(|_| IpRangeError::Syntax)
        };
        if let Some((a, n)) = text.split_once('/') {
            let base = addr(a)?;
            let len: u32 = n.parse().map_err(|_| IpRangeError::Prefix)?;
            if len > 32 {
                return Err(IpRangeError::Prefix);
            }
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            let start = u32::from(base) & mask;
            return Ok(Self {
                start: start.into(),
                end: (start | !mask).into(),
            });
        }
        let (start, end) = match text.split_once('-') {
            Some((a, b)) => (addr(a)?, addr(b)?),
            None => {
                let a = addr(text)?;
                (a, a)
            }
        };
        if start > end {
            return Err(IpRangeError::Reversed);
        }
        Ok(Self { start, end })
    }

    /// True when `ip` is inside the range.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        self.start <= ip && ip <= self.end
    }

    /// How many addresses the range covers.
    pub fn len(self) -> u64 {
        u64::from(u32::from(self.end)) - u64::from(u32::from(self.start)) + 1
    }

    /// Always false: a range holds at least one address.
    pub fn is_empty(self) -> bool {
        false
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl fmt::Debug for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IpRange({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(IpRange::parse("10.0.0.1").unwrap().to_string(), "10.0.0.1");
        assert_eq!(
            IpRange::parse("10.0.0.1-10.0.0.255").unwrap().to_string(),
            "10.0.0.1-10.0.0.255"
        );
        let cidr = IpRange::parse("203.0.113.7/24").unwrap();
        assert_eq!(cidr.to_string(), "203.0.113.0-203.0.113.255");
        assert_eq!(cidr.len(), 256);
        assert!(cidr.contains("203.0.113.9".parse().unwrap()));
        assert!(!cidr.contains("203.0.114.0".parse().unwrap()));
        assert_eq!(IpRange::parse("0.0.0.0/0").unwrap().len(), 1 << 32);
        assert_eq!(IpRange::parse("1.2.3.4/32").unwrap().to_string(), "1.2.3.4");
    }

    #[test]
    fn refusals() {
        assert_eq!(IpRange::parse("::1"), Err(IpRangeError::Ipv6));
        assert_eq!(
            IpRange::parse("10.0.0.9-10.0.0.1"),
            Err(IpRangeError::Reversed)
        );
        assert_eq!(IpRange::parse("10.0.0.1/33"), Err(IpRangeError::Prefix));
        for bad in [
            "",
            "10.0.0",
            "10.0.0.1-",
            "a.b.c.d",
            "10.0.0.1 ",
            "010.0.0.1",
        ] {
            assert!(IpRange::parse(bad).is_err(), "{bad:?}");
        }
    }
}
