//! The name canonicalisers: `BlobName`, `ContainerName` and `AccountName`.
//!
//! Each parser is checked against an independent oracle written from the rules in DESIGN.md §4
//! and `src/sas/name.rs` (accepted exactly when the oracle says so), and every accepted blob name
//! must survive the trip through a SAS URL: encoded into a path the way the signer does, then read
//! back by the SAS parser, it names the same blob. A name that came back different would be a
//! prefix escape.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sasgate::sas::encode::encode_path;
use sasgate::sas::name::{
    AccountName, BlobName, ContainerName, MAX_BLOB_NAME_CHARS, MAX_BLOB_SEGMENTS,
};
use sasgate::sas::parse::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_blob(text);
    check_container(text);
    check_account(text);
    // Each line on its own too, so that one input exercises several names.
    for line in text.lines().take(16) {
        check_blob(line);
        check_container(line);
    }
});

/// A character XML 1.0 allows (the List Blobs response carries names in XML).
fn xml_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// The blob name rules, written independently of the parser.
fn blob_oracle(name: &str) -> bool {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_BLOB_NAME_CHARS {
        return false;
    }
    if name
        .chars()
        .any(|c| c == '\\' || c == '%' || c.is_control() || !xml_char(c) || c == '\u{FFFE}')
    {
        return false;
    }
    let segments: Vec<&str> = name.split('/').collect();
    segments.len() <= MAX_BLOB_SEGMENTS
        && segments
            .iter()
            .all(|s| !s.is_empty() && *s != "." && *s != ".." && !s.ends_with('.'))
}

fn check_blob(text: &str) {
    let parsed = BlobName::parse(text);
    assert_eq!(
        parsed.is_ok(),
        blob_oracle(text),
        "BlobName::parse disagrees with the rules for {text:?}: {parsed:?}"
    );
    let Ok(name) = parsed else { return };
    // Accepted means canonical: the text is kept as given and re-parses to itself.
    assert_eq!(name.as_str(), text);
    assert_eq!(name.to_string(), text);
    assert_eq!(BlobName::parse(name.as_str()).as_ref(), Ok(&name));
    assert_eq!(name.depth(), text.split('/').count());
    assert!(name.depth() <= MAX_BLOB_SEGMENTS);
    assert!(text.chars().all(xml_char));
    for segment in text.split('/') {
        assert!(!segment.is_empty() && segment != "." && segment != "..");
        assert!(!segment.ends_with('.'));
    }
    assert!(!text.contains(['\\', '%']));

    // Through a URL and back, in both endpoint styles: the same blob, nothing normalised away.
    let encoded = encode_path(text);
    assert!(encoded.is_ascii());
    assert!(!encoded.contains(['?', '#', '\\', ' ']));
    for (prefix, path_style) in [
        (
            "https://devstoreaccount1.blob.core.windows.net/data/",
            false,
        ),
        ("https://127.0.0.1:10000/devstoreaccount1/data/", true),
    ] {
        let url = format!("{prefix}{encoded}?sv=2026-06-06&sr=b&sp=r&sig=AAAA");
        let sas = parse(&url).unwrap_or_else(|e| panic!("{url:?} does not parse: {e}"));
        let loc = sas
            .location()
            .unwrap_or_else(|| panic!("{url:?}: no location"));
        assert_eq!(loc.path_style, path_style);
        assert_eq!(loc.account.as_deref(), Some("devstoreaccount1"));
        assert_eq!(loc.container.as_deref(), Some("data"));
        assert_eq!(
            loc.blob.as_deref(),
            Some(text),
            "the blob name did not survive the URL {url:?}"
        );
    }
}

/// The container name rules, written independently of the parser.
fn container_oracle(name: &str) -> bool {
    if matches!(name, "$root" | "$web" | "$logs") {
        return true;
    }
    let b = name.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (3..=63).contains(&b.len())
        && b.iter().all(|&c| alnum(c) || c == b'-')
        && b.first().copied().is_some_and(alnum)
        && b.last().copied().is_some_and(alnum)
        && !b.windows(2).any(|w| w == b"--")
}

fn check_container(text: &str) {
    let parsed = ContainerName::parse(text);
    assert_eq!(
        parsed.is_ok(),
        container_oracle(text),
        "ContainerName::parse disagrees with the rules for {text:?}: {parsed:?}"
    );
    let Ok(name) = parsed else { return };
    assert_eq!(name.as_str(), text);
    assert_eq!(ContainerName::parse(name.as_str()).as_ref(), Ok(&name));
    // A container name never needs encoding in a URL path, so no alias can reach Azure.
    assert_eq!(encode_path(text), text.replace('$', "%24"));
}

fn check_account(text: &str) {
    let parsed = AccountName::parse(text);
    let want = (3..=24).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    assert_eq!(parsed.is_ok(), want, "AccountName::parse for {text:?}");
    if let Ok(name) = parsed {
        assert_eq!(name.as_str(), text);
        assert_eq!(AccountName::parse(name.as_str()).as_ref(), Ok(&name));
    }
}
