//! Loading and validating policy files. Every problem in every file is collected, so one run of
//! `sasgate policy check` shows all that needs fixing.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use chrono::Duration;
use serde::Deserialize;

use super::duration::{RawDuration, format_duration};
use super::rule::{ClaimRule, Pattern, Principal, Rule};
use crate::ledger::RevocationMode;
use crate::sas::ip::IpRange;
use crate::sas::name::AccountName;
use crate::sas::perms::{Permissions, Resource};

/// The highest value `limits.max_ttl` may take: 7 days (Azure's own user delegation limit, and
/// the longest any sasgate token may live).
pub const TTL_CEILING: Duration = Duration::days(7);

/// The global TTL limits every rule is bounded by (`[limits]` in the config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyLimits {
    /// No rule's `max_ttl` may exceed this; at most [`TTL_CEILING`].
    pub max_ttl: Duration,
    /// A rule without `default_ttl` gets the smaller of this and its own `max_ttl`.
    pub default_ttl: Duration,
}

impl Default for PolicyLimits {
    /// DESIGN.md §5: `max_ttl = "1h"`, `default_ttl = "15m"`.
    fn default() -> Self {
        Self {
            max_ttl: Duration::hours(1),
            default_ttl: Duration::minutes(15),
        }
    }
}

impl PolicyLimits {
    /// The problems with the limits themselves (empty when they are usable).
    pub fn validate(&self) -> Vec<PolicyError> {
        let mut errors = Vec::new();
        let error = |field: &str, message: String| PolicyError {
            file: "config [limits]".to_owned(),
            rule: None,
            field: Some(field.to_owned()),
            message,
        };
        if self.max_ttl <= Duration::zero() || self.max_ttl > TTL_CEILING {
            errors.push(error(
                "max_ttl",
                format!(
                    "limits.max_ttl is {} but must be greater than zero and at most 7d; set it to 7d or less",
                    format_duration(self.max_ttl)
                ),
            ));
        }
        if self.default_ttl <= Duration::zero() || self.default_ttl > self.max_ttl {
            errors.push(error(
                "default_ttl",
                format!(
                    "limits.default_ttl is {} but must be greater than zero and at most limits.max_ttl ({}); lower it",
                    format_duration(self.default_ttl),
                    format_duration(self.max_ttl)
                ),
            ));
        }
        errors
    }
}

/// One problem found while loading policy: where it is (file, rule, field) and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    /// The file, as given to the loader (a path, or a source name in tests).
    pub file: String,
    /// The rule's id, or `#N` (1-based position in its file) when the id is missing or invalid.
    pub rule: Option<String>,
    /// The field within the rule (or the top-level key), when the problem is in one field.
    pub field: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(rule) = &self.rule {
            write!(f, ": rule {rule}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The fields a `[[rule]]` table may have.
const RULE_FIELDS: &[&str] = &[
    "id",
    "description",
    "principals",
    "account",
    "containers",
    "blobs",
    "scopes",
    "permissions",
    "default_ttl",
    "max_ttl",
    "require_reason",
    "require_ip",
    "ip_within",
    "revocation",
    "claims",
];

/// A `[[rule]]` table as written, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    #[serde(default)]
    description: Option<String>,
    principals: Vec<String>,
    account: String,
    containers: Vec<String>,
    #[serde(default)]
    blobs: Option<Vec<String>>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    permissions: String,
    #[serde(default)]
    default_ttl: Option<RawDuration>,
    #[serde(default)]
    max_ttl: Option<RawDuration>,
    #[serde(default)]
    require_reason: bool,
    #[serde(default)]
    require_ip: bool,
    #[serde(default)]
    ip_within: Option<Vec<String>>,
    #[serde(default)]
    revocation: Option<String>,
    #[serde(default)]
    claims: Option<BTreeMap<String, String>>,
}

/// True for `[a-z0-9][a-z0-9._-]{0,63}`.
fn valid_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    (1..=64).contains(&bytes.len())
        && bytes
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

/// Collects errors for one rule.
struct Ctx<'a> {
    file: &'a str,
    rule: String,
    errors: &'a mut Vec<PolicyError>,
}

impl Ctx<'_> {
    fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(PolicyError {
            file: self.file.to_owned(),
            rule: Some(self.rule.clone()),
            field: Some(field.to_owned()),
            message: message.into(),
        });
    }
}

