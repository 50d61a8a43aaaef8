//! Query encoding and SAS time formatting.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986 unreserved characters (`A-Z a-z 0-9 - _ . ~`) is percent-encoded, so
/// `+`, `/` and `=` in a signature and `:` in a time can never be misread by a form decoder.
pub(crate) const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// As [`QUERY_VALUE`], but `/` is kept: for blob names in a URL path.
pub(crate) const PATH: &AsciiSet = &QUERY_VALUE.remove(b'/');

/// Percent-encodes a query value.
pub fn encode_query_value(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// Percent-encodes a blob path (segments encoded, `/` kept).
pub fn encode_path(path: &str) -> String {
    utf8_percent_encode(path, PATH).to_string()
}

/// Formats a time as every SDK emits it: `YYYY-MM-DDThh:mm:ssZ` (seconds, fractions truncated).
pub fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses a SAS time in any of the forms Azure accepts: `YYYY-MM-DD`, `YYYY-MM-DDThh:mmZ`,
/// `YYYY-MM-DDThh:mm:ssZ` and `YYYY-MM-DDThh:mm:ss.fffffffZ`.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    let body = text.strip_suffix('Z')?;
    [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(body, f).ok())
    .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn encodes_like_rfc3986() {
        assert_eq!(encode_query_value("a+b/c=="), "a%2Bb%2Fc%3D%3D");
        assert_eq!(
            encode_query_value("2025-01-01T00:00:00Z"),
            "2025-01-01T00%3A00%3A00Z"
        );
        assert_eq!(encode_query_value("https,http"), "https%2Chttp");
        assert_eq!(encode_query_value("a b~_.-"), "a%20b~_.-");
        assert_eq!(encode_path("dir/my blob.txt"), "dir/my%20blob.txt");
        assert_eq!(encode_path("日"), "%E6%97%A5");
    }

    #[test]
    fn times() {
        let t = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            format_time(t + chrono::Duration::milliseconds(999)),
            "2025-01-01T00:00:00Z"
        );
        for s in [
            "2025-01-01",
            "2025-01-01T00:00Z",
            "2025-01-01T00:00:00Z",
            "2025-01-01T00:00:00.0000000Z",
        ] {
            assert_eq!(parse_time(s), Some(t), "{s}");
        }
        assert_eq!(parse_time("2025-01-01T00:00:00"), None);
        assert_eq!(parse_time("2025-01-01T00:00:00+01:00"), None);
        assert_eq!(parse_time("garbage"), None);
    }
}
