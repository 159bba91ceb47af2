-- Sellers and presence, blocks and reports, calls with their durable billing state and
-- their whole history (state changes and every 6-second segment).

CREATE TABLE sellers (
    user_id INTEGER PRIMARY KEY REFERENCES users(id),
    rate_tokens_per_min INTEGER NOT NULL CHECK (rate_tokens_per_min > 0),
    bio TEXT NOT NULL DEFAULT '',
    tags_json TEXT NOT NULL DEFAULT '[]',
    languages_json TEXT NOT NULL DEFAULT '[]',
    online INTEGER NOT NULL DEFAULT 0 CHECK (online IN (0, 1)),
    -- The operator may give a seller their own commission (parts per million of a charge).
    commission_ppm INTEGER CHECK (commission_ppm BETWEEN 0 AND 1000000),
    updated_at_ms INTEGER NOT NULL
);
CREATE INDEX sellers_online_rate ON sellers(online, rate_tokens_per_min);

CREATE TABLE seller_tags (
    user_id INTEGER NOT NULL REFERENCES sellers(user_id),
    tag TEXT NOT NULL,
    PRIMARY KEY (tag, user_id)
) WITHOUT ROWID;

CREATE TABLE user_blocks (
    blocker_id INTEGER NOT NULL REFERENCES users(id),
    blocked_id INTEGER NOT NULL REFERENCES users(id),
    reason TEXT,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
) WITHOUT ROWID;
CREATE INDEX user_blocks_blocked ON user_blocks(blocked_id, blocker_id);

CREATE TABLE user_reports (
    id INTEGER PRIMARY KEY,
    reporter_id INTEGER NOT NULL REFERENCES users(id),
    reported_id INTEGER NOT NULL REFERENCES users(id),
    reason TEXT,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX user_reports_reported ON user_reports(reported_id);

-- One row per call. billed_tenths counts the 6-second segments recorded so far; the hold
-- covers segments settled_tenths+1 .. settled_tenths+hold_tenths and is held_musdt in the
-- buyer's held account. minute_no numbers the holds (idempotency keys of the ledger).
CREATE TABLE calls (
    id INTEGER PRIMARY KEY,
    buyer_id INTEGER NOT NULL REFERENCES users(id),
    seller_id INTEGER NOT NULL REFERENCES users(id),
    rate_tokens_per_min INTEGER NOT NULL CHECK (rate_tokens_per_min > 0),
    commission_ppm INTEGER NOT NULL CHECK (commission_ppm BETWEEN 0 AND 1000000),
    spend_cap_musdt INTEGER CHECK (spend_cap_musdt > 0),
    state TEXT NOT NULL CHECK (state IN ('ringing', 'connecting', 'live', 'paused', 'ended',
                                         'declined', 'missed', 'cancelled')),
    end_reason TEXT,
    buyer_available_acct INTEGER NOT NULL REFERENCES accounts(id),
    buyer_held_acct INTEGER NOT NULL REFERENCES accounts(id),
    seller_acct INTEGER NOT NULL REFERENCES accounts(id),
    live_ms INTEGER NOT NULL DEFAULT 0,
    billed_tenths INTEGER NOT NULL DEFAULT 0,
    settled_tenths INTEGER NOT NULL DEFAULT 0,
    hold_tenths INTEGER NOT NULL DEFAULT 0,
    held_musdt INTEGER NOT NULL DEFAULT 0 CHECK (held_musdt >= 0),
    minute_no INTEGER NOT NULL DEFAULT 0,
    charged_musdt INTEGER NOT NULL DEFAULT 0,
    seller_earned_musdt INTEGER NOT NULL DEFAULT 0,
    commission_musdt INTEGER NOT NULL DEFAULT 0,
    refunded_musdt INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL,
    accepted_at_ms INTEGER,
    live_at_ms INTEGER,
    ended_at_ms INTEGER,
    rating_stars INTEGER CHECK (rating_stars BETWEEN 1 AND 5),
    rating_comment TEXT,
    CHECK (billed_tenths >= settled_tenths),
    CHECK (billed_tenths <= settled_tenths + hold_tenths OR state IN ('ended', 'declined',
                                                                      'missed', 'cancelled'))
);
-- A seller is in at most one call, and so is a buyer.
CREATE UNIQUE INDEX calls_seller_active ON calls(seller_id)
    WHERE state IN ('ringing', 'connecting', 'live', 'paused');
CREATE UNIQUE INDEX calls_buyer_active ON calls(buyer_id)
    WHERE state IN ('ringing', 'connecting', 'live', 'paused');
CREATE INDEX calls_seller ON calls(seller_id, state);
CREATE INDEX calls_buyer ON calls(buyer_id, id);
CREATE INDEX calls_state ON calls(state) WHERE state IN ('ringing', 'connecting', 'live', 'paused');

-- Every completed segment, with the time it was recorded: the record a dispute is decided on.
CREATE TABLE call_segments (
    call_id INTEGER NOT NULL REFERENCES calls(id),
    tenth INTEGER NOT NULL CHECK (tenth >= 1),
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (call_id, tenth)
) WITHOUT ROWID;

-- Every state change of a call and why.
CREATE TABLE call_events (
    id INTEGER PRIMARY KEY,
    call_id INTEGER NOT NULL REFERENCES calls(id),
    at_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX call_events_call ON call_events(call_id, id);
