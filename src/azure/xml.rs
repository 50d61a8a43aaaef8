//! The few XML documents the Blob service exchanges with us: written and read with quick-xml, every
//! value escaped on the way out and unescaped on the way in.

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::reader::Reader;

use super::client::SignedIdentifier;
use crate::sas::udk::UserDelegationKey;
use crate::secret::SigningKey;

/// A parsed element: its local name, its text (concatenated, unescaped) and its child elements.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// The first child with this name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child with this name.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the first child with this name, or `None` if it is absent or empty.
    pub fn child_text(&self, name: &str) -> Option<String> {
        self.child(name)
            .map(|c| c.text.clone())
            .filter(|t| !t.is_empty())
    }
}

/// Why a document could not be read. Carries no part of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct XmlError(pub String);

/// Parses a whole document into its root element. Whitespace-only text between elements is
/// dropped; text inside a leaf is kept exactly (after unescaping).
pub(crate) fn parse(body: &[u8]) -> Result<Element, XmlError> {
    // Azure prefixes some bodies with a UTF-8 byte order mark.
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let text = std::str::from_utf8(body).map_err(|_| XmlError("not UTF-8".into()))?;
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader.read_event().map_err(|e| {
            XmlError(format!(
                "malformed XML at byte {}: {e}",
                reader.error_position()
            ))
        })?;
        match event {
            Event::Start(start) => stack.push(Element {
                name: local_name(&start)?,
                ..Element::default()
            }),
            Event::Empty(start) => {
                let element = Element {
                    name: local_name(&start)?,
                    ..Element::default()
                };
                close(&mut stack, &mut root, element)?;
            }
            Event::End(_) => {
                let mut element = stack
                    .pop()
                    .ok_or_else(|| XmlError("unbalanced end tag".into()))?;
                if !element.children.is_empty() && element.text.trim().is_empty() {
                    element.text.clear();
                }
                close(&mut stack, &mut root, element)?;
            }
            Event::Text(t) => {
                let unescaped = t
                    .unescape()
                    .map_err(|e| XmlError(format!("bad text: {e}")))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&unescaped);
                }
            }
            Event::CData(c) => {
                let raw = String::from_utf8(c.into_inner().into_owned())
                    .map_err(|_| XmlError("CDATA is not UTF-8".into()))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&raw);
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(XmlError("document ended inside an element".into()));
    }
    root.ok_or_else(|| XmlError("no root element".into()))
}

fn local_name(start: &BytesStart<'_>) -> Result<String, XmlError> {
    String::from_utf8(start.local_name().as_ref().to_vec())
        .map_err(|_| XmlError("element name is not UTF-8".into()))
}

fn close(
    stack: &mut [Element],
    root: &mut Option<Element>,
    element: Element,
) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => {
            parent.children.push(element);
            Ok(())
        }
        None if root.is_none() => {
            *root = Some(element);
            Ok(())
        }
        None => Err(XmlError("more than one root element".into())),
    }
}

/// Writes `<?xml version="1.0" encoding="utf-8"?><Root>…</Root>` with `body` filling the root.
fn document(root: &str, body: impl FnOnce(&mut Writer<Vec<u8>>) -> std::io::Result<()>) -> Vec<u8> {
    let mut writer = Writer::new(Vec::new());
    // Writing into a Vec cannot fail; the errors are io::Error only by signature.
    let result = (|| -> std::io::Result<()> {
        writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))?;
        writer.write_event(Event::Start(BytesStart::new(root)))?;
        body(&mut writer)?;
        writer.write_event(Event::End(BytesEnd::new(root)))?;
        Ok(())
    })();
    debug_assert!(result.is_ok());
    writer.into_inner()
}

/// `<name>text</name>`, the text escaped.
fn leaf(writer: &mut Writer<Vec<u8>>, name: &str, text: &str) -> std::io::Result<()> {
    writer.write_event(Event::Start(BytesStart::new(name)))?;
    writer.write_event(Event::Text(BytesText::new(text)))?;
    writer.write_event(Event::End(BytesEnd::new(name)))?;
    Ok(())
}

/// The Set Container ACL body: `<SignedIdentifiers>` with one `<SignedIdentifier>` per policy.
/// Absent policy fields are left out.
pub(crate) fn signed_identifiers(identifiers: &[SignedIdentifier]) -> Vec<u8> {
    document("SignedIdentifiers", |w| {
        for si in identifiers {
            w.write_event(Event::Start(BytesStart::new("SignedIdentifier")))?;
            leaf(w, "Id", &si.id)?;
            w.write_event(Event::Start(BytesStart::new("AccessPolicy")))?;
            if let Some(start) = &si.start {
                leaf(w, "Start", start)?;
            }
            if let Some(expiry) = &si.expiry {
                leaf(w, "Expiry", expiry)?;
            }
            if let Some(permission) = &si.permission {
                leaf(w, "Permission", permission)?;
            }
            w.write_event(Event::End(BytesEnd::new("AccessPolicy")))?;
            w.write_event(Event::End(BytesEnd::new("SignedIdentifier")))?;
        }
        Ok(())
    })
}

