-- An account's message templates: a subject and a body with {{tokens}},
-- checked when saved. Email steps name one by id and read it when they run,
-- so an edit reaches every step that uses the template.
CREATE TABLE templates (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (account_id, name)
);

-- The webhook monitor: one entry per step whose HTTP request failed for
-- good, with the request as sent (secrets masked) and the response or the
-- error. An entry keeps its sequence and contact; it goes with them.
CREATE TABLE webhook_failures (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    sequence_id    TEXT NOT NULL REFERENCES sequences (id) ON DELETE CASCADE,
    enrollment_id  TEXT REFERENCES enrollments (id) ON DELETE SET NULL,
    action_id      TEXT REFERENCES actions (id) ON DELETE SET NULL,
    contact_id     TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    plugin_id      TEXT NOT NULL,
    step           INTEGER NOT NULL,
    attempts       INTEGER NOT NULL,
    message        TEXT NOT NULL,
    request        TEXT NOT NULL,
    response       TEXT,
    error          TEXT,
    failed_at      INTEGER NOT NULL
);
-- Listed newest first per account, filtered by sequence or contact.
CREATE INDEX webhook_failures_account ON webhook_failures (account_id, failed_at);
CREATE INDEX webhook_failures_sequence ON webhook_failures (sequence_id, failed_at);
CREATE INDEX webhook_failures_contact ON webhook_failures (contact_id, failed_at);
