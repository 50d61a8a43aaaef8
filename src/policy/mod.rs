//! The policy engine: which principal may get which SAS. Default deny; a request is allowed when
//! **one** rule covers all of it, and the decision carries that rule's id.
//!
//! Pure: apart from [`PolicySet::load_dir`] reading `policy/*.toml`, nothing here does I/O, and
//! nothing reads the clock (a request carries its TTL, not times).
//!
//! # Rule format (`policy/*.toml`, DESIGN.md §4)
//!
//! ```toml
//! [[rule]]
//! id = "researchers-read-models"     # [a-z0-9][a-z0-9._-]{0,63}, unique across all files
//! description = "Researchers download published models"
//! principals = ["role:researcher"]   # user:NAME | role:NAME | oidc:ISSUER; at least one
//! account = "devstoreaccount1"
//! containers = ["models", "ci-*"]    # exact names or globs (`*`, `?` only); a glob needs a literal part
//! blobs = ["published/**", "*.bin"]  # optional; `*`/`?` stay within a path segment, `**` crosses;
//!                                    # no character classes or alternation
//! scopes = ["blob"]                  # "blob" (default) and/or "container"
//! permissions = "r"                  # the most a request may get (Azure SAS letters)
//! default_ttl = "15m"                # default: min(limits.default_ttl, max_ttl)
//! max_ttl = "1h"                     # default: limits.max_ttl; never above it
//! require_reason = false             # the request must carry a non-blank reason
//! require_ip = false                 # the request must carry an `ip`, at most a /16
//! ip_within = ["10.0.0.0/8"]         # optional; the request's ip range must lie inside one
//! revocation = "expiry_only"         # | "stored_access_policy" | "link_only"
//! [rule.claims]                      # oidc: principals only, and required for them
//! repository = "org/repo"
//! ref = "refs/heads/*"
//! ```
//!
//! Durations are `<n>s`, `<n>m`, `<n>h` or `<n>d` ([`parse_duration`]); a request may also give a
//! TTL as a whole number of seconds ([`Ttl`]). Unknown fields are errors. Load refuses, and
//! reports **all** problems at once with file, rule and field ([`PolicyError`]): duplicate ids, a
//! `max_ttl` above `limits.max_ttl`, a `default_ttl` above `max_ttl`, bad globs, container globs
//! that could match every container (`*`, `**`, `?*`: that is account scope) or that use
//! character classes or alternation (whose reach is hard to judge: `[]a-z0-9]*` looks literal and
//! is not), blob globs with classes (a negated class can match `/`), blob
//! patterns no canonical name can match, permission letters the allowed scopes do not take,
//! invalid account names or ip ranges, `[rule.claims]` without an `oidc:` principal, an `oidc:`
//! principal without claims (any token of the issuer would match), and `blobs` together with
//! container scope (a container SAS reaches every blob, so it would escape the blob globs).
//!
//! # Matching
//!
//! Each rule is checked in this order; the first failing check is the rule's [`Stage`]:
//!
//! 1. **principal**: `user:NAME` equals [`Subject::name`]; `role:NAME` is one of its roles;
//!    `oidc:ISSUER` equals the OIDC issuer *and* every `[rule.claims]` entry matches (exact
//!    string, or a glob where `*` does not cross `/`; a missing claim never matches; an array
//!    matches when any string element does; numbers and booleans by their JSON text);
//! 2. **account**: equal; 3. **container**: one name or glob matches;
//! 4. **blob**: for a blob request, one of `blobs` matches (no `blobs` = any blob);
//! 5. **scope**: a request without a blob is container scope and needs `"container"`;
//! 6. **permissions**: the requested set is non-empty and a subset of the rule's;
//! 7. **ttl**: a requested TTL is positive and at most `max_ttl` (never clamped); none given
//!    means the rule's `default_ttl`;
//! 8. **reason**: when `require_reason`; 9. **ip**: when `require_ip` or `ip_within`, an `ip` is
//!    given and, with `ip_within`, lies entirely inside one listed range.
//!
//! # Decision and deny-code precedence
//!
//! Among the candidate rules (in file order, files sorted by name), the first that passes every
//! check allows: [`Grant`] carries its id, the effective TTL, the requested permissions and ip,
//! its revocation mode and max TTL. Otherwise the denial's code comes from the candidate that got
//! furthest (first among equals): failing at scope → `scope_not_allowed`, permissions →
//! `permission_not_allowed`, ttl → `ttl_exceeds_policy` (also for a TTL that is not positive,
//! which the request layer should refuse as `invalid_request` before deciding), reason →
//! `reason_required`, ip → `ip_required`. If no candidate got past the blob check,
//! `no_matching_rule`. The denial's message is one actionable sentence from that rule (e.g. "the
//! longest this rule allows is 1h"); `reasons` holds one line per candidate.
//!
//! # Index: a decision does not scan every rule
//!
//! At load, every (rule, principal, container pattern) is filed under
//! `account → {users | roles | issuers}[name] → bucket`, and a bucket holds a `HashMap` from exact
//! container name to rule positions plus one [`globset::GlobSet`] of that bucket's container
//! globs. A decision looks up the request's account, then the subject's user name, each of its
//! roles and its OIDC issuer (a few hash lookups), and in each bucket the exact container and the
//! bucket's glob set. Only those candidates (sorted, deduplicated, so rule order is kept) get the
//! full check above. The cost is therefore bounded by the subject's roles and the rules that name
//! that principal, account and container, not by the size of the policy: rules for other
//! accounts, principals or containers are never touched. [`PolicySet::explain`] is the
//! diagnostic, and checks every rule linearly.

