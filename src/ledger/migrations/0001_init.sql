-- sasgate ledger, schema version 1.
--
-- Times are INTEGER nanoseconds since 1970-01-01T00:00:00Z (UTC), so integer order is time
-- order and every DateTime<Utc> from 1677-09-21 to 2262-04-11 round-trips exactly; the ledger
-- refuses a record with a time outside that range. SHA-256 digests are 32-byte BLOBs (the
-- API speaks lowercase hex). JSON values are stored as JSON text.
--
-- The enum CHECKs are written as OR chains, not `IN (...)` lists: SQLite evaluates an IN list
-- of three or more values through a temporary table built for every row inserted.

-- Every issued token. `seq` is strictly increasing in commit order (AUTOINCREMENT
-- never reuses a value), which is the order a later hash chain links records in:
-- `prev_hash` / `record_hash` are left NULL until then. The revocation fields
-- (`status`, `revoked_at`, `revoked_by`, `revoke_reason`) are the only ones a
-- later revoke updates.
CREATE TABLE issuances (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT    NOT NULL UNIQUE,
    issued_at         INTEGER NOT NULL,
    principal         TEXT    NOT NULL,
    principal_claims  TEXT,
    client_addr       TEXT,
    account           TEXT    NOT NULL,
    container         TEXT    NOT NULL,
    blob              TEXT,
    resource          TEXT    NOT NULL,
    permissions       TEXT    NOT NULL,
    starts_on         INTEGER NOT NULL,
    expires_on        INTEGER NOT NULL,
    ip                TEXT,
    protocol          TEXT    NOT NULL,
    version           TEXT    NOT NULL,
    rule              TEXT    NOT NULL,
    reason            TEXT,
    signing_mode      TEXT    NOT NULL
                      CHECK (signing_mode = 'account_key' OR signing_mode = 'user_delegation'),
    revocation        TEXT    NOT NULL
                      CHECK (revocation = 'expiry_only' OR revocation = 'stored_access_policy'
                             OR revocation = 'link_only'),
    policy_id         TEXT,
    signature_sha256  BLOB    NOT NULL CHECK (length(signature_sha256) = 32),
    status            TEXT    NOT NULL CHECK (status = 'active' OR status = 'revoked'),
    revoked_at        INTEGER,
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
    at           INTEGER NOT NULL,
    principal    TEXT,
    client_addr  TEXT,
    code         TEXT    NOT NULL,
    request      TEXT    NOT NULL,
    reasons      TEXT    NOT NULL
);

-- One row, rewritten by the readiness check to prove a commit reaches the disk.
CREATE TABLE health (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at  INTEGER NOT NULL
);
