//! Signing Blob service SAS (account key) and user delegation SAS (user delegation key).
//!
//! The only inputs are a [`BlobSas`] (container always required: there is no account scope) and a
//! key. The signed fields are assembled once into a list of `(name, raw value)` pairs; the
//! string-to-sign is built from that list and the query string is emitted from it, so what is
//! signed is byte-identical to what is emitted. There is no function here, public or private, that
//! builds an account SAS.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::encode::{encode_path, encode_query_value, format_time, parse_time, push_query_value};
use super::ip::IpRange;
use super::name::{AccountName, BlobName, ContainerName};
use super::perms::{Permissions, Resource};
use super::sts::{self, StsFields};
use super::udk::UserDelegationKey;
use super::version::SasVersion;
use crate::secret::SigningKey;

/// What inside the container the SAS covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The whole container (`sr=c`).
    Container,
    /// One blob (`sr=b`).
    Blob(BlobName),
    /// One snapshot of a blob (`sr=bs`); the snapshot time as the service wrote it.
    Snapshot(BlobName, String),
    /// One version of a blob (`sr=bv`); the version id as the service wrote it.
    Version(BlobName, String),
    /// A directory subtree of a hierarchical-namespace account (`sr=d`, with `sdd`).
    Directory(BlobName),
}

impl Target {
    /// The `sr` resource kind.
    pub fn resource(&self) -> Resource {
        match self {
            Target::Container => Resource::Container,
            Target::Blob(_) => Resource::Blob,
            Target::Snapshot(..) => Resource::BlobSnapshot,
            Target::Version(..) => Resource::BlobVersion,
            Target::Directory(_) => Resource::Directory,
        }
    }

    /// The blob or directory path, if any.
    pub fn path(&self) -> Option<&BlobName> {
        match self {
            Target::Container => None,
            Target::Blob(b)
            | Target::Snapshot(b, _)
            | Target::Version(b, _)
            | Target::Directory(b) => Some(b),
        }
    }

    fn snapshot_slot(&self) -> &str {
        match self {
            Target::Snapshot(_, s) | Target::Version(_, s) => s,
            _ => "",
        }
    }
}

/// The `spr` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    /// `spr=https`: the default, and the only choice outside local tests.
    #[default]
    HttpsOnly,
    /// `spr=https,http`: for emulators on plain HTTP only.
    HttpsAndHttp,
}

impl Protocol {
    /// The `spr` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::HttpsOnly => "https",
            Protocol::HttpsAndHttp => "https,http",
        }
    }
}

/// Response header overrides (`rscc`, `rscd`, `rsce`, `rscl`, `rsct`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseOverrides {
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub content_type: Option<String>,
}

/// A SAS to sign. `permissions`, `start` and `expiry` may be left out only when a stored access
/// policy supplies them (see [`sign_service`]).
#[derive(Clone, Debug)]
pub struct BlobSas {
    pub account: AccountName,
    pub container: ContainerName,
    pub target: Target,
    pub permissions: Option<Permissions>,
    pub start: Option<DateTime<Utc>>,
    pub expiry: Option<DateTime<Utc>>,
    pub ip: Option<IpRange>,
    /// `None` leaves `spr` out (which Azure reads as HTTPS or HTTP); sasgate's own callers always
    /// set it.
    pub protocol: Option<Protocol>,
    pub encryption_scope: Option<String>,
    pub overrides: ResponseOverrides,
    pub version: SasVersion,
}

impl BlobSas {
    /// A read-only, HTTPS-only SAS for `target` with the default version and no optional fields.
    pub fn new(
        account: AccountName,
        container: ContainerName,
        target: Target,
        start: DateTime<Utc>,
        expiry: DateTime<Utc>,
    ) -> Self {
        Self {
            account,
            container,
            target,
            permissions: Some(Permissions::READ),
            start: Some(start),
            expiry: Some(expiry),
            ip: None,
            protocol: Some(Protocol::HttpsOnly),
            encryption_scope: None,
            overrides: ResponseOverrides::default(),
            version: SasVersion::DEFAULT,
        }
    }

    /// `/blob/<account>/<container>[/<path>]`, the canonicalised resource.
    pub fn canonical_resource(&self) -> String {
        canonical_resource(
            self.account.as_str(),
            self.container.as_str(),
            self.target.path().map(BlobName::as_str),
        )
    }
}