mod decide;
mod duration;
mod index;
mod load;
mod rule;

use std::path::Path;

pub use decide::{
    AccessRequest, Decision, Denial, DenyCode, Explanation, Grant, OidcSubject, RuleExplanation,
    RuleReason, Stage, Subject,
};
pub use duration::{
    DurationError, MAX_PARSED_SECONDS, Ttl, duration_from_seconds, format_duration, parse_duration,
};
pub use load::{PolicyError, PolicyLimits, TTL_CEILING};
pub use rule::{Principal, Rule, Scope};

use crate::ledger::RevocationMode;
use index::Index;

/// A loaded, validated and indexed set of rules. Immutable: reload by building a new one.
#[derive(Debug, Default)]
pub struct PolicySet {
    rules: Vec<Rule>,
    index: Index,
}

impl PolicySet {
    /// A set with no rules: every request is denied.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Loads every `*.toml` file directly in `dir` (sorted by name, not recursive). An empty
    /// directory is a valid, deny-everything policy. Returns every problem found.
    pub fn load_dir(dir: &Path, limits: &PolicyLimits) -> Result<PolicySet, Vec<PolicyError>> {
        let sources = load::read_dir_sources(dir)?;
        Self::from_sources(&sources, limits)
    }

    /// Loads policy from `(name, text)` pairs, in the order given; `name` appears in errors.
    pub fn from_sources<N: AsRef<str>, T: AsRef<str>>(
        sources: &[(N, T)],
        limits: &PolicyLimits,
    ) -> Result<PolicySet, Vec<PolicyError>> {
        let rules = load::load_sources(sources, limits)?;
        let index = Index::build(&rules).map_err(|e| {
            vec![PolicyError {
                file: "(policy index)".to_owned(),
                rule: None,
                field: None,
                message: format!("cannot build the container glob index: {e}"),
            }]
        })?;
        Ok(PolicySet { rules, index })
    }

    /// Every rule, in order (files sorted by name, then position in the file).
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule with this id.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id() == id)
    }

    /// How many rules there are.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there are no rules (everything is denied).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Each rule's id and revocation mode, so the caller can refuse modes it cannot serve yet.
    pub fn revocation_modes(&self) -> Vec<(&str, RevocationMode)> {
        self.rules
            .iter()
            .map(|r| (r.id(), r.revocation()))
            .collect()
    }

    /// Decides `request` for `subject`, looking only at the rules the index returns.
    pub fn decide(&self, subject: &Subject, request: &AccessRequest) -> Decision {
        let candidates = self.index.candidates(subject, request);
        decide::decide_over(&self.rules, candidates.iter().copied(), subject, request)
    }

    /// The decision, and for every rule (not only the indexed candidates) why it did or did not
    /// apply. Linear in the number of rules: a diagnostic for `sasgate policy explain`.
    pub fn explain(&self, subject: &Subject, request: &AccessRequest) -> Explanation {
        Explanation {
            decision: self.decide(subject, request),
            rules: self
                .rules
                .iter()
                .map(|rule| decide::explain_rule(rule, subject, request))
                .collect(),
        }
    }

    /// The decision made by checking every rule, without the index. Same result as
    /// [`PolicySet::decide`] except that `reasons` covers every rule; used to test the index.
    pub fn decide_linear(&self, subject: &Subject, request: &AccessRequest) -> Decision {
        decide::decide_over(&self.rules, 0..self.rules.len(), subject, request)
    }
}
