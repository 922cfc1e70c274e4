-- Secrets every host of one database shares, made once by the first host
-- that needs them (such as the key that signs unsubscribe links), so links
-- signed by one host are honoured by all, across restarts.
CREATE TABLE host_secrets (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
