-- The initial schema of the store on SQLite, the embedded default.
--
-- Conventions (shared with migrations/postgres): ids are TEXT with a type
-- prefix (`acc_…`) so a misplaced id is visible in logs; time is INTEGER Unix
-- milliseconds so both backends compare and index it the same way; JSON is
-- TEXT because only the host reads inside it; flags are INTEGER 0/1 with a
-- CHECK because SQLite has no boolean type; every enum column has a CHECK so
-- a typo in code fails at the write, not at a later read. Rows that belong to
-- an account reference their parents through (account_id, id) pairs, so the
-- schema itself refuses a reference that crosses accounts.

-- Accounts form a hierarchy (enterprise and sub-accounts). The store refuses
-- cycles before writing; RESTRICT keeps a parent from vanishing under its
-- children.
CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    parent_id   TEXT REFERENCES accounts (id) ON DELETE RESTRICT,
    created_at  INTEGER NOT NULL,
    CHECK (parent_id IS NULL OR parent_id <> id)
);
-- Children of an account, for the cycle check and sub-account listings.
CREATE INDEX accounts_parent ON accounts (parent_id);

-- Contact types are rows, not an enum, because each account renames them;
-- contacts reference the row so a rename touches one row.
CREATE TABLE contact_types (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    position    INTEGER NOT NULL,
    UNIQUE (account_id, name),
    -- The target of the account-scoped foreign key from contacts.
    UNIQUE (account_id, id)
);

-- Users of an account. Users are deactivated rather than deleted, since
-- actions, enrollments and events keep pointing at them.
CREATE TABLE users (
    id                TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    email             TEXT NOT NULL,
    role              TEXT NOT NULL CHECK (role IN ('admin', 'agent', 'viewer')),
    active            INTEGER NOT NULL CHECK (active IN (0, 1)),
    delegate          INTEGER NOT NULL CHECK (delegate IN (0, 1)),
    timezone          TEXT NOT NULL,
    signature         TEXT NOT NULL,
    sender_connected  INTEGER NOT NULL CHECK (sender_connected IN (0, 1)),
    created_at        INTEGER NOT NULL,
    -- One login per address within an account.
    UNIQUE (account_id, email),
    UNIQUE (account_id, id)
);

-- Companies, in an acyclic hierarchy the store checks before writing.
CREATE TABLE companies (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    owner_id    TEXT,
    parent_id   TEXT,
    created_at  INTEGER NOT NULL,
    UNIQUE (account_id, id),
    CHECK (parent_id IS NULL OR parent_id <> id),
    FOREIGN KEY (account_id, owner_id) REFERENCES users (account_id, id),
    FOREIGN KEY (account_id, parent_id) REFERENCES companies (account_id, id)
);
-- Children of a company, for the cycle check and the hierarchy view.
CREATE INDEX companies_parent ON companies (parent_id);

-- Contacts: every field of model::Contact. Opt-outs are three columns, not
-- JSON, because the scheduler filters on them.
CREATE TABLE contacts (
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind             TEXT NOT NULL CHECK (kind IN ('lead', 'contact')),
    first_name       TEXT NOT NULL,
    last_name        TEXT NOT NULL,
    email            TEXT,
    phone            TEXT,
    owner_id         TEXT,
    company_id       TEXT,
    contact_type_id  TEXT NOT NULL,
    lead_source      TEXT,
    sales_cycle      TEXT,
    timezone         TEXT,
    opt_out_email    INTEGER NOT NULL CHECK (opt_out_email IN (0, 1)),
    opt_out_sms      INTEGER NOT NULL CHECK (opt_out_sms IN (0, 1)),
    opt_out_phone    INTEGER NOT NULL CHECK (opt_out_phone IN (0, 1)),
    attributes       TEXT NOT NULL,
    last_engaged     INTEGER,
    last_contacted   INTEGER,
    created_at       INTEGER NOT NULL,
    UNIQUE (account_id, id),
    FOREIGN KEY (account_id, owner_id) REFERENCES users (account_id, id),
    FOREIGN KEY (account_id, company_id) REFERENCES companies (account_id, id),
    FOREIGN KEY (account_id, contact_type_id) REFERENCES contact_types (account_id, id)
);
-- A company's contacts, for the engagement overview.
CREATE INDEX contacts_company ON contacts (company_id);
-- An owner's contacts, for the contact-owner rule and reassignment.
CREATE INDEX contacts_owner ON contacts (owner_id);