/// Parses every source and validates every rule, returning the rules in order (file order, then
/// position in the file) or every error found.
pub(crate) fn load_sources<N: AsRef<str>, T: AsRef<str>>(
    sources: &[(N, T)],
    limits: &PolicyLimits,
) -> Result<Vec<Rule>, Vec<PolicyError>> {
    let mut errors = limits.validate();
    let limits_ok = errors.is_empty();
    let mut rules = Vec::new();
    // id → file of first definition.
    let mut seen: HashMap<String, String> = HashMap::new();
    for (name, text) in sources {
        let file = name.as_ref();
        for (label, raw) in parse_file(file, text.as_ref(), &mut errors) {
            if valid_id(&raw.id) {
                if let Some(first) = seen.get(&raw.id) {
                    errors.push(PolicyError {
                        file: file.to_owned(),
                        rule: Some(label.clone()),
                        field: Some("id".to_owned()),
                        message: format!(
                            "duplicate rule id '{}' (first defined in {first}); ids must be unique across all policy files, so rename one",
                            raw.id
                        ),
                    });
                } else {
                    seen.insert(raw.id.clone(), file.to_owned());
                }
            }
            let mut ctx = Ctx {
                file,
                rule: label,
                errors: &mut errors,
            };
            if let Some(rule) = validate(raw, limits, limits_ok, &mut ctx) {
                rules.push(rule);
            }
        }
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(errors)
    }
}

