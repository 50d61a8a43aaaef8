//! Evaluating one rule against one request, and turning the outcomes into a [`Decision`].

use chrono::Duration;
use serde::Serialize;

use super::duration::format_duration;
use super::rule::{Principal, Rule, Scope, ip_inside};
use crate::ledger::RevocationMode;
use crate::sas::ip::IpRange;
use crate::sas::name::{BlobName, ContainerName};
use crate::sas::perms::Permissions;

/// Who is asking: the authenticated principal, with its roles and, for a JWT caller, the issuer
/// and claims.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Subject {
    /// The principal's name; `user:NAME` rules compare it verbatim. The authentication layer must
    /// give OIDC callers names that cannot collide with configured user names.
    pub name: String,
    /// The principal's roles (`role:NAME` rules).
    pub roles: Vec<String>,
    /// Present when the caller authenticated with an OIDC token.
    pub oidc: Option<OidcSubject>,
}

/// The verified issuer and claims of an OIDC caller.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OidcSubject {
    /// The `iss` claim, compared verbatim with `oidc:ISSUER`.
    pub issuer: String,
    /// All claims of the verified token.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// What is asked for, already parsed and canonicalised.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessRequest {
    /// The storage account name.
    pub account: String,
    /// The container.
    pub container: ContainerName,
    /// The blob; `None` asks for container scope.
    pub blob: Option<BlobName>,
    /// The permissions asked for.
    pub permissions: Permissions,
    /// The TTL asked for; `None` takes the rule's default.
    pub ttl: Option<Duration>,
    /// The address range the SAS is to be bound to (`sip`).
    pub ip: Option<IpRange>,
    /// Why the access is needed.
    pub reason: Option<String>,
}

impl AccessRequest {
    /// The scope the request asks for.
    pub fn scope(&self) -> Scope {
        if self.blob.is_some() {
            Scope::Blob
        } else {
            Scope::Container
        }
    }
}

/// The outcome of a policy decision.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// One rule covers the whole request.
    Allow(Grant),
    /// No rule does.
    Deny(Denial),
}

impl Decision {
    /// True for [`Decision::Allow`].
    pub fn is_allow(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    /// The deny code, or `None` when allowed.
    pub fn deny_code(&self) -> Option<DenyCode> {
        match self {
            Decision::Allow(_) => None,
            Decision::Deny(d) => Some(d.code),
        }
    }
}

/// What an allowed request gets. The broker signs exactly this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The rule that allowed the request; recorded with the issuance.
    pub rule_id: String,
    /// The effective TTL: the requested one, or the rule's default.
    pub ttl: Duration,
    /// The permissions, exactly as requested (a subset of the rule's).
    pub permissions: Permissions,
    /// The `sip` range, as requested.
    pub ip: Option<IpRange>,
    /// How the issuance can be revoked.
    pub revocation: RevocationMode,
    /// The rule's maximum TTL (for link redemptions and re-issue).
    pub max_ttl: Duration,
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Denial {
    /// The stable code.
    pub code: DenyCode,
    /// One actionable sentence.
    pub message: String,
    /// One entry per rule considered, in rule order.
    pub reasons: Vec<RuleReason>,
}

/// Why one rule did not allow the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleReason {
    /// The rule's id.
    pub rule_id: String,
    /// Why it did not apply (or `allows the request`).
    pub reason: String,
}

/// The stable deny codes (DESIGN.md §3). See the module docs for their precedence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyCode {
    /// No rule matches the principal, account, container and blob.
    NoMatchingRule,
    /// A rule matches, but not for this scope (blob or container).
    ScopeNotAllowed,
    /// A rule matches, but allows fewer permissions than asked.
    PermissionNotAllowed,
    /// A rule matches, but its maximum TTL is shorter than asked (or the TTL asked is not
    /// positive, which the request layer should already have refused as `invalid_request`).
    TtlExceedsPolicy,
    /// A rule matches, but needs a reason.
    ReasonRequired,
    /// A rule matches, but needs an `ip`, or one inside its `ip_within` ranges.
    IpRequired,
}

impl DenyCode {
    /// The stable snake_case text, as in problem documents.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyCode::NoMatchingRule => "no_matching_rule",
            DenyCode::ScopeNotAllowed => "scope_not_allowed",
            DenyCode::PermissionNotAllowed => "permission_not_allowed",
            DenyCode::TtlExceedsPolicy => "ttl_exceeds_policy",
            DenyCode::ReasonRequired => "reason_required",
            DenyCode::IpRequired => "ip_required",
        }
    }
}