-- Sequences (cadences, action plans). Settings the store queries by
-- (next sequence, lead source, locked sharing) are columns; the rest is JSON.
CREATE TABLE sequences (
    id                TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    description       TEXT NOT NULL,
    plan_type         TEXT NOT NULL
        CHECK (plan_type IN ('connection', 'conversion', 'retention', 'event', 'seasonal', 'general')),
    state             TEXT NOT NULL CHECK (state IN ('draft', 'active', 'paused', 'archived')),
    timing_mode       TEXT NOT NULL CHECK (timing_mode IN ('after_previous', 'from_start', 'from_event')),
    next_sequence_id  TEXT,
    lead_source       TEXT,
    shared_locked     INTEGER NOT NULL CHECK (shared_locked IN (0, 1)),
    settings          TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (account_id, id),
    -- Chaining stays inside the account; a sequence named as another's next
    -- cannot be deleted while it is.
    FOREIGN KEY (account_id, next_sequence_id) REFERENCES sequences (account_id, id)
);
-- Auto-enrolment looks up the active sequences of a lead source.
CREATE INDEX sequences_lead_source ON sequences (account_id, lead_source) WHERE lead_source IS NOT NULL;

-- Immutable versions of a sequence's steps: an enrollment pins one, so its
-- steps never change underneath it. Steps are one JSON document because they
-- are always read and written whole.
CREATE TABLE sequence_versions (
    sequence_id  TEXT NOT NULL REFERENCES sequences (id) ON DELETE CASCADE,
    version      INTEGER NOT NULL CHECK (version >= 1),
    steps        TEXT NOT NULL,
    created_by   TEXT REFERENCES users (id),
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (sequence_id, version)
);
-- Immutability is enforced here, not only by the absence of an update query.
CREATE TRIGGER sequence_versions_immutable BEFORE UPDATE ON sequence_versions
BEGIN
    SELECT RAISE(ABORT, 'sequence versions are immutable');
END;

-- Enrollments (sequence instances): a contact in a pinned version.
CREATE TABLE enrollments (
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
    -- A paused enrollment always says why, and only a paused one does.
    CHECK ((status = 'paused') = (pause_reason IS NOT NULL)),
    -- Only a completed enrollment has an outcome.
    CHECK (outcome IS NULL OR status = 'completed'),
    -- FIFO dequeue of drip sequences needs the time each was queued.
    CHECK (status <> 'queued' OR queued_at IS NOT NULL),
    FOREIGN KEY (account_id, contact_id) REFERENCES contacts (account_id, id) ON DELETE CASCADE,
    FOREIGN KEY (account_id, sequence_id) REFERENCES sequences (account_id, id) ON DELETE CASCADE,
    FOREIGN KEY (sequence_id, version) REFERENCES sequence_versions (sequence_id, version),
    FOREIGN KEY (account_id, initiated_by) REFERENCES users (account_id, id)
);
-- SPEC §1: never twice in the same sequence while an earlier enrollment is
-- unfinished. The index is the rule; the store maps its violation to a
-- conflict naming it.
CREATE UNIQUE INDEX enrollments_one_open_per_contact ON enrollments (sequence_id, contact_id)
    WHERE status IN ('pending', 'queued', 'running', 'paused');
-- The sequences of a contact.
CREATE INDEX enrollments_contact ON enrollments (contact_id);
-- Drip: the oldest queued enrollment of a sequence starts next.
CREATE INDEX enrollments_queue ON enrollments (sequence_id, queued_at) WHERE status = 'queued';
-- Drip: how many run at once.
CREATE INDEX enrollments_running ON enrollments (sequence_id) WHERE status = 'running';
-- Out-of-office pauses that resume on a return date.
CREATE INDEX enrollments_resume ON enrollments (resume_at) WHERE resume_at IS NOT NULL;

-- Actions: one per step of an enrollment, projected from enrollment on.
-- `is_current` marks the one action of an enrollment that may be claimed or
-- be active; the lease columns let several hosts share the work.
CREATE TABLE actions (
    id                       TEXT PRIMARY KEY,
    enrollment_id            TEXT NOT NULL REFERENCES enrollments (id) ON DELETE CASCADE,
    step                     INTEGER NOT NULL CHECK (step >= 0),
    plugin_id                TEXT NOT NULL,
    activation               TEXT NOT NULL CHECK (activation IN ('manual', 'automatic')),
    owner_id                 TEXT REFERENCES users (id),
    status                   TEXT NOT NULL
        CHECK (status IN ('future', 'active', 'completed', 'skipped', 'disabled', 'failed')),
    due_at                   INTEGER,
    show_on_engage           INTEGER NOT NULL CHECK (show_on_engage IN (0, 1)),
    deferral_reason          TEXT CHECK (deferral_reason IN (
        'queued', 'owner_inactive', 'delegated_owner', 'missing_email', 'missing_phone', 'sender_not_connected',
        'plugin_disabled', 'legacy_merge_syntax', 'opted_out', 'criteria_unmet', 'outside_business_hours',
        'duplicate_attempt')),
    opt_out                  INTEGER NOT NULL CHECK (opt_out IN (0, 1)),
    result                   TEXT,
    output                   TEXT,
    attempts                 INTEGER NOT NULL CHECK (attempts >= 0),
    skip_criteria_evaluated  INTEGER NOT NULL CHECK (skip_criteria_evaluated IN (0, 1)),
    completed_at             INTEGER,
    completed_by             TEXT REFERENCES users (id),
    is_current               INTEGER NOT NULL CHECK (is_current IN (0, 1)),
    lease_token              TEXT,
    lease_expires_at         INTEGER,
    send_attempted_at        INTEGER,
    created_at               INTEGER NOT NULL,
    updated_at               INTEGER NOT NULL,
    -- One action per step of an enrollment.
    UNIQUE (enrollment_id, step),
    -- A lease is a token with an expiry, never half of one.
    CHECK ((lease_token IS NULL) = (lease_expires_at IS NULL))
);
-- The scheduling invariant (ISSUE 3): at most one current action per
-- enrollment, so at most one is ever claimable or active.
CREATE UNIQUE INDEX actions_one_current_per_enrollment ON actions (enrollment_id) WHERE is_current;
-- The claim query and the scheduler's next wake-up scan this index only.
CREATE INDEX actions_due ON actions (due_at) WHERE is_current AND status = 'future';
-- The Engage view: an owner's active actions by due date.
CREATE INDEX actions_engage ON actions (owner_id, due_at) WHERE status = 'active';

