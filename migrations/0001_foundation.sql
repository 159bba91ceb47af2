-- Users, login sessions and the double-entry ledger.

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('buyer', 'seller', 'admin')),
    display_name TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    banned_at_ms INTEGER,
    ban_reason TEXT
);

CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    token_sha256 TEXT NOT NULL UNIQUE,
    csrf_token TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);
CREATE INDEX sessions_user ON sessions(user_id);

-- Accounts hold a cached balance, updated in the same transaction as the postings;
-- `meterchat audit` recomputes it from postings. Only platform chain:* and promo:*
-- accounts may go below zero.
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    user_id INTEGER REFERENCES users(id),
    may_go_negative INTEGER NOT NULL DEFAULT 0 CHECK (may_go_negative IN (0, 1)),
    balance_musdt INTEGER NOT NULL DEFAULT 0,
    CHECK (may_go_negative = 1 OR balance_musdt >= 0)
);
CREATE INDEX accounts_user ON accounts(user_id);

CREATE TABLE ledger_tx (
    id INTEGER PRIMARY KEY,
    idem_key TEXT UNIQUE,
    kind TEXT NOT NULL,
    ref TEXT,
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE postings (
    id INTEGER PRIMARY KEY,
    tx_id INTEGER NOT NULL REFERENCES ledger_tx(id),
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    amount_musdt INTEGER NOT NULL CHECK (amount_musdt <> 0)
);
CREATE INDEX postings_account ON postings(account_id, id);
CREATE INDEX postings_tx ON postings(tx_id);

CREATE TRIGGER postings_no_update BEFORE UPDATE ON postings
BEGIN SELECT RAISE(ABORT, 'postings are immutable'); END;
CREATE TRIGGER postings_no_delete BEFORE DELETE ON postings
BEGIN SELECT RAISE(ABORT, 'postings are immutable'); END;
CREATE TRIGGER ledger_tx_no_update BEFORE UPDATE ON ledger_tx
BEGIN SELECT RAISE(ABORT, 'ledger transactions are immutable'); END;
CREATE TRIGGER ledger_tx_no_delete BEFORE DELETE ON ledger_tx
BEGIN SELECT RAISE(ABORT, 'ledger transactions are immutable'); END;

-- Who did what as operator, and why.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    actor_user_id INTEGER REFERENCES users(id),
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT
);