impl std::fmt::Display for DenyCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far a request got through one rule's checks, in check order. A rule "matches" the request
/// when it gets past [`Stage::Blob`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Failed: no principal of the rule is the subject (or OIDC claims differ).
    Principal,
    /// Failed: another account.
    Account,
    /// Failed: the container matches none of the rule's names or globs.
    Container,
    /// Failed: the blob matches none of the rule's blob globs.
    Blob,
    /// Failed: the rule does not allow the scope.
    Scope,
    /// Failed: more permissions than the rule allows.
    Permissions,
    /// Failed: the TTL is longer than the rule's maximum (or not positive).
    Ttl,
    /// Failed: the rule needs a reason.
    Reason,
    /// Failed: the rule needs an ip, or one inside `ip_within`.
    Ip,
    /// Passed every check.
    Allowed,
}

/// Runs the checks of `rule` in order and returns the stage that failed, or `Allowed`. Allocates
/// nothing.
pub(crate) fn check(rule: &Rule, subject: &Subject, request: &AccessRequest) -> Stage {
    if !principal_matches(rule, subject) {
        return Stage::Principal;
    }
    if rule.account != request.account {
        return Stage::Account;
    }
    let container = request.container.as_str();
    if !rule.containers.iter().any(|p| p.matches(container)) {
        return Stage::Container;
    }
    if let (Some(blob), Some(globs)) = (&request.blob, &rule.blobs)
        && !globs.iter().any(|p| p.matches(blob.as_str()))
    {
        return Stage::Blob;
    }
    if !rule.allows_scope(request.scope()) {
        return Stage::Scope;
    }
    if request.permissions == Permissions::default()
        || !request.permissions.is_subset_of(rule.permissions)
    {
        return Stage::Permissions;
    }
    if let Some(ttl) = request.ttl
        && (ttl <= Duration::zero() || ttl > rule.max_ttl)
    {
        return Stage::Ttl;
    }
    if rule.require_reason && !has_reason(request) {
        return Stage::Reason;
    }
    if rule.require_ip() {
        match request.ip {
            None => return Stage::Ip,
            // A range as wide as a /8 restricts nothing worth the name (0.0.0.0/0 would satisfy
            // the letter of the rule and defeat it).
            Some(ip) if ip.len() > MAX_REQUIRED_IP_ADDRESSES => return Stage::Ip,
            Some(ip) => {
                if !rule.ip_within.is_empty() && !rule.ip_within.iter().any(|w| ip_inside(ip, *w)) {
                    return Stage::Ip;
                }
            }
        }
    }
    Stage::Allowed
}

/// The widest `ip` range that satisfies `require_ip`: a /16 (65,536 addresses).
pub const MAX_REQUIRED_IP_ADDRESSES: u64 = 1 << 16;

fn has_reason(request: &AccessRequest) -> bool {
    request
        .reason
        .as_deref()
        .is_some_and(|r| !r.trim().is_empty())
}

fn principal_matches(rule: &Rule, subject: &Subject) -> bool {
    rule.principals.iter().any(|p| match p {
        Principal::User(name) => *name == subject.name,
        Principal::Role(role) => subject.roles.iter().any(|r| r == role),
        Principal::Oidc(issuer) => subject.oidc.as_ref().is_some_and(|o| {
            o.issuer == *issuer && rule.claims.iter().all(|c| c.mismatch(&o.claims).is_none())
        }),
    })
}

