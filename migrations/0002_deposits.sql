-- USDT deposits: intents with a unique amount, credited transfers and unmatched ones, the
-- watcher's cursor and the TXIDs buyers pasted.

CREATE TABLE deposit_intents (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    amount_musdt INTEGER NOT NULL CHECK (amount_musdt > 0),
    address TEXT NOT NULL,
    usdt_contract TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    -- The amount is not handed out again before this (expiry + 24 h), so a late transfer
    -- still finds its intent.
    reserved_until_ms INTEGER NOT NULL,
    paid_deposit_id INTEGER REFERENCES deposits(id),
    CHECK (expires_at_ms > created_at_ms AND reserved_until_ms >= expires_at_ms)
);
CREATE INDEX deposit_intents_amount ON deposit_intents(amount_musdt, reserved_until_ms);
CREATE INDEX deposit_intents_user ON deposit_intents(user_id, id);

-- Every USDT Transfer log to the deposit address that we have seen in a solidified block.
CREATE TABLE deposits (
    id INTEGER PRIMARY KEY,
    txid TEXT NOT NULL,
    log_index INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    block_time_ms INTEGER NOT NULL,
    from_address TEXT NOT NULL,
    to_address TEXT NOT NULL,
    contract TEXT NOT NULL,
    amount_musdt INTEGER NOT NULL CHECK (amount_musdt >= 0),
    status TEXT NOT NULL CHECK (status IN ('credited', 'unmatched')),
    user_id INTEGER REFERENCES users(id),
    intent_id INTEGER UNIQUE REFERENCES deposit_intents(id),
    ledger_tx_id INTEGER REFERENCES ledger_tx(id),
    source TEXT NOT NULL CHECK (source IN ('claim', 'watcher', 'operator')),
    recorded_at_ms INTEGER NOT NULL,
    credited_at_ms INTEGER,
    -- A transfer is credited at most once, whoever races for it.
    UNIQUE (txid, log_index),
    CHECK ((status = 'credited') = (user_id IS NOT NULL AND ledger_tx_id IS NOT NULL))
);
CREATE INDEX deposits_user ON deposits(user_id, id);
CREATE INDEX deposits_status ON deposits(status, id);

-- TXIDs a buyer pasted that were not final yet; shown as `confirming` until the watcher
-- records the transfer.
CREATE TABLE deposit_claims (
    txid TEXT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id),
    claimed_at_ms INTEGER NOT NULL,
    PRIMARY KEY (txid, user_id)
);

-- The last solidified block the watcher has read and recorded whole.
CREATE TABLE chain_cursor (
    name TEXT PRIMARY KEY,
    block_number INTEGER NOT NULL CHECK (block_number >= 0),
    updated_at_ms INTEGER NOT NULL
);