-- Events: the timeline and audit trail. References cascade so that removing
-- an enrollment (SPEC §5) or a contact removes its history with it.
CREATE TABLE events (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    contact_id     TEXT REFERENCES contacts (id) ON DELETE CASCADE,
    company_id     TEXT REFERENCES companies (id) ON DELETE CASCADE,
    enrollment_id  TEXT REFERENCES enrollments (id) ON DELETE CASCADE,
    action_id      TEXT REFERENCES actions (id) ON DELETE CASCADE,
    kind           TEXT NOT NULL,
    actor          TEXT NOT NULL,
    reason         TEXT,
    before         TEXT,
    after          TEXT,
    level          TEXT NOT NULL CHECK (level IN ('info', 'warning', 'error')),
    at             INTEGER NOT NULL
);
-- Contact, company and enrollment timelines, newest first.
CREATE INDEX events_contact ON events (contact_id, at);
CREATE INDEX events_company ON events (company_id, at);
CREATE INDEX events_enrollment ON events (enrollment_id, at);
-- The cascade from actions needs an index to avoid a full scan per delete.
CREATE INDEX events_action ON events (action_id);

-- Plugins known to the host: built-ins are embedded in the binary (no
-- bytes), add-ons keep their component bytes so every host can load them.
CREATE TABLE plugins (
    id           TEXT NOT NULL,
    version      TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('action', 'predicate')),
    manifest     TEXT NOT NULL,
    wasm_digest  TEXT NOT NULL,
    wasm         BLOB,
    builtin      INTEGER NOT NULL CHECK (builtin IN (0, 1)),
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (id, version),
    CHECK ((builtin = 1) = (wasm IS NULL))
);

-- Per-account enablement and capability grants of a plugin (all versions of
-- an id; a new version asking for more capabilities is compared against
-- `approved_capabilities` for re-approval). No foreign key to plugins: its key
-- is (id, version) and a grant may be prepared before the upload.
CREATE TABLE plugin_accounts (
    account_id             TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    plugin_id              TEXT NOT NULL,
    enabled                INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    grants                 TEXT NOT NULL,
    approved_capabilities  TEXT NOT NULL,
    updated_at             INTEGER NOT NULL,
    PRIMARY KEY (account_id, plugin_id)
);

-- Outgoing messages, written in the transaction that completes the action
-- and handed to a transport by a dispatcher. The idempotency key is unique so
-- a retried action can never queue the same message twice.
CREATE TABLE outbox (
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    action_id        TEXT REFERENCES actions (id) ON DELETE CASCADE,
    channel          TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
    payload          TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL UNIQUE,
    state            TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'failed')),
    attempts         INTEGER NOT NULL CHECK (attempts >= 0),
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    sent_at          INTEGER,
    -- When the dispatcher may (re)try it: its creation, then a backoff
    -- after each temporary failure.
    next_attempt_at  INTEGER NOT NULL,
    -- Like actions, a message is leased to one dispatcher at a time, so
    -- hosts sharing the database never hand the same message over twice.
    lease_token      TEXT,
    lease_expires_at INTEGER,
    CHECK ((state = 'sent') = (sent_at IS NOT NULL)),
    CHECK ((lease_token IS NULL) = (lease_expires_at IS NULL))
);
-- The dispatcher claims queued messages by when they may be tried.
CREATE INDEX outbox_queued ON outbox (next_attempt_at) WHERE state = 'queued';
-- The cascade from actions.
CREATE INDEX outbox_action ON outbox (action_id);