/// The short reason a rule did not apply, for the reasons list and `policy explain`.
pub(crate) fn reason(
    rule: &Rule,
    stage: Stage,
    subject: &Subject,
    request: &AccessRequest,
) -> String {
    match stage {
        Stage::Principal => principal_reason(rule, subject),
        Stage::Account => format!("for account '{}', not '{}'", rule.account, request.account),
        Stage::Container => format!(
            "container '{}' matches none of {}",
            request.container,
            list(rule.containers())
        ),
        Stage::Blob => format!(
            "blob '{}' matches none of {}",
            request
                .blob
                .as_ref()
                .map(BlobName::as_str)
                .unwrap_or_default(),
            list(rule.blobs().into_iter().flatten())
        ),
        Stage::Scope => format!(
            "allows {} scope only, not {} scope",
            scopes_text(rule),
            request.scope().as_str()
        ),
        Stage::Permissions => format!(
            "allows at most '{}', not '{}'",
            rule.permissions, request.permissions
        ),
        Stage::Ttl => match request.ttl {
            Some(ttl) if ttl <= Duration::zero() => "the requested TTL is not positive".to_owned(),
            Some(ttl) => format!(
                "allows at most {}, not {}",
                format_duration(rule.max_ttl),
                format_duration(ttl)
            ),
            None => "TTL check failed".to_owned(),
        },
        Stage::Reason => "requires a reason".to_owned(),
        Stage::Ip => match request.ip {
            Some(ip) if ip.len() > MAX_REQUIRED_IP_ADDRESSES => {
                format!("ip {ip} is wider than a /16")
            }
            None if rule.ip_within.is_empty() => "requires an ip".to_owned(),
            None => format!("requires an ip inside {}", ranges_text(rule)),
            Some(ip) => format!("ip {ip} is not inside {}", ranges_text(rule)),
        },
        Stage::Allowed => "allows the request".to_owned(),
    }
}

fn principal_reason(rule: &Rule, subject: &Subject) -> String {
    // Say why an OIDC principal with the right issuer still did not match: the claims.
    if let Some(oidc) = &subject.oidc {
        let issuer_matches = rule
            .principals
            .iter()
            .any(|p| matches!(p, Principal::Oidc(i) if *i == oidc.issuer));
        if issuer_matches {
            let mismatches: Vec<String> = rule
                .claims
                .iter()
                .filter_map(|c| c.mismatch(&oidc.claims))
                .collect();
            if !mismatches.is_empty() {
                return format!("issuer matches but {}", mismatches.join(", "));
            }
        }
    }
    format!(
        "for {}, not this principal",
        list(rule.principals.iter().map(ToString::to_string))
    )
}

fn list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let items: Vec<String> = items
        .into_iter()
        .map(|s| format!("'{}'", s.as_ref()))
        .collect();
    items.join(", ")
}

fn scopes_text(rule: &Rule) -> &'static str {
    match (rule.blob_scope, rule.container_scope) {
        (true, true) => "blob and container",
        (false, true) => "container",
        _ => "blob",
    }
}

fn ranges_text(rule: &Rule) -> String {
    list(rule.ip_within.iter().map(ToString::to_string))
}

/// The one actionable sentence for a denial by `rule` at `stage` (stage ≥ Scope).
fn message(rule: &Rule, stage: Stage, request: &AccessRequest) -> (DenyCode, String) {
    let id = &rule.id;
    match stage {
        Stage::Scope => (
            DenyCode::ScopeNotAllowed,
            match request.scope() {
                Scope::Container => format!(
                    "Rule '{id}' allows only blob-scope tokens for container '{}'; name a blob instead of asking for the whole container.",
                    request.container
                ),
                Scope::Blob => format!(
                    "Rule '{id}' allows only container-scope tokens for container '{}'; omit the blob to ask for the container.",
                    request.container
                ),
            },
        ),
        Stage::Permissions if request.permissions == Permissions::default() => (
            DenyCode::PermissionNotAllowed,
            format!(
                "No permissions were asked for; ask for one or more of '{}', which rule '{id}' allows.",
                rule.permissions
            ),
        ),
        Stage::Permissions => (
            DenyCode::PermissionNotAllowed,
            format!(
                "Rule '{id}' allows at most permissions '{}' here but '{}' was asked; ask for a subset of '{}'.",
                rule.permissions, request.permissions, rule.permissions
            ),
        ),
        Stage::Ttl => match request.ttl {
            Some(ttl) if ttl <= Duration::zero() => (
                DenyCode::TtlExceedsPolicy,
                format!(
                    "The requested TTL must be positive; ask for up to {} (rule '{id}').",
                    format_duration(rule.max_ttl)
                ),
            ),
            ttl => (
                DenyCode::TtlExceedsPolicy,
                format!(
                    "Rule '{id}' refuses a TTL of {}: the longest this rule allows is {}; ask for {} or less.",
                    ttl.map(format_duration).unwrap_or_default(),
                    format_duration(rule.max_ttl),
                    format_duration(rule.max_ttl)
                ),
            ),
        },
        Stage::Reason => (
            DenyCode::ReasonRequired,
            format!(
                "Rule '{id}' requires a reason; send a 'reason' saying why you need this access."
            ),
        ),
        Stage::Ip => (
            DenyCode::IpRequired,
            match request.ip {
                Some(ip) if ip.len() > MAX_REQUIRED_IP_ADDRESSES => format!(
                    "Rule '{id}' requires the token to be bound to your network, and {ip} is wider than a /16; give your address or a narrower range."
                ),
                Some(ip) => format!(
                    "Rule '{id}' allows only addresses inside {} but the ip {ip} is outside them; give an ip inside one of those ranges.",
                    ranges_text(rule)
                ),
                None if rule.ip_within.is_empty() => format!(
                    "Rule '{id}' requires the token to be bound to an address; send an 'ip' (an IPv4 address, range or CIDR)."
                ),
                None => format!(
                    "Rule '{id}' requires the token to be bound to an address inside {}; send an 'ip' inside one of those ranges.",
                    ranges_text(rule)
                ),
            },
        ),
        Stage::Principal | Stage::Container | Stage::Account | Stage::Blob | Stage::Allowed => {
            (DenyCode::NoMatchingRule, no_match_message(request))
        }
    }
}