/// Reads a Get Container ACL body. An empty body means no policies.
pub(crate) fn parse_signed_identifiers(body: &[u8]) -> Result<Vec<SignedIdentifier>, XmlError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let root = parse(body)?;
    if root.name != "SignedIdentifiers" {
        return Err(XmlError(format!(
            "expected <SignedIdentifiers>, found <{}>",
            root.name
        )));
    }
    root.children_named("SignedIdentifier")
        .map(|si| {
            let id = si
                .child("Id")
                .map(|e| e.text.clone())
                .ok_or_else(|| XmlError("a <SignedIdentifier> has no <Id>".into()))?;
            let policy = si.child("AccessPolicy");
            let field = |name: &str| policy.and_then(|p| p.child_text(name));
            Ok(SignedIdentifier {
                id,
                start: field("Start"),
                expiry: field("Expiry"),
                permission: field("Permission"),
            })
        })
        .collect()
}

/// A List Containers page: the names and the `NextMarker` (empty on the last page).
pub(crate) fn parse_container_list(body: &[u8]) -> Result<(Vec<String>, Option<String>), XmlError> {
    let root = parse(body)?;
    if root.name != "EnumerationResults" {
        return Err(XmlError(format!(
            "expected <EnumerationResults>, found <{}>",
            root.name
        )));
    }
    let names = root
        .child("Containers")
        .map(|c| {
            c.children_named("Container")
                .filter_map(|e| e.child_text("Name"))
                .collect()
        })
        .unwrap_or_default();
    Ok((names, root.child_text("NextMarker")))
}

/// The Get User Delegation Key body. Times are sent as given (callers pass
/// `YYYY-MM-DDThh:mm:ssZ`).
pub(crate) fn key_info(start: &str, expiry: &str) -> Vec<u8> {
    document("KeyInfo", |w| {
        leaf(w, "Start", start)?;
        leaf(w, "Expiry", expiry)
    })
}

/// Reads a Get User Delegation Key response. Text fields are kept verbatim; `Value` becomes a
/// [`SigningKey`]. Errors name the missing or bad field, never a value.
pub(crate) fn parse_user_delegation_key(body: &[u8]) -> Result<UserDelegationKey, XmlError> {
    let root = parse(body)?;
    if root.name != "UserDelegationKey" {
        return Err(XmlError(format!(
            "expected <UserDelegationKey>, found <{}>",
            root.name
        )));
    }
    let required = |name: &str| {
        root.child_text(name)
            .ok_or_else(|| XmlError(format!("<UserDelegationKey> has no <{name}>")))
    };
    let value = SigningKey::from_base64(&required("Value")?)
        .map_err(|e| XmlError(format!("<Value> is unusable: {e}")))?;
    Ok(UserDelegationKey {
        signed_oid: required("SignedOid")?,
        signed_tid: required("SignedTid")?,
        signed_start: required("SignedStart")?,
        signed_expiry: required("SignedExpiry")?,
        signed_service: required("SignedService")?,
        signed_version: required("SignedVersion")?,
        signed_delegated_user_tid: root.child_text("SignedDelegatedUserTid"),
        value,
    })
}

