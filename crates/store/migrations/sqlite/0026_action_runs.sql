-- Which plugin version answered for an action, and the log lines its calls
-- wrote (capped per attempt), kept with the attempt they belong to.
ALTER TABLE actions ADD COLUMN plugin_version TEXT;

CREATE TABLE action_logs (
    action_id      TEXT NOT NULL REFERENCES actions (id) ON DELETE CASCADE,
    account_id     TEXT NOT NULL,
    -- The attempt the plugin saw (`step-context.attempt`), from 1.
    attempt        INTEGER NOT NULL,
    -- The line's place within the attempt, from 0.
    line           INTEGER NOT NULL,
    plugin_version TEXT NOT NULL,
    at             INTEGER NOT NULL,
    source         TEXT NOT NULL CHECK (source IN ('plugin', 'stdout', 'stderr', 'host')),
    level          TEXT NOT NULL CHECK (level IN ('trace', 'debug', 'info', 'warn', 'error')),
    message        TEXT NOT NULL,
    PRIMARY KEY (action_id, attempt, line)
);