/// Reads every `*.toml` file directly in `dir`, sorted by file name, as (path, text) sources.
pub(crate) fn read_dir_sources(dir: &Path) -> Result<Vec<(String, String)>, Vec<PolicyError>> {
    let dir_error = |message: String| {
        vec![PolicyError {
            file: dir.display().to_string(),
            rule: None,
            field: None,
            message,
        }]
    };
    let entries = std::fs::read_dir(dir).map_err(|e| {
        dir_error(format!(
            "cannot read the policy directory: {e}; create it or point the config at the right one"
        ))
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| dir_error(format!("cannot list the policy directory: {e}")))?;
        let path = entry.path();
        let is_toml = path.extension().is_some_and(|ext| ext == "toml");
        if is_toml && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    let mut sources = Vec::with_capacity(paths.len());
    let mut errors = Vec::new();
    for path in paths {
        match std::fs::read_to_string(&path) {
            Ok(text) => sources.push((path.display().to_string(), text)),
            Err(e) => errors.push(PolicyError {
                file: path.display().to_string(),
                rule: None,
                field: None,
                message: format!("cannot read the file: {e}; check it is readable UTF-8 text"),
            }),
        }
    }
    if errors.is_empty() {
        Ok(sources)
    } else {
        Err(errors)
    }
}

/// Parses one file into (label, raw rule) pairs, recording syntax, unknown-field and type errors.
fn parse_file(file: &str, text: &str, errors: &mut Vec<PolicyError>) -> Vec<(String, RawRule)> {
    let file_error = |field: Option<&str>, message: String| PolicyError {
        file: file.to_owned(),
        rule: None,
        field: field.map(str::to_owned),
        message,
    };
    let table: toml::Table = match toml::from_str(text) {
        Ok(table) => table,
        Err(e) => {
            errors.push(file_error(
                None,
                format!("not valid TOML: {}", e.to_string().trim_end()),
            ));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (key, value) in table {
        if key != "rule" {
            errors.push(file_error(
                Some(&key),
                "unknown top-level key; a policy file holds only [[rule]] tables".to_owned(),
            ));
            continue;
        }
        let toml::Value::Array(items) = value else {
            errors.push(file_error(
                Some("rule"),
                "'rule' must be an array of tables: write each rule under its own [[rule]] header"
                    .to_owned(),
            ));
            continue;
        };
        for (index, item) in items.into_iter().enumerate() {
            let position = format!("#{}", index + 1);
            let toml::Value::Table(mut rule_table) = item else {
                errors.push(PolicyError {
                    file: file.to_owned(),
                    rule: Some(position),
                    field: None,
                    message: "each rule must be a table under a [[rule]] header".to_owned(),
                });
                continue;
            };
            let label = match rule_table.get("id").and_then(toml::Value::as_str) {
                Some(id) if valid_id(id) => id.to_owned(),
                _ => position,
            };
            let unknown: Vec<String> = rule_table
                .keys()
                .filter(|k| !RULE_FIELDS.contains(&k.as_str()))
                .cloned()
                .collect();
            for key in unknown {
                rule_table.remove(&key);
                errors.push(PolicyError {
                    file: file.to_owned(),
                    rule: Some(label.clone()),
                    field: Some(key),
                    message: format!(
                        "unknown field; remove it or correct the spelling (fields: {})",
                        RULE_FIELDS.join(", ")
                    ),
                });
            }
            match RawRule::deserialize(toml::Value::Table(rule_table)) {
                Ok(raw) => out.push((label, raw)),
                Err(e) => {
                    let (field, message) = describe_serde_error(&e.to_string());
                    errors.push(PolicyError {
                        file: file.to_owned(),
                        rule: Some(label),
                        field,
                        message,
                    });
                }
            }
        }
    }
    out
}

/// Splits a serde error into the field it names and a message with a hint.
fn describe_serde_error(text: &str) -> (Option<String>, String) {
    let text = text.trim_end();
    let backticked = |s: &str| -> Option<String> {
        let start = s.find('`')? + 1;
        let len = s[start..].find('`')?;
        Some(s[start..start + len].to_owned())
    };
    if let Some((message, path)) = text.rsplit_once("\nin ") {
        let field = backticked(path);
        return (field, format!("{message}; correct the value's type"));
    }
    if text.starts_with("missing field") {
        return (
            backticked(text),
            "required field is missing; add it (see the rule format in DESIGN.md §4)".to_owned(),
        );
    }
    (None, text.to_owned())
}

/// Validates one raw rule, recording every problem. Returns the rule only when it has none.
fn validate(
    raw: RawRule,
    limits: &PolicyLimits,
    limits_ok: bool,
    ctx: &mut Ctx<'_>,
) -> Option<Rule> {
    let before = ctx.errors.len();

    if !valid_id(&raw.id) {
        ctx.error(
            "id",
            "rule ids are 1 to 64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
        );
    }

    let mut principals = Vec::with_capacity(raw.principals.len());
    if raw.principals.is_empty() {
        ctx.error(
            "principals",
            "the list is empty; name at least one user:NAME, role:NAME or oidc:ISSUER",
        );
    }
    for text in &raw.principals {
        match Principal::parse(text) {
            Ok(p) => principals.push(p),
            Err(e) => ctx.error("principals", format!("'{text}': {e}")),
        }
    }

    if let Err(e) = AccountName::parse(&raw.account) {
        ctx.error(
            "account",
            format!("'{}': {e}; give the storage account's name", raw.account),
        );
    }

    let mut containers = Vec::with_capacity(raw.containers.len());
    if raw.containers.is_empty() {
        ctx.error(
            "containers",
            "the list is empty; name at least one container or a glob such as 'ci-*'",
        );
    }
    for text in &raw.containers {
        match Pattern::container(text) {
            Ok(p) => containers.push(p),
            Err(e) => ctx.error("containers", e),
        }
    }

    let blobs = match &raw.blobs {
        None => None,
        Some(list) => {
            if list.is_empty() {
                ctx.error(
                    "blobs",
                    "the list is empty and would match no blob; omit 'blobs' to allow any blob",
                );
            }
            let mut blobs = Vec::with_capacity(list.len());
            for text in list {
                match Pattern::blob(text) {
                    Ok(p) => blobs.push(p),
                    Err(e) => ctx.error("blobs", e),
                }
            }
            Some(blobs)
        }
    };

    let (mut blob_scope, mut container_scope) = (true, false);
    if let Some(scopes) = &raw.scopes {
        blob_scope = false;
        if scopes.is_empty() {
            ctx.error(
                "scopes",
                "the list is empty; use [\"blob\"], [\"container\"] or both",
            );
        }
        for scope in scopes {
            match scope.as_str() {
                "blob" => blob_scope = true,
                "container" => container_scope = true,
                other => ctx.error(
                    "scopes",
                    format!("unknown scope '{other}'; use \"blob\" or \"container\""),
                ),
            }
        }
    }
    if container_scope && raw.blobs.is_some() {
        ctx.error(
            "scopes",
            "a rule with 'blobs' cannot allow container scope, since a container SAS reaches every blob; split it into a blob rule and a container rule without 'blobs'",
        );
    }

    let permissions = validate_permissions(&raw.permissions, blob_scope, container_scope, ctx);

    let max_ttl = match &raw.max_ttl {
        None => Some(limits.max_ttl),
        Some(value) => match value.to_duration() {
            Ok(d) if limits_ok && d > limits.max_ttl => {
                ctx.error(
                    "max_ttl",
                    format!(
                        "{} is above the global ceiling limits.max_ttl = {}; lower it to {} or less (or raise limits.max_ttl in the config, at most 7d)",
                        format_duration(d),
                        format_duration(limits.max_ttl),
                        format_duration(limits.max_ttl)
                    ),
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                ctx.error("max_ttl", e.to_string());
                None
            }
        },
    };
    let default_ttl = match (&raw.default_ttl, max_ttl) {
        (None, Some(max)) => Some(limits.default_ttl.min(max)),
        (None, None) => None,
        (Some(value), max) => match value.to_duration() {
            Ok(d) => match max {
                Some(max) if d > max => {
                    ctx.error(
                        "default_ttl",
                        format!(
                            "{} is longer than this rule's max_ttl ({}); lower default_ttl or raise max_ttl",
                            format_duration(d),
                            format_duration(max)
                        ),
                    );
                    None
                }
                _ => Some(d),
            },
            Err(e) => {
                ctx.error("default_ttl", e.to_string());
                None
            }
        },
    };

    let mut ip_within = Vec::new();
    if let Some(list) = &raw.ip_within {
        if list.is_empty() {
            ctx.error(
                "ip_within",
                "the list is empty and no address could satisfy it; omit 'ip_within' or list ranges",
            );
        }
        for text in list {
            match IpRange::parse(text) {
                Ok(range) => ip_within.push(range),
                Err(e) => ctx.error("ip_within", format!("'{text}': {e}")),
            }
        }
    }

    let revocation = match raw.revocation.as_deref() {
        None | Some("expiry_only") => RevocationMode::ExpiryOnly,
        Some("stored_access_policy") => RevocationMode::StoredAccessPolicy,
        Some("link_only") => RevocationMode::LinkOnly,
        Some(other) => {
            ctx.error(
                "revocation",
                format!(
                    "unknown mode '{other}'; use \"expiry_only\", \"stored_access_policy\" or \"link_only\""
                ),
            );
            RevocationMode::ExpiryOnly
        }
    };

    let has_oidc = principals.iter().any(|p| matches!(p, Principal::Oidc(_)));
    let mut claims = Vec::new();
    let claim_map = raw.claims.unwrap_or_default();
    if !claim_map.is_empty() && !has_oidc {
        ctx.error(
            "claims",
            "[rule.claims] only applies to oidc:ISSUER principals and this rule has none; add an oidc: principal or remove the claims",
        );
    }
    if claim_map.is_empty() && has_oidc {
        ctx.error(
            "claims",
            "an oidc:ISSUER principal needs [rule.claims] (e.g. sub or repository), or every token from that issuer would match; add at least one claim",
        );
    }
    for (name, value) in claim_map {
        if name.is_empty() {
            ctx.error("claims", "a claim name is empty");
            continue;
        }
        match Pattern::claim(&value) {
            Ok(pattern) => claims.push(ClaimRule { name, pattern }),
            Err(e) => ctx.error("claims", format!("claim '{name}': {e}")),
        }
    }

    if ctx.errors.len() != before {
        return None;
    }
    Some(Rule {
        id: raw.id,
        file: ctx.file.to_owned(),
        description: raw.description.unwrap_or_default(),
        principals,
        account: raw.account,
        containers,
        blobs,
        blob_scope,
        container_scope,
        permissions: permissions?,
        default_ttl: default_ttl?,
        max_ttl: max_ttl?,
        require_reason: raw.require_reason,
        require_ip: raw.require_ip,
        ip_within,
        revocation,
        claims,
    })
}

/// Parses the rule's permissions for every scope it allows.
fn validate_permissions(
    text: &str,
    blob_scope: bool,
    container_scope: bool,
    ctx: &mut Ctx<'_>,
) -> Option<Permissions> {
    // Parse against the widest resource the rule allows, then check each allowed resource.
    let widest = if container_scope {
        Resource::Container
    } else {
        Resource::Blob
    };
    let permissions = match Permissions::parse(text, widest) {
        Ok(p) => p,
        Err(e) => {
            ctx.error(
                "permissions",
                format!("'{text}': {e}; use Azure's SAS letters, e.g. \"r\" or \"rl\""),
            );
            return None;
        }
    };
    if blob_scope && let Err(e) = permissions.check(Resource::Blob) {
        ctx.error(
                "permissions",
                format!(
                    "'{text}': {e}; this rule allows blob scope, so remove the letter or drop \"blob\" from scopes"
                ),
            );
        return None;
    }
    Some(permissions)
}
