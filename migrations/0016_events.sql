-- Operator events (issue 18): the durable outbox of events, their deliveries to each
-- configured webhook with every attempt, the last state of each threshold event, and the
-- cursors of the webhooks and the alert mails.

-- One row per event, written in the transaction of the change it reports. `id` orders them;
-- `event_id` is the stable id receivers see (evt_...), the same on every attempt.
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    data_json TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX events_type ON events(type, id);

-- One event to one webhook (named by its URL). `pending` until a 2xx; `dead` once it was
-- still failing at dead_at_ms (the operator may resend it).
CREATE TABLE event_deliveries (
    event_row INTEGER NOT NULL REFERENCES events(id),
    webhook TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms INTEGER NOT NULL,
    dead_at_ms INTEGER NOT NULL,
    last_http_status INTEGER,
    last_error TEXT,
    delivered_at_ms INTEGER,
    PRIMARY KEY (webhook, event_row)
);
CREATE INDEX event_deliveries_event ON event_deliveries(event_row);

-- Every attempt at a delivery: delivered (a 2xx) or failed, its HTTP status or its error.
CREATE TABLE event_attempts (
    id INTEGER PRIMARY KEY,
    event_row INTEGER NOT NULL REFERENCES events(id),
    webhook TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'failed')),
    http_status INTEGER,
    error TEXT,
    duration_ms INTEGER NOT NULL
);
CREATE INDEX event_attempts_delivery ON event_attempts(webhook, event_row);

-- How far each reader went: `webhook:<url>` (events up to here have a delivery row) and
-- `alerts:<type>` (events up to here were mailed), with when it last moved.
CREATE TABLE event_cursors (
    name TEXT PRIMARY KEY,
    event_row INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

-- The last state of each threshold event (hot_wallet.low, watcher.lagging): an event is
-- written only when the state changes.
CREATE TABLE event_thresholds (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('started', 'cleared')),
    changed_at_ms INTEGER NOT NULL
);
