//! Shared Key authorization for Blob service requests: the `Authorization: SharedKey <account>:<sig>`
//! header, as documented in "Authorize with Shared Key" (learn.microsoft.com, REST API,
//! `authorize-with-shared-key`, the Blob/Queue/File layout for version 2009-09-19 and later).
//!
//! Everything here is a pure function of the request it is given, so the exact bytes signed can be
//! unit-tested. The caller must sign exactly the request it sends: the same method, the same URL
//! (path as sent, percent-encoding included) and the same headers, `Content-Length` included.
//!
//! ```text
//! StringToSign = VERB + "\n" + Content-Encoding + "\n" + Content-Language + "\n"
//!              + Content-Length (empty when 0) + "\n" + Content-MD5 + "\n" + Content-Type + "\n"
//!              + Date + "\n" + If-Modified-Since + "\n" + If-Match + "\n" + If-None-Match + "\n"
//!              + If-Unmodified-Since + "\n" + Range + "\n"
//!              + CanonicalizedHeaders + CanonicalizedResource
//! ```

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use reqwest::Method;
use reqwest::header::{self, HeaderMap, HeaderName};
use sha2::Sha256;
use url::Url;

use crate::secret::SigningKey;

/// The standard headers that occupy fixed lines of the string-to-sign, in order.
const FIXED_HEADERS: [HeaderName; 11] = [
    header::CONTENT_ENCODING,
    header::CONTENT_LANGUAGE,
    header::CONTENT_LENGTH,
    HeaderName::from_static("content-md5"),
    header::CONTENT_TYPE,
    header::DATE,
    header::IF_MODIFIED_SINCE,
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    header::IF_UNMODIFIED_SINCE,
    header::RANGE,
];

/// The `Authorization` header value for a request: `SharedKey <account>:<base64 HMAC-SHA256>`.
///
/// `headers` must be every header the request will carry (names are case-insensitive in a
/// [`HeaderMap`]), including `Content-Length` whenever the request has a body and `x-ms-date`.
/// The result is a bearer credential for this one request for ~15 minutes: treat it as a secret
/// (mark the header value sensitive, never log it).
pub fn authorization(
    account: &str,
    key: &SigningKey,
    method: &Method,
    url: &Url,
    headers: &HeaderMap,
) -> String {
    let signature = sign(key, &string_to_sign(account, method, url, headers));
    format!("SharedKey {account}:{signature}")
}

