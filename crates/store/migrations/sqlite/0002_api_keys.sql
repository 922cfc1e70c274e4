-- API keys: each belongs to one user of one account. Only a SHA-256 hash of
-- the secret is kept (the secret is 256 random bits, so a fast hash is
-- enough); the secret is shown once, when the key is made. `prefix` is the
-- secret's first characters, so a user can tell keys apart in a listing.
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL,
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    secret_hash   TEXT NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER,
    FOREIGN KEY (account_id, user_id) REFERENCES users (account_id, id) ON DELETE CASCADE
);
-- A user's keys, for listing and revoking.
CREATE INDEX api_keys_user ON api_keys (user_id);