/// `/blob/<account>/<container>[/<path>]`: raw names, `/` kept, no encoding.
pub(crate) fn canonical_resource(account: &str, container: &str, path: Option<&str>) -> String {
    let mut cr = String::with_capacity(
        8 + account.len() + container.len() + path.map_or(0, |p| p.len() + 1),
    );
    cr.push_str("/blob/");
    cr.push_str(account);
    cr.push('/');
    cr.push_str(container);
    if let Some(p) = path {
        cr.push('/');
        cr.push_str(p);
    }
    cr
}

/// The fields only a user delegation SAS carries beyond the key's own.
#[derive(Clone, Debug, Default)]
pub struct DelegationFields {
    /// `saoid`: the Entra object id the key owner authorises (sv ≥ 2020-02-10).
    pub preauthorized_agent_object_id: Option<String>,
    /// `suoid`: the object id checked against POSIX ACLs on HNS accounts (sv ≥ 2020-02-10).
    pub agent_object_id: Option<String>,
    /// `scid`: correlates storage logs with the issuer's; sasgate puts the issuance id here
    /// (sv ≥ 2020-02-10).
    pub correlation_id: Option<String>,
    /// `sduoid`: makes the SAS user-bound (sv ≥ 2025-07-05).
    pub delegated_user_object_id: Option<String>,
    /// `srh`: request headers the request must carry with these values (sv ≥ 2026-04-06).
    pub request_headers: BTreeMap<String, String>,
    /// `srq`: query parameters the request must carry with these values (sv ≥ 2026-04-06).
    pub request_query_params: BTreeMap<String, String>,
}

