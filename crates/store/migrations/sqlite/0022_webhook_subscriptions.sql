-- Events out: an account's webhook subscriptions, the events written for
-- them in the transaction of the state change that made them, and one
-- delivery of each event to each subscription that asked for its type.
CREATE TABLE webhook_subscriptions (
    account_id           TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id                   TEXT NOT NULL,
    url                  TEXT NOT NULL,
    description          TEXT,
    -- A JSON array of event types.
    event_types          TEXT NOT NULL,
    -- `whsec_` and the base64 of the signing key: the receiver needs it, so
    -- it is kept as it is and shown once.
    secret               TEXT NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    disabled_reason      TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    failing_since        INTEGER,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE INDEX webhook_subscriptions_active ON webhook_subscriptions (account_id) WHERE status = 'active';

-- One row per event some subscription asked for; the id is the timeline
-- event's, and receivers see it as `webhook-id`.
CREATE TABLE webhook_events (
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id         TEXT NOT NULL,
    type       TEXT NOT NULL,
    -- The body as sent.
    payload    TEXT NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (account_id, id)
);

CREATE TABLE webhook_deliveries (
    -- Commit order within an ordering key: a delivery goes only when no
    -- earlier one of its subscription and key is pending.
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    account_id      TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    ordering_key    TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_token     TEXT,
    lease_expires_at INTEGER,
    response_status INTEGER,
    response_body   TEXT,
    error           TEXT,
    last_attempt_at INTEGER,
    delivered_at    INTEGER,
    replay_of       TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    FOREIGN KEY (account_id, subscription_id) REFERENCES webhook_subscriptions (account_id, id) ON DELETE CASCADE,
    FOREIGN KEY (account_id, event_id) REFERENCES webhook_events (account_id, id) ON DELETE CASCADE
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, seq) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (subscription_id, ordering_key, seq) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (account_id, subscription_id, seq);
