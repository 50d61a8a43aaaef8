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
    let mut out = String::with_capacity(value.len() + 8);
    push_query_value(&mut out, value);
    out
}

/// Appends `value` percent-encoded as a query value: the same set as [`QUERY_VALUE`], written
/// byte by byte because this runs for every field of every token.
pub fn push_query_value(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        }
    }
}

/// Percent-encodes a blob path (segments encoded, `/` kept).
pub fn encode_path(path: &str) -> String {
    utf8_percent_encode(path, PATH).to_string()
}

/// Formats a time as every SDK emits it: `YYYY-MM-DDThh:mm:ssZ` (seconds, fractions truncated).
pub fn format_time(t: DateTime<Utc>) -> String {
    use chrono::{Datelike as _, Timelike as _};
    let t = t.naive_utc();
    let year = t.year();
    if !(0..=9999).contains(&year) {
        return t.and_utc().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    }
    // Written by hand: chrono's strftime interpreter costs more than the HMAC it serves.
    let mut out = String::with_capacity(20);
    let y = year as u32;
    push2(&mut out, y / 100);
    push2(&mut out, y % 100);
    for (sep, n) in [
        ('-', t.month()),
        ('-', t.day()),
        ('T', t.hour()),
        (':', t.minute()),
        (':', t.second()),
    ] {
        out.push(sep);
        push2(&mut out, n);
    }
    out.push('Z');
    out
}

/// Appends `n` (0–99) as two digits.
fn push2(out: &mut String, n: u32) {
    out.push(char::from(b'0' + (n / 10 % 10) as u8));
    out.push(char::from(b'0' + (n % 10) as u8));
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
        let all: String = (1u8..=127).map(char::from).chain("é日🎉".chars()).collect();
        assert_eq!(
            encode_query_value(&all),
            utf8_percent_encode(&all, QUERY_VALUE).to_string()
        );
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
