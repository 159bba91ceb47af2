-- Every USDT Transfer log out of the hot wallet, as the deposit watcher reads it from
-- solidified blocks (in the same transaction that moves its cursor, so no block is skipped).
-- Reconcile compares them with confirmed withdrawals: a transfer no withdrawal accounts for
-- (e.g. one paid after the backup a restored database came from) is shown to the operator.
CREATE TABLE hot_wallet_transfers (
    txid TEXT NOT NULL,
    log_index INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    block_time_ms INTEGER,
    from_address TEXT NOT NULL,
    to_address TEXT NOT NULL,
    amount_musdt INTEGER NOT NULL CHECK (amount_musdt > 0),
    recorded_at_ms INTEGER NOT NULL,
    PRIMARY KEY (txid, log_index)
);
CREATE INDEX hot_wallet_transfers_to ON hot_wallet_transfers(to_address, amount_musdt);

-- Written only into the copy `meterchat backup` makes, never into a live database: a
-- server that opens a database with this row knows it is a restored backup (even one put
-- back with cp) and holds every withdrawal that was not final for the operator first.
CREATE TABLE backup_marker (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    taken_at_ms INTEGER NOT NULL
);

-- Reconcile looks up the confirmed withdrawal of each hot-wallet transfer by its TXID.
CREATE INDEX withdrawals_txid ON withdrawals(txid) WHERE txid IS NOT NULL;
