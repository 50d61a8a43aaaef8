//! The validated rule model: what a `[[rule]]` table becomes once it has passed every load check.

use std::fmt;
use std::net::Ipv4Addr;

use chrono::Duration;
use globset::{Glob, GlobBuilder, GlobMatcher};

use crate::ledger::RevocationMode;
use crate::sas::ip::IpRange;
use crate::sas::name::{BlobName, ContainerName};
use crate::sas::perms::{Permissions, Resource};

/// Who a rule is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Principal {
    /// `user:NAME`: the authenticated principal's name.
    User(String),
    /// `role:NAME`: any principal holding the role.
    Role(String),
    /// `oidc:ISSUER`: a JWT from that issuer whose claims match the rule's `[rule.claims]`.
    Oidc(String),
}

impl Principal {
    /// Parses `user:NAME`, `role:NAME` or `oidc:ISSUER`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some((kind, name)) = text.split_once(':') else {
            return Err(
                "a principal is written user:NAME, role:NAME or oidc:ISSUER (the prefix is missing)"
                    .to_owned(),
            );
        };
        if name.is_empty() {
            return Err(format!("the name after '{kind}:' is empty"));
        }
        if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "the name after '{kind}:' contains whitespace or control characters"
            ));
        }
        match kind {
            "user" => Ok(Principal::User(name.to_owned())),
            "role" => Ok(Principal::Role(name.to_owned())),
            "oidc" => Ok(Principal::Oidc(name.to_owned())),
            _ => Err(format!(
                "unknown principal kind '{kind}'; use user:NAME, role:NAME or oidc:ISSUER"
            )),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::User(n) => write!(f, "user:{n}"),
            Principal::Role(n) => write!(f, "role:{n}"),
            Principal::Oidc(n) => write!(f, "oidc:{n}"),
        }
    }
}

/// What a SAS may cover under a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One blob (`sr=b`).
    Blob,
    /// A whole container (`sr=c`).
    Container,
}

impl Scope {
    /// The text form used in policy files.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Blob => "blob",
            Scope::Container => "container",
        }
    }

    /// The signed resource this scope produces.
    pub fn resource(self) -> Resource {
        match self {
            Scope::Blob => Resource::Blob,
            Scope::Container => Resource::Container,
        }
    }
}

/// True when `text` uses glob syntax rather than naming something exactly.
pub(crate) fn is_glob(text: &str) -> bool {
    text.contains(['*', '?', '[', ']', '{', '}', '\\'])
}

/// Builds a glob where `*` and `?` do not cross `/`, `**` does, and `\` escapes, identically on
/// every platform.
pub(crate) fn build_glob(pattern: &str) -> Result<Glob, String> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| e.kind().to_string())
}

/// A name pattern: an exact name or a compiled glob.
#[derive(Clone, Debug)]
pub(crate) enum Pattern {
    Exact(String),
    Glob { text: String, matcher: GlobMatcher },
}

impl Pattern {
    pub(crate) fn text(&self) -> &str {
        match self {
            Pattern::Exact(text) | Pattern::Glob { text, .. } => text,
        }
    }

    pub(crate) fn matches(&self, candidate: &str) -> bool {
        match self {
            Pattern::Exact(text) => text == candidate,
            Pattern::Glob { matcher, .. } => matcher.is_match(candidate),
        }
    }

    /// A claim value: exact unless it uses glob syntax.
    pub(crate) fn claim(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("a claim value must not be empty".to_owned());
        }
        if !is_glob(text) {
            return Ok(Pattern::Exact(text.to_owned()));
        }
        let glob = build_glob(text).map_err(|e| format!("invalid glob '{text}': {e}"))?;
        Ok(Pattern::Glob {
            text: text.to_owned(),
            matcher: glob.compile_matcher(),
        })
    }

    /// A container name or glob. A glob uses only `*` and `?` and needs a literal character, so
    /// that it can never match every container (which would be account scope).
    pub(crate) fn container(text: &str) -> Result<Self, String> {
        if !is_glob(text) {
            return ContainerName::parse(text)
                .map(|name| Pattern::Exact(name.as_str().to_owned()))
                .map_err(|e| format!("'{text}' is not a valid container name: {e}"));
        }
        // Only `*` and `?` as wildcards: character classes and alternation make "does this
        // match every container?" hard to decide (`[]a-z0-9]*` looks literal but is not), so
        // they are refused outright.
        if !text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '*' | '?'))
        {
            return Err(format!(
                "'{text}': container globs use only lowercase letters, digits, '-' and the wildcards * and ?"
            ));
        }
        if !text
            .chars()
            .any(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(format!(
                "'{text}' would match every container, which is account scope and never granted; give a prefix or other literal part, such as 'ci-*'"
            ));
        }
        let glob = build_glob(text).map_err(|e| format!("invalid glob '{text}': {e}"))?;
        Ok(Pattern::Glob {
            text: text.to_owned(),
            matcher: glob.compile_matcher(),
        })
    }

    /// A blob name or glob over canonical blob names.
    pub(crate) fn blob(text: &str) -> Result<Self, String> {
        if !is_glob(text) {
            return BlobName::parse(text)
                .map(|name| Pattern::Exact(name.as_str().to_owned()))
                .map_err(|e| {
                    format!("'{text}' is not a canonical blob name and could never match: {e}")
                });
        }
        if text.contains(['[', ']', '{', '}']) {
            return Err(format!(
                "'{text}': blob globs use only *, ** and ?; character classes and alternation are not supported (a negated class could match '/')"
            ));
        }
        if text
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..")
        {
            return Err(format!(
                "'{text}' has an empty, '.' or '..' path segment (or a leading or trailing '/'), which no canonical blob name has; write the glob as names appear, e.g. 'published/**'"
            ));
        }
        let glob = build_glob(text).map_err(|e| format!("invalid glob '{text}': {e}"))?;
        Ok(Pattern::Glob {
            text: text.to_owned(),
            matcher: glob.compile_matcher(),
        })
    }
}

