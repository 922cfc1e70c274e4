-- A sub-account enrolls its own contacts in the plans its parent shares
-- locked: an enrollment's sequence is its account's own or its parent's.
-- The account-scoped foreign key gives way to one on the sequence alone
-- and a trigger that holds the rule. SQLite changes a foreign key only by
-- rebuilding the table; the store applies migrations with foreign keys off
-- (and checks them after), so dropping the old table cascades to nothing.
CREATE TABLE enrollments_new (
    id                        TEXT PRIMARY KEY,
    account_id                TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    contact_id                TEXT NOT NULL,
    sequence_id               TEXT NOT NULL,
    version                   INTEGER NOT NULL,
    initiated_by              TEXT,
    status                    TEXT NOT NULL CHECK (status IN (
        'pending', 'queued', 'running', 'paused', 'completed', 'cancelled', 'opted_out', 'replied', 'bounced')),
    pause_reason              TEXT CHECK (pause_reason IN ('manual', 'out_of_office', 'error')),
    outcome                   TEXT CHECK (outcome IN ('positive', 'negative', 'neutral')),
    current_step              INTEGER NOT NULL,
    started_at                INTEGER NOT NULL,
    last_action_completed_at  INTEGER,
    next_action_at            INTEGER,
    event_date                INTEGER,
    resume_at                 INTEGER,
    queued_at                 INTEGER,
    ended_at                  INTEGER,
    created_at                INTEGER NOT NULL DEFAULT 0,
    updated_at                INTEGER NOT NULL DEFAULT 0,
    -- A paused enrollment always says why, and only a paused one does.
    CHECK ((status = 'paused') = (pause_reason IS NOT NULL)),
    -- Only a completed enrollment has an outcome.
    CHECK (outcome IS NULL OR status = 'completed'),
    -- FIFO dequeue of drip sequences needs the time each was queued.
    CHECK (status <> 'queued' OR queued_at IS NOT NULL),
    FOREIGN KEY (account_id, contact_id) REFERENCES contacts (account_id, id) ON DELETE CASCADE,
    FOREIGN KEY (sequence_id) REFERENCES sequences (id) ON DELETE CASCADE,
    FOREIGN KEY (sequence_id, version) REFERENCES sequence_versions (sequence_id, version),
    FOREIGN KEY (account_id, initiated_by) REFERENCES users (account_id, id)
);
INSERT INTO enrollments_new SELECT * FROM enrollments;
DROP TABLE enrollments;
ALTER TABLE enrollments_new RENAME TO enrollments;
CREATE UNIQUE INDEX enrollments_one_open_per_contact ON enrollments (sequence_id, contact_id)
    WHERE status IN ('pending', 'queued', 'running', 'paused');
CREATE INDEX enrollments_contact ON enrollments (contact_id);
CREATE INDEX enrollments_queue ON enrollments (sequence_id, queued_at) WHERE status = 'queued';
CREATE INDEX enrollments_running ON enrollments (sequence_id) WHERE status = 'running';
CREATE INDEX enrollments_resume ON enrollments (resume_at) WHERE resume_at IS NOT NULL;
CREATE INDEX enrollments_created ON enrollments (sequence_id, created_at, id);
CREATE INDEX enrollments_contact_created ON enrollments (contact_id, created_at, id);
CREATE INDEX enrollments_account_created ON enrollments (account_id, created_at, id);
CREATE INDEX enrollments_account_status ON enrollments (account_id, status, created_at, id);
CREATE INDEX enrollments_report ON enrollments (sequence_id, status, outcome, ended_at, id);
CREATE INDEX enrollments_sequence_account ON enrollments (sequence_id, account_id, status);
CREATE TRIGGER enrollments_sequence_of_account BEFORE INSERT ON enrollments
WHEN NOT EXISTS (
    SELECT 1 FROM sequences s
    WHERE s.id = NEW.sequence_id
      AND (s.account_id = NEW.account_id
           OR s.account_id = (SELECT parent_id FROM accounts WHERE id = NEW.account_id))
)
BEGIN
    SELECT RAISE(ABORT, 'an enrollment names a sequence that is neither its account''s nor its parent''s');
END;
CREATE TRIGGER enrollments_sequence_of_account_update BEFORE UPDATE OF account_id, sequence_id ON enrollments
WHEN NOT EXISTS (
    SELECT 1 FROM sequences s
    WHERE s.id = NEW.sequence_id
      AND (s.account_id = NEW.account_id
           OR s.account_id = (SELECT parent_id FROM accounts WHERE id = NEW.account_id))
)
BEGIN
    SELECT RAISE(ABORT, 'an enrollment names a sequence that is neither its account''s nor its parent''s');
END;
