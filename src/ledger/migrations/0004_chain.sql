-- sasgate ledger, schema version 4: the hash chain (src/ledger/chain.rs).
--
-- Every change is an entry committing to the previous one. `seq` counts from 1 without gaps;
-- `at` is INTEGER nanoseconds like every time here; payload is canonical JSON exactly as hashed.
CREATE TABLE chain (
    seq        INTEGER PRIMARY KEY,
    kind       TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    payload    TEXT    NOT NULL,
    prev_hash  BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    hash       BLOB    NOT NULL CHECK (length(hash) = 32)
);

-- The last entry, locked (written) by every transaction that appends, so that writers extend
-- one chain in turn.
CREATE TABLE chain_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   INTEGER NOT NULL,
    hash  BLOB    NOT NULL CHECK (length(hash) = 32)
);
INSERT INTO chain_head (id, seq, hash) VALUES (1, 0, zeroblob(32));

-- The columns prev_hash/record_hash of schema 1 were placeholders for this; they stay NULL.
