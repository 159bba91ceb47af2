-- Tips: a buyer's extra payment to the seller of a call, once per idempotency key.

CREATE TABLE tips (
    id INTEGER PRIMARY KEY,
    call_id INTEGER NOT NULL REFERENCES calls(id),
    buyer_id INTEGER NOT NULL REFERENCES users(id),
    seller_id INTEGER NOT NULL REFERENCES users(id),
    idem_key TEXT NOT NULL,
    amount_musdt INTEGER NOT NULL CHECK (amount_musdt > 0),
    seller_musdt INTEGER NOT NULL CHECK (seller_musdt >= 0),
    commission_musdt INTEGER NOT NULL CHECK (commission_musdt >= 0),
    ledger_tx_id INTEGER NOT NULL REFERENCES ledger_tx(id),
    created_at_ms INTEGER NOT NULL,
    UNIQUE (buyer_id, idem_key),
    CHECK (seller_musdt + commission_musdt = amount_musdt)
);
CREATE INDEX tips_call ON tips(call_id);
CREATE INDEX tips_seller ON tips(seller_id, created_at_ms);
