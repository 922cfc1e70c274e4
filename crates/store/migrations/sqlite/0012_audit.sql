-- The audit trail: every edit of an account's records made through the API
-- (contacts, companies, users, keys, templates, plugin grants, sequences,
-- contact types), with who made it, through which key and request, and the
-- record before and after. Rows outlive what they describe: a deleted
-- contact's audit stays, so nothing references the target.
CREATE TABLE audit (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    actor        TEXT NOT NULL,
    key_id       TEXT,
    request_id   TEXT,
    before       TEXT,
    after        TEXT,
    at           INTEGER NOT NULL
);
-- The account's trail in order, and one record's trail.
CREATE INDEX audit_account ON audit (account_id, at, id);
CREATE INDEX audit_target ON audit (account_id, target_type, target_id, at, id);
