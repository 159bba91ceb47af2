-- Operator: disputes and their refunds, moderation (bans, the reports queue, withdrawals
-- blocked until reviewed), the parties' media reports kept for disputes, and the reason
-- column of the audit log.

-- Set by a ban, cleared when the operator unbans (reviews) the user. Withdrawals of a
-- blocked user are neither accepted, sent nor approved.
ALTER TABLE users ADD COLUMN withdrawals_blocked INTEGER NOT NULL DEFAULT 0
    CHECK (withdrawals_blocked IN (0, 1));

-- Why the operator acted (who, what and when are already columns).
ALTER TABLE audit_log ADD COLUMN reason TEXT;
CREATE INDEX audit_log_target ON audit_log(target, id);

-- A report stays in the queue until the operator dismisses it or bans the reported user.
ALTER TABLE user_reports ADD COLUMN closed_at_ms INTEGER;
ALTER TABLE user_reports ADD COLUMN closed_by INTEGER REFERENCES users(id);
ALTER TABLE user_reports ADD COLUMN outcome TEXT;
CREATE INDEX user_reports_open ON user_reports(closed_at_ms, id);

-- A buyer's dispute of a call and the operator's resolution. The refund is one reversing
-- ledger transaction (idempotency key dispute:<id>:refund): from the seller's earnings
-- (pending first, then available) and the commission in proportion to the charge; what the
-- seller no longer holds is covered by revenue:commission (platform_covered_musdt).
CREATE TABLE disputes (
    id INTEGER PRIMARY KEY,
    call_id INTEGER NOT NULL REFERENCES calls(id),
    buyer_id INTEGER NOT NULL REFERENCES users(id),
    seller_id INTEGER NOT NULL REFERENCES users(id),
    reason TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
    created_at_ms INTEGER NOT NULL,
    resolved_at_ms INTEGER,
    resolved_by INTEGER REFERENCES users(id),
    note TEXT,
    refund_musdt INTEGER NOT NULL DEFAULT 0 CHECK (refund_musdt >= 0),
    from_seller_musdt INTEGER NOT NULL DEFAULT 0 CHECK (from_seller_musdt >= 0),
    from_commission_musdt INTEGER NOT NULL DEFAULT 0 CHECK (from_commission_musdt >= 0),
    platform_covered_musdt INTEGER NOT NULL DEFAULT 0 CHECK (platform_covered_musdt >= 0),
    ledger_tx_id INTEGER REFERENCES ledger_tx(id),
    CHECK (refund_musdt = from_seller_musdt + from_commission_musdt),
    CHECK ((status = 'resolved') = (resolved_at_ms IS NOT NULL))
);
CREATE UNIQUE INDEX disputes_one_open ON disputes(call_id) WHERE status = 'open';
CREATE INDEX disputes_status ON disputes(status, id);
CREATE INDEX disputes_call ON disputes(call_id);

-- What each party's media heartbeats said, written at every state change of the call and
-- at its end: the record a dispute is decided on, beside call_events and call_segments.
CREATE TABLE call_media (
    call_id INTEGER NOT NULL REFERENCES calls(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    reports INTEGER NOT NULL,            -- media reports received
    good_reports INTEGER NOT NULL,       -- connected, with growing counters
    last_state TEXT,                     -- connected / disconnected
    bytes_received INTEGER,
    frames_decoded INTEGER,
    last_report_at_ms INTEGER,
    socket_open INTEGER NOT NULL CHECK (socket_open IN (0, 1)),
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (call_id, user_id)
) WITHOUT ROWID;
