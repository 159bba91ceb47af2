-- The operator's user search finds an email by its beginning in any case
-- (operator/finder.py: email LIKE 'prefix%'): an index on the address without case lets
-- SQLite read that range instead of every user.
CREATE INDEX users_email_nocase ON users(email COLLATE NOCASE);
