-- Pauses are bounded over a whole call (billing.max_pauses_per_call and
-- max_paused_s_per_call), and the record shows who paused: the number of pauses, their total
-- time and the side the current pause (for an ended call: the last one, if it ended paused)
-- came from. Each `paused` row of call_events names that side in `detail`.
ALTER TABLE calls ADD COLUMN pauses INTEGER NOT NULL DEFAULT 0 CHECK (pauses >= 0);
ALTER TABLE calls ADD COLUMN paused_ms INTEGER NOT NULL DEFAULT 0 CHECK (paused_ms >= 0);
ALTER TABLE calls ADD COLUMN paused_by TEXT CHECK (paused_by IN ('buyer', 'seller', 'both'));

-- Automatic refunds of lost calls are limited per buyer (billing.auto_refunds_per_day in any
-- 24 hours): a call that was refunded in full when it ended, without a dispute.
ALTER TABLE calls ADD COLUMN auto_refunded INTEGER NOT NULL DEFAULT 0
    CHECK (auto_refunded IN (0, 1));
UPDATE calls SET auto_refunded = 1
WHERE end_reason IN ('connection_lost', 'failed') AND refunded_musdt > 0
  AND NOT EXISTS (SELECT 1 FROM disputes d WHERE d.call_id = calls.id AND d.refund_musdt > 0);
CREATE INDEX calls_auto_refunds ON calls(buyer_id, ended_at_ms) WHERE auto_refunded = 1;
