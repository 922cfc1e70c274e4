-- Sending identities. An account sends through the shared relay with
-- Reply-To the rep (`relay`), or from each rep's own address once it is
-- verified (`own_address`). A rep's identity is an address and a name
-- (their email and name when unset); `sender_connected` now says it is
-- verified: a confirmation link followed, or an admin's approval.
ALTER TABLE accounts ADD COLUMN sender_mode TEXT NOT NULL DEFAULT 'relay'
    CHECK (sender_mode IN ('relay', 'own_address'));
ALTER TABLE users ADD COLUMN sender_email TEXT;
ALTER TABLE users ADD COLUMN sender_name TEXT;

-- Links that confirm a rep's sending address: the SHA-256 of the token,
-- good once, until it expires, for the address it was sent to.
CREATE TABLE sender_confirmations (
    token_hash  TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    email       TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    FOREIGN KEY (account_id, user_id) REFERENCES users (account_id, id) ON DELETE CASCADE
);
CREATE INDEX sender_confirmations_user ON sender_confirmations (account_id, user_id);

-- A rep's own SMTP server and login, optional: their emails from their own
-- address go through it. The password is kept as it is (the server wants
-- it), never shown, never in the audit trail, never given to plugins.
CREATE TABLE sender_smtp (
    account_id  TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    host        TEXT NOT NULL,
    port        INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    security    TEXT NOT NULL CHECK (security IN ('none', 'starttls', 'tls')),
    username    TEXT NOT NULL,
    password    TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, user_id),
    FOREIGN KEY (account_id, user_id) REFERENCES users (account_id, id) ON DELETE CASCADE
);
