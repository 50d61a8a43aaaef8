//! Durations as policy files, config and requests write them: `90s`, `15m`, `1h`, `2d`, and, where
//! a request gives a TTL, a whole number of seconds.

use std::fmt;
use std::str::FromStr;

use chrono::Duration;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The longest duration [`parse_duration`] accepts (ten years), far above any TTL ceiling, so that
/// arithmetic on a parsed duration never overflows.
pub const MAX_PARSED_SECONDS: u64 = 10 * 365 * 86_400;

/// Why a duration was refused. The message says what to write instead and never echoes input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("expected a duration such as 90s, 15m, 1h or 2d, but the value is empty")]
    Empty,
    #[error(
        "expected a whole number followed by one unit, s, m, h or d (for example 90s, 15m, 1h, 2d)"
    )]
    Syntax,
    #[error("a duration must be greater than zero")]
    Zero,
    #[error("a duration may be at most 3650d")]
    TooLong,
}

/// Parses `<digits><unit>` with unit `s`, `m`, `h` or `d` (`90s`, `15m`, `1h`, `2d`).
///
/// A unit is required: in a file a bare `900` is ambiguous. Zero, signs, spaces, fractions and
/// compound forms (`1h30m`, write `90m`) are refused.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let Some(unit) = text.chars().last() else {
        return Err(DurationError::Empty);
    };
    let digits = &text[..text.len() - unit.len_utf8()];
    let per_unit: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => return Err(DurationError::Syntax),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DurationError::Syntax);
    }
    // More than 20 digits cannot fit a u64: too long, whatever the value.
    let count: u64 = digits.parse().map_err(|_| DurationError::TooLong)?;
    let seconds = count.checked_mul(per_unit).ok_or(DurationError::TooLong)?;
    duration_from_seconds(seconds)
}

/// A whole number of seconds as a duration, refusing zero and anything above
/// [`MAX_PARSED_SECONDS`].
pub fn duration_from_seconds(seconds: u64) -> Result<Duration, DurationError> {
    if seconds == 0 {
        return Err(DurationError::Zero);
    }
    if seconds > MAX_PARSED_SECONDS {
        return Err(DurationError::TooLong);
    }
    let seconds = i64::try_from(seconds).map_err(|_| DurationError::TooLong)?;
    Duration::try_seconds(seconds).ok_or(DurationError::TooLong)
}

/// Formats a duration in the largest unit that divides it exactly: 3600 s → `1h`, 5400 s → `90m`,
/// 7 days → `7d`, 95 s → `95s`. Sub-second parts are dropped.
pub fn format_duration(duration: Duration) -> String {
    let seconds = duration.num_seconds();
    let (sign, magnitude) = if seconds < 0 {
        ("-", seconds.unsigned_abs())
    } else {
        ("", seconds.unsigned_abs())
    };
    let (value, unit) = if magnitude == 0 {
        (0, 's')
    } else if magnitude % 86_400 == 0 {
        (magnitude / 86_400, 'd')
    } else if magnitude % 3_600 == 0 {
        (magnitude / 3_600, 'h')
    } else if magnitude % 60 == 0 {
        (magnitude / 60, 'm')
    } else {
        (magnitude, 's')
    };
    format!("{sign}{value}{unit}")
}

/// A TTL as a request gives it: a duration string (`"15m"`) or a whole number of seconds (`900`).
///
/// Deserializes from either form (JSON string or integer); [`FromStr`] accepts a duration or a
/// string of digits (seconds), as a command line would pass it. Serializes as a duration string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ttl(pub Duration);

impl Ttl {
    /// The duration.
    pub fn duration(self) -> Duration {
        self.0
    }
}

impl FromStr for Ttl {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            let seconds: u64 = text.parse().map_err(|_| DurationError::TooLong)?;
            return duration_from_seconds(seconds).map(Ttl);
        }
        parse_duration(text).map(Ttl)
    }
}

impl fmt::Display for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl Serialize for Ttl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Ttl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match RawDuration::deserialize(deserializer)? {
            RawDuration::Text(text) => parse_duration(&text).map(Ttl).map_err(de::Error::custom),
            RawDuration::Seconds(seconds) => u64::try_from(seconds)
                .map_err(|_| DurationError::Zero)
                .and_then(duration_from_seconds)
                .map(Ttl)
                .map_err(de::Error::custom),
        }
    }
}

/// A duration as written, before validation: text or an integer number of seconds. Policy files
/// keep it raw so that a bad value becomes one error among all the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RawDuration {
    Text(String),
    Seconds(i64),
}

impl RawDuration {
    pub(crate) fn to_duration(&self) -> Result<Duration, DurationError> {
        match self {
            RawDuration::Text(text) => parse_duration(text),
            RawDuration::Seconds(seconds) => u64::try_from(*seconds)
                .map_err(|_| DurationError::Zero)
                .and_then(duration_from_seconds),
        }
    }
}

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl Visitor<'_> for RawVisitor {
            type Value = RawDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"15m\" or a whole number of seconds")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
                Ok(RawDuration::Text(v.to_owned()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDuration, E> {
                Ok(RawDuration::Seconds(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDuration, E> {
                Ok(RawDuration::Seconds(i64::try_from(v).unwrap_or(i64::MAX)))
            }
        }
        deserializer.deserialize_any(RawVisitor)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::seconds(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::minutes(15)));
        assert_eq!(parse_duration("1h"), Ok(Duration::hours(1)));
        assert_eq!(parse_duration("2d"), Ok(Duration::days(2)));
        assert_eq!(parse_duration("015m"), Ok(Duration::minutes(15)));
    }

    #[test]
    fn refusals() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("0s"), Err(DurationError::Zero));
        for bad in [
            "15", "m", "1.5h", "-1h", "+1h", " 1h", "1h ", "1H", "1h30m", "1w", "1é",
        ] {
            assert_eq!(parse_duration(bad), Err(DurationError::Syntax), "{bad:?}");
        }
        assert_eq!(parse_duration("3651d"), Err(DurationError::TooLong));
        assert_eq!(
            parse_duration("99999999999999999999999d"),
            Err(DurationError::TooLong)
        );
        assert_eq!(
            parse_duration("18446744073709551615d"),
            Err(DurationError::TooLong)
        );
    }

    #[test]
    fn formatting() {
        assert_eq!(format_duration(Duration::hours(1)), "1h");
        assert_eq!(format_duration(Duration::minutes(90)), "90m");
        assert_eq!(format_duration(Duration::days(7)), "7d");
        assert_eq!(format_duration(Duration::seconds(95)), "95s");
        assert_eq!(format_duration(Duration::zero()), "0s");
        assert_eq!(format_duration(Duration::seconds(-60)), "-1m");
    }

    #[test]
    fn ttl_forms() {
        assert_eq!("900".parse::<Ttl>(), Ok(Ttl(Duration::minutes(15))));
        assert_eq!("15m".parse::<Ttl>(), Ok(Ttl(Duration::minutes(15))));
        assert_eq!("0".parse::<Ttl>(), Err(DurationError::Zero));
        let t: Ttl = serde_json::from_str("900").unwrap();
        assert_eq!(t.duration(), Duration::minutes(15));
        let t: Ttl = serde_json::from_str("\"1h\"").unwrap();
        assert_eq!(t.duration(), Duration::hours(1));
        assert!(serde_json::from_str::<Ttl>("-5").is_err());
        assert!(serde_json::from_str::<Ttl>("1.5").is_err());
        assert!(serde_json::from_str::<Ttl>("\"1x\"").is_err());
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"1h\"");
    }
}
