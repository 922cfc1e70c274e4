-- Who owns each plugin id: NULL for the host's built-ins, else the account
-- that first uploaded an add-on under it. One owner per id, so no account
-- can publish a version that another account's steps would resolve.
CREATE TABLE plugin_ids (
    id     TEXT PRIMARY KEY,
    owner  TEXT REFERENCES accounts (id) ON DELETE CASCADE
);
-- Existing plugins: each id goes to its first uploader (versions another
-- account published under it later are no longer resolved for anyone).
INSERT INTO plugin_ids (id, owner)
    SELECT DISTINCT ON (id) id, uploaded_by FROM plugins ORDER BY id, builtin DESC, created_at, version
    ON CONFLICT (id) DO NOTHING;
