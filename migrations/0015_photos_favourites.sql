-- Seller photos, favourites and their notices, call history (issue 17).

-- A seller's uploaded photo: the two re-encoded sizes are files under sellers.photo_dir,
-- named by their content's SHA-256 (the database holds only the names). `pending` until the
-- operator approves or rejects it; an approved photo is `replaced` when a newer one of the
-- same seller is approved, and a pending one when the seller uploads another before it
-- was decided. The listing shows the seller's one `approved` photo.
CREATE TABLE seller_photos (
    id INTEGER PRIMARY KEY,
    seller_id INTEGER NOT NULL REFERENCES users(id),
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'approved', 'rejected', 'replaced')),
    card_file TEXT NOT NULL,
    profile_file TEXT NOT NULL,
    width_px INTEGER NOT NULL,
    height_px INTEGER NOT NULL,
    upload_bytes INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    decided_at_ms INTEGER,
    decided_by INTEGER REFERENCES users(id),
    reason TEXT
);
CREATE INDEX seller_photos_status ON seller_photos(status, id);
CREATE INDEX seller_photos_seller ON seller_photos(seller_id, status);
CREATE INDEX seller_photos_card ON seller_photos(card_file);
CREATE INDEX seller_photos_profile ON seller_photos(profile_file);
-- At most one shown photo per seller.
CREATE UNIQUE INDEX seller_photos_one_approved ON seller_photos(seller_id)
    WHERE status = 'approved';

-- A buyer's favourite sellers.
CREATE TABLE favourites (
    buyer_id INTEGER NOT NULL REFERENCES users(id),
    seller_id INTEGER NOT NULL REFERENCES users(id),
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (buyer_id, seller_id)
) WITHOUT ROWID;
CREATE INDEX favourites_seller ON favourites(seller_id, buyer_id);

-- When a buyer was last told (socket or mail) that a favourite came online: at most one
-- notice of each kind per seller per buyer per favourites.notice_interval_minutes.
CREATE TABLE favourite_notices (
    buyer_id INTEGER NOT NULL REFERENCES users(id),
    seller_id INTEGER NOT NULL REFERENCES users(id),
    kind TEXT NOT NULL CHECK (kind IN ('socket', 'mail')),
    last_at_ms INTEGER NOT NULL,
    PRIMARY KEY (buyer_id, seller_id, kind)
) WITHOUT ROWID;

-- The buyer's opt-in to a mail when a favourite comes online (off by default).
ALTER TABLE users ADD COLUMN favourite_online_mail INTEGER NOT NULL DEFAULT 0
    CHECK (favourite_online_mail IN (0, 1));

-- Call history: a call's ledger lines are found by their ref ("call:<id>").
CREATE INDEX ledger_tx_ref ON ledger_tx(ref);
