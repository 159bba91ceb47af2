-- Mail and account security (issue 15): the mail outbox, email verification, one-time
-- tokens (password reset, email verification), TOTP two-factor with recovery codes, what a
-- session was opened from, the client addresses a user logged in from, and the hold of a
-- withdrawal to a new address.

-- Every mail is written here in the transaction of the change that causes it; the sender
-- job delivers it. `pending` until sent; `failed` only when the SMTP server refused it for
-- good (5xx); a server that is down leaves it pending with a later next_attempt_at_ms.
CREATE TABLE mail_outbox (
    id INTEGER PRIMARY KEY,
    user_id INTEGER REFERENCES users(id),
    kind TEXT NOT NULL,
    to_address TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    body_html TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms INTEGER NOT NULL,
    last_error TEXT,
    created_at_ms INTEGER NOT NULL,
    sent_at_ms INTEGER
);
CREATE INDEX mail_outbox_due ON mail_outbox(status, next_attempt_at_ms);

ALTER TABLE users ADD COLUMN email_verified_at_ms INTEGER;
-- TOTP: the secret of a setup not yet enabled, or of the enabled 2FA; the last time step a
-- code was accepted at (a code is accepted once: steps at or before it are refused).
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_enabled_at_ms INTEGER;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER;
-- The last password reset or 2FA change (withdrawals.hold_after_security_change).
ALTER TABLE users ADD COLUMN security_changed_at_ms INTEGER;

CREATE TABLE recovery_codes (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    code_sha256 TEXT NOT NULL,
    used_at_ms INTEGER
);
CREATE INDEX recovery_codes_user ON recovery_codes(user_id);

-- Single-use tokens sent by mail; only their SHA-256 is stored.
CREATE TABLE account_tokens (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    purpose TEXT NOT NULL CHECK (purpose IN ('password_reset', 'email_verify')),
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    used_at_ms INTEGER
);
CREATE INDEX account_tokens_user ON account_tokens(user_id, purpose);

ALTER TABLE sessions ADD COLUMN client_address TEXT;
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
ALTER TABLE sessions ADD COLUMN last_seen_at_ms INTEGER;
-- When this session last gave a valid 2FA code (security.admin_otp_fresh_minutes).
ALTER TABLE sessions ADD COLUMN otp_at_ms INTEGER;

-- The client addresses (IPv6: /64) each user logged in from: a login from a new one mails.
CREATE TABLE login_addresses (
    user_id INTEGER NOT NULL REFERENCES users(id),
    address_key TEXT NOT NULL,
    first_at_ms INTEGER NOT NULL,
    last_at_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, address_key)
);

-- Until when the sender leaves a queued withdrawal alone (new_address_hold).
ALTER TABLE withdrawals ADD COLUMN hold_until_ms INTEGER;
