-- sasgate ledger, schema version 2: revocation.
--
-- Stored access policies sasgate manages. The generation counter is per container and never
-- goes back, so a policy id (sg-<generation>-<permissions>) is never reused: re-creating a
-- deleted id would bring its revoked tokens back to life.
CREATE TABLE policy_generations (
    account    TEXT    NOT NULL,
    container  TEXT    NOT NULL,
    last       INTEGER NOT NULL,
    PRIMARY KEY (account, container)
);

CREATE TABLE policies (
    account      TEXT    NOT NULL,
    container    TEXT    NOT NULL,
    policy_id    TEXT    NOT NULL,
    generation   INTEGER NOT NULL,
    permissions  TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    removed_at   INTEGER,
    PRIMARY KEY (account, container, policy_id)
);

-- Broker links: only the SHA-256 of the code is kept.
CREATE TABLE links (
    issuance_id  TEXT    PRIMARY KEY REFERENCES issuances (id),
    code_sha256  BLOB    NOT NULL UNIQUE CHECK (length(code_sha256) = 32),
    expires_at   INTEGER NOT NULL,
    max_uses     INTEGER,
    uses         INTEGER NOT NULL DEFAULT 0
);

-- Every redemption of a link, recorded before its redirect is sent.
CREATE TABLE redemptions (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT    NOT NULL UNIQUE,
    issuance_id       TEXT    NOT NULL REFERENCES issuances (id),
    at                INTEGER NOT NULL,
    client_addr       TEXT,
    user_agent        TEXT,
    signature_sha256  BLOB    NOT NULL CHECK (length(signature_sha256) = 32),
    expires_on        INTEGER NOT NULL
);
CREATE INDEX redemptions_by_issuance ON redemptions (issuance_id, at);
