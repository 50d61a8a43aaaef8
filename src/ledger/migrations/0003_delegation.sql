-- sasgate ledger, schema version 3: user delegation SAS.
--
-- The user delegation key that signed an issuance: its object id (skoid) and tenant (sktid).
-- NULL for a SAS signed with the account key.
ALTER TABLE issuances ADD COLUMN key_oid TEXT;
ALTER TABLE issuances ADD COLUMN key_tid TEXT;

-- The account-wide emergency stop for user delegation SAS (Azure Resource Manager
-- revokeUserDelegationKeys): one row per accepted call, written in the same transaction that
-- marks the account's user delegation issuances revoked.
CREATE TABLE key_revocations (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    id                 TEXT    NOT NULL UNIQUE,
    at                 INTEGER NOT NULL,
    account            TEXT    NOT NULL,
    revoked_by         TEXT    NOT NULL,
    reason             TEXT    NOT NULL,
    revoked_issuances  INTEGER NOT NULL
);

-- The emergency stop finds the account's live user delegation issuances.
CREATE INDEX issuances_by_signing ON issuances (account, signing_mode, status);
