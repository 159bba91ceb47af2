-- Text chat in a call (calls/chat.py): each message a party sent while the call was
-- connecting, live or paused, in the order the server took them. Part of the call's record
-- (a dispute is decided on it). `text` is stored as the sender typed it (trimmed of
-- surrounding whitespace), never as HTML.
CREATE TABLE call_messages (
    id INTEGER PRIMARY KEY,
    call_id INTEGER NOT NULL REFERENCES calls(id),
    from_user_id INTEGER NOT NULL REFERENCES users(id),
    text TEXT NOT NULL CHECK (length(text) BETWEEN 1 AND 1000),
    at_ms INTEGER NOT NULL
);
CREATE INDEX call_messages_call ON call_messages(call_id, id);

-- A report may be about one chat message of a call (the operator's queue shows it).
ALTER TABLE user_reports ADD COLUMN call_message_id INTEGER REFERENCES call_messages(id);
CREATE UNIQUE INDEX user_reports_message ON user_reports(reporter_id, call_message_id)
    WHERE call_message_id IS NOT NULL;
