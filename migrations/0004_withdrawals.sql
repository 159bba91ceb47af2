-- USDT withdrawals: what a user asked for, and every signed transaction made for it.

-- One row per request. The tokens left the user's `available` for `clearing:withdrawals`
-- in the same transaction that inserted the row. (user_id, idem_key) makes a replayed
-- Idempotency-Key find the first request.
CREATE TABLE withdrawals (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    idem_key TEXT NOT NULL,
    address TEXT NOT NULL,
    amount_musdt INTEGER NOT NULL CHECK (amount_musdt > 0),   -- taken from the user
    fee_musdt INTEGER NOT NULL CHECK (fee_musdt >= 0),        -- platform + network fee
    net_musdt INTEGER NOT NULL CHECK (net_musdt > 0),         -- what goes on chain
    status TEXT NOT NULL CHECK (status IN
        ('queued', 'review', 'signed', 'sent', 'confirmed', 'failed', 'rejected')),
    review_reason TEXT,      -- why it waits for an operator (above_review_threshold, daily_limit)
    wait_reason TEXT,        -- why the sender has not moved it on (hot wallet short, no key...)
    failure_reason TEXT,     -- what the chain said when it failed
    txid TEXT,               -- the current transaction (withdrawal_txs), once signed
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    reviewed_by INTEGER REFERENCES users(id),
    reviewed_at_ms INTEGER,
    confirmed_at_ms INTEGER,
    block_number INTEGER,
    CHECK (amount_musdt = fee_musdt + net_musdt),
    UNIQUE (user_id, idem_key)
);
CREATE INDEX withdrawals_status ON withdrawals(status, id);
CREATE INDEX withdrawals_user ON withdrawals(user_id, created_at_ms);

-- Every transaction ever signed for a withdrawal, stored BEFORE its first broadcast so that
-- after a crash the same signed bytes (same TXID) are broadcast again, never a second one.
-- A new transaction is made only when the previous one is proven dead (expired and absent
-- from the solidified chain) or failed on chain and the operator retried.
CREATE TABLE withdrawal_txs (
    txid TEXT PRIMARY KEY,
    withdrawal_id INTEGER NOT NULL REFERENCES withdrawals(id),
    signed_json TEXT NOT NULL,
    expiration_ms INTEGER NOT NULL,
    fee_limit_sun INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    broadcasts INTEGER NOT NULL DEFAULT 0,
    last_broadcast_code TEXT,
    -- The head block seen once our clock was past the expiration: when the solidified
    -- chain reaches the next block and the TXID is not in it, it never will be.
    dead_after_block INTEGER,
    outcome TEXT NOT NULL DEFAULT 'pending'
        CHECK (outcome IN ('pending', 'confirmed', 'failed', 'expired')),
    result TEXT,             -- the receipt's result (SUCCESS, REVERT, OUT_OF_ENERGY, ...)
    finished_at_ms INTEGER
);
CREATE INDEX withdrawal_txs_withdrawal ON withdrawal_txs(withdrawal_id);
-- At most one live transaction per withdrawal: the heart of "never sends twice".
CREATE UNIQUE INDEX withdrawal_txs_one_pending ON withdrawal_txs(withdrawal_id)
    WHERE outcome = 'pending';