/// The `<Code>` of an Azure `<Error>` body, if the body is one.
pub(crate) fn error_code(body: &[u8]) -> Option<String> {
    let root = parse(body).ok()?;
    (root.name == "Error")
        .then(|| root.child_text("Code"))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn si(
        id: &str,
        start: Option<&str>,
        expiry: Option<&str>,
        perm: Option<&str>,
    ) -> SignedIdentifier {
        SignedIdentifier {
            id: id.into(),
            start: start.map(Into::into),
            expiry: expiry.map(Into::into),
            permission: perm.map(Into::into),
        }
    }

    #[test]
    fn writes_the_documented_signed_identifiers_shape() {
        let body = signed_identifiers(&[
            si(
                "p1",
                Some("2025-11-29T00:00:00Z"),
                Some("2025-11-30T00:00:00Z"),
                Some("rl"),
            ),
            si("p2", None, None, Some("r")),
        ]);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><SignedIdentifiers>\
             <SignedIdentifier><Id>p1</Id><AccessPolicy><Start>2025-11-29T00:00:00Z</Start>\
             <Expiry>2025-11-30T00:00:00Z</Expiry><Permission>rl</Permission></AccessPolicy></SignedIdentifier>\
             <SignedIdentifier><Id>p2</Id><AccessPolicy><Permission>r</Permission></AccessPolicy></SignedIdentifier>\
             </SignedIdentifiers>"
        );
        assert_eq!(
            String::from_utf8(signed_identifiers(&[])).unwrap(),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><SignedIdentifiers></SignedIdentifiers>"
        );
    }

    #[test]
    fn escapes_values_and_reads_them_back() {
        let tricky = si("a<b>&\"c'", None, None, Some("r"));
        let body = signed_identifiers(std::slice::from_ref(&tricky));
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(
            text.contains("<Id>a&lt;b&gt;&amp;&quot;c&apos;</Id>"),
            "{text}"
        );
        assert_eq!(parse_signed_identifiers(&body).unwrap(), vec![tricky]);
    }

    #[test]
    fn reads_a_service_response_with_bom_whitespace_and_empty_fields() {
        let body = "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<SignedIdentifiers>\n  \
            <SignedIdentifier>\n    <Id>MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=</Id>\n    <AccessPolicy>\n      \
            <Start>2009-09-28T08:49:37.0000000Z</Start>\n      <Expiry/>\n      <Permission>rwd</Permission>\n    \
            </AccessPolicy>\n  </SignedIdentifier>\n  <SignedIdentifier><Id>x</Id></SignedIdentifier>\n</SignedIdentifiers>";
        assert_eq!(
            parse_signed_identifiers(body.as_bytes()).unwrap(),
            vec![
                si(
                    "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=",
                    Some("2009-09-28T08:49:37.0000000Z"),
                    None,
                    Some("rwd")
                ),
                si("x", None, None, None),
            ]
        );
        assert_eq!(parse_signed_identifiers(b"").unwrap(), vec![]);
        assert_eq!(
            parse_signed_identifiers(b"<SignedIdentifiers />").unwrap(),
            vec![]
        );
    }

    #[test]
    fn rejects_malformed_or_foreign_documents() {
        assert!(parse_signed_identifiers(b"<SignedIdentifiers><SignedIdentifier>").is_err());
        assert!(parse_signed_identifiers(b"<Other/>").is_err());
        assert!(
            parse_signed_identifiers(b"<SignedIdentifiers><SignedIdentifier/></SignedIdentifiers>")
                .is_err()
        );
        assert!(parse(b"<a/><b/>").is_err());
    }

    #[test]
    fn key_info_body() {
        assert_eq!(
            String::from_utf8(key_info("2025-11-29T04:00:00Z", "2025-11-29T05:00:00Z")).unwrap(),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><KeyInfo><Start>2025-11-29T04:00:00Z</Start>\
             <Expiry>2025-11-29T05:00:00Z</Expiry></KeyInfo>"
        );
    }

    #[test]
    fn reads_a_user_delegation_key() {
        let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?><UserDelegationKey>\
            <SignedOid>oid-1</SignedOid><SignedTid>tid-1</SignedTid>\
            <SignedStart>2025-11-29T04:00:00Z</SignedStart><SignedExpiry>2025-11-29T05:00:00Z</SignedExpiry>\
            <SignedService>b</SignedService><SignedVersion>2025-11-05</SignedVersion>\
            <Value>c2VjcmV0LWtleS1ieXRlcw==</Value></UserDelegationKey>";
        let key = parse_user_delegation_key(body.as_bytes()).unwrap();
        assert_eq!(key.signed_oid, "oid-1");
        assert_eq!(key.signed_tid, "tid-1");
        assert_eq!(key.signed_start, "2025-11-29T04:00:00Z");
        assert_eq!(key.signed_expiry, "2025-11-29T05:00:00Z");
        assert_eq!(key.signed_service, "b");
        assert_eq!(key.signed_version, "2025-11-05");
        assert_eq!(key.signed_delegated_user_tid, None);
        assert_eq!(key.value.expose(), b"secret-key-bytes");

        let with_tid = body.replace(
            "<Value>",
            "<SignedDelegatedUserTid>tid-2</SignedDelegatedUserTid><Value>",
        );
        let key = parse_user_delegation_key(with_tid.as_bytes()).unwrap();
        assert_eq!(key.signed_delegated_user_tid.as_deref(), Some("tid-2"));
    }

    #[test]
    fn user_delegation_key_errors_never_echo_the_value() {
        let missing = "<UserDelegationKey><SignedOid>o</SignedOid><Value>c2VjcmV0</Value></UserDelegationKey>";
        let err = parse_user_delegation_key(missing.as_bytes()).unwrap_err();
        assert!(err.0.contains("SignedTid"), "{err:?}");
        assert!(!err.0.contains("c2VjcmV0"));
        let bad = "<UserDelegationKey><Value>not base64 secret!</Value></UserDelegationKey>";
        let err = parse_user_delegation_key(bad.as_bytes()).unwrap_err();
        assert!(!err.0.contains("secret"), "{err:?}");
    }

    #[test]
    fn error_code_from_an_error_body() {
        let body = b"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>ContainerNotFound</Code>\
            <Message>The specified container does not exist.\nRequestId:x</Message></Error>";
        assert_eq!(error_code(body).as_deref(), Some("ContainerNotFound"));
        assert_eq!(error_code(b"not xml"), None);
        assert_eq!(error_code(b"<Other><Code>X</Code></Other>"), None);
    }
}
