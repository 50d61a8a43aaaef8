-- sasgate PostgreSQL ledger, schema version 1: the SQLite schema (versions 1 to 4) in one step.
--
-- Times are BIGINT nanoseconds since 1970-01-01T00:00:00Z (UTC), not timestamptz (which keeps
-- only microseconds): records round-trip exactly, and chain payloads are hashed with
-- nanoseconds. SHA-256 digests are 32-byte BYTEA (the API speaks lowercase hex). JSON values
-- are stored as JSON text, as given, so they round-trip exactly.
--
-- `seq` of issuances, redemptions and key_revocations is the chain `seq` of the entry that
-- recorded the row: unique, and in commit order, since every write holds the chain head.
-- Ids compare bytewise (COLLATE "C"): listing order and cursors must not depend on the
-- database's locale.

-- Every issued token. The revocation fields (status, revoked_at, revoked_by, revoke_reason)
-- are a projection of the chain's revocation entries, updated in the same transaction.
CREATE TABLE issuances (
    seq               BIGINT  NOT NULL UNIQUE,
    id                TEXT    COLLATE "C" PRIMARY KEY,
    issued_at         BIGINT  NOT NULL,
    principal         TEXT    NOT NULL,
    principal_claims  TEXT,
    client_addr       TEXT,
    account           TEXT    NOT NULL,
    container         TEXT    NOT NULL,
    blob              TEXT,
    resource          TEXT    NOT NULL,
    permissions       TEXT    NOT NULL,
    starts_on         BIGINT  NOT NULL,
    expires_on        BIGINT  NOT NULL,
    ip                TEXT,
    protocol          TEXT    NOT NULL,
    version           TEXT    NOT NULL,
    rule              TEXT    NOT NULL,
    reason            TEXT,
    signing_mode      TEXT    NOT NULL CHECK (signing_mode IN ('account_key', 'user_delegation')),
    revocation        TEXT    NOT NULL
                      CHECK (revocation IN ('expiry_only', 'stored_access_policy', 'link_only')),
    policy_id         TEXT,
    signature_sha256  BYTEA   NOT NULL CHECK (octet_length(signature_sha256) = 32),
    status            TEXT    NOT NULL CHECK (status IN ('active', 'revoked')),
    revoked_at        BIGINT,
    revoked_by        TEXT,
    revoke_reason     TEXT,
    key_oid           TEXT,
    key_tid           TEXT
);

-- Listing order is (issued_at DESC, id DESC); each index ends with that key so a filtered page
-- is an index range scan.
CREATE INDEX issuances_by_time ON issuances (issued_at, id);
CREATE INDEX issuances_by_principal ON issuances (principal, issued_at, id);
CREATE INDEX issuances_by_container ON issuances (account, container, issued_at, id);
-- Not unique: two identical requests in the same second get byte-identical tokens.
CREATE INDEX issuances_by_signature ON issuances (signature_sha256, seq);
CREATE INDEX issuances_by_policy ON issuances (account, container, policy_id)
    WHERE policy_id IS NOT NULL;
CREATE INDEX issuances_by_signing ON issuances (account, signing_mode, status);

-- Refused requests, best effort and capped: the oldest (lowest seq) are pruned. Not chained.
CREATE TABLE denials (
    seq          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,
    at           BIGINT  NOT NULL,
    principal    TEXT,
    client_addr  TEXT,
    code         TEXT    NOT NULL,
    request      TEXT    NOT NULL,
    reasons      TEXT    NOT NULL
);

-- One row, rewritten by the readiness check to prove a commit goes through.
CREATE TABLE health (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at  BIGINT  NOT NULL
);

-- Stored access policies sasgate manages. The generation counter is per container and never
-- goes back, so a policy id (sg-<generation>-<permissions>) is never reused.
CREATE TABLE policy_generations (
    account    TEXT    NOT NULL,
    container  TEXT    NOT NULL,
    last       BIGINT  NOT NULL,
    PRIMARY KEY (account, container)
);

CREATE TABLE policies (
    account      TEXT    NOT NULL,
    container    TEXT    NOT NULL,
    policy_id    TEXT    NOT NULL,
    generation   BIGINT  NOT NULL,
    permissions  TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    removed_at   BIGINT,
    PRIMARY KEY (account, container, policy_id)
);

-- Broker links: only the SHA-256 of the code is kept.
CREATE TABLE links (
    issuance_id  TEXT    COLLATE "C" PRIMARY KEY REFERENCES issuances (id),
    code_sha256  BYTEA   NOT NULL UNIQUE CHECK (octet_length(code_sha256) = 32),
    expires_at   BIGINT  NOT NULL,
    max_uses     BIGINT,
    uses         BIGINT  NOT NULL DEFAULT 0
);

-- Every redemption of a link, recorded before its redirect is sent.
CREATE TABLE redemptions (
    seq               BIGINT  NOT NULL UNIQUE,
    id                TEXT    NOT NULL UNIQUE,
    issuance_id       TEXT    COLLATE "C" NOT NULL REFERENCES issuances (id),
    at                BIGINT  NOT NULL,
    client_addr       TEXT,
    user_agent        TEXT,
    signature_sha256  BYTEA   NOT NULL CHECK (octet_length(signature_sha256) = 32),
    expires_on        BIGINT  NOT NULL
);
CREATE INDEX redemptions_by_issuance ON redemptions (issuance_id, seq);

-- The account-wide emergency stop for user delegation SAS: one row per accepted call, written
-- in the transaction that marks the account's user delegation issuances revoked.
CREATE TABLE key_revocations (
    seq                BIGINT  NOT NULL UNIQUE,
    id                 TEXT    NOT NULL UNIQUE,
    at                 BIGINT  NOT NULL,
    account            TEXT    NOT NULL,
    revoked_by         TEXT    NOT NULL,
    reason             TEXT    NOT NULL,
    revoked_issuances  BIGINT  NOT NULL
);
CREATE INDEX key_revocations_by_account ON key_revocations (account, seq);

-- The hash chain (src/ledger/chain.rs). Every change is an entry committing to the previous
-- one; `seq` counts from 1 without gaps; payload is canonical JSON exactly as hashed.
CREATE TABLE chain (
    seq        BIGINT  PRIMARY KEY,
    kind       TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    at         BIGINT  NOT NULL,
    payload    TEXT    NOT NULL,
    prev_hash  BYTEA   NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash       BYTEA   NOT NULL CHECK (octet_length(hash) = 32)
);

-- The last entry. Every transaction that appends locks this row first (SELECT ... FOR UPDATE),
-- so writers, also on several replicas, extend one chain in turn, and no two writes deadlock.
CREATE TABLE chain_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   BIGINT  NOT NULL,
    hash  BYTEA   NOT NULL CHECK (octet_length(hash) = 32)
);
INSERT INTO chain_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));
