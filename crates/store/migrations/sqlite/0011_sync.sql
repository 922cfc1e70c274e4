-- Incremental sync: every record a client syncs has when it was made and
-- when it last changed, lists are ordered by creation (then id), and a
-- deleted record leaves a tombstone.
ALTER TABLE users ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
UPDATE users SET updated_at = created_at;
ALTER TABLE companies ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
UPDATE companies SET updated_at = created_at;
ALTER TABLE contacts ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
UPDATE contacts SET updated_at = created_at;
ALTER TABLE enrollments ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE enrollments ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
UPDATE enrollments SET created_at = started_at,
    updated_at = MAX(started_at, COALESCE(ended_at, 0), COALESCE(last_action_completed_at, 0));

-- Lists in creation order, and what changed since a time.
CREATE INDEX users_created ON users (account_id, created_at, id);
CREATE INDEX users_updated ON users (account_id, updated_at);
CREATE INDEX companies_created ON companies (account_id, created_at, id);
CREATE INDEX companies_updated ON companies (account_id, updated_at);
CREATE INDEX contacts_created ON contacts (account_id, created_at, id);
CREATE INDEX contacts_updated ON contacts (account_id, updated_at);
CREATE INDEX sequences_created ON sequences (account_id, created_at, id);
CREATE INDEX templates_created ON templates (account_id, created_at, id);
CREATE INDEX enrollments_created ON enrollments (sequence_id, created_at, id);
CREATE INDEX enrollments_contact_created ON enrollments (contact_id, created_at, id);

-- Tombstones of deleted records, for clients that sync.
CREATE TABLE deletions (
    account_id  TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    collection  TEXT NOT NULL CHECK (collection IN ('contacts', 'enrollments', 'templates')),
    record_id   TEXT NOT NULL,
    deleted_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, collection, record_id)
);
CREATE INDEX deletions_since ON deletions (account_id, deleted_at, record_id);
