-- Economy: tips, top-up bonuses (tiers from config, promotions by the operator) and what
-- they cost, and the buyer's own controls (spending limits, self-exclusion, consents given
-- at sign-up, leaderboard opt-in). Every token movement is in the ledger; these tables say
-- why it happened and hold the settings.

-- The 18+ and terms confirmations a user gave at sign-up.
CREATE TABLE user_consents (
    user_id INTEGER PRIMARY KEY REFERENCES users(id),
    adult_confirmed_at_ms INTEGER NOT NULL,
    terms_confirmed_at_ms INTEGER NOT NULL
);

-- A buyer's own controls. A NULL limit means no limit. A raised (or removed) limit waits
-- in pending_*: it takes effect at pending_*_from_ms (pending_*_musdt NULL = no limit).
CREATE TABLE buyer_controls (
    user_id INTEGER PRIMARY KEY REFERENCES users(id),
    daily_limit_musdt INTEGER CHECK (daily_limit_musdt >= 0),
    monthly_limit_musdt INTEGER CHECK (monthly_limit_musdt >= 0),
    pending_daily_musdt INTEGER CHECK (pending_daily_musdt >= 0),
    pending_daily_from_ms INTEGER,
    pending_monthly_musdt INTEGER CHECK (pending_monthly_musdt >= 0),
    pending_monthly_from_ms INTEGER,
    excluded_until_ms INTEGER,
    show_on_leaderboard INTEGER NOT NULL DEFAULT 0 CHECK (show_on_leaderboard IN (0, 1)),
    updated_at_ms INTEGER NOT NULL
);

-- Bonus tokens a buyer was given and has not spent, as of their last top-up. Bonus tokens
-- sit in the buyer's `available` (spendable like any token) and are spent last, so the
-- unspent bonus is min(bonus_musdt, available + held); withdrawable = available minus it
-- (server/economy.py withdrawable_musdt).
CREATE TABLE bonus_balances (
    user_id INTEGER PRIMARY KEY REFERENCES users(id),
    bonus_musdt INTEGER NOT NULL CHECK (bonus_musdt >= 0),
    updated_at_ms INTEGER NOT NULL
);

-- The operator's tiers, copied from config at start-up so the deposit credit path (which
-- runs in the watcher, claims and operator assignment alike) reads them in its transaction.
CREATE TABLE bonus_tiers (
    from_musdt INTEGER PRIMARY KEY CHECK (from_musdt > 0),
    percent_ppm INTEGER NOT NULL CHECK (percent_ppm BETWEEN 1 AND 1000000)
);

-- Time-limited promotions: extra percent on top-ups credited in [starts_at, ends_at).
CREATE TABLE promotions (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    percent_ppm INTEGER NOT NULL CHECK (percent_ppm BETWEEN 1 AND 1000000),
    from_musdt INTEGER NOT NULL DEFAULT 0 CHECK (from_musdt >= 0),
    starts_at_ms INTEGER NOT NULL,
    ends_at_ms INTEGER NOT NULL,
    created_by INTEGER REFERENCES users(id),
    created_at_ms INTEGER NOT NULL,
    CHECK (ends_at_ms > starts_at_ms)
);

-- Every bonus given, with its parts, so the operator sees what tiers and promotions cost.
CREATE TABLE bonus_grants (
    id INTEGER PRIMARY KEY,
    ledger_tx_id INTEGER NOT NULL UNIQUE REFERENCES ledger_tx(id),
    deposit_ref TEXT NOT NULL UNIQUE,
    user_id INTEGER NOT NULL REFERENCES users(id),
    deposit_musdt INTEGER NOT NULL CHECK (deposit_musdt > 0),
    tier_ppm INTEGER NOT NULL DEFAULT 0,
    tier_bonus_musdt INTEGER NOT NULL CHECK (tier_bonus_musdt >= 0),
    promotion_id INTEGER REFERENCES promotions(id),
    promo_bonus_musdt INTEGER NOT NULL CHECK (promo_bonus_musdt >= 0),
    at_ms INTEGER NOT NULL
);
CREATE INDEX bonus_grants_promotion ON bonus_grants(promotion_id);

-- Tips: a buyer's Idempotency-Key makes a tip happen once (idem_key = the ledger's key).
CREATE TABLE tips (
    id INTEGER PRIMARY KEY,
    idem_key TEXT NOT NULL UNIQUE,
    call_id INTEGER NOT NULL REFERENCES calls(id),
    buyer_id INTEGER NOT NULL REFERENCES users(id),
    seller_id INTEGER NOT NULL REFERENCES users(id),
    amount_musdt INTEGER NOT NULL CHECK (amount_musdt > 0),
    seller_musdt INTEGER NOT NULL CHECK (seller_musdt >= 0),
    commission_musdt INTEGER NOT NULL CHECK (commission_musdt >= 0),
    ledger_tx_id INTEGER NOT NULL UNIQUE REFERENCES ledger_tx(id),
    created_at_ms INTEGER NOT NULL,
    CHECK (seller_musdt + commission_musdt = amount_musdt)
);
CREATE INDEX tips_call ON tips(call_id);
CREATE INDEX tips_seller ON tips(seller_id, created_at_ms);
CREATE INDEX tips_buyer ON tips(buyer_id, created_at_ms);
