//! String-to-sign assembly, shared by signing and verification so that both read the same bytes.
//!
//! Every field is the raw (decoded) text that also goes, percent-encoded, into the query string.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::version::{DelegationLayout, SasVersion, ServiceLayout};
use crate::secret::SigningKey;

/// The raw text of every signed slot of a Blob service or user delegation SAS. Absent fields are
/// empty strings; the layout chosen by `sv` decides which slots appear.
#[derive(Default, Clone, Copy)]
pub(crate) struct StsFields<'a> {
    pub sp: &'a str,
    pub st: &'a str,
    pub se: &'a str,
    /// Canonicalised resource, `/blob/<account>/<container>[/<blob>]`.
    pub cr: &'a str,
    pub si: &'a str,
    pub sip: &'a str,
    pub spr: &'a str,
    pub sv: &'a str,
    pub sr: &'a str,
    /// The snapshot time (`sr=bs`) or version id (`sr=bv`).
    pub snapshot: &'a str,
    pub ses: &'a str,
    pub rscc: &'a str,
    pub rscd: &'a str,
    pub rsce: &'a str,
    pub rscl: &'a str,
    pub rsct: &'a str,
    pub skoid: &'a str,
    pub sktid: &'a str,
    pub skt: &'a str,
    pub ske: &'a str,
    pub sks: &'a str,
    pub skv: &'a str,
    pub saoid: &'a str,
    pub suoid: &'a str,
    pub scid: &'a str,
    pub skdutid: &'a str,
    pub sduoid: &'a str,
    /// `name:value\n` per signed request header.
    pub srh: &'a str,
    /// `\nname:value` per signed query parameter.
    pub srq: &'a str,
}

impl StsFields<'_> {
    /// Layouts A/B/C of AZURE-SAS.md §2.3.
    pub fn service(&self, version: SasVersion) -> String {
        let layout = version.service_layout();
        let head = [
            self.sp, self.st, self.se, self.cr, self.si, self.sip, self.spr, self.sv,
        ];
        let snapshot = [self.sr, self.snapshot];
        let ses = [self.ses];
        let overrides = [self.rscc, self.rscd, self.rsce, self.rscl, self.rsct];
        let fields = head
            .iter()
            .chain(snapshot.iter().filter(|_| layout >= ServiceLayout::B15))
            .chain(ses.iter().filter(|_| layout >= ServiceLayout::C16))
            .chain(overrides.iter());
        join_lines(fields)
    }

    /// Layouts U1–U5 of AZURE-SAS.md §3.3; `None` before 2018-11-09.
    pub fn delegation(&self, version: SasVersion) -> Option<String> {
        let layout = version.delegation_layout()?;
        let mut f: Vec<&str> = vec![
            self.sp, self.st, self.se, self.cr, self.skoid, self.sktid, self.skt, self.ske,
            self.sks, self.skv,
        ];
        if layout >= DelegationLayout::U2 {
            f.extend([self.saoid, self.suoid, self.scid]);
        }
        if layout >= DelegationLayout::U4 {
            f.extend([self.skdutid, self.sduoid]);
        }
        f.extend([self.sip, self.spr, self.sv, self.sr, self.snapshot]);
        if layout >= DelegationLayout::U3 {
            f.push(self.ses);
        }
        if layout >= DelegationLayout::U5 {
            f.extend([self.srh, self.srq]);
        }
        f.extend([self.rscc, self.rscd, self.rsce, self.rscl, self.rsct]);
        Some(join_lines(f.iter()))
    }
}

/// Joins with `\n` into one buffer sized up front.
fn join_lines<'a>(fields: impl Iterator<Item = &'a &'a str> + Clone) -> String {
    let len = fields.clone().map(|f| f.len() + 1).sum();
    let mut out = String::with_capacity(len);
    for (i, f) in fields.enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(f);
    }
    out
}

fn mac(key: &SigningKey, message: &str) -> Hmac<Sha256> {
    let mut mac = key.mac();
    mac.update(message.as_bytes());
    mac
}

/// `Base64(HMAC-SHA256(key, UTF-8(message)))`.
pub(crate) fn sign(key: &SigningKey, message: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(mac(key, message).finalize().into_bytes())
}

/// Constant-time check that `signature` (raw base64) is the HMAC of `message`. Returns only a
/// verdict, never the expected signature.
pub(crate) fn verify(key: &SigningKey, message: &str, signature: &str) -> bool {
    use base64::Engine as _;
    match base64::engine::general_purpose::STANDARD.decode(signature) {
        Ok(bytes) => mac(key, message).verify_slice(&bytes).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AZURE-SAS.md §12: every layout has exactly its documented number of lines, so a field
    /// added or dropped anywhere fails here before it fails at Azure.
    #[test]
    fn every_layout_has_its_documented_field_count() {
        let f = StsFields::default();
        let count = |s: String| s.split('\n').count();
        for (v, n) in [
            ("2015-04-05", 13),
            ("2018-03-28", 13),
            ("2018-11-09", 15),
            ("2020-10-02", 15),
            ("2020-12-06", 16),
            ("2026-10-06", 16),
        ] {
            assert_eq!(
                count(f.service(SasVersion::parse_any(v).unwrap())),
                n,
                "service {v}"
            );
        }
        for (v, n) in [
            ("2018-11-09", 20),
            ("2020-02-10", 23),
            ("2020-12-06", 24),
            ("2025-05-05", 24),
            ("2025-07-05", 26),
            ("2026-02-06", 26),
            ("2026-04-06", 28),
            ("2026-10-06", 28),
        ] {
            assert_eq!(
                count(f.delegation(SasVersion::parse_any(v).unwrap()).unwrap()),
                n,
                "delegation {v}"
            );
        }
        assert!(
            f.delegation(SasVersion::parse_any("2018-03-28").unwrap())
                .is_none()
        );
    }

    #[test]
    fn verify_is_exact() {
        let key = SigningKey::from_base64("a2V5").unwrap();
        let sig = sign(&key, "message");
        assert!(verify(&key, "message", &sig));
        assert!(!verify(&key, "message\n", &sig));
        assert!(!verify(&key, "message", "not base64!"));
        assert!(!verify(
            &SigningKey::from_base64("a2V6").unwrap(),
            "message",
            &sig
        ));
    }
}