/// Why a SAS could not be signed. Carries no key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("an expiry is required unless a stored access policy supplies it")]
    MissingExpiry,
    #[error("permissions are required unless a stored access policy supplies them")]
    MissingPermissions,
    #[error("the start must be before the expiry")]
    StartNotBeforeExpiry,
    #[error("{what} needs SAS version {needs} or later")]
    VersionTooOld {
        what: &'static str,
        needs: SasVersion,
    },
    #[error("the permissions do not fit the resource: {0}")]
    Permissions(#[from] super::perms::PermissionError),
    #[error("a stored access policy id is 1 to 64 characters of letters, digits, '-', '_' or '.'")]
    PolicyId,
    #[error("{0} may not contain control characters")]
    ControlCharacter(&'static str),
    #[error("{0} is not a valid snapshot time or version id")]
    SnapshotId(&'static str),
    #[error("signed header and query names are non-empty and contain no ',', ':' or spaces")]
    SignedName,
    #[error("the user delegation key's expiry is unreadable")]
    KeyExpiryUnreadable,
    #[error("the SAS would outlive its user delegation key")]
    OutlivesKey,
    #[error("the SAS would start before its user delegation key is valid")]
    StartsBeforeKey,
}

/// A signed SAS: the query parameters in emission order and the signature.
///
/// `Debug` hides the signature. The query string and URL are secrets: hand them to the caller,
/// never to a log.
#[derive(Clone)]
pub struct SasToken {
    params: Vec<(&'static str, String)>,
    signature: String,
    string_to_sign: String,
    /// Request selector for snapshots and versions (`snapshot=` / `versionid=`), not signed into
    /// the token by the SDKs but needed on the URL.
    selector: Option<(&'static str, String)>,
}

impl SasToken {
    /// The SAS query string, without `?`. A secret.
    pub fn query(&self) -> String {
        let len: usize = self.params.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        let mut out = String::with_capacity(len + 16 + self.signature.len() * 3 / 2);
        let sig = [("sig", self.signature.as_str())];
        for (k, v) in self.params.iter().map(|(k, v)| (*k, v.as_str())).chain(sig) {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(k);
            out.push('=');
            push_query_value(&mut out, v);
        }
        out
    }

    /// The full URL under `endpoint` (for example `https://acct.blob.core.windows.net` or the
    /// emulator's `https://127.0.0.1:10000/devstoreaccount1`), with the snapshot or version
    /// selector when there is one. A secret.
    pub fn url(
        &self,
        endpoint: &url::Url,
        container: &ContainerName,
        path: Option<&BlobName>,
    ) -> String {
        let mut out = endpoint.as_str().trim_end_matches('/').to_owned();
        out.push('/');
        out.push_str(container.as_str());
        if let Some(p) = path {
            out.push('/');
            out.push_str(&encode_path(p.as_str()));
        }
        out.push('?');
        if let Some((k, v)) = &self.selector {
            out.push_str(k);
            out.push('=');
            out.push_str(&encode_query_value(v));
            out.push('&');
        }
        out.push_str(&self.query());
        out
    }

    /// The raw base64 signature. A secret.
    pub fn signature(&self) -> &str {
        &self.signature
    }

    /// Lowercase hex SHA-256 of the raw signature text: what the ledger stores to find a leaked
    /// token again without keeping it.
    pub fn signature_sha256(&self) -> String {
        hex_sha256(self.signature.as_bytes())
    }

    /// The exact string that was signed (no secret in it).
    pub fn string_to_sign(&self) -> &str {
        &self.string_to_sign
    }

    /// A query parameter's raw (decoded) value, other than `sig`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Debug for SasToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SasToken")
            .field("params", &self.params)
            .field("sig", &"<redacted>")
            .finish()
    }
}

/// Lowercase hex SHA-256.
pub fn hex_sha256(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Signs a service SAS with an account key. With `stored_policy`, the SAS is bound to that stored
/// access policy on the container (`si`), and any of `permissions`, `start` and `expiry` left out
/// are taken from the policy.
pub fn sign_service(
    sas: &BlobSas,
    stored_policy: Option<&str>,
    key: &SigningKey,
) -> Result<SasToken, SignError> {
    if let Some(id) = stored_policy {
        check_policy_id(id)?;
    } else {
        if sas.expiry.is_none() {
            return Err(SignError::MissingExpiry);
        }
        if sas.permissions.is_none() {
            return Err(SignError::MissingPermissions);
        }
    }
    let common = Common::new(sas)?;
    let cr = sas.canonical_resource();
    let mut fields = common.fields(&cr);
    fields.si = stored_policy.unwrap_or("");
    let sts = fields.service(sas.version);
    let middle = stored_policy
        .map(|si| ("si", si.to_owned()))
        .into_iter()
        .collect();
    Ok(common.into_token(middle, sts, key))
}

/// Signs a user delegation SAS with a key from Get User Delegation Key. The SAS may not start
/// before the key or outlive it.
pub fn sign_user_delegation(
    sas: &BlobSas,
    extra: &DelegationFields,
    key: &UserDelegationKey,
) -> Result<SasToken, SignError> {
    let expiry = sas.expiry.ok_or(SignError::MissingExpiry)?;
    if sas.permissions.is_none() {
        return Err(SignError::MissingPermissions);
    }
    need(
        sas.version,
        SasVersion::V2018_11_09,
        "a user delegation SAS",
    )?;
    let key_expiry = parse_time(&key.signed_expiry).ok_or(SignError::KeyExpiryUnreadable)?;
    if expiry > key_expiry {
        return Err(SignError::OutlivesKey);
    }
    if let (Some(start), Some(key_start)) = (sas.start, parse_time(&key.signed_start))
        && start < key_start
    {
        return Err(SignError::StartsBeforeKey);
    }
    let v = sas.version;
    for (value, what, needs) in [
        (
            &extra.preauthorized_agent_object_id,
            "saoid",
            SasVersion::V2020_02_10,
        ),
        (&extra.agent_object_id, "suoid", SasVersion::V2020_02_10),
        (&extra.correlation_id, "scid", SasVersion::V2020_02_10),
        (
            &extra.delegated_user_object_id,
            "sduoid",
            SasVersion::V2025_07_05,
        ),
        (
            &key.signed_delegated_user_tid,
            "skdutid",
            SasVersion::V2025_07_05,
        ),
    ] {
        if let Some(value) = value {
            need(v, needs, what)?;
            no_control(value, what)?;
        }
    }
    if !extra.request_headers.is_empty() || !extra.request_query_params.is_empty() {
        need(v, SasVersion::V2026_04_06, "srh/srq")?;
    }
    for (name, value) in extra
        .request_headers
        .iter()
        .chain(&extra.request_query_params)
    {
        if name.is_empty() || name.contains([',', ':', ' ']) || name.chars().any(char::is_control) {
            return Err(SignError::SignedName);
        }
        no_control(value, "a signed header or query value")?;
    }
    for (value, what) in [
        (&key.signed_oid, "skoid"),
        (&key.signed_tid, "sktid"),
        (&key.signed_start, "skt"),
        (&key.signed_expiry, "ske"),
        (&key.signed_service, "sks"),
        (&key.signed_version, "skv"),
    ] {
        no_control(value, what)?;
    }

    let common = Common::new(sas)?;
    let cr = sas.canonical_resource();
    let srh_sts: String = extra
        .request_headers
        .iter()
        .map(|(k, v)| format!("{k}:{v}\n"))
        .collect();
    let srq_sts: String = extra
        .request_query_params
        .iter()
        .map(|(k, v)| format!("\n{k}:{v}"))
        .collect();
    let srh_names = names_list(&extra.request_headers);
    let srq_names = names_list(&extra.request_query_params);
    let opt = |o: &Option<String>| o.as_deref().unwrap_or("").to_owned();
    let (saoid, suoid, scid) = (
        opt(&extra.preauthorized_agent_object_id),
        opt(&extra.agent_object_id),
        opt(&extra.correlation_id),
    );
    let (skdutid, sduoid) = (
        opt(&key.signed_delegated_user_tid),
        opt(&extra.delegated_user_object_id),
    );
    let fields = StsFields {
        skoid: &key.signed_oid,
        sktid: &key.signed_tid,
        skt: &key.signed_start,
        ske: &key.signed_expiry,
        sks: &key.signed_service,
        skv: &key.signed_version,
        saoid: &saoid,
        suoid: &suoid,
        scid: &scid,
        skdutid: &skdutid,
        sduoid: &sduoid,
        srh: &srh_sts,
        srq: &srq_sts,
        ..common.fields(&cr)
    };
    let sts = fields.delegation(v).ok_or(SignError::VersionTooOld {
        what: "a user delegation SAS",
        needs: SasVersion::V2018_11_09,
    })?;
    let middle = vec![
        ("skoid", key.signed_oid.clone()),
        ("sktid", key.signed_tid.clone()),
        ("skt", key.signed_start.clone()),
        ("ske", key.signed_expiry.clone()),
        ("sks", key.signed_service.clone()),
        ("skv", key.signed_version.clone()),
        ("saoid", saoid),
        ("suoid", suoid),
        ("scid", scid),
        ("skdutid", skdutid),
        ("sduoid", sduoid),
        // srh/srq carry only the names; the values travel as headers and query parameters.
        ("srh", srh_names.unwrap_or_default()),
        ("srq", srq_names.unwrap_or_default()),
    ];
    Ok(common.into_token(middle, sts, &key.value))
}

/// `a,b,c`: the names of signed headers or query parameters, in the order they were signed.
fn names_list(map: &BTreeMap<String, String>) -> Option<String> {
    (!map.is_empty()).then(|| map.keys().cloned().collect::<Vec<_>>().join(","))
}

/// Validated text of every field shared by both SAS kinds.
struct Common {
    sp: String,
    st: String,
    se: String,
    sip: String,
    spr: String,
    sv: String,
    sr: &'static str,
    snapshot: String,
    ses: String,
    rs: [String; 5],
    sdd: Option<String>,
    selector: Option<(&'static str, String)>,
}

impl Common {
    fn new(sas: &BlobSas) -> Result<Self, SignError> {
        let resource = sas.target.resource();
        let v = sas.version;
        need(v, resource.min_version(), resource_name(resource))?;
        if let Some(p) = sas.permissions {
            p.check(resource)?;
            need(v, p.min_version(), "these permissions")?;
        }
        if let (Some(s), Some(e)) = (sas.start, sas.expiry)
            && s >= e
        {
            return Err(SignError::StartNotBeforeExpiry);
        }
        let snapshot = sas.target.snapshot_slot().to_owned();
        if !snapshot.is_empty()
            && !snapshot
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-:.".contains(c))
        {
            return Err(SignError::SnapshotId(
                if resource == Resource::BlobSnapshot {
                    "snapshot"
                } else {
                    "versionid"
                },
            ));
        }
        if let Some(scope) = &sas.encryption_scope {
            need(v, SasVersion::V2020_12_06, "an encryption scope (ses)")?;
            no_control(scope, "the encryption scope")?;
        }
        let o = &sas.overrides;
        let rs = [
            &o.cache_control,
            &o.content_disposition,
            &o.content_encoding,
            &o.content_language,
            &o.content_type,
        ];
        for (value, name) in rs.iter().zip(["rscc", "rscd", "rsce", "rscl", "rsct"]) {
            if let Some(value) = value {
                no_control(value, name)?;
            }
        }
        let text = |o: &Option<String>| o.clone().unwrap_or_default();
        let selector = match &sas.target {
            Target::Snapshot(_, s) => Some(("snapshot", s.clone())),
            Target::Version(_, s) => Some(("versionid", s.clone())),
            _ => None,
        };
        Ok(Self {
            sp: sas
                .permissions
                .map(Permissions::as_string)
                .unwrap_or_default(),
            st: sas.start.map(format_time).unwrap_or_default(),
            se: sas.expiry.map(format_time).unwrap_or_default(),
            sip: sas.ip.map(|i| i.to_string()).unwrap_or_default(),
            spr: sas
                .protocol
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            sv: v.as_string(),
            sr: resource.code(),
            snapshot,
            ses: text(&sas.encryption_scope),
            rs: rs.map(text),
            sdd: match &sas.target {
                Target::Directory(d) => Some(d.depth().to_string()),
                _ => None,
            },
            selector,
        })
    }

    fn fields<'a>(&'a self, cr: &'a str) -> StsFields<'a> {
        StsFields {
            sp: &self.sp,
            st: &self.st,
            se: &self.se,
            cr,
            sip: &self.sip,
            spr: &self.spr,
            sv: &self.sv,
            sr: self.sr,
            snapshot: &self.snapshot,
            ses: &self.ses,
            rscc: &self.rs[0],
            rscd: &self.rs[1],
            rsce: &self.rs[2],
            rscl: &self.rs[3],
            rsct: &self.rs[4],
            ..StsFields::default()
        }
    }

    /// Moves the fields into the query parameters, in emission order: version, resource, times,
    /// permissions and network first, then `middle` (the stored policy or the delegation
    /// fields), then encryption scope and response overrides. Empty values are left out.
    fn into_token(
        self,
        middle: Vec<(&'static str, String)>,
        sts: String,
        key: &SigningKey,
    ) -> SasToken {
        let mut p = Vec::with_capacity(10 + middle.len());
        p.push(("sv", self.sv));
        p.push(("sr", self.sr.to_owned()));
        let [rscc, rscd, rsce, rscl, rsct] = self.rs;
        let head = [
            ("sdd", self.sdd.unwrap_or_default()),
            ("st", self.st),
            ("se", self.se),
            ("sp", self.sp),
            ("sip", self.sip),
            ("spr", self.spr),
        ];
        let tail = [
            ("ses", self.ses),
            ("rscc", rscc),
            ("rscd", rscd),
            ("rsce", rsce),
            ("rscl", rscl),
            ("rsct", rsct),
        ];
        p.extend(
            head.into_iter()
                .chain(middle)
                .chain(tail)
                .filter(|(_, v)| !v.is_empty()),
        );
        SasToken {
            signature: sts::sign(key, &sts),
            string_to_sign: sts,
            params: p,
            selector: self.selector,
        }
    }
}

fn resource_name(r: Resource) -> &'static str {
    match r {
        Resource::Blob => "a blob SAS",
        Resource::Container => "a container SAS",
        Resource::BlobSnapshot => "a snapshot SAS (sr=bs)",
        Resource::BlobVersion => "a version SAS (sr=bv)",
        Resource::Directory => "a directory SAS (sr=d)",
    }
}

fn need(v: SasVersion, needs: SasVersion, what: &'static str) -> Result<(), SignError> {
    if v < needs {
        Err(SignError::VersionTooOld { what, needs })
    } else {
        Ok(())
    }
}

/// A newline in any signed value would shift the string-to-sign's lines, so control characters
/// are refused everywhere.
fn no_control(value: &str, what: &'static str) -> Result<(), SignError> {
    if value.chars().any(char::is_control) {
        Err(SignError::ControlCharacter(what))
    } else {
        Ok(())
    }
}

fn check_policy_id(id: &str) -> Result<(), SignError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok { Ok(()) } else { Err(SignError::PolicyId) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    fn base() -> BlobSas {
        let t = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        BlobSas::new(
            AccountName::parse("devstoreaccount1").unwrap(),
            ContainerName::parse("data").unwrap(),
            Target::Blob(BlobName::parse("a.bin").unwrap()),
            t,
            t + chrono::Duration::minutes(15),
        )
    }

    fn udk(expiry: &str) -> UserDelegationKey {
        UserDelegationKey {
            signed_oid: "o".into(),
            signed_tid: "t".into(),
            signed_start: "2024-12-31T00:00:00Z".into(),
            signed_expiry: expiry.into(),
            signed_service: "b".into(),
            signed_version: "2025-11-05".into(),
            signed_delegated_user_tid: None,
            value: SigningKey::from_base64("a2V5").unwrap(),
        }
    }

    #[test]
    fn defaults_are_least_privilege() {
        let key = SigningKey::from_base64(KEY).unwrap();
        let t = sign_service(&base(), None, &key).unwrap();
        assert_eq!(t.param("sp"), Some("r"));
        assert_eq!(t.param("spr"), Some("https"));
        assert_eq!(t.param("sr"), Some("b"));
        assert_eq!(t.param("sv"), Some("2026-06-06"));
        assert_eq!(t.param("st"), Some("2025-01-01T00:00:00Z"));
        assert!(t.param("ss").is_none() && t.param("srt").is_none());
        assert!(!format!("{t:?}").contains(t.signature()));
        assert_eq!(t.signature_sha256().len(), 64);
    }

    #[test]
    fn refusals_name_the_problem() {
        let key = SigningKey::from_base64(KEY).unwrap();
        let mut r = base();
        r.expiry = None;
        assert_eq!(
            sign_service(&r, None, &key).unwrap_err(),
            SignError::MissingExpiry
        );
        assert!(
            sign_service(&r, Some("pol-1"), &key).is_ok(),
            "a stored policy may supply se"
        );
        assert_eq!(
            sign_service(&base(), Some(&"x".repeat(65)), &key).unwrap_err(),
            SignError::PolicyId
        );
        assert_eq!(
            sign_service(&base(), Some("a b"), &key).unwrap_err(),
            SignError::PolicyId
        );

        let mut r = base();
        r.start = r.expiry;
        assert_eq!(
            sign_service(&r, None, &key).unwrap_err(),
            SignError::StartNotBeforeExpiry
        );

        let mut r = base();
        r.version = SasVersion::V2020_12_06;
        r.target = Target::Container;
        r.permissions = Some(Permissions::parse("rf", Resource::Container).unwrap());
        assert!(
            matches!(sign_service(&r, None, &key), Err(SignError::VersionTooOld { needs, .. }) if needs == SasVersion::V2021_04_10)
        );

        let mut r = base();
        r.permissions = Some(Permissions::parse("rf", Resource::Container).unwrap());
        assert!(
            matches!(sign_service(&r, None, &key), Err(SignError::Permissions(_))),
            "f is not a blob letter"
        );

        let mut r = base();
        r.overrides.content_disposition = Some("a\nb".into());
        assert_eq!(
            sign_service(&r, None, &key).unwrap_err(),
            SignError::ControlCharacter("rscd")
        );

        let mut r = base();
        r.version = SasVersion::parse_known("2018-03-28").unwrap();
        r.target = Target::Snapshot(BlobName::parse("a").unwrap(), "2025-01-01T00:00:00Z".into());
        assert!(matches!(
            sign_service(&r, None, &key),
            Err(SignError::VersionTooOld { .. })
        ));

        let mut r = base();
        r.target = Target::Snapshot(BlobName::parse("a").unwrap(), "x&sig=y".into());
        assert_eq!(
            sign_service(&r, None, &key).unwrap_err(),
            SignError::SnapshotId("snapshot")
        );
    }

    #[test]
    fn delegation_sas_is_bounded_by_its_key() {
        let extra = DelegationFields::default();
        assert!(sign_user_delegation(&base(), &extra, &udk("2025-01-01T01:00:00Z")).is_ok());
        assert_eq!(
            sign_user_delegation(&base(), &extra, &udk("2025-01-01T00:10:00Z")).unwrap_err(),
            SignError::OutlivesKey
        );
        assert_eq!(
            sign_user_delegation(&base(), &extra, &udk("soon")).unwrap_err(),
            SignError::KeyExpiryUnreadable
        );
        let mut early = base();
        early.start = Some(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap());
        assert_eq!(
            sign_user_delegation(&early, &extra, &udk("2025-01-01T01:00:00Z")).unwrap_err(),
            SignError::StartsBeforeKey
        );
        let mut headers = DelegationFields::default();
        headers
            .request_headers
            .insert("x-ms-blob-type:evil".into(), "v".into());
        assert_eq!(
            sign_user_delegation(&base(), &headers, &udk("2025-01-01T01:00:00Z")).unwrap_err(),
            SignError::SignedName
        );
        let mut old = base();
        old.version = SasVersion::V2020_12_06;
        let sduoid = DelegationFields {
            delegated_user_object_id: Some("u".into()),
            ..Default::default()
        };
        assert!(matches!(
            sign_user_delegation(&old, &sduoid, &udk("2025-01-01T01:00:00Z")),
            Err(SignError::VersionTooOld { what: "sduoid", .. })
        ));
    }
}
