-- What each withdrawal transaction burned on chain, from its solidified receipt (the TRX
-- paid for energy and bandwidth: the receipt's `fee`; the energy it used), and the time of
-- its block, for the operator's cost report (operator/costs.py). NULL: settled before this
-- was recorded, or paid outside the sender and confirmed by the operator by hand.
ALTER TABLE withdrawal_txs ADD COLUMN trx_spent_sun INTEGER CHECK (trx_spent_sun >= 0);
ALTER TABLE withdrawal_txs ADD COLUMN energy_used INTEGER CHECK (energy_used >= 0);
ALTER TABLE withdrawal_txs ADD COLUMN block_time_ms INTEGER;

-- The cost report reads the receipts of a time range.
CREATE INDEX withdrawal_txs_spent ON withdrawal_txs(block_time_ms)
    WHERE trx_spent_sun IS NOT NULL;
