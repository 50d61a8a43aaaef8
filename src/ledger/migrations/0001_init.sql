-- sasgate ledger, schema version 1.
--
-- Times are RFC 3339 text in UTC with exactly nine fractional digits and a `Z`
-- (`2026-11-29T12:00:00.000000000Z`), so text order is time order and every
-- DateTime<Utc> round-trips exactly. JSON values are stored as JSON text.

-- Every issued token. `seq` is strictly increasing in commit order (AUTOINCREMENT
-- never reuses a value), which is the order a later hash chain links records in:
-- `prev_hash` / `record_hash` are left NULL until then. The revocation fields
-- (`status`, `revoked_at`, `revoked_by`, `revoke_reason`) are the only ones a
-- later revoke updates.
CREATE TABLE issuances (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT    NOT NULL UNIQUE,
    issued_at         TEXT    NOT NULL,
    principal         TEXT    NOT NULL,
    principal_claims  TEXT,
    client_addr       TEXT,
    account           TEXT    NOT NULL,
    container         TEXT    NOT NULL,
    blob              TEXT,
    resource          TEXT    NOT NULL,
    permissions       TEXT    NOT NULL,
    starts_on         TEXT    NOT NULL,
    expires_on        TEXT    NOT NULL,
    ip                TEXT,
    protocol          TEXT    NOT NULL,
    version           TEXT    NOT NULL,
    rule              TEXT    NOT NULL,
    reason            TEXT,
    signing_mode      TEXT    NOT NULL CHECK (signing_mode IN ('account_key', 'user_delegation')),
    revocation        TEXT    NOT NULL
                      CHECK (revocation IN ('expiry_only', 'stored_access_policy', 'link_only')),
    policy_id         TEXT,
    signature_sha256  TEXT    NOT NULL,
    status            TEXT    NOT NULL CHECK (status IN ('active', 'revoked')),
    revoked_at        TEXT,
    revoked_by        TEXT,
    revoke_reason     TEXT,
    prev_hash         TEXT,
    record_hash       TEXT
);

-- Listing order is (issued_at DESC, id DESC); each index ends with that key so a
-- filtered page is an index range scan. An account-only filter uses the container index
-- prefix: one index fewer to write on every issuance.
CREATE INDEX issuances_by_time ON issuances (issued_at, id);
CREATE INDEX issuances_by_principal ON issuances (principal, issued_at, id);
CREATE INDEX issuances_by_container ON issuances (account, container, issued_at, id);
-- Not unique: two identical requests in the same second get byte-identical tokens, and each
-- request is its own issuance.
CREATE INDEX issuances_by_signature ON issuances (signature_sha256);
-- Revoking a stored access policy finds every issuance bound to it.
CREATE INDEX issuances_by_policy ON issuances (account, container, policy_id)
    WHERE policy_id IS NOT NULL;

-- Refused requests, best effort and capped: the oldest (lowest seq) are pruned.
CREATE TABLE denials (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL UNIQUE,
    at           TEXT    NOT NULL,
    principal    TEXT,
    client_addr  TEXT,
    code         TEXT    NOT NULL,
    request      TEXT    NOT NULL,
    reasons      TEXT    NOT NULL
);

-- One row, rewritten by the readiness check to prove a commit reaches the disk.
CREATE TABLE health (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at  TEXT    NOT NULL
);
