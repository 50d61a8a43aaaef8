//! The hash-chained log: every change to the ledger is an entry that commits to the one before
//! it, so that an admin can prove that no issuance was deleted, edited, inserted or reordered.
//!
//! An entry is `(seq, kind, subject, at, payload, prev_hash, hash)`:
//!
//! - `seq` counts from 1 without gaps, in commit order;
//! - `payload` is the event as **canonical JSON**: object keys sorted, no whitespace, times in
//!   RFC 3339 UTC with nanoseconds, digests in lowercase hex. The text is stored as it was
//!   hashed, so verification never depends on re-encoding;
//! - `hash = SHA-256("sasgate-ledger-v1" 0x00 prev_hash seq(8 bytes big endian) kind 0x00 payload)`,
//!   with `prev_hash` the previous entry's hash (32 zero bytes before the first).
//!
//! Issuances, broker links, redemptions, revocations, stored-policy changes and emergency stops
//! are entries. A revocation or a redemption is an entry of its own: the issuance's entry is never
//! edited. The `issuances` table (status, revoked_at, …) is a projection kept for queries;
//! [`Verifier`] checks it against the chain too, so an edit there is also caught. Denials are not
//! chained: they are best effort by design.
//!
//! Backends append entries inside the transaction that makes the change, after locking the
//! chain head (a one-row table), so concurrent writers, including several replicas on one
//! PostgreSQL, extend one chain.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{IssuanceRecord, KeyRevocation, LinkRecord, PolicyRecord, Redemption};

/// The hash before the first entry.
pub const GENESIS_HASH: [u8; 32] = [0; 32];
/// Domain separation for the entry hash.
const DOMAIN: &[u8] = b"sasgate-ledger-v1";

/// The last entry: what the next one builds on. `seq` 0 and [`GENESIS_HASH`] for an empty chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: [u8; 32],
}

impl Default for ChainHead {
    fn default() -> Self {
        Self {
            seq: 0,
            hash: GENESIS_HASH,
        }
    }
}

impl ChainHead {
    /// The entry for `event` after this head; call [`ChainHead::advance`] with it once it is
    /// inserted.
    pub fn next(&self, event: &Event<'_>) -> ChainEntry {
        let payload = canonical(&event.payload());
        let seq = self.seq + 1;
        let kind = event.kind();
        ChainEntry {
            seq,
            kind: kind.to_owned(),
            subject: event.subject(),
            at: event.at(),
            hash: entry_hash(&self.hash, seq, kind, &payload),
            prev_hash: self.hash,
            payload,
        }
    }

    /// Moves the head to `entry`.
    pub fn advance(&mut self, entry: &ChainEntry) {
        self.seq = entry.seq;
        self.hash = entry.hash;
    }

    /// `<seq>:<hex hash>`, the text to anchor elsewhere.
    pub fn text(&self) -> String {
        format!("{}:{}", self.seq, hex(&self.hash))
    }
}

/// One stored entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainEntry {
    pub seq: u64,
    pub kind: String,
    /// The issuance, policy or stop the entry is about.
    pub subject: String,
    pub at: DateTime<Utc>,
    /// Canonical JSON, exactly as hashed.
    pub payload: String,
    #[serde(serialize_with = "hex_serialize")]
    pub prev_hash: [u8; 32],
    #[serde(serialize_with = "hex_serialize")]
    pub hash: [u8; 32],
}

fn hex_serialize<S: serde::Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex(h))
}

