-- Sweeps paid with energy lent by Stake 2.0 (sweeps.energy = "delegate"): each sweep records
-- how its energy was paid (energy_mode, fixed when it opens) and, when delegated, the steps of
-- the delegation beside its status: delegating (the DelegateResource transaction stored
-- before any broadcast) -> delegated (solidified SUCCESS; the sweep is signed) ->
-- undelegating (once the sweep is final, the UnDelegateResource transaction stored) ->
-- undelegated. delegated_sun is the stake lent (sun of staked TRX, not TRX spent);
-- delegation_fee_sun the bandwidth the two transactions burned from the staked wallet (also
-- counted in trx_spent_sun).
ALTER TABLE sweeps ADD COLUMN energy_mode TEXT NOT NULL DEFAULT 'burn'
    CHECK (energy_mode IN ('burn', 'delegate'));
ALTER TABLE sweeps ADD COLUMN delegation_status TEXT
    CHECK (delegation_status IN ('delegating', 'delegated', 'undelegating', 'undelegated'));
ALTER TABLE sweeps ADD COLUMN delegate_txid TEXT;
ALTER TABLE sweeps ADD COLUMN undelegate_txid TEXT;
ALTER TABLE sweeps ADD COLUMN delegated_sun INTEGER NOT NULL DEFAULT 0
    CHECK (delegated_sun >= 0);
ALTER TABLE sweeps ADD COLUMN delegation_fee_sun INTEGER NOT NULL DEFAULT 0
    CHECK (delegation_fee_sun >= 0);
CREATE INDEX sweeps_delegation ON sweeps(delegation_status)
    WHERE delegation_status IN ('delegating', 'delegated', 'undelegating');

-- sweep_txs learns the two delegation kinds (SQLite cannot alter a CHECK: the table is
-- rebuilt; nothing references it).
CREATE TABLE sweep_txs_new (
    txid TEXT PRIMARY KEY,
    sweep_id INTEGER NOT NULL REFERENCES sweeps(id),
    kind TEXT NOT NULL CHECK (kind IN ('topup', 'sweep', 'delegate', 'undelegate')),
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
INSERT INTO sweep_txs_new (txid, sweep_id, kind, signed_json, expiration_ms, amount,
                           broadcasts, last_broadcast_code, dead_after_block, outcome, result,
                           fee_sun, created_at_ms, finished_at_ms)
    SELECT txid, sweep_id, kind, signed_json, expiration_ms, amount, broadcasts,
           last_broadcast_code, dead_after_block, outcome, result, fee_sun, created_at_ms,
           finished_at_ms FROM sweep_txs;
DROP TABLE sweep_txs;
ALTER TABLE sweep_txs_new RENAME TO sweep_txs;
CREATE INDEX sweep_txs_sweep ON sweep_txs(sweep_id);