/// One `[rule.claims]` entry: the claim must be present and match.
#[derive(Clone, Debug)]
pub(crate) struct ClaimRule {
    pub(crate) name: String,
    pub(crate) pattern: Pattern,
}

impl ClaimRule {
    /// Why the claims do not satisfy this entry, or `None` when they do. Strings match the
    /// pattern; arrays match when any string element does; numbers and booleans match by their
    /// JSON text (`true`, `42`); anything else, or a missing claim, does not match.
    pub(crate) fn mismatch(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Option<String> {
        use serde_json::Value;
        let value = match claims.get(&self.name) {
            None => return Some(format!("claim '{}' is missing", self.name)),
            Some(value) => value,
        };
        let ok = match value {
            Value::String(s) => self.pattern.matches(s),
            Value::Array(items) => items
                .iter()
                .any(|item| item.as_str().is_some_and(|s| self.pattern.matches(s))),
            Value::Bool(b) => self.pattern.matches(if *b { "true" } else { "false" }),
            Value::Number(n) => self.pattern.matches(&n.to_string()),
            Value::Null | Value::Object(_) => false,
        };
        if ok {
            None
        } else {
            Some(format!(
                "claim '{}' does not match '{}'",
                self.name,
                self.pattern.text()
            ))
        }
    }
}

/// A validated rule. Built only by the loader; read through the accessors.
#[derive(Clone, Debug)]
pub struct Rule {
    pub(crate) id: String,
    pub(crate) file: String,
    pub(crate) description: String,
    pub(crate) principals: Vec<Principal>,
    pub(crate) account: String,
    pub(crate) containers: Vec<Pattern>,
    pub(crate) blobs: Option<Vec<Pattern>>,
    pub(crate) blob_scope: bool,
    pub(crate) container_scope: bool,
    pub(crate) permissions: Permissions,
    pub(crate) default_ttl: Duration,
    pub(crate) max_ttl: Duration,
    pub(crate) require_reason: bool,
    pub(crate) require_ip: bool,
    pub(crate) ip_within: Vec<IpRange>,
    pub(crate) revocation: RevocationMode,
    pub(crate) claims: Vec<ClaimRule>,
}

impl Rule {
    /// The unique id, recorded in every issuance the rule allows.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The file the rule came from.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The description (empty when none was given).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Who the rule is for.
    pub fn principals(&self) -> &[Principal] {
        &self.principals
    }

    /// The storage account.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The container names and globs, as written.
    pub fn containers(&self) -> impl Iterator<Item = &str> {
        self.containers.iter().map(Pattern::text)
    }

    /// The blob names and globs as written, or `None` for any blob.
    pub fn blobs(&self) -> Option<impl Iterator<Item = &str>> {
        self.blobs.as_ref().map(|b| b.iter().map(Pattern::text))
    }

    /// The scopes the rule allows.
    pub fn scopes(&self) -> Vec<Scope> {
        let mut scopes = Vec::with_capacity(2);
        if self.blob_scope {
            scopes.push(Scope::Blob);
        }
        if self.container_scope {
            scopes.push(Scope::Container);
        }
        scopes
    }

    /// True when the rule allows `scope`.
    pub fn allows_scope(&self, scope: Scope) -> bool {
        match scope {
            Scope::Blob => self.blob_scope,
            Scope::Container => self.container_scope,
        }
    }

    /// The most a request may get.
    pub fn permissions(&self) -> Permissions {
        self.permissions
    }

    /// The TTL a request without one gets.
    pub fn default_ttl(&self) -> Duration {
        self.default_ttl
    }

    /// The longest TTL the rule allows.
    pub fn max_ttl(&self) -> Duration {
        self.max_ttl
    }

    /// Whether a request must give a reason.
    pub fn require_reason(&self) -> bool {
        self.require_reason
    }

    /// Whether a request must give an `ip` (true also when `ip_within` is set).
    pub fn require_ip(&self) -> bool {
        self.require_ip || !self.ip_within.is_empty()
    }

    /// The ranges a request's `ip` must lie inside (empty: any).
    pub fn ip_within(&self) -> &[IpRange] {
        &self.ip_within
    }

    /// How issuances under this rule can be revoked.
    pub fn revocation(&self) -> RevocationMode {
        self.revocation
    }

    /// The `[rule.claims]` entries as (claim, value or glob).
    pub fn claims(&self) -> impl Iterator<Item = (&str, &str)> {
        self.claims
            .iter()
            .map(|c| (c.name.as_str(), c.pattern.text()))
    }
}

/// The first and last address of a range. `IpRange` keeps them private and displays as `a.b.c.d`
/// or `a.b.c.d-e.f.g.h`, which is read back here.
pub(crate) fn ip_bounds(range: IpRange) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let text = range.to_string();
    match text.split_once('-') {
        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
        None => {
            let a: Ipv4Addr = text.parse().ok()?;
            Some((a, a))
        }
    }
}

/// True when `inner` lies entirely inside `outer`.
pub(crate) fn ip_inside(inner: IpRange, outer: IpRange) -> bool {
    ip_bounds(inner).is_some_and(|(start, end)| outer.contains(start) && outer.contains(end))
}
