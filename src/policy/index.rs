//! The lookup structure that keeps a decision's cost independent of the number of rules. See the
//! module docs of [`super`] for the design.

use std::collections::HashMap;

use globset::{GlobSet, GlobSetBuilder};

use super::decide::{AccessRequest, Subject};
use super::rule::{Pattern, Principal, Rule};

/// account → principal selector → container → rule positions.
#[derive(Debug, Default)]
pub(crate) struct Index {
    accounts: HashMap<String, AccountIndex>,
}

#[derive(Debug, Default)]
struct AccountIndex {
    users: HashMap<String, Bucket>,
    roles: HashMap<String, Bucket>,
    issuers: HashMap<String, Bucket>,
}

/// The rules of one (account, principal selector), by container.
#[derive(Debug)]
struct Bucket {
    /// Exact container name → rule positions.
    exact: HashMap<String, Vec<usize>>,
    /// All container globs of the bucket, matched in one pass.
    globs: GlobSet,
    /// `globs` pattern number → rule position.
    glob_rules: Vec<usize>,
}

struct BucketBuilder {
    exact: HashMap<String, Vec<usize>>,
    globs: GlobSetBuilder,
    glob_rules: Vec<usize>,
}

impl Default for BucketBuilder {
    fn default() -> Self {
        Self {
            exact: HashMap::new(),
            globs: GlobSetBuilder::new(),
            glob_rules: Vec::new(),
        }
    }
}

impl Index {
    /// Indexes every (principal, container pattern) pair of every rule.
    pub(crate) fn build(rules: &[Rule]) -> Result<Self, globset::Error> {
        type Key<'a> = (&'a str, u8, &'a str);
        let mut builders: HashMap<Key<'_>, BucketBuilder> = HashMap::new();
        for (position, rule) in rules.iter().enumerate() {
            for principal in &rule.principals {
                let key = match principal {
                    Principal::User(n) => (rule.account.as_str(), 0u8, n.as_str()),
                    Principal::Role(n) => (rule.account.as_str(), 1u8, n.as_str()),
                    Principal::Oidc(n) => (rule.account.as_str(), 2u8, n.as_str()),
                };
                let bucket = builders.entry(key).or_default();
                for pattern in &rule.containers {
                    match pattern {
                        Pattern::Exact(name) => {
                            let list = bucket.exact.entry(name.clone()).or_default();
                            if list.last() != Some(&position) {
                                list.push(position);
                            }
                        }
                        Pattern::Glob { matcher, .. } => {
                            bucket.globs.add(matcher.glob().clone());
                            bucket.glob_rules.push(position);
                        }
                    }
                }
            }
        }
        let mut index = Index::default();
        for ((account, kind, name), builder) in builders {
            let bucket = Bucket {
                exact: builder.exact,
                globs: builder.globs.build()?,
                glob_rules: builder.glob_rules,
            };
            let account = index.accounts.entry(account.to_owned()).or_default();
            let map = match kind {
                0 => &mut account.users,
                1 => &mut account.roles,
                _ => &mut account.issuers,
            };
            map.insert(name.to_owned(), bucket);
        }
        Ok(index)
    }

    /// The positions of the rules that could cover `request` for `subject`: same account, one of
    /// the subject's principal selectors, and a container name or glob that matches. Sorted and
    /// without duplicates. OIDC claims, blobs and limits are left to the full check.
    pub(crate) fn candidates(&self, subject: &Subject, request: &AccessRequest) -> Vec<usize> {
        let mut out = Vec::new();
        let Some(account) = self.accounts.get(&request.account) else {
            return out;
        };
        let container = request.container.as_str();
        let mut scratch = Vec::new();
        let mut collect = |bucket: Option<&Bucket>| {
            let Some(bucket) = bucket else { return };
            if let Some(list) = bucket.exact.get(container) {
                out.extend_from_slice(list);
            }
            if !bucket.glob_rules.is_empty() {
                bucket.globs.matches_into(container, &mut scratch);
                out.extend(
                    scratch
                        .iter()
                        .filter_map(|&n| bucket.glob_rules.get(n).copied()),
                );
            }
        };
        collect(account.users.get(&subject.name));
        for role in &subject.roles {
            collect(account.roles.get(role));
        }
        if let Some(oidc) = &subject.oidc {
            collect(account.issuers.get(&oidc.issuer));
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}
