-- Deposits to a personal address (deposits.mode = "address_per_user"): each buyer's one
-- HD-derived address, every USDT transfer to one (credited alone, or summed with smaller
-- ones once their total reaches deposits.min_usdt), and the sweeps of those addresses to the
-- hot wallet with every transaction they signed and the TRX they spent.

-- An index is allocated once per user and never reused: both are UNIQUE.
CREATE TABLE deposit_addresses (
    user_id INTEGER PRIMARY KEY REFERENCES users(id),
    derivation_index INTEGER NOT NULL UNIQUE CHECK (derivation_index >= 0),
    address TEXT NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL
);

-- Every USDT Transfer log to a personal address, once per (txid, log_index). `deposit_id` is
-- the credited deposit it is part of; NULL while the address's uncredited total is below
-- deposits.min_usdt.
CREATE TABLE address_transfers (
    id INTEGER PRIMARY KEY,
    txid TEXT NOT NULL,
    log_index INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    block_time_ms INTEGER NOT NULL,
    from_address TEXT NOT NULL,
    address TEXT NOT NULL REFERENCES deposit_addresses(address),
    user_id INTEGER NOT NULL REFERENCES users(id),
    amount_musdt INTEGER NOT NULL CHECK (amount_musdt > 0),
    source TEXT NOT NULL CHECK (source IN ('claim', 'watcher')),
    recorded_at_ms INTEGER NOT NULL,
    deposit_id INTEGER REFERENCES deposits(id),
    UNIQUE (txid, log_index)
);
CREATE INDEX address_transfers_uncredited ON address_transfers(user_id, id)
    WHERE deposit_id IS NULL;
CREATE INDEX address_transfers_address ON address_transfers(address, id);

-- A sweep of one address: waiting (why in wait_reason) -> funding (TRX top-up signed) ->
-- funded -> signed (the USDT transfer stored before any broadcast) -> sent -> confirmed, or
-- failed (final on chain). TRX: topup_sun sent from the hot wallet to the address,
-- topup_fee_sun burned by the top-up (activation included), sweep_fee_sun burned by the
-- sweep itself; trx_spent_sun = the two burns.
CREATE TABLE sweeps (
    id INTEGER PRIMARY KEY,
    address TEXT NOT NULL REFERENCES deposit_addresses(address),
    amount_musdt INTEGER NOT NULL CHECK (amount_musdt >= 0),
    status TEXT NOT NULL CHECK (status IN ('waiting', 'funding', 'funded', 'signed', 'sent',
                                           'confirmed', 'failed')),
    wait_reason TEXT,
    failure_reason TEXT,
    topup_txid TEXT,
    sweep_txid TEXT,
    topup_sun INTEGER NOT NULL DEFAULT 0 CHECK (topup_sun >= 0),
    topup_fee_sun INTEGER NOT NULL DEFAULT 0 CHECK (topup_fee_sun >= 0),
    sweep_fee_sun INTEGER NOT NULL DEFAULT 0 CHECK (sweep_fee_sun >= 0),
    trx_spent_sun INTEGER NOT NULL DEFAULT 0 CHECK (trx_spent_sun >= 0),
    block_number INTEGER,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    confirmed_at_ms INTEGER
);
-- One sweep under way per address.
CREATE UNIQUE INDEX sweeps_open ON sweeps(address)
    WHERE status NOT IN ('confirmed', 'failed');
CREATE INDEX sweeps_status ON sweeps(status, id);

-- Every transaction a sweep signed, stored BEFORE its first broadcast; the same bytes are
-- broadcast again until a block has them or they are proven expired.
CREATE TABLE sweep_txs (
    txid TEXT PRIMARY KEY,
    sweep_id INTEGER NOT NULL REFERENCES sweeps(id),
    kind TEXT NOT NULL CHECK (kind IN ('topup', 'sweep')),
    signed_json TEXT NOT NULL,
    expiration_ms INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    broadcasts INTEGER NOT NULL DEFAULT 0,
    last_broadcast_code TEXT,
    dead_after_block INTEGER,
    outcome TEXT CHECK (outcome IN ('confirmed', 'failed', 'expired')),
    result TEXT,
    fee_sun INTEGER,
    created_at_ms INTEGER NOT NULL,
    finished_at_ms INTEGER
);
CREATE INDEX sweep_txs_sweep ON sweep_txs(sweep_id);