/// A change to the ledger.
#[derive(Clone, Debug)]
pub enum Event<'a> {
    Issuance(&'a IssuanceRecord),
    /// A broker link of an issuance (its code only as a hash).
    Link(&'a LinkRecord),
    Redemption(&'a Redemption),
    Revocation {
        issuance_id: &'a str,
        at: DateTime<Utc>,
        by: &'a str,
        reason: &'a str,
    },
    PolicyCreated(&'a PolicyRecord),
    /// A stored access policy deleted from its container; `revoked` lists the issuances bound to
    /// it that this revoked (empty for a clean-up of a policy nothing live used).
    PolicyRemoved {
        account: &'a str,
        container: &'a str,
        policy_id: &'a str,
        at: DateTime<Utc>,
        by: Option<&'a str>,
        reason: Option<&'a str>,
        revoked: &'a [String],
    },
    /// The user delegation key emergency stop, and the issuances it revoked.
    KeyRevocation {
        stop: &'a KeyRevocation,
        revoked: &'a [String],
    },
}

impl<'a> Event<'a> {
    /// The entries for appending `r`: its issuance, and its revocation if it is stored already
    /// revoked (an import), so that the chain accounts for every stored field.
    pub fn of_append(r: &'a IssuanceRecord) -> Vec<Event<'a>> {
        let mut out = vec![Event::Issuance(r)];
        if r.status == super::StoredStatus::Revoked {
            out.push(Event::Revocation {
                issuance_id: &r.id,
                at: r.revoked_at.unwrap_or_default(),
                by: r.revoked_by.as_deref().unwrap_or(""),
                reason: r.revoke_reason.as_deref().unwrap_or(""),
            });
        }
        out
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Event::Issuance(_) => "issuance",
            Event::Link(_) => "link",
            Event::Redemption(_) => "redemption",
            Event::Revocation { .. } => "revocation",
            Event::PolicyCreated(_) => "policy_created",
            Event::PolicyRemoved { .. } => "policy_removed",
            Event::KeyRevocation { .. } => "key_revocation",
        }
    }

    fn subject(&self) -> String {
        match self {
            Event::Issuance(r) => r.id.clone(),
            Event::Link(l) => l.issuance_id.clone(),
            Event::Redemption(r) => r.issuance_id.clone(),
            Event::Revocation { issuance_id, .. } => (*issuance_id).to_owned(),
            Event::PolicyCreated(p) => format!("{}/{}/{}", p.account, p.container, p.policy_id),
            Event::PolicyRemoved {
                account,
                container,
                policy_id,
                ..
            } => format!("{account}/{container}/{policy_id}"),
            Event::KeyRevocation { stop, .. } => stop.id.clone(),
        }
    }

    fn at(&self) -> DateTime<Utc> {
        match self {
            Event::Issuance(r) => r.issued_at,
            Event::Link(l) => l.expires_at,
            Event::Redemption(r) => r.at,
            Event::Revocation { at, .. } | Event::PolicyRemoved { at, .. } => *at,
            Event::PolicyCreated(p) => p.created_at,
            Event::KeyRevocation { stop, .. } => stop.at,
        }
    }

    fn payload(&self) -> Value {
        match self {
            Event::Issuance(r) => issuance_payload(r),
            Event::Link(l) => json!({
                "issuance_id": l.issuance_id,
                "code_sha256": l.code_sha256,
                "expires_at": time(l.expires_at),
                "max_uses": l.max_uses,
            }),
            Event::Redemption(r) => json!({
                "id": r.id,
                "issuance_id": r.issuance_id,
                "at": time(r.at),
                "client_addr": r.client_addr,
                "user_agent": r.user_agent,
                "signature_sha256": r.signature_sha256,
                "expires_on": time(r.expires_on),
            }),
            Event::Revocation {
                issuance_id,
                at,
                by,
                reason,
            } => json!({
                "issuance_id": issuance_id, "at": time(*at), "by": by, "reason": reason,
            }),
            Event::PolicyCreated(p) => json!({
                "account": p.account, "container": p.container, "policy_id": p.policy_id,
                "generation": p.generation, "permissions": p.permissions,
                "created_at": time(p.created_at),
            }),
            Event::PolicyRemoved {
                account,
                container,
                policy_id,
                at,
                by,
                reason,
                revoked,
            } => json!({
                "account": account, "container": container, "policy_id": policy_id,
                "at": time(*at), "by": by, "reason": reason, "revoked": revoked,
            }),
            Event::KeyRevocation { stop, revoked } => json!({
                "id": stop.id, "at": time(stop.at), "account": stop.account,
                "by": stop.revoked_by, "reason": stop.reason, "revoked": revoked,
            }),
        }
    }
}

/// The immutable part of an issuance: everything but the revocation fields, which later
/// entries establish.
pub fn issuance_payload(r: &IssuanceRecord) -> Value {
    json!({
        "id": r.id,
        "issued_at": time(r.issued_at),
        "principal": r.principal,
        "principal_claims": r.principal_claims,
        "client_addr": r.client_addr,
        "account": r.account,
        "container": r.container,
        "blob": r.blob,
        "resource": r.resource,
        "permissions": r.permissions,
        "starts_on": time(r.starts_on),
        "expires_on": time(r.expires_on),
        "ip": r.ip,
        "protocol": r.protocol,
        "version": r.version,
        "rule": r.rule,
        "reason": r.reason,
        "signing_mode": r.signing_mode,
        "revocation": r.revocation,
        "policy_id": r.policy_id,
        "signature_sha256": r.signature_sha256,
        "key_oid": r.key_oid,
        "key_tid": r.key_tid,
    })
}

/// Canonical JSON: keys sorted (serde_json's map is ordered), no whitespace.
pub fn canonical(v: &Value) -> String {
    // Serialising a Value cannot fail.
    serde_json::to_string(&sorted(v)).unwrap_or_default()
}

fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// RFC 3339, UTC, nanoseconds.
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// The entry hash (see the module docs).
pub fn entry_hash(prev: &[u8; 32], seq: u64, kind: &str, payload: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update([0]);
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(kind.as_bytes());
    h.update([0]);
    h.update(payload.as_bytes());
    h.finalize().into()
}

pub fn hex(bytes: &[u8]) -> String {
    super::query::hex_lower(bytes)
}

/// What `ledger verify` found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct VerifyReport {
    /// Entries checked.
    pub entries: u64,
    /// Issuance rows checked against the chain.
    pub issuances: u64,
    /// The head, as `<seq>:<hash>`.
    pub head: String,
    /// The first problem, if any.
    pub first_bad: Option<BadRecord>,
}

/// The first record that does not fit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BadRecord {
    /// `chain` or `issuances`.
    pub table: &'static str,
    /// The chain `seq` (for `chain`) or the issuance id (for `issuances`).
    pub record: String,
    pub problem: String,
}

/// What the chain says about one issuance.
struct Known {
    /// The seq of its issuance entry.
    seq: u64,
    payload: String,
    revoked: Option<(DateTime<Utc>, String, String)>,
    /// The seq of the entry that revoked it.
    revoked_seq: Option<u64>,
}

/// Checks entries in `seq` order, then issuance rows against what the entries said.
#[derive(Default)]
pub struct Verifier {
    head: ChainHead,
    issuances: HashMap<String, Known>,
    checked_issuances: u64,
    first_bad: Option<BadRecord>,
    /// The chain seq reached before the issuance rows were read ([`Verifier::begin_rows`]).
    rows_from: u64,
    /// Rows that a change committed while they were being read may explain; rechecked once the
    /// chain is read again ([`Verifier::finish`] after more entries).
    deferred: Vec<IssuanceRecord>,
}

impl Verifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// True once a problem was found (later input is not checked).
    pub fn failed(&self) -> bool {
        self.first_bad.is_some()
    }

    /// Checks the next stored entry.
    pub fn entry(&mut self, e: &ChainEntry) {
        if self.failed() {
            return;
        }
        let bad = |problem: String| BadRecord {
            table: "chain",
            record: e.seq.to_string(),
            problem,
        };
        let expected_seq = self.head.seq + 1;
        if e.seq != expected_seq {
            self.first_bad = Some(bad(if e.seq > expected_seq {
                format!(
                    "entries {expected_seq}..{} are missing (deleted)",
                    e.seq - 1
                )
            } else {
                format!(
                    "seq {} repeats or goes back (expected {expected_seq})",
                    e.seq
                )
            }));
            return;
        }
        if e.prev_hash != self.head.hash {
            self.first_bad = Some(bad(
                "prev_hash does not match the previous entry (an entry was removed, inserted or reordered)".into(),
            ));
            return;
        }
        if entry_hash(&e.prev_hash, e.seq, &e.kind, &e.payload) != e.hash {
            self.first_bad = Some(bad(
                "the hash does not match the entry's content (the entry was edited)".into(),
            ));
            return;
        }
        let payload: Value = match serde_json::from_str(&e.payload) {
            Ok(v) => v,
            Err(_) => {
                self.first_bad = Some(bad("the payload is not JSON".into()));
                return;
            }
        };
        if canonical(&payload) != e.payload {
            self.first_bad = Some(bad("the payload is not canonical JSON".into()));
            return;
        }
        self.record(e, &payload);
        self.head.advance(e);
    }

    fn record(&mut self, e: &ChainEntry, p: &Value) {
        let text = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let at = |k: &str| {
            p.get(k)
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default()
        };
        match e.kind.as_str() {
            "issuance" => {
                self.issuances.insert(
                    text("id"),
                    Known {
                        seq: e.seq,
                        payload: e.payload.clone(),
                        revoked: None,
                        revoked_seq: None,
                    },
                );
            }
            "revocation" => {
                let revoked = (at("at"), text("by"), text("reason"));
                if let Some(k) = self.issuances.get_mut(&text("issuance_id"))
                    && k.revoked.is_none()
                {
                    k.revoked = Some(revoked);
                    k.revoked_seq = Some(e.seq);
                }
            }
            "policy_removed" | "key_revocation" => {
                let revoked = (at("at"), text("by"), text("reason"));
                for id in p
                    .get("revoked")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    if let Some(k) = self.issuances.get_mut(id)
                        && k.revoked.is_none()
                    {
                        k.revoked = Some(revoked.clone());
                        k.revoked_seq = Some(e.seq);
                    }
                }
            }
            _ => {}
        }
    }

    /// Checks that the entries reached `head` (read before them): a chain cut short at its end
    /// otherwise looks whole.
    pub fn reached(&mut self, head: &ChainHead) {
        if self.failed() || self.head.seq >= head.seq {
            if !self.failed() && self.head.seq == head.seq && self.head.hash != head.hash {
                self.first_bad = Some(BadRecord {
                    table: "chain",
                    record: head.seq.to_string(),
                    problem: "the stored chain head does not match the last entry".into(),
                });
            }
            return;
        }
        self.first_bad = Some(BadRecord {
            table: "chain",
            record: (self.head.seq + 1).to_string(),
            problem: format!(
                "entries {}..{} are missing (the chain was cut short)",
                self.head.seq + 1,
                head.seq
            ),
        });
    }

    /// Marks the point where the issuance rows start to be read: changes committed after it may
    /// or may not show in the rows, and are judged once the chain is read again.
    pub fn begin_rows(&mut self) {
        self.rows_from = self.head.seq;
    }

    /// Checks one row of the `issuances` projection against the chain read so far. A row a
    /// concurrent change may explain (not in the chain yet, or revoked in the row but not yet in
    /// the chain) is kept for [`Verifier::finish`].
    pub fn issuance(&mut self, r: &IssuanceRecord) {
        if self.failed() {
            return;
        }
        self.checked_issuances += 1;
        let row_revoked = r.status == super::StoredStatus::Revoked;
        match self.issuances.get(&r.id) {
            None => self.deferred.push(r.clone()),
            Some(k) if k.revoked.is_none() && row_revoked => self.deferred.push(r.clone()),
            Some(_) => self.judge(r, false),
        }
    }

    /// The verdict on one row. `late`: the chain has been read again since the rows were, so a
    /// revocation entry after [`Verifier::begin_rows`] may postdate the row.
    fn judge(&mut self, r: &IssuanceRecord, late: bool) {
        let bad = |problem: &str| BadRecord {
            table: "issuances",
            record: r.id.clone(),
            problem: problem.to_owned(),
        };
        let Some(known) = self.issuances.remove(&r.id) else {
            self.first_bad = Some(bad(
                "no chain entry records this issuance (it was inserted)",
            ));
            return;
        };
        if canonical(&issuance_payload(r)) != known.payload {
            self.first_bad = Some(bad("the row differs from its chain entry (it was edited)"));
            return;
        }
        let stored = (r.status == super::StoredStatus::Revoked).then(|| {
            (
                r.revoked_at.unwrap_or_default(),
                r.revoked_by.clone().unwrap_or_default(),
                r.revoke_reason.clone().unwrap_or_default(),
            )
        });
        let revoked_meanwhile =
            late && stored.is_none() && known.revoked_seq.is_some_and(|s| s > self.rows_from);
        if stored != known.revoked && !revoked_meanwhile {
            self.first_bad = Some(bad(
                "its revocation status differs from the chain's revocation entries",
            ));
        }
    }

    /// The report, once every entry and every issuance row was given. Issuances the chain
    /// records but the table lacks were deleted.
    pub fn finish(mut self) -> VerifyReport {
        for r in std::mem::take(&mut self.deferred) {
            if self.failed() {
                break;
            }
            self.judge(&r, true);
        }
        if self.first_bad.is_none() {
            // Issuances committed after the rows were read are not expected among them.
            let rows_from = self.rows_from;
            let mut missing: Vec<&String> = self
                .issuances
                .iter()
                .filter(|(_, k)| k.seq <= rows_from)
                .map(|(id, _)| id)
                .collect();
            missing.sort();
            if let Some(id) = missing.first() {
                self.first_bad = Some(BadRecord {
                    table: "issuances",
                    record: (*id).clone(),
                    problem: "the chain records this issuance but the table lacks it (deleted)"
                        .into(),
                });
            }
        }
        VerifyReport {
            entries: self.head.seq,
            issuances: self.checked_issuances,
            head: self.head.text(),
            first_bad: self.first_bad,
        }
    }
}
