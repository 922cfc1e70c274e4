-- Signing in to the console: a user's password, kept as an argon2id hash in
-- its PHC string form (algorithm, parameters and salt with the hash), never
-- the password itself. NULL: the user cannot sign in until one is set.
ALTER TABLE users ADD COLUMN password_hash TEXT;

-- Console sessions, server-side: the cookie carries a random secret and the
-- row is keyed by its SHA-256, so the table never holds a usable cookie.
-- `csrf` is the token every form of the session carries. A session ends at
-- `expires_at` (idle expiry, pushed on by use up to `ends_at`, the
-- absolute end), at sign-out (the row is deleted) or when its user is
-- deactivated or changes password.
CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    csrf          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    ends_at       INTEGER NOT NULL,
    FOREIGN KEY (account_id, user_id) REFERENCES users (account_id, id) ON DELETE CASCADE
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- One-time links to set a password, made by an admin (or printed by the
-- first start for the bootstrapped admin): keyed by the SHA-256 of the
-- link's secret, used at most once, before `expires_at`.
CREATE TABLE password_links (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    created_by  TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    FOREIGN KEY (account_id, user_id) REFERENCES users (account_id, id) ON DELETE CASCADE
);
CREATE INDEX password_links_user ON password_links (user_id);