fn no_match_message(request: &AccessRequest) -> String {
    let target = match &request.blob {
        Some(blob) => format!("blob '{blob}' in container '{}'", request.container),
        None => format!("container '{}'", request.container),
    };
    format!(
        "No policy rule grants you {target} of account '{}'; ask a policy administrator for a rule, or run `sasgate policy explain` to see why each rule did not apply.",
        request.account
    )
}

/// Decides over `candidates` (rule positions in ascending order). The first rule that allows
/// wins; otherwise the rule that got furthest (first among equals) names the code.
pub(crate) fn decide_over(
    rules: &[Rule],
    candidates: impl Iterator<Item = usize> + Clone,
    subject: &Subject,
    request: &AccessRequest,
) -> Decision {
    let mut best: Option<(Stage, usize)> = None;
    for index in candidates.clone() {
        let Some(rule) = rules.get(index) else {
            continue;
        };
        let stage = check(rule, subject, request);
        if stage == Stage::Allowed {
            return Decision::Allow(Grant {
                rule_id: rule.id.clone(),
                ttl: request.ttl.unwrap_or(rule.default_ttl),
                permissions: request.permissions,
                ip: request.ip,
                revocation: rule.revocation,
                max_ttl: rule.max_ttl,
            });
        }
        if best.is_none_or(|(s, _)| stage > s) {
            best = Some((stage, index));
        }
    }
    let reasons = candidates
        .filter_map(|index| rules.get(index))
        .map(|rule| RuleReason {
            rule_id: rule.id.clone(),
            reason: reason(rule, check(rule, subject, request), subject, request),
        })
        .collect();
    let (code, message) = match best.and_then(|(stage, index)| Some((stage, rules.get(index)?))) {
        Some((stage, rule)) if stage >= Stage::Scope => message(rule, stage, request),
        _ => (DenyCode::NoMatchingRule, no_match_message(request)),
    };
    Decision::Deny(Denial {
        code,
        message,
        reasons,
    })
}

/// Why each rule did or did not allow a request, for `sasgate policy explain`.
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    /// The decision, exactly as [`super::PolicySet::decide`] makes it.
    pub decision: Decision,
    /// Every rule, in rule order.
    pub rules: Vec<RuleExplanation>,
}

/// One rule's verdict on a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleExplanation {
    /// The rule's id.
    pub rule_id: String,
    /// The file it came from.
    pub file: String,
    /// The check that failed, or `allowed`.
    pub stage: Stage,
    /// True when the rule matched principal, account, container and blob (got past `blob`).
    pub matched: bool,
    /// A short human reason.
    pub reason: String,
}

pub(crate) fn explain_rule(
    rule: &Rule,
    subject: &Subject,
    request: &AccessRequest,
) -> RuleExplanation {
    let stage = check(rule, subject, request);
    RuleExplanation {
        rule_id: rule.id.clone(),
        file: rule.file.clone(),
        stage,
        matched: stage > Stage::Blob,
        reason: reason(rule, stage, subject, request),
    }
}