/// Base64 of HMAC-SHA256 of `string_to_sign` under `key`.
pub fn sign(key: &SigningKey, string_to_sign: &str) -> String {
    // HMAC accepts keys of any length, so this never fails; the fallback keeps the code panic-free.
    match Hmac::<Sha256>::new_from_slice(key.expose()) {
        Ok(mut mac) => {
            mac.update(string_to_sign.as_bytes());
            STANDARD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// The full string-to-sign for a Blob service request.
pub fn string_to_sign(account: &str, method: &Method, url: &Url, headers: &HeaderMap) -> String {
    let mut out = String::new();
    out.push_str(method.as_str());
    out.push('\n');
    for name in &FIXED_HEADERS {
        let value = header_value(headers, name);
        // Since version 2015-02-21 a zero Content-Length is signed as an empty line.
        if *name == header::CONTENT_LENGTH && value == "0" {
            out.push('\n');
            continue;
        }
        out.push_str(&value);
        out.push('\n');
    }
    out.push_str(&canonicalized_headers(headers));
    out.push_str(&canonicalized_resource(account, url));
    out
}

/// The CanonicalizedHeaders part: every `x-ms-*` header, name lowercased, sorted by name (byte
/// order), value trimmed, as `name:value\n`. A header sent several times is joined with `,`.
///
/// Azurite sorts with JavaScript's `localeCompare`, which can disagree with byte order only for
/// names that differ in punctuation alone; no header this crate sends is in that case.
pub fn canonicalized_headers(headers: &HeaderMap) -> String {
    let mut sorted: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        // `HeaderName` is always lowercase.
        if name.as_str().starts_with("x-ms-") {
            sorted
                .entry(name.as_str())
                .or_default()
                .push(String::from_utf8_lossy(value.as_bytes()).trim().to_owned());
        }
    }
    let mut out = String::new();
    for (name, values) in sorted {
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out
}

/// The CanonicalizedResource part: `/<account><encoded URL path>`, then for each query parameter,
/// sorted by lowercased name, `\n<name>:<decoded values, sorted, comma-joined>`.
///
/// The path is the URL's path exactly as sent. For an emulator's path-style endpoint
/// (`https://127.0.0.1:10000/devstoreaccount1`) the path already starts with the account, so the
/// account appears twice: `/devstoreaccount1/devstoreaccount1/container/blob`. That is what
/// Azurite computes (`BlobSharedKeyAuthenticator.getCanonicalizedResourceString`: `/${account}` +
/// the request path).
pub fn canonicalized_resource(account: &str, url: &Url) -> String {
    let mut out = format!("/{account}{}", url.path());
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in url.query_pairs() {
        params
            .entry(name.to_lowercase())
            .or_default()
            .push(value.into_owned());
    }
    for (name, mut values) in params {
        values.sort();
        out.push('\n');
        out.push_str(&name);
        out.push(':');
        out.push_str(&values.join(","));
    }
    out
}

/// A standard header's value for its fixed line: empty when absent, joined with `,` when repeated.
fn header_value(headers: &HeaderMap, name: &HeaderName) -> String {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
        .collect();
    values.join(",")
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    const DEV_ACCOUNT: &str = "devstoreaccount1";
    const DEV_KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    fn dev_key() -> SigningKey {
        SigningKey::from_base64(DEV_KEY).unwrap()
    }

    /// The example in "Authorize with Shared Key", section "Blob, Queue, and File services
    /// (Shared Key authorization)": a Get Container Metadata request with a timeout.
    #[test]
    fn string_to_sign_matches_the_documented_example() {
        let h = headers(&[
            ("x-ms-date", "Fri, 26 Jun 2015 23:39:12 GMT"),
            ("x-ms-version", "2015-02-21"),
        ]);
        let u = url(
            "https://myaccount.blob.core.windows.net/mycontainer?restype=container&comp=metadata&timeout=20",
        );
        assert_eq!(
            string_to_sign("myaccount", &Method::GET, &u, &h),
            "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\nx-ms-version:2015-02-21\n/myaccount/mycontainer\ncomp:metadata\nrestype:container\ntimeout:20"
        );
    }

    /// Vector computed by Azurite 3.37.0's own verifier: `BlobSharedKeyAuthenticator.validate()`
    /// (node_modules/azurite/dist/src/blob/authentication/BlobSharedKeyAuthenticator.js) was run
    /// on this exact request, path-style, with the dev account key; it logged this string-to-sign
    /// and this header value as the one it accepts.
    #[test]
    fn put_blob_vector_from_azurite() {
        let h = headers(&[
            ("content-length", "11"),
            ("content-type", "text/plain; charset=utf-8"),
            ("x-ms-blob-type", "BlockBlob"),
            ("x-ms-date", "Sat, 29 Nov 2025 04:00:00 GMT"),
            ("x-ms-version", "2025-11-05"),
        ]);
        let u = url("https://127.0.0.1:10000/devstoreaccount1/data/models/a%20b%2B%C3%A9.bin");
        let sts = string_to_sign(DEV_ACCOUNT, &Method::PUT, &u, &h);
        assert_eq!(
            sts,
            "PUT\n\n\n11\n\ntext/plain; charset=utf-8\n\n\n\n\n\n\nx-ms-blob-type:BlockBlob\nx-ms-date:Sat, 29 Nov 2025 04:00:00 GMT\nx-ms-version:2025-11-05\n/devstoreaccount1/devstoreaccount1/data/models/a%20b%2B%C3%A9.bin"
        );
        assert_eq!(
            authorization(DEV_ACCOUNT, &dev_key(), &Method::PUT, &u, &h),
            "SharedKey devstoreaccount1:2w12rgkp6Yz3kROuTFwyRKiJc0tZiucj3RX82beQgBY="
        );
    }

    /// Vector computed by Azurite 3.37.0's verifier as above: Set Container ACL with a condition
    /// and the public-access header, zero-length body omitted (so an empty Content-Length line).
    #[test]
    fn set_acl_vector_from_azurite() {
        let h = headers(&[
            ("content-length", "0"),
            ("if-match", "\"0x8DC0FFEE\""),
            ("x-ms-blob-public-access", "blob"),
            ("x-ms-date", "Sat, 29 Nov 2025 04:00:00 GMT"),
            ("x-ms-version", "2025-11-05"),
        ]);
        let u = url("https://127.0.0.1:10000/devstoreaccount1/data?restype=container&comp=acl");
        let sts = string_to_sign(DEV_ACCOUNT, &Method::PUT, &u, &h);
        assert_eq!(
            sts,
            "PUT\n\n\n\n\n\n\n\n\"0x8DC0FFEE\"\n\n\n\nx-ms-blob-public-access:blob\nx-ms-date:Sat, 29 Nov 2025 04:00:00 GMT\nx-ms-version:2025-11-05\n/devstoreaccount1/devstoreaccount1/data\ncomp:acl\nrestype:container"
        );
        assert_eq!(
            authorization(DEV_ACCOUNT, &dev_key(), &Method::PUT, &u, &h),
            "SharedKey devstoreaccount1:EP5HcjPtZk2c99nAKUHTTAnhuOfRprAyVnIJFMqRu9U="
        );
    }

    #[test]
    fn fixed_lines_are_in_documented_order() {
        let h = headers(&[
            ("content-encoding", "gzip"),
            ("content-language", "en"),
            ("content-length", "5"),
            ("content-md5", "md5"),
            ("content-type", "ct"),
            ("date", "d"),
            ("if-modified-since", "ims"),
            ("if-match", "im"),
            ("if-none-match", "inm"),
            ("if-unmodified-since", "ius"),
            ("range", "bytes=0-1"),
        ]);
        let u = url("https://a.blob.core.windows.net/c/b");
        assert_eq!(
            string_to_sign("a", &Method::GET, &u, &h),
            "GET\ngzip\nen\n5\nmd5\nct\nd\nims\nim\ninm\nius\nbytes=0-1\n/a/c/b"
        );
    }

    #[test]
    fn zero_content_length_is_an_empty_line_but_other_lengths_are_kept() {
        let u = url("https://a.blob.core.windows.net/c?restype=container");
        let zero = string_to_sign("a", &Method::PUT, &u, &headers(&[("content-length", "0")]));
        assert!(zero.starts_with("PUT\n\n\n\n\n"));
        let ten = string_to_sign("a", &Method::PUT, &u, &headers(&[("content-length", "10")]));
        assert!(ten.starts_with("PUT\n\n\n10\n\n"));
    }

    #[test]
    fn canonical_headers_are_lowercased_sorted_trimmed_and_only_x_ms() {
        let mut h = HeaderMap::new();
        h.insert("X-MS-Version", HeaderValue::from_static("2025-11-05"));
        h.insert(
            "x-ms-date",
            HeaderValue::from_static("  Sat, 29 Nov 2025 04:00:00 GMT "),
        );
        h.insert("x-ms-blob-type", HeaderValue::from_static("BlockBlob"));
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        h.insert("x-msnot", HeaderValue::from_static("ignored"));
        h.append("x-ms-meta-m", HeaderValue::from_static("1"));
        h.append("x-ms-meta-m", HeaderValue::from_static("2"));
        assert_eq!(
            canonicalized_headers(&h),
            "x-ms-blob-type:BlockBlob\nx-ms-date:Sat, 29 Nov 2025 04:00:00 GMT\nx-ms-meta-m:1,2\nx-ms-version:2025-11-05\n"
        );
        assert_eq!(canonicalized_headers(&HeaderMap::new()), "");
    }

    #[test]
    fn canonical_resource_for_the_account_root_keeps_the_slash() {
        // Documented example: GET https://myaccount.blob.core.windows.net/?comp=list
        let u = url("https://myaccount.blob.core.windows.net/?comp=list");
        assert_eq!(
            canonicalized_resource("myaccount", &u),
            "/myaccount/\ncomp:list"
        );
        let u = url("https://myaccount.blob.core.windows.net");
        assert_eq!(canonicalized_resource("myaccount", &u), "/myaccount/");
    }

    #[test]
    fn canonical_resource_sorts_lowercases_decodes_and_joins_repeated_params() {
        // Documented example: a List Blobs request with repeated `include`.
        let u = url(
            "https://myaccount.blob.core.windows.net/mycontainer?restype=container&comp=list&include=snapshots&include=metadata&include=uncommittedblobs",
        );
        assert_eq!(
            canonicalized_resource("myaccount", &u),
            "/myaccount/mycontainer\ncomp:list\ninclude:metadata,snapshots,uncommittedblobs\nrestype:container"
        );
        let u = url("https://a.blob.core.windows.net/c/b?Prefix=x%2Fy+z&COMP=list");
        assert_eq!(
            canonicalized_resource("a", &u),
            "/a/c/b\ncomp:list\nprefix:x/y z"
        );
    }

    #[test]
    fn canonical_resource_keeps_the_path_encoded_and_the_emulator_account_twice() {
        let u = url("https://127.0.0.1:10000/devstoreaccount1/c/dir/a%20b.txt");
        assert_eq!(
            canonicalized_resource(DEV_ACCOUNT, &u),
            "/devstoreaccount1/devstoreaccount1/c/dir/a%20b.txt"
        );
    }

    #[test]
    fn signature_depends_on_every_part() {
        let key = dev_key();
        let u = url("https://127.0.0.1:10000/devstoreaccount1/c/b");
        let h = headers(&[("x-ms-date", "Sat, 29 Nov 2025 04:00:00 GMT")]);
        let base = authorization(DEV_ACCOUNT, &key, &Method::GET, &u, &h);
        assert_ne!(
            base,
            authorization(DEV_ACCOUNT, &key, &Method::HEAD, &u, &h)
        );
        let other = url("https://127.0.0.1:10000/devstoreaccount1/c/b2");
        assert_ne!(
            base,
            authorization(DEV_ACCOUNT, &key, &Method::GET, &other, &h)
        );
        let h2 = headers(&[("x-ms-date", "Sat, 29 Nov 2025 04:00:01 GMT")]);
        assert_ne!(
            base,
            authorization(DEV_ACCOUNT, &key, &Method::GET, &u, &h2)
        );
        let other_key = SigningKey::from_base64("AAAA").unwrap();
        assert_ne!(
            base,
            authorization(DEV_ACCOUNT, &other_key, &Method::GET, &u, &h)
        );
        assert!(base.starts_with("SharedKey devstoreaccount1:"));
    }
}
